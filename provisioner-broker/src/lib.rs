//! `provisioner serve`: the broker.
//!
//! The only process that holds base credentials. Launchers connect to its Unix socket,
//! send the launch context (protocol in `provisioner_core::broker::protocol`), and get the
//! decision record with credentials minted for the *socket peer* (`SO_PEERCRED`), or a
//! refusal. See README.md ("Multi-user deployment") and ARCHITECTURE.md.
//!
//! | module | what |
//! |---|---|
//! | [`peer`] | the socket peer (uid, gid, pid), login names, groups, process identity |
//! | [`cache`] | credentials shared per identical decision, one STS call per burst |
//! | [`store`] | the sessions served, in SQLite (token hashes, never secrets) |
//! | [`sessions`] | live endpoint sessions in memory and the refresh timing |
//! | [`endpoint`] | the container-credentials endpoint (loopback HTTP; the handler both listeners share) |
//! | [`executor`] | the HTTPS executor endpoint for executors on other hosts, and application tokens |
//! | [`tls`] | the executor endpoint's certificate, key-file checks and rustls configuration |
//! | [`tcp_peer`] | the uid owning a loopback TCP connection's client end |
//! | [`refresh`] | the refresh scheduler (the only STS caller for live sessions) and the end of sessions |
//!
//! The broker never hands anyone its own base credentials: the default tier and
//! ADMIN_BYPASS deliver nothing.

pub mod cache;
pub mod endpoint;
pub mod executor;
pub mod peer;
pub mod refresh;
pub mod server;
pub mod sessions;
pub mod store;
pub mod tcp_peer;
pub mod tls;
