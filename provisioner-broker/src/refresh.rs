//! The refresh scheduler and the end of sessions: the only code that calls STS for a
//! live endpoint session.
//!
//! Each endpoint session has one task. It sleeps until its credentials have the lead
//! plus its jitter left ([`crate::sessions::refresh_delay`]), then resolves the
//! decision again against the platform file loaded now (SIGHUP reloads it),
//! re-authorizes the peer, mints through the shared cache (identical decisions share
//! one STS call) and writes a decision record (`event: refresh`). A decision that no
//! longer grants credentials replaces them with its refusal at once: the endpoint then
//! refuses, and what was already served expires on its own (README, "Revocation").
//! A failed mint keeps the credentials already held while they are valid and retries
//! with backoff.
//!
//! Each session also has an exit watcher ([`Broker::watch_exit`]): it waits on a pidfd
//! of the session's process ([`ExitWatch`]) and ends the session the moment the process
//! exits. [`Broker::watch_processes`] polls, every second, the sessions no pidfd watches
//! (pid plus start time; pidfds unavailable) and ends any session past
//! `max_session_seconds`; [`Broker::restore_sessions`] rebuilds the live sessions from
//! the store after a restart (each with a new exit watcher) and mints their credentials
//! again.
//!
//! This module must never serve a request, never log a secret, and never mint for a
//! session that has ended.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use provisioner_core::context::{Flow, LaunchContext};
use provisioner_core::decision::{Plan, RefusalCode, resolve};
use provisioner_core::model::DecisionLog;
use provisioner_core::record::{CallerRecord, DecisionRecord};

use crate::peer;
use crate::server::{Broker, cache_key_of, hash_bytes};
use crate::sessions::{ExitWatch, LiveSession, Served, refresh_delay};
use crate::store::now_secs;

/// How often the poll looks at the processes no pidfd watches, and at every session's
/// maximum lifetime.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How long a session whose decision refuses waits before resolving again by itself
/// (a reload wakes it at once).
const REFUSED_RECHECK: Duration = Duration::from_secs(300);

impl Broker {
    /// Starts the scheduler task of a session, and the watcher that ends the session
    /// when its process exits.
    pub(crate) fn spawn_refresher(self: &Arc<Self>, s: Arc<LiveSession>) {
        let b = Arc::clone(self);
        let watched = Arc::clone(&s);
        tokio::spawn(async move { b.refresher(s).await });
        let b = Arc::clone(self);
        tokio::spawn(async move { b.watch_exit(watched).await });
    }

    /// Ends the session when its process exits: at once with a pidfd, else through the
    /// once-a-second poll. Holds the pidfd only while the session lives.
    async fn watch_exit(self: Arc<Self>, s: Arc<LiveSession>) {
        let watch = ExitWatch::open(s.pid, s.pid_start_time, &s.boot_id, self.store.boot_id());
        match watch {
            ExitWatch::Exited => self.end_session(&s, "process exited").await,
            ExitWatch::Poll => s.poll_instead(),
            ExitWatch::Pidfd(fd) => match s.exited_or_ended(&fd).await {
                Ok(()) => self.end_session(&s, "process exited").await,
                Err(e) => {
                    tracing::warn!(
                        "session {}: cannot wait on its pidfd ({e}); polling its process instead",
                        s.id
                    );
                    s.poll_instead();
                }
            },
        }
    }

    async fn refresher(self: Arc<Self>, s: Arc<LiveSession>) {
        let mut failures: u32 = 0;
        loop {
            if s.is_ended() {
                return;
            }
            let now = SystemTime::now();
            let wait = if failures > 0 {
                // 1, 2, 4 ... 60 s between attempts while STS fails.
                Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
            } else {
                self.due_in(&s, now)
            };
            let to_end = Duration::from_secs(u64::try_from(s.ends_at - now_secs()).unwrap_or(0));
            tokio::select! {
                _ = tokio::time::sleep(wait.min(to_end)) => {}
                _ = s.wake.notified() => {}
            }
            if s.is_ended() {
                return;
            }
            if now_secs() >= s.ends_at {
                self.end_session(&s, "maximum session lifetime reached")
                    .await;
                return;
            }
            let recheck = s.recheck.swap(false, Ordering::SeqCst);
            let due = failures > 0 || self.due_in(&s, SystemTime::now()).is_zero();
            if !(due || recheck) {
                continue;
            }
            let permit = self.mint_permits.acquire().await;
            let ok = self.refresh_session(&s, !due).await;
            drop(permit);
            failures = if ok { 0 } else { failures.saturating_add(1) };
        }
    }

    /// How long until the session's credentials must be minted again.
    fn due_in(&self, s: &LiveSession, now: SystemTime) -> Duration {
        match s.served() {
            Served::Ready {
                credentials,
                minted_at,
                ..
            } => credentials
                .expiration
                .map(|e| refresh_delay(minted_at, e, now, s.jitter_unit))
                .unwrap_or(REFUSED_RECHECK),
            Served::Pending => Duration::ZERO,
            Served::Refused { .. } => REFUSED_RECHECK,
        }
    }

    /// Resolves again and mints. With `only_if_changed` (a reload) credentials are kept
    /// when the decision is the same. Returns false when minting failed and should be
    /// retried.
    async fn refresh_session(&self, s: &Arc<LiveSession>, only_if_changed: bool) -> bool {
        let started = std::time::Instant::now();
        let platform = self.platform_now();
        let (login, authorized) = self
            .authorize_peer(&platform, s.uid, s.claimed_user.clone())
            .await;
        let caller = CallerRecord {
            uid: s.uid,
            gid: s.gid,
            pid: s.pid,
            unix_user: login,
            authenticated_user: authorized
                .as_ref()
                .map(|a| a.authenticated_user.clone())
                .unwrap_or_default(),
            claimed_user: s.claimed_user.clone(),
            proxied: authorized.as_ref().is_ok_and(|a| a.proxied),
        };
        let auth = match authorized {
            Ok(a) if a.user == s.ctx.user => a,
            Ok(a) => {
                return self.refuse_session(
                    s,
                    "NOT_PERMITTED",
                    format!(
                        "the session was launched for {} but its caller now stands for {}; fix: launch again",
                        s.ctx.user, a.user
                    ),
                );
            }
            // Not an answer about the user: keep what is held and retry.
            Err(d) if d.code == RefusalCode::CredentialsUnavailable => return false,
            Err(d) => {
                return self.refuse_session(
                    s,
                    d.code.as_str(),
                    format!("{}; fix: {}", d.message, d.fix),
                );
            }
        };
        let _ = auth;
        let d0 = resolve(&platform, &s.ctx, &[]);
        if let Some(r) = d0.refusal() {
            self.write_refresh_record(&platform, s, &d0, None, caller, started);
            return self.refuse_session(
                s,
                r.code.as_str(),
                format!("{}; fix: {}", r.message, r.fix),
            );
        }
        if !matches!(d0.plan, Plan::AssumeRole(_)) {
            self.write_refresh_record(&platform, s, &d0, None, caller, started);
            return self.refuse_session(
                s,
                "DELIVERY_CHANGED",
                format!(
                    "the session's decision is now the {} tier, which this endpoint does not serve; fix: restart the kernel or job",
                    d0.tier.as_str()
                ),
            );
        }
        let key = cache_key_of(&d0);
        if only_if_changed
            && let Served::Ready { key: held, .. } = s.served()
            && held == key
        {
            return true;
        }
        let (decision, credentials, source, minted_at) =
            self.obtain(&platform, &s.ctx, d0, true).await;
        if s.is_ended() {
            return true;
        }
        self.write_refresh_record(
            &platform,
            s,
            &decision,
            credentials.as_ref(),
            caller,
            started,
        );
        match (&decision.plan, credentials) {
            (Plan::AssumeRole(_), Some(c)) if c.expiration.is_some() => {
                tracing::info!(
                    "refresh session={} user={} tier={} source={source} expiration={}",
                    s.id,
                    s.ctx.user,
                    decision.tier.as_str(),
                    c.expiration_rfc3339().unwrap_or_default()
                );
                s.set_served(Served::Ready {
                    credentials: c,
                    minted_at: minted_at.unwrap_or_else(SystemTime::now),
                    key: cache_key_of(&decision),
                });
                true
            }
            _ => match decision.refusal() {
                // A refusal of the tables (a deny setting, say): stop serving.
                Some(r) if r.code != RefusalCode::CredentialsUnavailable => self.refuse_session(
                    s,
                    r.code.as_str(),
                    format!("{}; fix: {}", r.message, r.fix),
                ),
                // STS failed: keep what is held while it is valid, and retry.
                _ => {
                    tracing::warn!(
                        "refresh session={} user={}: no credentials this time ({}); keeping the current ones while they are valid and retrying",
                        s.id,
                        s.ctx.user,
                        decision
                            .refusal()
                            .map(|r| r.message.clone())
                            .unwrap_or_else(|| "fell back to another tier".into())
                    );
                    false
                }
            },
        }
    }

    fn refuse_session(&self, s: &LiveSession, code: &str, message: String) -> bool {
        tracing::info!(
            "refresh session={} user={}: refused ({code}): {message}; the endpoint serves nothing more",
            s.id,
            s.ctx.user
        );
        s.set_served(Served::Refused {
            code: code.into(),
            message,
        });
        true
    }

    fn write_refresh_record(
        &self,
        platform: &provisioner_core::model::Platform,
        s: &LiveSession,
        decision: &provisioner_core::decision::Decision,
        credentials: Option<&provisioner_core::credentials::Credentials>,
        caller: CallerRecord,
        started: std::time::Instant,
    ) {
        let mut record = DecisionRecord::new(decision);
        record.caller = Some(caller);
        record.expiration = credentials.and_then(|c| c.expiration_rfc3339());
        record.elapsed_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        record.delivery = Some("endpoint".into());
        record.session = Some(s.id.clone());
        record.event = Some("refresh".into());
        if let DecisionLog::File(_) = &platform.settings.decision_log
            && let Err(e) = record.write(&platform.settings.decision_log)
        {
            tracing::warn!("cannot write the decision record: {e}");
        }
        tracing::info!("refresh record={}", record.to_line());
    }

    /// Ends a session: the endpoint refuses its token from now on.
    pub(crate) async fn end_session(&self, s: &Arc<LiveSession>, reason: &'static str) {
        if !s.end() {
            return;
        }
        self.sessions.remove(&s.id);
        let hash = hex::encode(s.token_sha256);
        if let Err(e) = tokio::task::block_in_place(|| self.store.end(&hash, reason)) {
            tracing::warn!("{e}");
        }
        tracing::info!("session {} ended: {reason}", s.id);
    }

    /// Every second: end the polled sessions whose process is gone (pid and start
    /// time) and every session whose maximum lifetime is reached. Sessions watched by a
    /// pidfd cost nothing here but a look at their end time.
    pub(crate) async fn watch_processes(self: Arc<Self>) {
        let mut tick = tokio::time::interval(WATCH_EVERY);
        let boot = self.store.boot_id().to_string();
        loop {
            tick.tick().await;
            let now = now_secs();
            let mut gone = Vec::new();
            let mut polled = Vec::new();
            for s in self.sessions.all() {
                if now >= s.ends_at {
                    gone.push((s, "maximum session lifetime reached"));
                } else if s.is_polled() {
                    polled.push(s);
                }
            }
            if !polled.is_empty() {
                let b = boot.clone();
                let exited = tokio::task::spawn_blocking(move || {
                    polled
                        .into_iter()
                        .filter(|s| !peer::process_alive(s.pid, s.pid_start_time, &s.boot_id, &b))
                        .map(|s| (s, "process exited"))
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                gone.extend(exited);
            }
            for (s, reason) in gone {
                self.end_session(&s, reason).await;
            }
        }
    }

    /// After a restart: the store's live endpoint sessions whose process still runs
    /// come back with nothing to serve until their task mints (within seconds).
    pub(crate) async fn restore_sessions(self: &Arc<Self>) -> usize {
        let b = Arc::clone(self);
        let rows = tokio::task::spawn_blocking(move || {
            let _ = b.store.end_exited(None);
            b.store.live().unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        let max = i64::from(self.platform_now().settings.max_session_seconds);
        let mut n = 0;
        for row in rows {
            if row.delivery.as_deref() != Some("endpoint") {
                continue;
            }
            let Ok(flow) = row.flow.parse::<Flow>() else {
                continue;
            };
            let job_id = serde_json::from_str::<serde_json::Value>(&row.record)
                .ok()
                .and_then(|v| v.get("job_id").and_then(|j| j.as_str()).map(String::from));
            let ctx = LaunchContext {
                flow,
                user: row.user.clone(),
                workspace: row.workspace.clone(),
                runtime_template: row.runtime_template.clone(),
                job_id,
            };
            let id = row.token_sha256.get(..16).unwrap_or_default().to_string();
            let s = Arc::new(LiveSession::new(
                id,
                hash_bytes(&row.token_sha256),
                (row.peer_uid, row.peer_gid),
                row.pid,
                row.pid_start_time,
                row.boot_id.clone(),
                ctx,
                row.claimed_user.clone(),
                row.created_at + max,
                Served::Pending,
            ));
            self.sessions.insert(Arc::clone(&s));
            self.spawn_refresher(s);
            n += 1;
        }
        n
    }
}
