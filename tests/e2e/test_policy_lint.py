"""Lints every shape of session policy the product generates with parliament (an offline
IAM policy linter), through the real CLI: `provisioner explain --json` prints the policy,
`parliament.analyze_policy_string` checks it, with the community auditors on.

A finding fails the test unless it is in ALLOWED below, and an allowed finding must
also match its own narrow condition (which statement, which actions). Each entry is an
intended property of the policy, documented here and in tests/POLICY_LINT.md:

RESOURCE_STAR (severity LOW, "Unnecessary use of Resource *")
    Only for the Bedrock statement `{"Action":"bedrock:InvokeModel*","Resource":"*"}`.
    The platform documents model invocation for Jupyter AI on `*`: the models a user may
    call are chosen by the platform (and by the role), not by the data plane, and model
    ARNs differ per region and per provider (foundation models, inference profiles), so
    no fixed ARN list is right everywhere. The action list is what keeps the statement
    narrow: InvokeModel and its streaming form only. Switch it off with
    `session_policy_bedrock = "false"`.

Not reported, although one might expect it (checked, see POLICY_LINT.md):
    RESOURCE_MISMATCH for the single S3 statement that lists object actions (GetObject,
    PutObject, DeleteObject, the multipart ones) and bucket actions (GetBucketLocation,
    ListBucketMultipartUploads) with both object ARNs and bucket ARNs. IAM applies each
    action only to the resource types it supports, so one statement grants each action
    exactly where it belongs; parliament reports a mismatch only for an action that
    matches none of the statement's resources, and it finds none here. Should it start
    to, the test fails and the change must be looked at, not allow-listed blindly.
"""

import json

import pytest
from parliament import analyze_policy_string

from harness import REPO_ROOT, write_platform


def _is_bedrock_statement(finding):
    actions = finding.detail if isinstance(finding.detail, list) else []
    return bool(actions) and all(str(a).startswith("bedrock:InvokeModel") for a in actions)


# issue code -> (why it is intended, condition the finding must meet)
ALLOWED = {
    "RESOURCE_STAR": (
        "Bedrock model invocation is granted on Resource * as the platform documents",
        _is_bedrock_statement,
    ),
}

ACCOUNT = "123456789012"
DEFAULT_FOLDERS = (
    "syn-workspace/{workspace},syn-app-logs,syn-cluster-config,syn-file-uploads/{user},"
    "syn-volumes,syn-spark-history,syn-cluster-logs"
)


def platform(data_planes, *, settings=None, aws=None, runtime_templates=None):
    """A platform whose user `u` holds every data plane given."""
    doc = {
        "settings": {
            "syntasa_session_policy_enabled": "true",
            "session_policy_bedrock": "true",
            "session_policy_platform_folders": DEFAULT_FOLDERS,
            **(settings or {}),
        },
        "aws": {
            "region": "us-east-1",
            "account_id": ACCOUNT,
            "session_policy_role_arn": f"arn:aws:iam::{ACCOUNT}:role/PlatformInfraRole",
            "platform_bucket": "acme-platform",
            "sts_endpoint": "http://127.0.0.1:9",
            **(aws or {}),
        },
        "workspaces": [{"id": "ws-open"}, {"id": "ws-2"}],
        "runtime_templates": runtime_templates or [{"id": "rt-default"}],
        "data_planes": data_planes,
        "users": [{"id": "u", "data_planes": [p["id"] for p in data_planes]}],
    }
    return doc


def planes(n, *, glue=True, bucket=lambda i: f"data-bucket-{i:02d}", prefix=lambda i: f"plane/{i:02d}/"):
    return [
        {
            "id": f"dp-{i:02d}",
            "s3": [f"s3://{bucket(i)}/{prefix(i)}"],
            **({"glue_databases": [f"db_{i:02d}"]} if glue else {}),
        }
        for i in range(n)
    ]


# (id, platform document, extra explain arguments)
SHAPES = [
    ("one-plane", platform(planes(1)), ["--workspace", "ws-open"]),
    ("one-plane-no-workspace", platform(planes(1)), []),
    (
        "multiple-buckets-and-prefixes",
        platform(
            [
                {"id": "dp-a", "s3": ["s3://acme-data/marketing/", "s3://acme-raw/marketing/landing/"],
                 "glue_databases": ["marketing"]},
                {"id": "dp-b", "s3": ["s3://acme-data/sales/", "s3://acme-data/finance/q1/"],
                 "glue_databases": ["sales"]},
                {"id": "dp-c", "s3": ["s3://acme-shared/"]},
            ],
            settings={"session_policy_platform_folders": "syn-file-uploads/{user}"},
        ),
        ["--workspace", "ws-2"],
    ),
    (
        "whole-bucket-locations",
        platform(
            [
                {"id": "dp-a", "s3": ["s3://whole-one/", "s3://whole-one/sub/dir/"]},
                {"id": "dp-b", "s3": ["s3://whole-two/", "s3://partial-three/only/this/"]},
            ]
        ),
        ["--workspace", "ws-open"],
    ),
    (
        "nested-and-sibling-prefixes",
        platform(
            [
                {"id": "dp-a", "s3": ["s3://nested-bkt/a/", "s3://nested-bkt/a/b/", "s3://nested-bkt/a/b/c/"]},
                {"id": "dp-b", "s3": ["s3://nested-bkt/ab/", "s3://nested-bkt/market/",
                                      "s3://nested-bkt/marketing/2024/01/"]},
            ]
        ),
        [],
    ),
    (
        "many-glue-databases",
        platform(
            [{"id": "dp-a", "s3": ["s3://glue-data/warehouse/"],
              "glue_databases": ["raw", "curated", "marts_finance", "marts_sales", "tmp_scratch"]}],
            settings={"session_policy_platform_folders": "syn-file-uploads/{user}"},
        ),
        [],
    ),
    (
        "glue-only",
        platform([{"id": "dp-a", "glue_databases": ["analytics"]}],
                 settings={"session_policy_platform_folders": ""}),
        [],
    ),
    (
        "folders-with-user-and-workspace",
        platform(
            planes(1),
            settings={"session_policy_platform_folders":
                      "ws/{workspace}/users/{user},uploads/{user},logs/{workspace},shared"},
        ),
        ["--workspace", "ws-2"],
    ),
    (
        "folders-in-a-data-bucket",
        platform([{"id": "dp-a", "s3": ["s3://acme-platform/data/x/", "s3://acme-platform/syn-volumes/"]}]),
        ["--workspace", "ws-open"],
    ),
    ("bedrock-off", platform(planes(2), settings={"session_policy_bedrock": "false"}), ["--workspace", "ws-open"]),
    (
        "bedrock-only",
        platform([], settings={"session_policy_platform_folders": ""}),
        [],
    ),
    (
        "platform-folders-only",
        platform([], settings={"session_policy_bedrock": "false"}),
        ["--workspace", "ws-open"],
    ),
    (
        "nothing-to-allow",
        platform([], settings={"session_policy_bedrock": "false", "session_policy_platform_folders": ""}),
        [],
    ),
    (
        "china-partition",
        platform(
            planes(1),
            aws={"region": "cn-north-1",
                 "session_policy_role_arn": f"arn:aws-cn:iam::{ACCOUNT}:role/PlatformInfraRole"},
        ),
        ["--workspace", "ws-open"],
    ),
    (
        "govcloud-partition",
        platform(
            planes(1),
            aws={"region": "us-gov-west-1",
                 "session_policy_role_arn": f"arn:aws-us-gov:iam::{ACCOUNT}:role/PlatformInfraRole"},
        ),
        ["--workspace", "ws-open"],
    ),
    (
        "job-flow",
        platform(planes(2)),
        ["--flow", "job", "--runtime-template", "rt-default", "--workspace", "ws-open"],
    ),
    (
        "scheduled-notebook-run",
        platform(planes(1)),
        ["--flow", "notebook-run", "--workspace", "ws-open"],
    ),
    (
        "long-names",
        platform(
            planes(
                2,
                bucket=lambda i: f"a-very-long-bucket-name-for-data-plane-number-{i:02d}",
                prefix=lambda i: f"department/team-{i}/project.with.dots/under_score/",
            ),
            settings={"session_policy_platform_folders": ""},
        ),
        [],
    ),
]


def lint(policy):
    """Parliament findings for a policy (a JSON object), community auditors included."""
    return analyze_policy_string(json.dumps(policy, indent=2), include_community_auditors=True).findings


def describe(findings):
    return "\n".join(f"  {f.issue}: {f.detail} at {f.location}" for f in findings)


def unexpected(findings):
    bad = []
    for f in findings:
        allowed = ALLOWED.get(f.issue)
        if allowed is None or not allowed[1](f):
            bad.append(f)
    return bad


def explain_policy(provisioner, tmp_path, name, doc, extra):
    config = write_platform(tmp_path / f"{name}.json", doc)
    r = provisioner.run("explain", "--json", "--config", config, "--user", "u", *extra)
    assert r.returncode == 0, f"{name}: explain failed ({r.returncode}): {r.stderr}"
    decision = json.loads(r.stdout)
    # A shape that does not produce a policy would lint nothing and prove nothing.
    assert decision["tier"] == "session_policy", f"{name}: {decision['tier']} {decision['reason']} {decision['skipped']}"
    assert isinstance(decision["policy"], dict), name
    return decision


@pytest.mark.parametrize("name,doc,extra", SHAPES, ids=[s[0] for s in SHAPES])
def test_generated_policy_passes_lint(provisioner, tmp_path, name, doc, extra):
    decision = explain_policy(provisioner, tmp_path, name, doc, extra)
    findings = lint(decision["policy"])
    bad = unexpected(findings)
    assert not bad, f"{name}: parliament findings not in the allow-list:\n{describe(bad)}\npolicy: {json.dumps(decision['policy'])}"


SWEEPS = {
    # The platform's defaults: seven platform folders, Bedrock, a Glue database per plane.
    "defaults": {},
    "glue-no-folders-no-bedrock": {"session_policy_platform_folders": "", "session_policy_bedrock": "false"},
    "s3-only": {"session_policy_platform_folders": "", "session_policy_bedrock": "false", "glue": False},
}


@pytest.mark.parametrize("profile", SWEEPS, ids=list(SWEEPS))
def test_every_data_plane_count_that_fits_passes_lint(provisioner, tmp_path, profile):
    # 1..N data planes (each its own bucket and prefix, with or without a Glue database)
    # until the policy no longer fits in 2,048 characters; every size that fits must lint
    # clean, and the first that does not must fall back as OVER_LIMIT.
    # The inline policy alone: managed session policies would scope every size.
    settings = {"session_policy_managed": "never", **SWEEPS[profile]}
    glue = settings.pop("glue", True)
    fitted = 0
    for n in range(1, 40):
        doc = platform(planes(n, glue=glue), settings=settings)
        config = write_platform(tmp_path / f"planes-{n}.json", doc)
        r = provisioner.run("explain", "--json", "--config", config, "--user", "u", "--workspace", "ws-open")
        assert r.returncode == 0, r.stderr
        decision = json.loads(r.stdout)
        if decision["tier"] != "session_policy":
            assert decision["reason"] == "OVER_LIMIT", decision
            break
        assert decision["policy_chars"] <= 2048
        bad = unexpected(lint(decision["policy"]))
        assert not bad, f"{profile}, {n} data planes:\n{describe(bad)}"
        fitted = n
    assert fitted >= 1, f"{profile}: not even one data plane fits in a session policy"
    assert fitted < 39, f"{profile}: the policy never went over the limit; the size check is not working"


@pytest.mark.parametrize("n", [1, 3, 9, 10, 40])
def test_managed_session_policies_pass_lint(provisioner, tmp_path, n):
    # The managed layout for realistic users: the inline policy and every managed policy
    # document (platform, one per plane, bundles of planes) lint clean.
    from capacity_support import capacity_platform

    config = write_platform(tmp_path / "capacity.json",
                            capacity_platform(n, settings={"session_policy_managed": "always"}))
    decision, r = provisioner.explain(config, "alice.smith", workspace="ws-marketing")
    assert r.returncode == 0, r.stderr
    assert decision["tier"] == "session_policy" and decision["policy_arns"], decision
    documents = {"inline": decision["policy"], **decision["managed_policies"]}
    for name, doc in documents.items():
        bad = unexpected(lint(doc))
        assert not bad, f"{n} planes, {name}:\n{describe(bad)}"


def test_examples_platform_policies_pass_lint(provisioner):
    config = REPO_ROOT / "examples" / "platform.json"
    for user, extra in (("alice", ["--workspace", "ws-open"]), ("carol", [])):
        decision, r = provisioner.explain(config, user, workspace=extra[1] if extra else None)
        assert decision["tier"] == "session_policy", (user, decision)
        bad = unexpected(lint(decision["policy"]))
        assert not bad, f"{user}:\n{describe(bad)}"


@pytest.mark.parametrize(
    "policy,issue",
    [
        # Object action on a bucket ARN only: grants nothing.
        ({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bkt"}]},
         "RESOURCE_MISMATCH"),
        # A misspelt action.
        ({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObjekt", "Resource": "arn:aws:s3:::bkt/*"}]},
         "UNKNOWN_ACTION"),
        # A condition key that ListBucket does not support.
        ({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::bkt",
             "Condition": {"StringLike": {"s3:prefixx": "a/*"}}}]},
         "UNKNOWN_CONDITION_FOR_ACTION"),
        # Resource * on something other than Bedrock is not covered by the allow-list.
        ({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]},
         "RESOURCE_STAR"),
    ],
    ids=["resource-mismatch", "unknown-action", "unknown-condition", "resource-star-not-bedrock"],
)
def test_the_lint_catches_real_mistakes(policy, issue):
    # The check above is only worth something if these fail it.
    bad = unexpected(lint(policy))
    assert issue in {f.issue for f in bad}, describe(lint(policy))
