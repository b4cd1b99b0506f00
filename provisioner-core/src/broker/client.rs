//! The launcher's side of the broker protocol: one blocking request on the broker's
//! Unix socket, and the answer turned into what the launch needs (the decision's tier
//! and user, the credentials, the region) or a refusal with its exit code.
//!
//! Blocking std I/O with timeouts keeps the launch path free of a runtime. In broker
//! mode the launcher reads no base credentials and no platform file and calls no STS:
//! everything comes from here. The client fails closed: an answer it does not fully
//! understand, or one that contradicts itself (credentials with the default tier, a
//! minting tier without credentials), is a refusal, never a launch.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{
    self, Answer, Delivery, MAX_ANSWER_BYTES, Op, Request, VERSION, WireContext,
};
use crate::container::{EndpointGrant, check_endpoint_url};
use crate::context::{ContextError, ContextFlags, Flow, LaunchContext};
use crate::credentials::Credentials;
use crate::decision::{Decision, Plan, Tier};
use crate::exit;

/// How long a launcher waits for the broker's answer. The broker's own STS deadline
/// (`sts_deadline_seconds`, default 10 s) fits well inside.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long sending the request may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// A launch the broker did not grant, or a broker that could not be asked.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerRefusal {
    pub code: String,
    /// One line: the problem and the fix.
    pub message: String,
    pub fix: String,
    pub exit_code: i32,
    /// The decision record, when the broker made a decision.
    pub record: Option<Box<serde_json::Value>>,
}

impl BrokerRefusal {
    fn local(code: &str, message: String, fix: &str, exit_code: i32) -> BrokerRefusal {
        BrokerRefusal {
            code: code.into(),
            message: format!("{message}; fix: {fix}"),
            fix: fix.into(),
            exit_code,
            record: None,
        }
    }
}

/// What a granted launch needs.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The decision as far as the child's environment needs it (tier, user, flow; the
    /// plan is `Ambient` for the default tier). The full record is in `record`.
    pub decision: Decision,
    pub credentials: Option<Credentials>,
    /// Endpoint delivery (`credentials` is then None): the child fetches from here.
    /// Pass it to [`crate::container::write_token_file`] and
    /// [`crate::child_env::ChildEnv::for_endpoint`].
    pub endpoint: Option<EndpointGrant>,
    /// With endpoint delivery, when the launch asked for it and the broker has an HTTPS
    /// executor endpoint: its `https://` URL for this session and an application token
    /// for executors in other JVMs or hosts.
    pub executor_endpoint: Option<EndpointGrant>,
    /// The session id (names the token file); empty when the broker sent none.
    pub session_id: String,
    pub region: String,
    pub record: serde_json::Value,
}

/// The broker's socket: `--broker`, else `SYN_BROKER_SOCKET` when set and not empty.
/// None means embedded mode.
pub fn socket_from(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<std::path::PathBuf> {
    flag.map(Path::to_path_buf).or_else(|| {
        env(protocol::SOCKET_ENV)
            .filter(|v| !v.trim().is_empty())
            .map(std::path::PathBuf::from)
    })
}

/// The context a launcher sends, from flags, else the environment, with the same
/// names and precedence as embedded mode. The user is optional: the broker takes
/// the caller's own identity when none is named, and treats a named one as a claim.
pub fn context_from_sources(
    flags: &ContextFlags,
    env: &dyn Fn(&str) -> Option<String>,
    default_flow: Flow,
) -> Result<WireContext, ContextError> {
    let given = flags.with_env(env, default_flow);
    let flow = given.flow?;
    let ctx = WireContext {
        // Checked like embedded mode; a placeholder stands in for the absent user.
        user: given.user,
        workspace: given.workspace,
        runtime_template: given.runtime_template,
        flow,
        job_id: given.job_id,
    };
    LaunchContext {
        flow,
        user: ctx.user.clone().unwrap_or_else(|| "caller".into()),
        workspace: ctx.workspace.clone(),
        runtime_template: ctx.runtime_template.clone(),
        job_id: ctx.job_id.clone(),
    }
    .validate()?;
    Ok(ctx)
}

/// Sends one request and reads the answer.
pub fn call(socket: &Path, request: &Request) -> Result<Answer, BrokerRefusal> {
    let unavailable = |what: String| {
        BrokerRefusal::local(
            "BROKER_UNAVAILABLE",
            what,
            &format!(
                "start the broker (systemctl start provisioner-broker) or point --broker / {} at its socket",
                protocol::SOCKET_ENV
            ),
            exit::CREDENTIALS,
        )
    };
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        unavailable(format!(
            "cannot connect to the broker at {}: {e}",
            socket.display()
        ))
    })?;
    let _ = stream.set_write_timeout(Some(SEND_TIMEOUT));
    let _ = stream.set_read_timeout(Some(ANSWER_TIMEOUT));
    protocol::write_frame(&mut stream, &protocol::encode(request)).map_err(|e| {
        unavailable(format!(
            "cannot send to the broker at {}: {e}",
            socket.display()
        ))
    })?;
    let body = protocol::read_frame(&mut stream, MAX_ANSWER_BYTES).map_err(|e| {
        unavailable(format!(
            "no answer from the broker at {}: {e}",
            socket.display()
        ))
    })?;
    protocol::decode_answer(&body).map_err(|e| {
        BrokerRefusal::local(
            "BAD_ANSWER",
            format!("the broker's answer cannot be read: {e}"),
            "use a launcher of the same release as the broker",
            exit::CREDENTIALS,
        )
    })
}

/// The request for a context (environment delivery only).
pub fn request(op: Op, context: WireContext) -> Request {
    Request {
        version: VERSION,
        op,
        context,
        accept_endpoint: false,
        executor_endpoint: false,
        session_token: None,
    }
}

/// What a launcher can do with the answer of a launch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaunchOptions {
    /// The launcher can deliver through the broker's loopback credentials endpoint.
    pub accept_endpoint: bool,
    /// The launched program has executors in other JVMs or hosts: with endpoint
    /// delivery, ask for the broker's HTTPS executor endpoint and an application token
    /// too. A broker without that endpoint answers with keys instead.
    pub executor_endpoint: bool,
}

/// Asks the broker to launch with `options`; [`launch`] and
/// [`launch_accepting_endpoint`] are this with fixed options.
pub fn launch_with(
    socket: &Path,
    context: WireContext,
    options: LaunchOptions,
) -> Result<Granted, BrokerRefusal> {
    let mut req = request(Op::Launch, context);
    req.accept_endpoint = options.accept_endpoint;
    req.executor_endpoint = options.executor_endpoint;
    granted(call(socket, &req)?)
}

/// Asks the broker for a fresh application token for the session whose bearer token is
/// `session_token` (read from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` inside an
/// endpoint-mode process). The broker grants it only to the session's own user, and only
/// when it has an HTTPS executor endpoint (else `NO_EXECUTOR_ENDPOINT`).
pub fn application_token(
    socket: &Path,
    session_token: &str,
) -> Result<EndpointGrant, BrokerRefusal> {
    let mut req = request(Op::ApplicationToken, WireContext::unused());
    req.session_token = Some(session_token.to_string());
    let answer = call(socket, &req)?;
    if let Some(e) = refusal_of(&answer) {
        return Err(e);
    }
    let grant = answer
        .executor_endpoint
        .ok_or_else(|| bad("an application token answer without an executor endpoint"))?;
    check_executor_grant(&grant, None)?;
    Ok(grant)
}

/// An executor endpoint grant must be an `https://` URL of the credentials path (of
/// `session` when known) and a token usable as a header value.
fn check_executor_grant(grant: &EndpointGrant, session: Option<&str>) -> Result<(), BrokerRefusal> {
    let rest = grant
        .url
        .strip_prefix("https://")
        .ok_or_else(|| bad("an executor endpoint that is not https"))?;
    let (authority, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("an executor endpoint without a path"))?;
    let id = path
        .strip_prefix("v1/credentials/")
        .ok_or_else(|| bad("an executor endpoint outside /v1/credentials/"))?;
    let usable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !usable(authority)
        || !usable(id)
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        || session.is_some_and(|s| s != id)
    {
        return Err(bad("an executor endpoint for another session"));
    }
    if !usable(&grant.token) {
        return Err(bad("an unusable application token"));
    }
    Ok(())
}

/// Asks the broker to launch: the answer as [`Granted`], or why not. The broker
/// delivers keys (`Granted::credentials`), never an endpoint.
pub fn launch(socket: &Path, context: WireContext) -> Result<Granted, BrokerRefusal> {
    launch_with(socket, context, LaunchOptions::default())
}

/// Like [`launch`], for a launcher that can deliver through the broker's credentials
/// endpoint: when the broker has one (and `credential_delivery` is `endpoint`),
/// role credentials come back as [`Granted::endpoint`] instead of keys. The caller then
/// writes the token with [`crate::container::write_token_file`] and builds the child's
/// environment with [`crate::child_env::ChildEnv::for_endpoint`].
pub fn launch_accepting_endpoint(
    socket: &Path,
    context: WireContext,
) -> Result<Granted, BrokerRefusal> {
    launch_with(
        socket,
        context,
        LaunchOptions {
            accept_endpoint: true,
            executor_endpoint: false,
        },
    )
}

/// Asks the broker for the dry run: the record printed by `explain` (with the policy).
/// Like the kernel launcher's launches, the request accepts endpoint delivery, so the
/// record's `delivery` is what a kernel would get.
pub fn explain(socket: &Path, context: WireContext) -> Result<serde_json::Value, BrokerRefusal> {
    let mut req = request(Op::Explain, context);
    req.accept_endpoint = true;
    let answer = call(socket, &req)?;
    if let Some(e) = refusal_of(&answer) {
        return Err(e);
    }
    answer
        .record
        .ok_or_else(|| bad("an explain answer without a record"))
}

fn refusal_of(answer: &Answer) -> Option<BrokerRefusal> {
    if answer.ok {
        return None;
    }
    let e = answer.error.clone().unwrap_or(protocol::WireError {
        code: "BAD_ANSWER".into(),
        message: "the broker refused without saying why".into(),
        fix: None,
        exit_code: exit::CREDENTIALS,
    });
    // Exit codes are the documented ones; anything else from the wire becomes 4.
    let exit_code = if [exit::CONFIG, exit::REFUSED, exit::CREDENTIALS].contains(&e.exit_code) {
        e.exit_code
    } else {
        exit::CREDENTIALS
    };
    Some(BrokerRefusal {
        code: e.code,
        fix: e.fix.unwrap_or_else(|| "see the message".into()),
        message: e.message,
        exit_code,
        record: answer.record.clone().map(Box::new),
    })
}

fn bad(what: &str) -> BrokerRefusal {
    BrokerRefusal::local(
        "BAD_ANSWER",
        format!("the broker sent {what}"),
        "use a launcher of the same release as the broker, and report the record if they match",
        exit::CREDENTIALS,
    )
}

/// Turns a launch answer into a [`Granted`], failing closed on anything inconsistent.
pub fn granted(answer: Answer) -> Result<Granted, BrokerRefusal> {
    if let Some(e) = refusal_of(&answer) {
        return Err(e);
    }
    let record = answer
        .record
        .ok_or_else(|| bad("a launch answer without a record"))?;
    let text = |k: &str| record.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let tier = text("tier")
        .as_deref()
        .and_then(Tier::from_name)
        .ok_or_else(|| bad("a record without a known tier"))?;
    let user = text("user").ok_or_else(|| bad("a record without a user"))?;
    let flow: Flow = text("flow")
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| bad("a record without a known flow"))?;
    let mut endpoint = None;
    if answer.executor_endpoint.is_some() && answer.delivery != Delivery::Endpoint {
        return Err(bad("an executor endpoint without endpoint delivery"));
    }
    let credentials = match (answer.delivery, answer.credentials, tier) {
        (Delivery::None, None, Tier::Default) => None,
        (Delivery::Endpoint, None, t) if t != Tier::Default => {
            let e = answer
                .endpoint
                .ok_or_else(|| bad("endpoint delivery without an endpoint"))?;
            check_endpoint_url(&e.url).map_err(|_| bad("an endpoint that is not on loopback"))?;
            if e.token.is_empty() || e.token.bytes().any(|b| !b.is_ascii_graphic()) {
                return Err(bad("an unusable session token"));
            }
            endpoint = Some(e);
            None
        }
        (Delivery::Environment, Some(c), t) if t != Tier::Default => {
            let expiration = match &c.expiration {
                None => None,
                Some(s) => Some(
                    crate::credentials::parse_rfc3339(s)
                        .ok_or_else(|| bad("credentials with an unreadable expiration"))?,
                ),
            };
            if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
                return Err(bad("empty credentials"));
            }
            Some(Credentials {
                access_key_id: c.access_key_id,
                secret_access_key: c.secret_access_key,
                session_token: c.session_token,
                expiration,
            })
        }
        (_, _, Tier::Default) => return Err(bad("credentials with the default tier")),
        _ => return Err(bad("a minting tier without credentials")),
    };
    let region = match (credentials.is_some() || endpoint.is_some(), answer.region) {
        (true, None) => return Err(bad("credentials without a region")),
        (_, r) => r.unwrap_or_default(),
    };
    let context = LaunchContext {
        flow,
        user,
        workspace: text("workspace"),
        runtime_template: text("runtime_template"),
        job_id: text("job_id"),
    };
    let decision = Decision {
        context,
        tier,
        reason: None,
        skipped: Vec::new(),
        warnings: Vec::new(),
        plan: Plan::Ambient,
    };
    let session_id = answer.session.map(|s| s.id).unwrap_or_default();
    if endpoint.is_some()
        && (session_id.is_empty()
            || !session_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(bad("endpoint delivery without a usable session id"));
    }
    if let Some(g) = &answer.executor_endpoint {
        check_executor_grant(g, Some(&session_id))?;
    }
    Ok(Granted {
        decision,
        credentials,
        endpoint,
        executor_endpoint: answer.executor_endpoint,
        session_id,
        region,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::protocol::WireCredentials;
    use serde_json::json;

    fn answer(tier: &str, creds: Option<WireCredentials>, delivery: Delivery) -> Answer {
        Answer {
            version: 1,
            ok: true,
            record: Some(
                json!({"tier": tier, "user": "alice", "flow": "notebook", "workspace": null}),
            ),
            credentials: creds,
            delivery,
            region: Some("us-east-1".into()),
            session: None,
            endpoint: None,
            executor_endpoint: None,
            error: None,
        }
    }

    fn endpoint_answer(url: &str, session: Option<&str>) -> Answer {
        let mut a = answer("session_policy", None, Delivery::Endpoint);
        a.endpoint = Some(EndpointGrant {
            url: url.into(),
            token: "0123abcd".into(),
        });
        a.session = session.map(|id| crate::broker::protocol::SessionTicket {
            id: id.into(),
            token: "0123abcd".into(),
        });
        a
    }

    #[test]
    fn endpoint_answers_carry_the_grant_and_fail_closed_when_odd() {
        let g = granted(endpoint_answer(
            "http://127.0.0.1:8125/v1/credentials/abc",
            Some("abc"),
        ))
        .unwrap();
        assert!(g.credentials.is_none());
        assert_eq!(g.session_id, "abc");
        assert_eq!(
            g.endpoint.unwrap().url,
            "http://127.0.0.1:8125/v1/credentials/abc"
        );
        let mut off_host = endpoint_answer("http://10.1.1.1:80/x", Some("abc"));
        let mut no_endpoint = endpoint_answer("http://127.0.0.1:1/x", Some("abc"));
        no_endpoint.endpoint = None;
        let mut default_tier = endpoint_answer("http://127.0.0.1:1/x", Some("abc"));
        default_tier.record = Some(json!({"tier": "default", "user": "alice", "flow": "notebook"}));
        let mut with_keys = endpoint_answer("http://127.0.0.1:1/x", Some("abc"));
        with_keys.credentials = Some(creds());
        off_host.region = Some("us-east-1".into());
        for a in [
            off_host,
            no_endpoint,
            default_tier,
            with_keys,
            endpoint_answer("http://127.0.0.1:1/x", None),
            endpoint_answer("http://127.0.0.1:1/x", Some("../x")),
        ] {
            assert_eq!(granted(a).unwrap_err().code, "BAD_ANSWER");
        }
    }

    #[test]
    fn executor_endpoints_come_only_with_endpoint_delivery_for_the_same_session() {
        let grant = |url: &str| EndpointGrant {
            url: url.into(),
            token: "a1b2".into(),
        };
        let mut a = endpoint_answer("http://127.0.0.1:8125/v1/credentials/abc", Some("abc"));
        a.executor_endpoint = Some(grant("https://broker.example:8443/v1/credentials/abc"));
        let g = granted(a).unwrap();
        assert_eq!(
            g.executor_endpoint.unwrap().url,
            "https://broker.example:8443/v1/credentials/abc"
        );
        let g = granted(endpoint_answer(
            "http://127.0.0.1:8125/v1/credentials/abc",
            Some("abc"),
        ))
        .unwrap();
        assert!(g.executor_endpoint.is_none());
        let mut with_keys = answer("session_policy", Some(creds()), Delivery::Environment);
        with_keys.executor_endpoint = Some(grant("https://h:1/v1/credentials/abc"));
        let mut bad_answers = vec![with_keys];
        for url in [
            "http://h:1/v1/credentials/abc",
            "https://h:1/v1/credentials/other",
            "https://h:1/elsewhere/abc",
            "https:///v1/credentials/abc",
            "https://h:1/v1/credentials/a bc",
        ] {
            let mut a = endpoint_answer("http://127.0.0.1:8125/v1/credentials/abc", Some("abc"));
            a.executor_endpoint = Some(grant(url));
            bad_answers.push(a);
        }
        let mut empty_token =
            endpoint_answer("http://127.0.0.1:8125/v1/credentials/abc", Some("abc"));
        empty_token.executor_endpoint = Some(EndpointGrant {
            url: "https://h:1/v1/credentials/abc".into(),
            token: String::new(),
        });
        bad_answers.push(empty_token);
        for a in bad_answers {
            assert_eq!(granted(a).unwrap_err().code, "BAD_ANSWER");
        }
    }

    #[test]
    fn an_application_token_is_asked_with_the_session_token_and_read_back() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("b.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answer in [
                r#"{"version":1,"ok":true,"executor_endpoint":{"url":"https://h:8443/v1/credentials/abc","token":"feed"}}"#,
                r#"{"version":1,"ok":false,"error":{"code":"NO_EXECUTOR_ENDPOINT","message":"no; fix: set it","fix":"set it","exit_code":4}}"#,
                r#"{"version":1,"ok":true}"#,
            ] {
                let (mut s, _) = listener.accept().unwrap();
                seen.push(protocol::read_frame(&mut s, 1 << 16).unwrap());
                protocol::write_frame(&mut s, answer.as_bytes()).unwrap();
            }
            seen
        });
        let g = application_token(&sock, "s3ss").unwrap();
        assert_eq!(
            (g.url.as_str(), g.token.as_str()),
            ("https://h:8443/v1/credentials/abc", "feed")
        );
        let e = application_token(&sock, "s3ss").unwrap_err();
        assert_eq!((e.code.as_str(), e.exit_code), ("NO_EXECUTOR_ENDPOINT", 4));
        let e = application_token(&sock, "s3ss").unwrap_err();
        assert_eq!(e.code, "BAD_ANSWER");
        let seen = server.join().unwrap();
        assert_eq!(
            String::from_utf8(seen[0].clone()).unwrap(),
            r#"{"version":1,"op":"application_token","session_token":"s3ss"}"#
        );
    }

    fn creds() -> WireCredentials {
        WireCredentials {
            access_key_id: "ASIA".into(),
            secret_access_key: "secret".into(),
            session_token: Some("tok".into()),
            expiration: Some("2030-01-01T00:00:00Z".into()),
        }
    }

    #[test]
    fn granted_answers_become_a_decision_and_credentials() {
        let g = granted(answer(
            "session_policy",
            Some(creds()),
            Delivery::Environment,
        ))
        .unwrap();
        assert_eq!(g.decision.tier, Tier::SessionPolicy);
        assert_eq!(g.decision.context.user, "alice");
        assert_eq!(g.credentials.unwrap().session_token.as_deref(), Some("tok"));
        let g = granted(answer("default", None, Delivery::None)).unwrap();
        assert!(g.credentials.is_none());
    }

    #[test]
    fn inconsistent_answers_fail_closed() {
        for a in [
            answer("default", Some(creds()), Delivery::Environment),
            answer("session_policy", None, Delivery::None),
            answer("session_policy", Some(creds()), Delivery::None),
            answer("nonsense", None, Delivery::None),
        ] {
            let e = granted(a).unwrap_err();
            assert_eq!(e.code, "BAD_ANSWER");
            assert_eq!(e.exit_code, exit::CREDENTIALS);
        }
    }

    #[test]
    fn refusals_keep_their_code_and_exit_code() {
        let mut a = Answer::error("NOT_PERMITTED", "no; fix: yes", Some("yes".into()), 3);
        a.record = Some(json!({"tier": "default"}));
        let e = granted(a).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.exit_code, e.fix.as_str()),
            ("NOT_PERMITTED", 3, "yes")
        );
        let e = granted(Answer::error("X", "m", None, 77)).unwrap_err();
        assert_eq!(e.exit_code, exit::CREDENTIALS);
    }

    #[test]
    fn an_absent_broker_is_a_one_line_refusal_with_exit_4() {
        let dir = tempfile::tempdir().unwrap();
        let e = launch(
            &dir.path().join("nope.sock"),
            WireContext {
                user: None,
                workspace: None,
                runtime_template: None,
                flow: Flow::Notebook,
                job_id: None,
            },
        )
        .unwrap_err();
        assert_eq!(e.code, "BROKER_UNAVAILABLE");
        assert_eq!(e.exit_code, exit::CREDENTIALS);
        assert!(
            e.message.contains("fix:") && !e.message.contains('\n'),
            "{}",
            e.message
        );
    }
}
