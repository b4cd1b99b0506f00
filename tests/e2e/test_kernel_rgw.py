"""The product's promise, for real: a kernel started through the provisioner
kernelspec, for a user assigned one data plane, reads and lists under that plane's
prefix and gets AccessDenied reading, listing and writing under another plane's prefix
of the same bucket — from plain boto3 in a cell, the way an analyst would try.

radosgw enforces session policies; its role `nbrole` may do anything in S3, so every
denial here comes from the policy provisioner generated. radosgw accepts only S3
actions in a session policy, so these data planes have no Glue databases and the
Bedrock statement is off; its role ARNs have no account.
"""

import json
import uuid

import pytest

from harness.platform import platform_file
from kernel_support import ScopedKernels, read_records, run_cell

PROBE = """
import json, boto3
from botocore.config import Config
from botocore.exceptions import ClientError
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
def attempt(call):
    try:
        call()
        return "OK"
    except ClientError as e:
        return e.response["Error"].get("Code") or str(e.response["ResponseMetadata"]["HTTPStatusCode"])
B = "%(bucket)s"
print(json.dumps({
    "read_own": attempt(lambda: s3.get_object(Bucket=B, Key="plane-a/data.csv")["Body"].read()),
    "list_own": attempt(lambda: s3.list_objects_v2(Bucket=B, Prefix="plane-a/")),
    "write_own": attempt(lambda: s3.put_object(Bucket=B, Key="plane-a/written.csv", Body=b"x")),
    "read_other": attempt(lambda: s3.get_object(Bucket=B, Key="plane-b/secret.csv")["Body"].read()),
    "list_other": attempt(lambda: s3.list_objects_v2(Bucket=B, Prefix="plane-b/")),
    "list_bucket_root": attempt(lambda: s3.list_objects_v2(Bucket=B)),
    "write_other": attempt(lambda: s3.put_object(Bucket=B, Key="plane-b/planted.csv", Body=b"x")),
    "read_sibling_prefix": attempt(lambda: s3.get_object(Bucket=B, Key="plane-a-archive/old.csv")),
}))
"""


@pytest.fixture
def rgw_stack(rgw, tmp_path, provisioner):
    bucket = f"scoped-{uuid.uuid4().hex[:8]}"
    rgw.create_bucket(bucket, {
        "plane-a/data.csv": "a,b\n1,2\n",
        "plane-b/secret.csv": "salary\n1000000\n",
        "plane-a-archive/old.csv": "not in plane a\n",
    })
    log = tmp_path / "decisions.jsonl"
    config = platform_file(
        tmp_path,
        settings={"decision_log": str(log), "session_policy_bedrock": "false",
                  "session_policy_platform_folders": "", "syntasa_session_policy_duration": "3600"},
        aws={"sts_endpoint": rgw.endpoint, "session_policy_role_arn": rgw.role_arn,
             "account_id": None, "platform_bucket": None},
        service_accounts=[{"id": "sa-nb", "role_arn": rgw.role_arn, "duration_seconds": 3600}],
        workspaces=[{"id": "ws-open"}, {"id": "ws-sa", "service_account": "sa-nb"}],
        data_planes=[{"id": "dp-a", "s3": [f"s3://{bucket}/plane-a/"]},
                     {"id": "dp-b", "s3": [f"s3://{bucket}/plane-b/"]}],
        users=[{"id": "alice", "data_planes": ["dp-a"]}, {"id": "root", "system_admin": True}],
    )
    kernels = ScopedKernels(provisioner, tmp_path / "jupyter", config)

    def env(user, **extra):
        return {**rgw.launcher.env(), "AWS_ENDPOINT_URL": rgw.endpoint, "AWS_REGION": rgw.region,
                "AWS_DEFAULT_REGION": rgw.region, "SYN_USER": user, **extra}

    yield bucket, kernels, env, log
    kernels.close()


def probe(kernels, env, bucket):
    km, kc = kernels.start(env)
    try:
        result = run_cell(kc, PROBE % {"bucket": bucket})
        assert not result.error, result.error + "\n".join(result.traceback)
        return result.json()
    finally:
        kc.stop_channels()


def test_kernel_reaches_its_data_plane_and_nothing_else(rgw_stack):
    bucket, kernels, env, log = rgw_stack
    seen = probe(kernels, env("alice", SYN_WORKSPACE_ID="ws-open"), bucket)
    assert seen == {
        "read_own": "OK",
        "list_own": "OK",
        "write_own": "OK",
        "read_other": "AccessDenied",
        "list_other": "AccessDenied",
        "list_bucket_root": "AccessDenied",
        "write_other": "AccessDenied",
        "read_sibling_prefix": "AccessDenied",
    }
    [record] = read_records(log)
    assert record["tier"] == "session_policy"
    assert record["role_arn"] == "arn:aws:iam:::role/nbrole"


def test_service_account_and_admin_are_not_scoped_by_the_session_policy(rgw_stack):
    # Both reach plane b: a service account's own permissions govern (here nbrole's
    # s3:*), and a System Admin keeps the default (launcher) credentials.
    bucket, kernels, env, log = rgw_stack
    for user, extra, tier in (("alice", {"SYN_WORKSPACE_ID": "ws-sa"}, "workspace_sa"), ("root", {}, "default")):
        seen = probe(kernels, env(user, **extra), bucket)
        assert seen["read_other"] == "OK", (user, seen)
        assert read_records(log)[-1]["tier"] == tier
