//! Credentials and the `AWS_*` variables that carry them: the one home of both.
//!
//! * [`Credentials`]: what minting hands to a launch; its `Debug` never shows the secret
//!   key or the session token.
//! * [`SET_WHEN_CREDENTIALS`]: the ordered list of variables a launch sets, and
//!   [`Credentials::launch_vars`], the values in that order. The launcher's child
//!   environment ([`crate::child_env`]) and `spark-submit-wrap`'s Spark configuration
//!   both take them from here, so the driver, the executors and a kernel always see
//!   the same names, order and text.
//! * [`REMOVED_WHEN_CREDENTIALS`]: the other variables through which an SDK could find
//!   an identity; a launch with credentials removes them (README, "What the child
//!   sees"; ARCHITECTURE.md, "Invariants").
//! * [`rfc3339`] and [`parse_rfc3339`]: the one text form of an expiry, as
//!   `AWS_CREDENTIAL_EXPIRATION`, the marker and the decision record carry it.
//!
//! This module does no I/O and must never format a secret: the only way a secret
//! leaves a [`Credentials`] is through its public fields or [`Credentials::launch_vars`],
//! whose callers put it into a child's environment or a private file, never into
//! argv, a log or a record.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;

pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
pub const AWS_CREDENTIAL_EXPIRATION: &str = "AWS_CREDENTIAL_EXPIRATION";
pub const AWS_REGION: &str = "AWS_REGION";
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
pub const AWS_EC2_METADATA_DISABLED: &str = "AWS_EC2_METADATA_DISABLED";

/// The names set when credentials are present (each only when it has a value), in the
/// order they are appended. Every parent entry of these names is removed first.
pub const SET_WHEN_CREDENTIALS: &[&str] = &[
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
    AWS_CREDENTIAL_EXPIRATION,
    AWS_REGION,
    AWS_DEFAULT_REGION,
    AWS_EC2_METADATA_DISABLED,
];

/// The names of [`SET_WHEN_CREDENTIALS`] that hold the region: they widen nothing, so
/// a user's own value may stand where the configuration allows it.
pub const REGION_VARS: &[&str] = &[AWS_REGION, AWS_DEFAULT_REGION];

/// Other credential sources that would let the child's SDK find an identity other than
/// the one decided (profiles, config files, web identity, container endpoints, legacy
/// names). Every entry of each is removed when credentials are present.
pub const REMOVED_WHEN_CREDENTIALS: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SDK_LOAD_CONFIG",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CREDENTIAL_FILE",
    "AWS_SECURITY_TOKEN",
    "AWS_SESSION_EXPIRATION",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "BOTO_CONFIG",
];

/// Whether a variable carries, points at or selects an identity: one a launch sets
/// (the region aside), one it removes, or any `AWS_CONTAINER_*` (container endpoints
/// grow new names; none of them may reach a scoped job through configuration).
pub fn carries_identity(name: &str) -> bool {
    (SET_WHEN_CREDENTIALS.contains(&name) && !REGION_VARS.contains(&name))
        || REMOVED_WHEN_CREDENTIALS.contains(&name)
        || name.starts_with("AWS_CONTAINER_")
}

/// Credentials for the child. `Debug` never shows the secret parts.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub expiration: Option<SystemTime>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_redacted(
            f,
            "Credentials",
            &self.access_key_id,
            self.session_token.is_some(),
            &self.expiration,
        )
    }
}

/// The one `Debug` form of credentials, whichever type carries them: the key id and
/// the expiry as they are, the secret key and the session token as `<redacted>`.
pub(crate) fn debug_redacted(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    access_key_id: &str,
    has_session_token: bool,
    expiration: &dyn fmt::Debug,
) -> fmt::Result {
    f.debug_struct(name)
        .field("access_key_id", &access_key_id)
        .field("secret_access_key", &"<redacted>")
        .field("session_token", &has_session_token.then_some("<redacted>"))
        .field("expiration", expiration)
        .finish()
}

impl Credentials {
    /// The expiry as RFC 3339 (`2024-01-01T00:00:00Z`), as decision records and
    /// `AWS_CREDENTIAL_EXPIRATION` want it; None for keys that do not expire.
    pub fn expiration_rfc3339(&self) -> Option<String> {
        // Whole seconds, the same text the child's AWS_CREDENTIAL_EXPIRATION carries.
        rfc3339(self.expiration?)
    }

    /// True when `value` is one of the secret parts (callers use it to keep secrets
    /// off command lines).
    pub fn is_secret(&self, value: &str) -> bool {
        value == self.secret_access_key || self.session_token.as_deref() == Some(value)
    }

    /// The variables a launch with these credentials sets, in the order of
    /// [`SET_WHEN_CREDENTIALS`], each only when it has a value: the token only for
    /// credentials that have one, the expiry only when they expire, the two region
    /// variables only with a region, and `AWS_EC2_METADATA_DISABLED=true` always (no
    /// fall-back to the node's instance profile).
    pub fn launch_vars(&self, region: Option<&str>) -> Vec<(&'static str, String)> {
        let mut v = vec![
            (AWS_ACCESS_KEY_ID, self.access_key_id.clone()),
            (AWS_SECRET_ACCESS_KEY, self.secret_access_key.clone()),
        ];
        if let Some(t) = &self.session_token {
            v.push((AWS_SESSION_TOKEN, t.clone()));
        }
        if let Some(e) = self.expiration_rfc3339() {
            v.push((AWS_CREDENTIAL_EXPIRATION, e));
        }
        if let Some(r) = region {
            v.push((AWS_REGION, r.to_string()));
            v.push((AWS_DEFAULT_REGION, r.to_string()));
        }
        v.push((AWS_EC2_METADATA_DISABLED, "true".into()));
        v
    }
}

/// Formats an expiry as RFC 3339 UTC with whole seconds (`2026-11-22T22:00:00Z`).
/// Fractions are cut, which can only make the expiry look earlier, never later.
/// `None` for times before 1970 or beyond what RFC 3339 can write.
pub fn rfc3339(t: SystemTime) -> Option<String> {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok()?,
        Err(_) => return None,
    };
    DateTime::from_secs(secs).fmt(Format::DateTime).ok()
}

/// Parses an RFC 3339 UTC time (`Z`, fractions accepted) as written by [`rfc3339`].
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let dt = DateTime::from_str(s, Format::DateTime).ok()?;
    let secs = u64::try_from(dt.secs()).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, dt.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXP_SECS: u64 = 1_795_384_800; // 2026-11-22T22:00:00Z

    #[test]
    fn expiration_is_rfc3339_utc_whole_seconds() {
        let t = UNIX_EPOCH + Duration::new(EXP_SECS, 999_000_000);
        assert_eq!(rfc3339(t).as_deref(), Some("2026-11-22T22:00:00Z"));
        assert_eq!(rfc3339(UNIX_EPOCH).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), None);
        assert_eq!(
            parse_rfc3339("2026-11-22T22:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(EXP_SECS))
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T22:00:00.5Z"),
            Some(UNIX_EPOCH + Duration::new(EXP_SECS, 500_000_000))
        );
        assert_eq!(parse_rfc3339("tomorrow"), None);
    }

    #[test]
    fn removal_list_is_the_one_in_the_spec() {
        assert_eq!(REMOVED_WHEN_CREDENTIALS.len(), 18);
        for name in ["AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "BOTO_CONFIG"] {
            assert!(REMOVED_WHEN_CREDENTIALS.contains(&name));
        }
    }

    #[test]
    fn expiration_is_rfc3339() {
        let c = Credentials {
            access_key_id: "A".into(),
            secret_access_key: "S".into(),
            session_token: None,
            expiration: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        };
        assert_eq!(
            c.expiration_rfc3339().as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = Credentials {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "s3cr3t-value".into(),
            session_token: Some("t0ken-value".into()),
            expiration: None,
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIAEXAMPLE"));
        assert!(!shown.contains("s3cr3t-value") && !shown.contains("t0ken-value"));
    }
}
