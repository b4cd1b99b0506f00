//! The `SYN_PROVISIONED` marker a provisioned process carries
//! (`tier=session_policy;expiration=2026-11-22T22:00:00Z;user=alice`).
//!
//! When it is present the wrapper runs inside a process that already holds scoped
//! credentials (a kernel started by `provisioner`) and propagates them instead of
//! resolving again.
//!
//! FIXME(integration): replace this private parser with
//! `provisioner::child_env::Marker::parse` once the core library provides it; the
//! format is the same.

use provisioner::decision::Tier;

/// What the marker says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub tier: Tier,
    /// RFC 3339, as written by the launcher.
    pub expiration: Option<String>,
    pub user: Option<String>,
}

fn tier_of(s: &str) -> Option<Tier> {
    match s {
        "workspace_sa" => Some(Tier::WorkspaceSa),
        "runtime_template_sa" => Some(Tier::RuntimeTemplateSa),
        "session_policy" => Some(Tier::SessionPolicy),
        "default" => Some(Tier::Default),
        _ => None,
    }
}

impl Marker {
    /// Parses the marker; unknown fields are ignored (newer launchers may add some).
    pub fn parse(s: &str) -> Result<Marker, String> {
        let mut tier = None;
        let mut expiration = None;
        let mut user = None;
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("field \"{part}\" is not NAME=VALUE"));
            };
            let v = v.trim();
            match k.trim() {
                "tier" => {
                    tier = Some(tier_of(v).ok_or_else(|| {
                        format!("unknown tier \"{v}\" (workspace_sa, runtime_template_sa, session_policy, default)")
                    })?)
                }
                "expiration" if !v.is_empty() => expiration = Some(v.to_string()),
                "user" if !v.is_empty() => user = Some(v.to_string()),
                _ => {}
            }
        }
        Ok(Marker {
            tier: tier.ok_or("no tier=… field")?,
            expiration,
            user,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_format() {
        let m = Marker::parse("tier=session_policy;expiration=2026-11-22T22:00:00Z;user=alice")
            .unwrap();
        assert_eq!(m.tier, Tier::SessionPolicy);
        assert_eq!(m.expiration.as_deref(), Some("2026-11-22T22:00:00Z"));
        assert_eq!(m.user.as_deref(), Some("alice"));
        let m = Marker::parse("tier=default;future=1").unwrap();
        assert_eq!((m.tier, m.expiration, m.user), (Tier::Default, None, None));
    }

    #[test]
    fn rejects_what_it_cannot_trust() {
        assert!(Marker::parse("").is_err());
        assert!(Marker::parse("tier=root").is_err());
        assert!(Marker::parse("tier").is_err());
    }
}
