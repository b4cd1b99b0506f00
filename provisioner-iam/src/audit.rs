//! `provisioner audit`: what every user would get, before anyone launches.
//!
//! For every user and both flows it resolves the identity exactly as a launch would
//! (no STS, no IAM) and reports the tier, the inline policy size, the managed policy
//! count and the headroom of each limit. It flags who would get default cluster
//! credentials through OVER_LIMIT (unrestricted, with the documented fall-back), users
//! naming data planes the file does not define, and workspaces and runtime templates
//! that hold a service account (their launches are not scoped to the user).
//!
//! The audit answers "what happens when session policies are switched on", so it
//! resolves with `syntasa_session_policy_enabled` true whatever the file says, and says
//! so. Which contexts it resolves:
//! - notebook flow: no workspace, and each workspace without a service account
//!   (`{workspace}` in a platform folder changes the inline size); the row shows the
//!   context with the least headroom. Workspaces and runtime templates with a service
//!   account are reported as findings of their own, not per user.
//! - job flow: no runtime template (the workspace takes no part in the job flow's
//!   session policy).
//!
//! Pure: nothing here performs I/O.

use std::collections::BTreeMap;

use provisioner_core::context::{Flow, LaunchContext};
use provisioner_core::decision::{Decision, DefaultReason, Plan, Tier, resolve};
use provisioner_core::model::{Platform, ServiceAccountIdentity};
use provisioner_core::policy::MAX_POLICY_CHARS;
use serde::Serialize;
use serde_json::{Value, json};

use crate::desired::desired_managed_policies;
use crate::document::managed_chars;
use crate::sync::MAX_MANAGED_CHARS;

pub use provisioner_core::policy::managed::MAX_POLICY_ARNS;

/// Exit code of `audit` when someone would get unrestricted credentials through
/// OVER_LIMIT.
pub const EXIT_UNRESTRICTED: i32 = 5;
/// Exit code of `audit --aws` when IAM disagrees with the platform file (and nobody is
/// unrestricted).
pub const EXIT_IAM_FINDINGS: i32 = 6;

/// One user in one flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub user: String,
    pub flow: &'static str,
    /// The context shown (the one with the least headroom).
    pub workspace: Option<String>,
    pub tier: Tier,
    pub reason: Option<DefaultReason>,
    /// The refusal code when the launch would be refused.
    pub refused: Option<String>,
    pub inline_chars: Option<usize>,
    pub inline_headroom: Option<i64>,
    pub managed_policies: usize,
    pub policy_arns_headroom: i64,
    /// The largest managed document this user's launches pass.
    pub managed_max_chars: Option<usize>,
    pub managed_headroom: Option<i64>,
    /// Default credentials through OVER_LIMIT with the fall-back: unrestricted.
    pub unrestricted: bool,
    /// How many contexts were resolved for this row.
    pub contexts: usize,
}

/// Something the admin should look at, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `UNRESTRICTED`, `REFUSED`, `UNKNOWN_REFERENCE`, `SERVICE_ACCOUNT`, or one of the
    /// IAM findings of `--aws`.
    pub kind: &'static str,
    pub subject: String,
    pub message: String,
    pub fix: String,
}

impl Finding {
    pub fn line(&self) -> String {
        format!(
            "{:<17} {}: {}; fix: {}",
            self.kind, self.subject, self.message, self.fix
        )
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub platform: String,
    /// The file's own `syntasa_session_policy_enabled` (the audit resolves as if true).
    pub session_policy_enabled_in_file: bool,
    pub rows: Vec<Row>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn unrestricted(&self) -> usize {
        self.rows.iter().filter(|r| r.unrestricted).count()
    }

    /// The audit's exit code (see [`EXIT_UNRESTRICTED`], [`EXIT_IAM_FINDINGS`]).
    pub fn exit_code(&self, iam_findings: usize) -> i32 {
        if self.unrestricted() > 0 {
            EXIT_UNRESTRICTED
        } else if iam_findings > 0 {
            EXIT_IAM_FINDINGS
        } else {
            0
        }
    }

    pub fn to_json(&self, iam_findings: &[Finding], exit_code: i32) -> Value {
        json!({
            "platform": self.platform,
            "session_policy_enabled_in_file": self.session_policy_enabled_in_file,
            "evaluated_with_session_policy_enabled": true,
            "limits": {
                "inline_chars": MAX_POLICY_CHARS,
                "policy_arns": MAX_POLICY_ARNS,
                "managed_chars": MAX_MANAGED_CHARS,
            },
            "rows": self.rows,
            "findings": self.findings.iter().chain(iam_findings).collect::<Vec<_>>(),
            "unrestricted": self.unrestricted(),
            "exit_code": exit_code,
        })
    }

    /// The readable report: a table, then one line per finding, then the summary.
    pub fn text(&self, iam_findings: &[Finding], exit_code: i32) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "audit of {}", self.platform);
        let _ = writeln!(
            out,
            "resolved with session policies on{}; limits: inline {MAX_POLICY_CHARS} characters, {MAX_POLICY_ARNS} managed policy ARNs, {MAX_MANAGED_CHARS} characters per managed policy",
            if self.session_policy_enabled_in_file {
                ""
            } else {
                " (syntasa_session_policy_enabled is false in the file: this is what switching it on gives)"
            }
        );
        let _ = writeln!(out);
        let dash = || "-".to_string();
        let opt = |v: Option<usize>| v.map_or_else(dash, |v| v.to_string());
        let opt_i = |v: Option<i64>| v.map_or_else(dash, |v| v.to_string());
        let mut table = vec![[
            "user".to_string(),
            "flow".into(),
            "tier".into(),
            "inline".into(),
            "inline left".into(),
            "managed".into(),
            "arns left".into(),
            "largest managed".into(),
            "managed left".into(),
            "worst context".into(),
        ]];
        for r in &self.rows {
            let tier = match (r.reason, &r.refused) {
                (_, Some(code)) => format!("refused {code}"),
                (Some(reason), None) => format!("default {}", reason.as_str()),
                (None, None) => r.tier.as_str().to_string(),
            };
            table.push([
                r.user.clone(),
                r.flow.to_string(),
                tier,
                opt(r.inline_chars),
                opt_i(r.inline_headroom),
                r.managed_policies.to_string(),
                r.policy_arns_headroom.to_string(),
                opt(r.managed_max_chars),
                opt_i(r.managed_headroom),
                match &r.workspace {
                    Some(w) => format!("workspace {w}"),
                    None if r.contexts > 1 => "no workspace".into(),
                    None => dash(),
                },
            ]);
        }
        let widths: Vec<usize> = (0..10)
            .map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0))
            .collect();
        for row in &table {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        let findings: Vec<&Finding> = self.findings.iter().chain(iam_findings).collect();
        let _ = writeln!(out);
        if findings.is_empty() {
            let _ = writeln!(out, "findings: none");
        } else {
            let _ = writeln!(out, "findings:");
            for f in &findings {
                let _ = writeln!(out, "  {}", f.line());
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "summary: {} users, {} rows, {} would get unrestricted credentials through OVER_LIMIT, {} finding(s); exit {exit_code}",
            self.rows
                .iter()
                .map(|r| &r.user)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            self.rows.len(),
            self.unrestricted(),
            findings.len()
        );
        out
    }
}

/// The managed policy ARNs a launch passes.
pub fn policy_arns(d: &Decision) -> Vec<String> {
    d.assume_role()
        .map(|a| a.policy_arns.clone())
        .unwrap_or_default()
}

fn row_of(d: &Decision, sizes: &BTreeMap<String, usize>, contexts: usize) -> Row {
    let inline = d.policy().map(|p| p.chars());
    let arns = policy_arns(d);
    // STS counts the plaintext of the request against 2,048: the inline document and
    // the ARNs (the stored documents are IAM's; see the core policy module).
    let plaintext = inline.map(|c| c + arns.iter().map(String::len).sum::<usize>());
    let managed_max = arns.iter().filter_map(|a| sizes.get(a)).copied().max();
    let refused = d.refusal().map(|r| r.code.as_str().to_string());
    Row {
        user: d.context.user.clone(),
        flow: if d.context.flow == Flow::Job {
            "job"
        } else {
            "notebook"
        },
        workspace: d.context.workspace.clone(),
        tier: d.tier,
        reason: d.reason,
        refused,
        inline_chars: inline,
        inline_headroom: plaintext.map(|c| MAX_POLICY_CHARS as i64 - c as i64),
        managed_policies: arns.len(),
        policy_arns_headroom: MAX_POLICY_ARNS as i64 - arns.len() as i64,
        managed_max_chars: managed_max,
        managed_headroom: managed_max.map(|c| MAX_MANAGED_CHARS as i64 - c as i64),
        unrestricted: d.tier == Tier::Default
            && d.reason == Some(DefaultReason::OverLimit)
            && matches!(d.plan, Plan::Ambient),
        contexts,
    }
}

/// How bad a row is, for picking the worst context: unrestricted, refused, then the
/// least headroom of any limit.
fn badness(r: &Row) -> (bool, bool, i64) {
    let least = [
        r.inline_headroom,
        Some(r.policy_arns_headroom),
        r.managed_headroom,
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(i64::MAX);
    (r.unrestricted, r.refused.is_some(), -least)
}

/// Audits every user of `platform` in both flows.
pub fn audit(platform: &Platform) -> Report {
    let mut enabled = platform.clone();
    enabled.settings.session_policy_enabled = true;
    let sizes: BTreeMap<String, usize> = desired_managed_policies(&enabled)
        .into_iter()
        .map(|m| (m.arn, managed_chars(&m.document)))
        .collect();
    let open_workspaces: Vec<&String> = enabled
        .workspaces
        .values()
        .filter(|w| w.service_account.is_none())
        .map(|w| &w.id)
        .collect();
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for user in enabled.users.values() {
        for plane in user
            .data_planes
            .iter()
            .filter(|p| !enabled.data_planes.contains_key(*p))
        {
            findings.push(Finding {
                kind: "UNKNOWN_REFERENCE",
                subject: format!("user {}", user.id),
                message: format!("names data plane \"{plane}\", which the file does not define"),
                fix: format!("add data plane \"{plane}\" or remove it from the user"),
            });
        }
        for flow in [Flow::Notebook, Flow::Job] {
            let mut workspaces: Vec<Option<&String>> = vec![None];
            if flow == Flow::Notebook {
                workspaces.extend(open_workspaces.iter().map(|w| Some(*w)));
            }
            let contexts = workspaces.len();
            let worst = workspaces
                .into_iter()
                .map(|ws| {
                    let ctx = LaunchContext {
                        flow,
                        user: user.id.clone(),
                        workspace: ws.cloned(),
                        runtime_template: None,
                        job_id: None,
                    };
                    let d = resolve(&enabled, &ctx, &[]);
                    let row = row_of(&d, &sizes, contexts);
                    (row, d)
                })
                .max_by_key(|(r, _)| badness(r));
            let Some((row, d)) = worst else { continue };
            let subject = format!(
                "user {} ({} flow{})",
                row.user,
                row.flow,
                row.workspace
                    .as_ref()
                    .map(|w| format!(", workspace {w}"))
                    .unwrap_or_default()
            );
            let size = row
                .inline_chars
                .or_else(|| over_limit_size(&d))
                .map(|c| format!(" ({c} characters inline)"))
                .unwrap_or_default();
            if row.unrestricted {
                findings.push(Finding {
                    kind: "UNRESTRICTED",
                    subject,
                    message: format!(
                        "the session policy does not fit{size}, so session_policy_over_limit=fallback gives default cluster credentials: unrestricted"
                    ),
                    fix: "use managed session policies (settings.session_policy_managed), give the user fewer data planes, or set session_policy_over_limit to deny to refuse instead".into(),
                });
            } else if let Some(r) = d.refusal() {
                findings.push(Finding {
                    kind: "REFUSED",
                    subject,
                    message: format!("{} would be refused: {}", row.flow, r.message),
                    fix: r.fix.clone(),
                });
            }
            rows.push(row);
        }
    }
    for ws in enabled.workspaces.values() {
        if let Some(sa) = &ws.service_account {
            findings.push(holder_finding(&enabled, "workspace", &ws.id, sa));
        }
    }
    for rt in enabled.runtime_templates.values() {
        if let Some(sa) = &rt.service_account {
            findings.push(holder_finding(&enabled, "runtime template", &rt.id, sa));
        }
    }
    Report {
        platform: platform.source.clone(),
        session_policy_enabled_in_file: platform.settings.session_policy_enabled,
        rows,
        findings,
    }
}

/// The inline size the decision found too large, from its skip detail.
fn over_limit_size(d: &Decision) -> Option<usize> {
    d.skipped
        .iter()
        .filter(|s| s.tier == Tier::SessionPolicy)
        .find_map(|s| {
            s.detail
                .split(|c: char| !c.is_ascii_digit() && c != ',')
                .map(|t| t.replace(',', ""))
                .filter_map(|t| t.parse::<usize>().ok())
                .find(|n| *n > MAX_POLICY_CHARS)
        })
}

fn holder_finding(platform: &Platform, what: &str, id: &str, sa: &str) -> Finding {
    let identity = match platform.service_accounts.get(sa).map(|s| &s.identity) {
        Some(ServiceAccountIdentity::Role { role_arn, .. }) => format!("IAM role {role_arn}"),
        Some(ServiceAccountIdentity::StaticKeys { .. }) => "an IAM user's static keys".into(),
        None => "an unknown service account".into(),
    };
    let flows = if what == "workspace" {
        "every notebook launched in it"
    } else {
        "every notebook and job launched with it"
    };
    Finding {
        kind: "SERVICE_ACCOUNT",
        subject: format!("{what} {id}"),
        message: format!(
            "holds service account {sa} ({identity}): {flows} runs as that identity, not scoped to the user's data planes"
        ),
        fix: format!(
            "keep it only if everyone who can use the {what} may have that identity's access; otherwise remove service_account from it"
        ),
    }
}
