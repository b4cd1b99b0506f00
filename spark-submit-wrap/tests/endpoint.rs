//! Endpoint delivery through the built binary: inside a provisioned kernel that holds a
//! container-credentials endpoint instead of keys, the wrapper passes the endpoint on
//! (S3A's provider named explicitly, the endpoint in the driver's environment and the
//! executors' conf, no keys anywhere), refuses what cannot work, and says so in
//! `--wrap-explain`. The real Spark run against radosgw is in
//! `tests/e2e/test_spark_rgw.py`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

mod common;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;

use common::*;

const CONTAINER_PROVIDER: &str =
    "software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider";
const URI: &str = "http://127.0.0.1:47110/v1/credentials";
const SESSION_TOKEN: &str = "s3ss10nT0kenValueNeverOnAnyCommandLine";

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

/// A kernel in endpoint mode: the marker, the endpoint, a 0600 token file, a region,
/// and no keys.
fn endpoint_env(sb: &Sandbox) -> Vec<(String, String)> {
    let dir = sb.dir.path().join("tokens");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = dir.join("session.token");
    std::fs::write(&file, SESSION_TOKEN).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut e = sb.base_env();
    e.extend([
        (
            "SYN_PROVISIONED".to_string(),
            "tier=session_policy;user=alice".to_string(),
        ),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI".into(), URI.into()),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".into(),
            file.display().to_string(),
        ),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]);
    e
}

fn token_file(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        .map(|(_, v)| v.clone())
        .unwrap()
}

#[test]
fn a_kernels_endpoint_reaches_driver_and_executors_instead_of_keys() {
    let sb = Sandbox::new();
    let mut env = endpoint_env(&sb);
    let file = token_file(&env);
    // Keys a user exported later in the kernel would be copied by Spark into static
    // S3A keys: they are left behind together with other container settings.
    env.push((
        "AWS_CONTAINER_AUTHORIZATION_TOKEN".into(),
        "a-token-that-java-would-prefer".into(),
    ));
    env.push(("AWS_SESSION_TOKEN".into(), "stale-session-token".into()));
    let user = args(&[
        "--master",
        "local[2]",
        "--conf",
        "spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider=org.apache.hadoop.fs.s3a.auth.IAMInstanceCredentialsProvider",
        "job.py",
        "arg",
    ]);
    let run = sb.run("endpoint", &user, &env);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(run.ran());

    // Driver (client/local mode): the endpoint, its token file, no keys, no token value.
    let environ = run.environ();
    assert_eq!(
        environ
            .get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .map(String::as_str),
        Some(URI)
    );
    assert_eq!(
        environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        Some(&file)
    );
    assert_eq!(
        environ.get("AWS_EC2_METADATA_DISABLED").map(String::as_str),
        Some("true")
    );
    for gone in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    ] {
        assert!(
            !environ.contains_key(gone),
            "{gone} in the driver's environment"
        );
    }
    assert_eq!(
        environ.get("SYN_PROVISIONED").map(String::as_str),
        Some("tier=session_policy;user=alice")
    );

    // Executors and S3A: the properties file.
    let files = run.props_files();
    assert_eq!(files.len(), 1);
    let props = parse_properties(files[0].1.as_deref().unwrap());
    assert_eq!(
        props["spark.hadoop.fs.s3a.aws.credentials.provider"],
        CONTAINER_PROVIDER
    );
    assert_eq!(
        props["spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        URI
    );
    assert_eq!(
        props["spark.executorEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"],
        file
    );
    assert!(
        !props
            .keys()
            .any(|k| k.ends_with(".access.key") || k.ends_with("AWS_ACCESS_KEY_ID"))
    );
    // The user's bucket provider (instance metadata after one error) loses on the
    // command line to the container provider.
    let argv: Vec<String> = run
        .argv()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        argv.windows(2).any(|w| w[0] == "--conf"
            && w[1]
                == format!(
                    "spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider={CONTAINER_PROVIDER}"
                )),
        "{argv:?}"
    );
    assert_eq!(argv[argv.len() - 2..], ["job.py", "arg"]);
    // The session token is in no argument, no conf value and not in the record.
    let cmdline = String::from_utf8_lossy(&run.cmdline_bytes()).into_owned();
    assert!(!cmdline.contains(SESSION_TOKEN));
    assert!(!props.values().any(|v| v.contains(SESSION_TOKEN)));
    assert!(!run.stderr().contains(SESSION_TOKEN));

    let record = run.record_json();
    assert_eq!(record["credentials"], "propagated");
    assert_eq!(record["tier"], "session_policy");
    assert!(record["expiration"].is_null());
    assert!(
        record["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains(&format!("fetch and refresh their credentials from {URI}"))),
        "{record}"
    );
}

#[test]
fn keys_beside_an_endpoint_are_propagated_as_keys() {
    let sb = Sandbox::new();
    let mut env = sb.propagation_env();
    env.push(("AWS_CONTAINER_CREDENTIALS_FULL_URI".into(), URI.into()));
    let run = sb.run("keysfirst", &args(&["job.py"]), &env);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let environ = run.environ();
    assert_eq!(
        environ.get("AWS_ACCESS_KEY_ID").map(String::as_str),
        Some(KEYID)
    );
    assert!(!environ.contains_key("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
}

#[test]
fn an_endpoint_that_cannot_work_is_refused_before_exec() {
    let sb = Sandbox::new();
    let base = endpoint_env(&sb);
    let with = |k: &str, v: Option<&str>| {
        let mut e: Vec<(String, String)> = base.iter().filter(|(n, _)| n != k).cloned().collect();
        if let Some(v) = v {
            e.push((k.into(), v.into()));
        }
        e
    };
    let cases = [
        (
            "notokenfile",
            with("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", None),
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        ),
        (
            "missingfile",
            with(
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                Some("/nonexistent/session.token"),
            ),
            "/nonexistent/session.token",
        ),
        (
            "plainremote",
            with(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                Some("http://198.51.100.7/latest/meta-data"),
            ),
            "not a loopback address",
        ),
    ];
    for (name, env, needle) in cases {
        let run = sb.run(name, &args(&["--master", "local[2]", "job.py"]), &env);
        assert_eq!(run.code(), Some(4), "{name}: {}", run.stderr());
        assert!(!run.ran(), "{name}");
        let err = run.stderr();
        assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
        assert!(
            err.contains(needle) && err.contains("fix:"),
            "{name}: {err}"
        );
    }
    // Executors on other hosts cannot use the loopback endpoint.
    let run = sb.run(
        "yarn",
        &args(&["--master", "yarn", "job.py"]),
        &endpoint_env(&sb),
    );
    assert_eq!(run.code(), Some(4), "{}", run.stderr());
    assert!(!run.ran());
    assert!(
        run.stderr().contains("SYN_EXECUTOR_CREDENTIALS_URL"),
        "{}",
        run.stderr()
    );
}

#[test]
fn wrap_explain_shows_the_endpoint_and_the_provider() {
    let sb = Sandbox::new();
    let env = endpoint_env(&sb);
    let file = token_file(&env);
    let run = sb.run(
        "explain",
        &args(&["--wrap-explain", "--master", "local[2]", "job.py"]),
        &env,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(!run.ran());
    let out = run.stdout();
    assert!(!out.contains(SESSION_TOKEN));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["mode"], "propagate");
    let e = &v["credentials_endpoint"];
    assert_eq!(e["s3a_provider"], CONTAINER_PROVIDER);
    assert_eq!(e["uri"], URI);
    assert_eq!(e["token_file"], file.as_str());
    assert_eq!(e["executors"], "this host");
    assert_eq!(
        v["conf"]["spark.hadoop.fs.s3a.aws.credentials.provider"],
        CONTAINER_PROVIDER
    );
    assert_eq!(v["env"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"], URI);
    assert!(v["env"].get("AWS_ACCESS_KEY_ID").is_none(), "{}", v["env"]);
}
