"""`provisioner policies sync` against a real moto IAM: it really creates the managed
session policies, gives a changed one a new version (deleting the oldest non-default one
before a sixth), prunes what nothing references, refuses to prune what is attached, and
a second run changes nothing. The stand-in IAM in front of moto records which calls each
run made, so "changes nothing" means no write call at all.
"""

import json

from iam_support import (
    ACCOUNT,
    PATH,
    WRITE_ACTIONS,
    admin_env,
    iam_platform,
    iam_standin,  # noqa: F401  (fixture)
    fake_iam_server,  # noqa: F401  (fixture)
    managed,
    plane,
    sync,
)
from harness.platform import BASE_PLATFORM, merged, write_platform


def creates(doc):
    return {a["arn"]: a for a in doc["actions"] if a["change"] == "create"}


def test_first_run_creates_every_policy_and_a_second_run_writes_nothing(tmp_path, moto, iam_standin,
                                                                         provisioner):
    config = iam_platform(tmp_path, iam_standin.endpoint, moto.endpoint, planes=3)
    env = admin_env(moto)

    planned, r = sync(provisioner, config, "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    assert planned["dry_run"] is True and planned["in_sync"] is False
    assert planned["applied"] is None
    assert planned["summary"]["create"] >= 3 and planned["summary"]["unchanged"] == 0
    assert managed(moto) == {}, "a dry run must not write to IAM"
    assert not WRITE_ACTIONS & set(iam_standin.actions())

    done, r = sync(provisioner, config, env=env)
    assert r.returncode == 0, r.stderr
    wanted = creates(done)
    assert wanted.keys() == creates(planned).keys()
    assert done["applied"]["created"] == len(wanted)
    held = managed(moto)
    assert held.keys() == wanted.keys()
    for arn, (doc, versions, default) in held.items():
        assert arn.startswith(f"arn:aws:iam::{ACCOUNT}:policy{PATH}")
        assert doc == wanted[arn]["document"], arn
        assert versions == ["v1"] and default == "v1"
        assert len(json.dumps(doc, separators=(",", ":"))) <= 6144
    # Every plane's locations and databases are in some managed policy.
    text = json.dumps([d for d, _, _ in held.values()])
    for i in range(3):
        p = plane(i)
        for uri in p["s3"]:
            assert uri.replace("s3://", "arn:aws:s3:::") in text
        for db in p["glue_databases"]:
            assert f"database/{db}" in text

    iam_standin.reset()
    again, r = sync(provisioner, config, env=env)
    assert r.returncode == 0, r.stderr
    assert again["in_sync"] is True and again["applied"] is None
    assert again["summary"]["unchanged"] == len(wanted)
    assert not WRITE_ACTIONS & set(iam_standin.actions()), iam_standin.actions()
    assert managed(moto) == held

    # The readable form: one line per policy and the summary.
    r = provisioner.run("policies", "sync", "--config", config, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert sum(line.startswith("unchanged ") for line in lines) == len(wanted)
    assert any(line.startswith(f"plan for {PATH}: 0 to create, 0 new version(s)") for line in lines)
    assert lines[-1] == "IAM already matches the platform file: nothing to do"


def test_a_changed_plane_gets_new_versions_and_the_sixth_deletes_the_oldest_non_default(
        tmp_path, moto, iam_standin, provisioner):
    env = admin_env(moto)
    config = iam_platform(tmp_path, iam_standin.endpoint, moto.endpoint, planes=2)
    done, r = sync(provisioner, config, env=env)
    assert r.returncode == 0, r.stderr
    before = managed(moto)

    changed_arns = set()
    for n in range(1, 7):
        moved = plane(0)
        moved["s3"][0] = f"s3://acme-datalake-prod/marketing/p000/curated-v{n}/"
        config = iam_platform(tmp_path, iam_standin.endpoint, moto.endpoint, planes=2,
                              data_planes=[moved, plane(1)],
                              users=[{"id": "alice", "data_planes": [moved["id"], "dp-marketing-001"]}])
        done, r = sync(provisioner, config, env=env)
        assert r.returncode == 0, r.stderr
        changes = [a for a in done["actions"] if a["change"] == "new_version"]
        assert changes, f"change {n} made no new version"
        assert not [a for a in done["actions"] if a["change"] == "create"], "a changed plane keeps its policy names"
        changed_arns |= {a["arn"] for a in changes}
        for a in changes:
            doc, versions, default = managed(moto)[a["arn"]]
            assert doc == a["document"]
            assert default == f"v{n + 1}"
            assert len(versions) == min(n + 1, 5)
            if n + 1 > 5:
                assert a["deletes_version"] == f"v{n + 1 - 5}"
                assert versions == [f"v{k}" for k in range(n + 2 - 5, n + 2)]
    # The other plane's policies were never touched.
    after = managed(moto)
    for arn in before.keys() - changed_arns:
        assert after[arn] == before[arn]

    # An admin rolled the default back to the oldest version: the next version must
    # delete the oldest version that is not the default, and keep the default's history.
    arn = sorted(changed_arns)[0]
    moto.client("iam").set_default_policy_version(PolicyArn=arn, VersionId="v3")
    done, r = sync(provisioner, config, env=env)
    assert r.returncode == 0, r.stderr
    [a] = [a for a in done["actions"] if a["arn"] == arn]
    assert a["change"] == "new_version" and a["deletes_version"] == "v4"
    doc, versions, default = managed(moto)[arn]
    assert versions == ["v3", "v5", "v6", "v7", "v8"] and default == "v8"


def test_documents_are_compared_by_meaning_not_bytes(tmp_path, moto, iam_standin, provisioner):
    """IAM keeps the text it was given (and returns it URL-encoded): a policy someone
    re-saved with other whitespace and order is unchanged, not stale."""
    env = admin_env(moto)
    config = iam_platform(tmp_path, iam_standin.endpoint, moto.endpoint, planes=1)
    planned, r = sync(provisioner, config, "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    iam = moto.client("iam")
    for a in planned["actions"]:
        doc = a["document"]
        for st in doc["Statement"]:
            for key in ("Action", "Resource"):
                if isinstance(st.get(key), list):
                    st[key] = list(reversed(st[key]))
        doc["Statement"] = list(reversed(doc["Statement"]))
        reordered = json.dumps(dict(reversed(list(doc.items()))), indent=4)
        iam.create_policy(PolicyName=a["name"], Path=PATH, PolicyDocument=reordered)
    iam_standin.reset()
    done, r = sync(provisioner, config, env=env)
    assert r.returncode == 0, r.stderr
    assert done["in_sync"] is True, done
    assert not WRITE_ACTIONS & set(iam_standin.actions())


def test_prune_deletes_only_unreferenced_policies_under_the_path(tmp_path, moto, iam_standin, provisioner):
    env = admin_env(moto)
    config = iam_platform(tmp_path, iam_standin.endpoint, moto.endpoint, planes=2)
    done, r = sync(provisioner, config, env=env)
    assert r.returncode == 0, r.stderr
    kept = set(creates(done))
    iam = moto.client("iam")
    doc = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::old-bucket/x/*"}]})
    old = iam.create_policy(PolicyName="provisioner-plane-dp-retired", Path=PATH, PolicyDocument=doc)["Policy"]["Arn"]
    iam.create_policy_version(PolicyArn=old, PolicyDocument=doc, SetAsDefault=True)
    outside = iam.create_policy(PolicyName="team-owned", Path="/team/", PolicyDocument=doc)["Policy"]["Arn"]

    # Without --prune the extra policy is reported and kept.
    done, r = sync(provisioner, config, env=env)
    assert r.returncode == 0, r.stderr
    extras = [a for a in done["actions"] if a["change"] == "extra"]
    assert [a["arn"] for a in extras] == [old]
    assert done["in_sync"] is False
    assert old in managed(moto)

    # An attached extra is never deleted: one line naming it and the fix, nothing changed.
    moto.create_role("Consumer")
    iam.attach_role_policy(RoleName="Consumer", PolicyArn=old)
    r = provisioner.run("policies", "sync", "--config", config, "--prune", env=env)
    assert r.returncode == 3, r.stderr
    err = r.stderr.strip()
    assert "\n" not in err
    assert err.startswith(f"provisioner: cannot prune {old}")
    assert f"aws iam list-entities-for-policy --policy-arn {old}" in err
    assert old in managed(moto)

    iam.detach_role_policy(RoleName="Consumer", PolicyArn=old)
    done, r = sync(provisioner, config, "--prune", env=env)
    assert r.returncode == 0, r.stderr
    [pruned] = [a for a in done["actions"] if a["change"] == "prune"]
    assert pruned["arn"] == old and pruned["deletes_versions"] == ["v1"]
    assert done["applied"]["pruned"] == 1
    assert set(managed(moto)) == kept
    assert iam.get_policy(PolicyArn=outside)["Policy"]["Arn"] == outside, "outside the path is never touched"

    done, r = sync(provisioner, config, "--prune", env=env)
    assert r.returncode == 0 and done["in_sync"] is True


def test_access_denied_names_the_missing_iam_action(tmp_path, moto, provisioner):
    """moto with IAM auth on: a CI identity that may list and read but not create."""
    reader = moto.create_user("ci-reader", policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:ListPolicies", "iam:GetPolicyVersion", "iam:ListPolicyVersions"],
         "Resource": "*"}]})
    moto.enable_auth()
    config = iam_platform(tmp_path, moto.endpoint, moto.endpoint, planes=1)
    env = admin_env(moto, AWS_ACCESS_KEY_ID=reader.access_key_id,
                    AWS_SECRET_ACCESS_KEY=reader.secret_access_key)
    planned, r = sync(provisioner, config, "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    assert planned["summary"]["create"] >= 1
    r = provisioner.run("policies", "sync", "--config", config, env=env)
    assert r.returncode == 4
    err = r.stderr.strip().splitlines()
    assert len(err) == 1, r.stderr
    assert err[0].startswith("provisioner: IAM denied iam:CreatePolicy on arn:aws:iam::123456789012:policy/provisioner/")
    assert "fix: allow iam:CreatePolicy" in err[0]


def test_iam_endpoint_setting_is_validated_and_overridable(tmp_path, moto, provisioner):
    env = admin_env(moto)
    bad = iam_platform(tmp_path, "ftp://127.0.0.1:9", moto.endpoint, planes=1, name="bad.json")
    r = provisioner.run("policies", "sync", "--config", bad, "--dry-run", env=env)
    assert r.returncode == 2
    assert "iam_endpoint" in r.stderr and "is not an http(s) URL" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    # Nothing listens on port 9: one line naming the endpoint and the setting.
    dead = iam_platform(tmp_path, "http://127.0.0.1:9", moto.endpoint, planes=1, name="dead.json")
    r = provisioner.run("policies", "sync", "--config", dead, "--dry-run", env=env, timeout=120)
    assert r.returncode == 4
    [line] = r.stderr.strip().splitlines()
    assert "could not reach IAM at http://127.0.0.1:9" in line and "aws.iam_endpoint" in line

    # The environment variable overrides the file, like every other setting.
    r = provisioner.run("policies", "sync", "--config", dead, "--dry-run", "--json",
                        env={**env, "IAM_ENDPOINT": moto.endpoint})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["summary"]["create"] >= 1


def test_base_platform_without_planes_syncs_cleanly(tmp_path, moto, provisioner):
    config = write_platform(tmp_path / "p.json", merged(BASE_PLATFORM, {
        "aws": {"iam_endpoint": moto.endpoint, "sts_endpoint": moto.endpoint},
        "data_planes": [], "users": [{"id": "root", "system_admin": True}]}))
    done, r = sync(provisioner, config, env=admin_env(moto))
    assert r.returncode == 0, r.stderr
    assert done["summary"]["prune"] == 0 and done["error"] is None
