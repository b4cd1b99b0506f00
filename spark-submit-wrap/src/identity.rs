//! Which identity the job runs as, and its credentials.
//!
//! Two modes:
//!
//! * **resolve** (no marker): the job flow (README.md, "How an identity is chosen"). Context from
//!   `SYN_USER` (else `KERNEL_USERNAME`, `JUPYTERHUB_USER`), `SYN_RUNTIME_TEMPLATE_ID`,
//!   `SYN_JOB_ID`; `SYN_WORKSPACE_ID` is recorded and ignored by the job flow (the
//!   decision's `skipped` list says so). The flow is always `job`, whatever `SYN_FLOW`
//!   says. Platform file: `--wrap-config PATH`, else `SYN_PLATFORM_CONFIG`, else
//!   `/etc/provisioner/platform.json`.
//! * **propagate** (`SYN_PROVISIONED` set, read with
//!   `provisioner_core::marker::Marker`): the wrapper runs inside a provisioned
//!   process (a kernel). It does not resolve again; it takes `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` from its environment and injects
//!   those. The platform file is optional here (it only supplies the decision log and
//!   region); a marker naming a tier with credentials but no keys in the environment is
//!   refused with the credentials exit code, never run with broader credentials.
//!   A kernel in endpoint mode has no keys but `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`: the wrapper passes that endpoint on
//!   ([`crate::endpoint`]) so that the job refreshes its credentials as the kernel does.
//!   Keys, when present, win (a kernel in endpoint mode has none: the launcher removed
//!   them).
//!
//! * **broker** (no marker, a broker configured with `--wrap-broker SOCKET` or
//!   `SYN_BROKER_SOCKET`): the job flow decided by `provisioner serve` for the socket
//!   peer. No platform file, no base credentials, no STS here; the answer's record
//!   and credentials (or refusal) take the place of resolve's. With endpoint delivery
//!   the answer names the broker's endpoint and the session's token instead of keys:
//!   the token is written to a private file (`provisioner_core::container`) and the
//!   job gets the endpoint as in propagation ([`crate::endpoint`]).
//!
//! A dry run (`--wrap-explain`) never calls STS: credential values are placeholders.
//!
//! Nothing here prints or records a secret.

use std::time::SystemTime;

use provisioner_core::context::{ContextFlags, Flow, LaunchContext};
use provisioner_core::credentials::{
    AWS_ACCESS_KEY_ID, AWS_CREDENTIAL_EXPIRATION, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
    Credentials, parse_rfc3339, rfc3339,
};
use provisioner_core::decision::{Decision, Plan, Refusal, RefusalCode, Tier, resolve};
use provisioner_core::marker::{MARKER, Marker};
use provisioner_core::mint;
use provisioner_core::model::DecisionLog;
use provisioner_core::record::DecisionRecord;
use provisioner_core::{exit, load};

use crate::endpoint::{self, Endpoint};
use crate::error::WrapError;

/// How the identity was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Resolve,
    Propagate,
    Broker,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Resolve => "resolve",
            Mode::Propagate => "propagate",
            Mode::Broker => "broker",
        }
    }
}

/// The outcome: the decision, its record, and what to inject.
#[derive(Debug)]
pub struct Identity {
    pub mode: Mode,
    pub decision: Decision,
    pub record: DecisionRecord,
    /// Present for tiers with credentials (None: default tier, or refused).
    pub credentials: Option<Credentials>,
    /// What to inject into the Spark configuration: the credentials, or placeholders in
    /// a dry run of a tier that would mint (None: nothing to inject, or an endpoint).
    pub scoped: Option<Credentials>,
    /// Endpoint delivery: the job fetches its credentials from this container-credentials
    /// endpoint (then `credentials` and `scoped` are None).
    pub endpoint: Option<Endpoint>,
    pub region: Option<String>,
    pub log: DecisionLog,
}

impl Identity {
    /// The refusal, if the job must not start.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.record.refused.as_ref()
    }
}

const PLACEHOLDER_KEY_ID: &str = "<access key id, obtained at launch>";
const PLACEHOLDER_SECRET: &str = "<secret access key, obtained at launch>";
const PLACEHOLDER_TOKEN: &str = "<session token, obtained at launch>";

fn non_empty(env: &dyn Fn(&str) -> Option<String>, k: &str) -> Option<String> {
    env(k).filter(|v| !v.is_empty())
}

/// Obtains the identity. `dry_run` skips STS and uses placeholders.
pub fn obtain(
    env: &dyn Fn(&str) -> Option<String>,
    config_flag: Option<&std::path::Path>,
    dry_run: bool,
) -> Result<Identity, WrapError> {
    match non_empty(env, MARKER) {
        Some(marker) => propagate(env, config_flag, &marker),
        None => resolve_job(env, config_flag, dry_run),
    }
}

/// [`obtain`], or the broker when one is configured and the process is not already
/// provisioned (a provisioned kernel's credentials are propagated either way).
pub fn obtain_any(
    env: &dyn Fn(&str) -> Option<String>,
    config_flag: Option<&std::path::Path>,
    broker_flag: Option<&std::path::Path>,
    dry_run: bool,
) -> Result<Identity, WrapError> {
    match (
        non_empty(env, MARKER),
        provisioner_core::broker::client::socket_from(broker_flag, env),
    ) {
        (None, Some(socket)) => brokered(env, &socket, dry_run),
        _ => obtain(env, config_flag, dry_run),
    }
}

/// Broker mode: the broker decides the job flow for the socket peer.
fn brokered(
    env: &dyn Fn(&str) -> Option<String>,
    socket: &std::path::Path,
    dry_run: bool,
) -> Result<Identity, WrapError> {
    use provisioner_core::broker::client;
    let flags = ContextFlags {
        flow: Some(Flow::Job),
        ..ContextFlags::default()
    };
    let ctx = client::context_from_sources(&flags, env, Flow::Job).map_err(WrapError::config)?;
    let read_record = |v: serde_json::Value| -> Result<DecisionRecord, WrapError> {
        serde_json::from_value(v).map_err(|e| {
            WrapError::Credentials(format!(
                "the broker's decision record cannot be read ({e}); fix: use a spark-submit-wrap of the broker's release"
            ))
        })
    };
    let placeholder = |record: &DecisionRecord, tier: Tier| {
        (tier != Tier::Default && record.refused.is_none()).then(|| Credentials {
            access_key_id: PLACEHOLDER_KEY_ID.into(),
            secret_access_key: PLACEHOLDER_SECRET.into(),
            session_token: (record.credentials == "assumed_role").then(|| PLACEHOLDER_TOKEN.into()),
            expiration: None,
        })
    };
    if dry_run {
        let record = match client::explain(socket, ctx.clone()) {
            Ok(v) => read_record(v)?,
            Err(r) => {
                return Err(WrapError::Refused {
                    message: format!("refused ({}): {}", r.code, r.message),
                    exit_code: r.exit_code,
                });
            }
        };
        let decision = decision_of(&record, &ctx);
        let scoped = placeholder(&record, record.tier);
        return Ok(Identity {
            mode: Mode::Broker,
            decision,
            record,
            credentials: None,
            scoped,
            endpoint: None,
            region: None,
            log: DecisionLog::Stderr,
        });
    }
    match client::launch(socket, ctx.clone()) {
        Ok(g) => {
            let record = read_record(g.record)?;
            let region = Some(g.region).filter(|r| !r.is_empty());
            let scoped = g.credentials.clone();
            // Endpoint delivery: the session's token goes into a file only this user
            // can read (written here, as the user, before exec), and the job gets its
            // path; the wrapper's process, and so spark-submit after exec, is the
            // session's process.
            let endpoint = match &g.endpoint {
                None => None,
                Some(grant) => {
                    let token_file = provisioner_core::container::write_token_file(
                        &grant.token,
                        &g.session_id,
                        env,
                    )
                    .map_err(|e| WrapError::Credentials(e.to_string()))?;
                    Some(Endpoint {
                        remote: remote(env, &grant.url)?,
                        uri: grant.url.clone(),
                        token_file,
                    })
                }
            };
            Ok(Identity {
                mode: Mode::Broker,
                decision: g.decision,
                record,
                credentials: g.credentials,
                scoped,
                endpoint,
                region,
                log: DecisionLog::Stderr,
            })
        }
        Err(r) => match r.record {
            // A decision that refuses: the usual refusal path writes the record.
            Some(v) => {
                let mut record = read_record(*v)?;
                if record.refused.is_none() {
                    record.refused = Some(Refusal {
                        code: RefusalCode::CredentialsUnavailable,
                        message: r.message.clone(),
                        fix: r.fix.clone(),
                        exit_code: r.exit_code,
                    });
                }
                Ok(Identity {
                    mode: Mode::Broker,
                    decision: decision_of(&record, &ctx),
                    record,
                    credentials: None,
                    scoped: None,
                    endpoint: None,
                    region: None,
                    log: DecisionLog::Stderr,
                })
            }
            None => Err(WrapError::Refused {
                message: format!("refused ({}): {}", r.code, r.message),
                exit_code: r.exit_code,
            }),
        },
    }
}

/// The decision as far as the child's environment needs it, from a broker's record.
fn decision_of(
    record: &DecisionRecord,
    ctx: &provisioner_core::broker::protocol::WireContext,
) -> Decision {
    Decision {
        context: LaunchContext {
            flow: Flow::Job,
            user: record.user.clone(),
            workspace: ctx.workspace.clone(),
            runtime_template: ctx.runtime_template.clone(),
            job_id: ctx.job_id.clone(),
        },
        tier: record.tier,
        reason: record.reason,
        skipped: record.skipped.clone(),
        warnings: record.warnings.clone(),
        plan: Plan::Ambient,
    }
}

/// Where the job flow reads the user from, in order.
const USER_VARS: [&str; 3] = ["SYN_USER", "KERNEL_USERNAME", "JUPYTERHUB_USER"];

/// Loads the platform file. The loader's fixes name `provisioner`'s `--config`; the
/// wrapper's own flag is `--wrap-config`.
fn load_platform(
    path: &std::path::Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<provisioner_core::model::Platform, WrapError> {
    load::load_file(path, env).map_err(|mut e| {
        e.fix = e.fix.replace("--config PATH", "--wrap-config PATH");
        WrapError::Config(e.to_string())
    })
}

fn resolve_job(
    env: &dyn Fn(&str) -> Option<String>,
    config_flag: Option<&std::path::Path>,
    dry_run: bool,
) -> Result<Identity, WrapError> {
    let path = load::config_path(config_flag, env);
    let platform = load_platform(&path, env)?;
    // The library's message offers `--user`, which the wrapper does not have.
    if USER_VARS.iter().all(|v| non_empty(env, v).is_none()) {
        return Err(WrapError::Config(
            "no user given; set SYN_USER in the job's environment (KERNEL_USERNAME and JUPYTERHUB_USER are read too)".into(),
        ));
    }
    let flags = ContextFlags {
        flow: Some(Flow::Job),
        ..ContextFlags::default()
    };
    let ctx = LaunchContext::from_sources(&flags, env, Flow::Job).map_err(WrapError::config)?;
    let region = Some(platform.aws.region.clone()).filter(|r| !r.is_empty());
    let (decision, credentials, elapsed_ms) = if dry_run {
        (resolve(&platform, &ctx, &[]), None, None)
    } else {
        let minted = mint::obtain(&platform, &ctx, env);
        let ms = u64::try_from(minted.elapsed.as_millis()).unwrap_or(u64::MAX);
        (minted.decision, minted.credentials, Some(ms))
    };
    let mut record = DecisionRecord::new(&decision);
    record.elapsed_ms = elapsed_ms;
    let needs_credentials = matches!(decision.plan, Plan::AssumeRole(_) | Plan::StaticKeys(_));
    let scoped = match (&credentials, needs_credentials, dry_run) {
        (Some(c), _, _) => {
            record.expiration = c.expiration_rfc3339();
            Some(c.clone())
        }
        (None, true, true) => Some(Credentials {
            access_key_id: PLACEHOLDER_KEY_ID.into(),
            secret_access_key: PLACEHOLDER_SECRET.into(),
            session_token: matches!(decision.plan, Plan::AssumeRole(_))
                .then(|| PLACEHOLDER_TOKEN.into()),
            expiration: None,
        }),
        (None, true, false) => {
            // The decided identity has no credentials: never fall back to the
            // broader ambient ones.
            record.refused = Some(Refusal {
                code: RefusalCode::CredentialsUnavailable,
                message: format!(
                    "credentials for the {} tier could not be obtained",
                    decision.tier
                ),
                fix: "check the platform's STS settings and the service account; `provisioner explain --flow job` shows the decision".into(),
                exit_code: exit::CREDENTIALS,
            });
            None
        }
        (None, false, _) => None,
    };
    Ok(Identity {
        mode: Mode::Resolve,
        record,
        credentials,
        scoped,
        endpoint: None,
        region,
        log: platform.settings.decision_log.clone(),
        decision,
    })
}

fn propagate(
    env: &dyn Fn(&str) -> Option<String>,
    config_flag: Option<&std::path::Path>,
    marker_text: &str,
) -> Result<Identity, WrapError> {
    let marker = Marker::parse(marker_text).map_err(WrapError::config)?;
    // The platform file only supplies the decision log and the region here; a kernel
    // image without it can still submit jobs. An explicit --wrap-config must load.
    let path = load::config_path(config_flag, env);
    let platform = if config_flag.is_some() || path.exists() {
        Some(load_platform(&path, env)?)
    } else {
        None
    };
    let ctx = LaunchContext {
        flow: Flow::Job,
        user: marker.user.clone(),
        workspace: non_empty(env, "SYN_WORKSPACE_ID"),
        runtime_template: non_empty(env, "SYN_RUNTIME_TEMPLATE_ID"),
        job_id: non_empty(env, "SYN_JOB_ID"),
    };
    let region = non_empty(env, "AWS_REGION")
        .or_else(|| non_empty(env, "AWS_DEFAULT_REGION"))
        .or_else(|| platform.as_ref().map(|p| p.aws.region.clone()))
        .filter(|r| !r.is_empty());
    // The marker's expiry is the launcher's; AWS_CREDENTIAL_EXPIRATION (written by
    // the same launcher) only stands in for a marker without one.
    let expires_at = marker
        .expiration
        .or_else(|| non_empty(env, AWS_CREDENTIAL_EXPIRATION).and_then(|v| parse_rfc3339(&v)));
    let expiration = expires_at.and_then(rfc3339);
    // Keys win; without them, a kernel in endpoint mode hands on its endpoint.
    let has_keys = non_empty(env, AWS_ACCESS_KEY_ID).is_some()
        && non_empty(env, AWS_SECRET_ACCESS_KEY).is_some();
    let endpoint = if marker.tier != Tier::Default && !has_keys {
        propagated_endpoint(env)?
    } else {
        None
    };
    let mut warnings = vec![match &endpoint {
        None => format!(
            "propagated the credentials of a provisioned process ({MARKER}: tier {}, user {}); the identity was not resolved again",
            marker.tier, marker.user
        ),
        Some(e) => format!(
            "propagated the credentials endpoint of a provisioned process ({MARKER}: tier {}, user {}): driver and executors fetch and refresh their credentials from {}; the identity was not resolved again",
            marker.tier, marker.user, e.uri
        ),
    }];
    if let Some(syn_user) = non_empty(env, "SYN_USER")
        && marker.user != syn_user
    {
        warnings.push(format!(
                "SYN_USER={syn_user} differs from the user of the provisioned process; the job runs with that process's credentials"
            ));
    }
    if endpoint.is_none() && expires_at.is_some_and(|t| t <= SystemTime::now()) {
        warnings.push(format!(
            "the propagated credentials expired at {}; restart the kernel to obtain new ones",
            expiration.as_deref().unwrap_or_default()
        ));
    }
    let decision = Decision {
        context: ctx,
        tier: marker.tier,
        reason: None,
        skipped: Vec::new(),
        warnings,
        plan: Plan::Ambient,
    };
    let mut record = DecisionRecord::new(&decision);
    let mut credentials = None;
    if endpoint.is_some() {
        record.credentials = "propagated";
        record.delivery = Some("endpoint".into());
    } else if marker.tier != Tier::Default {
        match (
            non_empty(env, AWS_ACCESS_KEY_ID),
            non_empty(env, AWS_SECRET_ACCESS_KEY),
        ) {
            (Some(id), Some(secret)) => {
                credentials = Some(Credentials {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: non_empty(env, AWS_SESSION_TOKEN),
                    expiration: expires_at,
                });
                record.credentials = "propagated";
            }
            _ => {
                record.refused = Some(Refusal {
                    code: RefusalCode::CredentialsUnavailable,
                    message: format!(
                        "{MARKER} names tier {} but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set, nor {}",
                        marker.tier,
                        endpoint::FULL_URI
                    ),
                    fix: "do not unset the AWS_* variables of a provisioned kernel; restart the kernel to restore them".into(),
                    exit_code: exit::CREDENTIALS,
                });
            }
        }
    }
    // Credentials fetched from an endpoint are renewed: there is no one expiry to record.
    record.expiration = if endpoint.is_some() { None } else { expiration };
    let scoped = credentials.clone();
    Ok(Identity {
        mode: Mode::Propagate,
        record,
        credentials,
        scoped,
        endpoint,
        region,
        log: platform
            .as_ref()
            .map(|p| p.settings.decision_log.clone())
            .unwrap_or(DecisionLog::Stderr),
        decision,
    })
}

/// The endpoint of a provisioned kernel in endpoint mode, when its environment names
/// one; an error for one that cannot work (never a fall-back to other credentials).
fn propagated_endpoint(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Endpoint>, WrapError> {
    let Some(uri) = non_empty(env, endpoint::FULL_URI) else {
        return Ok(None);
    };
    let refuse = WrapError::Credentials;
    provisioner_core::container::check_endpoint_url(&uri).map_err(|p| {
        refuse(format!(
            "{} is unusable: {}; fix: restart the kernel so that the launcher sets it again",
            endpoint::FULL_URI,
            p.problem
        ))
    })?;
    let Some(token_file) = non_empty(env, endpoint::TOKEN_FILE) else {
        return Err(refuse(format!(
            "{} is set but {} is not; fix: restart the kernel so that the launcher writes the token file again",
            endpoint::FULL_URI,
            endpoint::TOKEN_FILE
        )));
    };
    let token_file = std::path::PathBuf::from(token_file);
    if !token_file.is_file() {
        return Err(refuse(format!(
            "{} names {}, which is not a readable file; fix: restart the kernel so that the launcher writes the token file again",
            endpoint::TOKEN_FILE,
            token_file.display()
        )));
    }
    let remote = remote(env, &uri)?;
    Ok(Some(Endpoint {
        uri,
        token_file,
        remote,
    }))
}

/// The endpoint for executors elsewhere, when configured ([`endpoint::remote_from_env`]).
fn remote(
    env: &dyn Fn(&str) -> Option<String>,
    local_uri: &str,
) -> Result<Option<endpoint::Remote>, WrapError> {
    endpoint::remote_from_env(env, local_uri).map_err(WrapError::Config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_user_and_platform_messages_name_the_wrappers_own_means() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let env = |_: &str| None;
        let e = obtain(&env, Some(&missing), true).unwrap_err();
        let message = e.to_string();
        assert_eq!(e.exit_code(), exit::CONFIG);
        assert!(message.contains("--wrap-config PATH"), "{}", message);
        assert!(!message.contains("pass --config"), "{}", message);

        let config = dir.path().join("platform.json");
        std::fs::write(&config, r#"{"aws": {"region": "us-east-1"}}"#).unwrap();
        let e = obtain(&env, Some(&config), true).unwrap_err();
        let message = e.to_string();
        assert_eq!(e.exit_code(), exit::CONFIG);
        assert!(message.contains("set SYN_USER"), "{}", message);
        assert!(!message.contains("--user"), "{}", message);
    }
}
