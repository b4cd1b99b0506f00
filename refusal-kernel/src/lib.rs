//! The refusal kernel: what a refused notebook launch serves instead of exiting.
//!
//! When Jupyter starts a kernel and the launcher exits, the user sees only "kernel
//! died" and an endless restart loop. So a refused notebook launch stays up and
//! speaks just enough of the Jupyter messaging protocol (v5.3) on the ports of the
//! connection file that every cell execution answers with the reason for the
//! refusal and the fix, and the kernel shuts down when Jupyter asks.
//!
//! Channels, as in every Jupyter kernel: shell, control and stdin are ROUTER
//! sockets, iopub is PUB, heartbeat is REP (echoes every frame). Messages are
//! `[identities…, "<IDS|MSG>", signature, header, parent_header, metadata,
//! content, buffers…]`; the signature is an HMAC (scheme from the connection
//! file, `hmac-sha256` by default) over the four JSON frames with the connection
//! file's key; an empty key means no signing.
//!
//! | request | answer |
//! |---|---|
//! | `kernel_info_request` | protocol 5.3, implementation `provisioner-refusal`, banner with the refusal |
//! | `execute_request` | iopub `execute_input` and an `error` carrying the refusal; reply `status: error`, `ename: KernelRefused` |
//! | `is_complete_request` | `complete` (so a console sends the line and shows the refusal) |
//! | `complete_request`, `inspect_request`, `history_request`, `comm_info_request` | empty answers |
//! | `interrupt_request` (control) | `ok`; there is never anything running |
//! | `shutdown_request` (shell or control) | reply, then [`serve`] returns |
//! | anything else | ignored, with a note on stderr |
//!
//! Lifetime belongs to Jupyter: there is no idle timeout. [`serve`] returns on a
//! shutdown request, on SIGTERM, or when the parent process that launched it goes
//! away (as ipykernel does). SIGINT is an interrupt, as for any kernel: Jupyter
//! sends it for the interrupt button (`interrupt_mode: signal`, the default), so
//! it must not end the kernel.
//!
//! This module must never run user code, never answer a message whose signature
//! does not verify, and never print the connection key.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Sha256, Sha512};
use zeromq::{
    PubSocket, RepSocket, RouterSocket, Socket, SocketRecv, SocketSend, ZmqError, ZmqMessage,
};

/// The protocol version this kernel speaks.
pub const PROTOCOL_VERSION: &str = "5.3";
/// `implementation` in `kernel_info_reply`.
pub const IMPLEMENTATION: &str = "provisioner-refusal";
/// `ename` of every execution error.
pub const ENAME: &str = "KernelRefused";

/// The requests answered; anything else is ignored with a note.
const HANDLED: [&str; 9] = [
    "kernel_info_request",
    "execute_request",
    "is_complete_request",
    "complete_request",
    "inspect_request",
    "history_request",
    "comm_info_request",
    "interrupt_request",
    "shutdown_request",
];
/// Frame separating routing identities from the message.
const DELIMITER: &[u8] = b"<IDS|MSG>";
/// How often the parent process is checked.
const PARENT_POLL: Duration = Duration::from_secs(1);
/// How long queued replies get to reach the wire after a shutdown reply, like
/// ZeroMQ's linger: the reply to `shutdown_request` must arrive before we exit.
const LINGER: Duration = Duration::from_millis(300);
/// Signatures remembered to reject replayed messages (jupyter_client's default size).
const DIGEST_HISTORY: usize = 1 << 16;

/// What the refusal kernel tells the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalNotice {
    /// Short name of the refusal (the refusal code).
    pub title: String,
    /// Why the launch was refused.
    pub message: String,
    /// What to do about it.
    pub fix: String,
    /// The exit code the launcher ends with once the kernel is shut down.
    pub exit_code: i32,
    /// The decision record, shown under the refusal so it can be handed to an
    /// administrator. Records never carry secrets.
    pub record_json: Option<String>,
}

impl RefusalNotice {
    /// The text every execution answers with:
    /// `Kernel refused: <title>\n<message>\nFix: <fix>`.
    pub fn text(&self) -> String {
        format!(
            "Kernel refused: {}\n{}\nFix: {}",
            self.title, self.message, self.fix
        )
    }

    /// The error lines of an execution: the text, then the decision record if any.
    fn traceback(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.text().lines().map(str::to_string).collect();
        if let Some(record) = &self.record_json {
            lines.push(String::new());
            lines.push("Decision record:".to_string());
            lines.extend(record.lines().map(str::to_string));
        }
        lines
    }
}

/// Why the refusal kernel could not be served.
#[derive(Debug, thiserror::Error)]
pub enum RefusalKernelError {
    #[error(
        "cannot read the kernel connection file {path}: {source}; fix: start the kernel from Jupyter, which passes an existing connection file"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "kernel connection file {path} is not usable: {reason}; fix: start the kernel from Jupyter, which writes a complete tcp connection file"
    )]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "cannot listen on {endpoint} for the {channel} channel: {reason}; fix: free the port or let Jupyter pick new ports by restarting the kernel"
    )]
    Bind {
        channel: &'static str,
        endpoint: String,
        reason: String,
    },
    #[error(
        "cannot set up the refusal kernel: {0}; fix: check the process limits (open files) of the Jupyter server"
    )]
    Setup(std::io::Error),
}

/// Finds the connection file in a kernel command line (the argv after `--`).
///
/// Recognised, first match wins:
/// - `-f PATH`, `-f=PATH`, `--f PATH`, `--f=PATH` (ipykernel and other traitlets
///   kernels, xeus kernels);
/// - `--connection-file PATH`, `--connection-file=PATH`, `--connection_file PATH`,
///   `--connection_file=PATH`;
/// - otherwise the last argument ending in `.json` that names an existing file
///   (kernels that take the file as a plain argument: IRkernel, IJulia, gophernotes).
///
/// Arguments after a lone `--` still count: interpreters pass their own options first.
pub fn connection_file_from_argv(argv: &[OsString]) -> Option<PathBuf> {
    const FLAGS: [&str; 4] = ["-f", "--f", "--connection-file", "--connection_file"];
    let mut iter = argv.iter();
    while let Some(arg) = iter.next() {
        let Some(s) = arg.to_str() else { continue };
        if FLAGS.contains(&s) {
            if let Some(value) = iter.next() {
                return Some(PathBuf::from(value));
            }
            return None;
        }
        for flag in FLAGS {
            if let Some(value) = s.strip_prefix(flag).and_then(|r| r.strip_prefix('='))
                && !value.is_empty()
            {
                return Some(PathBuf::from(value));
            }
        }
    }
    argv.iter()
        .rev()
        .map(Path::new)
        .find(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
        .map(Path::to_path_buf)
}

/// Serves the refusal kernel on the ports of `connection_file` until Jupyter shuts
/// it down (shutdown request or SIGTERM) or the parent process goes away. Blocks.
///
/// The caller exits with `refusal.exit_code` afterwards.
pub fn serve(connection_file: &Path, refusal: &RefusalNotice) -> Result<(), RefusalKernelError> {
    // Recorded first, before anything can fail or block, so that a parent exiting
    // during start-up is still noticed.
    let parent = nix::unistd::getppid();
    let info = ConnectionInfo::read(connection_file)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RefusalKernelError::Setup)?;
    runtime.block_on(run(info, refusal, parent))
}

/// Writes a note on stderr. Never panics: Jupyter may have closed our stderr.
fn note(text: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "provisioner: refusal kernel: {text}");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Sha256,
    Sha512,
}

/// The contents of a connection file. No `Debug`: it holds the signing key.
struct ConnectionInfo {
    ip: String,
    shell_port: u16,
    iopub_port: u16,
    stdin_port: u16,
    control_port: u16,
    hb_port: u16,
    key: Vec<u8>,
    scheme: Scheme,
}

#[derive(Deserialize)]
struct ConnectionFile {
    #[serde(default)]
    transport: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    shell_port: u16,
    iopub_port: u16,
    stdin_port: u16,
    control_port: u16,
    hb_port: u16,
    /// Kept as a JSON value so a wrongly typed key is never quoted in an error.
    #[serde(default)]
    key: Option<Value>,
    #[serde(default)]
    signature_scheme: Option<String>,
}

impl ConnectionInfo {
    fn read(path: &Path) -> Result<ConnectionInfo, RefusalKernelError> {
        let text = std::fs::read_to_string(path).map_err(|source| RefusalKernelError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ConnectionInfo::parse(&text).map_err(|reason| RefusalKernelError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    fn parse(text: &str) -> Result<ConnectionInfo, String> {
        let f: ConnectionFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let transport = f.transport.as_deref().unwrap_or("tcp");
        if transport != "tcp" {
            return Err(format!(
                "transport {transport:?} is not supported, only \"tcp\""
            ));
        }
        let scheme = match f.signature_scheme.as_deref().unwrap_or("hmac-sha256") {
            "hmac-sha256" => Scheme::Sha256,
            "hmac-sha512" => Scheme::Sha512,
            other => {
                return Err(format!(
                    "signature_scheme {other:?} is not supported, only \"hmac-sha256\" or \"hmac-sha512\""
                ));
            }
        };
        let ports = [
            ("shell_port", f.shell_port),
            ("iopub_port", f.iopub_port),
            ("stdin_port", f.stdin_port),
            ("control_port", f.control_port),
            ("hb_port", f.hb_port),
        ];
        if let Some((name, _)) = ports.iter().find(|(_, p)| *p == 0) {
            return Err(format!("{name} is 0; every port must be given"));
        }
        let key = match f.key {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(k)) => k.into_bytes(),
            Some(_) => return Err("key is not a string".to_string()),
        };
        let ip = f.ip.unwrap_or_else(|| "127.0.0.1".to_string());
        if ip.is_empty() {
            return Err("ip is empty".to_string());
        }
        Ok(ConnectionInfo {
            ip,
            shell_port: f.shell_port,
            iopub_port: f.iopub_port,
            stdin_port: f.stdin_port,
            control_port: f.control_port,
            hb_port: f.hb_port,
            key,
            scheme,
        })
    }

    fn endpoint(&self, port: u16) -> String {
        if self.ip.contains(':') && !self.ip.starts_with('[') {
            format!("tcp://[{}]:{port}", self.ip)
        } else {
            format!("tcp://{}:{port}", self.ip)
        }
    }
}

/// Signs and verifies messages; remembers signatures to refuse replays.
struct Signer {
    key: Vec<u8>,
    scheme: Scheme,
    seen: HashSet<Vec<u8>>,
    seen_order: VecDeque<Vec<u8>>,
}

impl Signer {
    fn new(key: Vec<u8>, scheme: Scheme) -> Signer {
        Signer {
            key,
            scheme,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
        }
    }

    fn enabled(&self) -> bool {
        !self.key.is_empty()
    }

    fn sign(&self, parts: [&[u8]; 4]) -> String {
        if !self.enabled() {
            return String::new();
        }
        match self.scheme {
            Scheme::Sha256 => hex::encode(mac::<Hmac<Sha256>>(&self.key, parts)),
            Scheme::Sha512 => hex::encode(mac::<Hmac<Sha512>>(&self.key, parts)),
        }
    }

    /// Checks `signature` (hex) over `parts` in constant time, then against replays.
    fn verify(&mut self, signature: &[u8], parts: [&[u8]; 4]) -> Result<(), &'static str> {
        if !self.enabled() {
            return Ok(());
        }
        let Ok(raw) = hex::decode(signature) else {
            return Err("signature is not hex");
        };
        let ok = match self.scheme {
            Scheme::Sha256 => verify_mac::<Hmac<Sha256>>(&self.key, parts, &raw),
            Scheme::Sha512 => verify_mac::<Hmac<Sha512>>(&self.key, parts, &raw),
        };
        if !ok {
            return Err("invalid signature");
        }
        if !self.seen.insert(raw.clone()) {
            return Err("duplicate signature (replayed message)");
        }
        self.seen_order.push_back(raw);
        if self.seen_order.len() > DIGEST_HISTORY
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        Ok(())
    }
}

fn keyed<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: [&[u8]; 4]) -> Option<M> {
    // HMAC accepts keys of any length, so this never fails in practice.
    let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).ok()?;
    for p in parts {
        m.update(p);
    }
    Some(m)
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: [&[u8]; 4]) -> Vec<u8> {
    keyed::<M>(key, parts)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

fn verify_mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: [&[u8]; 4], sig: &[u8]) -> bool {
    keyed::<M>(key, parts).is_some_and(|m| m.verify_slice(sig).is_ok())
}

/// One decoded, verified request.
struct Request {
    identities: Vec<Vec<u8>>,
    header: Value,
    content: Value,
}

impl Request {
    fn msg_type(&self) -> &str {
        self.header
            .get("msg_type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// Splits, verifies and decodes a message from a ROUTER socket.
fn decode(frames: Vec<Vec<u8>>, signer: &mut Signer) -> Result<Request, String> {
    let Some(at) = frames.iter().position(|f| f == DELIMITER) else {
        return Err("no <IDS|MSG> delimiter".to_string());
    };
    let mut identities = frames;
    let rest = identities.split_off(at);
    if rest.len() < 6 {
        return Err(format!(
            "{} frames after the delimiter, expected at least 5",
            rest.len() - 1
        ));
    }
    let parts = [
        rest[2].as_slice(),
        rest[3].as_slice(),
        rest[4].as_slice(),
        rest[5].as_slice(),
    ];
    signer.verify(&rest[1], parts)?;
    let header: Value =
        serde_json::from_slice(&rest[2]).map_err(|e| format!("header is not JSON: {e}"))?;
    let content: Value =
        serde_json::from_slice(&rest[5]).map_err(|e| format!("content is not JSON: {e}"))?;
    if !header.is_object() {
        return Err("header is not a JSON object".to_string());
    }
    Ok(Request {
        identities,
        header,
        content,
    })
}

/// Builds headers, ids and signed frames for outgoing messages.
struct Session {
    signer: Signer,
    id: String,
    counter: AtomicU64,
}

impl Session {
    fn new(signer: Signer) -> Session {
        Session {
            signer,
            id: new_session_id(),
            counter: AtomicU64::new(0),
        }
    }

    fn header(&self, msg_type: &str) -> Value {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        json!({
            "msg_id": format!("{}_{}_{n}", self.id, std::process::id()),
            "msg_type": msg_type,
            "username": "provisioner",
            "session": self.id,
            "date": iso8601_utc(SystemTime::now()),
            "version": PROTOCOL_VERSION,
        })
    }

    /// The full multipart message: identities, delimiter, signature, four JSON frames.
    fn frames(
        &self,
        identities: &[Vec<u8>],
        msg_type: &str,
        parent: &Value,
        content: &Value,
    ) -> ZmqMessage {
        let header = self.header(msg_type).to_string().into_bytes();
        let parent = parent.to_string().into_bytes();
        let metadata = b"{}".to_vec();
        let content = content.to_string().into_bytes();
        let signature = self
            .signer
            .sign([&header, &parent, &metadata, &content])
            .into_bytes();
        let mut out = identities.to_vec();
        out.push(DELIMITER.to_vec());
        out.push(signature);
        out.push(header);
        out.push(parent);
        out.push(metadata);
        out.push(content);
        let mut frames = out.into_iter();
        // `out` always has at least the delimiter, so the first frame exists.
        let mut msg = ZmqMessage::from(frames.next().unwrap_or_default());
        for f in frames {
            msg.push_back(f.into());
        }
        msg
    }
}

/// A session id: unique enough to tell this kernel's messages apart (not a secret).
fn new_session_id() -> String {
    let d = format!("{:032x}", fastrand::u128(..));
    format!(
        "{}-{}-{}-{}-{}",
        &d[0..8],
        &d[8..12],
        &d[12..16],
        &d[16..20],
        &d[20..32]
    )
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the date format of message headers.
fn iso8601_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or_default();
    let whole = DateTime::from_secs(secs)
        .fmt(Format::DateTime)
        .unwrap_or_default();
    // Whole seconds from the SDK's formatter, then microseconds as ipykernel writes them.
    format!("{}.{:06}Z", whole.trim_end_matches('Z'), d.subsec_micros())
}

fn to_frames(msg: ZmqMessage) -> Vec<Vec<u8>> {
    msg.into_vec().into_iter().map(|b| b.to_vec()).collect()
}

/// What the serve loop does next.
#[derive(PartialEq, Eq)]
enum Next {
    Continue,
    Stop,
}

struct Kernel<'a> {
    session: Session,
    notice: &'a RefusalNotice,
    iopub: PubSocket,
    execution_count: u64,
}

impl Kernel<'_> {
    async fn publish(&mut self, msg_type: &str, parent: &Value, content: Value) {
        let topic = format!("kernel.{}.{msg_type}", self.session.id).into_bytes();
        let msg = self.session.frames(&[topic], msg_type, parent, &content);
        if let Err(e) = self.iopub.send(msg).await {
            note(format_args!("cannot publish {msg_type} on iopub: {e}"));
        }
    }

    async fn status(&mut self, state: &str, parent: &Value) {
        self.publish("status", parent, json!({ "execution_state": state }))
            .await;
    }

    /// Handles one message from the shell or control channel.
    async fn handle(
        &mut self,
        socket: &mut RouterSocket,
        channel: &'static str,
        frames: Vec<Vec<u8>>,
    ) -> Next {
        let request = match decode(frames, &mut self.session.signer) {
            Ok(r) => r,
            Err(why) => {
                note(format_args!("dropped a {channel} message: {why}"));
                return Next::Continue;
            }
        };
        let msg_type = request.msg_type().to_string();
        if !HANDLED.contains(&msg_type.as_str()) {
            note(format_args!(
                "ignored {msg_type:?} on the {channel} channel"
            ));
            return Next::Continue;
        }
        let parent = request.header.clone();
        // Busy first: frontends expect busy, then the outputs, then the reply, then idle.
        self.status("busy", &parent).await;
        let (reply_type, content, next) = match msg_type.as_str() {
            "kernel_info_request" => ("kernel_info_reply", self.kernel_info(), Next::Continue),
            "execute_request" => (
                "execute_reply",
                self.execute(&request, &parent).await,
                Next::Continue,
            ),
            "is_complete_request" => (
                "is_complete_reply",
                json!({ "status": "complete" }),
                Next::Continue,
            ),
            "complete_request" => {
                let cursor = request
                    .content
                    .get("cursor_pos")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                (
                    "complete_reply",
                    json!({
                        "status": "ok",
                        "matches": [],
                        "cursor_start": cursor,
                        "cursor_end": cursor,
                        "metadata": {},
                    }),
                    Next::Continue,
                )
            }
            "inspect_request" => (
                "inspect_reply",
                json!({ "status": "ok", "found": false, "data": {}, "metadata": {} }),
                Next::Continue,
            ),
            "history_request" => (
                "history_reply",
                json!({ "status": "ok", "history": [] }),
                Next::Continue,
            ),
            "comm_info_request" => (
                "comm_info_reply",
                json!({ "status": "ok", "comms": {} }),
                Next::Continue,
            ),
            "interrupt_request" => ("interrupt_reply", json!({ "status": "ok" }), Next::Continue),
            "shutdown_request" => {
                let restart = request
                    .content
                    .get("restart")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                (
                    "shutdown_reply",
                    json!({ "status": "ok", "restart": restart }),
                    Next::Stop,
                )
            }
            // Not reached: HANDLED lists exactly the arms above.
            _ => {
                self.status("idle", &parent).await;
                return Next::Continue;
            }
        };
        let reply = self
            .session
            .frames(&request.identities, reply_type, &parent, &content);
        if let Err(e) = socket.send(reply).await {
            note(format_args!(
                "cannot send {reply_type} on the {channel} channel: {e}"
            ));
        }
        if next == Next::Stop {
            // ipykernel also publishes the shutdown reply, for other clients.
            self.publish(reply_type, &parent, content).await;
        }
        self.status("idle", &parent).await;
        next
    }

    fn kernel_info(&self) -> Value {
        let mut banner = format!(
            "This kernel was not started: the launch was refused.\n{}",
            self.notice.text()
        );
        if let Some(record) = &self.notice.record_json {
            banner.push_str("\n\nDecision record:\n");
            banner.push_str(record);
        }
        json!({
            "status": "ok",
            "protocol_version": PROTOCOL_VERSION,
            "implementation": IMPLEMENTATION,
            "implementation_version": env!("CARGO_PKG_VERSION"),
            // The notebook asked for a Python kernel; saying so keeps its metadata
            // intact. No version is claimed: no interpreter is running.
            "language_info": {
                "name": "python",
                "version": "",
                "mimetype": "text/x-python",
                "file_extension": ".py",
            },
            "banner": banner,
            "help_links": [],
            "debugger": false,
        })
    }

    /// Publishes the refusal for one execution and returns the reply content.
    async fn execute(&mut self, request: &Request, parent: &Value) -> Value {
        let code = request
            .content
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let silent = request
            .content
            .get("silent")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let store_history = !silent
            && request
                .content
                .get("store_history")
                .and_then(Value::as_bool)
                .unwrap_or(true);
        if store_history {
            self.execution_count += 1;
        }
        let count = self.execution_count;
        let error = json!({
            "ename": ENAME,
            "evalue": self.notice.message,
            "traceback": self.notice.traceback(),
        });
        if !silent {
            self.publish(
                "execute_input",
                parent,
                json!({ "code": code, "execution_count": count }),
            )
            .await;
            self.publish("error", parent, error.clone()).await;
        }
        let mut reply = error;
        if let Some(obj) = reply.as_object_mut() {
            obj.insert("status".to_string(), json!("error"));
            obj.insert("execution_count".to_string(), json!(count));
        }
        reply
    }
}

enum Event {
    Shell(Result<ZmqMessage, ZmqError>),
    Control(Result<ZmqMessage, ZmqError>),
    Stdin(Result<ZmqMessage, ZmqError>),
    Heartbeat(Result<ZmqMessage, ZmqError>),
    Terminate,
    Interrupt,
    ParentCheck,
}

async fn bind<S: Socket>(
    socket: &mut S,
    channel: &'static str,
    info: &ConnectionInfo,
    port: u16,
) -> Result<(), RefusalKernelError> {
    let endpoint = info.endpoint(port);
    socket
        .bind(&endpoint)
        .await
        .map(|_| ())
        .map_err(|e| RefusalKernelError::Bind {
            channel,
            endpoint,
            reason: e.to_string(),
        })
}

async fn run(
    info: ConnectionInfo,
    notice: &RefusalNotice,
    parent_pid: nix::unistd::Pid,
) -> Result<(), RefusalKernelError> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut sigterm = signal(SignalKind::terminate()).map_err(RefusalKernelError::Setup)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RefusalKernelError::Setup)?;

    let mut shell = RouterSocket::new();
    let mut control = RouterSocket::new();
    let mut stdin = RouterSocket::new();
    let mut iopub = PubSocket::new();
    let mut hb = RepSocket::new();
    bind(&mut shell, "shell", &info, info.shell_port).await?;
    bind(&mut control, "control", &info, info.control_port).await?;
    bind(&mut stdin, "stdin", &info, info.stdin_port).await?;
    bind(&mut iopub, "iopub", &info, info.iopub_port).await?;
    bind(&mut hb, "heartbeat", &info, info.hb_port).await?;

    if info.key.is_empty() {
        note("the connection file has an empty key: messages are not signed");
    }
    let mut kernel = Kernel {
        session: Session::new(Signer::new(info.key, info.scheme)),
        notice,
        iopub,
        execution_count: 0,
    };
    kernel.status("starting", &json!({})).await;
    note(format_args!(
        "serving the refusal on {} ({})",
        info.ip, notice.title
    ));

    let mut parent_check = tokio::time::interval(PARENT_POLL);
    loop {
        let event = tokio::select! {
            r = shell.recv() => Event::Shell(r),
            r = control.recv() => Event::Control(r),
            r = stdin.recv() => Event::Stdin(r),
            r = hb.recv() => Event::Heartbeat(r),
            _ = sigterm.recv() => Event::Terminate,
            _ = sigint.recv() => Event::Interrupt,
            _ = parent_check.tick() => Event::ParentCheck,
        };
        match event {
            Event::Shell(Ok(m)) => {
                if kernel.handle(&mut shell, "shell", to_frames(m)).await == Next::Stop {
                    break;
                }
            }
            Event::Control(Ok(m)) => {
                if kernel.handle(&mut control, "control", to_frames(m)).await == Next::Stop {
                    break;
                }
            }
            Event::Stdin(Ok(_)) => note("ignored a message on the stdin channel"),
            Event::Heartbeat(Ok(m)) => {
                if let Err(e) = hb.send(m).await {
                    note(format_args!("cannot answer a heartbeat: {e}"));
                }
            }
            Event::Shell(Err(e))
            | Event::Control(Err(e))
            | Event::Stdin(Err(e))
            | Event::Heartbeat(Err(e)) => note(format_args!("receive error: {e}")),
            Event::Terminate => {
                note("terminated by signal");
                return Ok(());
            }
            Event::Interrupt => note("interrupted; nothing is running"),
            Event::ParentCheck => {
                if nix::unistd::getppid() != parent_pid {
                    note("the process that started this kernel is gone; exiting");
                    return Ok(());
                }
            }
        }
    }
    note("shut down on request");
    tokio::time::sleep(LINGER).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn connection_file_forms() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (
                &["python", "-m", "ipykernel_launcher", "-f", "/r/k.json"],
                Some("/r/k.json"),
            ),
            (
                &["python", "-m", "ipykernel", "-f=/r/k.json"],
                Some("/r/k.json"),
            ),
            (
                &["python", "-m", "ipykernel", "--f=/r/k.json"],
                Some("/r/k.json"),
            ),
            (
                &["python", "-m", "ipykernel", "--f", "/r/k.json"],
                Some("/r/k.json"),
            ),
            (
                &["xeus", "--connection-file", "/r/k.json"],
                Some("/r/k.json"),
            ),
            (&["xeus", "--connection-file=/r/k.json"], Some("/r/k.json")),
            (&["k", "--connection_file=/r/k.json"], Some("/r/k.json")),
            (&["python", "-m", "ipykernel", "-f"], None),
            (&["python", "-m", "ipykernel"], None),
            // Not a file that exists: the plain-argument form needs an existing file.
            (&["R", "--args", "/nonexistent/kernel-1.json"], None),
            // -f= with nothing after it is not a path.
            (&["k", "-f="], None),
        ];
        for (argv, want) in cases {
            assert_eq!(
                connection_file_from_argv(&os(argv)),
                want.map(PathBuf::from),
                "{argv:?}"
            );
        }
    }

    #[test]
    fn connection_file_as_plain_argument_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kernel-abc.json");
        std::fs::write(&file, "{}").unwrap();
        let argv = vec![
            OsString::from("R"),
            OsString::from("-e"),
            OsString::from("IRkernel::main()"),
            OsString::from("--args"),
            file.clone().into_os_string(),
        ];
        assert_eq!(connection_file_from_argv(&argv), Some(file));
    }

    #[test]
    fn dates_are_iso8601_utc() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000);
        assert_eq!(iso8601_utc(t), "2023-11-14T22:13:20.123456Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(iso8601_utc(leap), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn signature_matches_known_hmac_and_rejects_tampering_and_replay() {
        // HMAC-SHA256("key", "abcd") computed independently (Python hmac module).
        let mut s = Signer::new(b"key".to_vec(), Scheme::Sha256);
        let sig = s.sign([b"a", b"b", b"c", b"d"]);
        assert_eq!(
            sig,
            "2a31ec0ee8d878c9eece9fb0df79b3b90b2256240163aa5ee50d176d3d1121f8"
        );
        assert!(s.verify(sig.as_bytes(), [b"a", b"b", b"c", b"e"]).is_err());
        assert!(s.verify(sig.as_bytes(), [b"a", b"b", b"c", b"d"]).is_ok());
        assert_eq!(
            s.verify(sig.as_bytes(), [b"a", b"b", b"c", b"d"]),
            Err("duplicate signature (replayed message)")
        );
        assert!(s.verify(b"zz", [b"a", b"b", b"c", b"d"]).is_err());
        let open = Signer::new(Vec::new(), Scheme::Sha256);
        assert_eq!(open.sign([b"a", b"b", b"c", b"d"]), "");
    }

    #[test]
    fn connection_file_errors_name_the_problem() {
        let ok = r#"{"shell_port":1,"iopub_port":2,"stdin_port":3,"control_port":4,"hb_port":5,
            "ip":"127.0.0.1","key":"k","transport":"tcp","signature_scheme":"hmac-sha256","kernel_name":"x"}"#;
        let info = ConnectionInfo::parse(ok).unwrap();
        assert_eq!(info.endpoint(info.shell_port), "tcp://127.0.0.1:1");
        let ipc = ok.replace(r#""transport":"tcp""#, r#""transport":"ipc""#);
        assert!(ConnectionInfo::parse(&ipc).err().unwrap().contains("ipc"));
        let md5 = ok.replace("hmac-sha256", "hmac-md5");
        assert!(
            ConnectionInfo::parse(&md5)
                .err()
                .unwrap()
                .contains("hmac-md5")
        );
        let zero = ok.replace(r#""hb_port":5"#, r#""hb_port":0"#);
        assert!(
            ConnectionInfo::parse(&zero)
                .err()
                .unwrap()
                .contains("hb_port")
        );
        let missing = ok.replace(r#""stdin_port":3,"#, "");
        assert!(
            ConnectionInfo::parse(&missing)
                .err()
                .unwrap()
                .contains("stdin_port")
        );
        let numeric_key = ok.replace(r#""key":"k""#, r#""key":987654321"#);
        let e = ConnectionInfo::parse(&numeric_key).err().unwrap();
        assert!(e.contains("key") && !e.contains("987654321"), "{e}");
        let v6 = ok.replace("127.0.0.1", "::1");
        let info = ConnectionInfo::parse(&v6).unwrap();
        assert_eq!(info.endpoint(9), "tcp://[::1]:9");
    }
}
