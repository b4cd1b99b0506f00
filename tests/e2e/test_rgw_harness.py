"""The radosgw harness, and the product's central promise at the STS level: a session
assumed with a data-plane session policy reaches the user's prefix and nothing else of
the same bucket, even though the role itself may do anything in S3.

Everything the kernel and Spark tests build on is checked here: the cluster starts, the
launcher can assume nbrole, radosgw enforces session policies, and the denials look like
what an S3 client sees from AWS (403 AccessDenied).
"""

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from harness import platform_file
from harness.rgw import minified

PLANE_A = "plane-a/"
PLANE_B = "plane-b/"


def plane_a_policy(bucket):
    """A session policy for s3://bucket/plane-a/ only, as the platform writes one: object
    actions on the prefix, listing limited by s3:prefix, bucket location."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:GetBucketLocation"],
                "Resource": [f"arn:aws:s3:::{bucket}/{PLANE_A}*", f"arn:aws:s3:::{bucket}"],
            },
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": f"{PLANE_A}*"}},
            },
        ],
    }


def status(call):
    """Runs an S3 call; returns "OK" or the error code (e.g. "AccessDenied")."""
    try:
        call()
        return "OK"
    except ClientError as e:
        return e.response.get("Error", {}).get("Code") or str(
            e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        )


def keys_listed(s3, bucket, prefix):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


@pytest.fixture(scope="module")
def bucket(rgw):
    name = f"harness-{uuid.uuid4().hex[:8]}"
    rgw.create_bucket(
        name,
        {
            f"{PLANE_A}in.txt": "inside plane a",
            f"{PLANE_A}deep/nested.txt": "nested in plane a",
            f"{PLANE_B}out.txt": "plane b secret",
        },
    )
    return name


def test_launcher_owns_the_bucket_and_sees_both_planes(rgw, bucket):
    s3 = rgw.s3()
    assert keys_listed(s3, bucket, "") == [
        f"{PLANE_A}deep/nested.txt",
        f"{PLANE_A}in.txt",
        f"{PLANE_B}out.txt",
    ]


def test_session_without_policy_reaches_both_planes(rgw, bucket):
    # The control for the scoping test below: nbrole itself may read plane b, so a
    # denial there can only come from the session policy.
    s3 = rgw.s3(rgw.assume_role())
    assert s3.get_object(Bucket=bucket, Key=f"{PLANE_B}out.txt")["Body"].read() == b"plane b secret"
    assert keys_listed(s3, bucket, PLANE_B) == [f"{PLANE_B}out.txt"]


def test_session_policy_scopes_the_session_to_one_prefix(rgw, bucket):
    policy = plane_a_policy(bucket)
    assert " " not in minified(policy)
    s3 = rgw.s3(rgw.assume_role(policy, session_name="alice"))

    # Inside the prefix: read, list, write, delete.
    assert s3.get_object(Bucket=bucket, Key=f"{PLANE_A}in.txt")["Body"].read() == b"inside plane a"
    assert keys_listed(s3, bucket, PLANE_A) == [f"{PLANE_A}deep/nested.txt", f"{PLANE_A}in.txt"]
    assert status(lambda: s3.put_object(Bucket=bucket, Key=f"{PLANE_A}new.txt", Body=b"x")) == "OK"
    assert status(lambda: s3.delete_object(Bucket=bucket, Key=f"{PLANE_A}new.txt")) == "OK"
    assert status(lambda: s3.get_bucket_location(Bucket=bucket)) == "OK"

    # Same bucket, other prefix: nothing.
    assert status(lambda: s3.get_object(Bucket=bucket, Key=f"{PLANE_B}out.txt")) == "AccessDenied"
    assert status(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=PLANE_B)) == "AccessDenied"
    assert status(lambda: s3.put_object(Bucket=bucket, Key=f"{PLANE_B}x.txt", Body=b"x")) == "AccessDenied"
    # Listing the whole bucket would reveal plane b's keys.
    assert status(lambda: s3.list_objects_v2(Bucket=bucket)) == "AccessDenied"
    # The denied write really did not happen.
    assert keys_listed(rgw.s3(), bucket, PLANE_B) == [f"{PLANE_B}out.txt"]


def test_session_policy_generated_by_provisioner_is_enforced(rgw, bucket, provisioner, tmp_path):
    # The policy the product itself would send for a user whose only data plane is
    # s3://bucket/plane-a/ (no Glue, no Bedrock: radosgw refuses non-S3 actions).
    config = platform_file(
        tmp_path,
        settings={"session_policy_bedrock": "false", "session_policy_platform_folders": ""},
        aws={"session_policy_role_arn": rgw.role_arn, "sts_endpoint": rgw.endpoint},
        service_accounts=[],
        workspaces=[],
        runtime_templates=[],
        data_planes=[{"id": "dp-a", "s3": [f"s3://{bucket}/{PLANE_A}"]}],
        users=[{"id": "alice", "data_planes": ["dp-a"]}],
    )
    decision, proc = provisioner.explain(config, "alice")
    assert proc.returncode == 0, proc.stderr
    assert decision["tier"] == "session_policy"
    assert decision["role_arn"] == rgw.role_arn
    policy = decision["policy"]

    s3 = rgw.s3(rgw.assume_role(policy, session_name=decision["session_name"]))
    assert s3.get_object(Bucket=bucket, Key=f"{PLANE_A}deep/nested.txt")["Body"].read() == b"nested in plane a"
    assert keys_listed(s3, bucket, PLANE_A) == [f"{PLANE_A}deep/nested.txt", f"{PLANE_A}in.txt"]
    assert status(lambda: s3.put_object(Bucket=bucket, Key=f"{PLANE_A}w.txt", Body=b"w")) == "OK"
    mpu = s3.create_multipart_upload(Bucket=bucket, Key=f"{PLANE_A}mp.bin")["UploadId"]
    assert status(lambda: s3.abort_multipart_upload(Bucket=bucket, Key=f"{PLANE_A}mp.bin", UploadId=mpu)) == "OK"

    assert status(lambda: s3.get_object(Bucket=bucket, Key=f"{PLANE_B}out.txt")) == "AccessDenied"
    assert status(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=PLANE_B)) == "AccessDenied"
    assert status(lambda: s3.list_objects_v2(Bucket=bucket)) == "AccessDenied"
    assert status(lambda: s3.put_object(Bucket=bucket, Key=f"{PLANE_B}w.txt", Body=b"w")) == "AccessDenied"
    assert status(lambda: s3.create_multipart_upload(Bucket=bucket, Key=f"{PLANE_B}mp.bin")) == "AccessDenied"


def test_roles_made_by_the_harness_follow_their_trust_policy(rgw):
    # What the kernel tests use for service-account failures: a role the launcher is
    # not trusted by cannot be assumed; one it is trusted by can.
    suffix = uuid.uuid4().hex[:6]
    other = rgw.create_user(f"other-{suffix}", f"OTHER{suffix.upper()}KEY", "othersecret", caps="roles=*")
    untrusting = rgw.create_role(f"only-other-{suffix}", trusted=[other.arn])
    with pytest.raises(ClientError):
        rgw.assume_role(role_arn=untrusting)
    assert rgw.assume_role(role_arn=untrusting, keys=other).session_token


def test_session_duration_is_bounded_by_the_role(rgw):
    # nbrole keeps radosgw's (and AWS's) default MaxSessionDuration of one hour; a role
    # made with max_session_duration allows the platform's 12 hours.
    with pytest.raises(ClientError):
        rgw.assume_role(duration=43200)
    long_role = rgw.create_role(f"twelve-hours-{uuid.uuid4().hex[:6]}", max_session_duration=43200)
    assert rgw.assume_role(role_arn=long_role, duration=43200).session_token


def test_session_policy_over_2048_characters_is_refused(rgw, bucket):
    # STS's limit on inline session policies, which radosgw enforces like AWS.
    def padded(total):
        doc = plane_a_policy(bucket)
        resources = doc["Statement"][0]["Resource"]
        i = 0
        while len(minified(doc)) < total - 60:
            resources.append(f"arn:aws:s3:::{bucket}/{PLANE_A}pad/{i:04d}/*")
            i += 1
        # Top up to the exact size with one last realistic prefix.
        last = f"arn:aws:s3:::{bucket}/{PLANE_A}fill/"
        resources.append(last + "*")
        missing = total - len(minified(doc))
        resources[-1] = last + "x" * missing + "*"
        text = minified(doc)
        assert len(text) == total
        return text

    assert rgw.assume_role(json.loads(padded(2048))).session_token
    with pytest.raises(ClientError):
        rgw.assume_role(json.loads(padded(2049)))
