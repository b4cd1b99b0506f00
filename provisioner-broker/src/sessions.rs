//! Live endpoint sessions in memory: what the credentials endpoint serves and what the
//! refresh scheduler keeps fresh.
//!
//! A [`LiveSession`] is one launched process with endpoint delivery: the token's hash,
//! the owning uid, the process identity, the launch context it is re-resolved with,
//! and the credentials currently served ([`Served`]). The SQLite store
//! ([`crate::store`]) holds the same sessions without any secret, so a restarted broker
//! rebuilds this registry and mints again.
//!
//! [`refresh_delay`] is the scheduler's timing: a pure function of the credentials'
//! remaining lifetime, measured from the `Expiration` STS returned.
//!
//! [`ExitWatch`] is how the broker learns that a session's process exited: a pidfd
//! (`pidfd_open(2)`), checked against the recorded start time right after it is opened
//! and readable once the process exits, so the endpoint refuses the session's token
//! within milliseconds and an idle broker does no work per session. Where pidfds are
//! unavailable (kernels before 5.3, a seccomp filter that refuses the call) the session
//! is polled instead (pid plus start time, every second; [`crate::refresh`]).
//!
//! This module must never call STS (only the scheduler in [`crate::refresh`] does),
//! never log a secret, never hand out credentials of a session that has ended, and never
//! take a process that merely reuses a session's pid for the session's own.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, RwLock};
use std::time::{Duration, SystemTime};

use provisioner_core::context::LaunchContext;
use provisioner_core::credentials::Credentials;
use rustix::io::Errno;
use rustix::process::{PidfdFlags, Resource, Rlimit};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use crate::peer;

/// The SDKs' own refresh window: botocore refreshes 15 minutes before `Expiration`
/// (10 mandatory), the Java SDK v2 prefetches 15 minutes before. Served credentials
/// must always have more than this left.
pub const SDK_REFRESH_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The least lifetime served credentials keep: the SDK window plus five minutes for a
/// slow STS and retries.
pub const LEAD: Duration = Duration::from_secs(20 * 60);
/// The longest jitter added before the lead, so that sessions minted together do not
/// refresh together.
pub const JITTER: Duration = Duration::from_secs(10 * 60);

/// What a session's endpoint answers.
#[derive(Clone)]
pub enum Served {
    /// Nothing minted yet (just after a restart): the endpoint asks to retry.
    Pending,
    /// The credentials to serve, and when they were minted.
    Ready {
        credentials: Credentials,
        minted_at: SystemTime,
        /// The cache key of the decision they were minted for: a reload that changes
        /// it mints again at once.
        key: Option<String>,
    },
    /// The decision no longer grants credentials (user removed, plane withdrawn, ...).
    Refused { code: String, message: String },
}

/// One live session.
pub struct LiveSession {
    /// The first 16 hex digits of the token's SHA-256: the id in the endpoint's path.
    pub id: String,
    pub token_sha256: [u8; 32],
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    pub pid_start_time: u64,
    pub boot_id: String,
    /// The context the session is re-resolved with at every refresh (user as
    /// authenticated, never as claimed).
    pub ctx: LaunchContext,
    /// The claimed user of a proxied launch (re-authorized at every refresh).
    pub claimed_user: Option<String>,
    /// Unix seconds after which the session ends whatever its process does.
    pub ends_at: i64,
    served: RwLock<Served>,
    ended: AtomicBool,
    /// Wakes the session's scheduler task (reload, end).
    pub wake: Notify,
    /// Set by a reload: re-resolve now, mint only if the decision changed.
    pub recheck: AtomicBool,
    /// Where in the jitter window this session refreshes (0..1), fixed at creation so
    /// that a session's refresh time does not move each time its task wakes.
    pub jitter_unit: f64,
    /// Set when no pidfd watches the process: the once-a-second poll looks at it.
    polled: AtomicBool,
    /// Wakes the session's exit watcher when the session ends for another reason, so
    /// that it lets go of the pidfd.
    ended_wake: Notify,
}

impl LiveSession {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        token_sha256: [u8; 32],
        (uid, gid): (u32, u32),
        pid: i32,
        pid_start_time: u64,
        boot_id: String,
        ctx: LaunchContext,
        claimed_user: Option<String>,
        ends_at: i64,
        served: Served,
    ) -> LiveSession {
        LiveSession {
            id,
            token_sha256,
            uid,
            gid,
            pid,
            pid_start_time,
            boot_id,
            ctx,
            claimed_user,
            ends_at,
            served: RwLock::new(served),
            ended: AtomicBool::new(false),
            wake: Notify::new(),
            recheck: AtomicBool::new(false),
            jitter_unit: fastrand::f64(),
            polled: AtomicBool::new(false),
            ended_wake: Notify::new(),
        }
    }

    pub fn served(&self) -> Served {
        self.served
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_served(&self, s: Served) {
        *self.served.write().unwrap_or_else(|p| p.into_inner()) = s;
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Marks the session ended (its credentials are dropped) and wakes its scheduler.
    /// Returns false when it had already ended.
    pub fn end(&self) -> bool {
        let first = !self.ended.swap(true, Ordering::SeqCst);
        self.set_served(Served::Pending);
        self.wake.notify_one();
        // One watcher per session: a stored permit reaches it even if it is not waiting yet.
        self.ended_wake.notify_one();
        first
    }

    /// Whether the session's process is polled (no pidfd watches it).
    pub fn is_polled(&self) -> bool {
        self.polled.load(Ordering::SeqCst)
    }

    /// Hands the session to the once-a-second poll.
    pub fn poll_instead(&self) {
        self.polled.store(true, Ordering::SeqCst);
    }

    /// Waits until the session's process exits (`Ok`), or the session ends for another
    /// reason (`Ok` too: nothing left to watch). `Err` when the pidfd cannot be waited on:
    /// the caller polls instead.
    pub async fn exited_or_ended(&self, fd: &AsyncFd<OwnedFd>) -> std::io::Result<()> {
        if self.is_ended() {
            return Ok(());
        }
        tokio::select! {
            r = fd.readable() => r.map(|_| ()),
            _ = self.ended_wake.notified() => Ok(()),
        }
    }
}

/// How a session's process is watched, decided once when the session starts (or is
/// restored after a restart).
pub enum ExitWatch {
    /// A pidfd that refers to the session's own process: readable once it exits.
    Pidfd(AsyncFd<OwnedFd>),
    /// No pidfd (unsupported, refused, out of descriptors): poll pid plus start time.
    Poll,
    /// The recorded process is not running any more (exited, or its pid now belongs
    /// to another process, or it ran before this boot).
    Exited,
}

impl ExitWatch {
    /// Opens a pidfd for `pid` and checks, after opening, that the pid still names the
    /// process that started at `start_time` in boot `boot`. The check must come after
    /// `pidfd_open`: the recorded process has held its pid since before the session
    /// existed, so if it is still there after the pidfd was opened, the pidfd refers to
    /// it, and from then on the pidfd keeps referring to that process whatever later
    /// reuses the number. Must run inside the Tokio runtime (the pidfd is registered
    /// with its reactor).
    pub fn open(pid: i32, start_time: u64, boot: &str, this_boot: &str) -> ExitWatch {
        if boot != this_boot {
            return ExitWatch::Exited;
        }
        let Some(p) = rustix::process::Pid::from_raw(pid) else {
            return ExitWatch::Exited;
        };
        raise_descriptor_limit();
        let fd = match rustix::process::pidfd_open(p, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(Errno::SRCH) => return ExitWatch::Exited,
            Err(e) if e == Errno::NOSYS || e == Errno::PERM || e == Errno::ACCESS => {
                static ONCE: Once = Once::new();
                ONCE.call_once(|| {
                    tracing::info!(
                        "pidfd_open is not available here ({e}: a kernel before 5.3 or a seccomp filter); session ends are noticed by polling each session's process every second"
                    );
                });
                return ExitWatch::Poll;
            }
            Err(e) => {
                static ONCE: Once = Once::new();
                ONCE.call_once(|| {
                    tracing::warn!(
                        "cannot open a pidfd for a session's process ({e}); that session, and any other in the same case, is polled every second instead"
                    );
                });
                return ExitWatch::Poll;
            }
        };
        if peer::process_start_time(pid) != Some(start_time) {
            return ExitWatch::Exited;
        }
        // `register_with_interest` is the same call made `unsafe` for owners whose
        // descriptor can change or close under the reactor; an `OwnedFd` owned by the
        // `AsyncFd` cannot, and this crate denies unsafe code.
        #[allow(deprecated)]
        let registered = AsyncFd::with_interest(fd, Interest::READABLE);
        match registered {
            Ok(fd) => ExitWatch::Pidfd(fd),
            Err(e) => {
                tracing::warn!(
                    "cannot watch a session's pidfd ({e}); the session is polled every second instead"
                );
                ExitWatch::Poll
            }
        }
    }
}

/// Each watched session holds one descriptor: raise the soft descriptor limit to the
/// hard one (systemd services start at 1,024) once, before the first pidfd. Nothing here
/// uses `select(2)`, which is what the low soft limit protects.
fn raise_descriptor_limit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let limit = rustix::process::getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if let Err(e) = rustix::process::setrlimit(Resource::Nofile, raised) {
                tracing::warn!("cannot raise the open-files limit to its maximum: {e}");
            }
        }
    });
}

/// The live sessions by id.
#[derive(Default)]
pub struct Registry {
    map: Mutex<HashMap<String, Arc<LiveSession>>>,
}

impl Registry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveSession>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, s: Arc<LiveSession>) {
        self.map().insert(s.id.clone(), s);
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveSession>> {
        self.map().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<Arc<LiveSession>> {
        self.map().remove(id)
    }

    pub fn all(&self) -> Vec<Arc<LiveSession>> {
        self.map().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The lead and the jitter window for credentials that live `lifetime` (from mint to
/// `Expiration`): [`LEAD`] and [`JITTER`], scaled down to a half and a quarter of the
/// lifetime when it is too short for them (test lifetimes of seconds, or lifetimes
/// under 40 minutes, where the SDKs then fetch more often than their window).
pub fn lead_and_jitter(lifetime: Duration) -> (Duration, Duration) {
    (LEAD.min(lifetime / 2), JITTER.min(lifetime / 4))
}

/// How long after `now` to mint again credentials minted at `minted_at` that expire at
/// `expiration`: at `expiration - lead - jitter`, with `jitter` = `unit` (0..1) times
/// the jitter window. Served credentials then always have at least the lead left.
pub fn refresh_delay(
    minted_at: SystemTime,
    expiration: SystemTime,
    now: SystemTime,
    unit: f64,
) -> Duration {
    let lifetime = expiration
        .duration_since(minted_at)
        .unwrap_or(Duration::ZERO);
    let (lead, window) = lead_and_jitter(lifetime);
    let jitter = window.mul_f64(unit.clamp(0.0, 1.0));
    let at = expiration
        .checked_sub(lead + jitter)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// Cached credentials are good for a session's refresh when they will not need a
/// refresh of their own before the earliest moment this one would: at least lead plus
/// jitter window left.
pub fn fresh_for_refresh(credentials: &Credentials, lifetime: Duration) -> bool {
    let (lead, window) = lead_and_jitter(lifetime);
    credentials
        .expiration
        .and_then(|e| e.duration_since(SystemTime::now()).ok())
        .is_some_and(|left| left >= lead + window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_of(pid: i32, start_time: u64) -> LiveSession {
        LiveSession::new(
            "0123456789abcdef".into(),
            [0; 32],
            (1000, 1000),
            pid,
            start_time,
            peer::boot_id(),
            LaunchContext {
                flow: provisioner_core::context::Flow::Notebook,
                user: "alice".into(),
                workspace: None,
                runtime_template: None,
                job_id: None,
            },
            None,
            i64::MAX,
            Served::Pending,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_pidfd_sees_the_exit_of_the_recorded_process_and_never_a_reused_pid() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = peer::process_start_time(pid).unwrap();
        let boot = peer::boot_id();
        // Another start time under the same pid is another process: not this session's.
        assert!(matches!(
            ExitWatch::open(pid, start + 1, &boot, &boot),
            ExitWatch::Exited
        ));
        // A session recorded in another boot has ended whatever runs under its pid.
        assert!(matches!(
            ExitWatch::open(pid, start, "another-boot", &boot),
            ExitWatch::Exited
        ));
        let ExitWatch::Pidfd(fd) = ExitWatch::open(pid, start, &boot, &boot) else {
            panic!("no pidfd for a running process on this kernel");
        };
        let s = session_of(pid, start);
        // Still running: the watch does not fire.
        let early = tokio::time::timeout(Duration::from_millis(200), s.exited_or_ended(&fd)).await;
        assert!(early.is_err(), "fired while the process runs");
        let killed = std::time::Instant::now();
        child.kill().unwrap();
        tokio::time::timeout(Duration::from_secs(2), s.exited_or_ended(&fd))
            .await
            .expect("the exit was not seen within 2 s")
            .unwrap();
        assert!(
            killed.elapsed() < Duration::from_millis(500),
            "{:?}",
            killed.elapsed()
        );
        child.wait().unwrap();
        // Reaped: the pid names nothing (or a newer process with another start time).
        assert!(matches!(
            ExitWatch::open(pid, start, &boot, &boot),
            ExitWatch::Exited
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn ending_a_session_releases_its_exit_watcher() {
        let me = std::process::id() as i32;
        let start = peer::process_start_time(me).unwrap();
        let boot = peer::boot_id();
        let ExitWatch::Pidfd(fd) = ExitWatch::open(me, start, &boot, &boot) else {
            panic!("no pidfd for this process");
        };
        let s = Arc::new(session_of(me, start));
        let watcher = {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.exited_or_ended(&fd).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(s.end());
        tokio::time::timeout(Duration::from_secs(2), watcher)
            .await
            .expect("the watcher kept waiting after the session ended")
            .unwrap()
            .unwrap();
        // Ended before the watcher starts waiting: it returns at once.
        let ExitWatch::Pidfd(fd) = ExitWatch::open(me, start, &boot, &boot) else {
            panic!("no pidfd for this process");
        };
        tokio::time::timeout(Duration::from_secs(1), s.exited_or_ended(&fd))
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn a_polled_session_is_marked_so() {
        let s = session_of(1, 0);
        assert!(!s.is_polled());
        s.poll_instead();
        assert!(s.is_polled());
    }

    #[test]
    fn an_hour_of_credentials_is_refreshed_with_twenty_to_thirty_minutes_left() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let exp = t0 + Duration::from_secs(3600);
        let early = refresh_delay(t0, exp, t0, 1.0);
        let late = refresh_delay(t0, exp, t0, 0.0);
        assert_eq!(early, Duration::from_secs(1800));
        assert_eq!(late, Duration::from_secs(2400));
        // Whatever the jitter, more than the SDKs' window is left when re-minting.
        for u in [0.0, 0.3, 0.99, 1.0] {
            let left = Duration::from_secs(3600) - refresh_delay(t0, exp, t0, u);
            assert!(left > SDK_REFRESH_WINDOW, "{left:?}");
        }
    }

    #[test]
    fn short_lifetimes_scale_the_lead_down_and_past_due_is_now() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let exp = t0 + Duration::from_secs(8);
        assert_eq!(refresh_delay(t0, exp, t0, 0.0), Duration::from_secs(4));
        assert_eq!(refresh_delay(t0, exp, t0, 1.0), Duration::from_secs(2));
        assert_eq!(
            refresh_delay(t0, exp, t0 + Duration::from_secs(30), 0.5),
            Duration::ZERO
        );
        // Already expired at mint time: now.
        assert_eq!(refresh_delay(t0, t0, t0, 0.5), Duration::ZERO);
    }

    #[test]
    fn jitter_spreads_refreshes() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let exp = t0 + Duration::from_secs(3600);
        let mut delays: Vec<u64> = (0..1000)
            .map(|i| refresh_delay(t0, exp, t0, f64::from(i) / 1000.0).as_secs())
            .collect();
        delays.sort();
        delays.dedup();
        assert!(delays.len() > 500, "{}", delays.len());
    }
}
