//! The decision record: one JSON object per launch saying who got which identity and
//! why. `provisioner explain --json` prints the same fields plus the policy document.
//!
//! A record must never carry a secret: it is built from the [`Decision`] (which holds
//! only references to secrets) and from the credentials' expiry, never their values.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::decision::{Decision, DefaultReason, Plan, Refusal, Skip, Tier};

/// The fields of the decision record (README.md, "How an identity is chosen"), in a stable order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionRecord {
    #[serde(deserialize_with = "known_flow")]
    pub flow: KnownText,
    pub user: String,
    pub workspace: Option<String>,
    pub runtime_template: Option<String>,
    pub job_id: Option<String>,
    pub tier: Tier,
    pub reason: Option<DefaultReason>,
    pub skipped: Vec<Skip>,
    pub warnings: Vec<String>,
    /// `assumed_role`, `static_keys`, `ambient`, or `none` when refused.
    #[serde(deserialize_with = "known_credentials")]
    pub credentials: KnownText,
    pub service_account: Option<String>,
    pub role_arn: Option<String>,
    pub session_name: Option<String>,
    pub external_id_set: bool,
    pub source_identity: Option<String>,
    pub session_tags: Vec<String>,
    pub duration_seconds: Option<u32>,
    pub policy_chars: Option<usize>,
    pub policy_sha256: Option<String>,
    /// Managed session policies passed as `PolicyArns` (empty when none).
    pub policy_arns: Vec<String>,
    pub refused: Option<Refusal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    /// Brokered launches: who the broker authenticated on its socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<CallerRecord>,
    /// Brokered launches: `environment` or `endpoint`, how the credentials reach the
    /// process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// Brokered launches: the session id (a prefix of the token's hash, never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// `launch`, or `refresh` for the broker's re-mints of a live session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// Text from a fixed set this crate writes. An alias, not `&'static str` written out,
/// so that serde's derive does not take the field for borrowed input: reading maps the
/// text onto the known values instead.
pub type KnownText = &'static str;

/// Records are read back only from the broker's answers; the text fields that are
/// `&'static str` here take only the values this crate writes.
fn known_flow<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<crate::context::Flow>()
        .map(|f| f.as_str())
        .map_err(serde::de::Error::custom)
}

fn known_credentials<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let s = String::deserialize(d)?;
    [
        "assumed_role",
        "static_keys",
        "ambient",
        "none",
        "propagated",
    ]
    .into_iter()
    .find(|k| *k == s)
    .ok_or_else(|| serde::de::Error::custom(format!("unknown credentials kind \"{s}\"")))
}

/// The socket peer of a brokered launch, as the kernel reported it, beside the user
/// it claimed. Present only in broker mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerRecord {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    /// The peer's Unix login.
    pub unix_user: Option<String>,
    /// The platform user the login stands for.
    pub authenticated_user: String,
    /// The user the request named (null: the caller itself).
    pub claimed_user: Option<String>,
    /// True when the caller acted for another user through `proxy_users`.
    pub proxied: bool,
}

impl DecisionRecord {
    pub fn new(d: &Decision) -> DecisionRecord {
        let ar = d.assume_role();
        DecisionRecord {
            flow: d.context.flow.as_str(),
            user: d.context.user.clone(),
            workspace: d.context.workspace.clone(),
            runtime_template: d.context.runtime_template.clone(),
            job_id: d.context.job_id.clone(),
            tier: d.tier,
            reason: d.reason,
            skipped: d.skipped.clone(),
            warnings: d.warnings.clone(),
            credentials: match &d.plan {
                Plan::AssumeRole(_) => "assumed_role",
                Plan::StaticKeys(_) => "static_keys",
                Plan::Ambient => "ambient",
                Plan::Refused(_) => "none",
            },
            service_account: d.service_account().map(str::to_string),
            role_arn: ar.map(|a| a.role_arn.to_string()),
            session_name: ar.map(|a| a.session_name.clone()),
            external_id_set: ar.is_some_and(|a| a.external_id.is_some()),
            source_identity: ar.and_then(|a| a.source_identity.clone()),
            session_tags: ar
                .map(|a| a.tags.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default(),
            duration_seconds: ar.map(|a| a.duration_seconds),
            policy_chars: d.policy().map(|p| p.chars()),
            policy_sha256: d.policy().map(|p| p.sha256().to_string()),
            policy_arns: ar.map(|a| a.policy_arns.clone()).unwrap_or_default(),
            refused: d.refusal().cloned(),
            expiration: None,
            elapsed_ms: None,
            caller: None,
            delivery: None,
            session: None,
            event: None,
        }
    }

    /// The record as printed by `explain --json`: the same fields plus `policy` (the
    /// inline document) and `managed_policies` (ARN -> document).
    pub fn explain_value(d: &Decision) -> serde_json::Value {
        let mut v = serde_json::to_value(DecisionRecord::new(d)).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "policy".into(),
                d.policy()
                    .map(|p| p.to_value())
                    .unwrap_or(serde_json::Value::Null),
            );
            let managed: serde_json::Map<String, serde_json::Value> = d
                .assume_role()
                .map(|a| a.managed_policies.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|m| (m.arn.clone(), m.to_value()))
                .collect();
            obj.insert(
                "managed_policies".into(),
                serde_json::Value::Object(managed),
            );
        }
        v
    }

    /// One JSON line.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Appends the record to `path` (created 0600), or writes it to stderr.
    pub fn write(&self, log: &crate::model::DecisionLog) -> std::io::Result<()> {
        let line = format!("{}\n", self.to_line());
        match log {
            crate::model::DecisionLog::Stderr => std::io::stderr().write_all(line.as_bytes()),
            // The error names the file: "No such file or directory" alone says nothing.
            crate::model::DecisionLog::File(path) => append_private(path, line.as_bytes())
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
}

fn append_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    // One write call per record keeps concurrent launches' lines whole (O_APPEND).
    f.write_all(bytes)
}
