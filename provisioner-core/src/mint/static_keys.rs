//! Static keys a service account references (environment variable or file). Errors
//! name the reference, never the value; files must not be readable by others.

use super::*;

/// Static-key files larger than this are refused.
pub(super) const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads the static keys a service account references. Errors name the reference,
/// never the value.
pub(super) fn read_static_keys(
    plan: &StaticKeysPlan,
    env: &dyn Fn(&str) -> Option<String>,
    notes: &mut Vec<String>,
) -> Result<Credentials, String> {
    let sa = &plan.service_account;
    let access_key_id = read_secret(&plan.access_key_id, "access key id", sa, env, notes)?;
    let secret_access_key =
        read_secret(&plan.secret_access_key, "secret access key", sa, env, notes)?;
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token: None,
        expiration: None,
    })
}

pub(super) fn read_secret(
    reference: &SecretRef,
    what: &str,
    service_account: &str,
    env: &dyn Fn(&str) -> Option<String>,
    notes: &mut Vec<String>,
) -> Result<String, String> {
    let value = match reference {
        SecretRef::Env(name) => env(name).ok_or_else(|| {
            format!("its {what} is read from environment variable {name}, which is not set")
        })?,
        SecretRef::File(path) => {
            let shown = path.display();
            let meta = std::fs::metadata(path).map_err(|e| {
                format!("its {what} is read from file {shown}, which cannot be read ({e})")
            })?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o044 != 0 {
                notes.push(format!(
                    "file {shown} holding the {what} of service account \"{service_account}\" is readable by other users (mode {mode:04o}); fix: chmod 600 {shown}"
                ));
            }
            let unreadable = |e: std::io::Error| {
                format!("its {what} is read from file {shown}, which cannot be read ({e})")
            };
            let mut bytes = Vec::new();
            // A key file holds one short line; a cap keeps a wrong path (a device, a
            // log) from being read without end.
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes))
                .map_err(unreadable)?;
            if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
                return Err(format!(
                    "its {what} is read from file {shown}, which is larger than {MAX_SECRET_FILE_BYTES} bytes; it should hold only the key"
                ));
            }
            String::from_utf8(bytes).map_err(|_| {
                format!("its {what} is read from file {shown}, which is not UTF-8 text")
            })?
        }
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(format!(
            "its {what} is read from {reference}, which is empty"
        ));
    }
    Ok(trimmed.to_string())
}
