"""`provisioner explain`, the dry run platform admins use to answer "why did this kernel
get that identity?", through the real binary over examples/platform.json.

Covers the documented JSON fields, the resolution tables (notebook and job flows, first
match wins), the three reasons for default credentials, and what a broken platform file
does: exit code 2 and one line on stderr that names the file.
"""

import copy
import json
import re

import pytest

from harness import REPO_ROOT, write_platform

EXAMPLE = REPO_ROOT / "examples" / "platform.json"
ACCOUNT = "123456789012"
INFRA_ROLE = f"arn:aws:iam::{ACCOUNT}:role/PlatformInfraRole"
FINANCE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/Finance"
ETL_ROLE = f"arn:aws:iam::{ACCOUNT}:role/etl/NightlyEtl"

DOCUMENTED_FIELDS = {
    "flow", "user", "workspace", "runtime_template", "tier", "reason", "skipped", "warnings",
    "role_arn", "session_name", "duration_seconds", "policy", "policy_chars", "policy_sha256",
}
TIERS = {"workspace_sa", "runtime_template_sa", "session_policy", "default"}
# The tables below are about the inline policy alone (bob's is over 2,048 characters);
# test_managed_policies.py covers the managed layout that scopes bob by default.
INLINE_ONLY = {"SESSION_POLICY_MANAGED": "never"}


def minified(doc):
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def check_shape(d):
    """The documented fields, with the documented types and internal consistency."""
    missing = DOCUMENTED_FIELDS - d.keys()
    assert not missing, f"explain --json lacks {sorted(missing)}"
    assert d["tier"] in TIERS
    assert d["reason"] in (None, "DISABLED", "ADMIN_BYPASS", "OVER_LIMIT")
    assert (d["reason"] is not None) == (d["tier"] == "default"), d
    assert isinstance(d["skipped"], list)
    for s in d["skipped"]:
        assert s["tier"] in TIERS and s["tier"] != d["tier"], s
        assert isinstance(s["reason"], str) and s["reason"], s
    assert isinstance(d["warnings"], list) and all(isinstance(w, str) for w in d["warnings"])
    if d["tier"] == "session_policy":
        assert isinstance(d["policy"], dict)
        assert d["policy"]["Version"] == "2012-10-17"
        # Characters are counted on the minified document, as STS counts them.
        assert d["policy_chars"] == len(minified(d["policy"]))
        assert d["policy_chars"] <= 2048
        assert re.fullmatch(r"[0-9a-f]{64}", d["policy_sha256"])
    else:
        assert d["policy"] is None and d["policy_chars"] is None and d["policy_sha256"] is None, d
    if d["tier"] == "default":
        # Nothing is minted: no role, no session.
        assert d["role_arn"] is None and d["session_name"] is None and d["duration_seconds"] is None, d


# (user, workspace, runtime template, flow) -> (tier, reason, role ARN, duration,
#  tiers skipped in order)
MATRIX = [
    # Notebook flow.
    (("alice", "ws-open", None, None),
     ("session_policy", None, INFRA_ROLE, 43200, ["workspace_sa", "runtime_template_sa"])),
    (("alice", "ws-finance", None, None), ("workspace_sa", None, FINANCE_ROLE, 43200, [])),
    (("alice", "ws-finance", "rt-etl", None), ("workspace_sa", None, FINANCE_ROLE, 43200, [])),
    (("alice", "ws-open", "rt-etl", None), ("runtime_template_sa", None, ETL_ROLE, 3600, ["workspace_sa"])),
    (("alice", None, "rt-default", None),
     ("session_policy", None, INFRA_ROLE, 43200, ["workspace_sa", "runtime_template_sa"])),
    (("alice", "ws-open", None, "notebook-run"),
     ("session_policy", None, INFRA_ROLE, 43200, ["workspace_sa", "runtime_template_sa"])),
    (("carol", "ws-open", None, None),
     ("session_policy", None, INFRA_ROLE, 43200, ["workspace_sa", "runtime_template_sa"])),
    (("root", None, None, None),
     ("default", "ADMIN_BYPASS", None, None, ["workspace_sa", "runtime_template_sa", "session_policy"])),
    (("root", "ws-finance", None, None), ("workspace_sa", None, FINANCE_ROLE, 43200, [])),
    (("bob", None, None, None),
     ("default", "OVER_LIMIT", None, None, ["workspace_sa", "runtime_template_sa", "session_policy"])),
    # Job flow: the workspace service account is ignored, and the record says so.
    (("alice", "ws-finance", "rt-etl", "job"), ("runtime_template_sa", None, ETL_ROLE, 3600, ["workspace_sa"])),
    (("alice", "ws-finance", None, "job"),
     ("session_policy", None, INFRA_ROLE, 43200, ["workspace_sa", "runtime_template_sa"])),
    (("alice", None, "rt-default", "job"),
     ("session_policy", None, INFRA_ROLE, 43200, ["runtime_template_sa"])),
    (("root", "ws-finance", None, "job"),
     ("default", "ADMIN_BYPASS", None, None, ["workspace_sa", "runtime_template_sa", "session_policy"])),
]


def matrix_id(case):
    (user, ws, rt, flow), _ = case
    return "-".join(x for x in (flow or "notebook", user, ws, rt) if x)


@pytest.mark.parametrize("context,expected", MATRIX, ids=[matrix_id(c) for c in MATRIX])
def test_explain_matrix_over_the_example_platform(provisioner, context, expected):
    user, workspace, runtime_template, flow = context
    tier, reason, role_arn, duration, skipped = expected
    d, r = provisioner.explain(EXAMPLE, user, workspace=workspace, runtime_template=runtime_template, flow=flow,
                               env=INLINE_ONLY)
    assert r.returncode == 0, r.stderr
    check_shape(d)
    assert (d["flow"], d["user"], d["workspace"], d["runtime_template"]) == (
        flow or "notebook", user, workspace, runtime_template
    )
    assert (d["tier"], d["reason"]) == (tier, reason), d
    assert d["role_arn"] == role_arn
    assert d["duration_seconds"] == duration
    assert [s["tier"] for s in d["skipped"]] == skipped, d["skipped"]
    if role_arn is not None:
        # 2-64 characters of [\w+=,.@-], derived from the user.
        assert re.fullmatch(r"[\w+=,.@-]{2,64}", d["session_name"]) and user in d["session_name"]


def test_job_flow_says_the_workspace_service_account_was_ignored(provisioner):
    d, _ = provisioner.explain(EXAMPLE, "alice", workspace="ws-finance", runtime_template="rt-etl", flow="job")
    (ws,) = [s for s in d["skipped"] if s["tier"] == "workspace_sa"]
    text = json.dumps(ws).lower()
    assert "sa-finance" in text or "ignor" in text, ws


def test_over_limit_warns_with_the_size(provisioner):
    d, _ = provisioner.explain(EXAMPLE, "bob", env=INLINE_ONLY)
    assert (d["tier"], d["reason"]) == ("default", "OVER_LIMIT")
    assert any("2048" in w or "2,048" in w for w in d["warnings"]), d["warnings"]


def test_user_without_data_planes_gets_a_warning(provisioner):
    d, _ = provisioner.explain(EXAMPLE, "carol", workspace="ws-open")
    assert d["tier"] == "session_policy"
    assert any("carol" in w for w in d["warnings"]), d["warnings"]
    # Only platform folders (and Bedrock): no data-plane bucket appears.
    assert "acme-data" not in json.dumps(d["policy"])


def test_session_policy_reaches_only_the_users_data_planes(provisioner):
    d, _ = provisioner.explain(EXAMPLE, "alice", workspace="ws-open")
    text = json.dumps(d["policy"])
    assert "arn:aws:s3:::acme-data/marketing/*" in text
    assert "arn:aws:s3:::acme-raw/marketing/landing/*" in text
    assert "sales" not in text and "acme-shared" not in text
    # {user} and {workspace} in platform folders are filled in for this launch.
    assert "syn-file-uploads/alice/*" in text and "syn-workspace/ws-open/*" in text
    assert "{user}" not in text and "{workspace}" not in text


def test_policy_is_deterministic_and_identified_by_its_digest(provisioner, tmp_path):
    a, _ = provisioner.explain(EXAMPLE, "alice", workspace="ws-open")
    b, _ = provisioner.explain(EXAMPLE, "alice", workspace="ws-open")
    assert a["policy"] == b["policy"] and a["policy_sha256"] == b["policy_sha256"]
    # The flow is not part of the policy; the workspace is (syn-workspace/{workspace}),
    # and so is the user.
    c, _ = provisioner.explain(EXAMPLE, "alice", workspace="ws-open", flow="notebook-run")
    assert c["policy_sha256"] == a["policy_sha256"]
    doc = json.loads(EXAMPLE.read_text())
    doc["workspaces"].append({"id": "ws-other"})
    other = write_platform(tmp_path / "platform.json", doc)
    w, _ = provisioner.explain(other, "alice", workspace="ws-other")
    assert w["tier"] == "session_policy" and w["policy_sha256"] != a["policy_sha256"]
    assert "syn-workspace/ws-other/*" in json.dumps(w["policy"])
    u, _ = provisioner.explain(EXAMPLE, "carol", workspace="ws-open")
    assert u["policy_sha256"] != a["policy_sha256"]


def test_session_policy_disabled_by_environment_setting(provisioner):
    # Every setting can come from an environment variable of the same name upper-cased.
    d, r = provisioner.explain(EXAMPLE, "alice", workspace="ws-open",
                               env={"SYNTASA_SESSION_POLICY_ENABLED": "false"})
    assert r.returncode == 0, r.stderr
    check_shape(d)
    assert (d["tier"], d["reason"]) == ("default", "DISABLED")


def test_context_from_environment(provisioner):
    # The kernelspec passes context through the environment; explain reads it the same way.
    r = provisioner.run("explain", "--json", "--config", EXAMPLE,
                        env={"SYN_USER": "alice", "SYN_WORKSPACE_ID": "ws-finance"})
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["user"], d["workspace"], d["tier"]) == ("alice", "ws-finance", "workspace_sa")


def test_readable_report_explains_the_decision(provisioner):
    r = provisioner.run("explain", "--config", EXAMPLE, "--user", "alice", "--workspace", "ws-open")
    assert r.returncode == 0, r.stderr
    assert "alice" in r.stdout and "session_policy" in r.stdout and "PlatformInfraRole" in r.stdout


def _mutate(fn):
    def write(tmp_path):
        doc = json.loads(EXAMPLE.read_text())
        fn(doc)
        return write_platform(tmp_path / "platform.json", doc)
    return write


def _text(text):
    def write(tmp_path):
        p = tmp_path / "platform.json"
        p.write_text(text)
        return p
    return write


BROKEN = {
    "truncated-json": (_text('{"settings": {"syntasa_session_policy_enabled": "true",\n'), []),
    "empty-file": (_text(""), []),
    "not-an-object": (_text("[]\n"), []),
    "unknown-top-level-field": (_mutate(lambda d: d.update(bogus=1)), ["bogus"]),
    "unknown-data-plane": (_mutate(lambda d: d["users"][0]["data_planes"].append("dp-nope")),
                           ["alice", "data_planes", "dp-nope"]),
    "unknown-service-account": (_mutate(lambda d: d["workspaces"][0].update(service_account="sa-nope")),
                                ["ws-finance", "service_account", "sa-nope"]),
    "bad-s3-uri": (_mutate(lambda d: d["data_planes"][0]["s3"].append("acme-data/x/")),
                   ["dp-marketing", "s3", "acme-data/x/"]),
    "user-arn-for-role": (_mutate(lambda d: d["aws"].update(session_policy_role_arn=f"arn:aws:iam::{ACCOUNT}:user/x")),
                          ["session_policy_role_arn"]),
    "duration-out-of-range": (_mutate(lambda d: d["settings"].update(syntasa_session_policy_duration="60")),
                              ["syntasa_session_policy_duration"]),
    "inline-secret": (_mutate(lambda d: d["service_accounts"][2].update(secret_access_key="wJalrXUtnFEMI/K7MDENG")),
                      ["sa-legacy", "secret_access_key"]),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_platform_file_is_one_line_and_exit_2(provisioner, tmp_path, case):
    write, must_name = BROKEN[case]
    path = write(tmp_path)
    r = provisioner.run("explain", "--json", "--config", path, "--user", "alice")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), f"expected one line on stderr, got: {r.stderr!r}"
    assert str(path) in lines[0], lines[0]
    for word in must_name:
        assert word in lines[0], f"{word!r} not named in: {lines[0]}"
    assert "panicked" not in r.stderr
    # An inline secret is refused without being repeated anywhere.
    assert "wJalrXUtnFEMI" not in r.stderr


def test_missing_platform_file_is_one_line_and_exit_2(provisioner, tmp_path):
    path = tmp_path / "does-not-exist.json"
    r = provisioner.run("explain", "--json", "--config", path, "--user", "alice")
    assert r.returncode == 2
    lines = r.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and str(path) in lines[0], r.stderr


def test_platform_file_from_environment(provisioner, tmp_path):
    # SYN_PLATFORM_CONFIG is used when --config is absent.
    doc = copy.deepcopy(json.loads(EXAMPLE.read_text()))
    doc["settings"]["syntasa_session_policy_enabled"] = "false"
    path = write_platform(tmp_path / "env-platform.json", doc)
    r = provisioner.run("explain", "--json", "--user", "alice", env={"SYN_PLATFORM_CONFIG": path})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["reason"] == "DISABLED"
