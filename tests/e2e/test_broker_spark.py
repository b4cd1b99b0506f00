"""Spark jobs through the real broker, as real Unix users, on radosgw, with S3A from
hadoop-aws 3.5.0 (AWS SDK v2) and PySpark 4.3 from the users' virtualenv.

`provisioner serve` runs as root with the loopback credentials endpoint, an HTTPS executor
endpoint (a certificate from a throw-away CA; the users' JVMs get a truststore with that
CA, as a site installs one on every node) and an STS that is radosgw behind
tests/stand_ins/fake_sts.py in relay mode: radosgw issues and enforces every credential,
and the relay rewrites each `Expiration` to LIFETIME seconds after the mint, so the
broker re-mints and the jobs' SDKs fetch again within one job.

Three Spark runs, every assertion about each made on that one run:

- a job submitted with spark-submit-wrap through the broker in `local[2]` gets no keys in
  its driver's environment, JVM or properties: S3A uses the container-credentials provider
  the wrapper names, reads and writes its plane (and not the other user's) before and after
  its first credentials expired;
- the same in `local-cluster[2,1,1024]` (each executor a JVM of its own, as on a cluster):
  the launch asks for the executor endpoint, the executors fetch over HTTPS with the
  application token the broker issued, which is in no command line, and the properties
  file holding it is private;
- inside a kernel launched through the broker in endpoint mode, spark-submit-wrap with
  `local-cluster` asks the broker for an application token for the kernel's session and
  its executors use it.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.net import free_port
from multiuser_support import BrokerWorld, UserWorld, cell_result
from spark_support import PROBE, s3a_jars, s3a_settings, throwaway_ca

FAKE_STS = Path(__file__).resolve().parents[1] / "stand_ins" / "fake_sts.py"
CONTAINER_PROVIDER = "software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider"
# The broker re-mints with half the lifetime left (scaled down from 20 minutes for short
# lifetimes): served credentials then keep more than the Java SDK's one-minute stale
# window, and the first ones expire within the job.
LIFETIME = 150
SPARK_TIMEOUT = 600
pytestmark = pytest.mark.timeout(SPARK_TIMEOUT + 300)
KEY_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

# Runs in the driver (PROBE supplies _s3a and _denied_or_error). argv: PARAMS_JSON.
# Secret values are never printed: key ids, expirations and comparisons only.
JOB = PROBE + r"""
import sys, time, urllib.request
from datetime import datetime, timezone
from pyspark.sql import SparkSession

p = json.loads(sys.argv[1])
bucket, own, other = p["bucket"], p["own_prefix"], p["other_prefix"]
spark = SparkSession.builder.appName("brokered-job").getOrCreate()
sc = spark.sparkContext
conf = dict(sc.getConf().getAll())

def served():
    # What the loopback endpoint serves this job now (the driver's own variables).
    with open(os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]) as f:
        token = f.read()
    req = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                                 headers={"Authorization": token})
    with urllib.request.urlopen(req, timeout=10) as r:
        c = json.load(r)
    exp = datetime.strptime(c["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return {"key_id": c["AccessKeyId"], "expiration": exp.timestamp(), "at": time.time()}

def write(plane, name):
    path = f"s3a://{bucket}/{plane}{name}/"
    try:
        spark.createDataFrame([("e,f",), ("5,6",)], ["value"]).repartition(2) \
            .write.mode("overwrite").text(path)
    except Exception as e:
        return _denied_or_error(e)
    return _s3a(lambda: spark.read.text(path))

def executor(_):
    e = os.environ
    token = e.get("AWS_CONTAINER_AUTHORIZATION_TOKEN", "").encode()
    hits = []
    if token:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if token in f.read():
                        hits.append(pid)
            except OSError:
                pass
    yield {"full_uri": e.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
           "has_token": bool(token),
           "token_on_a_command_line": hits,
           "token_file": e.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
           "metadata_disabled": e.get("AWS_EC2_METADATA_DISABLED"),
           "keys": [k for k in KEYS if k in e],
           "pid": os.getpid()}

def round_(n):
    return {"start": time.time(),
            "own": _s3a(lambda: spark.read.text(f"s3a://{bucket}/{own}data.csv")),
            "other": _s3a(lambda: spark.read.text(f"s3a://{bucket}/{other}data.csv")),
            "own_write": write(own, f"written-{n}"),
            "other_write": write(other, f"written-{n}"),
            "executors": sc.parallelize(range(2), 2).mapPartitions(executor).collect()}

KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
first_served = served()
first = round_(1)
second = None
if p.get("wait_for_expiry"):
    time.sleep(max(0, first_served["expiration"] + 3 - time.time()))
    second = round_(2)
with open(f"/proc/{os.getppid()}/environ", "rb") as f:
    jvm_env = [kv.split(b"=", 1)[0].decode() for kv in f.read().split(b"\0") if kv]
with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
    jvm_args = [a.decode() for a in f.read().split(b"\0")]
props = jvm_args[jvm_args.index("--properties-file") + 1] if "--properties-file" in jvm_args else None
props_stat = None
if props and not props.startswith("/dev/fd/"):  # a memfd is the JVM's alone
    st, dst = os.stat(props), os.stat(os.path.dirname(props))
    props_stat = {"mode": st.st_mode & 0o777, "uid": st.st_uid,
                  "dir_mode": dst.st_mode & 0o777, "dir_uid": dst.st_uid}
print("RESULT " + json.dumps({
    "uid": os.getuid(),
    "first_served": first_served, "first": first, "second": second,
    "last_served": served(),
    "provider": conf.get("spark.hadoop.fs.s3a.aws.credentials.provider"),
    "conf_keys": sorted(k for k in conf if k.endswith((".access.key", ".secret.key", ".session.token"))
                        or k.endswith(KEYS)),
    "driver_keys": [k for k in KEYS if k in os.environ],
    "jvm_keys": [k for k in KEYS if k in jvm_env],
    "driver_full_uri": os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    "conf_executor_uri": conf.get("spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    "executor_jvms": sc._jsc.sc().getExecutorMemoryStatus().size() - 1,
    "properties_file": props, "properties_stat": props_stat,
}), flush=True)
spark.stop()
"""

# A notebook cell: runs spark-submit-wrap from inside the kernel, as a user would with
# `!spark-submit ...`, and prints what the job printed and how the wrapper ended.
KERNEL_CELL = r"""
import json, os, subprocess
argv, extra = json.loads({argv!r}), json.loads({extra!r})
r = subprocess.run(argv, env={{**os.environ, **extra}}, capture_output=True, text=True, timeout={timeout})
job = next((json.loads(l[7:]) for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
record = next((json.loads(l) for l in r.stderr.splitlines() if l.startswith("{{")), None)
print("RESULT " + json.dumps({{"rc": r.returncode, "job": job, "record": record, "stderr": r.stderr[-6000:],
      "kernel_vars": sorted(k for k in os.environ if k.startswith(("AWS_", "SYN_")))}}))
"""


@pytest.fixture(scope="module")
def world(unix_users, provisioner, spark_submit_wrap):
    return UserWorld(unix_users, provisioner.path, spark_submit_wrap.path)


def _users_pyspark(venv):
    found = sorted(Path(venv).glob("lib/python3*/site-packages/pyspark"))
    assert found, f"no pyspark in the users' virtualenv {venv}"
    return found[-1]


def _spark_home(users, user, venv):
    """A SPARK_HOME for `user`: links to the virtualenv's pyspark and a `work` directory
    of the user's own, where `local-cluster` workers put their executors' files."""
    home = users.share_dir(f"spark-home-{user.name}")
    for entry in _users_pyspark(venv).iterdir():
        if not (home / entry.name).exists():
            (home / entry.name).symlink_to(entry)
    work = home / "work"
    work.mkdir(mode=0o700, exist_ok=True)
    os.chown(work, user.uid, user.gid)
    return home


def _share_jars(users):
    """S3A's jars where the users can read them: hard links into the shared directory
    (the SDK bundle is 686 MB), copies across file systems."""
    d = users.share_dir("s3a-jars")
    out = []
    for jar in s3a_jars():
        dst = d / Path(jar).name
        if not dst.exists():
            try:
                os.link(jar, dst)
            except OSError:
                users.share_file(jar, "s3a-jars", Path(jar).name)
        out.append(str(dst))
    return out


def _wait_port(port, what, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def stack(unix_users, rgw, world, tmp_path_factory):
    a, b = unix_users.add("sparky"), unix_users.add("sparkb")
    relay_port, endpoint_port, https_port = free_port(), free_port(), free_port()
    tls = tmp_path_factory.mktemp("broker-tls")
    cert, key, truststore, password = throwaway_ca(tls / "ca")
    # The site's truststore, readable by every user (it holds only the CA certificate).
    truststore = unix_users.share_file(truststore, "tls", "truststore.p12")
    relay = subprocess.Popen(
        [sys.executable, str(FAKE_STS), "--port", str(relay_port), "--relay",
         rgw.endpoint.removeprefix("http://"), "--lifetime", str(LIFETIME)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(relay_port, "the relay")
        bw = BrokerWorld(rgw, world, tmp_path_factory.mktemp("broker-spark"), {"a": a, "b": b},
                         broker_args=["--endpoint", f"127.0.0.1:{endpoint_port}",
                                      "--executor-endpoint", f"127.0.0.1:{https_port}",
                                      "--tls-cert", cert, "--tls-key", key],
                         aws={"sts_endpoint": f"http://127.0.0.1:{relay_port}"})
        world.kernelspec("brokered", ["--broker", bw.broker.socket])
        jars = ":".join(_share_jars(unix_users))
        homes = {u.uid: _spark_home(unix_users, u, world.venv) for u in (a, b)}
        try:
            yield {"bw": bw, "a": a, "b": b, "jars": jars, "https_port": https_port,
                   "spark_homes": homes,
                   "endpoint_port": endpoint_port, "truststore": truststore,
                   "password": password, "relay_port": relay_port}
        finally:
            bw.stop()
    finally:
        relay.terminate()
        relay.wait(timeout=10)


def _spark_args(s, master, params):
    bw = s["bw"]
    opts = ["--master", master,
            "--conf", f"spark.driver.extraClassPath={s['jars']}",
            "--conf", f"spark.executor.extraClassPath={s['jars']}",
            "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=2",
            "--conf", "spark.driver.memory=512m"]
    for k, v in s3a_settings(bw.rgw.endpoint, bw.rgw.region).items():
        opts += ["--conf", f"{k}={v}"]
    job = bw.world.users.write_shared(JOB, "lib-broker-spark", "brokered_job.py")
    return [*opts, str(job), json.dumps(params)]


def _job_env(s, user, extra=None):
    world = s["bw"].world
    return s["bw"].kernel_env({
        "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": str(world.python),
        "PYSPARK_DRIVER_PYTHON": str(world.python),
        # Workers start executors from Spark's installation.
        "SPARK_HOME": str(s["spark_homes"][user.uid]),
        "SYN_EXECUTOR_TRUSTSTORE": str(s["truststore"]),
        "SYN_EXECUTOR_TRUSTSTORE_PASSWORD": s["password"],
        **(extra or {})})


def _params(s, user):
    bw = s["bw"]
    own, other = ("a", "b") if user is s["a"] else ("b", "a")
    return {"bucket": bw.bucket, "own_prefix": f"plane-{own}/", "other_prefix": f"plane-{other}/"}


def _submit(s, user, master, params, extra_env=None):
    """spark-submit-wrap --wrap-broker as `user`; returns (exit code, stderr, RESULT)."""
    bw = s["bw"]
    argv = [bw.world.wrap, "--wrap-broker", bw.broker.socket, *_spark_args(s, master, params)]
    r = bw.world.users.run_as(user, argv, env=_job_env(s, user, extra_env), timeout=SPARK_TIMEOUT)
    result = next((json.loads(ln[7:]) for ln in r.stdout.splitlines() if ln.startswith("RESULT ")),
                  None)
    return r.returncode, r.stderr, result


def _record(stderr):
    """The broker's decision record the wrapper wrote to stderr."""
    # The wrapper writes it before exec: the first JSON line.
    lines = [ln for ln in stderr.splitlines() if ln.startswith("{")]
    return json.loads(lines[0]) if lines else None


def _plane_ok(rnd, where, own):
    assert rnd["own"] == sorted(["1,2", own]), (where, rnd)
    assert rnd["own_write"] == ["5,6", "e,f"], (where, rnd["own_write"])
    assert rnd["other"] == "AccessDenied", (where, rnd)
    assert rnd["other_write"] == "AccessDenied", (where, rnd["other_write"])


def test_a_brokered_local_job_has_no_keys_and_keeps_its_plane_after_its_credentials_expire(stack):
    s = stack
    bw, a = s["bw"], s["a"]
    rc, err, seen = _submit(s, a, "local[2]", {**_params(s, a), "wait_for_expiry": True})
    assert rc == 0 and seen, f"exit {rc}\n{err[-6000:]}\n{bw.broker.log()[-3000:]}"
    report = json.dumps({k: v for k, v in seen.items()}, indent=1)[:6000]

    # Endpoint delivery, decided by the broker for this user's own session.
    record = _record(err)
    assert record["delivery"] == "endpoint" and record["user"] == a.name, record
    assert record["caller"]["uid"] == a.uid and seen["uid"] == a.uid, record
    # No keys in the driver's environment, its JVM's, or the properties.
    assert seen["driver_keys"] == [] and seen["jvm_keys"] == [] and seen["conf_keys"] == [], report
    assert seen["provider"] == CONTAINER_PROVIDER, report
    assert seen["driver_full_uri"].startswith(f"http://127.0.0.1:{s['endpoint_port']}/v1/credentials/")
    # local[2]: executors share the driver's JVM and use the loopback endpoint.
    assert seen["conf_executor_uri"] == seen["driver_full_uri"], report
    assert seen["executor_jvms"] == 0, report
    for ex in seen["first"]["executors"]:
        assert ex["full_uri"] == seen["driver_full_uri"] and ex["keys"] == [], ex
        assert ex["metadata_disabled"] == "true", ex

    # Both rounds read and write the plane and nothing beside it; the second ran after
    # the first credentials' Expiration, on credentials the broker minted later.
    _plane_ok(seen["first"], "first", "a")
    _plane_ok(seen["second"], "second", "a")
    first, last = seen["first_served"], seen["last_served"]
    assert seen["second"]["start"] > first["expiration"], report
    assert last["key_id"] != first["key_id"] and last["expiration"] > first["expiration"], report
    assert last["expiration"] - time.time() > 0


def test_local_cluster_executors_fetch_over_https_with_the_brokers_application_token(stack):
    s = stack
    bw, a = s["bw"], s["a"]
    rc, err, seen = _submit(s, a, "local-cluster[2,1,1024]", _params(s, a),
                            extra_env={"SPARK_SUBMIT_WRAP_PROPERTIES": "file"})
    assert rc == 0 and seen, f"exit {rc}\n{err[-6000:]}\n{bw.broker.log()[-3000:]}"
    report = json.dumps(seen, indent=1)[:6000]
    assert _record(err)["delivery"] == "endpoint", err[-3000:]
    assert seen["executor_jvms"] == 2, report
    https = f"https://127.0.0.1:{s['https_port']}/v1/credentials/"
    # The driver keeps the loopback endpoint; the executors' JVMs get the HTTPS one with
    # the application token (its file variable shadowed), and no keys.
    assert seen["driver_full_uri"].startswith(f"http://127.0.0.1:{s['endpoint_port']}/")
    session = seen["driver_full_uri"].rsplit("/", 1)[1]
    assert seen["conf_executor_uri"] == https + session, report
    for ex in seen["first"]["executors"]:
        assert ex["full_uri"] == https + session and ex["has_token"], ex
        assert not ex["token_file"] and ex["keys"] == [], ex
        # The token is on no command line of this host (drivers, workers, executors).
        assert ex["token_on_a_command_line"] == [], ex
    assert seen["driver_keys"] == [] and seen["jvm_keys"] == [] and seen["conf_keys"] == []
    # S3A in the executors read and wrote the plane with what they fetched over HTTPS.
    _plane_ok(seen["first"], "executors over https", "a")
    # The properties file holding the token: 0600 in a 0700 directory, the user's own.
    st = seen["properties_stat"]
    assert (st["mode"], st["uid"], st["dir_mode"], st["dir_uid"]) == (0o600, a.uid, 0o700, a.uid), st
    # Nothing in the broker's log holds the base secret.
    assert bw.base.secret_access_key not in bw.broker.log()


def test_a_kernel_in_endpoint_mode_gets_an_application_token_for_local_cluster_executors(stack):
    s = stack
    bw, b = s["bw"], s["b"]
    world = bw.world
    argv = [str(world.wrap), *_spark_args(s, "local-cluster[2,1,1024]", _params(s, b))]
    extra = {k: v for k, v in _job_env(s, b).items()
             if k.startswith(("SPARK_", "PYSPARK_", "SYN_EXECUTOR_"))}
    cell = KERNEL_CELL.format(argv=json.dumps(argv), extra=json.dumps(extra), timeout=SPARK_TIMEOUT)
    answer = world.run_kernel(b, "brokered", [cell], env=bw.kernel_env(), timeout=SPARK_TIMEOUT)
    assert "start_error" not in answer and "driver_error" not in answer, (answer, bw.broker.log()[-3000:])
    out = cell_result(answer["cells"][0])
    seen = out["job"]
    assert out["rc"] == 0 and seen, (out["rc"], out["stderr"], bw.broker.log()[-3000:])
    report = json.dumps(seen, indent=1)[:6000]
    # The kernel holds the endpoint, its token file and the broker's socket; no keys.
    for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                 "SYN_BROKER_SOCKET", "SYN_PROVISIONED"):
        assert name in out["kernel_vars"], out["kernel_vars"]
    assert not set(KEY_VARS) & set(out["kernel_vars"]), out["kernel_vars"]
    # The wrapper propagated the kernel's endpoint and got an application token for the
    # kernel's session: the executors fetch that session over HTTPS.
    record = out["record"]
    assert record["credentials"] == "propagated" and record["delivery"] == "endpoint", record
    assert any("propagated the credentials endpoint" in w for w in record["warnings"]), record
    session = seen["driver_full_uri"].rsplit("/", 1)[1]
    https = f"https://127.0.0.1:{s['https_port']}/v1/credentials/{session}"
    assert seen["executor_jvms"] == 2, report
    for ex in seen["first"]["executors"]:
        assert ex["full_uri"] == https and ex["has_token"] and ex["keys"] == [], ex
        assert ex["token_on_a_command_line"] == [], ex
    _plane_ok(seen["first"], "kernel job", "b")
