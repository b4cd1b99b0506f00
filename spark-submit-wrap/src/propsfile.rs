//! The merged properties file: how the scoped credentials reach `spark-submit`
//! without ever appearing on a command line.
//!
//! ## Where the file lives
//!
//! 1. **memfd** (`memfd_create`, no close-on-exec): an anonymous in-memory file. The
//!    descriptor stays open across `exec`, and Spark is given `--properties-file
//!    /dev/fd/N`. Every process that opens `/dev/fd/N` gets its own offset, so Spark's
//!    launcher and the `SparkSubmit` JVM each read it whole. Nothing touches a disk;
//!    nothing is left behind; another user cannot open `/proc/PID/fd/N` of our process.
//! 2. **O_TMPFILE** in `$XDG_RUNTIME_DIR` (else the temp directory), mode 0600: an
//!    unlinked file, passed the same way. Used when memfd is unavailable (old kernels,
//!    restrictive seccomp profiles).
//! 3. **A named file** `spark.properties`, mode 0600, in a fresh directory of mode 0700
//!    under `$XDG_RUNTIME_DIR` (else the temp directory). Used when neither descriptor
//!    works or `/dev/fd` is missing (checked by reading the file back through its
//!    `/dev/fd` path), and always for the shell launchers `pyspark-shell-main` and
//!    `sparkr-shell-main`: those start a Python or R process that runs `spark-submit`
//!    again as a child with inherited descriptors closed (Python's `close_fds`), so a
//!    `/dev/fd` path would not survive. `SPARK_SUBMIT_WRAP_PROPERTIES=file` forces it.
//!
//!    The file must outlive the exec (Spark reads it after we are gone), so it cannot
//!    be deleted here. A detached cleaner process (this same binary, started with an
//!    internal option) polls for the end of the job's process — same PID, as exec
//!    keeps it, checked against the process start time so PID reuse is harmless — and
//!    then removes the directory. If the cleaner cannot start, the record says where
//!    the file is.
//!
//! The content is written with the `java-properties` writer in UTF-8 (how Spark
//! reads it) and read back before use; a file that would not round-trip is an error,
//! never a silently different conf.
//!
//! This module must never print the content and never put it in an argument.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use java_properties::{PropertiesIter, PropertiesWriter};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::stat::Mode;

/// How the file was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Memfd,
    TmpFile,
    /// A named file in a private directory, removed by the cleaner.
    Named {
        dir: PathBuf,
    },
}

/// The file Spark will read: its path for `--properties-file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertiesFile {
    pub path: OsString,
    pub kind: Kind,
    /// The descriptor kept open across exec (memfd and O_TMPFILE).
    pub fd: Option<RawFd>,
}

/// Which kinds to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// memfd, then O_TMPFILE, then a named file.
    Descriptor,
    /// A named file only.
    Named,
}

#[derive(Debug, thiserror::Error)]
pub enum PropsError {
    // The key is escaped: it may hold a line break, and the error must stay one line.
    #[error(
        "cannot encode spark conf key {} as a properties file ({cause}); remove control characters from it",
        .key.escape_debug()
    )]
    Encode { key: String, cause: String },
    #[error(
        "cannot create the properties file for spark-submit: {0}; make $XDG_RUNTIME_DIR or $TMPDIR writable"
    )]
    Create(String),
}

/// The file's bytes: Java properties, UTF-8, keys sorted. Read back and compared
/// with `map`, so a value the writer cannot represent is an error.
pub fn render(map: &BTreeMap<String, String>) -> Result<Vec<u8>, PropsError> {
    // The writer escapes other control characters as `\uX` without the four
    // digits Java requires; say which key instead of writing a broken file.
    let unwritable = |s: &str| {
        s.chars()
            .any(|c| c < ' ' && !matches!(c, '\t' | '\n' | '\r' | '\x0c'))
    };
    if let Some((k, _)) = map.iter().find(|(k, v)| unwritable(k) || unwritable(v)) {
        return Err(PropsError::Encode {
            key: k.clone(),
            cause: "it contains a control character".into(),
        });
    }
    let mut buf = Vec::new();
    {
        let mut w = PropertiesWriter::new_with_encoding(&mut buf, encoding_rs::UTF_8);
        let enc = |key: &str, e: java_properties::PropertiesError| PropsError::Encode {
            key: key.to_string(),
            cause: e.to_string(),
        };
        w.write_comment("written by spark-submit-wrap; readable by this job only")
            .map_err(|e| enc("(header)", e))?;
        for (k, v) in map {
            w.write(k, v).map_err(|e| enc(k, e))?;
        }
        w.finish().map_err(|e| enc("(end)", e))?;
    }
    let mut back = BTreeMap::new();
    PropertiesIter::new_with_encoding(buf.as_slice(), encoding_rs::UTF_8)
        .read_into(|k, v| {
            back.insert(k, v);
        })
        .map_err(|e| PropsError::Encode {
            key: "(read back)".into(),
            cause: e.to_string(),
        })?;
    if &back != map {
        let key = map
            .iter()
            .find(|(k, v)| back.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .unwrap_or_default();
        return Err(PropsError::Encode {
            key,
            cause: "it does not read back unchanged".into(),
        });
    }
    Ok(buf)
}

/// The directory for O_TMPFILE and named files: `$XDG_RUNTIME_DIR` (per-user tmpfs),
/// else the temp directory.
pub fn private_base(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    env("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty() && Path::new(d).is_dir())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// Writes `bytes` where Spark can read them, following `strategy`.
pub fn create(bytes: &[u8], strategy: Strategy, base: &Path) -> Result<PropertiesFile, PropsError> {
    if strategy == Strategy::Descriptor {
        if let Some(f) = memfd_create(c"spark-submit-wrap.properties", MFdFlags::empty())
            .ok()
            .and_then(|fd| keep_descriptor(fd, bytes, Kind::Memfd))
        {
            return Ok(f);
        }
        let flags = OFlag::O_TMPFILE | OFlag::O_RDWR;
        if let Some(f) = nix::fcntl::open(base, flags, Mode::from_bits_truncate(0o600))
            .ok()
            .and_then(|fd| keep_descriptor(fd, bytes, Kind::TmpFile))
        {
            return Ok(f);
        }
    }
    named(bytes, base)
}

/// Writes into `fd`, moves it to a number above 2, checks it reads back through
/// `/dev/fd/N`, and leaves it open (no close-on-exec) for the exec.
fn keep_descriptor(fd: OwnedFd, bytes: &[u8], kind: Kind) -> Option<PropertiesFile> {
    let mut file = File::from(fd);
    file.write_all(bytes).ok()?;
    file.flush().ok()?;
    let fd = OwnedFd::from(file);
    // Descriptors 0-2 are stdio: if one of them was closed when we started, the
    // kernel handed it to us; Spark must find the file elsewhere.
    let raw = if fd.as_raw_fd() < 3 {
        // F_DUPFD does not set close-on-exec; the original is closed on drop.
        fcntl(&fd, FcntlArg::F_DUPFD(3)).ok()?
    } else {
        fd.into_raw_fd()
    };
    let path = format!("/dev/fd/{raw}");
    let mut back = Vec::new();
    File::open(&path).ok()?.read_to_end(&mut back).ok()?;
    if back != bytes {
        let _ = nix::unistd::close(raw);
        return None;
    }
    Some(PropertiesFile {
        path: path.into(),
        kind,
        fd: Some(raw),
    })
}

fn named(bytes: &[u8], base: &Path) -> Result<PropertiesFile, PropsError> {
    let dir = tempfile::Builder::new()
        .prefix("spark-submit-wrap-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(base)
        .map_err(|e| PropsError::Create(format!("{}: {e}", base.display())))?;
    let path = dir.path().join("spark.properties");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| PropsError::Create(format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| PropsError::Create(format!("{}: {e}", path.display())))?;
    // From here on the cleaner owns the directory.
    let dir = dir.keep();
    Ok(PropertiesFile {
        path: path.into_os_string(),
        kind: Kind::Named { dir },
        fd: None,
    })
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`), to tell it apart
/// from a later process that reuses the PID.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain anything.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The internal option that starts the cleaner.
pub const CLEANER_OPTION: &str = "--wrap-internal-clean";

/// Starts the detached cleaner for `dir`: it waits for this process (the job, after
/// exec) to end and removes `dir`. Returns false when it could not be started.
pub fn start_cleaner(dir: &Path) -> bool {
    let pid = std::process::id();
    let (Some(start), Ok(exe)) = (process_start_time(pid), std::env::current_exe()) else {
        return false;
    };
    // The first child starts the cleaner and exits at once, so the cleaner is
    // re-parented to init and never becomes a zombie of the job.
    std::process::Command::new(exe)
        .arg(CLEANER_OPTION)
        .arg("spawn")
        .arg(pid.to_string())
        .arg(start.to_string())
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The cleaner's entry point (`CLEANER_OPTION spawn|wait PID START DIR`). Returns the
/// exit code.
pub fn cleaner_main(args: &[OsString]) -> i32 {
    let [stage, pid, start, dir] = args else {
        return 2;
    };
    let (Some(pid), Some(start)) = (
        pid.to_str().and_then(|p| p.parse::<u32>().ok()),
        start.to_str().and_then(|s| s.parse::<u64>().ok()),
    ) else {
        return 2;
    };
    let dir = PathBuf::from(dir);
    // Only ever remove what this binary created.
    let is_ours = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("spark-submit-wrap-"));
    if !is_ours {
        return 2;
    }
    match stage.to_str() {
        Some("spawn") => {
            let Ok(exe) = std::env::current_exe() else {
                return 1;
            };
            let spawned = std::process::Command::new(exe)
                .arg(CLEANER_OPTION)
                .arg("wait")
                .arg(pid.to_string())
                .arg(start.to_string())
                .arg(&dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
            if spawned.is_ok() { 0 } else { 1 }
        }
        Some("wait") => {
            // Leave the job's session and process group: Ctrl-C or a hang-up aimed
            // at the job must not stop the cleanup.
            let _ = nix::unistd::setsid();
            while process_start_time(pid) == Some(start) {
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            let _ = std::fs::remove_dir_all(&dir);
            0
        }
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn render_escapes_and_round_trips() {
        let m = map(&[
            ("spark.a", " leading space"),
            ("spark.b", "x=y:z#!\\"),
            ("spark.c", "caf\u{e9} \u{1f600}"),
            ("spark.d", "line1\nline2"),
            ("key with space", "v"),
        ]);
        let bytes = render(&m).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("spark.b=x\\=y\\:z\\#\\!\\\\"), "{text}");
        assert!(text.contains("caf\u{e9}"), "UTF-8, not Latin-1: {text}");
    }

    #[test]
    fn control_characters_are_an_error_not_a_different_value() {
        let e = render(&map(&[("spark.a", "x\u{1}y")])).unwrap_err();
        assert!(e.to_string().contains("spark.a"), "{e}");
    }

    #[test]
    fn a_key_with_a_line_break_is_named_on_one_line() {
        let e = render(&map(&[("spark.a\nb", "x\u{1}y")])).unwrap_err();
        let s = e.to_string();
        assert!(!s.contains('\n') && s.contains("spark.a\\nb"), "{s}");
    }

    #[test]
    fn descriptor_file_reads_back_through_dev_fd_and_survives_exec() {
        let base = tempfile::tempdir().unwrap();
        let f = create(b"spark.a=1\n", Strategy::Descriptor, base.path()).unwrap();
        assert_eq!(f.kind, Kind::Memfd);
        let fd = f.fd.unwrap();
        assert!(fd >= 3);
        assert_eq!(std::fs::read(&f.path).unwrap(), b"spark.a=1\n");
        // /proc/self/fdinfo shows the descriptor's flags in octal; O_CLOEXEC is 02000000.
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
            .unwrap();
        assert_eq!(flags & 0o2000000, 0, "must survive exec");
        let _ = nix::unistd::close(fd);
    }

    #[test]
    fn named_file_is_private() {
        let base = tempfile::tempdir().unwrap();
        let f = create(b"spark.a=1\n", Strategy::Named, base.path()).unwrap();
        let Kind::Named { dir } = &f.kind else {
            panic!("expected a named file")
        };
        let dmode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        let fmode = std::fs::metadata(&f.path).unwrap().permissions().mode() & 0o777;
        assert_eq!((dmode, fmode), (0o700, 0o600));
        assert_eq!(std::fs::read(&f.path).unwrap(), b"spark.a=1\n");
    }

    #[test]
    fn start_time_of_self_is_known_and_of_missing_pid_is_not() {
        assert!(process_start_time(std::process::id()).is_some());
        assert!(process_start_time(u32::MAX - 1).is_none());
    }

    #[test]
    fn cleaner_refuses_foreign_directories() {
        let args: Vec<OsString> = ["wait", "1", "1", "/etc"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(cleaner_main(&args), 2);
    }
}
