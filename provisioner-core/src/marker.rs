//! The `SYN_PROVISIONED` marker: how a provisioned process says so to the programs it
//! starts.
//!
//! The launcher sets it in the child's environment ([`crate::child_env`]);
//! `spark-submit-wrap` running inside a provisioned kernel reads it and propagates the
//! kernel's credentials instead of resolving again. The marker carries no secret; the
//! credentials themselves are the `AWS_*` variables of [`crate::credentials`]. Reading a
//! marker never trusts it for more than the process already has: it only says which
//! tier and user the `AWS_*` variables beside it belong to.

use std::fmt;
use std::time::SystemTime;

use crate::credentials::{Credentials, parse_rfc3339, rfc3339};
use crate::decision::{Decision, Tier};

/// Names the tier and expiry of a provisioned process; `spark-submit-wrap` sees it and
/// propagates instead of resolving again. Value format: see [`Marker`].
pub const MARKER: &str = "SYN_PROVISIONED";

/// The value of [`MARKER`]: `;`-separated `key=value` fields.
///
/// ```text
/// SYN_PROVISIONED=tier=session_policy;expiration=2026-11-22T22:00:00Z;user=alice
/// ```
///
/// | key | value | present |
/// |---|---|---|
/// | `tier` | `workspace_sa`, `runtime_template_sa`, `session_policy` or `default` | always |
/// | `expiration` | RFC 3339 UTC, whole seconds | when the credentials expire |
/// | `user` | the launch's user id | always |
///
/// Readers must ignore keys they do not know (fields may be added) and must not rely on
/// field order. Values never contain `;` (user ids are restricted to `[\w+=,.@-]`).
/// The marker carries no secret; the credentials themselves are the `AWS_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub tier: Tier,
    pub expiration: Option<SystemTime>,
    pub user: String,
}

/// A marker value that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{MARKER} value \"{value}\" is invalid: {problem}; unset {MARKER} or launch through provisioner again"
)]
pub struct MarkerError {
    pub value: String,
    pub problem: String,
}

impl Marker {
    /// The marker for a launch.
    pub fn for_launch(decision: &Decision, creds: Option<&Credentials>) -> Marker {
        Marker {
            tier: decision.tier,
            expiration: creds.and_then(|c| c.expiration),
            user: decision.context.user.clone(),
        }
    }

    /// Reads a marker value (the part after `SYN_PROVISIONED=`).
    pub fn parse(value: &str) -> Result<Marker, MarkerError> {
        let err = |problem: String| MarkerError {
            value: value.escape_default().to_string(),
            problem,
        };
        let mut tier = None;
        let mut expiration = None;
        let mut user = None;
        for field in value.split(';').filter(|f| !f.is_empty()) {
            let Some((key, val)) = field.split_once('=') else {
                return Err(err(format!("field \"{field}\" has no '='")));
            };
            let slot_taken = match key {
                "tier" => tier.replace(Tier::from_name(val).ok_or_else(|| {
                    err(format!(
                        "unknown tier \"{val}\" (expected workspace_sa, runtime_template_sa, session_policy or default)"
                    ))
                })?).is_some(),
                "expiration" => expiration
                    .replace(parse_rfc3339(val).ok_or_else(|| {
                        err(format!("expiration \"{val}\" is not an RFC 3339 time"))
                    })?)
                    .is_some(),
                "user" => {
                    if val.is_empty() {
                        return Err(err("user is empty".into()));
                    }
                    user.replace(val.to_string()).is_some()
                }
                // Fields added by later versions.
                _ => false,
            };
            if slot_taken {
                return Err(err(format!("field \"{key}\" appears twice")));
            }
        }
        Ok(Marker {
            tier: tier.ok_or_else(|| err("no tier field".into()))?,
            expiration,
            user: user.ok_or_else(|| err("no user field".into()))?,
        })
    }

    /// Whether the credentials have expired at `now` (never for keys without expiry).
    pub fn expired_at(&self, now: SystemTime) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tier={}", self.tier)?;
        if let Some(exp) = self.expiration.and_then(rfc3339) {
            write!(f, ";expiration={exp}")?;
        }
        write!(f, ";user={}", self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const EXP_SECS: u64 = 1_795_384_800; // 2026-11-22T22:00:00Z

    #[test]
    fn marker_round_trips() {
        let m = Marker {
            tier: Tier::SessionPolicy,
            expiration: Some(UNIX_EPOCH + Duration::from_secs(EXP_SECS)),
            user: "alice@corp.example".into(),
        };
        let s = m.to_string();
        assert_eq!(
            s,
            "tier=session_policy;expiration=2026-11-22T22:00:00Z;user=alice@corp.example"
        );
        assert_eq!(Marker::parse(&s), Ok(m));
        let no_exp = Marker::parse("tier=default;user=a=b,c").unwrap();
        assert_eq!(no_exp.tier, Tier::Default);
        assert_eq!(no_exp.expiration, None);
        assert_eq!(no_exp.user, "a=b,c");
    }

    #[test]
    fn marker_parse_ignores_unknown_fields_and_order() {
        let m = Marker::parse("user=bob;flow=job;tier=workspace_sa;").unwrap();
        assert_eq!(m.tier, Tier::WorkspaceSa);
        assert_eq!(m.user, "bob");
    }

    #[test]
    fn marker_parse_rejects_bad_values_with_a_fix() {
        for (value, problem) in [
            ("", "no tier field"),
            ("user=bob", "no tier field"),
            ("tier=default", "no user field"),
            ("tier=admin;user=bob", "unknown tier"),
            ("tier=default;user=", "user is empty"),
            ("tier=default;user=bob;expiration=soon", "not an RFC 3339"),
            ("tier=default;tier=session_policy;user=bob", "appears twice"),
            ("tier=default;user=bob;junk", "has no '='"),
        ] {
            let e = Marker::parse(value).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(problem), "{value}: {msg}");
            assert!(msg.contains("unset SYN_PROVISIONED"), "{msg}");
            assert!(!msg.contains('\n'));
        }
    }

    #[test]
    fn marker_expiry_check() {
        let m =
            Marker::parse("tier=session_policy;expiration=2026-11-22T22:00:00Z;user=a").unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(EXP_SECS);
        assert!(!m.expired_at(at - Duration::from_secs(1)));
        assert!(m.expired_at(at));
        assert!(
            !Marker::parse("tier=default;user=a")
                .unwrap()
                .expired_at(SystemTime::now())
        );
    }
}
