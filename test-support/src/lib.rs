//! Test utilities shared by unit tests.
//!
//! Writing an executable while another test thread forks lets the child inherit the
//! open write descriptor for a moment, and executing the file then fails with "text file
//! busy" (ETXTBSY). Tests that write executables hold the write side of [`FORK_LOCK`];
//! tests that start processes hold the read side while they do.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard};

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
