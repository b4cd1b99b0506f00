//! `provisioner audit --aws`: read-only checks of what the platform file assumes about
//! IAM, the failures the platform's own troubleshooting lists for service accounts:
//! - every role it names exists;
//! - its `MaxSessionDuration` covers the configured duration;
//! - its trust policy names the launcher's role (the base identity, from STS
//!   GetCallerIdentity; an assumed-role session stands for its role);
//! - the session-policy role allows the platform folders and Bedrock (IAM's policy
//!   simulator, `SimulatePrincipalPolicy`): a session policy only narrows the role;
//! - IAM holds the managed session policies as the platform file asks (missing, stale,
//!   extra).
//!
//! Each problem is one [`Finding`] with the fix. This module never writes to IAM.

use provisioner_core::model::{Platform, RoleArn, ServiceAccountIdentity};
use serde_json::Value;

use crate::audit::Finding;
use crate::aws::{Call, Clients, describe};
use crate::desired::{desired_managed_policies, managed_path};
use crate::document;
use crate::sync;

/// Role chaining (a role session assuming a role) is capped at one hour by STS.
const CHAINED_MAX_SECONDS: u32 = 3600;

/// One role the platform assumes, and for what.
struct RoleUse {
    arn: RoleArn,
    duration: u32,
    /// `session_policy_role_arn`, or `service account ID`.
    what: String,
    /// The field to correct when it does not exist.
    field: String,
    session_policy: bool,
}

/// The launcher's base identity: an IAM user or role ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseIdentity {
    /// The caller ARN as STS reported it.
    pub caller: String,
    /// The principal a trust policy names: the role of an assumed-role session.
    pub principal: String,
    pub account: String,
    /// The base credentials are a role session (chained AssumeRole is capped at 1 h).
    pub role_session: bool,
}

/// `arn:aws:sts::A:assumed-role/ROLE/SESSION` → `arn:aws:iam::A:role/ROLE`; IAM user and
/// role ARNs are returned as they are. (An assumed-role ARN loses the role's path; trust
/// policies are compared by account and role name.)
pub fn base_identity(caller: &str) -> BaseIdentity {
    let parts: Vec<&str> = caller.splitn(6, ':').collect();
    let (partition, service, account, resource) = match parts.as_slice() {
        [_, p, s, _, a, r] => (*p, *s, *a, *r),
        _ => ("aws", "", "", caller),
    };
    if service == "sts"
        && let Some(rest) = resource.strip_prefix("assumed-role/")
    {
        let role = rest.split('/').next().unwrap_or_default();
        return BaseIdentity {
            caller: caller.to_string(),
            principal: format!("arn:{partition}:iam::{account}:role/{role}"),
            account: account.to_string(),
            role_session: true,
        };
    }
    BaseIdentity {
        caller: caller.to_string(),
        principal: caller.to_string(),
        account: account.to_string(),
        role_session: false,
    }
}

/// The name part of a principal ARN (`role/NAME`, `user/NAME`, path dropped) with its
/// account, for comparing trust-policy principals.
fn principal_key(arn: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, "iam", _, account, resource] = parts.as_slice() else {
        return None;
    };
    let (kind, rest) = resource.split_once('/')?;
    let name = rest.rsplit('/').next()?;
    Some((account.to_string(), kind.to_string(), name.to_string()))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn action_matches(pattern: &str, action: &str) -> bool {
    wildcard(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// IAM's `*` and `?` matching.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Does the trust policy let `who` call `action` (Allow, without conditions we cannot
/// judge)? Accepted principals: the identity itself (by account and name), its
/// account's root, the bare account id, or `*`.
pub fn trust_allows(trust: &Value, who: &BaseIdentity, action: &str) -> bool {
    let statements = match trust.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(v @ Value::Object(_)) => vec![v.clone()],
        _ => return false,
    };
    let me = principal_key(&who.principal);
    statements.iter().any(|s| {
        s.get("Effect").and_then(Value::as_str) == Some("Allow")
            && strings(s.get("Action"))
                .iter()
                .any(|a| action_matches(a, action))
            && {
                let principals = match s.get("Principal") {
                    Some(Value::String(star)) if star == "*" => vec!["*".to_string()],
                    Some(p) => strings(p.get("AWS")),
                    None => Vec::new(),
                };
                principals.iter().any(|p| {
                    p == "*"
                        || *p == who.account
                        || *p == format!("arn:aws:iam::{}:root", who.account)
                        || (me.is_some() && principal_key(p) == me)
                })
            }
    })
}

/// Probes for the simulator: (what, actions, resource).
fn probes(platform: &Platform) -> Vec<(String, Vec<&'static str>, String)> {
    let partition = platform.aws.partition();
    let mut out = Vec::new();
    let settings = &platform.settings;
    if let Some(bucket) = &platform.aws.platform_bucket {
        let user = platform
            .users
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| "user".into());
        let workspace = platform
            .workspaces
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| "workspace".into());
        for folder in &settings.session_policy_platform_folders {
            let key = folder
                .replace("{user}", &user)
                .replace("{workspace}", &workspace);
            out.push((
                format!("platform folder {folder}"),
                vec!["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                format!("arn:{partition}:s3:::{bucket}/{key}/provisioner-audit-probe"),
            ));
        }
        if !settings.session_policy_platform_folders.is_empty() {
            out.push((
                format!("platform bucket {bucket}"),
                vec!["s3:ListBucket"],
                format!("arn:{partition}:s3:::{bucket}"),
            ));
        }
    }
    if settings.session_policy_bedrock {
        out.push((
            "Bedrock".into(),
            vec![
                "bedrock:InvokeModel",
                "bedrock:InvokeModelWithResponseStream",
            ],
            format!(
                "arn:{partition}:bedrock:{}::foundation-model/provisioner-audit-probe",
                platform.aws.region
            ),
        ));
    }
    out
}

fn roles(platform: &Platform) -> Vec<RoleUse> {
    let mut out = Vec::new();
    if let Some(arn) = &platform.aws.session_policy_role_arn {
        out.push(RoleUse {
            arn: arn.clone(),
            duration: platform.settings.session_policy_duration,
            what: "session_policy_role_arn".into(),
            field: "aws.session_policy_role_arn".into(),
            session_policy: true,
        });
    }
    for sa in platform.service_accounts.values() {
        if let ServiceAccountIdentity::Role {
            role_arn,
            duration_seconds,
            ..
        } = &sa.identity
        {
            out.push(RoleUse {
                arn: role_arn.clone(),
                duration: *duration_seconds,
                what: format!("service account {}", sa.id),
                field: format!("service_accounts \"{}\" role_arn", sa.id),
                session_policy: false,
            });
        }
    }
    out
}

fn finding(kind: &'static str, subject: String, message: String, fix: String) -> Finding {
    Finding {
        kind,
        subject,
        message,
        fix,
    }
}

/// Runs every read-only check. Calls that fail become findings too (with the fix, e.g.
/// the IAM action the caller lacks), so one run shows every problem.
pub async fn check(clients: &Clients, platform: &Platform) -> Vec<Finding> {
    let mut findings = Vec::new();
    let call = Call::new("sts:GetCallerIdentity", "*");
    let who = match clients.sts.get_caller_identity().send().await {
        Ok(out) => Some(base_identity(out.arn().unwrap_or_default())),
        Err(e) => {
            let err = describe(&call, &clients.sts_endpoint, &e);
            findings.push(finding(
                "CHECK_FAILED",
                "launcher identity".into(),
                err.line.clone(),
                "the trust checks need the launcher's own credentials: run audit --aws with them"
                    .into(),
            ));
            None
        }
    };

    for role in roles(platform) {
        let subject = format!("role {} ({})", role.arn, role.what);
        let name = role.arn.role_name().to_string();
        let call = Call::new("iam:GetRole", role.arn.to_string());
        let got = match clients.iam.get_role().role_name(&name).send().await {
            Ok(out) => out.role,
            Err(e) => {
                let err = describe(&call, &clients.iam_endpoint, &e);
                if err.code.as_deref() == Some("NoSuchEntity") {
                    findings.push(finding(
                        "ROLE_MISSING",
                        subject,
                        "IAM has no such role, so every launch that assumes it fails".into(),
                        format!("create role {name}, or correct {}", role.field),
                    ));
                } else {
                    findings.push(finding(
                        "CHECK_FAILED",
                        subject,
                        err.line,
                        "see the message".into(),
                    ));
                }
                continue;
            }
        };
        let Some(got) = got else { continue };
        let max = got.max_session_duration().unwrap_or(3600).max(0) as u32;
        if max < role.duration {
            findings.push(finding(
                "SESSION_DURATION",
                subject.clone(),
                format!(
                    "MaxSessionDuration is {max} s, below the configured {} s: STS refuses the longer session and the launcher retries at 3600 s",
                    role.duration
                ),
                format!(
                    "aws iam update-role --role-name {name} --max-session-duration {}",
                    role.duration
                ),
            ));
        }
        if let Some(who) = &who {
            if who.role_session && role.duration > CHAINED_MAX_SECONDS {
                findings.push(finding(
                    "ROLE_CHAINING",
                    subject.clone(),
                    format!(
                        "the launcher's credentials are a role session ({}); STS caps chained sessions at {CHAINED_MAX_SECONDS} s, below the configured {} s",
                        who.caller, role.duration
                    ),
                    "run the launcher with credentials that are not a role session (an instance profile or IAM user), or configure a duration of 3600".into(),
                ));
            }
            let trust = got
                .assume_role_policy_document()
                .map(document::parse)
                .transpose()
                .ok()
                .flatten();
            let mut actions = vec!["sts:AssumeRole"];
            if platform.settings.sts_session_tags {
                actions.push("sts:TagSession");
            }
            if platform.settings.sts_source_identity {
                actions.push("sts:SetSourceIdentity");
            }
            let missing: Vec<&str> = actions
                .into_iter()
                .filter(|a| !trust.as_ref().is_some_and(|t| trust_allows(t, who, a)))
                .collect();
            if !missing.is_empty() {
                findings.push(finding(
                    "TRUST",
                    subject.clone(),
                    format!(
                        "its trust policy does not let the launcher's role {} call {}",
                        who.principal,
                        missing.join(", ")
                    ),
                    format!(
                        "add {{\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"{}\"}},\"Action\":[{}]}} to its trust policy (aws iam update-assume-role-policy --role-name {name} --policy-document file://trust.json)",
                        who.principal,
                        missing
                            .iter()
                            .map(|a| format!("\"{a}\""))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                ));
            }
        }
        if role.session_policy {
            simulate(clients, platform, &role, &subject, &mut findings).await;
        }
    }

    managed_state(clients, platform, &mut findings).await;
    findings
}

/// The session-policy role must itself allow what the session policy grants: the
/// session gets the intersection.
async fn simulate(
    clients: &Clients,
    platform: &Platform,
    role: &RoleUse,
    subject: &str,
    findings: &mut Vec<Finding>,
) {
    let call = Call::new("iam:SimulatePrincipalPolicy", role.arn.to_string());
    for (what, actions, resource) in probes(platform) {
        let out = clients
            .iam
            .simulate_principal_policy()
            .policy_source_arn(role.arn.as_str())
            .set_action_names(Some(actions.iter().map(|a| a.to_string()).collect()))
            .resource_arns(&resource)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let err = describe(&call, &clients.iam_endpoint, &e);
                findings.push(finding(
                    "CHECK_FAILED",
                    subject.to_string(),
                    format!("the policy simulator could not check {what}: {}", err.line),
                    "allow iam:SimulatePrincipalPolicy on the role for the identity running the audit".into(),
                ));
                return;
            }
        };
        let mut denied = Vec::new();
        for r in out.evaluation_results() {
            let specific = r.resource_specific_results();
            let decisions: Vec<(String, String)> = if specific.is_empty() {
                vec![(
                    r.eval_resource_name().unwrap_or(&resource).to_string(),
                    r.eval_decision().as_str().to_string(),
                )]
            } else {
                specific
                    .iter()
                    .map(|s| {
                        (
                            s.eval_resource_name().to_string(),
                            s.eval_resource_decision().as_str().to_string(),
                        )
                    })
                    .collect()
            };
            for (_, decision) in decisions {
                if decision != "allowed" {
                    denied.push(format!("{} ({decision})", r.eval_action_name()));
                }
            }
        }
        if !denied.is_empty() {
            findings.push(finding(
                "ROLE_DENIES",
                subject.to_string(),
                format!(
                    "IAM's policy simulator says the role does not allow {} on {resource}: sessions cannot use {what} whatever the session policy grants",
                    denied.join(", ")
                ),
                format!(
                    "allow {} on {} in a policy of role {}",
                    actions.join(", "),
                    resource.replace("provisioner-audit-probe", "*"),
                    role.arn.role_name()
                ),
            ));
        }
    }
}

/// Whether IAM holds the managed session policies as the platform file asks.
async fn managed_state(clients: &Clients, platform: &Platform, findings: &mut Vec<Finding>) {
    let desired = desired_managed_policies(platform);
    let path = managed_path(platform);
    let account = platform.aws.account_id.clone().unwrap_or_default();
    let existing = match sync::observe(clients, &account, &path, &desired, false).await {
        Ok(e) => e,
        Err(e) => {
            findings.push(finding(
                "CHECK_FAILED",
                format!("managed policies under {path}"),
                e.line,
                "see the message".into(),
            ));
            return;
        }
    };
    let plan = match sync::plan(&path, &desired, &existing, false) {
        Ok(p) => p,
        Err(e) => {
            findings.push(finding(
                "MANAGED_POLICIES",
                format!("managed policies under {path}"),
                e,
                "see the message".into(),
            ));
            return;
        }
    };
    let (missing, stale, extra) = plan.drift();
    if !missing.is_empty() || !stale.is_empty() {
        let names = |v: &[&sync::Action]| {
            v.iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("{} missing ({})", missing.len(), names(&missing)));
        }
        if !stale.is_empty() {
            parts.push(format!("{} stale ({})", stale.len(), names(&stale)));
        }
        findings.push(finding(
            "MANAGED_POLICIES",
            format!("managed policies under {path}"),
            format!(
                "IAM does not match the platform file: {}; launches that pass them are refused",
                parts.join(", ")
            ),
            "run provisioner policies sync --config PATH".into(),
        ));
    }
    if !extra.is_empty() {
        findings.push(finding(
            "MANAGED_EXTRA",
            format!("managed policies under {path}"),
            format!(
                "{} polic{} that nothing in the platform file references",
                extra.len(),
                if extra.len() == 1 { "y" } else { "ies" }
            ),
            "run provisioner policies sync --prune --config PATH to delete them".into(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn assumed_role_stands_for_its_role() {
        let b = base_identity("arn:aws:sts::123456789012:assumed-role/Launcher/i-0abc");
        assert_eq!(b.principal, "arn:aws:iam::123456789012:role/Launcher");
        assert!(b.role_session);
        let u = base_identity("arn:aws:iam::123456789012:user/ci");
        assert_eq!(u.principal, "arn:aws:iam::123456789012:user/ci");
        assert!(!u.role_session);
    }

    #[test]
    fn trust_names_the_launcher() {
        let who = base_identity("arn:aws:sts::123456789012:assumed-role/Launcher/s");
        let trust = |principal: Value, action: &str| json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":principal},"Action":action}]});
        for ok in [
            json!("arn:aws:iam::123456789012:role/Launcher"),
            json!("arn:aws:iam::123456789012:role/infra/Launcher"),
            json!([
                "arn:aws:iam::123456789012:user/x",
                "arn:aws:iam::123456789012:role/Launcher"
            ]),
            json!("arn:aws:iam::123456789012:root"),
            json!("123456789012"),
        ] {
            assert!(
                trust_allows(&trust(ok.clone(), "sts:AssumeRole"), &who, "sts:AssumeRole"),
                "{ok}"
            );
            assert!(
                trust_allows(&trust(ok.clone(), "sts:*"), &who, "sts:AssumeRole"),
                "{ok}"
            );
        }
        for bad in [
            json!("arn:aws:iam::123456789012:role/Other"),
            json!("arn:aws:iam::210987654321:role/Launcher"),
            json!("arn:aws:iam::210987654321:root"),
        ] {
            assert!(
                !trust_allows(
                    &trust(bad.clone(), "sts:AssumeRole"),
                    &who,
                    "sts:AssumeRole"
                ),
                "{bad}"
            );
        }
        let t = trust(
            json!("arn:aws:iam::123456789012:role/Launcher"),
            "sts:AssumeRole",
        );
        assert!(!trust_allows(&t, &who, "sts:TagSession"));
        let deny = json!({"Statement":{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}});
        assert!(!trust_allows(&deny, &who, "sts:AssumeRole"));
    }

    #[test]
    fn wildcards_match_like_iam() {
        assert!(wildcard("sts:assume*", "sts:assumerole"));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("s3:get?bject", "s3:getobject"));
        assert!(!wildcard("sts:assumerole", "sts:assumerolewithsaml"));
    }
}
