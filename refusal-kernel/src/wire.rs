//! Jupyter messages on the wire: decoding a request's frames, and the headers and frames
//! of the messages this kernel sends.

use super::*;

/// One decoded, verified request.
pub(super) struct Request {
    pub(super) identities: Vec<Vec<u8>>,
    pub(super) header: Value,
    pub(super) content: Value,
}

impl Request {
    pub(super) fn msg_type(&self) -> &str {
        self.header
            .get("msg_type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// Splits, verifies and decodes a message from a ROUTER socket.
pub(super) fn decode(frames: Vec<Vec<u8>>, signer: &mut Signer) -> Result<Request, String> {
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
pub(super) struct Session {
    pub(super) signer: Signer,
    pub(super) id: String,
    pub(super) counter: AtomicU64,
}

impl Session {
    pub(super) fn new(signer: Signer) -> Session {
        Session {
            signer,
            id: new_session_id(),
            counter: AtomicU64::new(0),
        }
    }

    pub(super) fn header(&self, msg_type: &str) -> Value {
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
    pub(super) fn frames(
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
pub(super) fn new_session_id() -> String {
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
pub(super) fn iso8601_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or_default();
    let whole = DateTime::from_secs(secs)
        .fmt(Format::DateTime)
        .unwrap_or_default();
    // Whole seconds from the SDK's formatter, then microseconds as ipykernel writes them.
    format!("{}.{:06}Z", whole.trim_end_matches('Z'), d.subsec_micros())
}

pub(super) fn to_frames(msg: ZmqMessage) -> Vec<Vec<u8>> {
    msg.into_vec().into_iter().map(|b| b.to_vec()).collect()
}
