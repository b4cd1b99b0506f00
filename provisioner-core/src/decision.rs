//! The identity decision: which tier a launch takes and why (README.md, "How an identity is chosen"; ARCHITECTURE.md, "decide").
//!
//! [`resolve`] is a pure function of the platform model, the launch context and the
//! failures seen so far while minting. It performs no I/O. When minting a tier fails,
//! the caller records a [`Failure`] and resolves again; the resolution then continues
//! past that tier (or refuses, as the settings say). This keeps every row of both
//! resolution tables, and every fall-back, testable without a network.
//!
//! A decision must never leave a launch with broader credentials than the tables
//! allow: the only way to reach the default tier is through its three documented
//! reasons (or a service-account failure falling through to a tier that leads there).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::context::LaunchContext;
use crate::exit;
use crate::model::{
    Platform, RoleArn, S3Location, SecretRef, ServiceAccount, ServiceAccountIdentity,
    is_iam_name_char,
};
use crate::policy::managed::is_per_user_folder;
use crate::policy::{ManagedPolicy, Placement, SessionInput, SessionPolicy};

/// The identity tiers, in the order of the notebook table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    WorkspaceSa,
    RuntimeTemplateSa,
    SessionPolicy,
    Default,
}

impl Tier {
    /// Every tier.
    pub const ALL: [Tier; 4] = [
        Tier::WorkspaceSa,
        Tier::RuntimeTemplateSa,
        Tier::SessionPolicy,
        Tier::Default,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::WorkspaceSa => "workspace_sa",
            Tier::RuntimeTemplateSa => "runtime_template_sa",
            Tier::SessionPolicy => "session_policy",
            Tier::Default => "default",
        }
    }

    /// The tier whose [`Tier::as_str`] is `s` (the text form of records, markers and
    /// broker answers).
    pub fn from_name(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the default tier was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DefaultReason {
    /// Session policy is switched off.
    Disabled,
    /// The user is a System Admin.
    AdminBypass,
    /// The session policies do not fit STS's limits (2,048 characters inline, and with
    /// managed session policies 6,144 per document and 10 ARNs), or STS said
    /// PackedPolicyTooLarge.
    OverLimit,
}

impl DefaultReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultReason::Disabled => "DISABLED",
            DefaultReason::AdminBypass => "ADMIN_BYPASS",
            DefaultReason::OverLimit => "OVER_LIMIT",
        }
    }
}

/// Why a tier was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SkipReason {
    /// Notebook flow without a workspace.
    NoWorkspace,
    /// The workspace or runtime template has no service account.
    NoServiceAccount,
    /// A workspace was given in the job flow; its service account does not apply.
    IgnoredInJobFlow,
    /// No runtime template was given.
    NoRuntimeTemplate,
    /// The service account's credentials could not be obtained (fall-back).
    ServiceAccountFailed,
    Disabled,
    AdminBypass,
    OverLimit,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoWorkspace => "NO_WORKSPACE",
            SkipReason::NoServiceAccount => "NO_SERVICE_ACCOUNT",
            SkipReason::IgnoredInJobFlow => "IGNORED_IN_JOB_FLOW",
            SkipReason::NoRuntimeTemplate => "NO_RUNTIME_TEMPLATE",
            SkipReason::ServiceAccountFailed => "SERVICE_ACCOUNT_FAILED",
            SkipReason::Disabled => "DISABLED",
            SkipReason::AdminBypass => "ADMIN_BYPASS",
            SkipReason::OverLimit => "OVER_LIMIT",
        }
    }
}

/// One tier passed over, with a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    pub tier: Tier,
    pub reason: SkipReason,
    pub detail: String,
}

/// What went wrong while minting a tier, fed back into [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub tier: Tier,
    pub kind: FailureKind,
    /// The cause, in words (never a secret).
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// AssumeRole for a service account failed, or its static keys could not be read.
    ServiceAccount,
    /// STS answered PackedPolicyTooLarge for the session policy.
    PackedPolicyTooLarge,
    /// STS rejected a managed session policy ARN (missing from IAM, or not readable).
    ManagedPolicyRejected,
    /// Session-policy credentials could not be obtained for any other reason.
    SessionPolicyCredentials,
}

/// Why a launch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefusalCode {
    /// The workspace id is not in the platform file.
    UnknownWorkspace,
    /// The runtime template id is not in the platform file.
    UnknownRuntimeTemplate,
    /// The user is not in the platform file, so their data planes are unknown.
    UnknownUser,
    /// A service account failed and `service_account_failure` is `deny`.
    ServiceAccountFailed,
    /// The policy is over the limit and `session_policy_over_limit` is `deny`.
    OverLimit,
    /// Session-policy credentials could not be obtained.
    CredentialsUnavailable,
    /// The caller may not launch as the user it claims (broker mode).
    NotPermitted,
    /// The workspace or runtime template does not list the user.
    NotEntitled,
    /// STS rejected a managed session policy the launch passes: IAM does not hold it
    /// (yet). Never a reason to widen the session.
    ManagedPolicyUnavailable,
}

impl RefusalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::UnknownWorkspace => "UNKNOWN_WORKSPACE",
            RefusalCode::UnknownRuntimeTemplate => "UNKNOWN_RUNTIME_TEMPLATE",
            RefusalCode::UnknownUser => "UNKNOWN_USER",
            RefusalCode::ServiceAccountFailed => "SERVICE_ACCOUNT_FAILED",
            RefusalCode::OverLimit => "OVER_LIMIT",
            RefusalCode::CredentialsUnavailable => "CREDENTIALS_UNAVAILABLE",
            RefusalCode::NotPermitted => "NOT_PERMITTED",
            RefusalCode::NotEntitled => "NOT_ENTITLED",
            RefusalCode::ManagedPolicyUnavailable => "MANAGED_POLICY_UNAVAILABLE",
        }
    }
}

/// A launch that must not go ahead, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: RefusalCode,
    pub message: String,
    pub fix: String,
    /// The process exit code this refusal maps to.
    pub exit_code: i32,
}

/// AssumeRole parameters for a role service account or the session-policy tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRolePlan {
    /// The service account, for the SA tiers.
    pub service_account: Option<String>,
    pub role_arn: RoleArn,
    pub session_name: String,
    pub duration_seconds: u32,
    pub external_id: Option<String>,
    /// The inline session policy.
    pub policy: Option<SessionPolicy>,
    /// Managed session policies passed as `PolicyArns` (empty when none).
    pub policy_arns: Vec<String>,
    /// The documents behind `policy_arns`, in the same order (for explain and audit).
    pub managed_policies: Vec<ManagedPolicy>,
    /// Which part of the session went into which policy (for explain).
    pub placements: Vec<Placement>,
    pub source_identity: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// Static keys of an IAM-user service account, still as references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticKeysPlan {
    pub service_account: String,
    pub access_key_id: SecretRef,
    pub secret_access_key: SecretRef,
}

/// What the mint step must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    AssumeRole(AssumeRolePlan),
    StaticKeys(StaticKeysPlan),
    /// Default cluster credentials: mint nothing, the child keeps the ambient chain.
    Ambient,
    /// Do not start the program.
    Refused(Refusal),
}

/// The outcome of resolution for one launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub context: LaunchContext,
    pub tier: Tier,
    /// Set when `tier` is [`Tier::Default`].
    pub reason: Option<DefaultReason>,
    pub skipped: Vec<Skip>,
    pub warnings: Vec<String>,
    pub plan: Plan,
}

impl Decision {
    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.plan {
            Plan::Refused(r) => Some(r),
            _ => None,
        }
    }

    pub fn assume_role(&self) -> Option<&AssumeRolePlan> {
        match &self.plan {
            Plan::AssumeRole(a) => Some(a),
            _ => None,
        }
    }

    pub fn policy(&self) -> Option<&SessionPolicy> {
        self.assume_role().and_then(|a| a.policy.as_ref())
    }

    /// The service account behind the decision, for the SA tiers.
    pub fn service_account(&self) -> Option<&str> {
        match &self.plan {
            Plan::AssumeRole(a) => a.service_account.as_deref(),
            Plan::StaticKeys(s) => Some(&s.service_account),
            _ => None,
        }
    }
}

/// Resolves the identity path for `ctx` (README.md, "How an identity is chosen"). `failures` are the tiers
/// whose minting already failed in this launch, in order.
pub fn resolve(platform: &Platform, ctx: &LaunchContext, failures: &[Failure]) -> Decision {
    let mut r = Resolution {
        platform,
        ctx,
        failures,
        skipped: Vec::new(),
        warnings: platform.warnings.clone(),
    };
    let outcome = r.run();
    let (tier, reason, plan) = outcome;
    Decision {
        context: ctx.clone(),
        tier,
        reason,
        skipped: r.skipped,
        warnings: r.warnings,
        plan,
    }
}

type Outcome = (Tier, Option<DefaultReason>, Plan);

struct Resolution<'a> {
    platform: &'a Platform,
    ctx: &'a LaunchContext,
    failures: &'a [Failure],
    skipped: Vec<Skip>,
    warnings: Vec<String>,
}

impl Resolution<'_> {
    fn skip(&mut self, tier: Tier, reason: SkipReason, detail: String) {
        self.skipped.push(Skip {
            tier,
            reason,
            detail,
        });
    }

    fn failure(&self, tier: Tier) -> Option<&Failure> {
        self.failures.iter().find(|f| f.tier == tier)
    }

    fn refuse(
        tier: Tier,
        reason: Option<DefaultReason>,
        code: RefusalCode,
        message: String,
        fix: String,
    ) -> Outcome {
        let exit_code = match code {
            RefusalCode::UnknownWorkspace | RefusalCode::UnknownRuntimeTemplate => exit::CONFIG,
            RefusalCode::UnknownUser
            | RefusalCode::ServiceAccountFailed
            | RefusalCode::OverLimit
            | RefusalCode::NotPermitted
            | RefusalCode::NotEntitled => exit::REFUSED,
            RefusalCode::CredentialsUnavailable | RefusalCode::ManagedPolicyUnavailable => {
                exit::CREDENTIALS
            }
        };
        (
            tier,
            reason,
            Plan::Refused(Refusal {
                code,
                message,
                fix,
                exit_code,
            }),
        )
    }

    fn run(&mut self) -> Outcome {
        let p = self.platform;
        let ctx = self.ctx;

        if !p.users.contains_key(&ctx.user) {
            self.warnings
                .push(format!("user \"{}\" is not in {}", ctx.user, p.source));
        }
        if let Err((tier, d)) = crate::access::entitlement(p, ctx) {
            return Self::refuse(tier, None, d.code, d.message, d.fix);
        }

        // Tier 1: workspace service account (notebook flows only).
        match (&ctx.workspace, ctx.flow.uses_workspace_sa()) {
            (Some(ws), false) => {
                let detail = match p
                    .workspaces
                    .get(ws)
                    .and_then(|w| w.service_account.as_ref())
                {
                    Some(sa) => format!(
                        "workspace \"{ws}\" has service account \"{sa}\", which jobs ignore"
                    ),
                    None => format!("workspace \"{ws}\" is ignored in the job flow"),
                };
                self.skip(Tier::WorkspaceSa, SkipReason::IgnoredInJobFlow, detail);
            }
            (None, false) => {}
            (None, true) => self.skip(
                Tier::WorkspaceSa,
                SkipReason::NoWorkspace,
                "no workspace was given".into(),
            ),
            (Some(ws), true) => match p.workspaces.get(ws) {
                None => {
                    return Self::refuse(
                        Tier::WorkspaceSa,
                        None,
                        RefusalCode::UnknownWorkspace,
                        format!("workspace \"{ws}\" is not in {}", p.source),
                        "add the workspace to the platform file, or launch with a known workspace id".into(),
                    );
                }
                Some(w) => match &w.service_account {
                    None => self.skip(
                        Tier::WorkspaceSa,
                        SkipReason::NoServiceAccount,
                        format!("workspace \"{ws}\" has no service account"),
                    ),
                    Some(sa_id) => {
                        if let Some(o) = self.service_account_tier(
                            Tier::WorkspaceSa,
                            &format!("workspace \"{ws}\""),
                            sa_id,
                        ) {
                            return o;
                        }
                    }
                },
            },
        }

        // Tier 2: runtime template service account.
        match &ctx.runtime_template {
            None => self.skip(
                Tier::RuntimeTemplateSa,
                SkipReason::NoRuntimeTemplate,
                "no runtime template was given".into(),
            ),
            Some(rt) => match p.runtime_templates.get(rt) {
                None => {
                    return Self::refuse(
                        Tier::RuntimeTemplateSa,
                        None,
                        RefusalCode::UnknownRuntimeTemplate,
                        format!("runtime template \"{rt}\" is not in {}", p.source),
                        "add the runtime template to the platform file, or launch with a known runtime template id".into(),
                    );
                }
                Some(t) => match &t.service_account {
                    None => self.skip(
                        Tier::RuntimeTemplateSa,
                        SkipReason::NoServiceAccount,
                        format!("runtime template \"{rt}\" has no service account"),
                    ),
                    Some(sa_id) => {
                        if let Some(o) = self.service_account_tier(
                            Tier::RuntimeTemplateSa,
                            &format!("runtime template \"{rt}\""),
                            sa_id,
                        ) {
                            return o;
                        }
                    }
                },
            },
        }

        // Tier 3: session policy.
        self.session_policy_tier()
    }

    /// Takes a service-account tier, or records why it fell through (None), or refuses.
    fn service_account_tier(&mut self, tier: Tier, holder: &str, sa_id: &str) -> Option<Outcome> {
        let p = self.platform;
        if let Some(f) = self.failure(tier) {
            let detail = format!(
                "service account \"{sa_id}\" of {holder} failed: {}",
                f.message
            );
            if p.settings.service_account_failure == crate::model::FailureMode::Deny {
                return Some(Self::refuse(
                    tier,
                    None,
                    RefusalCode::ServiceAccountFailed,
                    detail,
                    "fix the service account (trust policy, role ARN, keys), or set service_account_failure to \"fallback\"".into(),
                ));
            }
            self.warnings
                .push(format!("{detail}; falling back to the next tier"));
            self.skip(tier, SkipReason::ServiceAccountFailed, detail);
            return None;
        }
        // Loading guarantees the reference resolves; a missing entry is a bug upstream,
        // and the safe answer is to refuse rather than guess.
        let Some(sa) = p.service_accounts.get(sa_id) else {
            return Some(Self::refuse(
                tier,
                None,
                RefusalCode::ServiceAccountFailed,
                format!("service account \"{sa_id}\" of {holder} is not defined"),
                "add it to service_accounts".into(),
            ));
        };
        Some((tier, None, self.service_account_plan(sa)))
    }

    fn service_account_plan(&self, sa: &ServiceAccount) -> Plan {
        match &sa.identity {
            ServiceAccountIdentity::StaticKeys {
                access_key_id,
                secret_access_key,
            } => Plan::StaticKeys(StaticKeysPlan {
                service_account: sa.id.clone(),
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
            }),
            ServiceAccountIdentity::Role {
                role_arn,
                external_id,
                duration_seconds,
            } => Plan::AssumeRole(AssumeRolePlan {
                service_account: Some(sa.id.clone()),
                role_arn: role_arn.clone(),
                session_name: session_name(&self.ctx.user),
                duration_seconds: *duration_seconds,
                external_id: external_id.clone(),
                policy: None,
                policy_arns: Vec::new(),
                managed_policies: Vec::new(),
                placements: Vec::new(),
                source_identity: self.source_identity(),
                tags: self.session_tags(),
            }),
        }
    }

    fn source_identity(&self) -> Option<String> {
        self.platform
            .settings
            .sts_source_identity
            .then(|| session_name(&self.ctx.user))
    }

    fn session_tags(&self) -> Vec<(String, String)> {
        if !self.platform.settings.sts_session_tags {
            return Vec::new();
        }
        let ctx = self.ctx;
        let mut tags = vec![("syn:user".to_string(), ctx.user.clone())];
        if let Some(w) = &ctx.workspace
            && ctx.flow.uses_workspace_sa()
        {
            tags.push(("syn:workspace".into(), w.clone()));
        }
        if let Some(r) = &ctx.runtime_template {
            tags.push(("syn:runtime-template".into(), r.clone()));
        }
        tags.push(("syn:flow".into(), ctx.flow.as_str().into()));
        tags
    }

    fn session_policy_tier(&mut self) -> Outcome {
        let p = self.platform;
        let ctx = self.ctx;
        let s = &p.settings;
        if !s.session_policy_enabled {
            self.skip(
                Tier::SessionPolicy,
                SkipReason::Disabled,
                "syntasa_session_policy_enabled is \"false\"".into(),
            );
            return (Tier::Default, Some(DefaultReason::Disabled), Plan::Ambient);
        }
        let user = p.users.get(&ctx.user);
        if user.is_some_and(|u| u.system_admin) {
            self.skip(
                Tier::SessionPolicy,
                SkipReason::AdminBypass,
                format!("user \"{}\" is a System Admin", ctx.user),
            );
            return (
                Tier::Default,
                Some(DefaultReason::AdminBypass),
                Plan::Ambient,
            );
        }
        let Some(user) = user else {
            return Self::refuse(
                Tier::SessionPolicy,
                None,
                RefusalCode::UnknownUser,
                format!(
                    "user \"{}\" is not in {}, so their data planes are unknown",
                    ctx.user, p.source
                ),
                "add the user (and their data planes) to the platform file".into(),
            );
        };
        let Some(role_arn) = p.aws.session_policy_role_arn.clone() else {
            // Loading refuses this combination; refuse rather than widen if it happens.
            return Self::refuse(
                Tier::SessionPolicy,
                None,
                RefusalCode::CredentialsUnavailable,
                "session_policy_role_arn is not set".into(),
                "set aws.session_policy_role_arn".into(),
            );
        };

        let input = self.session_input(user);
        let layout = input.layout();
        if user.data_planes.is_empty() {
            self.warnings.push(format!(
                "user \"{}\" has no data planes; the session reaches only the platform folders",
                ctx.user
            ));
        }
        let over = match &layout {
            Err(detail) => Some(detail.clone()),
            Ok(_) => self
                .failure(Tier::SessionPolicy)
                .filter(|f| f.kind == FailureKind::PackedPolicyTooLarge)
                .map(|f| {
                    format!(
                        "STS refused the session policy as too large when packed: {}",
                        f.message
                    )
                }),
        };
        if let Some(detail) = over {
            if s.session_policy_over_limit == crate::model::FailureMode::Deny {
                self.skip(Tier::SessionPolicy, SkipReason::OverLimit, detail.clone());
                return Self::refuse(
                    Tier::Default,
                    Some(DefaultReason::OverLimit),
                    RefusalCode::OverLimit,
                    detail,
                    "assign the user fewer data planes or shorter prefixes, or set session_policy_over_limit to \"fallback\"".into(),
                );
            }
            self.warnings.push(format!(
                "{detail}; falling back to default cluster credentials"
            ));
            self.skip(Tier::SessionPolicy, SkipReason::OverLimit, detail);
            return (Tier::Default, Some(DefaultReason::OverLimit), Plan::Ambient);
        }
        let Ok(layout) = layout else {
            // Unreachable: an Err layout is over the limit and returned above. Refusing
            // is the answer that can never widen.
            return Self::refuse(
                Tier::SessionPolicy,
                None,
                RefusalCode::OverLimit,
                "the session policy could not be laid out".into(),
                "report this as a bug with the decision record".into(),
            );
        };
        if let Some(f) = self.failure(Tier::SessionPolicy) {
            // Falling back to default credentials here would widen the session.
            if f.kind == FailureKind::ManagedPolicyRejected {
                return Self::refuse(
                    Tier::SessionPolicy,
                    None,
                    RefusalCode::ManagedPolicyUnavailable,
                    format!(
                        "STS rejected a managed session policy of this launch: {}",
                        f.message
                    ),
                    format!(
                        "run provisioner policies sync --config {} (IAM must hold the {} managed session policies this launch passes)",
                        p.source,
                        layout.managed.len()
                    ),
                );
            }
            return Self::refuse(
                Tier::SessionPolicy,
                None,
                RefusalCode::CredentialsUnavailable,
                format!("session-policy credentials could not be obtained: {}", f.message),
                "check that the launcher's credentials may assume session_policy_role_arn and that STS is reachable".into(),
            );
        }
        (
            Tier::SessionPolicy,
            None,
            Plan::AssumeRole(AssumeRolePlan {
                service_account: None,
                role_arn,
                session_name: session_name(&ctx.user),
                duration_seconds: s.session_policy_duration,
                external_id: None,
                policy_arns: layout.policy_arns(),
                policy: Some(layout.inline),
                managed_policies: layout.managed,
                placements: layout.placements,
                source_identity: self.source_identity(),
                tags: self.session_tags(),
            }),
        )
    }

    /// What the user's session policies are built from; the per-user platform folders
    /// are filled in for this launch (a `{workspace}` folder without a workspace is left
    /// out, with a warning).
    fn session_input(&mut self, user: &crate::model::User) -> SessionInput {
        let p = self.platform;
        let mut user_folders = Vec::new();
        if let Some(bucket) = &p.aws.platform_bucket {
            for folder in &p.settings.session_policy_platform_folders {
                if !is_per_user_folder(folder) {
                    continue;
                }
                match self.platform_folder(folder) {
                    Some(prefix) => user_folders.push((
                        folder.clone(),
                        S3Location {
                            bucket: bucket.clone(),
                            prefix: format!("{prefix}/"),
                        },
                    )),
                    None => {
                        let why = if self.ctx.workspace.is_some() {
                            "the job flow does not scope by workspace"
                        } else {
                            "the launch has no workspace"
                        };
                        self.warnings.push(format!(
                            "platform folder \"{folder}\" names {{workspace}} but {why}; it is left out of the policy"
                        ));
                    }
                }
            }
        }
        SessionInput::new(p, user, user_folders)
    }

    fn platform_folder(&self, folder: &str) -> Option<String> {
        let ctx = self.ctx;
        let with_user = folder.replace("{user}", &ctx.user);
        if with_user.contains("{workspace}") {
            let ws = ctx
                .workspace
                .as_ref()
                .filter(|_| ctx.flow.uses_workspace_sa())?;
            return Some(with_user.replace("{workspace}", ws));
        }
        Some(with_user)
    }
}

/// A `RoleSessionName` for a user: 2-64 characters of `[\w+=,.@-]`. Other characters
/// become `-`; long names keep their start and gain a short hash so they stay distinct.
pub fn session_name(user: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut name: String = user
        .chars()
        .map(|c| if is_iam_name_char(c) { c } else { '-' })
        .collect();
    if name.chars().count() > 64 {
        let hash = hex::encode(Sha256::digest(user.as_bytes()));
        name = format!(
            "{}-{}",
            name.chars().take(55).collect::<String>(),
            &hash[..8]
        );
    }
    while name.len() < 2 {
        name.push('-');
    }
    name
}
