//! Test harness for credential minting: a real moto server, a stand-in STS server for
//! the answers moto cannot give (throttling, 5xx, duration and packed-size errors),
//! and small builders for platforms and contexts. Loopback only.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use provisioner_core::context::{Flow, LaunchContext};
use provisioner_core::credentials::Credentials;
use provisioner_core::load;
use provisioner_core::mint::StsOptions;
use provisioner_core::model::Platform;

pub const ACCOUNT: &str = "123456789012";

/// Explicit base credentials, so the SDK's default chain never runs in these tests.
pub fn base_credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIDLAUNCHER".into(),
        secret_access_key: "launcher-secret".into(),
        session_token: None,
        expiration: None,
    }
}

/// Options with explicit base credentials and short backoffs.
pub fn options() -> StsOptions {
    StsOptions {
        base_credentials: Some(base_credentials()),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..StsOptions::default()
    }
}

pub fn no_env(_: &str) -> Option<String> {
    None
}

/// Loads a platform from JSON (panics with the loader's message on bad JSON).
pub fn platform(value: serde_json::Value) -> Platform {
    load::load_str(&value.to_string(), "test-platform.json", &no_env)
        .unwrap_or_else(|e| panic!("test platform does not load: {e}"))
}

pub fn ctx(flow: Flow, user: &str, workspace: Option<&str>, rt: Option<&str>) -> LaunchContext {
    LaunchContext {
        flow,
        user: user.into(),
        workspace: workspace.map(str::to_string),
        runtime_template: rt.map(str::to_string),
        job_id: None,
    }
}

pub fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = l.local_addr().expect("local addr").port();
    drop(l);
    port
}

/// Seconds from now until `t` (negative if past).
pub fn seconds_until(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

// ---------------------------------------------------------------------------------
// HTTP on loopback, no client library: HTTP/1.0 so answers are never chunked.

pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write request");
    s.write_all(body).expect("write body");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read answer");
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub fn form_encode(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn form_decode(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unpct(k), unpct(v))
        })
        .collect()
}

fn unpct(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

/// The text of the first `<tag>…</tag>` in `xml`.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].to_string())
}

// ---------------------------------------------------------------------------------
// moto

/// A moto server on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts `$MOTO_SERVER -H 127.0.0.1 -p PORT` and waits until it answers; None
    /// (the test is skipped, see `test_support::server`) without `MOTO_SERVER`.
    pub fn start() -> Option<Moto> {
        let exe = test_support::server(
            "MOTO_SERVER",
            "the moto_server executable (pip install 'moto[server]'), e.g. MOTO_SERVER=/path/to/venv/bin/moto_server",
        )?;
        let exe = exe.to_string_lossy().into_owned();
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = closed_port();
            let child = Command::new(&exe)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("MOTO_SERVER={exe} cannot be started: {e}"));
            let mut moto = Moto { child, port };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(status)) = moto.child.try_wait() {
                    last_err = format!("moto exited with {status}");
                    break;
                }
                if TcpStream::connect(moto.addr()).is_ok() {
                    let (status, _) = http(&moto.addr(), "GET", "/moto-api/data.json", &[], b"");
                    if status == 200 {
                        return Some(moto);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if last_err.is_empty() {
                last_err = "moto did not answer within 15 s".into();
            }
        }
        panic!("MOTO_SERVER={exe} did not start: {last_err}");
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An IAM query call. moto routes by the credential scope of the Authorization
    /// header; before auth is switched on it does not check the signature.
    pub fn iam(&self, params: &[(&str, &str)]) -> String {
        let mut all = vec![("Version", "2010-05-08")];
        all.extend_from_slice(params);
        let (status, body) = http(
            &self.addr(),
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
                ),
            ],
            form_encode(&all).as_bytes(),
        );
        assert_eq!(status, 200, "IAM {params:?} failed: {body}");
        body
    }

    pub fn create_role(&self, name: &str, trusted: &str) {
        let trust = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"}]
        })
        .to_string();
        self.iam(&[
            ("Action", "CreateRole"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", &trust),
            ("MaxSessionDuration", "43200"),
        ]);
    }

    /// Creates an IAM user allowed to call sts:AssumeRole and returns its keys.
    pub fn create_launcher_user(&self, name: &str) -> Credentials {
        self.iam(&[("Action", "CreateUser"), ("UserName", name)]);
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]
        })
        .to_string();
        self.iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "assume"),
            ("PolicyDocument", &policy),
        ]);
        let body = self.iam(&[("Action", "CreateAccessKey"), ("UserName", name)]);
        Credentials {
            access_key_id: xml_text(&body, "AccessKeyId").expect("AccessKeyId in answer"),
            secret_access_key: xml_text(&body, "SecretAccessKey")
                .expect("SecretAccessKey in answer"),
            session_token: None,
            expiration: None,
        }
    }

    /// From now on moto checks signatures, identity policies and trust policies.
    pub fn enforce_auth(&self) {
        let (status, body) = http(&self.addr(), "POST", "/moto-api/reset-auth", &[], b"0");
        assert_eq!(status, 200, "reset-auth failed: {body}");
    }

    /// The AssumeRole calls moto received (`sts.AssumedRole` of data.json).
    pub fn assumed_roles(&self) -> Vec<serde_json::Value> {
        let (status, body) = http(&self.addr(), "GET", "/moto-api/data.json", &[], b"");
        assert_eq!(status, 200, "data.json: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("data.json is JSON");
        v["sts"]["AssumedRole"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GetCallerIdentity with `creds` against `endpoint`, through the SDK.
pub fn caller_arn(endpoint: &str, creds: &Credentials) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let conf = aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                creds.access_key_id.clone(),
                creds.secret_access_key.clone(),
                creds.session_token.clone(),
                None,
                "test",
            ))
            .build();
        let out = aws_sdk_sts::Client::from_conf(conf)
            .get_caller_identity()
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "GetCallerIdentity: {}",
                    aws_sdk_sts::error::DisplayErrorContext(&e)
                )
            });
        out.arn().unwrap_or_default().to_string()
    })
}

// ---------------------------------------------------------------------------------
// Stand-in STS: answers AssumeRole the way STS does (query protocol, XML bodies).

/// What the stand-in answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A successful AssumeRole answer for the requested role, session and duration.
    Ok,
    /// An `ErrorResponse` with this HTTP status, code and message.
    Error(u16, &'static str, &'static str),
    /// Accept the request and never answer.
    Hang,
}

type Responder = dyn Fn(usize, &BTreeMap<String, String>) -> Reply + Send + Sync;

pub struct StandIn {
    pub port: u16,
    requests: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    /// Serves until dropped; `respond(n, form)` decides the answer to the n-th request
    /// (0-based).
    pub fn start(
        respond: impl Fn(usize, &BTreeMap<String, String>) -> Reply + Send + Sync + 'static,
    ) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stand-in");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let respond: Arc<Responder> = Arc::new(respond);
        let (reqs, stopping) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let Some(form) = read_request(&mut stream) else {
                    continue;
                };
                let n = {
                    let mut r = reqs.lock().expect("lock");
                    r.push(form.clone());
                    r.len() - 1
                };
                match respond(n, &form) {
                    Reply::Hang => held.push(stream),
                    reply => {
                        let (status, body) = render(&reply, &form);
                        let head = format!(
                            "HTTP/1.1 {status} {}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\nx-amzn-RequestId: standin-{n}\r\n\r\n",
                            if status == 200 { "OK" } else { "Error" },
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes());
                        let _ = stream.write_all(body.as_bytes());
                        let _ = stream.flush();
                    }
                }
            }
        });
        StandIn {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The form parameters of every request received so far.
    pub fn requests(&self) -> Vec<BTreeMap<String, String>> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_request(stream: &mut TcpStream) -> Option<BTreeMap<String, String>> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[header_end..]).to_string();
    Some(form_decode(&body))
}

fn render(reply: &Reply, form: &BTreeMap<String, String>) -> (u16, String) {
    match reply {
        Reply::Ok => {
            let duration: u64 = form
                .get("DurationSeconds")
                .and_then(|d| d.parse().ok())
                .unwrap_or(3600);
            let expires = SystemTime::now() + Duration::from_secs(duration);
            let expires = aws_smithy_types::DateTime::from(expires)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap_or_default();
            let role_arn = form.get("RoleArn").cloned().unwrap_or_default();
            let role = role_arn.rsplit('/').next().unwrap_or_default().to_string();
            let session = form.get("RoleSessionName").cloned().unwrap_or_default();
            let body = format!(
                r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIASTANDIN</AccessKeyId>
      <SecretAccessKey>standin-secret</SecretAccessKey>
      <SessionToken>standin-token</SessionToken>
      <Expiration>{expires}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROASTANDIN:{session}</AssumedRoleId>
      <Arn>arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}</Arn>
    </AssumedRoleUser>
    <PackedPolicySize>10</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>standin</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#
            );
            (200, body)
        }
        Reply::Error(status, code, message) => {
            let kind = if *status >= 500 { "Receiver" } else { "Sender" };
            (
                *status,
                format!(
                    r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>
  <RequestId>standin</RequestId>
</ErrorResponse>"#
                ),
            )
        }
        Reply::Hang => (0, String::new()),
    }
}

// ---------------------------------------------------------------------------------
// A platform for minting tests.

/// A platform whose STS endpoint is `endpoint`, with `settings` merged over the
/// defaults below. `sa-finance` (role Finance) belongs to workspace `ws-finance`;
/// `sa-legacy` (static keys: env LEGACY_KEY_ID, file `secret_file`) to runtime
/// template `rt-legacy`.
pub fn test_platform(
    endpoint: Option<&str>,
    settings: serde_json::Value,
    secret_file: &str,
) -> Platform {
    let mut s = serde_json::json!({
        "syntasa_session_policy_enabled": "true",
        "syntasa_session_policy_duration": "3600",
        "service_account_failure": "fallback",
        "session_policy_over_limit": "fallback",
        "sts_deadline_seconds": "5",
        "sts_max_attempts": "3",
    });
    if let (Some(base), Some(extra)) = (s.as_object_mut(), settings.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    let mut aws = serde_json::json!({
        "region": "us-east-1",
        "account_id": ACCOUNT,
        "session_policy_role_arn": role_arn("PlatformInfraRole"),
        "platform_bucket": "acme-platform",
    });
    if let Some(e) = endpoint {
        aws["sts_endpoint"] = e.into();
    }
    platform(serde_json::json!({
        "settings": s,
        "aws": aws,
        "service_accounts": [
            {"id": "sa-finance", "role_arn": role_arn("Finance"),
             "external_id": "fin-ext", "duration_seconds": 43200},
            {"id": "sa-legacy", "access_key_id": {"env": "LEGACY_KEY_ID"},
             "secret_access_key": {"file": secret_file}}
        ],
        "workspaces": [{"id": "ws-finance", "service_account": "sa-finance"}, {"id": "ws-open"}],
        "runtime_templates": [{"id": "rt-default"}, {"id": "rt-legacy", "service_account": "sa-legacy"}],
        "data_planes": [
            {"id": "dp-marketing", "s3": ["s3://acme-data/marketing/"], "glue_databases": ["marketing"]}
        ],
        "users": [
            {"id": "alice", "data_planes": ["dp-marketing"]},
            {"id": "root", "system_admin": true}
        ]
    }))
}
