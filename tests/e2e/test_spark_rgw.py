"""Spark for real: PySpark 4.3's own spark-submit in local[2], started through
spark-submit-wrap, against radosgw with enforced session policies.

A Spark job (job flow) and a PySpark session inside a provisioned kernel (propagation)
each run once; every assertion about them is made on that one run, because a Spark JVM
costs ~10 s and ~450 MB. What a user would notice:

- the driver's conf and the executors' environment carry the scoped session's keys,
  never the launcher's;
- S3A (hadoop-aws at Spark's own Hadoop version, 3.5, on the AWS SDK v2) reads the
  user's data plane and gets 403 outside it, and so does boto3 running inside the
  executors;
- S3A keys and providers a user puts on the command line lose to the scoped credentials
  (the wrapper points S3A at the SDK v2 environment provider);
- inside a kernel, Spark gets the kernel's credentials (the wrapper propagates them and
  says so in its decision record) instead of minting new ones;
- this S3A accepts the SDK v2 container credentials provider and reads through it;
- a job started inside a kernel in endpoint mode gets the kernel's credentials endpoint
  (no keys), and keeps reading and writing its plane after its first credentials have
  expired: S3A fetched new ones from the endpoint by itself.

radosgw accepts only S3 actions in a session policy: the data planes have no Glue
databases and the Bedrock statement is off; its role ARNs carry no account.
"""

import json
import os
import shlex
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from harness.env import REPO_ROOT, clean_env
from harness.platform import platform_file
from kernel_support import read_records, run_cell
from spark_support import (
    PROBE,
    PySparkKernels,
    pyspark_home,
    result,
    spark_bin,
    spark_env,
    spark_home_overlay,
    submit_options,
    throwaway_ca,
)

sys.path.insert(0, str(REPO_ROOT / "tests" / "stand_ins"))
from container_credentials import ContainerCredentials  # noqa: E402

ENV_PROVIDER_V2 = "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
CONTAINER_PROVIDER = "software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider"
# What Hadoop logs when a provider list names an SDK v1 class it maps to SDK v2.
V1_REMAP_WARNING = "contains AWS v1 SDK entry"

# A Spark JVM starts in ~15 s on an idle machine and takes minutes when builds share its
# cores; a hang still fails the test, only later than pytest.ini's default.
SPARK_TIMEOUT = 600
pytestmark = pytest.mark.timeout(SPARK_TIMEOUT + 120)

DATA = "a,b\n1,2\n"
ROWS = ["1,2", "a,b"]
TABLE_ROWS = ["3,4", "c,d"]


@pytest.fixture
def spark_stack(rgw, tmp_path):
    """A bucket with two planes' data (alice has plane a), and a platform file on radosgw
    that logs decisions to a file. Returns (bucket, config path, decision log path)."""
    bucket = f"spark-{uuid.uuid4().hex[:8]}"
    rgw.create_bucket(bucket, {
        "plane-a/data.csv": DATA,
        "plane-a/table/part-0.csv": "c,d\n3,4\n",
        "plane-b/secret.csv": "salary\n1000000\n",
    })
    # The denials below are the session policy's doing: the launcher reads plane b.
    body = rgw.s3().get_object(Bucket=bucket, Key="plane-b/secret.csv")["Body"].read()
    assert body == b"salary\n1000000\n"
    log = tmp_path / "decisions.jsonl"
    config = platform_file(
        tmp_path,
        settings={"decision_log": str(log), "session_policy_bedrock": "false",
                  "session_policy_platform_folders": "", "syntasa_session_policy_duration": "3600"},
        aws={"sts_endpoint": rgw.endpoint, "session_policy_role_arn": rgw.role_arn,
             "account_id": None, "platform_bucket": None},
        service_accounts=[],
        workspaces=[{"id": "ws-open"}],
        runtime_templates=[{"id": "rt-etl"}],
        data_planes=[{"id": "dp-a", "s3": [f"s3://{bucket}/plane-a/"]},
                     {"id": "dp-b", "s3": [f"s3://{bucket}/plane-b/"]}],
        users=[{"id": "alice", "data_planes": ["dp-a"]}, {"id": "root", "system_admin": True}],
    )
    return bucket, config, log


def assert_scoped_spark(seen, key_id, launcher):
    """What a scoped Spark application must see, whichever way it was started."""
    assert key_id and key_id != launcher.access_key_id, seen
    assert seen["forbidden_seen"] == [], "the launcher's secret reached the application"
    # Driver conf: S3A reads exactly the scoped session's keys.
    assert seen["driver_key_id"] == key_id
    assert seen["conf_access_key"] == key_id
    assert seen["conf_provider"] == "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
    assert seen["conf_secret_as_driver"] and seen["conf_token_as_driver"], seen
    # Executor environment conf, and what the executors' Python workers really hold.
    env_conf = seen["conf_executor_env"]
    assert env_conf["AWS_ACCESS_KEY_ID"] == key_id
    assert env_conf["AWS_SECRET_ACCESS_KEY"] == env_conf["AWS_SESSION_TOKEN"] == "<set>"
    assert env_conf["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env_conf["AWS_CREDENTIAL_EXPIRATION"].endswith("Z")
    assert seen["conf_executor_secret_as_driver"] and seen["conf_executor_token_as_driver"]
    assert len(seen["executors"]) == 2
    for ex in seen["executors"]:
        assert ex["key_id"] == key_id, ex
        assert ex["secret_as_driver"] and ex["token_as_driver"], ex
        assert ex["expiration"] == env_conf["AWS_CREDENTIAL_EXPIRATION"]
        assert ex["metadata_disabled"] == "true"
        # boto3 inside an executor: the plane, and nothing beside it.
        assert ex["boto3_own"] == DATA, ex
        assert ex["boto3_other"] == "AccessDenied", ex
    # S3A: reads the plane (a file, directories), 403 outside it.
    assert seen["s3a_own_file"] == ROWS
    assert seen["s3a_own_dir"] == ROWS  # the plane's root: files only, not table/
    assert seen["s3a_own_subdir"] == TABLE_ROWS
    assert seen["s3a_other_file"] == "AccessDenied"
    assert seen["s3a_other_dir"] == "AccessDenied"


JOB = PROBE + """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("scoped-job").getOrCreate()
print("RESULT " + json.dumps(probe(spark, sys.argv[1], [sys.argv[2]])), flush=True)
spark.stop()
"""


def test_spark_job_runs_scoped_to_its_data_plane(rgw, spark_stack, spark_submit_wrap, tmp_path):
    bucket, config, log = spark_stack
    app = tmp_path / "job.py"
    app.write_text(JOB)
    env = spark_env(rgw, {
        **rgw.launcher.env(),
        "SYN_USER": "alice",
        "SYN_RUNTIME_TEMPLATE_ID": "rt-etl",
        "SYN_JOB_ID": "job-42",
        "SYN_WORKSPACE_ID": "ws-open",
        "SYN_PLATFORM_CONFIG": config,
    })
    r = spark_submit_wrap.run(*submit_options(rgw), app, bucket,
                              rgw.launcher.secret_access_key,
                              env=env, cwd=tmp_path, timeout=SPARK_TIMEOUT)
    seen = result(r.stdout)
    assert r.returncode == 0 and seen, f"exit {r.returncode}\n{r.stderr[-6000:]}"
    [record] = read_records(log)
    assert record["flow"] == "job"
    assert (record["user"], record["runtime_template"], record["job_id"]) == ("alice", "rt-etl", "job-42")
    assert record["tier"] == "session_policy"
    assert record["credentials"] == "assumed_role"
    assert record["role_arn"] == rgw.role_arn
    assert_scoped_spark(seen, seen["driver_key_id"], rgw.launcher)
    assert seen["conf_executor_env"]["AWS_CREDENTIAL_EXPIRATION"] == record["expiration"]


BYPASS_JOB = PROBE + """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("bypass-job").getOrCreate()
seen = probe(spark, sys.argv[1])
seen["bucket_provider"] = spark.sparkContext.getConf().get(
    "spark.hadoop.fs.s3a.bucket.%s.aws.credentials.provider" % sys.argv[1], None)

def _write(plane):
    # A whole Spark write: directory markers, part files, rename, _SUCCESS, cleanup.
    path = f"s3a://{sys.argv[1]}/{plane}/written/"
    try:
        spark.createDataFrame([("e,f",), ("5,6",)], ["value"]).coalesce(1) \
            .write.mode("overwrite").text(path)
    except Exception as e:
        return _denied_or_error(e)
    return _s3a(lambda: spark.read.text(path))

seen["s3a_own_write"] = _write("plane-a")
seen["s3a_other_write"] = _write("plane-b")
print("RESULT " + json.dumps(seen), flush=True)
spark.stop()
"""


def test_s3a_keys_on_the_command_line_lose_to_the_scoped_environment(
        rgw, spark_stack, spark_submit_wrap, tmp_path):
    """A user who puts keys that read everything (the launcher's) and a provider that
    uses them on the command line for the bucket still reads and writes only the plane: the
    wrapper cannot remove --conf, so it points the bucket's S3A provider at the SDK v2
    environment provider, which Hadoop 3.5 loads and which reads the scoped AWS_*."""
    bucket, config, log = spark_stack
    app = tmp_path / "bypass.py"
    app.write_text(BYPASS_JOB)
    env = spark_env(rgw, {
        **rgw.launcher.env(),
        "SYN_USER": "alice",
        "SYN_RUNTIME_TEMPLATE_ID": "rt-etl",
        "SYN_JOB_ID": "job-43",
        "SYN_WORKSPACE_ID": "ws-open",
        "SYN_PLATFORM_CONFIG": config,
    })
    prefix = f"spark.hadoop.fs.s3a.bucket.{bucket}."
    r = spark_submit_wrap.run(
        *submit_options(rgw),
        "--conf", f"{prefix}aws.credentials.provider=org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "--conf", f"{prefix}access.key={rgw.launcher.access_key_id}",
        "--conf", f"{prefix}secret.key={rgw.launcher.secret_access_key}",
        app, bucket, env=env, cwd=tmp_path, timeout=SPARK_TIMEOUT)
    seen = result(r.stdout)
    assert r.returncode == 0 and seen, f"exit {r.returncode}\n{r.stderr[-6000:]}"
    assert seen["bucket_provider"] == ENV_PROVIDER_V2
    # With the launcher's keys plane b would be readable: the scope held.
    assert seen["s3a_own_file"] == ROWS, seen
    assert seen["s3a_own_dir"] == ROWS
    assert seen["s3a_other_file"] == "AccessDenied", seen
    assert seen["s3a_other_dir"] == "AccessDenied"
    # Writes go through the same provider: into the plane, not beside it.
    assert seen["s3a_own_write"] == ["5,6", "e,f"], seen["s3a_own_write"]
    assert seen["s3a_other_write"] == "AccessDenied", seen["s3a_other_write"]
    for ex in seen["executors"]:
        assert ex["boto3_own"] == DATA and ex["boto3_other"] == "AccessDenied", ex
    # The wrapper names the provider as Hadoop 3.5 documents it: no remapping warning.
    assert V1_REMAP_WARNING not in r.stderr
    [record] = read_records(log)
    assert record["credentials"] == "assumed_role"
    bucket_warnings = [w for w in record["warnings"] if f"for bucket {bucket}" in w]
    assert len(bucket_warnings) == 3, record["warnings"]
    assert not any(rgw.launcher.secret_access_key in w for w in record["warnings"])


S3A_READS = PROBE + """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("container-credentials").getOrCreate()
bucket = sys.argv[1]
print("RESULT " + json.dumps({
    "provider": spark.sparkContext.getConf().get("spark.hadoop.fs.s3a.aws.credentials.provider"),
    "own": _s3a(lambda: spark.read.text(f"s3a://{bucket}/plane-a/data.csv")),
    "other": _s3a(lambda: spark.read.text(f"s3a://{bucket}/plane-b/secret.csv")),
}), flush=True)
spark.stop()
"""


def test_s3a_reads_through_the_sdk_v2_container_credentials_provider(rgw, spark_stack, tmp_path):
    """Hadoop 3.5's S3A takes the AWS SDK v2 ContainerCredentialsProvider as its only
    provider and reads with what a container-credentials endpoint on loopback serves
    (here a stand-in serving a radosgw session limited to plane a), with the token read
    from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE. Plain spark-submit, no wrapper: this is
    the stack the wrapper's endpoint delivery is built on."""
    bucket, _config, _log = spark_stack
    plane_a = rgw.assume_role(policy={
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [f"arn:aws:s3:::{bucket}/plane-a/*"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": [f"arn:aws:s3:::{bucket}"]},
        ],
    })
    token = uuid.uuid4().hex
    token_dir = tmp_path / "token"
    token_dir.mkdir(mode=0o700)
    token_file = token_dir / "token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, token.encode())  # no trailing newline
    os.close(fd)
    app = tmp_path / "reads.py"
    app.write_text(S3A_READS)
    expiration = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with ContainerCredentials(plane_a, token, expiration) as endpoint:
        env = clean_env(spark_env(rgw, {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token_file,
        }))
        opts = submit_options(rgw) + [
            "--conf", f"spark.hadoop.fs.s3a.aws.credentials.provider={CONTAINER_PROVIDER}"]
        r = subprocess.run([str(spark_bin() / "spark-submit"), *opts, str(app), bucket],
                           env=env, capture_output=True, text=True, timeout=SPARK_TIMEOUT, cwd=tmp_path)
        requests = list(endpoint.requests)
    seen = result(r.stdout)
    assert r.returncode == 0 and seen, f"exit {r.returncode}\n{r.stderr[-6000:]}"
    assert seen["provider"] == CONTAINER_PROVIDER
    assert seen["own"] == ROWS, seen
    assert seen["other"] == "AccessDenied", seen
    assert requests and all(q["authorized"] for q in requests), requests


CELL = PROBE + """
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("scoped-notebook").getOrCreate()
seen = probe(spark, %(bucket)r, [%(forbidden)r])
seen["kernel_key_id"] = os.environ.get("AWS_ACCESS_KEY_ID")
seen["kernel_kind"] = os.environ.get("SYN_KERNEL_KIND")
seen["marker"] = os.environ.get("SYN_PROVISIONED")
spark.stop()
print("RESULT " + json.dumps(seen), flush=True)
"""


def test_pyspark_in_a_kernel_gets_the_kernels_credentials(
        rgw, spark_stack, provisioner, spark_submit_wrap, tmp_path):
    bucket, config, log = spark_stack
    home, real = spark_home_overlay(tmp_path / "spark-home", spark_submit_wrap.path)
    kernels = PySparkKernels(provisioner, tmp_path / "jupyter", config)
    submit_args = shlex.join([*submit_options(rgw), "pyspark-shell"])
    env = spark_env(rgw, {
        **rgw.launcher.env(),
        "SYN_USER": "alice",
        "SYN_WORKSPACE_ID": "ws-open",
        "SYN_PLATFORM_CONFIG": config,
        "SPARK_HOME": home,
        "SPARK_SUBMIT_WRAP_REAL": real,
        "PYSPARK_SUBMIT_ARGS": submit_args,
    })
    # The kernelspec (pyspark kind) sets the executors' Python, not the test.
    env.pop("PYSPARK_PYTHON")
    env.pop("PYSPARK_DRIVER_PYTHON")
    stderr = tmp_path / "kernel.stderr"
    try:
        _km, kc = kernels.start(env, stderr_path=stderr)
        try:
            out = run_cell(kc, CELL % {"bucket": bucket,
                                        "forbidden": rgw.launcher.secret_access_key},
                           timeout=SPARK_TIMEOUT)
        finally:
            kc.stop_channels()
    finally:
        kernels.close()
    seen = result(out.stdout)
    assert seen and not out.error, (
        f"{out.error}\n{''.join(out.traceback)[-3000:]}\n{out.stderr[-3000:]}\n"
        f"kernel stderr:\n{stderr.read_text()[-6000:] if stderr.exists() else ''}")
    assert seen["kernel_kind"] == "pyspark"
    assert seen["marker"].startswith("tier=session_policy;")
    kernel_record, spark_record = read_records(log)
    # One identity was minted, for the kernel; the wrapper propagated it.
    assert (kernel_record["flow"], kernel_record["credentials"]) == ("notebook", "assumed_role")
    assert spark_record["credentials"] == "propagated"
    assert spark_record["tier"] == "session_policy"
    assert spark_record["user"] == "alice"
    assert any("propagated the credentials of a provisioned process" in w
               for w in spark_record["warnings"]), spark_record
    assert spark_record["expiration"] == kernel_record["expiration"]
    assert_scoped_spark(seen, seen["kernel_key_id"], rgw.launcher)


# radosgw sessions this short (rgw-start.sh allows 20 s) expire during the job. The AWS
# SDK v2 treats credentials as stale one minute before their Expiration and fetches again
# at the next request after that (its prefetch time, 15 minutes before, has passed too):
# with 75 s the first credentials serve about 15 s, then every request finds them stale
# or due and fetches; the job waits until they have expired for sure before its second
# round.
SHORT_SESSION = 75

REFRESH_JOB = PROBE + """
import sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("long-job").getOrCreate()
bucket, wait = sys.argv[1], float(sys.argv[2])
with open(sys.argv[3]) as f:  # the session token, to look for it (never in argv)
    token = f.read()
sc = spark.sparkContext
conf = dict(sc.getConf().getAll())

def write(plane, name):
    # A whole Spark write: directory markers, part files, rename, _SUCCESS, cleanup.
    path = f"s3a://{bucket}/{plane}/{name}/"
    try:
        spark.createDataFrame([("e,f",), ("5,6",)], ["value"]).coalesce(1) \\
            .write.mode("overwrite").text(path)
    except Exception as e:
        return _denied_or_error(e)
    return _s3a(lambda: spark.read.text(path))

def executor(_):
    # boto3 in an executor's Python worker, with the environment Spark gave it.
    import os, boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
    e = os.environ
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}))
    def get(key):
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        except ClientError as err:
            return err.response["Error"].get("Code") or "error"
    yield {"full_uri": e.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
           "token_file": e.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
           "keys": [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") if k in e],
           "own": get("plane-a/data.csv"), "other": get("plane-b/secret.csv")}

def round_(n):
    return {"start": time.time(),
            "own": _s3a(lambda: spark.read.text(f"s3a://{bucket}/plane-a/data.csv")),
            "other": _s3a(lambda: spark.read.text(f"s3a://{bucket}/plane-b/secret.csv")),
            "own_write": write("plane-a", f"written-{n}"),
            "other_write": write("plane-b", f"written-{n}"),
            "executors": sc.parallelize(range(2), 2).mapPartitions(executor).collect(),
            "end": time.time()}

first = round_(1)
time.sleep(wait)
second = round_(2)
with open("/proc/%d/cmdline" % os.getppid(), "rb") as f:
    jvm_cmdline = f.read()
print("RESULT " + json.dumps({
    "first": first, "second": second,
    "provider": conf.get("spark.hadoop.fs.s3a.aws.credentials.provider"),
    "conf_keys": sorted(k for k in conf if k.endswith((".access.key", ".secret.key", ".session.token"))),
    "conf_full_uri": conf.get("spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    "driver_keys": [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") if k in os.environ],
    "driver_full_uri": os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    "token_on_jvm_cmdline": token.encode() in jvm_cmdline,
    "token_in_conf": any(token in v for v in conf.values()),
}), flush=True)
spark.stop()
"""


def endpoint_token_file(directory):
    """A session token in a 0600 file (no trailing newline) in a 0700 directory, as the
    launcher writes it. Returns (token, path)."""
    token = uuid.uuid4().hex
    directory.mkdir(mode=0o700)
    path = directory / "session.token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, token.encode())
    os.close(fd)
    return token, path


def test_spark_job_in_an_endpoint_kernel_keeps_its_plane_after_its_credentials_expire(
        rgw, spark_stack, provisioner, spark_submit_wrap, tmp_path):
    """A job submitted from a kernel in endpoint mode (the marker, the endpoint and its
    token file; no keys) through the wrapper: S3A uses the SDK v2 container provider the
    wrapper names, and reads and writes the plane (and only the plane) before and after
    the credentials it fetched first have expired. The endpoint is a stand-in that mints
    every answer from radosgw STS with the product's own session policy for alice and a
    75 s lifetime; it counts the fetches."""
    bucket, config, log = spark_stack
    explained = provisioner.run("explain", "--config", config, "--user", "alice",
                                "--flow", "job", "--json")
    assert explained.returncode == 0, explained.stderr
    policy = json.loads(explained.stdout)["policy"]
    token, token_file = endpoint_token_file(tmp_path / "token")
    app = tmp_path / "long_job.py"
    app.write_text(REFRESH_JOB)
    minted = []

    def mint():
        keys, expiration = rgw.mint(policy=policy, duration=SHORT_SESSION, session_name="alice")
        minted.append(keys)
        return keys, expiration

    with ContainerCredentials(token=token, mint=mint) as endpoint:
        env = spark_env(rgw, {
            "SYN_PROVISIONED": "tier=session_policy;user=alice",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
            "SYN_PLATFORM_CONFIG": config,
        })
        r = spark_submit_wrap.run(*submit_options(rgw), app, bucket,
                                  str(SHORT_SESSION + 10), token_file,
                                  env=env, cwd=tmp_path, timeout=SPARK_TIMEOUT)
        served = list(endpoint.served)
        fetches = endpoint.fetches()
        unauthorized = [q for q in endpoint.requests if not q["authorized"]]
    seen = result(r.stdout)
    assert r.returncode == 0 and seen, f"exit {r.returncode}\n{r.stderr[-6000:]}"

    # The wrapper passed the endpoint on: the provider named, no keys anywhere.
    assert seen["provider"] == CONTAINER_PROVIDER
    assert seen["conf_keys"] == [] and seen["driver_keys"] == [], seen
    assert seen["driver_full_uri"] == seen["conf_full_uri"] == endpoint.url
    assert not seen["token_on_jvm_cmdline"] and not seen["token_in_conf"]
    [record] = read_records(log)
    assert record["credentials"] == "propagated" and record["user"] == "alice"
    assert any("propagated the credentials endpoint" in w for w in record["warnings"]), record

    # Both rounds: the plane is read and written, nothing beside it; boto3 in the
    # executors uses the same endpoint.
    for name in ("first", "second"):
        rnd = seen[name]
        assert rnd["own"] == ROWS, (name, rnd)
        assert rnd["own_write"] == ["5,6", "e,f"], (name, rnd["own_write"])
        assert rnd["other"] == "AccessDenied", (name, rnd)
        assert rnd["other_write"] == "AccessDenied", (name, rnd["other_write"])
        assert len(rnd["executors"]) == 2
        for ex in rnd["executors"]:
            assert ex["full_uri"] == endpoint.url and ex["token_file"] == str(token_file), ex
            assert ex["keys"] == [], ex
            assert (ex["own"], ex["other"]) == (DATA, "AccessDenied"), ex

    # The second round ran after the first credentials had expired, on credentials
    # fetched after that: the SDK fetched again by itself.
    assert unauthorized == [] and len(fetches) >= 2, fetches
    _, first_key, first_expiration = served[0]
    expired_at = datetime.strptime(first_expiration, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc).timestamp()
    assert seen["second"]["start"] > expired_at, (seen["second"]["start"], first_expiration)
    assert any(t > expired_at for t, _, _ in served), served
    assert len({k for _, k, _ in served}) >= 2
    # And they really had expired: radosgw refuses them now, not the later ones.
    [first_keys] = [k for k in minted if k.access_key_id == first_key]
    with pytest.raises(ClientError) as denied:
        rgw.s3(first_keys).get_object(Bucket=bucket, Key="plane-a/data.csv")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    fresh, _ = mint()
    body = rgw.s3(fresh).get_object(Bucket=bucket, Key="plane-a/data.csv")["Body"].read()
    assert body.decode() == DATA


CLUSTER_JOB = PROBE + """
import sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("cluster-job").getOrCreate()
bucket = sys.argv[1]
with open(sys.argv[2]) as f:  # the application token, to look for it (never in argv)
    app_token = f.read().strip().encode()
sc = spark.sparkContext

def write(plane):
    path = f"s3a://{bucket}/{plane}/from-executors/"
    try:
        spark.createDataFrame([("e,f",), ("5,6",)], ["value"]).repartition(2) \\
            .write.mode("overwrite").text(path)
    except Exception as e:
        return _denied_or_error(e)
    return _s3a(lambda: spark.read.text(path))

def executor(_):
    e = os.environ
    yield {"full_uri": e.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
           "has_token": bool(e.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")),
           "token_file": e.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
           "keys": [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") if k in e]}

def token_on_a_command_line():
    hits = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if app_token in f.read():
                    hits.append(pid)
        except OSError:
            pass
    return hits

seen = {
    "executors": sc.parallelize(range(2), 2).mapPartitions(executor).collect(),
    "driver_full_uri": os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    "own": _s3a(lambda: spark.read.text(f"s3a://{bucket}/plane-a/data.csv")),
    "other": _s3a(lambda: spark.read.text(f"s3a://{bucket}/plane-b/secret.csv")),
    "own_write": write("plane-a"),
    "other_write": write("plane-b"),
}
seen["token_on_a_command_line"] = token_on_a_command_line()
# Executors register as their JVMs come up: counted once the work is done (the driver's
# block manager is in the list too).
seen["executor_jvms"] = sc._jsc.sc().getExecutorMemoryStatus().size() - 1
print("RESULT " + json.dumps(seen), flush=True)
spark.stop()
"""


def test_executors_in_their_own_jvms_fetch_over_https_with_an_application_token(
        rgw, spark_stack, provisioner, spark_submit_wrap, tmp_path):
    """Spark's local-cluster mode (a master, two workers, each executor a JVM of its
    own, as on a cluster) from a kernel in endpoint mode with an HTTPS address for
    executors configured: the driver keeps the loopback endpoint and the session's
    token file; the executors get the HTTPS endpoint, the application token (through
    the private properties file only) and a truststore that trusts the endpoint's test
    CA, and their S3A reads and writes the plane, and nothing beside it, with what
    they fetch there."""
    bucket, config, log = spark_stack
    explained = provisioner.run("explain", "--config", config, "--user", "alice",
                                "--flow", "job", "--json")
    assert explained.returncode == 0, explained.stderr
    policy = json.loads(explained.stdout)["policy"]
    cert, key, truststore, password = throwaway_ca(tmp_path / "tls")
    session_token, token_file = endpoint_token_file(tmp_path / "token")
    app_token, app_token_file = endpoint_token_file(tmp_path / "app-token")
    app = tmp_path / "cluster_job.py"
    app.write_text(CLUSTER_JOB)

    def mint():
        return rgw.mint(policy=policy, duration=3600, session_name="alice")

    with ContainerCredentials(token=session_token, mint=mint) as local, \
            ContainerCredentials(token=app_token, mint=mint, tls=(cert, key)) as remote:
        env = spark_env(rgw, {
            "SYN_PROVISIONED": "tier=session_policy;user=alice",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": local.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
            "SYN_PLATFORM_CONFIG": config,
            "SYN_EXECUTOR_CREDENTIALS_URL": f"https://127.0.0.1:{remote.port}",
            "SYN_EXECUTOR_CREDENTIALS_TOKEN_FILE": str(app_token_file),
            "SYN_EXECUTOR_TRUSTSTORE": str(truststore),
            "SYN_EXECUTOR_TRUSTSTORE_PASSWORD": password,
            # Workers start executors from Spark's installation.
            "SPARK_HOME": str(pyspark_home()),
        })
        r = spark_submit_wrap.run(*submit_options(rgw, master="local-cluster[2,1,1024]"),
                                  app, bucket, app_token_file,
                                  env=env, cwd=tmp_path, timeout=SPARK_TIMEOUT)
        local_fetches, remote_fetches = local.fetches(), remote.fetches()
        refused = [q for q in local.requests + remote.requests if not q["authorized"]]
    seen = result(r.stdout)
    assert r.returncode == 0 and seen, f"exit {r.returncode}\n{r.stderr[-6000:]}"
    assert seen["executor_jvms"] == 2, seen
    assert seen["driver_full_uri"] == local.url
    for ex in seen["executors"]:
        assert ex["full_uri"] == remote.url and ex["has_token"], ex
        # The session's token file (inherited from the driver here) is shadowed.
        assert not ex["token_file"] and ex["keys"] == [], ex
    assert seen["token_on_a_command_line"] == [], seen
    assert seen["own"] == ROWS, seen
    assert seen["own_write"] == ["5,6", "e,f"], seen["own_write"]
    assert seen["other"] == "AccessDenied", seen
    assert seen["other_write"] == "AccessDenied", seen["other_write"]
    # The executors fetched over HTTPS with the application token; the driver over
    # loopback with the session's.
    assert remote_fetches and local_fetches, (remote_fetches, local_fetches)
    assert refused == [], refused
