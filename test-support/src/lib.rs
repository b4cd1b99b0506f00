//! Helpers shared by the workspace's tests; never a dependency of a shipped binary.
//!
//! * [`server`]: the one gate for tests that need a real server or tool (moto,
//!   Jupyter, Spark, the S3A jars). Each is named by an environment variable; without
//!   it the test (or, with [`server_for_part`], the part of it that needs the tool) is
//!   skipped with a note saying how to run it, and under `PROVISIONER_E2E=1` (set by
//!   `scripts/test`) a missing variable fails the test instead, so a full run can
//!   never skip silently.
//! * [`write_executable`] and [`spawning`]: writing an executable while another test
//!   thread forks lets the child inherit the open write descriptor for a moment, and
//!   executing the file then fails with "text file busy" (ETXTBSY). Tests that write
//!   executables hold the write side of a process-wide lock; tests that start
//!   processes hold the read side while they do.

// Test code: a failed setup step should stop the test with a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard};

/// The variable `scripts/test` sets to say every server is there.
pub const E2E: &str = "PROVISIONER_E2E";

/// The value of `var` (a server executable or a bin directory), or None when the
/// calling test must be skipped. `what` says what to set it to, e.g. "the
/// moto_server executable of a virtualenv with moto[server]".
///
/// Skipping prints `note: TEST skipped: set VAR to WHAT, or run scripts/test`.
/// Panics when `PROVISIONER_E2E=1` and `var` is unset or empty.
pub fn server(var: &str, what: &str) -> Option<OsString> {
    gate(var, what, None)
}

/// [`server`] for one part of a test that runs either way (`part` says which, e.g.
/// "opening S3A"): skipping that part prints
/// `note: TEST: PART skipped: set VAR to WHAT, or run scripts/test`.
pub fn server_for_part(var: &str, what: &str, part: &str) -> Option<OsString> {
    gate(var, what, Some(part))
}

fn gate(var: &str, what: &str, part: Option<&str>) -> Option<OsString> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(v) => Some(v),
        None if std::env::var(E2E).as_deref() == Ok("1") => {
            panic!("{E2E}=1 but {var} is not set; set {var} to {what}")
        }
        None => {
            let thread = std::thread::current();
            let test = thread.name().unwrap_or("this test");
            let skipped = match part {
                Some(part) => format!("{test}: {part}"),
                None => test.to_string(),
            };
            eprintln!("note: {skipped} skipped: set {var} to {what}, or run scripts/test");
            None
        }
    }
}

static FORK_LOCK: RwLock<()> = RwLock::new(());

/// Writes an executable file (mode 0755) with no write descriptor left open.
pub fn write_executable(path: &Path, text: &[u8]) {
    let _g = FORK_LOCK.write().unwrap_or_else(|e| e.into_inner());
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Held while a test starts or execs a process.
pub fn spawning() -> RwLockReadGuard<'static, ()> {
    FORK_LOCK.read().unwrap_or_else(|e| e.into_inner())
}
