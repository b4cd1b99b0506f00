"""`provisioner audit`: every user's tier, sizes and headroom before anyone launches, the
exit code that gates switching session policies on, and with `--aws` the read-only IAM
checks against moto (roles, session durations, trust, managed policies) and the
stand-in IAM's policy simulator (moto has none).
"""

import json

import boto3

from iam_support import (
    ACCOUNT,
    admin_env,
    fake_iam_server,  # noqa: F401  (fixture)
    iam_platform,
    iam_standin,  # noqa: F401  (fixture)
    plane,
    sync,
)


def audit(provisioner, config, *args, env=None):
    r = provisioner.run("audit", "--config", config, "--json", *args, env=env, timeout=120)
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"audit printed no JSON (exit {r.returncode}): {r.stdout}\n{r.stderr}") from None
    return doc, r


def rows(doc, user):
    return {r["flow"]: r for r in doc["rows"] if r["user"] == user}


def kinds(doc):
    return sorted(f["kind"] for f in doc["findings"])


USERS = [
    {"id": "alice", "data_planes": ["dp-marketing-000"]},
    {"id": "bob", "data_planes": ["dp-marketing-000", "dp-marketing-001", "dp-marketing-002"]},
    {"id": "root", "system_admin": True},
]


def test_audit_flags_who_would_get_unrestricted_credentials(tmp_path, provisioner):
    inline_only = iam_platform(
        tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", planes=3, users=USERS, name="never.json",
        settings={"syntasa_session_policy_enabled": "false", "session_policy_managed": "never"})
    doc, r = audit(provisioner, inline_only)
    assert r.returncode == 5, r.stderr
    assert doc["exit_code"] == 5 and doc["unrestricted"] == 2
    # Evaluated as if session policies were on, and says so.
    assert doc["session_policy_enabled_in_file"] is False
    bob = rows(doc, "bob")
    assert set(bob) == {"notebook", "job"}
    for row in bob.values():
        assert row["tier"] == "default" and row["reason"] == "OVER_LIMIT" and row["unrestricted"] is True
    alice = rows(doc, "alice")
    for row in alice.values():
        assert row["tier"] == "session_policy" and row["unrestricted"] is False
        assert row["inline_chars"] <= 2048 and row["inline_headroom"] == 2048 - row["inline_chars"]
        assert row["managed_policies"] == 0 and row["policy_arns_headroom"] == 10
    # The notebook row is the worst context: a workspace without a service account.
    assert alice["notebook"]["contexts"] == 2
    assert rows(doc, "root")["notebook"]["reason"] == "ADMIN_BYPASS"
    unrestricted = [f for f in doc["findings"] if f["kind"] == "UNRESTRICTED"]
    assert sorted(f["subject"].split(" (")[0] for f in unrestricted) == ["user bob", "user bob"]
    assert all("session_policy_over_limit" in f["fix"] for f in unrestricted)
    holders = [f for f in doc["findings"] if f["kind"] == "SERVICE_ACCOUNT"]
    assert [f["subject"] for f in holders] == ["workspace ws-finance"]
    assert "sa-finance" in holders[0]["message"]

    # The readable report: a table and one line per finding.
    r = provisioner.run("audit", "--config", inline_only)
    assert r.returncode == 5
    lines = r.stdout.splitlines()
    assert any(line.startswith("bob ") and "default OVER_LIMIT" in line for line in lines)
    assert any(line.strip().startswith("UNRESTRICTED") and "user bob" in line and "; fix: " in line
               for line in lines)
    assert lines[-1].startswith("summary: 3 users, 6 rows, 2 would get unrestricted credentials")

    # Refusing instead of falling back: nobody is unrestricted, bob is reported refused.
    deny = iam_platform(
        tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", planes=3, users=USERS, name="deny.json",
        settings={"session_policy_managed": "never", "session_policy_over_limit": "deny"})
    doc, r = audit(provisioner, deny)
    assert r.returncode == 0, r.stdout
    assert doc["unrestricted"] == 0
    assert [f["kind"] for f in doc["findings"] if f["subject"].startswith("user bob")] == ["REFUSED", "REFUSED"]

    # With managed session policies bob is scoped, with the headroom of every limit.
    managed = iam_platform(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", planes=3, users=USERS,
                           name="auto.json")
    doc, r = audit(provisioner, managed)
    assert r.returncode == 0, r.stdout
    for row in rows(doc, "bob").values():
        assert row["tier"] == "session_policy" and row["managed_policies"] >= 1
        assert 0 <= row["managed_max_chars"] <= 6144
        assert row["managed_headroom"] == 6144 - row["managed_max_chars"]
        assert row["policy_arns_headroom"] == 10 - row["managed_policies"]
        assert row["inline_headroom"] >= 0


def assume(moto, role_arn):
    sts = moto.client("sts")
    c = sts.assume_role(RoleArn=role_arn, RoleSessionName="launcher-host")["Credentials"]
    return {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
            "AWS_SESSION_TOKEN": c["SessionToken"], "AWS_REGION": "us-east-1"}


PLATFORM_ROLE_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::acme-platform", "arn:aws:s3:::acme-platform/*",
                                                       "arn:aws:s3:::acme-datalake-prod/*"]},
    {"Effect": "Allow", "Action": "glue:*", "Resource": "*"}]}


def test_audit_aws_finds_what_breaks_launches_each_with_its_fix(tmp_path, moto, iam_standin, provisioner):
    launcher = moto.create_role("Launcher")
    platform_role = moto.create_role("PlatformInfraRole", trusted=[launcher], max_session_duration=3600,
                                     policy=PLATFORM_ROLE_POLICY)
    moto.create_role("Finance", trusted=[f"arn:aws:iam::{ACCOUNT}:role/SomeoneElse"], max_session_duration=43200)
    env = assume(moto, launcher)
    config = iam_platform(tmp_path, iam_standin.endpoint, moto.endpoint, planes=2,
                          settings={"syntasa_session_policy_duration": "43200"},
                          service_accounts=[
                              {"id": "sa-finance", "role_arn": f"arn:aws:iam::{ACCOUNT}:role/Finance",
                               "duration_seconds": 3600},
                              {"id": "sa-gone", "role_arn": f"arn:aws:iam::{ACCOUNT}:role/Gone"}],
                          runtime_templates=[{"id": "rt-default"}, {"id": "rt-gone", "service_account": "sa-gone"}])

    doc, r = audit(provisioner, config, "--aws", env=env)
    assert r.returncode == 6, r.stdout + r.stderr
    by_kind = {}
    for f in doc["findings"]:
        by_kind.setdefault(f["kind"], []).append(f)
    infra = f"role {platform_role} (session_policy_role_arn)"
    [duration] = by_kind["SESSION_DURATION"]
    assert duration["subject"] == infra
    assert duration["fix"] == "aws iam update-role --role-name PlatformInfraRole --max-session-duration 43200"
    [chaining] = by_kind["ROLE_CHAINING"]
    assert "assumed-role/Launcher/launcher-host" in chaining["message"]
    [trust] = by_kind["TRUST"]
    assert trust["subject"].startswith(f"role arn:aws:iam::{ACCOUNT}:role/Finance")
    assert f"arn:aws:iam::{ACCOUNT}:role/Launcher" in trust["message"]
    assert "update-assume-role-policy --role-name Finance" in trust["fix"]
    [missing] = by_kind["ROLE_MISSING"]
    assert missing["subject"].startswith(f"role arn:aws:iam::{ACCOUNT}:role/Gone (service account sa-gone)")
    # The simulator: the role allows the platform folders but not Bedrock.
    [denies] = by_kind["ROLE_DENIES"]
    assert "bedrock:InvokeModel" in denies["message"] and "Bedrock" in denies["message"]
    assert denies["fix"].startswith("allow bedrock:InvokeModel, bedrock:InvokeModelWithResponseStream on ")
    [managed] = by_kind["MANAGED_POLICIES"]
    assert "missing" in managed["message"] and managed["fix"].startswith("run provisioner policies sync")
    assert "SimulatePrincipalPolicy" in iam_standin.actions()
    holder = [f for f in by_kind["SERVICE_ACCOUNT"] if f["subject"] == "runtime template rt-gone"]
    assert holder
    r = provisioner.run("audit", "--config", config, "--aws", env=env)
    finding_lines = [line for line in r.stdout.splitlines() if line.startswith("  ")]
    assert len(finding_lines) == len(doc["findings"]), "one line per finding"
    assert all("; fix: " in line for line in finding_lines)

    # Fix everything the findings name; the audit comes back clean.
    iam = moto.client("iam")
    iam.update_role(RoleName="PlatformInfraRole", MaxSessionDuration=43200)
    policy = json.loads(json.dumps(PLATFORM_ROLE_POLICY))
    policy["Statement"].append({"Effect": "Allow", "Action": "bedrock:InvokeModel*", "Resource": "*"})
    moto.put_role_policy("PlatformInfraRole", policy)
    iam.update_assume_role_policy(RoleName="Finance", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": launcher},
                                                 "Action": "sts:AssumeRole"}]}))
    moto.create_role("Gone", trusted=[launcher], max_session_duration=43200)
    fixed = iam_platform(tmp_path, iam_standin.endpoint, moto.endpoint, planes=2, name="fixed.json",
                         settings={"syntasa_session_policy_duration": "3600"},
                         service_accounts=[
                             {"id": "sa-finance", "role_arn": f"arn:aws:iam::{ACCOUNT}:role/Finance",
                              "duration_seconds": 3600},
                             {"id": "sa-gone", "role_arn": f"arn:aws:iam::{ACCOUNT}:role/Gone",
                              "duration_seconds": 3600}])
    done, r = sync(provisioner, fixed, env=admin_env(moto))
    assert r.returncode == 0, r.stderr
    doc, r = audit(provisioner, fixed, "--aws", env=env)
    assert r.returncode == 0, json.dumps(doc["findings"], indent=1)
    assert set(kinds(doc)) <= {"SERVICE_ACCOUNT"}

    # A plane changed after the sync: the audit says IAM is stale and how to fix it.
    changed = iam_platform(tmp_path, iam_standin.endpoint, moto.endpoint, planes=2, name="changed.json",
                           settings={"syntasa_session_policy_duration": "3600"},
                           service_accounts=[
                               {"id": "sa-finance", "role_arn": f"arn:aws:iam::{ACCOUNT}:role/Finance",
                                "duration_seconds": 3600}],
                           data_planes=[dict(plane(0), s3=["s3://acme-datalake-prod/marketing/moved/"]), plane(1)])
    doc, r = audit(provisioner, changed, "--aws", env=env)
    assert r.returncode == 6
    [stale] = [f for f in doc["findings"] if f["kind"] == "MANAGED_POLICIES"]
    assert "stale" in stale["message"]


def test_audit_aws_names_the_permission_it_lacks(tmp_path, moto, iam_standin, provisioner):
    launcher = moto.create_role("Launcher")
    moto.create_role("PlatformInfraRole", trusted=[launcher], max_session_duration=43200,
                     policy=PLATFORM_ROLE_POLICY)
    iam_standin.cue("deny_simulate")
    config = iam_platform(tmp_path, iam_standin.endpoint, moto.endpoint, planes=1, service_accounts=[],
                          workspaces=[{"id": "ws-open"}])
    doc, r = audit(provisioner, config, "--aws", env=assume(moto, launcher))
    assert r.returncode == 6
    [failed] = [f for f in doc["findings"] if f["kind"] == "CHECK_FAILED"]
    assert "IAM denied iam:SimulatePrincipalPolicy on arn:aws:iam::123456789012:role/PlatformInfraRole" in failed["message"]
    assert "\n" not in failed["message"]


def test_standin_simulator_answers_like_iam(moto, iam_standin):
    """The stand-in's simulator, read through boto3 (IAM's own client): one result per
    action, per-resource results, and the decisions IAM uses."""
    moto.create_role("R", policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret/*"}]})
    iam = boto3.client("iam", endpoint_url=iam_standin.endpoint, region_name="us-east-1",
                       aws_access_key_id="a", aws_secret_access_key="b")
    out = iam.simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:role/R", ActionNames=["s3:GetObject", "s3:PutObject"],
        ResourceArns=["arn:aws:s3:::b/x", "arn:aws:s3:::b/secret/y"])
    results = {r["EvalActionName"]: r for r in out["EvaluationResults"]}
    assert results["s3:GetObject"]["EvalDecision"] == "explicitDeny"
    per = {x["EvalResourceName"]: x["EvalResourceDecision"] for x in results["s3:GetObject"]["ResourceSpecificResults"]}
    assert per == {"arn:aws:s3:::b/x": "allowed", "arn:aws:s3:::b/secret/y": "explicitDeny"}
    assert results["s3:PutObject"]["EvalDecision"] == "implicitDeny"
    try:
        iam.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:role/Nope", ActionNames=["s3:GetObject"])
        raise AssertionError("an unknown role must fail")
    except iam.exceptions.NoSuchEntityException:
        pass
