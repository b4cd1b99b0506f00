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
//! This module must never call STS (only the scheduler in [`crate::refresh`] does),
//! never log a secret, and never hand out credentials of a session that has ended.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use provisioner_core::context::LaunchContext;
use provisioner_core::credentials::Credentials;
use tokio::sync::Notify;

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
        first
    }
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
