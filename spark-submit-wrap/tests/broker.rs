//! spark-submit-wrap as a client of the broker: with `--wrap-broker SOCKET` or
//! `SYN_BROKER_SOCKET` it reads no platform file and no base credentials, sends the
//! job-flow context, and injects what the answer carries or refuses as it says.
//!
//! The broker here is a stand-in on a Unix socket that speaks protocol v1 (the core
//! library's framing and messages) and records each request; the real broker is
//! tested in the `provisioner` package.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

mod common;

use std::ffi::OsString;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::*;
use provisioner_core::broker::protocol::{self, Answer, Delivery, Request, WireCredentials};
use serde_json::json;

const KEY: &str = "ASIABROKERJOBKEY";
const SECRET: &str = "broker/job+secret0123456789abcdefghijkl";
const TOKEN: &str = "broker-job-session-token";

struct StandInBroker {
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl StandInBroker {
    fn start(sb: &Sandbox, answer: Answer) -> StandInBroker {
        StandInBroker::start_at(sb, "broker.sock", answer)
    }

    fn start_at(sb: &Sandbox, name: &str, answer: Answer) -> StandInBroker {
        let socket = sb.dir.path().join(name);
        let l = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                if let Ok(body) = protocol::read_frame(&mut s, protocol::MAX_REQUEST_BYTES)
                    && let Ok(req) = protocol::decode_request(&body)
                {
                    seen.lock().unwrap().push(req);
                }
                let _ = protocol::write_frame(&mut s, &protocol::encode(&answer));
            }
        });
        StandInBroker { socket, requests }
    }
}

fn record(tier: &str, credentials: &str) -> serde_json::Value {
    json!({
        "flow": "job", "user": "alice", "workspace": null, "runtime_template": "rt-default",
        "job_id": "job-7", "tier": tier, "reason": null, "skipped": [], "warnings": [],
        "credentials": credentials, "service_account": null,
        "role_arn": "arn:aws:iam::123456789012:role/PlatformInfraRole", "session_name": "alice",
        "external_id_set": false, "source_identity": null, "session_tags": [],
        "duration_seconds": 43200, "policy_chars": 900, "policy_sha256": "00", "refused": null,
        "policy_arns": [],
        "caller": {"uid": 1000, "gid": 1000, "pid": 1, "unix_user": "alice",
                   "authenticated_user": "alice", "claimed_user": "alice", "proxied": false}
    })
}

fn granted() -> Answer {
    Answer {
        version: 1,
        ok: true,
        record: Some(record("session_policy", "assumed_role")),
        credentials: Some(WireCredentials {
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
            session_token: Some(TOKEN.into()),
            expiration: Some("2099-01-01T00:00:00Z".into()),
        }),
        delivery: Delivery::Environment,
        region: Some("eu-west-1".into()),
        session: None,
        endpoint: None,
        executor_endpoint: None,
        error: None,
    }
}

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

fn job_env(sb: &Sandbox) -> Vec<(String, String)> {
    let mut e = sb.base_env();
    e.extend([
        ("SYN_USER".to_string(), "alice".to_string()),
        ("SYN_RUNTIME_TEMPLATE_ID".into(), "rt-default".into()),
        ("SYN_JOB_ID".into(), "job-7".into()),
        // Whatever the environment says, the job flow is asked for.
        ("SYN_FLOW".into(), "notebook".into()),
    ]);
    e
}

#[test]
fn with_wrap_broker_the_answer_is_injected_and_no_platform_file_is_read() {
    let sb = Sandbox::new();
    let b = StandInBroker::start(&sb, granted());
    let socket = b.socket.display().to_string();
    let run = sb.run(
        "broker-granted",
        &args(&[
            "--wrap-broker",
            &socket,
            "--master",
            "local[1]",
            "job.py",
            "x",
        ]),
        &job_env(&sb),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let reqs = b.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].context.flow.as_str(), "job");
    assert_eq!(reqs[0].context.user.as_deref(), Some("alice"));
    assert_eq!(
        reqs[0].context.runtime_template.as_deref(),
        Some("rt-default")
    );
    assert_eq!(reqs[0].context.job_id.as_deref(), Some("job-7"));

    let argv: Vec<String> = run
        .argv()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        !argv
            .iter()
            .any(|a| a.contains("--wrap-broker") || a.contains(SECRET)),
        "{argv:?}"
    );
    assert_eq!(&argv[argv.len() - 2..], ["job.py", "x"]);
    let (_, content, _) = run.props_files().pop().expect("a private properties file");
    let conf = parse_properties(&content.unwrap());
    assert_eq!(conf["spark.hadoop.fs.s3a.access.key"], KEY);
    assert_eq!(conf["spark.hadoop.fs.s3a.session.token"], TOKEN);
    let env = run.environ();
    assert_eq!(env["AWS_ACCESS_KEY_ID"], KEY);
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert!(env["SYN_PROVISIONED"].contains("user=alice"));
    let rec = run.record_json();
    assert_eq!(rec["tier"], "session_policy");
    assert_eq!(rec["caller"]["uid"], 1000);
    assert!(!run.stderr().contains(SECRET));
}

#[test]
fn syn_broker_socket_refusals_exit_with_their_code_and_spark_never_runs() {
    let sb = Sandbox::new();
    let b = StandInBroker::start(
        &sb,
        Answer::error(
            "NOT_PERMITTED",
            "Unix user \"svc\" may launch only as itself, not as \"alice\"; fix: list it in proxy_users",
            Some("list it in proxy_users".into()),
            3,
        ),
    );
    let mut env = job_env(&sb);
    env.push(("SYN_BROKER_SOCKET".into(), b.socket.display().to_string()));
    let run = sb.run("broker-refused", &args(&["job.py"]), &env);
    assert_eq!(run.code(), Some(3), "{}", run.stderr());
    assert!(!run.ran());
    assert!(run.stderr().contains("NOT_PERMITTED"), "{}", run.stderr());
    assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.stderr());
}

#[test]
fn an_unreachable_broker_is_exit_4_and_a_provisioned_kernel_propagates_without_asking() {
    let sb = Sandbox::new();
    let mut env = job_env(&sb);
    env.push((
        "SYN_BROKER_SOCKET".into(),
        sb.dir.path().join("none.sock").display().to_string(),
    ));
    let run = sb.run("broker-down", &args(&["job.py"]), &env);
    assert_eq!(run.code(), Some(4), "{}", run.stderr());
    assert!(!run.ran());
    assert!(
        run.stderr().contains("BROKER_UNAVAILABLE"),
        "{}",
        run.stderr()
    );

    // Inside a provisioned kernel the kernel's credentials are propagated.
    let b = StandInBroker::start(&sb, granted());
    let mut env = sb.propagation_env();
    env.push(("SYN_BROKER_SOCKET".into(), b.socket.display().to_string()));
    let run = sb.run("broker-propagate", &args(&["job.py"]), &env);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(b.requests.lock().unwrap().is_empty());
    assert_eq!(run.record_json()["credentials"], "propagated");
}

#[test]
fn endpoint_delivery_writes_the_token_file_and_passes_the_endpoint_not_keys() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let url = "http://127.0.0.1:877/v1/credentials/s3ss10n1d";
    let session_token = "0123456789abcdef0123456789abcdef";
    let mut answer = granted();
    answer.credentials = None;
    answer.delivery = Delivery::Endpoint;
    answer.endpoint = Some(protocol::EndpointGrant {
        url: url.into(),
        token: session_token.into(),
    });
    answer.session = Some(protocol::SessionTicket {
        id: "s3ss10n1d".into(),
        token: session_token.into(),
    });
    let b = StandInBroker::start(&sb, answer);
    let socket = b.socket.display().to_string();
    let run = sb.run(
        "broker-endpoint",
        &args(&["--wrap-broker", &socket, "--master", "local[2]", "job.py"]),
        &job_env(&sb),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());

    // The token is in a 0600 file in the user's runtime directory, nowhere else.
    let token_file = sb.runtime_dir().join("provisioner/s3ss10n1d.token");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), session_token);
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let env = run.environ();
    assert_eq!(env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], url);
    assert_eq!(
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"],
        token_file.display().to_string()
    );
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    for gone in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    ] {
        assert!(!env.contains_key(gone), "{gone}");
    }
    let (_, content, _) = run.props_files().pop().expect("a private properties file");
    let conf = parse_properties(&content.unwrap());
    assert_eq!(
        conf["spark.hadoop.fs.s3a.aws.credentials.provider"],
        "software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider"
    );
    assert_eq!(
        conf["spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        url
    );
    assert!(!conf.keys().any(|k| k.ends_with(".access.key")));
    assert!(!conf.values().any(|v| v.contains(session_token)));
    let cmdline = String::from_utf8_lossy(&run.cmdline_bytes()).into_owned();
    assert!(!cmdline.contains(session_token));
    assert!(!run.stderr().contains(session_token));
}

const SESSION: &str = "s3ss10n1d";
const SESSION_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const APP_TOKEN: &str = "a9911ca7109700ken0123456789abcdef";
const EXECUTOR_URL: &str = "https://broker.internal:8443/v1/credentials/s3ss10n1d";

/// An endpoint answer; with `executors` the broker's HTTPS executor endpoint too.
fn endpoint_answer(executors: bool) -> Answer {
    let mut answer = granted();
    answer.credentials = None;
    answer.delivery = Delivery::Endpoint;
    answer.endpoint = Some(protocol::EndpointGrant {
        url: format!("http://127.0.0.1:877/v1/credentials/{SESSION}"),
        token: SESSION_TOKEN.into(),
    });
    answer.session = Some(protocol::SessionTicket {
        id: SESSION.into(),
        token: SESSION_TOKEN.into(),
    });
    answer.executor_endpoint = executors.then(|| protocol::EndpointGrant {
        url: EXECUTOR_URL.into(),
        token: APP_TOKEN.into(),
    });
    answer
}

fn truststore(sb: &Sandbox) -> String {
    let ts = sb.dir.path().join("truststore.p12");
    std::fs::write(&ts, "x").unwrap();
    ts.display().to_string()
}

#[test]
fn launches_ask_for_the_executor_endpoint_exactly_when_executors_run_outside_the_drivers_jvm() {
    let sb = Sandbox::new();
    let b = StandInBroker::start(&sb, granted());
    let socket = b.socket.display().to_string();
    let ts = truststore(&sb);
    let override_token = sb.dir.path().join("app.token");
    std::fs::write(&override_token, "overridetoken").unwrap();
    let cases: [(&str, &[&str], bool, bool); 7] = [
        ("local", &["--master", "local[2]"], false, false),
        (
            "localconf",
            &["--conf", "spark.master=local[*]"],
            false,
            false,
        ),
        // The fixtures' spark-defaults.conf says `spark.master yarn`.
        ("defaults", &[], false, true),
        (
            "localcluster",
            &["--master", "local-cluster[2,1,1024]"],
            false,
            true,
        ),
        (
            "clustermode",
            &["--master", "spark://m:7077", "--deploy-mode", "cluster"],
            false,
            true,
        ),
        (
            "k8s",
            &["--master", "k8s://https://127.0.0.1:6443"],
            false,
            true,
        ),
        // SYN_EXECUTOR_CREDENTIALS_URL overrides the broker's executor endpoint.
        ("override", &["--master", "yarn"], true, false),
    ];
    for (i, (name, master, override_set, want)) in cases.iter().enumerate() {
        let mut a = vec!["--wrap-broker", &socket];
        a.extend_from_slice(master);
        a.push("job.py");
        let mut env = job_env(&sb);
        env.push(("SYN_EXECUTOR_TRUSTSTORE".into(), ts.clone()));
        if *override_set {
            env.push((
                "SYN_EXECUTOR_CREDENTIALS_URL".into(),
                "https://front.internal:443".into(),
            ));
            env.push((
                "SYN_EXECUTOR_CREDENTIALS_TOKEN_FILE".into(),
                override_token.display().to_string(),
            ));
        }
        let run = sb.run(name, &args(&a), &env);
        assert_eq!(run.code(), Some(0), "{name}: {}", run.stderr());
        let reqs = b.requests.lock().unwrap().clone();
        let r = &reqs[i];
        assert!(r.accept_endpoint, "{name}");
        assert_eq!(r.executor_endpoint, *want, "{name}");
    }
}

#[test]
fn executors_elsewhere_get_the_brokers_https_endpoint_and_application_token_in_the_private_file_only()
 {
    let sb = Sandbox::new();
    let b = StandInBroker::start(&sb, endpoint_answer(true));
    let socket = b.socket.display().to_string();
    let ts = truststore(&sb);
    let mut env = job_env(&sb);
    env.push(("SYN_EXECUTOR_TRUSTSTORE".into(), ts.clone()));
    env.push(("SYN_EXECUTOR_TRUSTSTORE_PASSWORD".into(), "changeit".into()));
    let run = sb.run(
        "broker-executors",
        &args(&[
            "--wrap-broker",
            &socket,
            "--master",
            "local-cluster[2,1,1024]",
            "job.py",
        ]),
        &env,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let (_, content, _) = run.props_files().pop().expect("a private properties file");
    let conf = parse_properties(&content.unwrap());
    assert_eq!(
        conf["spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        EXECUTOR_URL
    );
    assert_eq!(
        conf["spark.executorEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN"],
        APP_TOKEN
    );
    assert_eq!(
        conf["spark.executorEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"],
        ""
    );
    assert_eq!(
        conf["spark.executor.extraJavaOptions"],
        format!("-Djavax.net.ssl.trustStore={ts} -Djavax.net.ssl.trustStorePassword=changeit")
    );
    assert_eq!(
        conf["spark.hadoop.fs.s3a.aws.credentials.provider"],
        "software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider"
    );
    // The driver keeps the loopback endpoint and the session's token file.
    let environ = run.environ();
    assert_eq!(
        environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        format!("http://127.0.0.1:877/v1/credentials/{SESSION}")
    );
    for gone in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    ] {
        assert!(!environ.contains_key(gone), "{gone}");
    }
    let cmdline = String::from_utf8_lossy(&run.cmdline_bytes()).into_owned();
    assert!(!cmdline.contains(APP_TOKEN) && !cmdline.contains(SESSION_TOKEN));
    assert!(!run.stderr().contains(APP_TOKEN));

    // yarn: the broker's endpoint without which the job is refused before Spark runs.
    let sb = Sandbox::new();
    let b = StandInBroker::start(&sb, endpoint_answer(false));
    let socket = b.socket.display().to_string();
    let run = sb.run(
        "broker-no-executor-endpoint",
        &args(&["--wrap-broker", &socket, "--master", "yarn", "job.py"]),
        &job_env(&sb),
    );
    assert_eq!(run.code(), Some(4), "{}", run.stderr());
    assert!(!run.ran());
    let err = run.stderr();
    let line = err
        .lines()
        .rfind(|l| l.starts_with("spark-submit-wrap:"))
        .unwrap();
    assert!(
        line.contains("executor endpoint") && line.contains("fix:"),
        "{err}"
    );
}

#[test]
fn a_kernel_in_endpoint_mode_asks_the_broker_for_an_application_token_for_remote_executors() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let mut grant = granted();
    grant.record = None;
    grant.delivery = Delivery::None;
    grant.credentials = None;
    grant.region = None;
    grant.executor_endpoint = Some(protocol::EndpointGrant {
        url: EXECUTOR_URL.into(),
        token: APP_TOKEN.into(),
    });
    let b = StandInBroker::start(&sb, grant);
    let dir = sb.dir.path().join("tokens");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = dir.join("session.token");
    std::fs::write(&file, SESSION_TOKEN).unwrap();
    let kernel = |socket: &str| {
        let mut e = sb.base_env();
        e.extend([
            (
                "SYN_PROVISIONED".to_string(),
                "tier=session_policy;user=alice".to_string(),
            ),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
                format!("http://127.0.0.1:877/v1/credentials/{SESSION}"),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".into(),
                file.display().to_string(),
            ),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("SYN_BROKER_SOCKET".into(), socket.into()),
        ]);
        e
    };
    let env = kernel(&b.socket.display().to_string());
    let run = sb.run(
        "kernel-app-token",
        &args(&["--master", "local-cluster[2,1,1024]", "job.py"]),
        &env,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let reqs = b.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].op, protocol::Op::ApplicationToken);
    assert_eq!(reqs[0].session_token.as_deref(), Some(SESSION_TOKEN));
    let (_, content, _) = run.props_files().pop().expect("a private properties file");
    let conf = parse_properties(&content.unwrap());
    assert_eq!(
        conf["spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        EXECUTOR_URL
    );
    assert_eq!(
        conf["spark.executorEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN"],
        APP_TOKEN
    );
    let cmdline = String::from_utf8_lossy(&run.cmdline_bytes()).into_owned();
    assert!(!cmdline.contains(APP_TOKEN) && !cmdline.contains(SESSION_TOKEN));

    // local[...] never asks: executors share the driver's JVM.
    let run = sb.run(
        "kernel-local",
        &args(&["--master", "local[2]", "job.py"]),
        &env,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(b.requests.lock().unwrap().len(), 1);

    // A broker without an executor endpoint: yarn is refused in one line naming the
    // fix; local-cluster (this host, this user) keeps the loopback endpoint and says why.
    let refusing = StandInBroker::start_at(
        &sb,
        "refusing.sock",
        Answer::error(
            "NO_EXECUTOR_ENDPOINT",
            "the broker has no HTTPS executor endpoint; fix: start provisioner serve with --executor-endpoint",
            Some("start provisioner serve with --executor-endpoint".into()),
            4,
        ),
    );
    let env = kernel(&refusing.socket.display().to_string());
    let run = sb.run(
        "kernel-yarn-refused",
        &args(&["--master", "yarn", "job.py"]),
        &env,
    );
    assert_eq!(run.code(), Some(4), "{}", run.stderr());
    assert!(!run.ran());
    let err = run.stderr();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for needle in [
        "NO_EXECUTOR_ENDPOINT",
        "SYN_EXECUTOR_CREDENTIALS_URL",
        "executor endpoint",
        "fix:",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(!err.contains(SESSION_TOKEN));
    let run = sb.run(
        "kernel-local-cluster-loopback",
        &args(&["--master", "local-cluster[2,1,1024]", "job.py"]),
        &env,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let (_, content, _) = run.props_files().pop().expect("a private properties file");
    let conf = parse_properties(&content.unwrap());
    assert_eq!(
        conf["spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        format!("http://127.0.0.1:877/v1/credentials/{SESSION}")
    );
    assert!(!conf.contains_key("spark.executorEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN"));
}

#[test]
fn wrap_explain_in_broker_mode_shows_the_endpoint_layout_when_the_broker_would_use_it() {
    let sb = Sandbox::new();
    let mut explained = granted();
    explained.credentials = None;
    explained.delivery = Delivery::None;
    let mut rec = record("session_policy", "assumed_role");
    rec["delivery"] = json!("endpoint");
    rec["executor_endpoint_url"] = json!("https://broker.internal:8443");
    explained.record = Some(rec);
    let b = StandInBroker::start(&sb, explained);
    let socket = b.socket.display().to_string();
    let ts = truststore(&sb);
    let mut env = job_env(&sb);
    env.push(("SYN_EXECUTOR_TRUSTSTORE".into(), ts.clone()));
    let run = sb.run(
        "explain-endpoint",
        &args(&[
            "--wrap-explain",
            "--wrap-broker",
            &socket,
            "--master",
            "yarn",
            "job.py",
        ]),
        &env,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(!run.ran());
    let reqs = b.requests.lock().unwrap().clone();
    assert_eq!(reqs[0].op, protocol::Op::Explain);
    assert!(reqs[0].accept_endpoint && reqs[0].executor_endpoint);
    let v: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(v["mode"], "broker");
    let e = &v["credentials_endpoint"];
    assert_eq!(
        e["s3a_provider"],
        "software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider"
    );
    assert_eq!(e["executors"], "remote");
    assert!(
        e["remote_uri"]
            .as_str()
            .unwrap()
            .starts_with("https://broker.internal:8443/v1/credentials/"),
        "{e}"
    );
    assert_eq!(e["remote_token"], "<redacted>");
    assert_eq!(e["truststore"], ts.as_str());
    let conf = &v["conf"];
    assert_eq!(
        conf["spark.executorEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN"],
        "<redacted>"
    );
    assert!(
        conf.get("spark.hadoop.fs.s3a.access.key").is_none(),
        "{conf}"
    );
    assert!(v["env"].get("AWS_ACCESS_KEY_ID").is_none(), "{}", v["env"]);
    assert!(v["env"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"].is_string());

    // A broker that does not say (or would deliver keys): the keys layout, placeholders.
    let b = StandInBroker::start_at(&sb, "keys.sock", granted());
    let socket = b.socket.display().to_string();
    let run = sb.run(
        "explain-keys",
        &args(&["--wrap-explain", "--wrap-broker", &socket, "job.py"]),
        &job_env(&sb),
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let v: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert!(v["credentials_endpoint"].is_null());
    assert_eq!(
        v["conf"]["spark.hadoop.fs.s3a.aws.credentials.provider"],
        "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
    );
}
