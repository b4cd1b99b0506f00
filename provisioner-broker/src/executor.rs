//! The executor endpoint: the container-credentials protocol over HTTPS for executors in
//! other JVMs or on other hosts (Spark on YARN or Kubernetes), and the application
//! tokens that are its only way in.
//!
//! * [`AppTokens`]: the SHA-256 of each session's application tokens, in memory (the
//!   store keeps the same hashes so that they survive a restart). A token is 32 random
//!   bytes in hex, handed out by a launch that asks for `executor_endpoint` or by the
//!   `application_token` request of the session's own user. It only fetches that one
//!   session's credentials, only here, and dies with the session: the session's entry
//!   in the registry is what a fetch looks up first.
//! * [`serve`]: the TLS accept loop (rustls, see [`crate::tls`]). Requests go to the
//!   same handler as the loopback endpoint ([`crate::endpoint::answer_for`]) with the
//!   executor rule: application tokens only, no uid check (the peer is remote). A
//!   failed handshake, plain HTTP on this port, or a silent client costs one log line
//!   and the connection, never the service.
//!
//! This module must never accept a session's own token, never serve a session that has
//! ended, never call STS, and never log a token, a secret or bytes a client sent.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::endpoint::{self, Caller, EndpointStats};
use crate::sessions::Registry;

/// The most application tokens one session holds (each Spark application asks for one;
/// a kernel that reaches this is told to restart).
pub const MAX_PER_SESSION: usize = 1024;
/// How long a client has to open the connection and finish the TLS handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// How long one connection may stay open (keep-alive included).
const CONNECTION_DEADLINE: Duration = Duration::from_secs(60);
/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 512;

/// The application tokens of live sessions, by session id, as SHA-256 hashes.
#[derive(Default)]
pub struct AppTokens {
    map: Mutex<HashMap<String, Vec<[u8; 32]>>>,
}

impl AppTokens {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<[u8; 32]>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the hash of a token of `session`.
    pub fn add(&self, session: &str, hash: [u8; 32]) {
        self.map()
            .entry(session.to_string())
            .or_default()
            .push(hash);
    }

    /// How many tokens `session` holds.
    pub fn count(&self, session: &str) -> usize {
        self.map().get(session).map_or(0, Vec::len)
    }

    /// Whether `hash` is one of `session`'s tokens. Every stored hash is compared, in
    /// constant time, whatever matched first.
    pub fn matches(&self, session: &str, hash: &[u8; 32]) -> bool {
        let map = self.map();
        let Some(hashes) = map.get(session) else {
            return false;
        };
        hashes
            .iter()
            .fold(subtle::Choice::from(0), |found, h| found | h.ct_eq(hash))
            .into()
    }

    /// Forgets the tokens of sessions for which `live` is false.
    pub fn retain(&self, live: impl Fn(&str) -> bool) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|id, _| live(id));
        before - map.len()
    }
}

/// A new application token (hex of 32 bytes from the kernel's random source) and its
/// SHA-256; None when the random source cannot be read (nothing is handed out then).
pub fn new_token() -> Option<(String, [u8; 32])> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .ok()?;
    let token = hex::encode(bytes);
    let hash = Sha256::digest(token.as_bytes()).into();
    Some((token, hash))
}

/// The URL of a session on the executor endpoint whose origin is `origin`.
pub fn session_url(origin: &str, id: &str) -> String {
    format!("{origin}{}{id}", endpoint::PATH_PREFIX)
}

/// Whether the first bytes a client sent look like a plain HTTP request (a TLS client
/// starts with a handshake record, byte 0x16).
fn looks_like_plain_http(first: &[u8]) -> bool {
    first.first().is_some_and(u8::is_ascii_uppercase)
}

/// Accepts connections until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    sessions: Arc<Registry>,
    tokens: Arc<AppTokens>,
    stats: Arc<EndpointStats>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("executor endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let sessions = Arc::clone(&sessions);
        let tokens = Arc::clone(&tokens);
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let Some(tls) = handshake(&acceptor, stream, remote).await else {
                return;
            };
            let service = service_fn(move |req| {
                let sessions = Arc::clone(&sessions);
                let tokens = Arc::clone(&tokens);
                let stats = Arc::clone(&stats);
                async move {
                    let caller = Caller::Executor {
                        tokens: &tokens,
                        peer: remote,
                    };
                    Ok::<_, Infallible>(endpoint::answer_for(&req, caller, &sessions, &stats))
                }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
        });
    }
}

/// The TLS handshake, with a deadline; None (and one log line) when it fails.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    remote: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let attempt = async move {
        let mut first = [0u8; 1];
        // Peeked, not read: the handshake still sees every byte.
        let n = stream.peek(&mut first).await.unwrap_or(0);
        if n == 0 {
            return Err("closed before the TLS handshake".to_string());
        }
        if looks_like_plain_http(&first[..n]) {
            return Err(
                "plain HTTP on the TLS port; closed without an answer (executors must use the https:// URL)"
                    .to_string(),
            );
        }
        acceptor
            .accept(stream)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))
    };
    match tokio::time::timeout(HANDSHAKE_DEADLINE, attempt).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(why)) => {
            tracing::info!(
                "executor endpoint: {} from {remote}",
                provisioner_core::broker::protocol::one_line(&why)
            );
            None
        }
        Err(_) => {
            tracing::info!(
                "executor endpoint: no TLS handshake from {remote} within {} s; closed",
                HANDSHAKE_DEADLINE.as_secs()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn h(s: &str) -> [u8; 32] {
        Sha256::digest(s.as_bytes()).into()
    }

    #[test]
    fn a_token_opens_only_its_own_session_and_goes_with_it() {
        let t = AppTokens::default();
        t.add("a", h("one"));
        t.add("a", h("two"));
        t.add("b", h("three"));
        assert!(t.matches("a", &h("one")) && t.matches("a", &h("two")));
        assert!(!t.matches("a", &h("three")));
        assert!(!t.matches("b", &h("one")));
        assert!(!t.matches("c", &h("one")));
        assert_eq!(t.count("a"), 2);
        assert_eq!(t.retain(|id| id == "b"), 1);
        assert!(!t.matches("a", &h("one")));
        assert!(t.matches("b", &h("three")));
    }

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let (a, ha) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(ha, h(&a));
    }

    #[test]
    fn plain_http_is_told_from_a_tls_hello() {
        assert!(looks_like_plain_http(b"G"));
        assert!(looks_like_plain_http(b"P"));
        assert!(!looks_like_plain_http(&[0x16]));
        assert!(!looks_like_plain_http(b""));
    }
}
