//! Replacing this process with the child program.
//!
//! The launcher must not stay around as a parent: Jupyter signals and kills the process
//! it started (and its process group), so the kernel has to *be* that process. We
//! therefore `execve` in place: same PID, same process group, same open descriptors
//! (Rust opens its own with close-on-exec), and exactly the environment list built by
//! [`crate::child_env`], duplicates and byte values included.
//!
//! Before exec, the signal state a Rust program changes at start-up is put back: Rust
//! ignores SIGPIPE, and an ignored disposition survives exec, so without the reset a
//! child writing to a closed pipe would get EPIPE errors instead of dying quietly as it
//! would when started by a shell. The calling thread's signal mask is cleared for the
//! same reason.
//!
//! This module never prints; error messages name the program and the cause, never an
//! argument or environment value (they can hold secrets).
//!
//! Exit codes follow the shell: 127 when the program is not found, 126 when it is found
//! but cannot be executed.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, pthread_sigmask, signal};

use crate::child_env::ChildEnv;

/// The search path when the child's environment has no `PATH` at all; the same as
/// glibc's `execvp` and Python's `os.defpath`.
pub const DEFAULT_PATH: &str = "/bin:/usr/bin";

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "program \"{0}\" not found; install it, add its directory to the PATH the launcher runs with, or give its full path in the kernelspec argv"
    )]
    NotFound(String),
    #[error("cannot exec {program}: {cause}")]
    Failed { program: String, cause: String },
}

impl ExecError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::NotFound(_) => crate::exit::NOT_FOUND,
            ExecError::Failed { .. } => 126,
        }
    }
}

/// Finds `program` the way `which` does, on `path_var` (the child's PATH).
///
/// - A name containing `/` is used as it is (relative to the current directory when
///   not absolute); it only has to exist.
/// - Otherwise each `PATH` entry is tried in order (an empty entry means the current
///   directory) and the first executable regular file (symlinks followed) wins.
/// - Without a `PATH`, [`DEFAULT_PATH`] is searched.
pub fn find_program(program: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, ExecError> {
    let name = program.to_string_lossy().into_owned();
    if program.is_empty() {
        return Err(ExecError::NotFound(name));
    }
    if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        // `exists` follows symlinks: a dangling link is not found, as for the shell.
        return if path.exists() {
            Ok(path)
        } else {
            Err(ExecError::NotFound(name))
        };
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    // Relative PATH entries are relative to the current directory; if it is gone they
    // cannot match anything, and "/" keeps absolute entries working.
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    which::which_in(program, Some(path_var), cwd).map_err(|_| ExecError::NotFound(name))
}

/// Replaces the process image; returns only on failure.
///
/// `argv` is passed as given (its first element is the name the user wrote, not the
/// resolved path, as a shell does); an empty `argv` gets `program` as its only element.
pub fn exec(program: &Path, argv: &[OsString], env: &ChildEnv) -> ExecError {
    let shown = program.display().to_string();
    let failed = |cause: String| ExecError::Failed {
        program: shown.clone(),
        cause,
    };
    let path = match CString::new(program.as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(_) => return failed("the program path contains a NUL byte".into()),
    };
    let mut args = Vec::with_capacity(argv.len().max(1));
    for (i, a) in argv.iter().enumerate() {
        match CString::new(a.as_bytes()) {
            Ok(c) => args.push(c),
            Err(_) => return failed(format!("argument {i} contains a NUL byte")),
        }
    }
    if args.is_empty() {
        args.push(path.clone());
    }
    let mut vars = Vec::with_capacity(env.vars().len());
    for (k, v) in env.vars() {
        let name = k.to_string_lossy();
        // A name with '=' after its first byte would be read back as a different
        // name; std never produces one, so refuse rather than guess.
        if k.is_empty() || k.as_bytes()[1..].contains(&b'=') {
            return failed(format!(
                "environment variable name \"{}\" is empty or contains '='",
                name.escape_default()
            ));
        }
        let mut entry = Vec::with_capacity(k.len() + 1 + v.len());
        entry.extend_from_slice(k.as_bytes());
        entry.push(b'=');
        entry.extend_from_slice(v.as_bytes());
        match CString::new(entry) {
            Ok(c) => vars.push(c),
            Err(_) => {
                return failed(format!(
                    "environment variable {} contains a NUL byte",
                    name.escape_default()
                ));
            }
        }
    }

    let restore = reset_signals();
    let errno = match nix::unistd::execve::<CString, CString>(&path, &args, &vars) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    restore.apply();
    describe(program, errno)
}

fn describe(program: &Path, errno: Errno) -> ExecError {
    let failed = |cause: &str| ExecError::Failed {
        program: program.display().to_string(),
        cause: cause.to_string(),
    };
    match errno {
        Errno::ENOENT if !program.exists() => ExecError::NotFound(program.display().to_string()),
        Errno::ENOENT => failed(
            "no such file or directory: the interpreter on its #! line (or its dynamic loader) is missing; fix the #! line or install the interpreter",
        ),
        Errno::EACCES => failed(
            "permission denied: it is not an executable file (or sits on a noexec mount); chmod +x it or point at the real program",
        ),
        Errno::ENOEXEC => failed(
            "exec format error: not a program for this machine and no #! line; add a #! line or use the right binary",
        ),
        Errno::ETXTBSY => {
            failed("text file busy: it is being written; retry when the write has finished")
        }
        Errno::E2BIG => failed(
            "the argument list and environment are too large; remove unneeded environment variables",
        ),
        other => failed(&format!("{} ({other:?})", other.desc())),
    }
}

/// The signal state to put back if exec fails.
struct SignalRestore {
    sigpipe: Option<SigHandler>,
    mask: Option<SigSet>,
}

// The one place outside tests that needs `unsafe`: changing a signal disposition.
#[allow(unsafe_code)]
fn reset_signals() -> SignalRestore {
    // SAFETY: installing SIG_DFL runs no handler code; nothing in this process relies on
    // SIGPIPE being ignored between here and execve (we write nothing).
    let sigpipe = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.ok();
    let mut old = SigSet::empty();
    let mask = pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        Some(&mut old),
    )
    .ok()
    .map(|()| old);
    SignalRestore { sigpipe, mask }
}

impl SignalRestore {
    #[allow(unsafe_code)]
    fn apply(self) {
        if let Some(h) = self.sigpipe {
            // SAFETY: puts back the disposition that was installed before.
            let _ = unsafe { signal(Signal::SIGPIPE, h) };
        }
        if let Some(m) = self.mask {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&m), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// Exec calls change the process-wide SIGPIPE disposition for a moment; tests that
    /// call exec take turns so they do not observe each other's window.
    static SIGNALS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> (
        std::sync::MutexGuard<'static, ()>,
        std::sync::RwLockReadGuard<'static, ()>,
    ) {
        (
            SIGNALS.lock().unwrap_or_else(|e| e.into_inner()),
            test_support::spawning(),
        )
    }

    fn file(path: &Path, mode: u32) {
        test_support::write_executable(path, b"#!/bin/sh\nexit 0\n");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn join(dirs: &[&Path]) -> OsString {
        std::env::join_paths(dirs).unwrap()
    }

    #[test]
    fn first_executable_on_path_wins() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
        for d in [&a, &b, &c] {
            fs::create_dir(d).unwrap();
        }
        file(&a.join("tool"), 0o644); // not executable: skipped
        fs::create_dir(b.join("tool")).unwrap(); // a directory: skipped
        file(&c.join("tool"), 0o755);
        let path = join(&[&a, &b, &c]);
        assert_eq!(
            find_program(OsStr::new("tool"), Some(&path)).unwrap(),
            c.join("tool")
        );
        file(&b.join("other"), 0o700);
        file(&c.join("other"), 0o755);
        assert_eq!(
            find_program(OsStr::new("other"), Some(&path)).unwrap(),
            b.join("other")
        );
    }

    #[test]
    fn symlinks_to_executables_are_found_and_kept_as_the_link() {
        let t = tempfile::tempdir().unwrap();
        file(&t.path().join("real"), 0o755);
        symlink(t.path().join("real"), t.path().join("link")).unwrap();
        symlink(t.path().join("gone"), t.path().join("dangling")).unwrap();
        let path = join(&[t.path()]);
        assert_eq!(
            find_program(OsStr::new("link"), Some(&path)).unwrap(),
            t.path().join("link")
        );
        let e = find_program(OsStr::new("dangling"), Some(&path)).unwrap_err();
        assert_eq!(e.exit_code(), 127);
    }

    #[test]
    fn not_found_is_127_and_says_what_to_do() {
        let t = tempfile::tempdir().unwrap();
        let path = join(&[t.path()]);
        let e = find_program(OsStr::new("no-such-kernel"), Some(&path)).unwrap_err();
        assert!(matches!(e, ExecError::NotFound(ref n) if n == "no-such-kernel"));
        assert_eq!(e.exit_code(), 127);
        let msg = e.to_string();
        assert!(msg.contains("\"no-such-kernel\""), "{msg}");
        assert!(msg.contains("full path"), "{msg}");
        assert!(find_program(OsStr::new(""), Some(&path)).is_err());
    }

    #[test]
    fn names_with_a_slash_are_not_searched() {
        let t = tempfile::tempdir().unwrap();
        let bin = t.path().join("bin");
        fs::create_dir(&bin).unwrap();
        file(&bin.join("tool"), 0o755);
        let path = join(&[&bin]);
        let abs = bin.join("tool");
        assert_eq!(find_program(abs.as_os_str(), Some(&path)).unwrap(), abs);
        // Exists but not executable: found; exec reports it (126), as the shell does.
        file(&bin.join("plain"), 0o644);
        let plain = bin.join("plain");
        assert_eq!(find_program(plain.as_os_str(), None).unwrap(), plain);
        // A relative name with a slash is relative to the current directory, not PATH.
        let e = find_program(OsStr::new("bin/tool"), Some(&path)).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        let e = find_program(OsStr::new("./tool"), Some(&path)).unwrap_err();
        assert_eq!(e.exit_code(), 127);
    }

    #[test]
    fn without_path_the_default_search_path_is_used() {
        assert_eq!(
            find_program(OsStr::new("sh"), None).unwrap(),
            PathBuf::from("/bin/sh")
        );
        let t = tempfile::tempdir().unwrap();
        let empty = join(&[t.path()]);
        assert!(find_program(OsStr::new("sh"), Some(&empty)).is_err());
    }

    #[test]
    fn exec_of_a_non_executable_file_is_126_with_the_cause() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("plain");
        file(&p, 0o644);
        let _g = serial();
        let e = exec(&p, &["plain".into()], &ChildEnv::default());
        assert_eq!(e.exit_code(), 126);
        assert!(e.to_string().contains("permission denied"), "{e}");
    }

    #[test]
    fn exec_of_a_missing_program_is_127() {
        let _g = serial();
        let e = exec(
            Path::new("/nonexistent/kernel"),
            &["kernel".into()],
            &ChildEnv::default(),
        );
        assert_eq!(e.exit_code(), 127);
    }

    #[test]
    fn exec_of_a_script_with_a_missing_interpreter_is_126() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("script");
        test_support::write_executable(&p, b"#!/nonexistent/interpreter\n");
        let _g = serial();
        let e = exec(&p, &["script".into()], &ChildEnv::default());
        assert_eq!(e.exit_code(), 126);
        assert!(e.to_string().contains("interpreter"), "{e}");
    }

    #[test]
    fn exec_of_a_file_without_format_is_126() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("data");
        test_support::write_executable(&p, &[0u8, 1, 2, 3, 4, 5, 6, 7]);
        let _g = serial();
        let e = exec(&p, &["data".into()], &ChildEnv::default());
        assert_eq!(e.exit_code(), 126);
        assert!(e.to_string().contains("exec format error"), "{e}");
    }

    #[test]
    fn nul_bytes_are_refused_without_showing_values() {
        let _g = serial();
        use std::os::unix::ffi::OsStringExt;
        let secret = OsString::from_vec(b"sec\0ret".to_vec());
        let env = ChildEnv::from_vars(vec![("AWS_SECRET_ACCESS_KEY".into(), secret.clone())]);
        let e = exec(Path::new("/bin/true"), &["true".into()], &env);
        assert_eq!(e.exit_code(), 126);
        let msg = e.to_string();
        assert!(msg.contains("AWS_SECRET_ACCESS_KEY"), "{msg}");
        assert!(!msg.contains("sec"), "{msg}");
        let e = exec(
            Path::new("/bin/true"),
            &["true".into(), secret],
            &ChildEnv::default(),
        );
        assert!(e.to_string().contains("argument 1"), "{e}");
        let env = ChildEnv::from_vars(vec![("A=B".into(), "x".into())]);
        let e = exec(Path::new("/bin/true"), &["true".into()], &env);
        assert!(e.to_string().contains("contains '='"), "{e}");
    }

    #[test]
    #[allow(unsafe_code)]
    fn failed_exec_restores_the_signal_state() {
        let _g = serial();
        // Rust ignores SIGPIPE in every program, test binaries included.
        // SAFETY: SIG_IGN and the handler put back run no code of ours; the test
        // holds the lock that serialises exec tests.
        let before = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) }.unwrap();
        let _ = exec(
            Path::new("/nonexistent/kernel"),
            &["kernel".into()],
            &ChildEnv::default(),
        );
        let after = unsafe { signal(Signal::SIGPIPE, before) }.unwrap();
        assert_eq!(after, SigHandler::SigIgn);
    }
}
