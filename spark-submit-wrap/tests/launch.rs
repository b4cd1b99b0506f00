//! The wrapper's launch behaviour, through the built binary and a recording stand-in
//! `spark-submit`: tiers, refusals, exit codes, the dry run, the real-binary lookup and
//! loop guard, and the named-file fall-back with its cleanup.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

mod common;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const STATIC_KEY_ID: &str = "AKIASTATICSERVICEACC";
const STATIC_SECRET: &str = "st4tic/Service+Account/Secret0123456789ab";

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

/// A platform file: session policy on, a static-keys service account on `rt-legacy`,
/// `root` a System Admin (default tier through ADMIN_BYPASS, no STS involved).
fn platform(sb: &Sandbox) -> String {
    let path = sb.dir.path().join("platform.json");
    std::fs::write(
        &path,
        r#"{
  "settings": {"syntasa_session_policy_enabled": "true", "decision_log": "stderr"},
  "aws": {"region": "us-east-1", "account_id": "123456789012",
          "session_policy_role_arn": "arn:aws:iam::123456789012:role/PlatformInfraRole",
          "platform_bucket": "acme-platform", "sts_endpoint": "http://127.0.0.1:9"},
  "service_accounts": [
    {"id": "sa-legacy", "access_key_id": {"env": "LEGACY_KEY_ID"},
     "secret_access_key": {"env": "LEGACY_SECRET"}}
  ],
  "workspaces": [{"id": "ws-open"}],
  "runtime_templates": [{"id": "rt-default"}, {"id": "rt-legacy", "service_account": "sa-legacy"}],
  "data_planes": [{"id": "dp-marketing", "s3": ["s3://acme-data/marketing/"]}],
  "users": [{"id": "alice", "data_planes": ["dp-marketing"]}, {"id": "root", "system_admin": true}]
}"#,
    )
    .unwrap();
    path.display().to_string()
}

fn resolve_env(sb: &Sandbox, user: &str, rt: &str) -> Vec<(String, String)> {
    let mut e = sb.base_env();
    e.retain(|(k, _)| k != "SYN_PLATFORM_CONFIG");
    e.extend([
        ("SYN_PLATFORM_CONFIG".to_string(), platform(sb)),
        ("SYN_USER".into(), user.into()),
        ("SYN_RUNTIME_TEMPLATE_ID".into(), rt.into()),
        ("SYN_JOB_ID".into(), "job-42".into()),
        ("SYN_WORKSPACE_ID".into(), "ws-open".into()),
        ("LEGACY_KEY_ID".into(), STATIC_KEY_ID.into()),
        ("LEGACY_SECRET".into(), STATIC_SECRET.into()),
    ]);
    e
}

#[test]
fn default_tier_runs_the_users_command_line_untouched() {
    let sb = Sandbox::new();
    let user = args(&[
        "--master",
        "yarn",
        "--conf",
        "spark.executorEnv.AWS_PROFILE=ops",
        "job.py",
        "x",
    ]);
    let run = sb.run("default", &user, &resolve_env(&sb, "root", "rt-default"));
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(
        run.argv(),
        user,
        "default credentials: nothing injected or neutralised"
    );
    let rec = run.record_json();
    assert_eq!(rec["tier"], "default");
    assert_eq!(rec["reason"], "ADMIN_BYPASS");
    assert_eq!(rec["flow"], "job");
    assert_eq!(rec["job_id"], "job-42");
    // The workspace is recorded, and the job flow says it was ignored.
    assert_eq!(rec["workspace"], "ws-open");
    assert!(
        rec["skipped"].to_string().contains("IGNORED_IN_JOB_FLOW"),
        "{rec}"
    );
}

#[test]
fn default_tier_leaves_the_users_properties_file_to_spark() {
    // Nothing is injected, so the wrapper neither reads nor replaces the file; Spark
    // reports a bad path itself.
    let sb = Sandbox::new();
    let user = args(&["--properties-file", "/nonexistent/job.properties", "job.py"]);
    let run = sb.run(
        "default-props",
        &user,
        &resolve_env(&sb, "root", "rt-default"),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.argv(), user);
}

#[test]
fn unreadable_properties_file_is_a_configuration_error_when_merging() {
    let sb = Sandbox::new();
    let run = sb.run(
        "bad-props",
        &args(&["--properties-file", "/nonexistent/job.properties", "job.py"]),
        &sb.propagation_env(),
    );
    assert_eq!(run.code(), Some(2));
    assert!(!run.ran());
    assert!(
        run.stderr().contains("/nonexistent/job.properties"),
        "{}",
        run.stderr()
    );
}

#[test]
fn unknown_runtime_template_is_refused_before_exec() {
    let sb = Sandbox::new();
    let run = sb.run(
        "refused",
        &args(&["job.py"]),
        &resolve_env(&sb, "alice", "rt-nope"),
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(!run.ran(), "a refused job must not start");
    assert!(run.stderr().contains("rt-nope"), "{}", run.stderr());
    assert_eq!(
        run.record_json()["refused"]["code"],
        "UNKNOWN_RUNTIME_TEMPLATE"
    );
}

#[test]
fn missing_user_is_a_configuration_error() {
    let sb = Sandbox::new();
    let mut env = resolve_env(&sb, "alice", "rt-default");
    env.retain(|(k, _)| k != "SYN_USER");
    // `--version` with other options is a submission like any other.
    for (i, line) in [&["job.py"][..], &["--version", "--master", "yarn"]]
        .into_iter()
        .enumerate()
    {
        let run = sb.run(&format!("nouser{i}"), &args(line), &env);
        assert_eq!(run.code(), Some(2), "{line:?}: {}", run.stderr());
        assert!(!run.ran());
        assert!(run.stderr().contains("SYN_USER"), "{}", run.stderr());
    }
}

#[test]
fn static_keys_service_account_reaches_the_job_with_the_simple_provider() {
    let sb = Sandbox::new();
    let run = sb.run(
        "static",
        &args(&["--master", "yarn", "--deploy-mode", "cluster", "job.py"]),
        &resolve_env(&sb, "alice", "rt-legacy"),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let argv: Vec<String> = run
        .argv()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(!argv.iter().any(|a| a.contains(STATIC_SECRET)));
    assert!(!contains_bytes(
        &run.cmdline_bytes(),
        STATIC_SECRET.as_bytes()
    ));
    assert!(!run.stderr().contains(STATIC_SECRET));
    let (_, content, _) = run.props_files().pop().unwrap();
    let conf = parse_properties(&content.unwrap());
    assert_eq!(
        conf["spark.hadoop.fs.s3a.aws.credentials.provider"],
        "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    );
    assert_eq!(conf["spark.hadoop.fs.s3a.access.key"], STATIC_KEY_ID);
    assert_eq!(conf["spark.hadoop.fs.s3a.secret.key"], STATIC_SECRET);
    assert!(!conf.contains_key("spark.hadoop.fs.s3a.session.token"));
    assert_eq!(
        conf["spark.yarn.appMasterEnv.AWS_SECRET_ACCESS_KEY"],
        STATIC_SECRET
    );
    assert!(!conf.contains_key("spark.executorEnv.AWS_SESSION_TOKEN"));
    let rec = run.record_json();
    assert_eq!(rec["tier"], "runtime_template_sa");
    assert_eq!(rec["credentials"], "static_keys");
    // Client-side process environment (provisioner_core::child_env).
    let env = run.environ();
    assert_eq!(
        env.get("AWS_ACCESS_KEY_ID").map(String::as_str),
        Some(STATIC_KEY_ID)
    );
    assert!(!env.contains_key("AWS_SESSION_TOKEN"));
}

#[test]
fn decided_identity_without_credentials_never_starts_with_ambient_ones() {
    // Whatever the credential step returns, a job whose decision needs credentials
    // either gets them or does not start. With working static keys it starts with
    // them; otherwise it is refused with the credentials exit code.
    let sb = Sandbox::new();
    let mut env = resolve_env(&sb, "alice", "rt-legacy");
    env.retain(|(k, _)| k != "LEGACY_KEY_ID" && k != "LEGACY_SECRET");
    let run = sb.run("nocreds", &args(&["job.py"]), &env);
    assert!(
        !run.ran(),
        "started without the decided credentials: {}",
        run.stderr()
    );
    assert_ne!(run.code(), Some(0));
}

#[test]
fn exit_status_and_pid_are_sparks() {
    let sb = Sandbox::new();
    let mut env = sb.propagation_env();
    env.push(("STANDIN_EXIT".into(), "7".into()));
    let run = sb.run("exit7", &args(&["job.py"]), &env);
    assert_eq!(run.code(), Some(7));
    assert_eq!(run.standin_pid(), Some(run.pid), "exec keeps the PID");
    assert_eq!(
        run.environ()
            .get("SPARK_SUBMIT_WRAP_DEPTH")
            .map(String::as_str),
        Some("1")
    );
}

#[test]
fn propagation_refuses_a_marker_without_credentials() {
    let sb = Sandbox::new();
    let mut env = sb.propagation_env();
    env.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
    let run = sb.run("nokeys", &args(&["job.py"]), &env);
    assert_eq!(run.code(), Some(4), "{}", run.stderr());
    assert!(!run.ran());
    assert_eq!(
        run.record_json()["refused"]["code"],
        "CREDENTIALS_UNAVAILABLE"
    );
}

#[test]
fn malformed_marker_is_a_configuration_error() {
    let sb = Sandbox::new();
    let mut env = sb.propagation_env();
    env.retain(|(k, _)| k != "SYN_PROVISIONED");
    env.push(("SYN_PROVISIONED".into(), "tier=everything".into()));
    let run = sb.run("badmarker", &args(&["job.py"]), &env);
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr().contains("SYN_PROVISIONED"), "{}", run.stderr());
}

#[test]
fn propagated_default_tier_injects_nothing() {
    let sb = Sandbox::new();
    let mut env = sb.base_env();
    env.push(("SYN_PROVISIONED".into(), "tier=default;user=root".into()));
    let user = args(&["--master", "local[2]", "job.py"]);
    let run = sb.run("propdefault", &user, &env);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.argv(), user);
}

#[test]
fn wrap_explain_prints_redacted_decision_argv_and_conf_without_exec() {
    let sb = Sandbox::new();
    let user = args(&[
        "--wrap-explain",
        "--master",
        "yarn",
        "--deploy-mode",
        "cluster",
        "--conf",
        "spark.hadoop.fs.s3a.bucket.raw.secret.key=user-secret-on-cli",
        "job.py",
        "--flag",
    ]);
    let run = sb.run("explain", &user, &sb.propagation_env());
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(!run.ran(), "explain must not exec");
    let out = run.stdout();
    for secret in [SECRET, TOKEN, "user-secret-on-cli"] {
        assert!(!out.contains(secret), "secret in explain output: {out}");
    }
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["mode"], "propagate");
    assert_eq!(v["deploy"], "yarn cluster");
    assert_eq!(v["decision"]["tier"], "session_policy");
    let argv: Vec<&str> = v["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        argv,
        vec![
            "--master",
            "yarn",
            "--deploy-mode",
            "cluster",
            "--conf",
            "spark.hadoop.fs.s3a.bucket.raw.secret.key=<redacted>",
            "--properties-file",
            "/dev/fd/N",
            "--conf",
            "spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider=software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",
            "job.py",
            "--flag"
        ]
    );
    assert_eq!(v["conf"]["spark.hadoop.fs.s3a.secret.key"], "<redacted>");
    assert_eq!(
        v["conf"]["spark.yarn.appMasterEnv.AWS_SESSION_TOKEN"],
        "<redacted>"
    );
    assert_eq!(v["conf"]["spark.executorEnv.AWS_ACCESS_KEY_ID"], KEYID);
    assert_eq!(v["env"]["AWS_SECRET_ACCESS_KEY"], "<redacted>");
    assert!(
        v["spark_submit"]
            .as_str()
            .unwrap()
            .ends_with("spark/bin/spark-submit")
    );
}

#[test]
fn wrap_explain_in_resolve_mode_makes_no_sts_call_and_shows_the_policy() {
    let sb = Sandbox::new();
    let run = sb.run(
        "explain-resolve",
        &args(&["--wrap-explain", "job.py"]),
        &resolve_env(&sb, "alice", "rt-default"),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let v: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(v["decision"]["tier"], "session_policy");
    assert!(v["decision"]["policy"].is_object());
    assert_eq!(v["mode"], "resolve");
    assert_eq!(v["conf"]["spark.hadoop.fs.s3a.secret.key"], "<redacted>");
    assert!(
        v["conf"]["spark.executorEnv.AWS_ACCESS_KEY_ID"]
            .as_str()
            .unwrap()
            .contains("obtained at launch")
    );
}

#[test]
fn wrap_config_flag_names_the_platform_file_and_is_stripped() {
    let sb = Sandbox::new();
    let path = platform(&sb);
    let mut env = resolve_env(&sb, "root", "rt-default");
    env.retain(|(k, _)| k != "SYN_PLATFORM_CONFIG");
    let run = sb.run(
        "wrapconfig",
        &args(&["--wrap-config", &path, "--master", "local", "job.py"]),
        &env,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.argv(), args(&["--master", "local", "job.py"]));
}

#[test]
fn version_help_and_usage_error_pass_straight_through_without_resolving() {
    let sb = Sandbox::new();
    // No SYN_USER, no platform file: resolving would be a configuration error.
    let mut env = sb.base_env();
    env.push(("AWS_PROFILE".into(), "analyst".into()));
    for (i, line) in [
        &["--version"][..],
        &["-h"],
        &["--help"],
        &["--usage-error"],
        &["--wrap-config", "/nonexistent/platform.json", "--version"],
    ]
    .into_iter()
    .enumerate()
    {
        let run = sb.run(&format!("info{i}"), &args(line), &env);
        assert_eq!(run.code(), Some(0), "{line:?}: {}", run.stderr());
        let expected: Vec<&str> = line
            .iter()
            .copied()
            .filter(|a| !a.starts_with("--wrap-") && !a.ends_with(".json"))
            .collect();
        assert_eq!(run.argv(), args(&expected), "{line:?}");
        assert_eq!(run.standin_pid(), Some(run.pid), "exec keeps the PID");
        // Nothing decided, nothing recorded, the environment as it was.
        assert!(run.stderr().is_empty(), "{line:?}: {}", run.stderr());
        let child = run.environ();
        assert_eq!(
            child.get("AWS_PROFILE").map(String::as_str),
            Some("analyst")
        );
        assert!(!child.contains_key("SYN_PROVISIONED"));
        assert!(!child.contains_key("AWS_ACCESS_KEY_ID"));
        assert_eq!(
            child.get("SPARK_SUBMIT_WRAP_DEPTH").map(String::as_str),
            Some("1")
        );
    }
    // Spark's exit status is the wrapper's (--usage-error exits 1 in Spark).
    env.push(("STANDIN_EXIT".into(), "1".into()));
    let run = sb.run("usage-exit", &args(&["--usage-error"]), &env);
    assert_eq!(run.code(), Some(1));
}

#[test]
fn wrap_explain_of_a_version_request_says_passthrough_and_execs_nothing() {
    let sb = Sandbox::new();
    let run = sb.run(
        "version-explain",
        &args(&["--wrap-explain", "--version"]),
        &sb.base_env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(!run.ran());
    let v: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(v["mode"], "passthrough");
    assert!(v["decision"].is_null());
    assert_eq!(v["argv"], serde_json::json!(["--version"]));
    assert!(v["conf"].is_null());
}

#[test]
fn unknown_wrapper_option_is_a_usage_error() {
    let sb = Sandbox::new();
    let run = sb.run(
        "badwrap",
        &args(&["--wrap-frob", "job.py"]),
        &sb.propagation_env(),
    );
    assert_eq!(run.code(), Some(2));
    assert!(!run.ran());
}

#[test]
fn real_spark_submit_not_found_is_127() {
    let sb = Sandbox::new();
    let mut env = sb.propagation_env();
    env.retain(|(k, _)| k != "SPARK_HOME");
    let run = sb.run("notfound", &args(&["job.py"]), &env);
    assert_eq!(run.code(), Some(127), "{}", run.stderr());
    assert!(
        run.stderr().contains("SPARK_SUBMIT_WRAP_REAL"),
        "{}",
        run.stderr()
    );
}

#[test]
fn found_on_path_after_skipping_itself() {
    let sb = Sandbox::new();
    // The wrapper installed as `spark-submit` first on PATH (a symlink), Spark's after it.
    let wrapbin = sb.dir.path().join("wrapbin");
    std::fs::create_dir_all(&wrapbin).unwrap();
    std::os::unix::fs::symlink(wrapper(), wrapbin.join("spark-submit")).unwrap();
    let mut env = sb.propagation_env();
    env.retain(|(k, _)| k != "SPARK_HOME" && k != "PATH");
    env.push((
        "PATH".into(),
        format!(
            "{}:{}:/usr/bin:/bin",
            wrapbin.display(),
            sb.spark_home().join("bin").display()
        ),
    ));
    let run = sb.run("onpath", &args(&["job.py"]), &env);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(run.ran());
}

#[test]
fn loop_guard_refuses_to_exec_itself_through_a_script() {
    let sb = Sandbox::new();
    // A spark-submit script that execs the wrapper: a different file, so only the
    // guard can tell.
    let home = sb.dir.path().join("loop");
    std::fs::create_dir_all(home.join("bin")).unwrap();
    let script = home.join("bin/spark-submit");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec {} \"$@\"\n", wrapper().display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut env = sb.propagation_env();
    env.retain(|(k, _)| k != "SPARK_HOME");
    env.push(("SPARK_HOME".into(), home.display().to_string()));
    let run = sb.run("loop", &args(&["job.py"]), &env);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(run.stderr().contains("loop"), "{}", run.stderr());
}

#[test]
fn named_file_fallback_is_private_and_cleaned_after_the_job() {
    let sb = Sandbox::new();
    let mut env = sb.propagation_env();
    env.push(("SPARK_SUBMIT_WRAP_PROPERTIES".into(), "file".into()));
    let run = sb.run("named", &args(&["--master", "local[2]", "job.py"]), &env);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let (path, content, mode) = run.props_files().pop().unwrap();
    assert!(Path::new(&path).starts_with(sb.runtime_dir()), "{path}");
    assert_eq!(mode.as_deref(), Some("600 700"));
    let conf = parse_properties(&content.unwrap());
    assert_eq!(conf["spark.hadoop.fs.s3a.secret.key"], SECRET);
    // The job (the stand-in) has ended: the cleaner removes the directory.
    let dir = Path::new(&path).parent().unwrap().to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(15);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !dir.exists(),
        "properties directory left behind: {}",
        dir.display()
    );
}

#[test]
fn pyspark_shell_launcher_gets_a_named_file() {
    // bin/pyspark's `pyspark-shell-main` re-runs spark-submit from Python with
    // inherited descriptors closed: a /dev/fd path would not survive.
    let sb = Sandbox::new();
    let run = sb.run(
        "pyshell",
        &args(&["pyspark-shell-main", "--name", "PySparkShell"]),
        &sb.propagation_env(),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let argv = run.argv();
    assert_eq!(
        argv[..3],
        args(&["pyspark-shell-main", "--name", "PySparkShell"])[..]
    );
    assert_eq!(argv[3], OsString::from("--properties-file"));
    assert!(!argv[4].to_string_lossy().starts_with("/dev/fd/"));
}
