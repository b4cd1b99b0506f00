//! The decision record: one JSON object per launch saying who got which identity and
//! why. `provisioner explain --json` prints the same fields plus the policy document.
//!
//! A record must never carry a secret: it is built from the [`Decision`] (which holds
//! only references to secrets) and from the credentials' expiry, never their values.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::decision::{Decision, DefaultReason, Plan, Refusal, Skip, Tier};

/// The fields of the decision record (README.md, "How an identity is chosen"), in a stable order.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    pub flow: &'static str,
    pub user: String,
    pub workspace: Option<String>,
    pub runtime_template: Option<String>,
    pub job_id: Option<String>,
    pub tier: Tier,
    pub reason: Option<DefaultReason>,
    pub skipped: Vec<Skip>,
    pub warnings: Vec<String>,
    /// `assumed_role`, `static_keys`, `ambient`, or `none` when refused.
    pub credentials: &'static str,
    pub service_account: Option<String>,
    pub role_arn: Option<String>,
    pub session_name: Option<String>,
    pub external_id_set: bool,
    pub source_identity: Option<String>,
    pub session_tags: Vec<String>,
    pub duration_seconds: Option<u32>,
    pub policy_chars: Option<usize>,
    pub policy_sha256: Option<String>,
    pub refused: Option<Refusal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
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
            refused: d.refusal().cloned(),
            expiration: None,
            elapsed_ms: None,
        }
    }

    /// The record as printed by `explain --json`: the same fields plus `policy`.
    pub fn explain_value(d: &Decision) -> serde_json::Value {
        let mut v = serde_json::to_value(DecisionRecord::new(d)).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "policy".into(),
                d.policy()
                    .map(|p| p.to_value())
                    .unwrap_or(serde_json::Value::Null),
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
