//! Obtaining credentials for a decision (ARCHITECTURE.md, "mint") and the fall-back loop
//! of the failure rules (README.md, "How an identity is chosen").
//!
//! [`obtain`] resolves, mints what the decision asks for (STS `AssumeRole`, or the
//! static keys a service account references), and when minting fails it records a
//! [`Failure`] and resolves again. Every fall-back and refusal is therefore decided by
//! the pure tables in [`crate::decision`]; this module only reports what went wrong.
//!
//! Time: one deadline (`sts_deadline_seconds`) covers the whole launch, every attempt
//! and every fall-back. The SDK's own retry strategy is switched off
//! (`RetryConfig::disabled()`) and this module retries by itself, because the SDK's
//! strategy does not know the launch deadline: it would start a backoff sleep that
//! ends after the deadline (an operation timeout would then cut it, reporting a bare
//! timeout instead of the last STS error, and leaving no time for the fall-back
//! tier), and it cannot give the failure rules the last error code. The SDK's
//! `TimeoutConfig` is used for the connect timeout; each attempt is bounded by
//! `tokio::time::timeout` at the smaller of [`StsOptions::attempt_timeout`] and the
//! time left.
//!
//! Client: when the launcher's base credentials are in the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`), no
//! profile file or profile setting could change anything, the STS client
//! configuration is built directly ([`direct_config`]) instead of through
//! `aws_config::load()`. That is equivalent: the default chain takes environment
//! credentials before anything else, and the region, retry, timeout and endpoint are
//! the ones given to the loader or read from the same variables. Every other case
//! runs the default chain. An `http://` endpoint gets an HTTP client without TLS,
//! which does not read the OS trust store; `https://` endpoints keep the SDK's
//! default client and its verification against the OS roots.
//!
//! This module must never put a secret (secret key, session token) in a message, a
//! warning or `Debug` output, never sleep past the deadline, never try a tier twice
//! in one launch, and never return credentials with a refused decision.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;
use aws_sdk_sts::operation::assume_role::builders::AssumeRoleFluentBuilder;
use aws_smithy_types::retry::ErrorKind;

mod classify;
mod client;
mod retry;
mod static_keys;
mod sts;

use classify::*;
pub use classify::{
    code_and_message, error_chain, is_duration_too_long, is_packed_policy_too_large,
    rejects_managed_policy,
};
use client::*;
use retry::*;
use static_keys::*;
use sts::*;

use crate::context::LaunchContext;
use crate::credentials::Credentials;
use crate::decision::{
    AssumeRolePlan, Decision, Failure, FailureKind, Plan, Refusal, RefusalCode, StaticKeysPlan,
    Tier, resolve,
};
use crate::exit;
use crate::model::{FailureMode, Platform, SecretRef};

/// The final decision of a launch and the credentials it obtained (None for the
/// default tier and for refusals).
#[derive(Debug)]
pub struct Minted {
    pub decision: Decision,
    pub credentials: Option<Credentials>,
    pub elapsed: Duration,
}

/// The duration STS is asked for again when a role refuses the configured one.
pub const FALLBACK_DURATION_SECONDS: u32 = 3600;

/// How STS is called. The deadline and the number of attempts come from the
/// platform settings (`sts_deadline_seconds`, `sts_max_attempts`); these are the
/// knobs that have no setting.
#[derive(Debug, Clone)]
pub struct StsOptions {
    /// Credentials to call STS with. `None` (the product's choice) takes them from the
    /// standard AWS chain; tests and embedders may pass them explicitly.
    pub base_credentials: Option<Credentials>,
    /// Upper bound of the first backoff; doubles per retry (full jitter).
    pub initial_backoff: Duration,
    /// Upper bound of any one backoff.
    pub max_backoff: Duration,
    /// TCP/TLS connect timeout per attempt.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt (also capped by the time left before the deadline).
    pub attempt_timeout: Duration,
}

impl Default for StsOptions {
    fn default() -> Self {
        StsOptions {
            base_credentials: None,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(4),
        }
    }
}

/// Resolves, mints, and falls back as the failure rules say, within the deadline.
/// Base credentials for STS come from the standard AWS chain; `env` is where static
/// keys referenced as environment variables are read from.
pub fn obtain(
    platform: &Platform,
    ctx: &LaunchContext,
    env: &dyn Fn(&str) -> Option<String>,
) -> Minted {
    obtain_with(platform, ctx, env, &StsOptions::default())
}

/// [`obtain`] with explicit STS options.
pub fn obtain_with(
    platform: &Platform,
    ctx: &LaunchContext,
    env: &dyn Fn(&str) -> Option<String>,
    options: &StsOptions,
) -> Minted {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(u64::from(platform.settings.sts_deadline_seconds));
    let mut sts = Sts {
        platform,
        options,
        launch_deadline: deadline,
        deadline,
        share: false,
        endpoint: endpoint_label(platform, env),
        plain_http: plain_http_endpoint(platform, env),
        connection: None,
    };
    let mut failures: Vec<Failure> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    loop {
        let mut decision = resolve(platform, ctx, &failures);
        let mints = matches!(decision.plan, Plan::AssumeRole(_) | Plan::StaticKeys(_));
        if mints && failures.iter().any(|f| f.tier == decision.tier) {
            // `resolve` never does this; if it ever did, looping would retry a failed
            // tier forever and anything else could widen the session.
            decision.plan = Plan::Refused(Refusal {
                code: RefusalCode::CredentialsUnavailable,
                message: format!(
                    "tier {} was chosen again after its credentials failed",
                    decision.tier
                ),
                fix: "report this as a bug with the decision record; the launch was refused rather than retried".into(),
                exit_code: exit::CREDENTIALS,
            });
            return finish(decision, None, notes, start);
        }
        let outcome = match &decision.plan {
            Plan::Refused(_) | Plan::Ambient => return finish(decision, None, notes, start),
            Plan::StaticKeys(keys) => read_static_keys(keys, env, &mut notes)
                .map(|c| (c, None))
                .map_err(|message| CallError {
                    code: None,
                    sts_message: None,
                    text: message,
                }),
            Plan::AssumeRole(plan) => {
                // A hung or failing service account must not use up the time the
                // fall-back tier needs, so it gets half of what is left.
                let falls_back =
                    matches!(decision.tier, Tier::WorkspaceSa | Tier::RuntimeTemplateSa)
                        && platform.settings.service_account_failure == FailureMode::Fallback;
                sts.limit_to_share(falls_back);
                sts.assume_role(plan, &mut notes)
            }
        };
        match outcome {
            Ok((credentials, shortened)) => {
                if let (Some(seconds), Plan::AssumeRole(plan)) = (shortened, &mut decision.plan) {
                    plan.duration_seconds = seconds;
                }
                return finish(decision, Some(credentials), notes, start);
            }
            Err(e) => {
                let arns = decision
                    .assume_role()
                    .map(|a| a.policy_arns.as_slice())
                    .unwrap_or_default();
                failures.push(Failure {
                    tier: decision.tier,
                    kind: failure_kind(decision.tier, &e, arns),
                    message: e.text,
                })
            }
        }
    }
}

fn finish(
    mut decision: Decision,
    credentials: Option<Credentials>,
    notes: Vec<String>,
    start: Instant,
) -> Minted {
    decision.warnings.extend(notes);
    let credentials = match decision.plan {
        Plan::AssumeRole(_) | Plan::StaticKeys(_) => credentials,
        Plan::Ambient | Plan::Refused(_) => None,
    };
    Minted {
        decision,
        credentials,
        elapsed: start.elapsed(),
    }
}

fn failure_kind(tier: Tier, e: &CallError, policy_arns: &[String]) -> FailureKind {
    match tier {
        Tier::WorkspaceSa | Tier::RuntimeTemplateSa => FailureKind::ServiceAccount,
        Tier::SessionPolicy | Tier::Default => {
            if e.code.as_deref().is_some_and(is_packed_policy_too_large) {
                FailureKind::PackedPolicyTooLarge
            } else if rejects_managed_policy(
                e.code.as_deref(),
                e.sts_message.as_deref(),
                policy_arns,
            ) {
                FailureKind::ManagedPolicyRejected
            } else {
                FailureKind::SessionPolicyCredentials
            }
        }
    }
}
