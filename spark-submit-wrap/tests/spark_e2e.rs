//! End to end with the real `spark-submit` of PySpark 4.x in `local[2]`: the scoped
//! credentials reach the driver's conf and the executors' environment through the
//! `/dev/fd/N` properties file, Spark's own precedence rules hold with the merged
//! file, and user conf that bypasses the scope is overridden by Spark's last-wins.
//!
//! Needs `SPARK_VENV_BIN`: the `bin` directory of a virtualenv with `pyspark`
//! installed (`python3 -m venv /tmp/sparkvenv && /tmp/sparkvenv/bin/pip install
//! pyspark==4.3.0`; Java 17 on PATH). Without it the tests are skipped with a note,
//! unless `PROVISIONER_E2E=1`, where a missing venv is a failure.
//!
//! With `SPARK_S3A_JARS` (hadoop-aws at Spark's Hadoop version and its dependencies,
//! comma-separated; scripts/test fetches them) the application also opens S3A file
//! systems with the conf the wrapper wrote, which makes Hadoop load every credential
//! provider class it names: the names must be ones this Hadoop accepts. Nothing is
//! sent: S3A points at a closed loopback port and makes no request when opened.
//! Without the jars that part is skipped with a note (`test_support::server_for_part`);
//! `PROVISIONER_E2E=1` requires them too.
//!
//! Only loopback: `SPARK_LOCAL_IP=127.0.0.1`, no UI, metadata service disabled.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

mod common;

use std::path::PathBuf;

use common::*;

const APP: &str = r#"
import json, os, sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
conf = dict(sc.getConf().getAll())

def probe(_):
    e = os.environ
    return {
        "AWS_ACCESS_KEY_ID": e.get("AWS_ACCESS_KEY_ID"),
        "has_secret": bool(e.get("AWS_SECRET_ACCESS_KEY")),
        "AWS_CREDENTIAL_EXPIRATION": e.get("AWS_CREDENTIAL_EXPIRATION"),
        "AWS_EC2_METADATA_DISABLED": e.get("AWS_EC2_METADATA_DISABLED"),
        "AWS_PROFILE": e.get("AWS_PROFILE"),
        "AWS_ROLE_ARN": e.get("AWS_ROLE_ARN"),
    }

executors = sc.parallelize(range(4), 2).map(probe).collect()

def s3a(uri):
    # Opening an S3A file system builds its credential provider list from the conf
    # (each class loaded and instantiated) and sends nothing.
    jvm = spark._jvm
    try:
        fs = jvm.org.apache.hadoop.fs.FileSystem.get(
            jvm.java.net.URI(uri), spark._jsc.hadoopConfiguration())
        return fs.toString()
    except Exception as e:
        return "ERROR " + str(e)[:2000]

# The JVM that runs this Python driver: its command line must not carry a secret.
with open("/proc/%d/cmdline" % os.getppid(), "rb") as f:
    jvm_cmdline = f.read()
secret = os.environ["EXPECT_NOT_ON_CMDLINE"].encode()
out = {
    "keys": sorted(k for k in conf),
    "access_key": conf.get("spark.hadoop.fs.s3a.access.key"),
    "provider": conf.get("spark.hadoop.fs.s3a.aws.credentials.provider"),
    "bucket_provider": conf.get("spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider"),
    "user_only": conf.get("spark.user.only"),
    "defaults_only": conf.get("spark.defaults.only"),
    "secret_on_jvm_cmdline": secret in jvm_cmdline,
    "jvm_has_properties_file": b"--properties-file" in jvm_cmdline,
    "executors": executors,
    "argv": sys.argv[1:],
    "s3a_base": s3a("s3a://base/") if os.environ.get("PROBE_S3A") else None,
    "s3a_raw": s3a("s3a://raw/") if os.environ.get("PROBE_S3A") else None,
}
print("RESULT " + json.dumps(out))
spark.stop()
"#;

fn venv_bin() -> Option<PathBuf> {
    test_support::server(
        "SPARK_VENV_BIN",
        "the bin directory of a virtualenv with pyspark==4.3.0",
    )
    .map(PathBuf::from)
}

/// The S3A jars on the class path and S3A conf when `SPARK_S3A_JARS` lists hadoop-aws and its dependencies,
/// plus `PROBE_S3A=1` for the application; nothing without it.
fn s3a_setup() -> (Vec<String>, Vec<(String, String)>) {
    let Some(jars) = test_support::server_for_part(
        "SPARK_S3A_JARS",
        "hadoop-aws at Spark's Hadoop version and its dependencies, comma-separated",
        "opening S3A",
    ) else {
        return (Vec::new(), Vec::new());
    };
    // On the class path where they lie: `--jars` would copy the 686 MB SDK bundle into
    // the application's temporary directory on every run.
    let classpath = jars.to_string_lossy().replace(',', ":");
    let args = [
        "--conf".to_string(),
        format!("spark.driver.extraClassPath={classpath}"),
        "--conf".into(),
        format!("spark.executor.extraClassPath={classpath}"),
        "--conf".into(),
        // A closed loopback port: opening the file system sends nothing anyway.
        "spark.hadoop.fs.s3a.endpoint=http://127.0.0.1:9".into(),
        "--conf".into(),
        "spark.hadoop.fs.s3a.endpoint.region=us-east-1".into(),
    ];
    (args.to_vec(), vec![("PROBE_S3A".into(), "1".into())])
}

/// Asserts that the S3A file system opened for a bucket uses `provider` (a class name
/// without package) and nothing else, when the application opened one.
fn assert_s3a_provider(v: &serde_json::Value, field: &str, provider: &str) {
    let Some(fs) = v[field].as_str() else {
        // Only a run without the jars leaves it out.
        assert!(
            std::env::var("SPARK_S3A_JARS")
                .unwrap_or_default()
                .is_empty(),
            "{field}: S3A was not opened although SPARK_S3A_JARS is set: {v}"
        );
        return;
    };
    assert!(!fs.starts_with("ERROR"), "{field}: {fs}");
    let providers = fs
        .split_once("credentials=")
        .map(|(_, c)| c)
        .unwrap_or_else(|| panic!("{field}: no credential providers in {fs}"));
    assert!(
        providers.contains("size=1:") && providers.contains(provider),
        "{field}: expected only {provider}: {providers}"
    );
}

/// A minimal environment for the real Spark: the venv first on `PATH`, loopback only,
/// no metadata service, `platform` as the platform file; no user or credentials.
fn spark_env(
    sb: &Sandbox,
    bin: &std::path::Path,
    platform: &std::path::Path,
) -> Vec<(String, String)> {
    vec![
        (
            "PATH".into(),
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        ),
        ("HOME".into(), sb.dir.path().display().to_string()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("SPARK_LOCAL_IP".into(), "127.0.0.1".into()),
        ("SYN_PLATFORM_CONFIG".into(), platform.display().to_string()),
    ]
}

struct SparkRun {
    result: serde_json::Value,
    run: Run,
}

fn run_spark(sb: &Sandbox, name: &str, extra_env: &[(&str, String)], args: &[&str]) -> SparkRun {
    let bin = venv_bin().unwrap();
    let app = sb.dir.path().join("app.py");
    std::fs::write(&app, APP).unwrap();
    let mut env: Vec<(String, String)> = sb
        .propagation_env()
        .into_iter()
        .filter(|(k, _)| k != "SPARK_HOME" && k != "PATH" && k != "SPARK_CONF_DIR")
        .collect();
    env.extend([
        (
            "PATH".to_string(),
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        ),
        ("SPARK_LOCAL_IP".into(), "127.0.0.1".into()),
        ("EXPECT_NOT_ON_CMDLINE".into(), SECRET.into()),
    ]);
    for (k, v) in extra_env {
        env.push((k.to_string(), v.clone()));
    }
    let (s3a_args, s3a_env) = s3a_setup();
    env.extend(s3a_env);
    let mut argv: Vec<std::ffi::OsString> = vec![
        "--master".into(),
        "local[2]".into(),
        "--conf".into(),
        "spark.ui.enabled=false".into(),
    ];
    argv.extend(s3a_args.into_iter().map(Into::into));
    argv.extend(args.iter().map(|a| a.into()));
    argv.push(app.clone().into_os_string());
    argv.push("--conf".into());
    argv.push("app-arg=1".into());
    let run = sb.run(name, &argv, &env);
    let stdout = run.stdout();
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "no RESULT from the app; exit {:?}; stderr:\n{}",
                run.code(),
                run.stderr()
            )
        });
    SparkRun {
        result: serde_json::from_str(line).unwrap(),
        run,
    }
}

#[test]
fn scoped_keys_reach_driver_conf_and_executor_environment() {
    if venv_bin().is_none() {
        return;
    }
    let sb = Sandbox::new();
    let r = run_spark(&sb, "e2e-basic", &[], &[]);
    assert_eq!(r.run.code(), Some(0), "{}", r.run.stderr());
    let v = &r.result;
    let keys: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for k in [
        "spark.hadoop.fs.s3a.access.key",
        "spark.hadoop.fs.s3a.secret.key",
        "spark.hadoop.fs.s3a.session.token",
        "spark.executorEnv.AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(
            keys.contains(&k),
            "{k} missing from the driver's conf: {keys:?}"
        );
    }
    assert_eq!(v["access_key"], KEYID);
    assert_eq!(
        v["provider"],
        "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
    );
    for e in v["executors"].as_array().unwrap() {
        assert_eq!(e["AWS_ACCESS_KEY_ID"], KEYID);
        assert_eq!(e["has_secret"], true);
        // Only spark.executorEnv carries this one (the parent environment does not).
        assert_eq!(e["AWS_CREDENTIAL_EXPIRATION"], "2099-01-01T00:00:00Z");
    }
    assert_s3a_provider(v, "s3a_base", "TemporaryAWSCredentialsProvider");
    assert_eq!(v["secret_on_jvm_cmdline"], false);
    assert_eq!(v["jvm_has_properties_file"], true);
    assert_eq!(v["argv"], serde_json::json!(["--conf", "app-arg=1"]));
}

#[test]
fn spark_4_defaults_rule_and_bypass_overrides_hold_with_real_spark() {
    if venv_bin().is_none() {
        return;
    }
    let sb = Sandbox::new();
    let conf_dir = sb.dir.path().join("sparkconf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("spark-defaults.conf"),
        "spark.defaults.only yes\nspark.executorEnv.AWS_ROLE_ARN arn:aws:iam::123456789012:role/Admin\n",
    )
    .unwrap();
    let user_file = sb.dir.path().join("job.properties");
    std::fs::write(
        &user_file,
        "spark.user.only=yes\nspark.executorEnv.AWS_PROFILE=admin\n",
    )
    .unwrap();
    let user_file = user_file.display().to_string();
    let r = run_spark(
        &sb,
        "e2e-precedence",
        &[("SPARK_CONF_DIR", conf_dir.display().to_string())],
        &[
            "--properties-file",
            &user_file,
            "--load-spark-defaults",
            "--conf",
            "spark.executorEnv.AWS_SECRET_ACCESS_KEY=user-secret",
            "--conf",
            "spark.hadoop.fs.s3a.bucket.raw.access.key=AKIAUSERKEYEXAMPLE",
        ],
    );
    assert_eq!(r.run.code(), Some(0), "{}", r.run.stderr());
    let v = &r.result;
    // The user's file (through the merged file) and, with --load-spark-defaults,
    // the defaults file read by Spark itself.
    assert_eq!(v["user_only"], "yes");
    assert_eq!(v["defaults_only"], "yes");
    // The per-bucket keys on the command line lose to the environment provider.
    assert_eq!(
        v["bucket_provider"],
        "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
    );
    // Hadoop loads it for the bucket; the other buckets keep the scoped keys.
    assert_s3a_provider(v, "s3a_raw", "EnvironmentVariableCredentialsProvider");
    assert_s3a_provider(v, "s3a_base", "TemporaryAWSCredentialsProvider");
    for e in v["executors"].as_array().unwrap() {
        // Removed from the user's file, shadowed over the defaults file.
        assert!(e["AWS_PROFILE"].is_null() || e["AWS_PROFILE"] == "", "{e}");
        assert!(
            e["AWS_ROLE_ARN"].is_null() || e["AWS_ROLE_ARN"] == "",
            "{e}"
        );
        // The user's secret on the command line was overridden with an empty value.
        assert_eq!(e["has_secret"], false, "{e}");
    }
    assert_eq!(v["secret_on_jvm_cmdline"], false);
}

#[test]
fn static_keys_service_account_reaches_driver_and_executors() {
    if venv_bin().is_none() {
        return;
    }
    let sb = Sandbox::new();
    let platform = sb.dir.path().join("platform.json");
    std::fs::write(
        &platform,
        r#"{"settings": {"syntasa_session_policy_enabled": "true"},
 "aws": {"region": "us-east-1", "sts_endpoint": "http://127.0.0.1:9",
         "session_policy_role_arn": "arn:aws:iam::123456789012:role/PlatformInfraRole",
         "platform_bucket": "acme-platform"},
 "service_accounts": [{"id": "sa-legacy", "access_key_id": {"env": "LEGACY_KEY_ID"},
                       "secret_access_key": {"env": "LEGACY_SECRET"}}],
 "runtime_templates": [{"id": "rt-legacy", "service_account": "sa-legacy"}],
 "users": [{"id": "alice"}]}"#,
    )
    .unwrap();
    let bin = venv_bin().unwrap();
    let app = sb.dir.path().join("app.py");
    std::fs::write(&app, APP).unwrap();
    let mut env = spark_env(&sb, &bin, &platform);
    let (s3a_args, s3a_env) = s3a_setup();
    env.extend(s3a_env);
    env.extend([
        ("SYN_USER".into(), "alice".into()),
        ("SYN_RUNTIME_TEMPLATE_ID".into(), "rt-legacy".into()),
        ("LEGACY_KEY_ID".into(), "AKIASTATICSERVICEACC".into()),
        (
            "LEGACY_SECRET".into(),
            "st4tic/Service+Account/Secret0123456789ab".into(),
        ),
        (
            "EXPECT_NOT_ON_CMDLINE".into(),
            "st4tic/Service+Account/Secret0123456789ab".into(),
        ),
    ]);
    let mut argv: Vec<std::ffi::OsString> = vec![
        "--master".into(),
        "local[2]".into(),
        "--conf".into(),
        "spark.ui.enabled=false".into(),
    ];
    argv.extend(s3a_args.into_iter().map(Into::into));
    argv.push(app.into_os_string());
    let run = sb.run("e2e-static", &argv, &env);
    let stdout = run.stdout();
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "no RESULT; exit {:?}; stderr:\n{}",
                run.code(),
                run.stderr()
            )
        });
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["access_key"], "AKIASTATICSERVICEACC");
    assert_eq!(
        v["provider"],
        "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    );
    assert_s3a_provider(&v, "s3a_base", "SimpleAWSCredentialsProvider");
    for e in v["executors"].as_array().unwrap() {
        assert_eq!(e["AWS_ACCESS_KEY_ID"], "AKIASTATICSERVICEACC");
        assert_eq!(e["has_secret"], true);
    }
    assert_eq!(v["secret_on_jvm_cmdline"], false);
}

#[test]
fn version_runs_without_a_user_or_platform_file() {
    let Some(bin) = venv_bin() else {
        return;
    };
    let sb = Sandbox::new();
    // Nothing to resolve with: no SYN_USER, no platform file.
    let env = spark_env(&sb, &bin, &sb.dir.path().join("none.json"));
    let run = sb.run("e2e-version", &["--version".into()], &env);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let out = format!("{}{}", run.stdout(), run.stderr());
    assert!(out.contains("version 4."), "{out}");
    assert!(!out.contains("spark-submit-wrap:"), "{out}");
}
