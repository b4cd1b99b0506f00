//! The container-credentials protocol, as served on loopback HTTP/1 and (through
//! [`crate::executor`]) on the HTTPS executor endpoint: one path per session,
//! `GET /v1/credentials/SESSION` with a bearer token as `Authorization`, answered with
//! `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration` (RFC 3339), the format every
//! AWS SDK's container provider reads. Both listeners share [`decide_for`]; only who may
//! fetch differs ([`Caller`]).
//!
//! A request is served only when all of these hold:
//! * the session is live (else 404 `NO_SUCH_SESSION`, JSON);
//! * `Authorization` is present (else 401) and its SHA-256 equals, compared in constant
//!   time, the session's own token on loopback, or one of the session's application
//!   tokens on the executor endpoint (else 403 `BAD_TOKEN`: neither kind of token is
//!   accepted on the other listener);
//! * on loopback, the TCP connection belongs to the session's uid, as the kernel's
//!   socket tables say ([`crate::tcp_peer`]; else 403 `WRONG_USER`), so a copied token
//!   is useless to another local user (remote executors have no local uid: the
//!   application token, which only fetches, is their whole credential);
//! * the session's current decision grants credentials (else 403 with its refusal) and
//!   they are minted (else 503 `CREDENTIALS_PENDING`, which SDKs retry).
//!
//! The endpoint answers from the session's cached credentials. It must never call STS
//! (only the refresh scheduler does), never log or echo a token or a secret, and the
//! plain-HTTP listener must never listen anywhere but loopback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use provisioner_core::credentials::rfc3339;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::executor::AppTokens;
use crate::sessions::{LiveSession, Registry, Served};
use crate::tcp_peer;

/// The path prefix; the session id follows.
pub const PATH_PREFIX: &str = "/v1/credentials/";
/// How long one connection may stay open (keep-alive included).
const CONNECTION_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Counters the log and the benchmarks read.
#[derive(Default)]
pub struct EndpointStats {
    pub served: AtomicU64,
    pub refused: AtomicU64,
}

/// The URL of a session on an endpoint bound to `addr`.
pub fn session_url(addr: SocketAddr, id: &str) -> String {
    format!("http://{addr}{PATH_PREFIX}{id}")
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, sessions: Arc<Registry>, stats: Arc<EndpointStats>) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("endpoint: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let sessions = Arc::clone(&sessions);
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(local) = stream.local_addr() else {
                return;
            };
            // The owner of the client's socket, read once per connection: a TCP
            // connection cannot change hands between requests.
            let uid = tokio::task::spawn_blocking(move || tcp_peer::client_uid(local, remote))
                .await
                .ok()
                .flatten();
            let service = service_fn(move |req| {
                let sessions = Arc::clone(&sessions);
                let stats = Arc::clone(&stats);
                async move { Ok::<_, Infallible>(answer(&req, uid, &sessions, &stats)) }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
        });
    }
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({"code": code, "message": message}).to_string(),
    )
}

/// Who is asking, and so which token a session accepts.
#[derive(Clone, Copy)]
pub enum Caller<'a> {
    /// The loopback endpoint: the session's own token, from a connection the session's
    /// uid owns (`uid` as the socket tables say; None when unknown).
    Local { uid: Option<u32> },
    /// The HTTPS executor endpoint: one of the session's application tokens, from
    /// anywhere (`peer` is the remote address, for the log only).
    Executor {
        tokens: &'a AppTokens,
        peer: SocketAddr,
    },
}

/// One loopback request. Pure apart from the registry and the counters.
pub fn answer(
    req: &Request<Incoming>,
    uid: Option<u32>,
    sessions: &Registry,
    stats: &EndpointStats,
) -> Response<Full<Bytes>> {
    answer_for(req, Caller::Local { uid }, sessions, stats)
}

/// One request on either listener.
pub fn answer_for(
    req: &Request<Incoming>,
    caller: Caller<'_>,
    sessions: &Registry,
    stats: &EndpointStats,
) -> Response<Full<Bytes>> {
    let r = decide_for(
        req.method(),
        req.uri().path(),
        req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes),
        caller,
        sessions,
    );
    if r.status() == StatusCode::OK {
        stats.served.fetch_add(1, Ordering::Relaxed);
    } else {
        stats.refused.fetch_add(1, Ordering::Relaxed);
        let (listener, who) = match caller {
            Caller::Local { uid } => (
                "endpoint",
                format!(
                    "uid={}",
                    uid.map_or_else(|| "unknown".into(), |u| u.to_string())
                ),
            ),
            Caller::Executor { peer, .. } => ("executor endpoint", format!("peer={peer}")),
        };
        tracing::info!(
            "{listener}: {} {} {who} -> {}",
            req.method(),
            // The path names the session, never the token.
            req.uri().path().chars().take(80).collect::<String>(),
            r.status().as_u16()
        );
    }
    r
}

/// The loopback answer for a method, path, `Authorization` value and connection owner.
pub fn decide(
    method: &Method,
    path: &str,
    authorization: Option<&[u8]>,
    uid: Option<u32>,
    sessions: &Registry,
) -> Response<Full<Bytes>> {
    decide_for(method, path, authorization, Caller::Local { uid }, sessions)
}

/// The answer for a method, path, `Authorization` value and caller.
pub fn decide_for(
    method: &Method,
    path: &str,
    authorization: Option<&[u8]>,
    caller: Caller<'_>,
    sessions: &Registry,
) -> Response<Full<Bytes>> {
    if method != Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "only GET is served; fix: point AWS_CONTAINER_CREDENTIALS_FULL_URI at this endpoint and let the SDK fetch",
        );
    }
    let Some(id) = path.strip_prefix(PATH_PREFIX).filter(|id| !id.is_empty()) else {
        return error(
            StatusCode::NOT_FOUND,
            "NO_SUCH_SESSION",
            "no session in this path; fix: use the URL in the kernel's AWS_CONTAINER_CREDENTIALS_FULL_URI",
        );
    };
    let Some(session) = sessions.get(id).filter(|s| !s.is_ended()) else {
        return error(
            StatusCode::NOT_FOUND,
            "NO_SUCH_SESSION",
            "no live session with this id (its process exited, it reached its maximum lifetime, or it never existed); fix: restart the kernel or job",
        );
    };
    if let Some(refused) = authenticate(&session, authorization, caller) {
        return refused;
    }
    match session.served() {
        Served::Ready { credentials, .. } => {
            let Some(expiration) = credentials.expiration.and_then(rfc3339) else {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "CREDENTIALS_PENDING",
                    "credentials without an expiry cannot be served here; fix: see the broker's log",
                );
            };
            if credentials
                .expiration
                .is_some_and(|e| e <= SystemTime::now())
            {
                return pending();
            }
            let body = serde_json::json!({
                "AccessKeyId": credentials.access_key_id,
                "SecretAccessKey": credentials.secret_access_key,
                "Token": credentials.session_token,
                "Expiration": expiration,
            });
            json(StatusCode::OK, body.to_string())
        }
        Served::Pending => pending(),
        Served::Refused { code, message } => error(StatusCode::FORBIDDEN, &code, &message),
    }
}

/// The token rule of each listener: None when the caller may fetch, else the refusal.
fn authenticate(
    session: &LiveSession,
    authorization: Option<&[u8]>,
    caller: Caller<'_>,
) -> Option<Response<Full<Bytes>>> {
    let Some(auth) = authorization.filter(|a| !a.is_empty()) else {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "TOKEN_REQUIRED",
            match caller {
                Caller::Local { .. } => {
                    "no Authorization header; fix: set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE as the launcher did"
                }
                Caller::Executor { .. } => {
                    "no Authorization header; fix: give executors the application token of the launch (AWS_CONTAINER_AUTHORIZATION_TOKEN)"
                }
            },
        ));
    };
    let hash: [u8; 32] = Sha256::digest(auth).into();
    match caller {
        Caller::Local { uid } => {
            if !bool::from(hash.ct_eq(&session.token_sha256)) {
                return Some(error(
                    StatusCode::FORBIDDEN,
                    "BAD_TOKEN",
                    "the token does not belong to this session; fix: use the token file the launcher wrote",
                ));
            }
            if uid != Some(session.uid) {
                return Some(error(
                    StatusCode::FORBIDDEN,
                    "WRONG_USER",
                    "this session is served only to its own user's processes; fix: fetch from the session's own processes",
                ));
            }
        }
        Caller::Executor { tokens, .. } => {
            if !tokens.matches(&session.id, &hash) {
                return Some(error(
                    StatusCode::FORBIDDEN,
                    "BAD_TOKEN",
                    "this endpoint takes only an application token of this session; fix: use the application token the launch or an application_token request returned, never the session's own token",
                ));
            }
        }
    }
    None
}

fn pending() -> Response<Full<Bytes>> {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "CREDENTIALS_PENDING",
        "the broker is minting this session's credentials; fix: retry in a few seconds",
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("2"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::LiveSession;
    use http_body_util::BodyExt;
    use provisioner_core::context::{Flow, LaunchContext};
    use provisioner_core::credentials::Credentials;
    use std::time::Duration;

    fn registry(served: Served) -> Registry {
        let r = Registry::default();
        r.insert(Arc::new(LiveSession::new(
            "abc".into(),
            Sha256::digest(b"tok").into(),
            (1000, 1000),
            1,
            1,
            "boot".into(),
            LaunchContext {
                flow: Flow::Notebook,
                user: "alice".into(),
                workspace: None,
                runtime_template: None,
                job_id: None,
            },
            None,
            i64::MAX,
            served,
        )));
        r
    }

    fn ready() -> Served {
        Served::Ready {
            credentials: Credentials {
                access_key_id: "ASIAX".into(),
                secret_access_key: "sec".into(),
                session_token: Some("tokn".into()),
                expiration: Some(SystemTime::now() + Duration::from_secs(3600)),
            },
            minted_at: SystemTime::now(),
            key: None,
        }
    }

    async fn body(r: Response<Full<Bytes>>) -> serde_json::Value {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&b).unwrap()
    }

    #[tokio::test]
    async fn the_owner_with_the_token_gets_the_four_fields() {
        let reg = registry(ready());
        let r = decide(
            &Method::GET,
            "/v1/credentials/abc",
            Some(b"tok"),
            Some(1000),
            &reg,
        );
        assert_eq!(r.status(), StatusCode::OK);
        let v = body(r).await;
        assert_eq!(v["AccessKeyId"], "ASIAX");
        assert_eq!(v["SecretAccessKey"], "sec");
        assert_eq!(v["Token"], "tokn");
        assert!(
            provisioner_core::credentials::parse_rfc3339(v["Expiration"].as_str().unwrap())
                .is_some()
        );
    }

    type Case<'a> = (
        &'a Method,
        &'a str,
        Option<&'a [u8]>,
        Option<u32>,
        u16,
        &'a str,
    );

    #[tokio::test]
    async fn everyone_else_is_refused_with_a_json_reason() {
        let reg = registry(ready());
        let cases: [Case; 7] = [
            (
                &Method::GET,
                "/v1/credentials/abc",
                None,
                Some(1000),
                401,
                "TOKEN_REQUIRED",
            ),
            (
                &Method::GET,
                "/v1/credentials/abc",
                Some(b"tok2"),
                Some(1000),
                403,
                "BAD_TOKEN",
            ),
            (
                &Method::GET,
                "/v1/credentials/abc",
                Some(b"tok"),
                Some(1001),
                403,
                "WRONG_USER",
            ),
            (
                &Method::GET,
                "/v1/credentials/abc",
                Some(b"tok"),
                None,
                403,
                "WRONG_USER",
            ),
            (
                &Method::GET,
                "/v1/credentials/zzz",
                Some(b"tok"),
                Some(1000),
                404,
                "NO_SUCH_SESSION",
            ),
            (
                &Method::GET,
                "/",
                Some(b"tok"),
                Some(1000),
                404,
                "NO_SUCH_SESSION",
            ),
            (
                &Method::POST,
                "/v1/credentials/abc",
                Some(b"tok"),
                Some(1000),
                405,
                "METHOD_NOT_ALLOWED",
            ),
        ];
        for (m, p, a, u, status, code) in cases {
            let r = decide(m, p, a, u, &reg);
            assert_eq!(r.status().as_u16(), status, "{p} {u:?}");
            let v = body(r).await;
            assert_eq!(v["code"], code);
            assert!(!v.to_string().contains("sec"), "{v}");
        }
    }

    #[tokio::test]
    async fn the_executor_endpoint_takes_application_tokens_only_and_the_loopback_refuses_them() {
        let reg = registry(ready());
        let tokens = AppTokens::default();
        tokens.add("abc", Sha256::digest(b"app").into());
        tokens.add("other", Sha256::digest(b"app-of-other").into());
        let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let executor = Caller::Executor {
            tokens: &tokens,
            peer,
        };
        let get = |auth: Option<&'static [u8]>, caller| {
            decide_for(&Method::GET, "/v1/credentials/abc", auth, caller, &reg)
        };
        // The application token, from a remote peer with no local uid.
        let r = get(Some(b"app"), executor);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await["AccessKeyId"], "ASIAX");
        for (auth, status, code) in [
            (Some(&b"tok"[..]), 403, "BAD_TOKEN"),
            (Some(&b"app-of-other"[..]), 403, "BAD_TOKEN"),
            (None, 401, "TOKEN_REQUIRED"),
        ] {
            let r = get(auth, executor);
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(body(r).await["code"], code);
        }
        // On loopback, even the session's own user gets nothing with an application token.
        let r = get(Some(b"app"), Caller::Local { uid: Some(1000) });
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(body(r).await["code"], "BAD_TOKEN");
        // An ended session refuses its application tokens.
        reg.get("abc").unwrap().end();
        let r = get(Some(b"app"), executor);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn ended_refused_and_pending_sessions_serve_nothing() {
        let reg = registry(ready());
        reg.get("abc").unwrap().end();
        let r = decide(
            &Method::GET,
            "/v1/credentials/abc",
            Some(b"tok"),
            Some(1000),
            &reg,
        );
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let reg = registry(Served::Refused {
            code: "UNKNOWN_USER".into(),
            message: "m".into(),
        });
        let r = decide(
            &Method::GET,
            "/v1/credentials/abc",
            Some(b"tok"),
            Some(1000),
            &reg,
        );
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(body(r).await["code"], "UNKNOWN_USER");
        let reg = registry(Served::Pending);
        let r = decide(
            &Method::GET,
            "/v1/credentials/abc",
            Some(b"tok"),
            Some(1000),
            &reg,
        );
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
