//! `provisioner serve` end to end with real Unix users: the real binary as the broker,
//! the real binary as the launcher running under other uids, a recording stand-in STS
//! (tests/stand_ins/fake_sts.py, STS's wire format) to count AssumeRole calls.
//!
//! These tests create system users (`synbrk-*`), so they need root; as another user
//! they skip and say how to run them. They send traffic only to loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use provisioner_core::broker::client;
use provisioner_core::broker::protocol::{self, Answer, Op, WireContext};
use provisioner_core::context::Flow;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");
const BASE_KEY: &str = "AKIABROKERBASEKEY";
const BASE_SECRET: &str = "broker-base-secret-never-handed-out";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Root is needed to create users and to run the launcher as them. Like the server
/// gate of `test_support`, a full run (`PROVISIONER_E2E=1`, set by scripts/test) fails
/// instead of skipping.
macro_rules! require_root {
    () => {
        if !is_root() {
            assert!(
                std::env::var(test_support::E2E).as_deref() != Ok("1"),
                "{}=1 but the broker tests are not running as root; run them as root",
                test_support::E2E
            );
            eprintln!(
                "note: skipped: this test creates Unix users and runs the launcher as them; run `cargo test -p provisioner --test broker` as root, or scripts/test"
            );
            return;
        }
    };
}

struct Users {
    alice: (u32, u32),
    bob: (u32, u32),
    runner: (u32, u32),
}

const ALICE: &str = "synbrk-alice";
const BOB: &str = "synbrk-bob";
const RUNNER: &str = "synbrk-runner";
const GROUP: &str = "synbrk-analysts";

fn ids(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, name]).output().ok()?;
        if !o.status.success() {
            return None;
        }
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn users() -> &'static Users {
    static U: OnceLock<Users> = OnceLock::new();
    U.get_or_init(|| {
        if Command::new("getent")
            .args(["group", GROUP])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            let _ = Command::new("groupadd").args(["--system", GROUP]).status();
        }
        for name in [ALICE, BOB, RUNNER] {
            if ids(name).is_none() {
                let st = Command::new("useradd")
                    .args([
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        name,
                    ])
                    .status()
                    .expect("useradd");
                assert!(st.success(), "useradd {name}");
            }
        }
        // bob is an analyst; alice is not.
        let _ = Command::new("usermod")
            .args(["-a", "-G", GROUP, BOB])
            .status();
        Users {
            alice: ids(ALICE).expect("alice"),
            bob: ids(BOB).expect("bob"),
            runner: ids(RUNNER).expect("runner"),
        }
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// tests/stand_ins/fake_sts.py on a loopback port; killed on drop.
struct FakeSts {
    child: Child,
    port: u16,
}

impl FakeSts {
    fn start() -> FakeSts {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/stand_ins/fake_sts.py");
        let port = free_port();
        let child = Command::new("python3")
            .arg(&script)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the stand-in STS");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "stand-in STS did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        FakeSts { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The AssumeRole requests received so far (form parameters).
    fn assume_roles(&self) -> Vec<BTreeMap<String, String>> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(s, "GET /_requests HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("[]");
        let v: Vec<Value> = serde_json::from_str(body).expect("request log");
        v.into_iter()
            .filter(|r| r["action"] == "AssumeRole")
            .map(|r| serde_json::from_value(r["params"].clone()).unwrap_or_default())
            .collect()
    }
}

impl Drop for FakeSts {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A platform file for the tests: session policy on, alice and bob with planes.
fn platform(sts: Option<&str>, extra: Value) -> Value {
    let mut p = json!({
        "settings": {
            "syntasa_session_policy_enabled": "true",
            "sts_deadline_seconds": "10",
            "broker_min_remaining_seconds": "900"
        },
        "aws": {
            "region": "us-east-1",
            "account_id": "123456789012",
            "session_policy_role_arn": "arn:aws:iam::123456789012:role/PlatformInfraRole",
            "platform_bucket": "acme-platform",
            "sts_endpoint": sts.unwrap_or("http://127.0.0.1:9")
        },
        "service_accounts": [
            {"id": "sa-fin", "role_arn": "arn:aws:iam::123456789012:role/Finance"}
        ],
        "workspaces": [
            {"id": "ws-fin", "service_account": "sa-fin", "users": [BOB]},
            {"id": "ws-unlisted", "service_account": "sa-fin"},
            {"id": "ws-all", "service_account": "sa-fin", "users": ["*"]},
            {"id": "ws-plain"}
        ],
        "data_planes": [
            {"id": "dp-a", "s3": ["s3://acme-data/alice/"]},
            {"id": "dp-b", "s3": ["s3://acme-data/bob/"]}
        ],
        "users": [
            {"id": ALICE, "data_planes": ["dp-a"]},
            {"id": BOB, "data_planes": ["dp-b"]}
        ]
    });
    merge(&mut p, extra);
    p
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// A running `provisioner serve` in its own 0755 directory; killed on drop.
struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
    log: PathBuf,
}

impl Broker {
    fn start(platform: &Value) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("platform.json"), platform.to_string()).unwrap();
        let mut b = Broker {
            child: None,
            socket: dir.path().join("broker.sock"),
            log: dir.path().join("broker.log"),
            dir,
        };
        b.spawn();
        b
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("platform.json")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn spawn(&mut self) {
        self.spawn_with(&[]);
    }

    fn spawn_with(&mut self, extra: &[&str]) {
        self.spawn_under(&[], extra);
    }

    /// Starts the broker through `wrapper` (a program that execs its arguments).
    fn spawn_under(&mut self, wrapper: &[&str], extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = command
            .args(["serve", "--config"])
            .arg(self.config())
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state")
            .arg(self.state())
            .args(extra)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("AWS_ACCESS_KEY_ID", BASE_KEY)
            .env("AWS_SECRET_ACCESS_KEY", BASE_SECRET)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the broker");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&self.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "broker did not start: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "broker did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the log has `needle` (after a signal).
    fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log_text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ctx(user: Option<&str>, workspace: Option<&str>) -> WireContext {
    WireContext {
        user: user.map(str::to_string),
        workspace: workspace.map(str::to_string),
        runtime_template: None,
        flow: Flow::Notebook,
        job_id: None,
    }
}

/// One raw request from this process (root).
fn ask(socket: &Path, op: Op, c: WireContext) -> Answer {
    client::call(socket, &client::request(op, c)).expect("an answer")
}

/// Writes raw bytes, then reads one framed answer (None if the broker closed without one).
fn raw(socket: &Path, bytes: &[u8], shutdown_write: bool) -> Option<Answer> {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(bytes).unwrap();
    if shutdown_write {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let body = protocol::read_frame(&mut s, protocol::MAX_ANSWER_BYTES).ok()?;
    protocol::decode_answer(&body).ok()
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    protocol::write_frame(&mut v, body).unwrap();
    v
}

fn code(a: &Answer) -> &str {
    a.error.as_ref().map(|e| e.code.as_str()).unwrap_or("")
}

/// Runs the launcher as a Unix user: `provisioner kernel --broker S ARGS -- env`.
fn kernel_as(uid: (u32, u32), socket: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = as_user(uid);
    c.arg(BIN)
        .arg("kernel")
        .arg("--broker")
        .arg(socket)
        .args(args)
        .args(["--", "/usr/bin/env"]);
    c.env_clear().env("PATH", "/usr/bin:/bin").env("HOME", "/");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run the launcher")
}

/// A command that runs its arguments as `uid` with only that user's primary group
/// (setpriv from util-linux drops root's supplementary groups too).
fn as_user(uid: (u32, u32)) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={}", uid.0))
        .arg(format!("--regid={}", uid.1))
        .arg("--clear-groups")
        .arg("--");
    c
}

fn env_of(o: &Output) -> BTreeMap<String, String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn malformed_oversized_slow_and_half_closed_requests_get_one_line_errors_while_others_are_served() {
    require_root!();
    let b = Broker::start(&platform(
        None,
        json!({"settings": {"syntasa_session_policy_enabled": "false"}}),
    ));
    // A slow client: half a header, then silence.
    let mut slow = UnixStream::connect(&b.socket).unwrap();
    slow.write_all(&[0, 0]).unwrap();
    let slow_started = Instant::now();

    // Meanwhile everyone else is served at once.
    let t = Instant::now();
    let a = ask(&b.socket, Op::Explain, ctx(None, None));
    assert!(a.ok, "{a:?}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "served in {:?}",
        t.elapsed()
    );

    let cases: Vec<(Vec<u8>, bool, &str)> = vec![
        (frame(b"{not json"), false, "MALFORMED_REQUEST"),
        (frame(b"\xff\xfe\x00"), false, "MALFORMED_REQUEST"),
        (
            frame(br#"{"version":1,"op":"steal","context":{"flow":"notebook"}}"#),
            false,
            "MALFORMED_REQUEST",
        ),
        (
            frame(br#"{"version":7,"op":"launch"}"#),
            false,
            "UNSUPPORTED_VERSION",
        ),
        (
            ((protocol::MAX_REQUEST_BYTES + 1).to_be_bytes()).to_vec(),
            false,
            "REQUEST_TOO_LARGE",
        ),
        (
            {
                let mut v = 100u32.to_be_bytes().to_vec();
                v.extend_from_slice(b"{\"version\":1");
                v
            },
            true,
            "INCOMPLETE_REQUEST",
        ),
        (vec![0, 0], true, "INCOMPLETE_REQUEST"),
    ];
    for (bytes, half_close, want) in cases {
        let a =
            raw(&b.socket, &bytes, half_close).unwrap_or_else(|| panic!("no answer for {want}"));
        assert!(!a.ok);
        assert_eq!(code(&a), want, "{a:?}");
        let msg = &a.error.as_ref().unwrap().message;
        assert!(!msg.contains('\n') && !msg.is_empty(), "{msg}");
    }
    // The slow client is cut off at the deadline with an answer, and the broker lives on.
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let body = protocol::read_frame(&mut slow, protocol::MAX_ANSWER_BYTES)
        .expect("answer to the slow client");
    let a = protocol::decode_answer(&body).unwrap();
    assert_eq!(code(&a), "REQUEST_TIMEOUT");
    let waited = slow_started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert!(ask(&b.socket, Op::Explain, ctx(None, None)).ok);
}

#[test]
fn users_launch_as_themselves_and_claims_of_another_user_are_refused() {
    require_root!();
    let u = users();
    let sts = FakeSts::start();
    let b = Broker::start(&platform(Some(&sts.url()), json!({})));

    // alice as herself: scoped credentials, her session name, her record.
    let o = kernel_as(u.alice, &b.socket, &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let env = env_of(&o);
    assert!(env["AWS_ACCESS_KEY_ID"].starts_with("ASIA"), "{env:?}");
    assert_ne!(env["AWS_ACCESS_KEY_ID"], BASE_KEY);
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert!(
        env["SYN_PROVISIONED"].contains(&format!("user={ALICE}")),
        "{env:?}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains(BASE_SECRET));
    let calls = sts.assume_roles();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["RoleSessionName"], ALICE);
    assert!(
        calls[0]["Policy"].contains("acme-data/alice/"),
        "{:?}",
        calls[0]
    );
    // The broker logs after answering: wait for the line.
    b.wait_log(&format!("\"authenticated_user\":\"{ALICE}\""));
    let log = b.log_text();
    assert!(
        log.contains(&format!("uid={} ", u.alice.0))
            && log.contains(&format!("\"authenticated_user\":\"{ALICE}\"")),
        "{log}"
    );

    // Every way of claiming bob fails, and nothing is minted for it.
    for (args, env) in [
        (vec!["--user", BOB], vec![]),
        (vec![], vec![("SYN_USER", BOB)]),
        (vec![], vec![("KERNEL_USERNAME", BOB)]),
        (vec![], vec![("JUPYTERHUB_USER", BOB)]),
    ] {
        let o = kernel_as(u.alice, &b.socket, &args, &env);
        assert_eq!(o.status.code(), Some(3), "{args:?} {env:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "the program must not run");
        assert!(stderr(&o).contains("NOT_PERMITTED"), "{}", stderr(&o));
    }
    assert_eq!(
        sts.assume_roles().len(),
        1,
        "no AssumeRole for refused claims"
    );
    // The refusal names both identities in the broker's log.
    b.wait_log(&format!("login={ALICE} authenticated=- claimed={BOB}"));
    assert!(
        b.log_text()
            .contains(&format!("login={ALICE} authenticated=- claimed={BOB}")),
        "{}",
        b.log_text()
    );

    // The record names the caller: uid, pid, claimed and authenticated user.
    let o = kernel_as(u.bob, &b.socket, &["--user", BOB], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rec: Value = stderr(&o)
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the record on stderr");
    assert_eq!(rec["user"], BOB);
    assert_eq!(rec["caller"]["uid"], u.bob.0);
    assert_eq!(rec["caller"]["claimed_user"], BOB);
    assert_eq!(rec["caller"]["authenticated_user"], BOB);
    assert!(rec["caller"]["pid"].as_i64().unwrap() > 1);
}

#[test]
fn proxy_users_act_only_for_the_users_and_groups_listed() {
    require_root!();
    let u = users();
    let sts = FakeSts::start();
    let b = Broker::start(&platform(
        Some(&sts.url()),
        json!({"proxy_users": [{"unix_user": RUNNER, "users": [ALICE], "groups": [GROUP]}]}),
    ));
    // Listed user.
    let o = kernel_as(u.runner, &b.socket, &["--user", ALICE], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(env_of(&o)["SYN_PROVISIONED"].contains(&format!("user={ALICE}")));
    let rec: Value = stderr(&o)
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap();
    assert_eq!(rec["caller"]["proxied"], true);
    assert_eq!(rec["caller"]["unix_user"], RUNNER);
    // Member of a listed group.
    let o = kernel_as(u.runner, &b.socket, &["--user", BOB], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(env_of(&o)["SYN_PROVISIONED"].contains(&format!("user={BOB}")));

    // Without the group, bob is out of reach; and alice is no proxy at all.
    let b2 = Broker::start(&platform(
        Some(&sts.url()),
        json!({"proxy_users": [{"unix_user": RUNNER, "users": [ALICE]}]}),
    ));
    let o = kernel_as(u.runner, &b2.socket, &["--user", BOB], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("may not act for"), "{}", stderr(&o));
    let o = kernel_as(u.alice, &b2.socket, &["--user", BOB], &[]);
    assert_eq!(o.status.code(), Some(3));
    // Root is no exception.
    let a = ask(&b2.socket, Op::Launch, ctx(Some(ALICE), None));
    assert_eq!(code(&a), "NOT_PERMITTED", "{a:?}");
}

#[test]
fn workspaces_admit_only_their_users_and_unlisted_service_accounts_are_closed() {
    require_root!();
    let u = users();
    let sts = FakeSts::start();
    let b = Broker::start(&platform(Some(&sts.url()), json!({})));
    let o = kernel_as(u.alice, &b.socket, &["--workspace", "ws-fin"], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("NOT_ENTITLED") && stderr(&o).contains("ws-fin"),
        "{}",
        stderr(&o)
    );
    let o = kernel_as(u.alice, &b.socket, &["--workspace", "ws-unlisted"], &[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("lists no users"), "{}", stderr(&o));
    assert!(sts.assume_roles().is_empty(), "nothing minted for refusals");

    let o = kernel_as(u.bob, &b.socket, &["--workspace", "ws-fin"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = kernel_as(u.alice, &b.socket, &["--workspace", "ws-all"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let roles: Vec<String> = sts
        .assume_roles()
        .iter()
        .map(|r| r["RoleArn"].clone())
        .collect();
    assert_eq!(roles, vec!["arn:aws:iam::123456789012:role/Finance"; 2]);
    // A workspace without a service account needs no list.
    let o = kernel_as(u.alice, &b.socket, &["--workspace", "ws-plain"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Explain through the broker shows the same refusal and exits 3.
    let o = as_user(u.alice)
        .arg(BIN)
        .args(["explain", "--json", "--workspace", "ws-fin", "--broker"])
        .arg(&b.socket)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["refused"]["code"], "NOT_ENTITLED");
    assert_eq!(v["caller"]["uid"], u.alice.0);
}

#[test]
fn the_default_tier_and_admin_bypass_hand_out_nothing() {
    require_root!();
    let u = users();
    let b = Broker::start(&platform(
        None,
        json!({"settings": {"syntasa_session_policy_enabled": "false"}}),
    ));
    let o = kernel_as(u.alice, &b.socket, &[], &[("KEEP", "me")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let env = env_of(&o);
    assert!(!env.contains_key("AWS_ACCESS_KEY_ID"), "{env:?}");
    assert_eq!(env["KEEP"], "me");
    assert!(env["SYN_PROVISIONED"].starts_with("tier=default"));
    let a = ask(&b.socket, Op::Launch, ctx(None, None));
    assert!(a.ok && a.credentials.is_none(), "{a:?}");
    let text = serde_json::to_string(&a).unwrap();
    assert!(!text.contains(BASE_KEY) && !text.contains(BASE_SECRET));

    let admin = Broker::start(&platform(
        None,
        json!({"users": [{"id": ALICE, "system_admin": true}, {"id": BOB}]}),
    ));
    let o = kernel_as(u.alice, &admin.socket, &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!env_of(&o).contains_key("AWS_ACCESS_KEY_ID"));
    assert!(stderr(&o).contains("ADMIN_BYPASS"), "{}", stderr(&o));
}

#[test]
fn a_burst_of_200_launches_for_50_users_makes_at_most_50_assume_role_calls() {
    require_root!();
    let sts = FakeSts::start();
    let names: Vec<String> = (0..50).map(|i| format!("user{i:02}")).collect();
    let mut users: Vec<Value> = names
        .iter()
        .map(|n| json!({"id": n, "data_planes": ["dp-a"]}))
        .collect();
    users.extend([json!({"id": ALICE}), json!({"id": BOB})]);
    let b = Broker::start(&platform(
        Some(&sts.url()),
        json!({
            "users": users,
            "proxy_users": [{"unix_user": "root", "users": ["*"]}],
            "settings": {"broker_max_connections_per_uid": "512", "broker_max_sessions_per_uid": "1000"}
        }),
    ));
    let socket = b.socket.clone();
    let answers: Vec<(String, Answer)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..200)
            .map(|i| {
                let name = names[i % 50].clone();
                let socket = socket.clone();
                s.spawn(move || {
                    let a = ask(&socket, Op::Launch, ctx(Some(&name), None));
                    (name, a)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let calls = sts.assume_roles();
    assert!(calls.len() <= 50, "{} AssumeRole calls", calls.len());
    let sessions: BTreeSet<&str> = calls
        .iter()
        .map(|c| c["RoleSessionName"].as_str())
        .collect();
    assert_eq!(sessions.len(), calls.len(), "one call per user");
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, a) in &answers {
        assert!(a.ok, "{a:?}");
        let rec = a.record.as_ref().unwrap();
        assert_eq!(rec["user"], name.as_str());
        assert_eq!(rec["session_name"], name.as_str());
        assert_eq!(rec["tier"], "session_policy");
        let c = a.credentials.as_ref().expect("credentials");
        keys.entry(name.clone())
            .or_default()
            .insert(c.access_key_id.clone());
    }
    // Every user got exactly one set of credentials, and nobody got another's.
    assert_eq!(keys.len(), 50);
    assert!(keys.values().all(|k| k.len() == 1), "{keys:?}");
    let all: BTreeSet<&String> = keys.values().flatten().collect();
    assert_eq!(all.len(), 50);
    eprintln!(
        "burst: 200 launches, 50 users, {} AssumeRole calls",
        calls.len()
    );
}

#[test]
fn sighup_reloads_drops_changed_decisions_and_keeps_the_old_file_when_the_new_one_is_bad() {
    require_root!();
    let sts = FakeSts::start();
    let mut p = platform(
        Some(&sts.url()),
        json!({"proxy_users": [{"unix_user": "root", "users": ["*"]}]}),
    );
    let b = Broker::start(&p);
    for who in [ALICE, BOB] {
        assert!(ask(&b.socket, Op::Launch, ctx(Some(who), None)).ok);
    }
    assert!(ask(&b.socket, Op::Launch, ctx(Some(ALICE), None)).ok);
    assert_eq!(
        sts.assume_roles().len(),
        2,
        "the second alice launch is a cache hit"
    );

    // alice moves to bob's plane: her cached credentials are dropped, bob's stay.
    p["users"][0]["data_planes"] = json!(["dp-b"]);
    std::fs::write(b.config(), p.to_string()).unwrap();
    b.signal("HUP");
    b.wait_log("1 cached credentials dropped");
    let a = ask(&b.socket, Op::Launch, ctx(Some(ALICE), None));
    assert!(a.ok);
    let calls = sts.assume_roles();
    assert_eq!(calls.len(), 3);
    assert!(
        calls[2]["Policy"].contains("acme-data/bob/")
            && !calls[2]["Policy"].contains("acme-data/alice/")
    );
    assert!(ask(&b.socket, Op::Launch, ctx(Some(BOB), None)).ok);
    assert_eq!(sts.assume_roles().len(), 3, "bob's decision did not change");

    // A broken file: logged, and the broker keeps deciding with the last good one.
    std::fs::write(b.config(), "{ not json").unwrap();
    b.signal("HUP");
    b.wait_log("keeping the platform file loaded before");
    let a = ask(&b.socket, Op::Explain, ctx(Some(ALICE), None));
    assert!(a.ok);
    assert!(
        a.record.unwrap()["policy"]
            .to_string()
            .contains("acme-data/bob/")
    );
}

#[test]
fn sigterm_exits_cleanly_and_removes_the_socket() {
    require_root!();
    let mut b = Broker::start(&platform(None, json!({})));
    b.signal("TERM");
    let st = b.wait_exit();
    assert_eq!(st.code(), Some(0), "{}", b.log_text());
    assert!(!b.socket.exists());
}

#[test]
fn a_broker_killed_with_sigkill_knows_its_live_sessions_after_a_restart_and_stores_no_secret() {
    require_root!();
    let sts = FakeSts::start();
    let mut b = Broker::start(&platform(
        Some(&sts.url()),
        json!({"proxy_users": [{"unix_user": "root", "users": ["*"]}], "settings": {"broker_max_sessions_per_uid": "3"}}),
    ));
    // This test process is the launched process: it stays alive.
    let a = ask(&b.socket, Op::Launch, ctx(Some(ALICE), None));
    assert!(a.ok, "{a:?}");
    let secret = a.credentials.as_ref().unwrap().secret_access_key.clone();
    let session_token = a
        .credentials
        .as_ref()
        .unwrap()
        .session_token
        .clone()
        .unwrap();
    let ticket = a.session.clone().expect("a session");

    b.signal("KILL");
    let _ = b.wait_exit();
    assert!(b.socket.exists(), "SIGKILL leaves the socket behind");
    b.spawn();
    b.wait_log("1 live sessions known");

    // The database holds the token's hash, never the token or a credential.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(b.state()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let hay = String::from_utf8_lossy(&bytes);
    for needle in [
        secret.as_str(),
        session_token.as_str(),
        ticket.token.as_str(),
        BASE_SECRET,
    ] {
        assert!(!hay.contains(needle), "the state holds a secret");
    }
    assert!(
        hay.contains(&ticket.id),
        "the state holds the session's hash"
    );
    let mode = std::fs::metadata(b.state()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);

    // Per-uid session limit: 3 live sessions for this uid, the fourth is refused.
    assert!(ask(&b.socket, Op::Launch, ctx(Some(ALICE), None)).ok);
    assert!(ask(&b.socket, Op::Launch, ctx(Some(ALICE), None)).ok);
    let a = ask(&b.socket, Op::Launch, ctx(Some(ALICE), None));
    assert_eq!(code(&a), "TOO_MANY_SESSIONS", "{a:?}");
}

#[test]
fn the_broker_refuses_to_start_on_a_socket_directory_others_can_write() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(
        dir.path().join("p.json"),
        platform(None, json!({})).to_string(),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("p.json"))
        .arg("--socket")
        .arg(dir.path().join("s.sock"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("writable by group or others") && e.contains("chmod go-w"),
        "{e}"
    );
    assert!(!dir.path().join("s.sock").exists());
}

#[test]
fn a_sidecar_broker_serves_only_its_pods_user_whoever_connects() {
    require_root!();
    let u = users();
    let sts = FakeSts::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("platform.json"),
        platform(Some(&sts.url()), json!({})).to_string(),
    )
    .unwrap();
    let mut b = Broker {
        child: None,
        socket: dir.path().join("broker.sock"),
        log: dir.path().join("broker.log"),
        dir,
    };
    b.spawn_with(&["--pod-user", BOB]);
    // Any uid in the pod (here alice's and root) is the pod's user, bob.
    let o = kernel_as(u.alice, &b.socket, &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(env_of(&o)["SYN_PROVISIONED"].contains(&format!("user={BOB}")));
    let a = ask(&b.socket, Op::Launch, ctx(None, None));
    assert_eq!(a.record.unwrap()["user"], BOB);
    // And nobody in the pod can claim another user.
    let o = kernel_as(u.alice, &b.socket, &["--user", ALICE], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(
        code(&ask(&b.socket, Op::Launch, ctx(Some(ALICE), None))),
        "NOT_PERMITTED"
    );
}

// ---------------------------------------------------------------------------------
// Endpoint delivery and refresh.

/// The launched "kernel" for endpoint tests, run as the user: prints what its
/// environment and token file look like, then fetches its credentials from the
/// endpoint every `EVERY` seconds for `DURATION` seconds, one JSON line per fetch.
const FETCH_LOOP: &str = r#"
import json, os, stat, sys, time, urllib.request, urllib.error
dur, every = float(sys.argv[1]), float(sys.argv[2])
env = dict(os.environ)
tf = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "")
st = os.lstat(tf)
print(json.dumps({"aws_vars": sorted(k for k in env if k.startswith("AWS_")),
                  "uri": env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"), "token_file": tf,
                  "mode": stat.S_IMODE(st.st_mode), "owner": st.st_uid,
                  "dir_mode": stat.S_IMODE(os.lstat(os.path.dirname(tf)).st_mode),
                  "newline": open(tf, "rb").read().endswith(b"\n")}), flush=True)
end = time.time() + dur
while time.time() < end:
    req = urllib.request.Request(env["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                                 headers={"Authorization": open(tf).read()})
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            b = json.load(r)
            print(json.dumps({"t": time.time(), "status": 200, "key": b["AccessKeyId"],
                              "exp": b["Expiration"], "has_secret": bool(b["SecretAccessKey"]),
                              "has_token": bool(b["Token"])}), flush=True)
    except urllib.error.HTTPError as e:
        print(json.dumps({"t": time.time(), "status": e.code, "body": e.read().decode()}), flush=True)
    except Exception as e:
        print(json.dumps({"t": time.time(), "status": 0, "error": str(e)}), flush=True)
    time.sleep(every)
"#;

/// One fetch with the token in `SYN_TEST_TOKEN` (never in argv), as whoever runs it.
const FETCH_ONCE: &str = r#"
import json, os, sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], headers={"Authorization": os.environ["SYN_TEST_TOKEN"]})
try:
    with urllib.request.urlopen(req, timeout=3) as r:
        print(json.dumps({"status": 200, "key": json.load(r)["AccessKeyId"]}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": json.loads(e.read().decode())}))
"#;

impl FakeSts {
    /// Credentials live `lifetime` seconds whatever DurationSeconds asks for.
    fn start_with_lifetime(lifetime: u32) -> FakeSts {
        let sts = FakeSts::start();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", sts.port)).unwrap();
        let body = json!({"lifetime": lifetime}).to_string();
        write!(
            s,
            "POST /_control HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(
            text.starts_with("HTTP/1.") && text.contains(" 200 "),
            "{text}"
        );
        sts
    }
}

/// A broker with the credentials endpoint on a free loopback port.
fn endpoint_broker(platform: &Value) -> (Broker, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut b = Broker::start_without_spawn(platform);
    b.spawn_with(&["--endpoint", &addr]);
    (b, addr)
}

impl Broker {
    fn start_without_spawn(platform: &Value) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("platform.json"), platform.to_string()).unwrap();
        Broker {
            child: None,
            socket: dir.path().join("broker.sock"),
            log: dir.path().join("broker.log"),
            dir,
        }
    }
}

/// Starts the fetch loop as `uid` through the launcher.
fn spawn_fetch_loop(uid: (u32, u32), socket: &Path, duration: f64, every: f64) -> Child {
    let mut c = as_user(uid);
    c.arg(BIN)
        .arg("kernel")
        .arg("--broker")
        .arg(socket)
        .args(["--", "python3", "-c", FETCH_LOOP])
        .arg(duration.to_string())
        .arg(every.to_string());
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/")
        .env("AWS_ACCESS_KEY_ID", "AKIAINHERITED")
        .env("AWS_SECRET_ACCESS_KEY", "inherited-secret")
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "inherited-token")
        .env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/inherited");
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the launcher")
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn fetch_once_as(uid: Option<(u32, u32)>, url: &str, token: &str) -> Value {
    let mut c = match uid {
        Some(u) => {
            let mut c = as_user(u);
            c.arg("python3");
            c
        }
        None => Command::new("python3"),
    };
    c.args(["-c", FETCH_ONCE, url])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SYN_TEST_TOKEN", token);
    let o = c.output().unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)))
}

/// Seconds of life the served credentials had when fetched.
fn remaining(fetch: &Value) -> f64 {
    let exp = provisioner_core::credentials::parse_rfc3339(fetch["exp"].as_str().unwrap())
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    exp - fetch["t"].as_f64().unwrap()
}

#[test]
fn an_endpoint_kernel_gets_no_keys_and_keeps_fresh_credentials_past_their_expiry() {
    require_root!();
    let u = users();
    // Credentials live 8 s: the broker re-mints with 4 to 6 s left.
    let sts = FakeSts::start_with_lifetime(8);
    let (b, addr) = endpoint_broker(&platform(Some(&sts.url()), json!({})));
    let child = spawn_fetch_loop(u.alice, &b.socket, 20.0, 0.25);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    let head = &lines[0];

    // The environment: the endpoint and the token file, no key, no other AWS_CONTAINER_*.
    let vars: Vec<&str> = head["aws_vars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        vars.contains(&"AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        "{vars:?}"
    );
    assert!(
        vars.contains(&"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        "{vars:?}"
    );
    for banned in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        assert!(!vars.contains(&banned), "{banned} in {vars:?}");
    }
    let uri = head["uri"].as_str().unwrap();
    assert!(
        uri.starts_with(&format!("http://{addr}/v1/credentials/")),
        "{uri}"
    );
    // The token file: the user's, 0600 in a 0700 directory, no trailing newline.
    assert_eq!(head["mode"], 0o600);
    assert_eq!(head["dir_mode"], 0o700);
    assert_eq!(head["owner"], u.alice.0);
    assert_eq!(head["newline"], false);

    // Every fetch succeeded, with more than the lead left, and the keys changed as the
    // credentials were re-minted: the kernel outlived several lifetimes of them.
    let fetches: Vec<&Value> = lines[1..].iter().collect();
    assert!(fetches.len() > 40, "{}", fetches.len());
    for f in &fetches {
        assert_eq!(f["status"], 200, "{f}");
        assert_eq!(
            (f["has_secret"].as_bool(), f["has_token"].as_bool()),
            (Some(true), Some(true))
        );
        // Lead 4 s; Expiration has whole seconds and the scheduler may run late.
        assert!(
            remaining(f) > 2.0,
            "served with {:.1} s left: {f}",
            remaining(f)
        );
    }
    let keys: BTreeSet<&str> = fetches.iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert!(
        keys.len() >= 4,
        "only {} distinct credentials in 20 s",
        keys.len()
    );
    // STS: about one call per refresh period (every 2 to 4 s), not one per fetch.
    let calls = sts.assume_roles().len();
    assert!(
        (5..=14).contains(&calls),
        "{calls} AssumeRole calls for {} fetches in 20 s",
        fetches.len()
    );

    // The session ended with its process: the token is refused within seconds.
    let token = {
        let path = head["token_file"].as_str().unwrap();
        std::fs::read_to_string(path).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = fetch_once_as(Some(u.alice), uri, &token);
        if v["status"] == 404 {
            assert_eq!(v["body"]["code"], "NO_SUCH_SESSION");
            break;
        }
        assert!(Instant::now() < deadline, "still served after exit: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        b.log_text().contains("ended: process exited"),
        "{}",
        b.log_text()
    );
    // The token never reaches the broker's log.
    assert!(!b.log_text().contains(&token));
}

#[test]
fn another_user_holding_a_copy_of_the_token_gets_nothing() {
    require_root!();
    let u = users();
    let sts = FakeSts::start_with_lifetime(600);
    let (b, _addr) = endpoint_broker(&platform(Some(&sts.url()), json!({})));
    let child = spawn_fetch_loop(u.alice, &b.socket, 6.0, 0.5);
    // Wait for the first line, then steal the token as root and hand it to bob.
    std::thread::sleep(Duration::from_secs(2));
    let log = b.log_text();
    assert!(log.contains("outcome=granted"), "{log}");
    let dir = format!("/tmp/provisioner-{}", u.alice.0);
    let newest = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .unwrap();
    let token = std::fs::read_to_string(&newest).unwrap();
    let id = newest.file_stem().unwrap().to_string_lossy().into_owned();
    let url = format!("http://{_addr}/v1/credentials/{id}");
    // Bob cannot read the file...
    let o = as_user(u.bob).args(["cat"]).arg(&newest).output().unwrap();
    assert!(!o.status.success());
    // ...and with a copy of the token the endpoint still refuses him (and root).
    let v = fetch_once_as(Some(u.bob), &url, &token);
    assert_eq!(
        (v["status"].as_i64(), v["body"]["code"].as_str()),
        (Some(403), Some("WRONG_USER")),
        "{v}"
    );
    let v = fetch_once_as(None, &url, &token);
    assert_eq!(v["status"], 403, "{v}");
    // Alice's own other process with the token is served; a wrong token is not.
    let v = fetch_once_as(Some(u.alice), &url, &token);
    assert_eq!(v["status"], 200, "{v}");
    let v = fetch_once_as(Some(u.alice), &url, "0000");
    assert_eq!(
        (v["status"].as_i64(), v["body"]["code"].as_str()),
        (Some(403), Some("BAD_TOKEN")),
        "{v}"
    );
    let out = child.wait_with_output().unwrap();
    assert!(json_lines(&out)[1..].iter().all(|f| f["status"] == 200));
}

#[test]
fn a_user_removed_from_the_platform_file_gets_nothing_minted_after_the_reload() {
    require_root!();
    let u = users();
    let sts = FakeSts::start_with_lifetime(8);
    let p = platform(Some(&sts.url()), json!({}));
    let (b, _addr) = endpoint_broker(&p);
    let child = spawn_fetch_loop(u.alice, &b.socket, 14.0, 0.25);
    std::thread::sleep(Duration::from_secs(5));
    // Alice leaves the platform.
    let mut q = p.clone();
    q["users"] = Value::Array(
        q["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["id"] != ALICE)
            .cloned()
            .collect(),
    );
    std::fs::write(b.config(), q.to_string()).unwrap();
    b.signal("HUP");
    b.wait_log("endpoint sessions re-checked");
    let reloaded = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let out = child.wait_with_output().unwrap();
    let fetches = json_lines(&out);
    // Before: served. From a second after the reload: refused with the reason.
    let before: Vec<&Value> = fetches[1..]
        .iter()
        .filter(|f| f["t"].as_f64().unwrap() < reloaded - 0.5)
        .collect();
    let after: Vec<&Value> = fetches[1..]
        .iter()
        .filter(|f| f["t"].as_f64().unwrap() > reloaded + 1.0)
        .collect();
    assert!(!before.is_empty() && before.iter().all(|f| f["status"] == 200));
    assert!(!after.is_empty());
    for f in &after {
        assert_eq!(f["status"], 403, "{f}");
        assert!(f["body"].as_str().unwrap().contains("UNKNOWN_USER"), "{f}");
    }
    // No AssumeRole for alice after the reload (the stand-in logs every call's time).
    let mut s = std::net::TcpStream::connect(("127.0.0.1", sts.port)).unwrap();
    write!(s, "GET /_requests HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let log: Vec<Value> = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let late: Vec<&Value> = log
        .iter()
        .filter(|r| r["action"] == "AssumeRole" && r["time"].as_f64().unwrap() > reloaded)
        .collect();
    assert!(late.is_empty(), "minted after the reload: {late:?}");
    assert!(
        b.log_text().contains("refused (UNKNOWN_USER)"),
        "{}",
        b.log_text()
    );
}

#[test]
fn a_broker_killed_with_sigkill_costs_an_endpoint_kernel_only_seconds() {
    require_root!();
    let u = users();
    let sts = FakeSts::start_with_lifetime(10);
    let (mut b, addr) = endpoint_broker(&platform(Some(&sts.url()), json!({})));
    let child = spawn_fetch_loop(u.alice, &b.socket, 24.0, 0.25);
    std::thread::sleep(Duration::from_secs(4));
    b.signal("KILL");
    let _ = b.wait_exit();
    let killed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    b.spawn_with(&["--endpoint", &addr]);
    b.wait_log("1 endpoint sessions restored");
    let out = child.wait_with_output().unwrap();
    let fetches = json_lines(&out);
    let failed: Vec<&Value> = fetches[1..].iter().filter(|f| f["status"] != 200).collect();
    // Failures only in the seconds around the restart.
    for f in &failed {
        let t = f["t"].as_f64().unwrap();
        assert!(
            t > killed - 0.5 && t < killed + 6.0,
            "failed outside the restart: {f}"
        );
    }
    let last = fetches.last().unwrap();
    assert_eq!(last["status"], 200, "{last}");
    assert!(remaining(last) > 2.0);
    // After the restart the keys keep changing: the session's refresh was rescheduled.
    let after: BTreeSet<&str> = fetches[1..]
        .iter()
        .filter(|f| f["status"] == 200 && f["t"].as_f64().unwrap() > killed)
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(after.len() >= 3, "{after:?}");
}

#[test]
fn a_socket_activated_broker_serves_the_endpoint_on_the_listener_it_was_handed() {
    require_root!();
    if Command::new("systemd-socket-activate")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("note: skipped: systemd-socket-activate is not installed");
        return;
    }
    let u = users();
    let sts = FakeSts::start_with_lifetime(600);
    let b = Broker::start_without_spawn(&platform(Some(&sts.url()), json!({})));
    let port = free_port();
    let log = std::fs::File::create(&b.log).unwrap();
    // systemd-socket-activate binds, then execs the broker with LISTEN_FDS=1 and
    // LISTEN_PID set on the first connection: what systemd does with the .socket unit.
    let mut activator = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-E",
            &format!("AWS_ACCESS_KEY_ID={BASE_KEY}"),
            "-E",
            &format!("AWS_SECRET_ACCESS_KEY={BASE_SECRET}"),
            "-E",
            "AWS_EC2_METADATA_DISABLED=true",
        ])
        .arg(BIN)
        .args(["serve", "--config"])
        .arg(b.config())
        .arg("--socket")
        .arg(&b.socket)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    while UnixStream::connect(&b.socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "broker did not start: {}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = spawn_fetch_loop(u.alice, &b.socket, 1.0, 0.25)
        .wait_with_output()
        .unwrap();
    let lines = json_lines(&out);
    let uri = lines[0]["uri"].as_str().unwrap_or_default();
    assert!(
        uri.starts_with(&format!("http://127.0.0.1:{port}/")),
        "{uri} {}",
        b.log_text()
    );
    assert!(lines[1..].iter().all(|f| f["status"] == 200), "{lines:?}");
    assert!(
        b.log_text().contains("credentials endpoint on"),
        "{}",
        b.log_text()
    );
    let _ = activator.kill();
    let _ = activator.wait();
}

#[test]
fn a_session_ends_at_max_session_seconds_while_its_process_still_runs() {
    require_root!();
    let u = users();
    let sts = FakeSts::start_with_lifetime(600);
    let (b, _addr) = endpoint_broker(&platform(
        Some(&sts.url()),
        json!({"settings": {"max_session_seconds": "60"}}),
    ));
    let child = spawn_fetch_loop(u.alice, &b.socket, 66.0, 1.0);
    let out = child.wait_with_output().unwrap();
    let lines = json_lines(&out);
    let first = lines[1]["t"].as_f64().unwrap();
    for f in &lines[1..] {
        let t = f["t"].as_f64().unwrap() - first;
        if t < 55.0 {
            assert_eq!(f["status"], 200, "{f}");
        } else if t > 62.0 {
            assert_eq!(f["status"], 404, "{f}");
        }
    }
    assert_eq!(lines.last().unwrap()["status"], 404);
    assert!(
        b.log_text()
            .contains("ended: maximum session lifetime reached"),
        "{}",
        b.log_text()
    );
}

/// The HTTPS executor endpoint: application tokens, real users, a test CA.
mod executor_endpoint {
    use super::*;

    /// A test CA and a server certificate for 127.0.0.1 and localhost, made with openssl
    /// (as tests/e2e/spark_support.py does); the key is the broker's (root's), 0600.
    pub(super) struct Pki {
        pub dir: tempfile::TempDir,
    }

    impl Pki {
        pub fn new() -> Pki {
            let dir = tempfile::tempdir().unwrap();
            let run = |args: &[&str]| {
                let o = Command::new("openssl")
                    .args(args)
                    .current_dir(dir.path())
                    .output()
                    .expect("openssl runs");
                assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
            };
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=provisioner test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ]);
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ]);
            std::fs::write(
                dir.path().join("san.ext"),
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
            )
            .unwrap();
            run(&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                "server.pem",
            ]);
            std::fs::set_permissions(
                dir.path().join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            // Readable by the test users' processes (the CA is public).
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(
                dir.path().join("ca.pem"),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
            Pki { dir }
        }

        pub fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }
    }

    /// The flags of a broker with both endpoints.
    pub(super) fn flags(pki: &Pki, loopback: &str, executor: &str) -> Vec<String> {
        [
            "--endpoint",
            loopback,
            "--executor-endpoint",
            executor,
            "--tls-cert",
            &pki.path("server.pem"),
            "--tls-key",
            &pki.path("server.key"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    pub(super) fn executor_broker(platform: &Value, pki: &Pki) -> (Broker, Vec<String>, String) {
        let executor = format!("127.0.0.1:{}", free_port());
        let flags = flags(pki, &format!("127.0.0.1:{}", free_port()), &executor);
        let mut b = Broker::start_without_spawn(platform);
        b.spawn_with(&flags.iter().map(String::as_str).collect::<Vec<_>>());
        (b, flags, executor)
    }

    /// Runs as a user: speaks the broker protocol on its socket (the request as the
    /// JSON in SYN_TEST_REQUEST), prints the answer as one line, then keeps the session
    /// alive (this process is the session's process) until its stdin closes.
    const LAUNCH_AND_WAIT: &str = r#"
import json, os, socket, struct, sys
def call(req):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    body = json.dumps(req).encode()
    s.sendall(struct.pack(">I", len(body)) + body)
    head = b""
    while len(head) < 4:
        head += s.recv(4 - len(head))
    n, = struct.unpack(">I", head)
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
    return json.loads(data)
print(json.dumps(call(json.loads(os.environ["SYN_TEST_REQUEST"]))), flush=True)
for line in sys.stdin:
    # Further requests from the test, answered one line each, in the same process.
    print(json.dumps(call(json.loads(line))), flush=True)
"#;

    /// A process of `uid` holding a session: the launch answer, and a way to send more
    /// requests from the same process.
    pub(super) struct Holder {
        child: Child,
        out: std::io::BufReader<std::process::ChildStdout>,
        pub answer: Value,
    }

    impl Holder {
        pub fn launch(uid: (u32, u32), socket: &Path, executor_endpoint: bool) -> Holder {
            let req = json!({
                "version": 1, "op": "launch", "accept_endpoint": true,
                "executor_endpoint": executor_endpoint,
                "context": {"user": null, "workspace": null, "runtime_template": null,
                            "flow": "notebook"}
            });
            Holder::start(uid, socket, &req)
        }

        pub fn start(uid: (u32, u32), socket: &Path, req: &Value) -> Holder {
            use std::io::BufRead;
            let mut c = as_user(uid);
            c.args(["python3", "-c", LAUNCH_AND_WAIT])
                .arg(socket)
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("SYN_TEST_REQUEST", req.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            let mut child = c.spawn().unwrap();
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            let answer = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line:?}"));
            Holder { child, out, answer }
        }

        /// Another request from the session's own process.
        pub fn ask(&mut self, req: &Value) -> Value {
            use std::io::BufRead;
            let stdin = self.child.stdin.as_mut().unwrap();
            writeln!(stdin, "{req}").unwrap();
            stdin.flush().unwrap();
            let mut line = String::new();
            self.out.read_line(&mut line).unwrap();
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line:?}"))
        }

        pub fn session_token(&self) -> String {
            self.answer["endpoint"]["token"]
                .as_str()
                .unwrap()
                .to_string()
        }

        pub fn app(&self) -> (String, String) {
            let e = &self.answer["executor_endpoint"];
            (
                e["url"].as_str().unwrap().to_string(),
                e["token"].as_str().unwrap().to_string(),
            )
        }

        /// Ends the session's process.
        pub fn exit(mut self) {
            drop(self.child.stdin.take());
            let _ = self.child.wait();
        }
    }

    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// An explain request with the launch options of a launcher, as `ask` sends it.
    fn explain_request(accept_endpoint: bool, executor_endpoint: bool) -> Value {
        json!({
            "version": 1, "op": "explain", "accept_endpoint": accept_endpoint,
            "executor_endpoint": executor_endpoint,
            "context": {"user": null, "workspace": null, "runtime_template": null,
                        "flow": "job"}
        })
    }

    pub(super) fn app_token_request(session_token: &str) -> Value {
        json!({"version": 1, "op": "application_token", "session_token": session_token})
    }

    /// One HTTPS fetch verified against the test CA (an empty `ca`: the system's CAs
    /// only), as `uid` (None: this process), with the token in the environment (never
    /// in argv).
    const FETCH_TLS: &str = r#"
import json, os, ssl, sys, urllib.request, urllib.error
ctx = ssl.create_default_context(cafile=sys.argv[2] or None)
req = urllib.request.Request(sys.argv[1], headers={"Authorization": os.environ["SYN_TEST_TOKEN"]})
try:
    with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
        b = json.load(r)
        print(json.dumps({"status": 200, "key": b["AccessKeyId"], "exp": b["Expiration"],
                          "has_secret": bool(b["SecretAccessKey"]), "has_token": bool(b["Token"])}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": json.loads(e.read().decode())}))
except Exception as e:
    print(json.dumps({"status": 0, "error": str(e)}))
"#;

    pub(super) fn fetch_tls(uid: Option<(u32, u32)>, url: &str, ca: &str, token: &str) -> Value {
        let mut c = match uid {
            Some(u) => {
                let mut c = as_user(u);
                c.arg("python3");
                c
            }
            None => Command::new("python3"),
        };
        c.args(["-c", FETCH_TLS, url, ca])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("SYN_TEST_TOKEN", token);
        let o = c.output().unwrap();
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)))
    }

    fn code_of(v: &Value) -> (Option<i64>, Option<&str>) {
        (v["status"].as_i64(), v["body"]["code"].as_str())
    }

    /// The bytes a plain-HTTP client gets from `addr`, until the broker closes.
    fn plain_http(addr: &str) -> Vec<u8> {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        // The broker may close (reset) before the whole request is written.
        let _ = write!(
            s,
            "GET /v1/credentials/x HTTP/1.1\r\nHost: {addr}\r\nAuthorization: t\r\n\r\n"
        );
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        got
    }

    #[test]
    fn executors_fetch_over_https_with_an_application_token_that_opens_nothing_else() {
        require_root!();
        let u = users();
        let pki = Pki::new();
        let ca = pki.path("ca.pem");
        let sts = FakeSts::start_with_lifetime(600);
        let (b, _flags, executor) = executor_broker(&platform(Some(&sts.url()), json!({})), &pki);

        // Alice's launch for a job with remote executors: loopback endpoint for the
        // driver, the HTTPS endpoint and an application token for the executors.
        let mut alice = Holder::launch(u.alice, &b.socket, true);
        let a = &alice.answer;
        assert_eq!(a["ok"], true, "{a}");
        assert_eq!(a["delivery"], "endpoint", "{a}");
        assert!(a["credentials"].is_null(), "{a}");
        let session = a["session"]["id"].as_str().unwrap().to_string();
        let (url, app) = alice.app();
        assert_eq!(
            url,
            format!("https://{executor}/v1/credentials/{session}"),
            "{a}"
        );
        assert_eq!(app.len(), 64);
        assert!(app.bytes().all(|c| c.is_ascii_hexdigit()));
        let loopback = a["endpoint"]["url"].as_str().unwrap().to_string();
        assert!(loopback.starts_with("http://127.0.0.1:"), "{loopback}");
        assert_eq!(a["record"]["delivery"], "endpoint");
        // A dry run of the same request says what the launch delivers and where
        // executors would fetch, with no session and no token.
        let dry = alice.ask(&explain_request(true, true));
        assert_eq!(dry["ok"], true, "{dry}");
        assert_eq!(dry["record"]["delivery"], "endpoint", "{dry}");
        assert_eq!(
            dry["record"]["executor_endpoint_url"],
            format!("https://{executor}"),
            "{dry}"
        );
        assert!(
            dry["endpoint"].is_null() && dry["session"].is_null() && dry["credentials"].is_null(),
            "{dry}"
        );

        // An executor (any uid: it runs on another host) fetches with the application
        // token, verified against the test CA.
        let v = fetch_tls(Some(u.runner), &url, &ca, &app);
        assert_eq!(v["status"], 200, "{v}");
        assert_eq!(
            (v["has_secret"].as_bool(), v["has_token"].as_bool()),
            (Some(true), Some(true))
        );
        assert!(v["key"].as_str().unwrap().starts_with("ASIA"), "{v}");

        // The session's own token is refused on HTTPS, the application token on loopback
        // (even from alice's own uid).
        let session_token = alice.session_token();
        let v = fetch_tls(Some(u.alice), &url, &ca, &session_token);
        assert_eq!(code_of(&v), (Some(403), Some("BAD_TOKEN")), "{v}");
        let v = fetch_once_as(Some(u.alice), &loopback, &app);
        assert_eq!(code_of(&v), (Some(403), Some("BAD_TOKEN")), "{v}");
        let v = fetch_once_as(Some(u.alice), &loopback, &session_token);
        assert_eq!(v["status"], 200, "{v}");
        // No token, a made-up token: refused.
        let v = fetch_tls(None, &url, &ca, "");
        assert_eq!(v["status"], 401, "{v}");
        let v = fetch_tls(None, &url, &ca, &"0".repeat(64));
        assert_eq!(code_of(&v), (Some(403), Some("BAD_TOKEN")), "{v}");

        // Bob's session B: alice's application token does not open it, nor bob's hers.
        let bob = Holder::launch(u.bob, &b.socket, true);
        let (url_b, app_b) = bob.app();
        assert_ne!(url_b, url);
        let v = fetch_tls(None, &url_b, &ca, &app);
        assert_eq!(code_of(&v), (Some(403), Some("BAD_TOKEN")), "{v}");
        let v = fetch_tls(None, &url, &ca, &app_b);
        assert_eq!(code_of(&v), (Some(403), Some("BAD_TOKEN")), "{v}");
        let v = fetch_tls(None, &url_b, &ca, &app_b);
        assert_eq!(v["status"], 200, "{v}");

        // A second application token, asked by alice's session process with its token.
        let more = alice.ask(&app_token_request(&session_token));
        assert_eq!(more["ok"], true, "{more}");
        assert_eq!(more["executor_endpoint"]["url"], url.as_str());
        let app2 = more["executor_endpoint"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(app2, app);
        let v = fetch_tls(None, &url, &ca, &app2);
        assert_eq!(v["status"], 200, "{v}");
        // Bob with a stolen copy of alice's session token: refused, and so is root.
        let mut thief = Holder::start(u.bob, &b.socket, &app_token_request(&session_token));
        assert_eq!(thief.answer["ok"], false);
        assert_eq!(
            thief.answer["error"]["code"], "WRONG_USER",
            "{}",
            thief.answer
        );
        let msg = thief.answer["error"]["message"].as_str().unwrap();
        assert!(msg.contains("fix:") && !msg.contains('\n'), "{msg}");
        assert!(thief.answer["executor_endpoint"].is_null());
        let root = client::application_token(&b.socket, &session_token).unwrap_err();
        assert_eq!(root.code, "WRONG_USER");
        // A token of no session, asked by anyone: nothing.
        let v = thief.ask(&app_token_request(&"0".repeat(64)));
        assert_eq!(v["error"]["code"], "NO_SUCH_SESSION", "{v}");

        // Plain HTTP to the TLS port gets no byte, and the endpoint keeps serving.
        assert!(plain_http(&executor).is_empty());
        b.wait_log("plain HTTP on the TLS port");
        // A client that does not trust the certificate (no CA): its handshake fails, is
        // logged, and the endpoint keeps serving.
        let v = fetch_tls(None, &url, "", &app);
        assert_eq!(v["status"], 0, "{v}");
        b.wait_log("TLS handshake failed");
        let v = fetch_tls(None, &url, &ca, &app);
        assert_eq!(v["status"], 200, "{v}");

        // The session's process exits: its application tokens are refused within seconds.
        alice.exit();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v = fetch_tls(None, &url, &ca, &app2);
            if v["status"] == 404 {
                assert_eq!(v["body"]["code"], "NO_SUCH_SESSION");
                break;
            }
            assert!(Instant::now() < deadline, "still served after exit: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
        let v = fetch_tls(None, &url_b, &ca, &app_b);
        assert_eq!(v["status"], 200, "bob's session is untouched: {v}");

        // No token reaches the log.
        let log = b.log_text();
        for t in [&app, &app2, &app_b, &session_token] {
            assert!(!log.contains(t.as_str()), "a token in the log");
        }
        drop(bob);
    }

    #[test]
    fn application_tokens_survive_a_broker_sigkill_and_restart() {
        require_root!();
        let u = users();
        let pki = Pki::new();
        let ca = pki.path("ca.pem");
        let sts = FakeSts::start_with_lifetime(600);
        let (mut b, flags, _executor) =
            executor_broker(&platform(Some(&sts.url()), json!({})), &pki);
        let mut alice = Holder::launch(u.alice, &b.socket, true);
        let (url, app) = alice.app();
        let more = alice.ask(&app_token_request(&alice.session_token()));
        let app2 = more["executor_endpoint"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(fetch_tls(None, &url, &ca, &app)["status"], 200);

        b.signal("KILL");
        let _ = b.wait_exit();
        b.spawn_with(&flags.iter().map(String::as_str).collect::<Vec<_>>());
        b.wait_log("2 application tokens of live sessions restored");
        // Served again within seconds (503 while the session's credentials are re-minted).
        for token in [&app, &app2] {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let v = fetch_tls(None, &url, &ca, token);
                if v["status"] == 200 {
                    break;
                }
                assert_eq!(v["status"], 503, "{v}");
                assert!(
                    Instant::now() < deadline,
                    "not served after the restart: {v}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        // The state database holds hashes, not the tokens.
        let db = std::fs::read(b.state().join("sessions.sqlite3")).unwrap();
        let wal = std::fs::read(b.state().join("sessions.sqlite3-wal")).unwrap_or_default();
        for t in [&app, &app2] {
            let needle = t.as_bytes();
            assert!(
                !db.windows(needle.len()).any(|w| w == needle)
                    && !wal.windows(needle.len()).any(|w| w == needle),
                "an application token in the state database"
            );
        }
        // The restarted broker still refuses the session token on HTTPS.
        let v = fetch_tls(None, &url, &ca, &alice.session_token());
        assert_eq!(v["status"], 403, "{v}");
    }

    #[test]
    fn a_user_removed_at_reload_gets_nothing_through_application_tokens() {
        require_root!();
        let u = users();
        let pki = Pki::new();
        let ca = pki.path("ca.pem");
        let sts = FakeSts::start_with_lifetime(600);
        let p = platform(Some(&sts.url()), json!({}));
        let (b, _flags, _executor) = executor_broker(&p, &pki);
        let mut alice = Holder::launch(u.alice, &b.socket, true);
        let (url, app) = alice.app();
        assert_eq!(fetch_tls(None, &url, &ca, &app)["status"], 200);
        let mut q = p.clone();
        q["users"] = Value::Array(
            q["users"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["id"] != ALICE)
                .cloned()
                .collect(),
        );
        std::fs::write(b.config(), q.to_string()).unwrap();
        b.signal("HUP");
        b.wait_log("refused (UNKNOWN_USER)");
        let v = fetch_tls(None, &url, &ca, &app);
        assert_eq!(code_of(&v), (Some(403), Some("UNKNOWN_USER")), "{v}");
        // Nor does the session get new tokens.
        let v = alice.ask(&app_token_request(&alice.session_token()));
        assert_eq!(v["error"]["code"], "UNKNOWN_USER", "{v}");
    }

    #[test]
    fn a_broker_without_the_executor_endpoint_gives_keys_and_no_application_token() {
        require_root!();
        let u = users();
        let sts = FakeSts::start_with_lifetime(600);
        let (b, _addr) = endpoint_broker(&platform(Some(&sts.url()), json!({})));
        // Asked for remote executors: keys in the answer, as for a launcher without
        // endpoint delivery, and the record says so.
        let keys = Holder::launch(u.alice, &b.socket, true);
        let a = &keys.answer;
        assert_eq!(a["ok"], true, "{a}");
        assert_eq!(a["delivery"], "environment", "{a}");
        assert!(a["credentials"]["access_key_id"].is_string(), "{a}");
        assert!(
            a["endpoint"].is_null() && a["executor_endpoint"].is_null(),
            "{a}"
        );
        assert_eq!(a["record"]["delivery"], "environment");
        // Dry runs say the same: keys when executors could not fetch, the endpoint for a
        // kernel, keys for a launcher that cannot deliver through the endpoint.
        let mut probe = Holder::launch(u.alice, &b.socket, false);
        for (accept, executors, want) in [
            (true, true, "environment"),
            (true, false, "endpoint"),
            (false, false, "environment"),
        ] {
            let dry = probe.ask(&explain_request(accept, executors));
            assert_eq!(
                dry["record"]["delivery"], want,
                "{accept} {executors}: {dry}"
            );
            assert!(dry["record"]["executor_endpoint_url"].is_null(), "{dry}");
        }
        probe.exit();
        // An endpoint session's own process asking for an application token.
        let mut kernel = Holder::launch(u.alice, &b.socket, false);
        assert_eq!(kernel.answer["delivery"], "endpoint", "{}", kernel.answer);
        let v = kernel.ask(&app_token_request(&kernel.session_token()));
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["code"], "NO_EXECUTOR_ENDPOINT", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("--executor-endpoint") && !msg.contains('\n'),
            "{msg}"
        );
    }

    #[test]
    fn a_socket_activated_broker_serves_executors_on_the_listener_named_executor() {
        require_root!();
        if Command::new("systemd-socket-activate")
            .arg("--help")
            .output()
            .is_err()
        {
            eprintln!("note: skipped: systemd-socket-activate is not installed");
            return;
        }
        let u = users();
        let pki = Pki::new();
        let sts = FakeSts::start_with_lifetime(600);
        let b = Broker::start_without_spawn(&platform(Some(&sts.url()), json!({})));
        let (executor, loopback) = (free_port(), free_port());
        let log = std::fs::File::create(&b.log).unwrap();
        // Two sockets as two .socket units pass them: the executor's first, named
        // `executor` (FileDescriptorName=), the loopback endpoint's under its unit name.
        let mut activator = Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(format!("127.0.0.1:{executor}"))
            .arg("-l")
            .arg(format!("127.0.0.1:{loopback}"))
            .arg("--fdname=executor:provisioner-broker.socket")
            .args([
                "-E",
                &format!("AWS_ACCESS_KEY_ID={BASE_KEY}"),
                "-E",
                &format!("AWS_SECRET_ACCESS_KEY={BASE_SECRET}"),
                "-E",
                "AWS_EC2_METADATA_DISABLED=true",
            ])
            .arg(BIN)
            .args(["serve", "--config"])
            .arg(b.config())
            .arg("--socket")
            .arg(&b.socket)
            .args(["--tls-cert", &pki.path("server.pem")])
            .args(["--tls-key", &pki.path("server.key")])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // The first connection starts the broker.
        while std::net::TcpStream::connect(("127.0.0.1", loopback)).is_err() {
            assert!(Instant::now() < deadline, "nothing listens on {loopback}");
            std::thread::sleep(Duration::from_millis(50));
        }
        while UnixStream::connect(&b.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "broker did not start: {}",
                b.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let alice = Holder::launch(u.alice, &b.socket, true);
        let a = &alice.answer;
        assert!(
            a["endpoint"]["url"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("http://127.0.0.1:{loopback}/")),
            "{a} {}",
            b.log_text()
        );
        let (url, app) = alice.app();
        assert!(
            url.starts_with(&format!("https://127.0.0.1:{executor}/")),
            "{url}"
        );
        let v = fetch_tls(None, &url, &pki.path("ca.pem"), &app);
        assert_eq!(v["status"], 200, "{v}");
        drop(alice);
        let _ = activator.kill();
        let _ = activator.wait();
    }

    /// `serve` with `extra` flags: its exit code and stderr (it must not start).
    fn serve_fails(extra: &[&str]) -> (Option<i32>, String) {
        let b = Broker::start_without_spawn(&platform(None, json!({})));
        let o = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(b.config())
            .arg("--socket")
            .arg(&b.socket)
            .args(extra)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        (o.status.code(), stderr(&o))
    }

    #[test]
    fn bad_keys_certificates_and_addresses_stop_serve_with_one_line() {
        require_root!();
        let u = users();
        let pki = Pki::new();
        let key = pki.path("server.key");
        let cert = pki.path("server.pem");
        let lo = format!("127.0.0.1:{}", free_port());
        let ex = format!("127.0.0.1:{}", free_port());
        let base = |key: &str, cert: &str| -> Vec<String> {
            flags(&pki, &lo, &ex)
                .into_iter()
                .map(|f| {
                    if f.ends_with("server.key") {
                        key.to_string()
                    } else if f.ends_with("server.pem") {
                        cert.to_string()
                    } else {
                        f
                    }
                })
                .collect()
        };
        let check = |args: Vec<String>, needles: &[&str]| {
            let (code, err) = serve_fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(code, Some(2), "{args:?}: {err}");
            let line = err.trim_end();
            assert!(!line.contains('\n'), "more than one line: {err}");
            assert!(line.contains("fix"), "{line}");
            for n in needles {
                assert!(line.contains(n), "{n:?} not in {line}");
            }
            assert!(!line.contains("PRIVATE KEY"), "{line}");
        };
        // Group-readable key.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        check(base(&key, &cert), &["--tls-key", "mode 0640", "chmod 600"]);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A key owned by another user.
        let theirs = pki.path("theirs.key");
        std::fs::copy(&key, &theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(u.alice.0), None).unwrap();
        check(base(&theirs, &cert), &["--tls-key", "chown"]);
        // Not a regular file; missing; the certificate as the key; the key as the cert.
        check(base("/dev/null", &cert), &["not a regular file"]);
        check(base(&pki.path("missing.key"), &cert), &["--tls-key"]);
        let as_key = pki.path("cert-as-key.pem");
        std::fs::copy(&cert, &as_key).unwrap();
        std::fs::set_permissions(&as_key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check(base(&as_key, &cert), &["no PEM private key"]);
        check(base(&key, &key), &["--tls-cert", "no PEM certificate"]);
        // The CA's key with the server certificate: not a pair.
        let ca_key = pki.path("ca.key");
        std::fs::set_permissions(&ca_key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check(base(&ca_key, &cert), &["do not make a usable pair"]);
        // A wildcard address without the URL executors use; a URL the certificate does
        // not name; a URL that is not https; half the flags.
        let mut wild = base(&key, &cert);
        let i = wild
            .iter()
            .position(|f| f == "--executor-endpoint")
            .unwrap();
        wild[i + 1] = format!("0.0.0.0:{}", free_port());
        check(wild.clone(), &["--executor-endpoint-url"]);
        let mut named = wild.clone();
        named.extend([
            "--executor-endpoint-url".into(),
            "https://broker.example:8443".into(),
        ]);
        check(named, &["not valid for broker.example"]);
        let mut http = wild;
        http.extend([
            "--executor-endpoint-url".into(),
            "http://localhost:8443".into(),
        ]);
        check(http, &["https://"]);
        check(
            vec![
                "--endpoint".into(),
                lo.clone(),
                "--executor-endpoint".into(),
                ex.clone(),
            ],
            &["--tls-cert and --tls-key"],
        );
        // Without the loopback endpoint the executor endpoint has no sessions to serve.
        let no_loopback: Vec<String> = base(&key, &cert).into_iter().skip(2).collect();
        check(no_loopback, &["--endpoint"]);
        // An address that is taken.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut busy = base(&key, &cert);
        let i = busy
            .iter()
            .position(|f| f == "--executor-endpoint")
            .unwrap();
        busy[i + 1] = taken.local_addr().unwrap().to_string();
        check(busy, &["cannot listen on --executor-endpoint"]);
    }
}
/// The launched "kernel" for exit tests: prints its endpoint URL, then runs until its
/// standard input is closed.
const UNTIL_STDIN_CLOSES: &str = r#"
import os, sys
print(os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", ""), flush=True)
sys.stdin.read()
"#;

/// Starts an endpoint kernel as `uid` that lives until its stdin closes; returns it and
/// the path of its session's URL.
fn spawn_until_stdin_closes(uid: (u32, u32), socket: &Path) -> (Child, String) {
    let mut c = as_user(uid);
    c.arg(BIN)
        .arg("kernel")
        .arg("--broker")
        .arg(socket)
        .args(["--", "python3", "-c", UNTIL_STDIN_CLOSES])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run the launcher");
    let mut line = Vec::new();
    let mut out = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let uri = String::from_utf8(line).unwrap();
    let path = uri
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_else(|| panic!("no endpoint URL in the kernel's environment: {uri:?}"));
    (child, path)
}

/// The status of one GET of `path` without a token, from this (root) process: 401 while
/// the session lives, 404 once it has ended.
fn status_of(addr: &str, path: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Closes the kernel's stdin, waits for it to exit, and returns how long after its exit
/// the endpoint refused the session (404), polling every 5 ms for at most 3 s.
fn exit_to_refusal(mut child: Child, addr: &str, path: &str) -> Duration {
    assert_eq!(status_of(addr, path), 401, "the session should be live");
    drop(child.stdin.take());
    let st = child.wait().unwrap();
    assert!(st.success(), "{st}");
    let exited = Instant::now();
    loop {
        let status = status_of(addr, path);
        if status == 404 {
            return exited.elapsed();
        }
        assert_eq!(status, 401, "unexpected answer after exit");
        assert!(
            exited.elapsed() < Duration::from_secs(3),
            "the session was still live 3 s after its process exited"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_endpoint_refuses_a_session_within_seconds_of_its_process_exit_also_after_a_restart() {
    require_root!();
    let u = users();
    let sts = FakeSts::start_with_lifetime(600);
    let (mut b, addr) = endpoint_broker(&platform(Some(&sts.url()), json!({})));
    let (first, first_path) = spawn_until_stdin_closes(u.alice, &b.socket);
    let (second, second_path) = spawn_until_stdin_closes(u.bob, &b.socket);

    let launched = exit_to_refusal(first, &addr, &first_path);
    // The other session is untouched by the first one's end.
    assert_eq!(status_of(&addr, &second_path), 401);

    // A session restored from the state database after a kill -9 is watched as well.
    b.signal("KILL");
    let _ = b.wait_exit();
    b.spawn_with(&["--endpoint", &addr]);
    b.wait_log("1 endpoint sessions restored");
    let restored = exit_to_refusal(second, &addr, &second_path);
    eprintln!(
        "exit to refusal: launched session {:.1} ms, restored session {:.1} ms",
        launched.as_secs_f64() * 1e3,
        restored.as_secs_f64() * 1e3
    );
    let log = b.log_text();
    assert_eq!(log.matches("ended: process exited").count(), 2, "{log}");
}

#[test]
fn where_pidfds_are_refused_sessions_are_polled_and_still_end_with_their_process() {
    require_root!();
    let u = users();
    let sts = FakeSts::start_with_lifetime(600);
    let addr = format!("127.0.0.1:{}", free_port());
    let mut b = Broker::start_without_spawn(&platform(Some(&sts.url()), json!({})));
    // A seccomp filter that answers EPERM to pidfd_open, as a restrictive service
    // manager or container runtime does.
    let without_pidfd =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/stand_ins/without_pidfd.py");
    b.spawn_under(
        &["python3", without_pidfd.to_str().unwrap()],
        &["--endpoint", &addr],
    );
    let (kernel, path) = spawn_until_stdin_closes(u.alice, &b.socket);
    let latency = exit_to_refusal(kernel, &addr, &path);
    eprintln!(
        "exit to refusal without pidfds (polled): {:.1} ms",
        latency.as_secs_f64() * 1e3
    );
    let log = b.log_text();
    assert!(log.contains("pidfd_open is not available"), "{log}");
    assert!(log.contains("ended: process exited"), "{log}");
}
