//! Finding the real `spark-submit`, and never exec'ing ourselves.
//!
//! Search order:
//! 1. `SPARK_SUBMIT_WRAP_REAL` — an explicit path, for installations where the
//!    wrapper *replaces* `$SPARK_HOME/bin/spark-submit` and the original was moved
//!    (when set, it is the only candidate);
//! 2. `$SPARK_HOME/bin/spark-submit`;
//! 3. every `spark-submit` on `PATH`, in order.
//!
//! A candidate that is this binary — same canonical path, or same device and inode
//! (hard links, bind mounts) — is skipped. That covers the usual installation (the
//! wrapper first on `PATH` under the name `spark-submit`), but not a script or a copy
//! that starts the wrapper again; the loop guard does:
//!
//! * `SPARK_SUBMIT_WRAP_PID` is set to our PID in the exec'd environment. `exec`
//!   keeps the PID, so finding our own PID there means the program we exec'd *was*
//!   us (directly or through a script that execs): refuse.
//! * `SPARK_SUBMIT_WRAP_DEPTH` counts nested wrappers; a chain that forks instead of
//!   exec'ing would otherwise recurse forever. Legitimate nesting (a driver that
//!   submits another job) stays far below [`MAX_DEPTH`].
//!
//! Both refusals exit with the configuration exit code (2) and say what to fix
//! (`crate::error::WrapError::exit_code`).
//!
//! This is not `provisioner_core::exec::find_program`: that one returns the first match
//! like `which`, and treats an empty `PATH` entry as the current directory. Here the
//! first match is usually this wrapper (installed as `spark-submit` first on `PATH`)
//! and must be skipped, `SPARK_HOME` comes before `PATH`, and a `spark-submit` in the
//! current directory is never run. The exec itself is `provisioner_core::exec::exec`.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const REAL_VAR: &str = "SPARK_SUBMIT_WRAP_REAL";
pub const PID_VAR: &str = "SPARK_SUBMIT_WRAP_PID";
pub const DEPTH_VAR: &str = "SPARK_SUBMIT_WRAP_DEPTH";
/// Nested wrappers allowed before the guard refuses.
pub const MAX_DEPTH: u32 = 8;

/// Why the real `spark-submit` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    #[error(
        "the real spark-submit was not found (looked at {looked}); set SPARK_HOME, put Spark's bin directory on PATH, or set SPARK_SUBMIT_WRAP_REAL to its path"
    )]
    NotFound { looked: String },
    #[error(
        "{REAL_VAR}={0} is this wrapper itself, not Spark's spark-submit; point it at Spark's bin/spark-submit"
    )]
    RealIsSelf(String),
    #[error(
        "spark-submit-wrap would run itself in a loop ({0}); make sure SPARK_HOME/bin/spark-submit or PATH leads to Spark's own spark-submit, or set SPARK_SUBMIT_WRAP_REAL"
    )]
    Loop(String),
}

/// Identity of a file: canonical path and (device, inode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileId {
    pub canonical: PathBuf,
    pub dev_ino: (u64, u64),
}

impl FileId {
    pub fn of(path: &Path) -> Option<FileId> {
        let canonical = std::fs::canonicalize(path).ok()?;
        let m = std::fs::metadata(&canonical).ok()?;
        Some(FileId {
            canonical,
            dev_ino: (m.dev(), m.ino()),
        })
    }

    pub fn same_file(&self, other: &FileId) -> bool {
        self.canonical == other.canonical || self.dev_ino == other.dev_ino
    }
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// Checks the loop guard variables of the environment we were started with.
pub fn check_guard(env: &dyn Fn(&str) -> Option<String>, my_pid: u32) -> Result<(), FindError> {
    if env(PID_VAR).and_then(|v| v.trim().parse::<u32>().ok()) == Some(my_pid) {
        return Err(FindError::Loop(format!(
            "{PID_VAR} is our own PID {my_pid}: the program exec'd as spark-submit was this wrapper"
        )));
    }
    let depth = depth(env);
    if depth >= MAX_DEPTH {
        return Err(FindError::Loop(format!(
            "{DEPTH_VAR}={depth}: {MAX_DEPTH} nested wrappers"
        )));
    }
    Ok(())
}

/// The nesting depth we were started at.
pub fn depth(env: &dyn Fn(&str) -> Option<String>) -> u32 {
    env(DEPTH_VAR)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0)
}

/// The guard variables for the exec'd environment.
pub fn guard_vars(env: &dyn Fn(&str) -> Option<String>, my_pid: u32) -> [(OsString, OsString); 2] {
    [
        (PID_VAR.into(), my_pid.to_string().into()),
        (
            DEPTH_VAR.into(),
            depth(env).saturating_add(1).to_string().into(),
        ),
    ]
}

/// Finds the real `spark-submit`. `me` identifies this binary; `path_var` is the
/// `PATH` to search.
pub fn real_spark_submit(
    env: &dyn Fn(&str) -> Option<String>,
    me: Option<&FileId>,
) -> Result<PathBuf, FindError> {
    let is_me = |p: &Path| match (me, FileId::of(p)) {
        (Some(me), Some(id)) => me.same_file(&id),
        _ => false,
    };
    let mut looked = Vec::new();
    if let Some(real) = env(REAL_VAR).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(&real);
        if is_me(&p) {
            return Err(FindError::RealIsSelf(real));
        }
        if is_executable_file(&p) {
            return Ok(p);
        }
        // An explicit path that is wrong is an error, not a hint to look elsewhere.
        return Err(FindError::NotFound {
            looked: format!("{REAL_VAR}={real}, not an executable file"),
        });
    }
    if let Some(home) = env("SPARK_HOME").filter(|v| !v.is_empty()) {
        let p = Path::new(&home).join("bin").join("spark-submit");
        if is_executable_file(&p) && !is_me(&p) {
            return Ok(p);
        }
        looked.push(p.display().to_string());
    }
    if let Some(path) = env("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.as_os_str().is_empty() {
                continue; // an empty entry means ".": never run a spark-submit from cwd
            }
            let p = dir.join("spark-submit");
            if is_executable_file(&p) && !is_me(&p) {
                return Ok(p);
            }
        }
        looked.push("PATH".into());
    }
    Err(FindError::NotFound {
        looked: looked.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    /// What the wrapper exits with for `e`.
    fn exit_code(e: FindError) -> i32 {
        crate::error::WrapError::from(e).exit_code()
    }

    fn exe(dir: &Path, name: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn env(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<&str, String> = pairs.into_iter().collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn spark_home_first_then_path_skipping_self() {
        let t = tempfile::tempdir().unwrap();
        let me_path = exe(&t.path().join("wrapbin"), "spark-submit");
        let real = exe(&t.path().join("spark/bin"), "spark-submit");
        let me = FileId::of(&me_path);
        let e = env(vec![(
            "SPARK_HOME",
            t.path().join("spark").display().to_string(),
        )]);
        assert_eq!(real_spark_submit(&e, me.as_ref()).unwrap(), real);
        let path = std::env::join_paths([t.path().join("wrapbin"), t.path().join("spark/bin")])
            .unwrap()
            .into_string()
            .unwrap();
        let e = env(vec![("PATH", path)]);
        assert_eq!(real_spark_submit(&e, me.as_ref()).unwrap(), real);
    }

    #[test]
    fn hard_link_and_symlink_to_self_are_skipped() {
        let t = tempfile::tempdir().unwrap();
        let me_path = exe(&t.path().join("a"), "spark-submit-wrap");
        std::fs::create_dir_all(t.path().join("b")).unwrap();
        std::fs::hard_link(&me_path, t.path().join("b/spark-submit")).unwrap();
        std::fs::create_dir_all(t.path().join("c")).unwrap();
        std::os::unix::fs::symlink(&me_path, t.path().join("c/spark-submit")).unwrap();
        let me = FileId::of(&me_path);
        let path = std::env::join_paths([t.path().join("b"), t.path().join("c")])
            .unwrap()
            .into_string()
            .unwrap();
        let e = env(vec![("PATH", path)]);
        let err = real_spark_submit(&e, me.as_ref()).unwrap_err();
        assert!(matches!(err, FindError::NotFound { .. }));
        assert_eq!(exit_code(err.clone()), 127);
        assert!(err.to_string().contains("SPARK_HOME"), "{err}");
    }

    #[test]
    fn explicit_real_path_wins_but_not_when_it_is_self() {
        let t = tempfile::tempdir().unwrap();
        let me_path = exe(&t.path().join("a"), "spark-submit");
        let real = exe(&t.path().join("r"), "spark-submit.real");
        let me = FileId::of(&me_path);
        let e = env(vec![(REAL_VAR, real.display().to_string())]);
        assert_eq!(real_spark_submit(&e, me.as_ref()).unwrap(), real);
        let e = env(vec![(REAL_VAR, me_path.display().to_string())]);
        let err = real_spark_submit(&e, me.as_ref()).unwrap_err();
        assert_eq!(exit_code(err), 2);
        // A wrong explicit path does not fall through to SPARK_HOME.
        let e = env(vec![
            (REAL_VAR, "/nonexistent/spark-submit".into()),
            ("SPARK_HOME", t.path().join("r").display().to_string()),
        ]);
        assert_eq!(
            exit_code(real_spark_submit(&e, me.as_ref()).unwrap_err()),
            127
        );
    }

    #[test]
    fn guard_refuses_own_pid_and_deep_nesting() {
        let e = env(vec![(PID_VAR, "4242".into())]);
        assert!(check_guard(&e, 4242).is_err());
        assert!(check_guard(&e, 4243).is_ok());
        let e = env(vec![(DEPTH_VAR, MAX_DEPTH.to_string())]);
        assert_eq!(exit_code(check_guard(&e, 1).unwrap_err()), 2);
        let e = env(vec![(DEPTH_VAR, "2".into())]);
        let vars = guard_vars(&e, 7);
        assert_eq!(vars[1].1, OsString::from("3"));
    }
}
