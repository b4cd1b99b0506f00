//! The service: the socket, the accept loop, one request per connection, signals.
//!
//! Every connection is its own task with a read deadline and a size limit, so a slow,
//! oversized, malformed or half-closed request costs its sender one connection slot
//! (of a per-uid budget) and nobody else anything. Decisions are pure functions of
//! the platform snapshot taken when the request arrives; SIGHUP swaps the snapshot.
//!
//! This module must never answer with the broker's own base credentials (the default
//! tier delivers nothing), never log or store a secret, and never trust the `user` a
//! request claims over the socket peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use provisioner_core::access::{self, Authorized};
use provisioner_core::broker::client::LaunchOptions;
use provisioner_core::broker::protocol::{
    self, Answer, Delivery, MAX_REQUEST_BYTES, Op, ProtocolError, Request, SessionTicket, VERSION,
    WireCredentials, WireError,
};
use provisioner_core::context::LaunchContext;
use provisioner_core::credentials::Credentials;
use provisioner_core::decision::{AssumeRolePlan, Decision, Plan, Refusal, resolve};
use provisioner_core::mint::{StsOptions, obtain_with};
use provisioner_core::model::{CredentialDelivery, DecisionLog, Platform, ServiceAccountIdentity};
use provisioner_core::record::{CallerRecord, DecisionRecord};
use provisioner_core::{exit, load};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};

use crate::cache::{Coalescer, Source};
use crate::endpoint::{self, EndpointStats};
use crate::executor::{self, AppTokens};
use crate::peer::{self, PeerCred};
use crate::sessions::{LiveSession, Registry, Served};
use crate::store::{Session, Store, now_secs};

/// How long a client has to send its whole request.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How long writing an answer may take.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How often exited sessions are ended and stale cache entries dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// How long SIGTERM waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// What `provisioner serve` was told.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config: PathBuf,
    pub socket: PathBuf,
    pub state: Option<PathBuf>,
    /// Sidecar mode (Kubernetes): every peer is this platform user, whatever its uid.
    /// Set by the spawner in the pod spec; the notebook cannot change it.
    pub pod_user: Option<String>,
    /// STS knobs without a setting; base credentials from the standard AWS chain.
    pub sts: StsOptions,
    /// `--endpoint`: the loopback address of the credentials endpoint when the service
    /// manager does not hand one over (socket activation wins).
    pub endpoint: Option<SocketAddr>,
    /// `--executor-endpoint`: the address of the HTTPS executor endpoint when the
    /// service manager does not hand over a socket named `executor`.
    pub executor_endpoint: Option<SocketAddr>,
    /// `--executor-endpoint-url`: the origin executors are told (`https://HOST:PORT`).
    pub executor_endpoint_url: Option<String>,
    /// `--tls-cert` and `--tls-key`: the executor endpoint's certificate chain and key.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// The name of the executor endpoint's socket in `LISTEN_FDNAMES` (systemd's
/// `FileDescriptorName=`).
pub const EXECUTOR_FD_NAME: &str = "executor";

/// Credentials minted for one decision, shared by every identical decision.
struct Minted {
    decision: Decision,
    credentials: Option<Credentials>,
    /// The context that minted them: re-resolved after a reload to see whether the
    /// decision changed.
    exemplar: LaunchContext,
    /// Warnings the minting added (e.g. a shortened duration).
    notes: Vec<String>,
    /// The decided tier was minted as decided (no fall-back, credentials present).
    clean: bool,
    /// When STS answered: with the returned expiry, the credentials' real lifetime.
    minted_at: SystemTime,
}

pub struct Broker {
    pub(crate) platform: RwLock<Arc<Platform>>,
    config: PathBuf,
    pub(crate) store: Store,
    cache: Coalescer<Minted>,
    connections: Mutex<HashMap<u32, u32>>,
    sts: StsOptions,
    pod_user: Option<String>,
    in_flight: AtomicUsize,
    /// Endpoint sessions in memory (what the endpoint serves).
    pub(crate) sessions: Arc<Registry>,
    /// Where the credentials endpoint listens; None: no endpoint, keys in the
    /// environment.
    pub(crate) endpoint_addr: Option<SocketAddr>,
    pub(crate) endpoint_stats: Arc<EndpointStats>,
    /// The executor endpoint's origin (`https://HOST:PORT`), when it listens.
    pub(crate) executor_origin: Option<String>,
    /// The application tokens of live sessions (what the executor endpoint accepts).
    pub(crate) app_tokens: Arc<AppTokens>,
    /// Bounds concurrent re-mints (a restart re-mints every session).
    pub(crate) mint_permits: tokio::sync::Semaphore,
    /// AssumeRole and static-key mints performed (for the log and the tests).
    pub mints: AtomicUsize,
}

/// Starts the service and runs it until SIGTERM or SIGINT. Returns the exit code.
pub fn run(opts: ServeOptions) -> i32 {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
    match start(opts) {
        Ok(code) => code,
        Err((code, line)) => {
            eprintln!("provisioner serve: {line}");
            code
        }
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn load_platform(path: &Path, endpoint: bool) -> Result<Platform, String> {
    let mut p = load::load_file(path, &env_lookup).map_err(|e| e.to_string())?;
    p.settings.brokered = true;
    if endpoint && p.settings.credential_delivery == CredentialDelivery::Endpoint {
        // Served credentials live credential_lifetime_seconds at most: that bounds how
        // long a removed user keeps what was already served (README, "Revocation").
        let cap = p.settings.credential_lifetime_seconds;
        p.settings.session_policy_duration = p.settings.session_policy_duration.min(cap);
        for sa in p.service_accounts.values_mut() {
            if let ServiceAccountIdentity::Role {
                duration_seconds, ..
            } = &mut sa.identity
            {
                *duration_seconds = (*duration_seconds).min(cap);
            }
        }
    }
    Ok(p)
}

/// The listeners the service manager passed (socket activation, `LISTEN_FDS`): the
/// executor endpoint's is the one named [`EXECUTOR_FD_NAME`] in `LISTEN_FDNAMES`, the
/// loopback endpoint's the first other one.
struct Activated {
    endpoint: Option<std::net::TcpListener>,
    executor: Option<std::net::TcpListener>,
}

fn activated() -> Result<Activated, String> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let n = fds.len();
    let executor_at = names
        .iter()
        .position(|name| name == EXECUTOR_FD_NAME)
        .filter(|&i| i < n);
    let endpoint_at = (0..n).find(|&i| Some(i) != executor_at);
    let endpoint = match endpoint_at {
        Some(i) => fds.take_tcp_listener(i).map_err(|e| {
            format!("the socket passed by the service manager is not a TCP listener ({e}); fix the ListenStream= line of provisioner-broker.socket")
        })?,
        None => None,
    };
    let executor = match executor_at {
        Some(i) => fds.take_tcp_listener(i).map_err(|e| {
            format!("the socket named {EXECUTOR_FD_NAME} passed by the service manager is not a TCP listener ({e}); fix the ListenStream= line of provisioner-broker-executor.socket")
        })?,
        None => None,
    };
    Ok(Activated { endpoint, executor })
}

/// The endpoint's listener: the one systemd passed (socket activation, `LISTEN_FDS`),
/// else a bind of `--endpoint`, else none. Only loopback addresses are accepted.
fn endpoint_listener(
    activated: Option<std::net::TcpListener>,
    opt: Option<SocketAddr>,
) -> Result<Option<std::net::TcpListener>, String> {
    let (listener, how) = match (activated, opt) {
        (Some(l), _) => (l, "socket activation"),
        (None, Some(addr)) => (
            std::net::TcpListener::bind(addr).map_err(|e| {
                format!("cannot listen on --endpoint {addr}: {e}; pick a free loopback port, or use socket activation (README, \"Credentials endpoint\")")
            })?,
            "--endpoint",
        ),
        (None, None) => return Ok(None),
    };
    let addr = listener
        .local_addr()
        .map_err(|e| format!("the endpoint's listener has no address: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "the credentials endpoint ({how}) is on {addr}, not on loopback; fix: listen on 127.0.0.1"
        ));
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot use the endpoint's listener: {e}"))?;
    Ok(Some(listener))
}

/// The executor endpoint, ready to serve: its listener, TLS configuration and origin.
struct ExecutorSetup {
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    origin: String,
}

/// The executor endpoint from the flags and an activated socket, or None when none of
/// its flags is given. The key file is checked before anything binds.
fn executor_setup(
    opts: &ServeOptions,
    activated: Option<std::net::TcpListener>,
) -> Result<Option<ExecutorSetup>, String> {
    let asked = opts.executor_endpoint.is_some()
        || opts.executor_endpoint_url.is_some()
        || opts.tls_cert.is_some()
        || opts.tls_key.is_some()
        || activated.is_some();
    if !asked {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&opts.tls_cert, &opts.tls_key) else {
        return Err(
            "the executor endpoint needs both --tls-cert and --tls-key; fix: pass the PEM certificate chain and its private key (README, \"Executors on other hosts\")"
                .into(),
        );
    };
    if activated.is_none() && opts.executor_endpoint.is_none() {
        return Err(format!(
            "--tls-cert and --tls-key are set but the executor endpoint has no address; fix: pass --executor-endpoint ADDR:PORT or a socket named {EXECUTOR_FD_NAME} (socket activation)"
        ));
    }
    let identity = crate::tls::load_identity(cert, key)?;
    let listener = match (activated, opts.executor_endpoint) {
        (Some(l), _) => l,
        (None, Some(addr)) => std::net::TcpListener::bind(addr).map_err(|e| {
            format!("cannot listen on --executor-endpoint {addr}: {e}; fix: pick a free address and port")
        })?,
        (None, None) => return Err("the executor endpoint has no address".into()),
    };
    let bound = listener
        .local_addr()
        .map_err(|e| format!("the executor endpoint's listener has no address: {e}"))?;
    let origin = crate::tls::advertised_origin(opts.executor_endpoint_url.as_deref(), bound)?;
    crate::tls::check_name(identity.chain(), &origin)?;
    let tls = crate::tls::server_config(identity)?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot use the executor endpoint's listener: {e}"))?;
    Ok(Some(ExecutorSetup {
        listener,
        tls,
        origin,
    }))
}

fn start(opts: ServeOptions) -> Result<i32, (i32, String)> {
    if let Some(u) = &opts.pod_user {
        provisioner_core::model::check_id(u).map_err(|e| {
            (
                exit::CONFIG,
                format!("--pod-user: {e}; pass the pod's platform user id"),
            )
        })?;
    }
    let activated = activated().map_err(|e| (exit::CONFIG, e))?;
    let executor = executor_setup(&opts, activated.executor).map_err(|e| (exit::CONFIG, e))?;
    let listener =
        endpoint_listener(activated.endpoint, opts.endpoint).map_err(|e| (exit::CONFIG, e))?;
    let endpoint_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    if executor.is_some() && endpoint_addr.is_none() {
        return Err((
            exit::CONFIG,
            "the executor endpoint serves sessions of the loopback credentials endpoint, which is not configured; fix: pass --endpoint 127.0.0.1:PORT or use socket activation".into(),
        ));
    }
    let platform =
        load_platform(&opts.config, endpoint_addr.is_some()).map_err(|e| (exit::CONFIG, e))?;
    check_socket_dir(&opts.socket).map_err(|e| (exit::CONFIG, e))?;
    let store = Store::open(opts.state.as_deref()).map_err(|e| (exit::CONFIG, e.0))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| (exit::CONFIG, format!("cannot start the runtime: {e}")))?;
    let broker = Arc::new(Broker {
        platform: RwLock::new(Arc::new(platform)),
        config: opts.config.clone(),
        store,
        cache: Coalescer::default(),
        connections: Mutex::new(HashMap::new()),
        sts: opts.sts.clone(),
        pod_user: opts.pod_user.clone(),
        in_flight: AtomicUsize::new(0),
        mints: AtomicUsize::new(0),
        sessions: Arc::new(Registry::default()),
        endpoint_addr,
        endpoint_stats: Arc::new(EndpointStats::default()),
        executor_origin: executor.as_ref().map(|e| e.origin.clone()),
        app_tokens: Arc::new(AppTokens::default()),
        mint_permits: tokio::sync::Semaphore::new(16),
    });
    let code = runtime.block_on(serve(Arc::clone(&broker), &opts, listener, executor))?;
    let _ = std::fs::remove_file(&opts.socket);
    tracing::info!("stopped; socket {} removed", opts.socket.display());
    Ok(code)
}

/// The socket's directory must be writable by its owner only, and that owner must be
/// the broker: anyone else who can write there could replace the socket.
pub fn check_socket_dir(socket: &Path) -> Result<(), String> {
    let dir = match socket.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let md = std::fs::metadata(&dir).map_err(|e| {
        format!(
            "socket directory {}: {e}; create it (mode 0755, owned by the service user)",
            dir.display()
        )
    })?;
    let me = nix::unistd::geteuid().as_raw();
    if !md.is_dir() {
        return Err(format!(
            "{} is not a directory; put the socket in a directory",
            dir.display()
        ));
    }
    if md.uid() != me {
        return Err(format!(
            "socket directory {} belongs to uid {}, not to the broker's uid {me}; use a directory the service user owns (e.g. /run/provisioner)",
            dir.display(),
            md.uid()
        ));
    }
    if md.mode() & 0o022 != 0 {
        return Err(format!(
            "socket directory {} is writable by group or others (mode {:o}); chmod go-w it or use a directory only the service user can write",
            dir.display(),
            md.mode() & 0o7777
        ));
    }
    Ok(())
}

fn bind(socket: &Path) -> Result<std::os::unix::net::UnixListener, String> {
    if let Ok(md) = std::fs::symlink_metadata(socket) {
        if !md.file_type().is_socket() {
            return Err(format!(
                "{} exists and is not a socket; remove it or pick another --socket",
                socket.display()
            ));
        }
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(format!(
                "another broker is serving on {}; stop it or pick another --socket",
                socket.display()
            ));
        }
        // Left by a broker that was killed: nobody listens.
        std::fs::remove_file(socket)
            .map_err(|e| format!("cannot remove the stale socket {}: {e}", socket.display()))?;
    }
    let l = std::os::unix::net::UnixListener::bind(socket)
        .map_err(|e| format!("cannot listen on {}: {e}; check --socket", socket.display()))?;
    // Any local user may connect; who they are comes from SO_PEERCRED.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("cannot chmod {}: {e}", socket.display()))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    Ok(l)
}

async fn serve(
    broker: Arc<Broker>,
    opts: &ServeOptions,
    endpoint_listener: Option<std::net::TcpListener>,
    executor: Option<ExecutorSetup>,
) -> Result<i32, (i32, String)> {
    // Signals first: once the socket exists, a SIGTERM must find the handler.
    let (mut hup, mut term, mut int) = match (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(h), Ok(t), Ok(i)) => (h, t, i),
        _ => return Err((exit::CONFIG, "cannot install signal handlers".into())),
    };
    let listener = UnixListener::from_std(bind(&opts.socket).map_err(|e| (exit::CONFIG, e))?)
        .map_err(|e| {
            (
                exit::CONFIG,
                format!("cannot listen on {}: {e}", opts.socket.display()),
            )
        })?;
    let b = Arc::clone(&broker);
    let live = tokio::task::spawn_blocking(move || {
        let ended = b.store.end_exited(None).unwrap_or(0);
        (b.store.live().map(|l| l.len()).unwrap_or(0), ended)
    })
    .await
    .unwrap_or((0, 0));
    tracing::info!(
        "serving on {} (platform file {}, state {}); {} live sessions known, {} ended while stopped",
        opts.socket.display(),
        opts.config.display(),
        opts.state
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "in memory only: sessions do not survive a restart".into()),
        live.0,
        live.1
    );
    match endpoint_listener {
        Some(l) => {
            let l = tokio::net::TcpListener::from_std(l).map_err(|e| {
                (
                    exit::CONFIG,
                    format!("cannot use the endpoint's listener: {e}"),
                )
            })?;
            let delivery = broker.platform().settings.credential_delivery;
            tracing::info!(
                "credentials endpoint on http://{}{}; credential_delivery {}",
                broker
                    .endpoint_addr
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                endpoint::PATH_PREFIX,
                delivery.as_str()
            );
            tokio::spawn(endpoint::serve(
                l,
                Arc::clone(&broker.sessions),
                Arc::clone(&broker.endpoint_stats),
            ));
            let restored = broker.restore_sessions().await;
            if restored > 0 {
                tracing::info!(
                    "{restored} endpoint sessions restored; minting their credentials again"
                );
            }
            if let Some(x) = executor {
                let tokens = broker.restore_application_tokens().await;
                let l = tokio::net::TcpListener::from_std(x.listener).map_err(|e| {
                    (
                        exit::CONFIG,
                        format!("cannot use the executor endpoint's listener: {e}"),
                    )
                })?;
                tracing::info!(
                    "executor endpoint on {} (listening on {}); {tokens} application tokens of live sessions restored",
                    x.origin,
                    l.local_addr().map(|a| a.to_string()).unwrap_or_default()
                );
                tokio::spawn(executor::serve(
                    l,
                    x.tls,
                    Arc::clone(&broker.sessions),
                    Arc::clone(&broker.app_tokens),
                    Arc::clone(&broker.endpoint_stats),
                ));
            }
            tokio::spawn(Arc::clone(&broker).watch_processes());
        }
        None => tracing::info!(
            "no credentials endpoint (neither socket activation nor --endpoint): credentials are delivered in the environment and expire with it"
        ),
    }
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let b = Arc::clone(&broker);
                    tokio::spawn(async move { b.connection(stream).await });
                }
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = hup.recv() => broker.reload(),
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = sweep.tick() => {
                let b = Arc::clone(&broker);
                let _ = tokio::task::spawn_blocking(move || b.sweep()).await;
            }
        }
    }
    tracing::info!("SIGTERM: no new connections; finishing requests in flight");
    let start = Instant::now();
    while broker.in_flight.load(Ordering::SeqCst) > 0 && start.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(exit::OK)
}

/// Decrements a uid's connection count when a connection ends.
struct ConnectionSlot<'a> {
    broker: &'a Broker,
    uid: u32,
}

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        let mut c = self
            .broker
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = c.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&self.uid);
            }
        }
        self.broker.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One line for the log, built while answering.
#[derive(Default)]
struct LogLine {
    outcome: &'static str,
    code: Option<String>,
    login: Option<String>,
    authenticated: Option<String>,
    claimed: Option<String>,
    user: Option<String>,
    tier: Option<&'static str>,
    source: Option<&'static str>,
    session: Option<String>,
    record: Option<String>,
}

impl Broker {
    fn platform(&self) -> Arc<Platform> {
        Arc::clone(&self.platform.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn platform_now(&self) -> Arc<Platform> {
        self.platform()
    }

    /// Endpoint delivery applies to launches now.
    pub(crate) fn endpoint_delivery(&self, platform: &Platform) -> bool {
        self.endpoint_addr.is_some()
            && platform.settings.credential_delivery == CredentialDelivery::Endpoint
    }

    fn reload(&self) {
        match load_platform(&self.config, self.endpoint_addr.is_some()) {
            Ok(p) => {
                let p = Arc::new(p);
                let dropped = self.cache.retain(|key, m| {
                    cache_key_of(&resolve(&p, &m.exemplar, &[])).as_deref() == Some(key)
                });
                *self.platform.write().unwrap_or_else(|e| e.into_inner()) = p;
                // Every endpoint session re-resolves now; those whose decision changed
                // mint again (or stop being served) without waiting for their refresh.
                let sessions = self.sessions.all();
                for s in &sessions {
                    s.recheck.store(true, Ordering::SeqCst);
                    s.wake.notify_one();
                }
                tracing::info!(
                    "SIGHUP: reloaded {}; {dropped} cached credentials dropped because their decision changed; {} endpoint sessions re-checked",
                    self.config.display(),
                    sessions.len()
                );
            }
            Err(e) => tracing::warn!("SIGHUP: {e}; keeping the platform file loaded before"),
        }
    }

    fn sweep(&self) {
        let min = u64::from(self.platform().settings.broker_min_remaining_seconds);
        self.cache.retain(|_, m| fresh(m, min));
        // Tokens of ended sessions are refused anyway (the session is looked up first);
        // this only frees their memory.
        self.app_tokens
            .retain(|id| self.sessions.get(id).is_some_and(|s| !s.is_ended()));
        if let Err(e) = self.store.end_exited(None) {
            tracing::warn!("{e}");
        }
    }

    async fn connection(self: Arc<Self>, mut stream: UnixStream) {
        let started = Instant::now();
        let cred = match peer::peer_cred(&stream) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("connection without peer credentials ({e}); closed");
                return;
            }
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let over = {
            let mut c = self.connections.lock().unwrap_or_else(|p| p.into_inner());
            let n = c.entry(cred.uid).or_insert(0);
            *n += 1;
            *n > self.platform().settings.broker_max_connections_per_uid
        };
        let _slot = ConnectionSlot {
            broker: &self,
            uid: cred.uid,
        };
        let (answer, mut line) = if over {
            (
                Answer::error(
                    "TOO_MANY_CONNECTIONS",
                    format!(
                        "uid {} has more than {} connections open; fix: wait for launches in flight, or raise broker_max_connections_per_uid",
                        cred.uid,
                        self.platform().settings.broker_max_connections_per_uid
                    ),
                    None,
                    exit::CREDENTIALS,
                ),
                LogLine::default(),
            )
        } else {
            match tokio::time::timeout(READ_DEADLINE, read_request(&mut stream)).await {
                Err(_) => (
                    Answer::error(
                        "REQUEST_TIMEOUT",
                        format!(
                            "no complete request within {} s; fix: send the whole request at once",
                            READ_DEADLINE.as_secs()
                        ),
                        None,
                        exit::CREDENTIALS,
                    ),
                    LogLine::default(),
                ),
                Ok(Err(e)) => (protocol_error(&e), LogLine::default()),
                Ok(Ok(req)) => self.answer(cred, req, started).await,
            }
        };
        if line.outcome.is_empty() {
            line.outcome = "error";
            line.code = answer.error.as_ref().map(|e| e.code.clone());
        }
        let body = protocol::encode(&answer);
        let wrote = tokio::time::timeout(WRITE_DEADLINE, async {
            let mut buf = Vec::with_capacity(body.len() + 4);
            buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
            buf.extend_from_slice(&body);
            stream.write_all(&buf).await?;
            stream.flush().await
        })
        .await;
        let delivered = matches!(wrote, Ok(Ok(())));
        log_decision(cred, &line, started, delivered);
    }

    async fn answer(
        self: &Arc<Self>,
        cred: PeerCred,
        req: Request,
        started: Instant,
    ) -> (Answer, LogLine) {
        let platform = self.platform();
        if req.op == Op::ApplicationToken {
            return self.application_token(cred, &req).await;
        }
        let mut line = LogLine {
            claimed: req.context.user.clone(),
            ..LogLine::default()
        };
        let (login, authorized) = self
            .authorize_peer(&platform, cred.uid, req.context.user.clone())
            .await;
        line.login = login.clone();
        let auth = match authorized {
            Ok(a) => a,
            Err(d) => {
                line.outcome = "refused";
                line.code = Some(d.code.as_str().into());
                let msg = format!("{}; fix: {}", d.message, d.fix);
                return (
                    Answer::error(d.code.as_str(), msg, Some(d.fix), exit::REFUSED),
                    line,
                );
            }
        };
        line.authenticated = Some(auth.authenticated_user.clone());
        line.user = Some(auth.user.clone());
        let ctx = LaunchContext {
            flow: req.context.flow,
            user: auth.user.clone(),
            workspace: req.context.workspace.clone().filter(|w| !w.is_empty()),
            runtime_template: req
                .context
                .runtime_template
                .clone()
                .filter(|r| !r.is_empty()),
            job_id: req.context.job_id.clone().filter(|j| !j.is_empty()),
        };
        if let Err(e) = ctx.validate() {
            line.outcome = "refused";
            return (
                Answer::error(
                    "INVALID_LAUNCH_CONTEXT",
                    format!("{e}"),
                    Some("fix the value the platform passes".into()),
                    exit::CONFIG,
                ),
                line,
            );
        }
        let caller = CallerRecord {
            uid: cred.uid,
            gid: cred.gid,
            pid: cred.pid,
            unix_user: login,
            authenticated_user: auth.authenticated_user.clone(),
            claimed_user: auth.claimed_user.clone(),
            proxied: auth.proxied,
        };
        match req.op {
            Op::Explain => {
                let d = resolve(&platform, &ctx, &[]);
                let mut v = DecisionRecord::explain_value(&d);
                if let (Some(o), Ok(c)) = (v.as_object_mut(), serde_json::to_value(&caller)) {
                    o.insert("caller".into(), c);
                }
                // What a launch of the same request would deliver, so that dry runs
                // show the layout the program would really get (no session, no token).
                let endpoint_mode = req.accept_endpoint
                    && self.endpoint_delivery(&platform)
                    && (!req.executor_endpoint || self.executor_origin.is_some());
                let delivery = match &d.plan {
                    Plan::AssumeRole(_) if endpoint_mode => Some("endpoint"),
                    Plan::AssumeRole(_) | Plan::StaticKeys(_) => Some("environment"),
                    Plan::Ambient | Plan::Refused(_) => None,
                };
                if let (Some(o), Some(delivery)) = (v.as_object_mut(), delivery) {
                    o.insert("delivery".into(), delivery.into());
                    if delivery == "endpoint"
                        && req.executor_endpoint
                        && let Some(origin) = &self.executor_origin
                    {
                        o.insert("executor_endpoint_url".into(), origin.clone().into());
                    }
                }
                line.outcome = "explained";
                line.tier = Some(d.tier.as_str());
                line.record = Some(v.to_string());
                (ok_answer(Some(v), None, None, None), line)
            }
            // Answered before the context is looked at (see the start of this function).
            Op::ApplicationToken => (no_executor_endpoint(), line),
            Op::Launch => {
                let delivery = LaunchOptions {
                    accept_endpoint: req.accept_endpoint,
                    executor_endpoint: req.executor_endpoint,
                };
                self.launch(&platform, cred, ctx, caller, &auth, started, line, delivery)
                    .await
            }
        }
    }

    /// The `application_token` request: a fresh application token for the live
    /// endpoint session whose bearer token the request carries, for that session's own
    /// user only (the socket peer's uid), when the executor endpoint listens.
    async fn application_token(&self, cred: PeerCred, req: &Request) -> (Answer, LogLine) {
        let mut line = LogLine {
            outcome: "refused",
            ..LogLine::default()
        };
        let refuse = |line: &mut LogLine, a: Answer| {
            line.code = a.error.as_ref().map(|e| e.code.clone());
            a
        };
        let Some(origin) = self.executor_origin.clone() else {
            return (refuse(&mut line, no_executor_endpoint()), line);
        };
        let Some(token) = req.session_token.as_deref().filter(|t| !t.is_empty()) else {
            let a = refused_token(
                "TOKEN_REQUIRED",
                "an application_token request needs the session's token in session_token",
                "send the token of the file AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names",
                exit::CREDENTIALS,
            );
            return (refuse(&mut line, a), line);
        };
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let hex_hash = hex::encode(hash);
        let id = &hex_hash[..16];
        let session = self.sessions.get(id).filter(|s| {
            !s.is_ended()
                && bool::from(subtle::ConstantTimeEq::ct_eq(
                    &s.token_sha256[..],
                    &hash[..],
                ))
        });
        let Some(session) = session else {
            let a = refused_token(
                "NO_SUCH_SESSION",
                "no live session has this token (its process exited, it reached its maximum lifetime, or it was launched with keys)",
                "ask from a process of a live kernel or job launched with endpoint delivery",
                exit::CREDENTIALS,
            );
            return (refuse(&mut line, a), line);
        };
        line.session = Some(session.id.clone());
        line.user = Some(session.ctx.user.clone());
        if cred.uid != session.uid {
            let a = refused_token(
                "WRONG_USER",
                &format!(
                    "uid {} asked for an application token of a session of uid {}",
                    cred.uid, session.uid
                ),
                "ask from the session's own processes; a copied token is of no use to another user",
                exit::REFUSED,
            );
            return (refuse(&mut line, a), line);
        }
        if let Served::Refused { code, message } = session.served() {
            let a = Answer::error(&code, message, None, exit::REFUSED);
            return (refuse(&mut line, a), line);
        }
        if self.app_tokens.count(&session.id) >= executor::MAX_PER_SESSION {
            let a = refused_token(
                "TOO_MANY_APPLICATION_TOKENS",
                &format!(
                    "the session holds {} application tokens, the most it may",
                    executor::MAX_PER_SESSION
                ),
                "restart the kernel or job; its new session starts with none",
                exit::REFUSED,
            );
            return (refuse(&mut line, a), line);
        }
        match self.new_application_token(&session.id, &hex_hash) {
            Ok(app) => {
                line.outcome = "granted";
                tracing::info!(
                    "application token {} for session {} (uid {})",
                    self.app_tokens.count(&session.id),
                    session.id,
                    cred.uid
                );
                let mut a = ok_answer(None, None, None, None);
                a.executor_endpoint = Some(protocol::EndpointGrant {
                    url: executor::session_url(&origin, &session.id),
                    token: app,
                });
                (a, line)
            }
            Err(a) => (refuse(&mut line, *a), line),
        }
    }

    /// Makes an application token of a session, stores its hash (store first, then
    /// memory) and returns the token.
    fn new_application_token(
        &self,
        session_id: &str,
        session_hash: &str,
    ) -> Result<String, Box<Answer>> {
        let Some((app, app_hash)) = executor::new_token() else {
            tracing::error!("the kernel's random source cannot be read; no application token");
            return Err(Box::new(no_randomness()));
        };
        if let Err(e) = tokio::task::block_in_place(|| {
            self.store
                .insert_application_token(session_hash, &hex::encode(app_hash))
        }) {
            tracing::error!("{e}");
            return Err(Box::new(state_unavailable()));
        }
        self.app_tokens.add(session_id, app_hash);
        Ok(app)
    }

    /// After a restart: the application tokens of the live sessions, from the store.
    async fn restore_application_tokens(self: &Arc<Self>) -> usize {
        let b = Arc::clone(self);
        let rows = tokio::task::spawn_blocking(move || b.store.live_application_tokens())
            .await
            .unwrap_or_else(|e| Err(crate::store::StoreError(e.to_string())));
        match rows {
            Ok(rows) => {
                let n = rows.len();
                for (session, token) in rows {
                    let id = session.get(..16).unwrap_or_default();
                    self.app_tokens.add(id, hash_bytes(&token));
                }
                n
            }
            Err(e) => {
                tracing::error!("application tokens not restored: {e}");
                0
            }
        }
    }

    /// Who the peer uid is and whether it may launch for `claimed`. Used at launch and
    /// again at every refresh (a proxy user taken off the list stops being served).
    pub(crate) async fn authorize_peer(
        &self,
        platform: &Arc<Platform>,
        uid: u32,
        claimed: Option<String>,
    ) -> (Option<String>, Result<Authorized, access::Denied>) {
        // User-database lookups may block on NSS.
        let p = Arc::clone(platform);
        let c = claimed.clone();
        let pod_login = self
            .pod_user
            .as_ref()
            .map(|u| access::unix_user_of(platform, u));
        let looked_up = tokio::task::spawn_blocking(move || {
            // In a pod every container shares uids with other pods: the pod's user is
            // the one the spawner named, not whatever the uid's passwd entry says.
            let login = pod_login.or_else(|| peer::login_name(uid));
            let groups = match (&c, &login) {
                (Some(c), Some(l)) if access::platform_user_of(&p, l) != *c => {
                    peer::groups_of(&access::unix_user_of(&p, c))
                }
                _ => Vec::new(),
            };
            (login, groups)
        })
        .await;
        let Ok((login, groups)) = looked_up else {
            // The lookup could not run (the runtime is stopping): not an answer about
            // the user, so nobody is refused for it.
            return (
                None,
                Err(access::Denied {
                    code: provisioner_core::decision::RefusalCode::CredentialsUnavailable,
                    message: "the user database could not be consulted".into(),
                    fix: "retry; the broker's log has the cause".into(),
                }),
            );
        };
        let auth = access::authorize(platform, login.as_deref(), uid, claimed.as_deref(), &groups);
        (login, auth)
    }

    #[allow(clippy::too_many_arguments)]
    async fn launch(
        self: &Arc<Self>,
        platform: &Arc<Platform>,
        cred: PeerCred,
        ctx: LaunchContext,
        caller: CallerRecord,
        auth: &Authorized,
        started: Instant,
        mut line: LogLine,
        delivery: LaunchOptions,
    ) -> (Answer, LogLine) {
        let max_sessions = platform.settings.broker_max_sessions_per_uid as usize;
        let live = {
            let uid = cred.uid;
            // The store is behind a std mutex; counting may read /proc for each session.
            tokio::task::block_in_place(|| self.store.live_count(uid))
        };
        match live {
            Ok(n) if n >= max_sessions => {
                line.outcome = "refused";
                return (
                    Answer::error(
                        "TOO_MANY_SESSIONS",
                        format!(
                            "uid {} has {n} live sessions, the limit is {max_sessions}; fix: stop kernels or jobs no longer needed, or raise broker_max_sessions_per_uid",
                            cred.uid
                        ),
                        None,
                        exit::REFUSED,
                    ),
                    line,
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!("{e}");
                return (state_unavailable(), line);
            }
        }
        let Some(start_time) = peer::process_start_time(cred.pid) else {
            line.outcome = "refused";
            return (
                Answer::error(
                    "PEER_GONE",
                    format!(
                        "the calling process {} cannot be identified (it exited, or lives in a pid namespace the broker cannot see); fix: launch from a process the broker can see",
                        cred.pid
                    ),
                    None,
                    exit::CREDENTIALS,
                ),
                line,
            );
        };

        let d0 = resolve(platform, &ctx, &[]);
        // Only launchers that say they can deliver through the endpoint get it, and a
        // launch whose executors run elsewhere only when they can fetch too (the HTTPS
        // executor endpoint): else keys, which its executors receive as before.
        let endpoint_mode = delivery.accept_endpoint
            && self.endpoint_delivery(platform)
            && (!delivery.executor_endpoint || self.executor_origin.is_some());
        let (decision, credentials, source, minted_at) =
            self.obtain(platform, &ctx, d0, endpoint_mode).await;
        let Some((token, token_hash)) = new_token() else {
            tracing::error!("the kernel's random source cannot be read; no session opened");
            line.outcome = "refused";
            return (no_randomness(), line);
        };
        let session_id = token_hash[..16].to_string();
        // Endpoint delivery: role credentials only (static keys do not expire and go
        // into the environment as before).
        let endpoint_addr = match (&decision.plan, &credentials) {
            (Plan::AssumeRole(_), Some(c)) if endpoint_mode && c.expiration.is_some() => {
                self.endpoint_addr
            }
            _ => None,
        };
        line.tier = Some(decision.tier.as_str());
        line.source = Some(source);
        let mut record = DecisionRecord::new(&decision);
        record.caller = Some(caller.clone());
        record.expiration = credentials.as_ref().and_then(|c| c.expiration_rfc3339());
        record.elapsed_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        if credentials.is_some() && decision.refusal().is_none() {
            record.delivery = Some(
                if endpoint_addr.is_some() {
                    "endpoint"
                } else {
                    "environment"
                }
                .into(),
            );
            record.session = Some(session_id.clone());
            record.event = Some("launch".into());
        }
        let record_value = serde_json::to_value(&record).unwrap_or_default();
        line.record = Some(record.to_line());
        if let DecisionLog::File(_) = &platform.settings.decision_log
            && let Err(e) = record.write(&platform.settings.decision_log)
        {
            tracing::warn!("cannot write the decision record: {e}");
        }

        if let Some(r) = decision.refusal() {
            line.outcome = "refused";
            line.code = Some(r.code.as_str().into());
            let mut a = refusal_answer(r);
            a.record = Some(record_value);
            return (a, line);
        }
        // The default tier (and anything without credentials) delivers nothing.
        let credentials = match (&decision.plan, credentials) {
            (Plan::AssumeRole(_) | Plan::StaticKeys(_), Some(c)) => Some(c),
            _ => None,
        };
        let session = Session {
            token_sha256: token_hash.clone(),
            created_at: now_secs(),
            ended_at: None,
            end_reason: None,
            peer_uid: cred.uid,
            peer_gid: cred.gid,
            pid: cred.pid,
            pid_start_time: start_time,
            boot_id: self.store.boot_id().to_string(),
            authenticated_user: auth.authenticated_user.clone(),
            claimed_user: auth.claimed_user.clone(),
            user: auth.user.clone(),
            flow: ctx.flow.as_str().into(),
            workspace: ctx.workspace.clone(),
            runtime_template: ctx.runtime_template.clone(),
            tier: decision.tier.as_str().into(),
            cache_key: cache_key_of(&decision),
            expiration: record.expiration.clone(),
            record: record.to_line(),
            delivery: record.delivery.clone(),
        };
        if let Err(e) = tokio::task::block_in_place(|| self.store.insert(&session)) {
            tracing::error!("{e}");
            line.outcome = "refused";
            return (state_unavailable(), line);
        }
        line.outcome = "granted";
        line.session = Some(session_id.clone());
        let ticket = SessionTicket {
            id: session_id.clone(),
            token: token.clone(),
        };
        let region = credentials.as_ref().map(|_| platform.aws.region.clone());
        if let (Some(addr), Some(c)) = (endpoint_addr, &credentials) {
            let live = Arc::new(LiveSession::new(
                session_id.clone(),
                hash_bytes(&token_hash),
                (cred.uid, cred.gid),
                cred.pid,
                start_time,
                self.store.boot_id().to_string(),
                ctx.clone(),
                auth.claimed_user.clone(),
                session.created_at + i64::from(platform.settings.max_session_seconds),
                Served::Ready {
                    credentials: c.clone(),
                    minted_at: minted_at.unwrap_or_else(SystemTime::now),
                    key: cache_key_of(&decision),
                },
            ));
            // The application token is stored before the session is served, so that a
            // launch never returns a token the endpoint would not know.
            let executor_grant = match (&self.executor_origin, delivery.executor_endpoint) {
                (Some(origin), true) => {
                    match self.new_application_token(&session_id, &token_hash) {
                        Ok(app) => Some(protocol::EndpointGrant {
                            url: executor::session_url(origin, &session_id),
                            token: app,
                        }),
                        Err(a) => {
                            let _ = tokio::task::block_in_place(|| {
                                self.store.end(&token_hash, "application token not stored")
                            });
                            line.outcome = "refused";
                            return (*a, line);
                        }
                    }
                }
                _ => None,
            };
            self.sessions.insert(Arc::clone(&live));
            self.spawn_refresher(live);
            let mut a = ok_answer(Some(record_value), None, region, Some(ticket));
            a.delivery = Delivery::Endpoint;
            a.executor_endpoint = executor_grant;
            a.endpoint = Some(protocol::EndpointGrant {
                url: endpoint::session_url(addr, &session_id),
                token,
            });
            return (a, line);
        }
        let wire = credentials.map(|c| WireCredentials {
            expiration: c.expiration_rfc3339(),
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: c.session_token,
        });
        (
            ok_answer(Some(record_value), wire, region, Some(ticket)),
            line,
        )
    }

    /// Credentials for a context whose first resolution is `d0`: from the cache, one
    /// coalesced STS call, or the fall-back the decision tables pick. Returns the
    /// decision as minted, the credentials, where they came from, and when they were
    /// minted. `endpoint` asks for credentials fresh enough for the refresh scheduler.
    pub(crate) async fn obtain(
        &self,
        platform: &Arc<Platform>,
        ctx: &LaunchContext,
        d0: Decision,
        endpoint: bool,
    ) -> (
        Decision,
        Option<Credentials>,
        &'static str,
        Option<SystemTime>,
    ) {
        match &d0.plan {
            Plan::Refused(_) | Plan::Ambient => (d0, None, "none", None),
            Plan::StaticKeys(_) => {
                let m = self.mint(platform, ctx).await;
                (m.decision, m.credentials, "static", Some(SystemTime::now()))
            }
            Plan::AssumeRole(_) => {
                let key = cache_key_of(&d0).unwrap_or_default();
                let min = u64::from(platform.settings.broker_min_remaining_seconds);
                let good = |m: &Minted| {
                    if endpoint {
                        fresh_for_endpoint(m)
                    } else {
                        fresh(m, min)
                    }
                };
                let (m, src) = self
                    .cache
                    .get(
                        &key,
                        good,
                        |m| m.clean && good(m),
                        || self.mint_shared(platform, ctx, &d0),
                    )
                    .await;
                match (m.clean, src) {
                    (true, _) => {
                        let mut d = d0.clone();
                        if let (Plan::AssumeRole(p), Plan::AssumeRole(minted)) =
                            (&mut d.plan, &m.decision.plan)
                        {
                            p.duration_seconds = minted.duration_seconds;
                        }
                        d.warnings.extend(m.notes.iter().cloned());
                        let s = match src {
                            Source::Hit => "cache",
                            Source::Fetched => "sts",
                            Source::Joined => "coalesced",
                        };
                        (d, m.credentials.clone(), s, Some(m.minted_at))
                    }
                    // This caller's own fetch fell back: its result is for this context.
                    (false, Source::Fetched) => (
                        m.decision.clone(),
                        m.credentials.clone(),
                        "sts",
                        Some(m.minted_at),
                    ),
                    // Another context's fall-back: resolve this one on its own.
                    (false, _) => {
                        let m = self.mint(platform, ctx).await;
                        (m.decision, m.credentials, "sts", Some(SystemTime::now()))
                    }
                }
            }
        }
    }
    /// Mints for a context on a blocking thread (the STS client has its own runtime).
    async fn mint(
        &self,
        platform: &Arc<Platform>,
        ctx: &LaunchContext,
    ) -> provisioner_core::mint::Minted {
        self.mints.fetch_add(1, Ordering::SeqCst);
        let p = Arc::clone(platform);
        let c = ctx.clone();
        let sts = self.sts.clone();
        let fallback_ctx = ctx.clone();
        match tokio::task::spawn_blocking(move || obtain_with(&p, &c, &env_lookup, &sts)).await {
            Ok(m) => m,
            Err(e) => provisioner_core::mint::Minted {
                decision: refused_decision(
                    platform,
                    &fallback_ctx,
                    &format!("minting stopped: {e}"),
                ),
                credentials: None,
                elapsed: Duration::ZERO,
            },
        }
    }

    async fn mint_shared(
        &self,
        platform: &Arc<Platform>,
        ctx: &LaunchContext,
        d0: &Decision,
    ) -> Minted {
        let m = self.mint(platform, ctx).await;
        let clean = m.decision.tier == d0.tier && m.credentials.is_some();
        let notes = if clean {
            m.decision
                .warnings
                .iter()
                .skip(d0.warnings.len())
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        Minted {
            decision: m.decision,
            credentials: m.credentials,
            exemplar: ctx.clone(),
            notes,
            clean,
            minted_at: SystemTime::now(),
        }
    }
}

/// Whether cached credentials still have at least `min` seconds to live.
fn fresh(m: &Minted, min: u64) -> bool {
    m.credentials
        .as_ref()
        .and_then(|c| c.expiration)
        .and_then(|e| e.duration_since(SystemTime::now()).ok())
        .is_some_and(|left| left.as_secs() >= min)
}

/// Whether cached credentials are fresh enough to start or refresh an endpoint
/// session: they will not need a refresh of their own before it would.
fn fresh_for_endpoint(m: &Minted) -> bool {
    m.credentials.as_ref().is_some_and(|c| {
        let lifetime = c
            .expiration
            .and_then(|e| e.duration_since(m.minted_at).ok())
            .unwrap_or_default();
        crate::sessions::fresh_for_refresh(c, lifetime)
    })
}

/// The token hash as bytes (the store keeps it as hex).
pub(crate) fn hash_bytes(hex_hash: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(v) = hex::decode(hex_hash)
        && v.len() == 32
    {
        out.copy_from_slice(&v);
    }
    out
}

/// The hash of everything that shapes an AssumeRole's credentials; None when the
/// decision assumes no role.
pub fn cache_key_of(d: &Decision) -> Option<String> {
    let a: &AssumeRolePlan = d.assume_role()?;
    let shape = serde_json::json!([
        "v1",
        d.context.user,
        d.tier.as_str(),
        a.role_arn.as_str(),
        a.session_name,
        a.duration_seconds,
        a.external_id,
        a.policy.as_ref().map(|p| p.sha256().to_string()),
        // Content-addressed names: a changed managed document is a new ARN.
        a.policy_arns,
        a.source_identity,
        a.tags,
    ]);
    Some(hex::encode(Sha256::digest(shape.to_string().as_bytes())))
}

fn refused_decision(platform: &Platform, ctx: &LaunchContext, why: &str) -> Decision {
    let mut d = resolve(platform, ctx, &[]);
    d.plan = Plan::Refused(Refusal {
        code: provisioner_core::decision::RefusalCode::CredentialsUnavailable,
        message: why.into(),
        fix: "retry the launch; the broker's log has the cause".into(),
        exit_code: exit::CREDENTIALS,
    });
    d
}

/// A random session token (hex of 32 bytes from the kernel) and its hex SHA-256; None
/// when the kernel's random source cannot be read (no session is opened then).
fn new_token() -> Option<(String, String)> {
    let (token, hash) = executor::new_token()?;
    Some((token, hex::encode(hash)))
}

fn no_randomness() -> Answer {
    Answer::error(
        "CREDENTIALS_UNAVAILABLE",
        "the broker cannot read the kernel's random source to make a token; fix: check /dev/urandom on the broker's host and its log",
        None,
        exit::CREDENTIALS,
    )
}

fn ok_answer(
    record: Option<serde_json::Value>,
    credentials: Option<WireCredentials>,
    region: Option<String>,
    session: Option<SessionTicket>,
) -> Answer {
    Answer {
        version: VERSION,
        ok: true,
        record,
        delivery: if credentials.is_some() {
            Delivery::Environment
        } else {
            Delivery::None
        },
        credentials,
        region,
        session,
        endpoint: None,
        executor_endpoint: None,
        error: None,
    }
}

fn refusal_answer(r: &Refusal) -> Answer {
    let mut a = Answer::error(
        r.code.as_str(),
        format!("{}; fix: {}", r.message, r.fix),
        Some(r.fix.clone()),
        r.exit_code,
    );
    if let Some(e) = a.error.as_mut() {
        e.exit_code = r.exit_code;
    }
    a
}

fn no_executor_endpoint() -> Answer {
    let fix = "start the broker with --executor-endpoint ADDR:PORT, --tls-cert and --tls-key (README, \"Executors on other hosts\")";
    Answer::error(
        "NO_EXECUTOR_ENDPOINT",
        format!("this broker has no HTTPS endpoint for executors on other hosts; fix: {fix}"),
        Some(fix.into()),
        exit::CREDENTIALS,
    )
}

fn refused_token(code: &str, message: &str, fix: &str, exit_code: i32) -> Answer {
    Answer::error(
        code,
        format!("{message}; fix: {fix}"),
        Some(fix.into()),
        exit_code,
    )
}

fn state_unavailable() -> Answer {
    Answer::error(
        "STATE_UNAVAILABLE",
        "the broker cannot record the session; fix: check the broker's state directory (disk space, permissions) and its log",
        None,
        exit::CREDENTIALS,
    )
}

fn protocol_error(e: &ProtocolError) -> Answer {
    Answer {
        error: Some(WireError {
            code: e.code().into(),
            message: protocol::one_line(&e.to_string()),
            fix: None,
            exit_code: exit::CREDENTIALS,
        }),
        ..Answer::error("", "", None, exit::CREDENTIALS)
    }
}

/// Reads one framed request.
async fn read_request(stream: &mut UnixStream) -> Result<Request, ProtocolError> {
    let mut header = [0u8; 4];
    read_exact(stream, &mut header).await?;
    let len = protocol::frame_len(header, MAX_REQUEST_BYTES)?;
    let mut body = vec![0u8; len];
    read_exact(stream, &mut body).await?;
    protocol::decode_request(&body)
}

async fn read_exact(stream: &mut UnixStream, buf: &mut [u8]) -> Result<(), ProtocolError> {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]).await {
            Ok(0) => {
                return Err(ProtocolError::Truncated {
                    got,
                    want: buf.len(),
                });
            }
            Ok(n) => got += n,
            Err(e) => return Err(ProtocolError::Io(protocol::one_line(&e.to_string()))),
        }
    }
    Ok(())
}

fn log_decision(cred: PeerCred, l: &LogLine, started: Instant, delivered: bool) {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    tracing::info!(
        "decision uid={} pid={} login={} authenticated={} claimed={} user={} outcome={} code={} tier={} source={} session={} answered={} ms={} record={}",
        cred.uid,
        cred.pid,
        opt(&l.login),
        opt(&l.authenticated),
        opt(&l.claimed),
        opt(&l.user),
        if l.outcome.is_empty() {
            "error"
        } else {
            l.outcome
        },
        opt(&l.code),
        l.tier.unwrap_or("-"),
        l.source.unwrap_or("-"),
        opt(&l.session),
        delivered,
        started.elapsed().as_millis(),
        l.record.as_deref().unwrap_or("-"),
    );
}
