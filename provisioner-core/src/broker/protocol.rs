//! The broker protocol, version 1: the messages a launcher and `provisioner serve`
//! exchange on the broker's Unix socket, and their framing.
//!
//! Framing: every message is a 4-byte big-endian length followed by that many bytes of
//! UTF-8 JSON. One request and one answer per connection. A request is at most
//! [`MAX_REQUEST_BYTES`]; an answer at most [`MAX_ANSWER_BYTES`].
//!
//! Versioning: every message carries `"version"`. Within a version, fields may be
//! added (readers ignore fields they do not know, and every added field has a
//! default), never removed or given a new meaning; anything else is a new version. A
//! broker answers a version it does not speak with `UNSUPPORTED_VERSION`, naming the
//! versions it does. The README documents the messages field by field.
//!
//! This module is pure: no I/O beyond the `Read`/`Write` handed to the frame
//! functions. It must never put a secret in an error message or in `Debug` output.

use std::fmt;
use std::io::{Read, Write};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::container::EndpointGrant;
use crate::context::Flow;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// The largest request a broker reads.
pub const MAX_REQUEST_BYTES: u32 = 64 * 1024;
/// The largest answer a launcher reads (a decision record with its policy fits many
/// times over).
pub const MAX_ANSWER_BYTES: u32 = 1024 * 1024;
/// The environment variable naming the broker's socket for launchers.
pub const SOCKET_ENV: &str = "SYN_BROKER_SOCKET";

/// What the launcher asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Resolve and obtain credentials for a process that is about to exec.
    Launch,
    /// Resolve only (the dry run of `provisioner explain`): no STS call, no session.
    Explain,
    /// A fresh application token for the HTTPS executor endpoint of the session whose
    /// bearer token is in `session_token`; asked by a process of that session (the
    /// socket peer must be the session's user). No decision, no STS call.
    #[serde(rename = "application_token")]
    ApplicationToken,
}

/// The launch context as the launcher claims it. The broker decides who the caller
/// is from the socket peer; `user` is only a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireContext {
    /// The platform user the launch is for; null means the caller itself.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub workspace: Option<String>,
    #[serde(default)]
    pub runtime_template: Option<String>,
    #[serde(with = "flow_text")]
    pub flow: Flow,
    /// The platform's job id (job flow), recorded only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

/// One request.
///
/// On the wire `context` is required for `launch` and `explain`; for
/// `application_token` it may be absent and is ignored (it reads as
/// [`WireContext::unused`]). `Debug` never shows `session_token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRequest", into = "RawRequest")]
pub struct Request {
    pub version: u32,
    pub op: Op,
    pub context: WireContext,
    /// The launcher can deliver through the credentials endpoint (write the token file,
    /// set `AWS_CONTAINER_*`). Added within version 1; absent (false) from launchers
    /// that cannot, which then always get `delivery: environment`.
    pub accept_endpoint: bool,
    /// The launched program runs executors in other JVMs or hosts that need the broker's
    /// HTTPS executor endpoint and an application token (sent with `accept_endpoint`).
    /// Added within version 1; absent means false.
    pub executor_endpoint: bool,
    /// `application_token` only: the session's bearer token, proving which session the
    /// application token is for. Added within version 1; absent otherwise.
    pub session_token: Option<String>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("version", &self.version)
            .field("op", &self.op)
            .field("context", &self.context)
            .field("accept_endpoint", &self.accept_endpoint)
            .field("executor_endpoint", &self.executor_endpoint)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl WireContext {
    /// The context of a request whose op needs none (`application_token`).
    pub fn unused() -> WireContext {
        WireContext {
            user: None,
            workspace: None,
            runtime_template: None,
            flow: Flow::Notebook,
            job_id: None,
        }
    }
}

/// [`Request`] as it is on the wire: fields added within version 1 are skipped when
/// empty, so that brokers of earlier releases read what launchers of this one send.
#[derive(Serialize, Deserialize)]
struct RawRequest {
    version: u32,
    op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context: Option<WireContext>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    accept_endpoint: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    executor_endpoint: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
}

impl TryFrom<RawRequest> for Request {
    type Error = String;

    fn try_from(raw: RawRequest) -> Result<Request, String> {
        let context = match (raw.op, raw.context) {
            // Ignored for this op, so that a decoded request re-encodes to itself.
            (Op::ApplicationToken, _) => WireContext::unused(),
            (_, Some(c)) => c,
            (_, None) => return Err("missing field `context`".into()),
        };
        Ok(Request {
            version: raw.version,
            op: raw.op,
            context,
            accept_endpoint: raw.accept_endpoint,
            executor_endpoint: raw.executor_endpoint,
            session_token: raw.session_token,
        })
    }
}

impl From<Request> for RawRequest {
    fn from(r: Request) -> RawRequest {
        RawRequest {
            version: r.version,
            context: (r.op != Op::ApplicationToken).then_some(r.context),
            op: r.op,
            accept_endpoint: r.accept_endpoint,
            executor_endpoint: r.executor_endpoint,
            session_token: r.session_token,
        }
    }
}

/// How credentials reach the launched process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Nothing is delivered: the default tier, refusals, explain.
    #[default]
    None,
    /// The keys in `credentials` go into the child's environment.
    Environment,
    /// No keys: `endpoint` names the broker's container-credentials endpoint and the
    /// session's token, and the child's SDKs fetch (and refresh) from there. Launchers
    /// of a release without this value cannot read the answer and refuse the launch.
    Endpoint,
}

/// Credentials in an answer. `Debug` never shows the secret parts.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub session_token: Option<String>,
    /// RFC 3339 UTC; null for keys that do not expire.
    #[serde(default)]
    pub expiration: Option<String>,
}

impl fmt::Debug for WireCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::credentials::debug_redacted(
            f,
            "WireCredentials",
            &self.access_key_id,
            self.session_token.is_some(),
            &self.expiration,
        )
    }
}

/// The session a launch opened: its id (a prefix of the token's hash, for logs) and the
/// token that will authenticate the session's later requests. The broker keeps only
/// the token's hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTicket {
    pub id: String,
    pub token: String,
}

impl fmt::Debug for SessionTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTicket")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Why the broker did not grant a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// `UPPER_SNAKE`: a refusal code of the decision (`UNKNOWN_USER`, `OVER_LIMIT`, …) or
    /// one of the broker's own (`NOT_PERMITTED`, `NOT_ENTITLED`, `MALFORMED_REQUEST`, …).
    pub code: String,
    /// One line: the problem and the fix.
    pub message: String,
    /// The fix alone, when there is one (the refusal kernel shows it apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The exit code the launcher exits with.
    pub exit_code: i32,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub version: u32,
    pub ok: bool,
    /// The decision record (for `explain`, with the policy); present whenever a
    /// decision was made, refusals included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<serde_json::Value>,
    /// Present (possibly null) on `ok` answers.
    #[serde(default)]
    pub credentials: Option<WireCredentials>,
    #[serde(default)]
    pub delivery: Delivery,
    /// The region the child's SDKs use (`AWS_REGION`), when credentials are delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionTicket>,
    /// With `delivery: endpoint`: the endpoint's URL and the bearer token (the session's
    /// token). Added within version 1; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointGrant>,
    /// The broker's HTTPS executor endpoint for this session
    /// (`https://HOST:PORT/v1/credentials/SESSION`) and a fresh application token: on a
    /// launch that asked for `executor_endpoint` and got `delivery: endpoint`, and on an
    /// `application_token` answer. Added within version 1; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_endpoint: Option<EndpointGrant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

impl Answer {
    /// An error answer without a decision record.
    pub fn error(
        code: &str,
        message: impl Into<String>,
        fix: Option<String>,
        exit_code: i32,
    ) -> Answer {
        Answer {
            version: VERSION,
            ok: false,
            record: None,
            credentials: None,
            delivery: Delivery::None,
            region: None,
            session: None,
            endpoint: None,
            executor_endpoint: None,
            error: Some(WireError {
                code: code.into(),
                message: one_line(&message.into()),
                fix,
                exit_code,
            }),
        }
    }
}

/// Why a message could not be framed or decoded. The text is one line and never quotes
/// more than a short excerpt of what was received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the message is {len} bytes, over the limit of {limit}; send a smaller request")]
    TooLarge { len: u64, limit: u32 },
    #[error("the connection closed after {got} of {want} bytes; send the whole message")]
    Truncated { got: usize, want: usize },
    #[error("{0}")]
    Io(String),
    #[error("the message is not valid UTF-8 JSON: {0}; send a version {VERSION} request")]
    Malformed(String),
    #[error(
        "protocol version {0} is not spoken here (this broker speaks version {VERSION}); use a launcher of the broker's release"
    )]
    UnsupportedVersion(u64),
}

impl ProtocolError {
    /// The code an answer carries for this error.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::TooLarge { .. } => "REQUEST_TOO_LARGE",
            ProtocolError::Truncated { .. } | ProtocolError::Io(_) => "INCOMPLETE_REQUEST",
            ProtocolError::Malformed(_) => "MALFORMED_REQUEST",
            ProtocolError::UnsupportedVersion(_) => "UNSUPPORTED_VERSION",
        }
    }
}

/// The length announced by a frame header, checked against `limit`.
pub fn frame_len(header: [u8; 4], limit: u32) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(header);
    if len > limit {
        return Err(ProtocolError::TooLarge {
            len: u64::from(len),
            limit,
        });
    }
    Ok(len as usize)
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "message over 4 GiB"))?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(body);
    // One write: a reader never sees a header without its body because of us.
    w.write_all(&buf)?;
    w.flush()
}

/// Reads one frame of at most `limit` bytes.
pub fn read_frame(r: &mut impl Read, limit: u32) -> Result<Vec<u8>, ProtocolError> {
    let mut header = [0u8; 4];
    read_full(r, &mut header)?;
    let len = frame_len(header, limit)?;
    let mut body = vec![0u8; len];
    read_full(r, &mut body)?;
    Ok(body)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<(), ProtocolError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(ProtocolError::Truncated {
                    got,
                    want: buf.len(),
                });
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ProtocolError::Io(one_line(&e.to_string()))),
        }
    }
    Ok(())
}

/// Just the version, read before the rest so that a request of another version is
/// answered as such, whatever else it holds.
#[derive(Deserialize)]
struct Versioned {
    version: serde_json::Value,
}

/// Decodes a request body (the bytes after the frame header).
pub fn decode_request(body: &[u8]) -> Result<Request, ProtocolError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ProtocolError::Malformed(format!("not UTF-8 ({e})")))?;
    let v: Versioned = serde_json::from_str(text).map_err(|e| malformed(&e))?;
    match v.version.as_u64() {
        Some(n) if n == u64::from(VERSION) => {}
        Some(n) => return Err(ProtocolError::UnsupportedVersion(n)),
        None => {
            return Err(ProtocolError::Malformed(
                "\"version\" must be a whole number".into(),
            ));
        }
    }
    let req: Request = serde_json::from_str(text).map_err(|e| malformed(&e))?;
    Ok(req)
}

/// Decodes an answer body.
pub fn decode_answer(body: &[u8]) -> Result<Answer, ProtocolError> {
    let a: Answer = serde_json::from_slice(body).map_err(|e| malformed(&e))?;
    if a.version != VERSION {
        return Err(ProtocolError::UnsupportedVersion(u64::from(a.version)));
    }
    Ok(a)
}

/// Encodes any message as a frame body.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serializing these types cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_vec(msg).unwrap_or_default()
}

fn malformed(e: &serde_json::Error) -> ProtocolError {
    ProtocolError::Malformed(one_line(&e.to_string()))
}

/// Folds text to one line of bounded length (errors may quote received bytes).
pub fn one_line(s: &str) -> String {
    const MAX: usize = 300;
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX)
        .collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Serde for [`Flow`] as its product text (`notebook`, `notebook-run`, `job`).
mod flow_text {
    use super::*;

    pub fn serialize<S: Serializer>(f: &Flow, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(f.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Flow, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_frame(&mut v, body).unwrap();
        v
    }

    #[test]
    fn a_request_round_trips_and_unknown_fields_are_ignored() {
        let text = br#"{"version":1,"op":"launch","context":{"user":null,"workspace":"ws","runtime_template":null,"flow":"notebook-run","later":"field"},"added":true}"#;
        let req = decode_request(text).unwrap();
        assert_eq!(req.op, Op::Launch);
        assert_eq!(req.context.flow, Flow::NotebookRun);
        assert_eq!(req.context.workspace.as_deref(), Some("ws"));
        let again = decode_request(&encode(&req)).unwrap();
        assert_eq!(again, req);
    }

    #[test]
    fn version_is_checked_before_the_rest() {
        let e = decode_request(br#"{"version":2,"op":"fly"}"#).unwrap_err();
        assert_eq!(e, ProtocolError::UnsupportedVersion(2));
        assert_eq!(e.code(), "UNSUPPORTED_VERSION");
        let e = decode_request(br#"{"version":"1"}"#).unwrap_err();
        assert_eq!(e.code(), "MALFORMED_REQUEST");
    }

    #[test]
    fn malformed_requests_are_one_line_errors() {
        for body in [
            &b""[..],
            b"{",
            b"\xff\xfe",
            b"[]",
            br#"{"version":1,"op":"launch","context":{"flow":"batch"}}"#,
            br#"{"version":1,"op":"steal","context":{"flow":"job"}}"#,
            br#"{"version":1,"op":"launch"}"#,
        ] {
            let e = decode_request(body).unwrap_err();
            assert_eq!(e.code(), "MALFORMED_REQUEST", "{body:?}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn frames_over_the_limit_or_cut_short_are_refused() {
        let mut big = Vec::from((MAX_REQUEST_BYTES + 1).to_be_bytes());
        big.extend_from_slice(b"{}");
        let e = read_frame(&mut big.as_slice(), MAX_REQUEST_BYTES).unwrap_err();
        assert_eq!(e.code(), "REQUEST_TOO_LARGE");
        let mut cut = frame(b"{\"version\":1}");
        cut.truncate(8);
        let e = read_frame(&mut cut.as_slice(), MAX_REQUEST_BYTES).unwrap_err();
        assert_eq!(e, ProtocolError::Truncated { got: 4, want: 13 });
        let e = read_frame(&mut [0u8, 0].as_slice(), MAX_REQUEST_BYTES).unwrap_err();
        assert_eq!(e, ProtocolError::Truncated { got: 2, want: 4 });
        let ok = frame(b"{}");
        assert_eq!(read_frame(&mut ok.as_slice(), 2).unwrap(), b"{}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = WireCredentials {
            access_key_id: "AKID".into(),
            secret_access_key: "s3cr3t".into(),
            session_token: Some("t0k3n".into()),
            expiration: None,
        };
        let t = SessionTicket {
            id: "abc".into(),
            token: "sessiontoken".into(),
        };
        let e = EndpointGrant {
            url: "http://127.0.0.1:1/v1/credentials/abc".into(),
            token: "sessiontoken".into(),
        };
        let d = format!("{c:?} {t:?} {e:?}");
        assert!(
            !d.contains("s3cr3t") && !d.contains("t0k3n") && !d.contains("sessiontoken"),
            "{d}"
        );
    }

    #[test]
    fn an_answer_without_the_endpoint_field_still_reads() {
        let a = decode_answer(br#"{"version":1,"ok":true,"credentials":null,"delivery":"none"}"#)
            .unwrap();
        assert_eq!(a.endpoint, None);
        let a = decode_answer(
            br#"{"version":1,"ok":true,"credentials":null,"delivery":"endpoint","endpoint":{"url":"http://127.0.0.1:1/v1/credentials/a","token":"t"}}"#,
        )
        .unwrap();
        assert_eq!(a.delivery, Delivery::Endpoint);
        assert_eq!(a.endpoint.unwrap().token, "t");
    }

    #[test]
    fn requests_of_earlier_launchers_still_read_and_added_fields_are_skipped_when_empty() {
        // A launcher of the previous release: no executor_endpoint, no session_token.
        let old = br#"{"version":1,"op":"launch","context":{"user":null,"workspace":null,"runtime_template":null,"flow":"notebook"},"accept_endpoint":true}"#;
        let req = decode_request(old).unwrap();
        assert!(req.accept_endpoint && !req.executor_endpoint);
        assert_eq!(req.session_token, None);
        // Re-encoded, the added fields are absent, so earlier brokers read it as before.
        let text = String::from_utf8(encode(&req)).unwrap();
        assert!(
            !text.contains("executor_endpoint") && !text.contains("session_token"),
            "{text}"
        );
        let mut req = req;
        req.executor_endpoint = true;
        let text = String::from_utf8(encode(&req)).unwrap();
        assert!(text.contains(r#""executor_endpoint":true"#), "{text}");
        assert_eq!(decode_request(text.as_bytes()).unwrap(), req);
        let plain = String::from_utf8(encode(&Request {
            accept_endpoint: false,
            executor_endpoint: false,
            ..req
        }))
        .unwrap();
        assert!(
            !plain.contains("accept_endpoint") && !plain.contains("executor_endpoint"),
            "{plain}"
        );
    }

    #[test]
    fn an_application_token_request_needs_no_context_and_hides_its_token() {
        let body = br#"{"version":1,"op":"application_token","session_token":"s3ss10n"}"#;
        let req = decode_request(body).unwrap();
        assert_eq!(req.op, Op::ApplicationToken);
        assert_eq!(req.session_token.as_deref(), Some("s3ss10n"));
        assert_eq!(req.context, WireContext::unused());
        let text = String::from_utf8(encode(&req)).unwrap();
        assert_eq!(
            text,
            r#"{"version":1,"op":"application_token","session_token":"s3ss10n"}"#
        );
        // A context sent anyway is ignored, and the request still re-encodes to itself.
        let with = br#"{"version":1,"op":"application_token","session_token":"t","context":{"user":"bob","flow":"job"}}"#;
        let req2 = decode_request(with).unwrap();
        assert_eq!(req2.context, WireContext::unused());
        assert_eq!(decode_request(&encode(&req2)).unwrap(), req2);
        assert!(!format!("{req:?}").contains("s3ss10n"), "{req:?}");
        // Launch and explain still need their context.
        let e = decode_request(br#"{"version":1,"op":"explain","session_token":"t"}"#).unwrap_err();
        assert_eq!(e.code(), "MALFORMED_REQUEST");
        assert!(e.to_string().contains("context"), "{e}");
    }

    #[test]
    fn answers_carry_the_executor_endpoint_only_when_there_is_one() {
        let a = decode_answer(
            br#"{"version":1,"ok":true,"executor_endpoint":{"url":"https://broker.example:8443/v1/credentials/abc","token":"00ff"}}"#,
        )
        .unwrap();
        let grant = a.executor_endpoint.clone().unwrap();
        assert_eq!(grant.url, "https://broker.example:8443/v1/credentials/abc");
        assert!(!format!("{a:?}").contains("00ff"));
        let text = String::from_utf8(encode(&Answer::error("X", "m", None, 4))).unwrap();
        assert!(!text.contains("executor_endpoint"), "{text}");
        let again = decode_answer(&encode(&a)).unwrap();
        assert_eq!(again, a);
    }

    #[test]
    fn an_error_answer_is_one_line() {
        let a = Answer::error("NOT_PERMITTED", "a\nb", None, 3);
        let e = a.error.unwrap();
        assert_eq!(e.message, "a b");
        assert!(!a.ok);
    }
}
