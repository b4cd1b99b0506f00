"""Managed session policies through the real binaries.

`provisioner kernel` against the recording stand-in STS (tests/stand_ins/fake_sts.py,
STS's wire format): AssumeRole carries exactly the managed policy ARNs the decision
names, in order, beside the inline policy; a user whose policy fits inline sends no
PolicyArns at all; and when STS rejects a managed policy ARN (IAM does not hold it) the
launch is refused with the fix "run provisioner policies sync", never widened to the
default credentials. moto accepts any PolicyArns without reading them, so only a
stand-in can answer as STS does for a missing policy.

`provisioner explain` prints `policy_arns` and `managed_policies` (ARN -> document), and
the readable report says which statements went where and the headroom of each limit.
No server here enforces managed session policies; test_policy_evaluation.py evaluates
the documents with an IAM policy simulator instead.
"""

import json

import pytest

from capacity_support import DOMAINS, capacity_platform, plane
from fault_support import (
    fake_sts_endpoint,  # noqa: F401 - fixture
    fake_sts_server,  # noqa: F401 - fixture
    fault_platform,
    launch_kernel,
    launcher_env,
)
from harness import write_platform

DEFAULT_FOLDERS = ("syn-workspace,syn-app-logs,syn-cluster-config,syn-file-uploads,syn-volumes,"
                   "syn-spark-history,syn-cluster-logs")


def minified(doc):
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture
def sts(fake_sts_endpoint):  # noqa: F811
    return fake_sts_endpoint


def managed_config(tmp_path, sts, n, *, folders=DEFAULT_FOLDERS + ",syn-home/{user}", **settings):
    return fault_platform(
        tmp_path, sts.endpoint,
        settings={"session_policy_platform_folders": folders, "session_policy_bedrock": "true", **settings},
        aws={"platform_bucket": "acme-platform"},
        data_planes=[plane(d) for d in DOMAINS],
        users=[{"id": "alice", "data_planes": [f"dp-{d}" for d in DOMAINS[:n]]}],
    )


def launch(provisioner, tmp_path, config):
    log = tmp_path / "decisions.jsonl"
    env = launcher_env(SYN_USER="alice", SYN_WORKSPACE_ID="ws-open")
    return launch_kernel(provisioner, config, env, tmp_path / "child-env.json", log)


def explain(provisioner, config):
    d, r = provisioner.explain(config, "alice", workspace="ws-open")
    assert r.returncode == 0, r.stderr
    return d


@pytest.mark.parametrize("n", [3, 40])
def test_assume_role_carries_exactly_the_managed_policy_arns(provisioner, sts, tmp_path, n):
    config = managed_config(tmp_path, sts, n)
    planned = explain(provisioner, config)
    arns = planned["policy_arns"]
    assert planned["tier"] == "session_policy" and 2 <= len(arns) <= 10, planned
    assert list(planned["managed_policies"]) == arns
    # IAM holds exactly these policies (as after `provisioner policies sync`).
    sts.hold_policies(arns)

    run = launch(provisioner, tmp_path, config)
    assert run.returncode == 0, run.stderr
    assert run.child is not None, "the kernel did not start"
    (sent,) = sts.assume_roles()
    assert sent["policy_arns"] == arns, "AssumeRole must carry exactly the decided ARNs, in order"
    assert sent["policy"] == minified(planned["policy"]), "the inline policy is sent as explained"
    # The per-user folder stays inline; the shared parts live in the managed policies.
    assert "acme-platform/syn-home/alice/*" in sent["policy"]
    assert "datalake" not in sent["policy"] and "bedrock" not in sent["policy"]
    assert run.record["policy_arns"] == arns
    assert run.record["tier"] == "session_policy" and run.record["credentials"] == "assumed_role"
    assert run.record["policy_sha256"] == planned["policy_sha256"]


def test_a_missing_managed_policy_is_refused_with_the_sync_fix_never_widened(provisioner, sts, tmp_path):
    config = managed_config(tmp_path, sts, 5)
    arns = explain(provisioner, config)["policy_arns"]
    # One plane's policy was never synced to IAM.
    sts.hold_policies([a for a in arns if not a.endswith("-plane-dp-sales")])
    assert len(arns) == 6

    run = launch(provisioner, tmp_path, config)
    assert run.returncode == 4, (run.returncode, run.stderr)
    assert run.child is None, "a refused launch must not start the program"
    rec = run.record
    assert (rec["tier"], rec["credentials"], rec["reason"]) == ("session_policy", "none", None), rec
    assert rec["refused"]["code"] == "MANAGED_POLICY_UNAVAILABLE" and rec["refused"]["exit_code"] == 4
    assert "provisioner policies sync" in rec["refused"]["fix"], rec["refused"]
    assert "provisioner-plane-dp-sales" in rec["refused"]["message"], rec["refused"]
    assert rec["policy_arns"] == []
    # Refused at once: a missing policy is not retried, and nothing falls back.
    assert [q["policy_arns"] for q in sts.assume_roles()] == [arns]
    (line,) = run.stderr.strip().splitlines()
    assert "MANAGED_POLICY_UNAVAILABLE" in line and "provisioner policies sync" in line, line


def test_a_missing_managed_policy_is_refused_even_when_over_limit_falls_back(provisioner, sts, tmp_path):
    # session_policy_over_limit = fallback lets OVER_LIMIT widen to default credentials, as
    # the platform documents; a missing managed policy is not over any limit and must not.
    config = managed_config(tmp_path, sts, 12, session_policy_over_limit="fallback")
    sts.hold_policies([])
    run = launch(provisioner, tmp_path, config)
    assert run.returncode == 4 and run.child is None, run.stderr
    assert run.record["refused"]["code"] == "MANAGED_POLICY_UNAVAILABLE"


def test_a_user_whose_policy_fits_inline_sends_no_policy_arns(provisioner, sts, tmp_path):
    config = managed_config(tmp_path, sts, 1, folders="syn-workspace")
    planned = explain(provisioner, config)
    assert planned["policy_arns"] == [] and planned["managed_policies"] == {}, planned
    sts.hold_policies([])
    run = launch(provisioner, tmp_path, config)
    assert run.returncode == 0, run.stderr
    (q,) = [q for q in sts.requests() if q["action"] == "AssumeRole"]
    assert not any(k.startswith("PolicyArns") for k in q["params"]), q["params"]
    assert q["params"]["Policy"] == minified(planned["policy"])
    assert run.record["policy_arns"] == []


def test_explain_json_prints_the_managed_documents(provisioner, tmp_path):
    config = write_platform(tmp_path / "p.json", capacity_platform(12))
    d, r = provisioner.explain(config, "alice.smith", workspace="ws-marketing")
    assert r.returncode == 0, r.stderr
    assert d["tier"] == "session_policy"
    assert list(d["managed_policies"]) == d["policy_arns"]
    for arn, doc in d["managed_policies"].items():
        assert arn.startswith("arn:aws:iam::123456789012:policy/provisioner/provisioner-"), arn
        assert doc["Version"] == "2012-10-17" and doc["Statement"], doc
        assert len(minified(doc)) <= 6144
    assert d["policy_chars"] + sum(map(len, d["policy_arns"])) <= 2048
    # Twelve planes and the platform policy: more planes than ARNs left, so bundles.
    assert any("-planes-" in a for a in d["policy_arns"]), d["policy_arns"]
    text = json.dumps(d["managed_policies"])
    for domain in DOMAINS[:12]:
        assert f"acme-datalake-prod/{domain}/curated/*" in text, domain
    assert "hr-payroll" not in text and "executive" not in text


def test_human_explain_shows_where_statements_went_and_the_headroom(provisioner, tmp_path):
    config = write_platform(tmp_path / "p.json", capacity_platform(3))
    r = provisioner.run("explain", "--config", config, "--user", "alice.smith", "--workspace", "ws-marketing")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "of 2048 characters" in out and "of 10, 6 left" in out, out
    assert "provisioner-plane-dp-marketing" in out and "of 6144 characters" in out, out
    assert "data plane dp-finance" in out and "-> provisioner-plane-dp-finance" in out, out
    assert "Bedrock" in out and "-> provisioner-platform" in out, out
    assert "narrow statement" in out and "-> inline" in out, out
    assert "managed session policy arn:aws:iam::123456789012:policy/provisioner/provisioner-platform" in out


def test_mixed_case_glue_database_is_refused_at_load_with_the_fix(provisioner, tmp_path):
    doc = capacity_platform(1)
    doc["data_planes"][0]["glue_databases"] = ["Marketing_Curated"]
    config = write_platform(tmp_path / "p.json", doc)
    r = provisioner.run("explain", "--json", "--config", config, "--user", "alice.smith")
    assert r.returncode == 2, r
    (line,) = r.stderr.strip().splitlines()
    assert "Marketing_Curated" in line and "lower case" in line and '"marketing_curated"' in line, line
