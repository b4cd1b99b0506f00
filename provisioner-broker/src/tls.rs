//! The TLS side of the executor endpoint's configuration: reading the certificate chain
//! and the private key (`--tls-cert`, `--tls-key`), checking the key file's ownership
//! and mode, checking the advertised URL (`--executor-endpoint-url`) against the
//! certificate, and building the rustls server configuration (aws-lc-rs provider,
//! TLS 1.2 and 1.3, HTTP/1.1 only).
//!
//! Everything here runs once, at start, before the broker serves anything; every
//! problem is a one-line error naming the file or flag and the fix.
//!
//! This module must never put key material in an error message or a log line, never
//! accept a key file that another user could read or replace, and never read from a
//! file that is not a regular file (a FIFO or a device would block or never end).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The largest PEM file read (a chain of a few certificates fits many times over).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The certificate chain and key, checked and paired.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Reads a file of at most [`MAX_PEM_BYTES`], refusing anything but a regular file. The
/// checks are made on the opened file (`fstat`), so the file read is the file checked.
fn read_regular(path: &Path, flag: &str) -> Result<(Vec<u8>, std::fs::Metadata), String> {
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        // A FIFO must not block the start; it is refused below anyway.
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| format!("{flag} {shown}: {e}; fix: point {flag} at a readable PEM file"))?;
    let md = file
        .metadata()
        .map_err(|e| format!("{flag} {shown}: {e}; fix: point {flag} at a readable PEM file"))?;
    if !md.is_file() {
        return Err(format!(
            "{flag} {shown} is not a regular file; fix: point {flag} at the PEM file itself"
        ));
    }
    if md.len() > MAX_PEM_BYTES {
        return Err(format!(
            "{flag} {shown} is over {MAX_PEM_BYTES} bytes; fix: point {flag} at a PEM file"
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{flag} {shown}: {e}; fix: point {flag} at a readable PEM file"))?;
    Ok((bytes, md))
}

/// The private key file: a regular file owned by the broker's user that nobody else can
/// read or write. Symbolic links are followed (secret mounts use them); the file they
/// lead to is what is checked.
fn check_key_file(path: &Path, md: &std::fs::Metadata) -> Result<(), String> {
    let shown = path.display();
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me {
        return Err(format!(
            "--tls-key {shown} belongs to uid {}, not to the broker's uid {me}; fix: chown {me} {shown} (the key must belong to the user the broker runs as)",
            md.uid()
        ));
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "--tls-key {shown} is open to group or others (mode {mode:04o}); fix: chmod 600 {shown}"
        ));
    }
    Ok(())
}

/// Reads and checks `--tls-cert` and `--tls-key`.
pub fn load_identity(cert: &Path, key: &Path) -> Result<Identity, String> {
    let (key_pem, md) = read_regular(key, "--tls-key")?;
    check_key_file(key, &md)?;
    // The PEM errors are not shown: some quote what they read, and this is a key.
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        format!(
            "--tls-key {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1); fix: point --tls-key at the key of the certificate",
            key.display()
        )
    })?;
    let (cert_pem, _) = read_regular(cert, "--tls-cert")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "--tls-cert {} is not valid PEM ({e}); fix: point --tls-cert at the PEM certificate chain",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {} holds no PEM certificate; fix: point --tls-cert at the PEM certificate chain (server certificate first)",
            cert.display()
        ));
    }
    Ok(Identity {
        chain,
        key: key_der,
    })
}

/// The rustls configuration of the executor endpoint: aws-lc-rs, the provider's safe
/// protocol versions, no client certificates (executors authenticate with their
/// application token), HTTP/1.1.
pub fn server_config(identity: Identity) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| {
            format!(
                "--tls-cert and --tls-key do not make a usable pair ({e}); fix: pass the certificate and the private key that belongs to it"
            )
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The origin executors are told: `--executor-endpoint-url` checked, else `https://`
/// and the bound address. Returns it without a trailing slash.
pub fn advertised_origin(url: Option<&str>, bound: std::net::SocketAddr) -> Result<String, String> {
    let Some(url) = url else {
        if bound.ip().is_unspecified() {
            return Err(format!(
                "the executor endpoint listens on the wildcard address {bound}, which executors cannot connect to; fix: set --executor-endpoint-url https://HOST:{} with the host name in the certificate",
                bound.port()
            ));
        }
        return Ok(format!("https://{bound}"));
    };
    let bad = |why: &str| {
        format!(
            "--executor-endpoint-url {url:?} {why}; fix: pass https://HOST:PORT, the address executors on other hosts connect to"
        )
    };
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| bad("is not an https:// URL"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty()
        || !authority.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        })
    {
        return Err(bad(
            "must hold only a host and a port (no path, user or query)",
        ));
    }
    host_of(authority).ok_or_else(|| bad("has no host"))?;
    Ok(format!("https://{authority}"))
}

/// The host part of `HOST[:PORT]` or `[V6][:PORT]`.
fn host_of(authority: &str) -> Option<&str> {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then_some(host)
}

/// Checks that the certificate names the advertised host: executors verify it, and a
/// certificate for another name would fail every fetch with a TLS error.
pub fn check_name(chain: &[CertificateDer<'static>], origin: &str) -> Result<(), String> {
    let authority = origin.trim_start_matches("https://");
    let host = host_of(authority).unwrap_or(authority);
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| format!("{host:?} is neither a DNS name nor an IP address; fix: advertise the name in the certificate with --executor-endpoint-url"))?;
    let Some(leaf) = chain.first() else {
        return Err("--tls-cert holds no certificate".into());
    };
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|e| {
        format!("the first certificate of --tls-cert cannot be read ({e}); fix: put the server certificate first")
    })?;
    cert.verify_is_valid_for_subject_name(&name).map_err(|_| {
        format!(
            "the certificate in --tls-cert is not valid for {host}, the host executors are told ({origin}); fix: issue the certificate for {host} (subjectAltName) or set --executor-endpoint-url to a name it holds"
        )
    })
}

impl Identity {
    /// The certificate chain (for [`check_name`]).
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    /// A self-signed certificate for `localhost` and 127.0.0.1, made with openssl.
    fn make_pair(dir: &Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .ok()?
            .status
            .success();
        if !ok {
            return None;
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).ok()?;
        Some((cert, key))
    }

    #[test]
    fn a_private_key_pair_loads_and_names_its_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let Some((cert, key)) = make_pair(dir.path()) else {
            eprintln!("openssl is not installed; skipped");
            return;
        };
        let id = load_identity(&cert, &key).unwrap();
        check_name(id.chain(), "https://localhost:8443").unwrap();
        check_name(id.chain(), "https://127.0.0.1:8443").unwrap();
        let e = check_name(id.chain(), "https://broker.example:8443").unwrap_err();
        assert!(e.contains("not valid for broker.example"), "{e}");
        server_config(id).unwrap();
    }

    #[test]
    fn a_key_others_can_read_or_that_is_not_a_file_is_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let Some((cert, key)) = make_pair(dir.path()) else {
            eprintln!("openssl is not installed; skipped");
            return;
        };
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load_identity(&cert, &key).err().unwrap();
        assert!(e.contains("mode 0640") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains('\n') && !e.contains("PRIVATE"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_identity(&cert, dir.path()).err().unwrap();
        assert!(e.contains("not a regular file"), "{e}");
        // The certificate given as the key: no private key in it.
        std::fs::copy(&cert, dir.path().join("k2.pem")).unwrap();
        let k2 = dir.path().join("k2.pem");
        std::fs::set_permissions(&k2, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_identity(&cert, &k2).err().unwrap();
        assert!(e.contains("no PEM private key"), "{e}");
        // The key given as the certificate.
        let e = load_identity(&key, &key).err().unwrap();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = load_identity(&cert, &dir.path().join("missing.pem"))
            .err()
            .unwrap();
        assert!(e.starts_with("--tls-key") && e.contains("fix:"), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let (Some((cert_a, _)), Some((_, key_b))) = (make_pair(a.path()), make_pair(b.path()))
        else {
            eprintln!("openssl is not installed; skipped");
            return;
        };
        let id = load_identity(&cert_a, &key_b).unwrap();
        let e = server_config(id).err().unwrap();
        assert!(e.contains("do not make a usable pair"), "{e}");
    }

    #[test]
    fn the_advertised_origin_is_https_host_and_port_only() {
        let bound: std::net::SocketAddr = "0.0.0.0:8443".parse().unwrap();
        assert!(
            advertised_origin(None, bound)
                .unwrap_err()
                .contains("--executor-endpoint-url")
        );
        assert_eq!(
            advertised_origin(None, "10.0.0.5:8443".parse().unwrap()).unwrap(),
            "https://10.0.0.5:8443"
        );
        assert_eq!(
            advertised_origin(Some("https://broker.example:8443/"), bound).unwrap(),
            "https://broker.example:8443"
        );
        assert_eq!(
            advertised_origin(Some("https://[::1]:8443"), bound).unwrap(),
            "https://[::1]:8443"
        );
        for bad in [
            "http://broker.example:8443",
            "https://",
            "https://broker.example:8443/v1",
            "https://user@broker.example",
            "https://broker.example:8443?x=1",
        ] {
            let e = advertised_origin(Some(bad), bound).unwrap_err();
            assert!(e.contains("fix:") && !e.contains('\n'), "{e}");
        }
    }
}
