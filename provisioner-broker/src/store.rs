//! The sessions the broker has served, in SQLite under the state directory: who
//! (peer uid, authenticated and claimed user), what (the decision record, the cache
//! key), which process (pid, its start time, the boot) and when.
//!
//! A session is keyed by the SHA-256 of its token; the token itself, the credentials
//! and every other secret never reach this database. A session ends when its process
//! is gone (checked against pid *and* start time, since pids are reused) or the
//! machine rebooted. The database is opened in WAL mode, so a broker killed with
//! SIGKILL loses nothing it had answered, and the next start knows the live sessions.
//!
//! Application tokens (for the HTTPS executor endpoint) are kept the same way: the
//! SHA-256 of each token with the session it belongs to, in `application_tokens`, and
//! removed when the session ends. A database of an earlier release gains that table
//! (and the `delivery` column) when it is opened.
//!
//! The state directory is created 0700 and the database 0600: it names users and
//! their processes.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::peer;

/// The database file inside the state directory.
pub const DB_FILE: &str = "sessions.sqlite3";

/// A session as stored. No field holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Hex SHA-256 of the session token.
    pub token_sha256: String,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub peer_uid: u32,
    pub peer_gid: u32,
    pub pid: i32,
    pub pid_start_time: u64,
    pub boot_id: String,
    pub authenticated_user: String,
    pub claimed_user: Option<String>,
    pub user: String,
    pub flow: String,
    pub workspace: Option<String>,
    pub runtime_template: Option<String>,
    pub tier: String,
    pub cache_key: Option<String>,
    pub expiration: Option<String>,
    /// The decision record (JSON).
    pub record: String,
    /// `environment` or `endpoint` (null in databases written before endpoint delivery).
    pub delivery: Option<String>,
}

/// The store; one connection behind a mutex (statements are short).
pub struct Store {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
    boot_id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(format!("session database: {e}"))
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256       TEXT PRIMARY KEY,
    created_at         INTEGER NOT NULL,
    ended_at           INTEGER,
    end_reason         TEXT,
    peer_uid           INTEGER NOT NULL,
    peer_gid           INTEGER NOT NULL,
    pid                INTEGER NOT NULL,
    pid_start_time     INTEGER NOT NULL,
    boot_id            TEXT NOT NULL,
    authenticated_user TEXT NOT NULL,
    claimed_user       TEXT,
    user               TEXT NOT NULL,
    flow               TEXT NOT NULL,
    workspace          TEXT,
    runtime_template   TEXT,
    tier               TEXT NOT NULL,
    cache_key          TEXT,
    expiration         TEXT,
    record             TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_live_by_uid ON sessions (peer_uid) WHERE ended_at IS NULL;
CREATE TABLE IF NOT EXISTS application_tokens (
    token_sha256   TEXT PRIMARY KEY,
    session_sha256 TEXT NOT NULL REFERENCES sessions (token_sha256),
    created_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS application_tokens_by_session ON application_tokens (session_sha256);
PRAGMA user_version = 2;
";

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating) the store under `dir`, or in memory when `dir` is None.
    pub fn open(dir: Option<&Path>) -> Result<Store, StoreError> {
        let (conn, path) = match dir {
            None => (Connection::open_in_memory()?, None),
            Some(dir) => {
                prepare_dir(dir)?;
                let path = dir.join(DB_FILE);
                if !path.exists() {
                    // Created 0600 before SQLite writes a byte into it.
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode_0600()
                        .open(&path)
                        .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
                }
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
                let conn = Connection::open(&path)?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                (conn, Some(path))
            }
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // Added with endpoint delivery; older databases gain the column.
        let has_delivery: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'delivery'")?
            .exists([])?;
        if !has_delivery {
            conn.execute_batch("ALTER TABLE sessions ADD COLUMN delivery TEXT")?;
        }
        Ok(Store {
            conn: Mutex::new(conn),
            path,
            boot_id: peer::boot_id(),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves a usable connection: recover it.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, s: &Session) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO sessions (token_sha256, created_at, ended_at, end_reason, peer_uid, peer_gid,
                pid, pid_start_time, boot_id, authenticated_user, claimed_user, user, flow, workspace,
                runtime_template, tier, cache_key, expiration, record, delivery)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
            params![
                s.token_sha256,
                s.created_at,
                s.ended_at,
                s.end_reason,
                s.peer_uid,
                s.peer_gid,
                s.pid,
                s.pid_start_time as i64,
                s.boot_id,
                s.authenticated_user,
                s.claimed_user,
                s.user,
                s.flow,
                s.workspace,
                s.runtime_template,
                s.tier,
                s.cache_key,
                s.expiration,
                s.record,
                s.delivery,
            ],
        )?;
        Ok(())
    }

    /// Every session not yet ended, oldest first.
    pub fn live(&self) -> Result<Vec<Session>, StoreError> {
        self.select("WHERE ended_at IS NULL ORDER BY created_at, rowid", [])
    }

    pub fn get(&self, token_sha256: &str) -> Result<Option<Session>, StoreError> {
        Ok(self
            .select("WHERE token_sha256 = ?1", [token_sha256])?
            .into_iter()
            .next())
    }

    fn select<P: rusqlite::Params>(&self, tail: &str, p: P) -> Result<Vec<Session>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT token_sha256, created_at, ended_at, end_reason, peer_uid, peer_gid, pid,
                pid_start_time, boot_id, authenticated_user, claimed_user, user, flow, workspace,
                runtime_template, tier, cache_key, expiration, record, delivery FROM sessions {tail}"
        ))?;
        let rows = st.query_map(p, |r| {
            Ok(Session {
                token_sha256: r.get(0)?,
                created_at: r.get(1)?,
                ended_at: r.get(2)?,
                end_reason: r.get(3)?,
                peer_uid: r.get(4)?,
                peer_gid: r.get(5)?,
                pid: r.get(6)?,
                pid_start_time: r.get::<_, i64>(7)? as u64,
                boot_id: r.get(8)?,
                authenticated_user: r.get(9)?,
                claimed_user: r.get(10)?,
                user: r.get(11)?,
                flow: r.get(12)?,
                workspace: r.get(13)?,
                runtime_template: r.get(14)?,
                tier: r.get(15)?,
                cache_key: r.get(16)?,
                expiration: r.get(17)?,
                record: r.get(18)?,
                delivery: r.get(19)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Ends every live session (of `uid`, or of everyone) whose process is gone.
    /// Returns how many ended.
    pub fn end_exited(&self, uid: Option<u32>) -> Result<usize, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT token_sha256, pid, pid_start_time, boot_id FROM sessions
             WHERE ended_at IS NULL AND (?1 IS NULL OR peer_uid = ?1)",
        )?;
        let rows: Vec<(String, i32, i64, String)> = st
            .query_map(params![uid], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        drop(st);
        let now = now_secs();
        let mut ended = 0;
        for (hash, pid, start, boot) in rows {
            if !peer::process_alive(pid, start as u64, &boot, &self.boot_id) {
                let reason = if boot == self.boot_id {
                    "process exited"
                } else {
                    "machine rebooted"
                };
                ended += conn.execute(
                    "UPDATE sessions SET ended_at = ?1, end_reason = ?2 WHERE token_sha256 = ?3 AND ended_at IS NULL",
                    params![now, reason, hash],
                )?;
            }
        }
        if ended > 0 {
            conn.execute(
                "DELETE FROM application_tokens WHERE session_sha256 IN
                 (SELECT token_sha256 FROM sessions WHERE ended_at IS NOT NULL)",
                [],
            )?;
        }
        Ok(ended)
    }

    /// Ends one session (if still live) with a reason, and drops its application
    /// tokens; true when it was live.
    pub fn end(&self, token_sha256: &str, reason: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE sessions SET ended_at = ?1, end_reason = ?2 WHERE token_sha256 = ?3 AND ended_at IS NULL",
            params![now_secs(), reason, token_sha256],
        )?;
        conn.execute(
            "DELETE FROM application_tokens WHERE session_sha256 = ?1",
            params![token_sha256],
        )?;
        Ok(n > 0)
    }

    /// Records an application token (its hash) of a session.
    pub fn insert_application_token(
        &self,
        session_sha256: &str,
        token_sha256: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO application_tokens (token_sha256, session_sha256, created_at) VALUES (?1, ?2, ?3)",
            params![token_sha256, session_sha256, now_secs()],
        )?;
        Ok(())
    }

    /// The application tokens of live sessions: (session hash, token hash).
    pub fn live_application_tokens(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT a.session_sha256, a.token_sha256 FROM application_tokens a
             JOIN sessions s ON s.token_sha256 = a.session_sha256
             WHERE s.ended_at IS NULL ORDER BY a.rowid",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Live sessions of a uid (after ending those whose process is gone).
    pub fn live_count(&self, uid: u32) -> Result<usize, StoreError> {
        self.end_exited(Some(uid))?;
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM sessions WHERE ended_at IS NULL AND peer_uid = ?1",
            params![uid],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// The live session of a process, if it has one.
    pub fn live_for_process(
        &self,
        pid: i32,
        start_time: u64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT token_sha256 FROM sessions WHERE ended_at IS NULL AND pid = ?1 AND pid_start_time = ?2 AND boot_id = ?3",
                params![pid, start_time as i64, self.boot_id],
                |r| r.get(0),
            )
            .optional()?)
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// Creates the state directory 0700, or checks that an existing one is a directory
/// owned by this user that nobody else can read or write.
fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                StoreError(format!(
                    "cannot create the state directory {}: {e}; create it or pick another --state",
                    dir.display()
                ))
            })?;
    }
    let md = std::fs::symlink_metadata(dir)
        .map_err(|e| StoreError(format!("state directory {}: {e}", dir.display())))?;
    if !md.is_dir() {
        return Err(StoreError(format!(
            "state directory {} is not a directory; pass a directory to --state",
            dir.display()
        )));
    }
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me {
        return Err(StoreError(format!(
            "state directory {} belongs to uid {}, not to the broker's uid {me}; chown it to the service user",
            dir.display(),
            md.uid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            StoreError(format!(
                "state directory {} is open to others and cannot be made 0700: {e}; chmod 0700 it",
                dir.display()
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(hash: &str, pid: i32, start: u64, boot: &str) -> Session {
        Session {
            token_sha256: hash.into(),
            created_at: now_secs(),
            ended_at: None,
            end_reason: None,
            peer_uid: 1234,
            peer_gid: 1234,
            pid,
            pid_start_time: start,
            boot_id: boot.into(),
            authenticated_user: "alice".into(),
            claimed_user: None,
            user: "alice".into(),
            flow: "notebook".into(),
            workspace: None,
            runtime_template: None,
            tier: "session_policy".into(),
            cache_key: Some("k".into()),
            expiration: None,
            record: "{}".into(),
            delivery: Some("endpoint".into()),
        }
    }

    #[test]
    fn sessions_survive_reopening_and_end_when_their_process_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let me = std::process::id() as i32;
        let start = peer::process_start_time(me).unwrap();
        {
            let s = Store::open(Some(&state)).unwrap();
            s.insert(&session("live", me, start, s.boot_id())).unwrap();
            s.insert(&session("reused-pid", me, start + 1, s.boot_id()))
                .unwrap();
            s.insert(&session("old-boot", me, start, "another-boot"))
                .unwrap();
        }
        let md = std::fs::metadata(&state).unwrap();
        assert_eq!(md.mode() & 0o777, 0o700);
        let md = std::fs::metadata(state.join(DB_FILE)).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600);

        let s = Store::open(Some(&state)).unwrap();
        assert_eq!(s.live().unwrap().len(), 3);
        assert_eq!(s.live_count(1234).unwrap(), 1);
        let live = s.live().unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].token_sha256, "live");
        assert_eq!(
            s.live_for_process(me, start).unwrap().as_deref(),
            Some("live")
        );
        let gone = s.get("old-boot").unwrap().unwrap();
        assert_eq!(gone.end_reason.as_deref(), Some("machine rebooted"));
        let gone = s.get("reused-pid").unwrap().unwrap();
        assert_eq!(gone.end_reason.as_deref(), Some("process exited"));
        assert_eq!(live[0].delivery.as_deref(), Some("endpoint"));
        assert!(s.end("live", "maximum session lifetime reached").unwrap());
        assert!(!s.end("live", "again").unwrap());
        assert!(s.live().unwrap().is_empty());
    }

    #[test]
    fn application_tokens_survive_reopening_and_go_with_their_session() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let me = std::process::id() as i32;
        let start = peer::process_start_time(me).unwrap();
        {
            let s = Store::open(Some(&state)).unwrap();
            s.insert(&session("live", me, start, s.boot_id())).unwrap();
            s.insert(&session("gone", me, start + 1, s.boot_id()))
                .unwrap();
            s.insert_application_token("live", "app1").unwrap();
            s.insert_application_token("live", "app2").unwrap();
            s.insert_application_token("gone", "app3").unwrap();
        }
        let s = Store::open(Some(&state)).unwrap();
        assert_eq!(s.live_application_tokens().unwrap().len(), 3);
        s.end_exited(None).unwrap();
        assert_eq!(
            s.live_application_tokens().unwrap(),
            vec![
                ("live".to_string(), "app1".to_string()),
                ("live".to_string(), "app2".to_string())
            ]
        );
        assert!(s.end("live", "maximum session lifetime reached").unwrap());
        assert!(s.live_application_tokens().unwrap().is_empty());
        let left: i64 = s
            .conn()
            .query_row("SELECT count(*) FROM application_tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "the hashes of ended sessions are removed");
    }

    #[test]
    fn a_database_of_the_previous_release_opens_and_gains_the_new_parts() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&state)
            .unwrap();
        {
            // The schema as the release before endpoint delivery wrote it.
            let c = Connection::open(state.join(DB_FILE)).unwrap();
            c.execute_batch(
                "CREATE TABLE sessions (token_sha256 TEXT PRIMARY KEY, created_at INTEGER NOT NULL,
                 ended_at INTEGER, end_reason TEXT, peer_uid INTEGER NOT NULL, peer_gid INTEGER NOT NULL,
                 pid INTEGER NOT NULL, pid_start_time INTEGER NOT NULL, boot_id TEXT NOT NULL,
                 authenticated_user TEXT NOT NULL, claimed_user TEXT, user TEXT NOT NULL,
                 flow TEXT NOT NULL, workspace TEXT, runtime_template TEXT, tier TEXT NOT NULL,
                 cache_key TEXT, expiration TEXT, record TEXT NOT NULL);
                 INSERT INTO sessions VALUES ('old', 1, NULL, NULL, 1234, 1234, 1, 1, 'b', 'alice',
                 NULL, 'alice', 'notebook', NULL, NULL, 'session_policy', NULL, NULL, '{}');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let s = Store::open(Some(&state)).unwrap();
        let old = s.get("old").unwrap().unwrap();
        assert_eq!(old.delivery, None);
        s.insert_application_token("old", "app").unwrap();
        assert_eq!(s.live_application_tokens().unwrap().len(), 1);
    }

    #[test]
    fn a_state_path_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "").unwrap();
        let e = Store::open(Some(&f)).err().unwrap();
        assert!(e.0.contains("not a directory"), "{e}");
    }
}
