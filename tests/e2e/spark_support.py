"""Running real Spark (PySpark 4.3 from the test virtualenv) against radosgw.

Spark comes from the virtualenv running the tests: `spark-submit` beside `sys.executable`,
the `pyspark` package's directory as SPARK_HOME. S3A is not part of PySpark: Spark users
add `org.apache.hadoop:hadoop-aws` at the Hadoop version their Spark ships (3.5.0 for
PySpark 4.3) with what it depends on, the AWS SDK v2 bundle above all, as
`--packages` would. scripts/test resolves exactly that with Maven and passes the jars in
SPARK_S3A_JARS (comma-separated paths). The jars go on the driver's and executors' class
path where they lie (`spark.driver.extraClassPath`, `spark.executor.extraClassPath`):
`--jars` would copy the 686 MB SDK bundle into every application's temporary directory.

Everything stays on loopback: SPARK_LOCAL_IP=127.0.0.1, no UI, the S3A endpoint and
AWS_ENDPOINT_URL point at radosgw, AWS_EC2_METADATA_DISABLED=true comes from clean_env.

PROBE is the code a job or a notebook cell runs: it reports what the driver's conf and the
executors' environment hold (key ids and comparisons, never a secret value) and what
S3A and boto3 inside executors can read.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_support import ScopedKernels

def spark_bin():
    """The test virtualenv's bin directory, which holds pyspark's `spark-submit`."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "spark-submit").is_file():
        pytest.fail(
            f"no spark-submit in {bin_dir}: run the tests with the virtualenv of "
            "tests/requirements.txt (scripts/test builds it)",
            pytrace=False,
        )
    return bin_dir


def pyspark_home():
    """The installed pyspark package: what SPARK_HOME is for a pip-installed Spark."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def hadoop_version():
    """The Hadoop version Spark ships, from its `hadoop-client-api` jar."""
    found = sorted((pyspark_home() / "jars").glob("hadoop-client-api-*.jar"))
    if len(found) != 1:
        pytest.fail(f"expected one hadoop-client-api jar in pyspark/jars, found {found}",
                    pytrace=False)
    return found[0].name[len("hadoop-client-api-"):-len(".jar")]


def s3a_jars():
    """hadoop-aws at Spark's own Hadoop version and its runtime dependencies (the AWS SDK
    v2 bundle, ...), from SPARK_S3A_JARS. A hadoop-aws of another Hadoop version than
    Spark's fails in ways that have nothing to do with credentials, so that is refused."""
    listed = os.environ.get("SPARK_S3A_JARS", "")
    jars = [j for j in listed.split(",") if j]
    if not jars:
        pytest.fail(
            "SPARK_S3A_JARS is not set: it lists hadoop-aws and its dependencies "
            "(comma-separated jar paths); scripts/test fetches them with Maven",
            pytrace=False,
        )
    missing = [j for j in jars if not Path(j).is_file()]
    if missing:
        pytest.fail(f"SPARK_S3A_JARS names missing files: {missing}", pytrace=False)
    names = [Path(j).name for j in jars]
    want = f"hadoop-aws-{hadoop_version()}.jar"
    if want not in names or not any(n.startswith("bundle-2.") for n in names):
        pytest.fail(f"SPARK_S3A_JARS must hold {want} and the AWS SDK v2 bundle: {names}",
                    pytrace=False)
    return jars


def s3a_settings(endpoint, region):
    """`spark.hadoop.fs.s3a.*` conf for radosgw: endpoint, its region (the SDK v2 needs
    one), path-style, plain HTTP, unsigned payloads, and no retries (a denial is final
    and the tests want it fast). None of these is a credential key, so the wrapper keeps
    them as given.

    Checksums stay at Hadoop 3.5's defaults: `fs.s3a.checksum.generation=false` keeps the
    SDK's flexible checksums at WHEN_REQUIRED; with it on, radosgw 16 rejects every PUT
    (XAmzContentSHA256Mismatch). Over plain HTTP the SDK v2 signs payloads in aws-chunked
    form, which radosgw 16 rejects for empty bodies (directory markers, `_SUCCESS`) with
    the same error; the SigV4 signer with an unsigned payload (what the SDK sends over
    HTTPS anyway) is accepted for every write S3A makes.

    Bulk deletes are off (`fs.s3a.multiobjectdelete.enable=false`, Hadoop's documented
    setting for stores without a usable DeleteObjects): radosgw 16 answers AccessDenied for
    every key of a DeleteObjects request made with STS session credentials carrying a
    session policy, whatever the policy grants (even `s3:*` on every resource), while
    DeleteObject on the same key succeeds. S3A's writes remove directory markers and
    `_temporary` with bulk deletes; one DeleteObject per key works under the product's
    session policy. AWS S3 authorizes each key of a DeleteObjects request by
    `s3:DeleteObject` and needs no such setting."""
    settings = {
        "endpoint": endpoint,
        "endpoint.region": region,
        "path.style.access": "true",
        "connection.ssl.enabled": "false",
        "s3.signing-algorithm": "AWS4UnsignedPayloadSignerType",
        "multiobjectdelete.enable": "false",
        "attempts.maximum": "1",
        "retry.limit": "1",
    }
    return {f"spark.hadoop.fs.s3a.{k}": v for k, v in settings.items()}


def s3a_classpath_options():
    """S3A's jars on the driver's and the executors' class path, read where they lie
    (`--jars` copies each into the application's temporary directory first: 686 MB of
    SDK bundle per run)."""
    classpath = ":".join(s3a_jars())
    return ["--conf", f"spark.driver.extraClassPath={classpath}",
            "--conf", f"spark.executor.extraClassPath={classpath}"]


def submit_options(rgw, master="local[2]"):
    """spark-submit options for a job (local[2] unless told) that can use S3A on
    radosgw."""
    opts = ["--master", master, *s3a_classpath_options(),
            "--conf", "spark.ui.enabled=false",
            "--conf", "spark.sql.shuffle.partitions=2"]
    for k, v in s3a_settings(rgw.endpoint, rgw.region).items():
        opts += ["--conf", f"{k}={v}"]
    return opts


def spark_env(rgw, extra=None):
    """What a Spark job needs besides credentials: the virtualenv on PATH (Spark's
    scripts run `python3`), Python workers on this interpreter, loopback only, and
    boto3 in executors pointed at radosgw."""
    env = {
        "PATH": f"{spark_bin()}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "AWS_ENDPOINT_URL": rgw.endpoint,
        "AWS_REGION": rgw.region,
        "AWS_DEFAULT_REGION": rgw.region,
    }
    env.update(extra or {})
    return env


def spark_home_overlay(directory, wrapper):
    """A SPARK_HOME whose bin/spark-submit is the wrapper: everything else links to the
    installed pyspark. PySpark starts its JVM by running $SPARK_HOME/bin/spark-submit
    directly, so this is how the wrapper gets in front of it. Returns (home, real
    spark-submit), the latter for SPARK_SUBMIT_WRAP_REAL."""
    real_home = pyspark_home()
    home = Path(directory)
    (home / "bin").mkdir(parents=True)
    for entry in real_home.iterdir():
        if entry.name != "bin":
            (home / entry.name).symlink_to(entry)
    for entry in (real_home / "bin").iterdir():
        if entry.name != "spark-submit":
            (home / "bin" / entry.name).symlink_to(entry)
    (home / "bin" / "spark-submit").symlink_to(wrapper)
    return home, real_home / "bin" / "spark-submit"


class PySparkKernels(ScopedKernels):
    """ScopedKernels with the `pyspark` kind of kernelspec (PYSPARK_PYTHON and
    SYN_KERNEL_KIND in its env) installed beside the Python one, and started instead."""

    def __init__(self, provisioner, jupyter_dir, config):
        super().__init__(provisioner, jupyter_dir, config)
        r = provisioner.run("kernelspec", "install", "--dir", self.dir, "--kind", "pyspark",
                            "--name", "pyspark-scoped", "--config", config,
                            "--python", sys.executable)
        assert r.returncode == 0, f"kernelspec install --kind pyspark failed: {r.stderr}"
        self.name = "pyspark-scoped"
        self.spec_file = self.dir / "kernels" / self.name / "kernel.json"


def result(stdout, tag="RESULT "):
    """The JSON object a probe printed on a line starting with `tag`, or None."""
    for line in stdout.splitlines():
        if line.startswith(tag):
            return json.loads(line[len(tag):])
    return None


# Defines probe(spark, bucket, forbidden) -> dict; runs in a job's driver or in a notebook
# cell. Secret values are only compared, never returned. `forbidden`: values that must not
# appear in the driver's conf or environment (the launcher's secret).
PROBE = r"""
import json, os

def _denied_or_error(exc):
    text = str(exc)
    if any(s in text for s in ("AccessDenied", "Status Code: 403", "403 Forbidden")):
        return "AccessDenied"
    return "ERROR " + text[:400]

def _s3a(read):
    try:
        return sorted(r[0] for r in read().collect())
    except Exception as e:  # Py4J wraps java.nio.file.AccessDeniedException
        return _denied_or_error(e)

def probe(spark, bucket, forbidden=()):
    sc = spark.sparkContext
    conf = dict(sc.getConf().getAll())
    drv = dict(os.environ)
    drv_secret = drv.get("AWS_SECRET_ACCESS_KEY")
    drv_token = drv.get("AWS_SESSION_TOKEN")
    same = lambda key, value: bool(value) and conf.get(key) == value
    shown = ("_KEY_ID", "REGION", "EXPIRATION", "DISABLED")

    def executor(_):
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
                return (err.response["Error"].get("Code")
                        or str(err.response["ResponseMetadata"]["HTTPStatusCode"]))
        yield {
            "key_id": e.get("AWS_ACCESS_KEY_ID"),
            "secret_as_driver": bool(drv_secret) and e.get("AWS_SECRET_ACCESS_KEY") == drv_secret,
            "token_as_driver": bool(drv_token) and e.get("AWS_SESSION_TOKEN") == drv_token,
            "expiration": e.get("AWS_CREDENTIAL_EXPIRATION"),
            "metadata_disabled": e.get("AWS_EC2_METADATA_DISABLED"),
            "boto3_own": get("plane-a/data.csv"),
            "boto3_other": get("plane-b/secret.csv"),
        }

    executors = sc.parallelize(range(2), 2).mapPartitions(executor).collect()
    everything = "\n".join(list(conf.values()) + list(drv.values()))
    return {
        "driver_key_id": drv.get("AWS_ACCESS_KEY_ID"),
        "conf_access_key": conf.get("spark.hadoop.fs.s3a.access.key"),
        "conf_provider": conf.get("spark.hadoop.fs.s3a.aws.credentials.provider"),
        "conf_secret_as_driver": same("spark.hadoop.fs.s3a.secret.key", drv_secret),
        "conf_token_as_driver": same("spark.hadoop.fs.s3a.session.token", drv_token),
        "conf_executor_env": {
            k[len("spark.executorEnv."):]: v if k.endswith(shown) else "<set>"
            for k, v in conf.items() if k.startswith("spark.executorEnv.AWS_")
        },
        "conf_executor_secret_as_driver": same("spark.executorEnv.AWS_SECRET_ACCESS_KEY", drv_secret),
        "conf_executor_token_as_driver": same("spark.executorEnv.AWS_SESSION_TOKEN", drv_token),
        "forbidden_seen": [i for i, v in enumerate(forbidden) if v in everything],
        "executors": executors,
        "s3a_own_file": _s3a(lambda: spark.read.text(f"s3a://{bucket}/plane-a/data.csv")),
        "s3a_own_dir": _s3a(lambda: spark.read.text(f"s3a://{bucket}/plane-a/")),
        "s3a_own_subdir": _s3a(lambda: spark.read.text(f"s3a://{bucket}/plane-a/table/")),
        "s3a_other_file": _s3a(lambda: spark.read.text(f"s3a://{bucket}/plane-b/secret.csv")),
        "s3a_other_dir": _s3a(lambda: spark.read.text(f"s3a://{bucket}/plane-b/")),
    }
"""


def throwaway_ca(directory):
    """A throw-away CA and a certificate for 127.0.0.1 it signed (openssl), and a Java
    PKCS12 truststore holding the CA (keytool). Returns (certificate, key, truststore,
    truststore password). A deployment's truststore also holds the CAs its other
    services need: a JVM given one trusts nothing else."""
    d = Path(directory)
    d.mkdir(mode=0o700)

    def run(*argv):
        subprocess.run(argv, cwd=d, check=True, capture_output=True, timeout=120)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=provisioner test CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", "server.ext", "-out", "server.pem")
    password = "changeit"
    run("keytool", "-importcert", "-noprompt", "-alias", "provisioner-test-ca",
        "-file", "ca.pem", "-keystore", "truststore.p12", "-storetype", "PKCS12",
        "-storepass", password)
    return d / "server.pem", d / "server.key", d / "truststore.p12", password
