//! Endpoint delivery: credentials a child fetches, and refreshes, from the broker's
//! container-credentials endpoint instead of keys written once into its environment
//! (README.md, "Long-running kernels and jobs").
//!
//! * [`EndpointGrant`]: what the broker hands a launcher for endpoint delivery, the
//!   endpoint's URL and the session's bearer token. Its `Debug` never shows the token.
//! * [`write_token_file`]: the launcher, running as the user, writes the token where
//!   only that user can read it, the file `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`
//!   names. SDKs read it afresh at every fetch.
//! * [`check_endpoint_url`]: only `http` on a loopback address is accepted, the hosts
//!   every SDK allows for plain http.
//!
//! The child's environment for this delivery is
//! [`crate::child_env::ChildEnv::for_endpoint`]; `spark-submit-wrap` uses the same two
//! pieces for the driver.
//!
//! This module must never put the token in a `Debug` text, an error message, argv or a
//! log, never write it into a file another user could read or replace, and never follow
//! a symbolic link it did not create. It runs as the user, never as the broker: the
//! broker (root) never opens paths in directories users can write.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The variable naming the endpoint's URL.
pub const FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
/// The variable naming the file that holds the bearer token.
pub const TOKEN_FILE: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
/// Every variable of the container-credentials family starts with this; all but the
/// two above are removed from an endpoint-delivered child.
pub const PREFIX: &str = "AWS_CONTAINER_";

/// Endpoint delivery as the broker grants it. `Debug` shows the URL, never the token.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointGrant {
    /// `http://127.0.0.1:PORT/v1/credentials/SESSION`
    pub url: String,
    /// The session's bearer token (the `Authorization` header value).
    pub token: String,
}

impl fmt::Debug for EndpointGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointGrant")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Why endpoint delivery could not be prepared. The text is one line with the fix and
/// never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}; fix: {fix}")]
pub struct DeliveryError {
    pub problem: String,
    pub fix: String,
}

fn err(problem: impl Into<String>, fix: impl Into<String>) -> DeliveryError {
    DeliveryError {
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Accepts `http://` URLs whose host is a loopback IP address (127.0.0.0/8 or `[::1]`).
/// Anything else would send the token off the machine or to a host SDKs refuse.
pub fn check_endpoint_url(url: &str) -> Result<(), DeliveryError> {
    let fix = "configure the broker's endpoint on 127.0.0.1 (--endpoint or its .socket unit)";
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| err("the credentials endpoint is not an http:// URL", fix))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(()),
        _ => Err(err(
            format!("the credentials endpoint host \"{host}\" is not a loopback address"),
            fix,
        )),
    }
}

/// Writes `token` to a new file only the calling user can read, and returns its path.
///
/// The directory is `$XDG_RUNTIME_DIR/provisioner` when `XDG_RUNTIME_DIR` is a real
/// directory (not a link) owned by the caller with mode 0700, else
/// `/tmp/provisioner-UID`. Either way the directory is created 0700 if missing and then
/// checked with `lstat`: a directory, owned by the caller, with no access for group or
/// others, else an error (someone else may have planted it). The file is
/// `NAME.token`, created with `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600, holding the token
/// without a trailing newline (botocore rejects CR and LF). `name` must be a plain
/// file name part (`[A-Za-z0-9_-]`), e.g. the session id.
///
/// `env` is the launcher's environment lookup (tests pass their own).
pub fn write_token_file(
    token: &str,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, DeliveryError> {
    if token.is_empty() || token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(err(
            "the session token is empty or holds control characters",
            "use a launcher of the broker's release",
        ));
    }
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(err(
            format!("\"{}\" is not a token file name", name.escape_default()),
            "use a launcher of the broker's release",
        ));
    }
    let uid = nix::unistd::geteuid().as_raw();
    let dir = token_dir(uid, env)?;
    let path = dir.join(format!("{name}.token"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| {
            err(
                format!("cannot create the token file {}: {e}", path.display()),
                "remove the stale file, or free space in the directory",
            )
        })?;
    f.write_all(token.as_bytes()).map_err(|e| {
        err(
            format!("cannot write the token file {}: {e}", path.display()),
            "free space in the directory",
        )
    })?;
    Ok(path)
}

/// The private directory for token files (see [`write_token_file`]).
fn token_dir(uid: u32, env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, DeliveryError> {
    if let Some(xdg) = env("XDG_RUNTIME_DIR").filter(|v| v.starts_with('/'))
        && private_dir(Path::new(&xdg), uid).is_ok()
    {
        let d = Path::new(&xdg).join("provisioner");
        ensure_private_dir(&d, uid)?;
        return Ok(d);
    }
    let d = PathBuf::from(format!("/tmp/provisioner-{uid}"));
    ensure_private_dir(&d, uid)?;
    Ok(d)
}

/// Creates `dir` 0700 if missing, then checks it with `lstat`.
fn ensure_private_dir(dir: &Path, uid: u32) -> Result<(), DeliveryError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(err(
                format!("cannot create the token directory {}: {e}", dir.display()),
                "set XDG_RUNTIME_DIR to a private directory of the user",
            ));
        }
    }
    private_dir(dir, uid)
}

/// A real directory (no link), owned by `uid`, closed to group and others.
fn private_dir(dir: &Path, uid: u32) -> Result<(), DeliveryError> {
    let fix = format!(
        "remove {} (another user may have created it) or set XDG_RUNTIME_DIR to a private directory of the user",
        dir.display()
    );
    let md = std::fs::symlink_metadata(dir)
        .map_err(|e| err(format!("token directory {}: {e}", dir.display()), &fix))?;
    if !md.file_type().is_dir() {
        return Err(err(
            format!("token directory {} is not a directory", dir.display()),
            fix,
        ));
    }
    if md.uid() != uid {
        return Err(err(
            format!(
                "token directory {} belongs to uid {}, not to uid {uid}",
                dir.display(),
                md.uid()
            ),
            fix,
        ));
    }
    if md.mode() & 0o077 != 0 {
        return Err(err(
            format!(
                "token directory {} is open to group or others (mode {:o})",
                dir.display(),
                md.mode() & 0o7777
            ),
            fix,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn env_with(xdg: &Path) -> impl Fn(&str) -> Option<String> {
        let x = xdg.to_string_lossy().into_owned();
        move |k: &str| (k == "XDG_RUNTIME_DIR").then(|| x.clone())
    }

    #[test]
    fn the_token_file_is_private_and_holds_the_token_without_a_newline() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let p = write_token_file("abc123", "s1", &env_with(d.path())).unwrap();
        assert_eq!(p, d.path().join("provisioner/s1.token"));
        assert_eq!(std::fs::read(&p).unwrap(), b"abc123");
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600);
        let dm = std::fs::metadata(p.parent().unwrap()).unwrap();
        assert_eq!(dm.mode() & 0o777, 0o700);
        // O_EXCL: an existing file is never overwritten.
        let e = write_token_file("other", "s1", &env_with(d.path())).unwrap_err();
        assert!(e.to_string().contains("fix:"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"abc123");
    }

    #[test]
    fn a_planted_link_or_an_open_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let dir = d.path().join("provisioner");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let target = d.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, dir.join("s2.token")).unwrap();
        let e = write_token_file("tok", "s2", &env_with(d.path())).unwrap_err();
        assert!(!target.exists());
        assert!(!e.to_string().contains("tok\""), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = write_token_file("tok", "s3", &env_with(d.path())).unwrap_err();
        assert!(e.problem.contains("open to group or others"), "{e}");
        let link = d.path().join("linkdir");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(private_dir(&link, nix::unistd::geteuid().as_raw()).is_err());
    }

    #[test]
    fn bad_tokens_and_names_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let env = env_with(d.path());
        assert!(write_token_file("a\nb", "s", &env).is_err());
        assert!(write_token_file("", "s", &env).is_err());
        assert!(write_token_file("t", "../x", &env).is_err());
        assert!(write_token_file("t", "", &env).is_err());
    }

    #[test]
    fn only_http_on_loopback_is_accepted() {
        for ok in [
            "http://127.0.0.1:8125/v1/credentials/abc",
            "http://127.0.0.2/x",
            "http://[::1]:80/x",
        ] {
            assert!(check_endpoint_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://127.0.0.1/x",
            "http://192.0.2.10/x",
            "http://localhost:1/x",
            "http://10.0.0.1:80/x",
            "ftp://127.0.0.1/",
        ] {
            assert!(check_endpoint_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let g = EndpointGrant {
            url: "http://127.0.0.1:1/v1/credentials/x".into(),
            token: "secret-token".into(),
        };
        assert!(!format!("{g:?}").contains("secret-token"));
    }
}
