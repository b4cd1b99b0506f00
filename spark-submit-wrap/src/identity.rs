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
//!   them). Executors outside the driver's JVM get the `SYN_EXECUTOR_*` endpoint when
//!   `SYN_EXECUTOR_CREDENTIALS_URL` is set, else an application token the broker issues
//!   for the kernel's session; without either the job is refused (`local-cluster`
//!   aside, whose executors can use the loopback endpoint).
//!
//! * **broker** (no marker, a broker configured with `--wrap-broker SOCKET` or
//!   `SYN_BROKER_SOCKET`): the job flow decided by `provisioner serve` for the socket
//!   peer. No platform file, no base credentials, no STS here; the answer's record
//!   and credentials (or refusal) take the place of resolve's. With endpoint delivery
//!   the answer names the broker's endpoint and the session's token instead of keys:
//!   the token is written to a private file (`provisioner_core::container`) and the
//!   job gets the endpoint as in propagation ([`crate::endpoint`]). The launch accepts
//!   endpoint delivery, and asks for the broker's HTTPS executor endpoint when the
//!   job's executors run outside the driver's JVM ([`Executors`]); a broker without one
//!   (or configured for `environment` delivery) answers with keys.
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
use crate::inject::{Deploy, Manager};

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
const PLACEHOLDER_ENDPOINT_URI: &str =
    "http://127.0.0.1:<endpoint port>/v1/credentials/<session, given at launch>";
const PLACEHOLDER_TOKEN_FILE: &str = "<private token file, written at launch>";
const PLACEHOLDER_EXECUTOR_ORIGIN: &str = "https://<the broker's executor endpoint>";
const PLACEHOLDER_APPLICATION_TOKEN: &str = "<application token, obtained at launch>";

/// A dry run's endpoint: what the job would get, with placeholders for what only a
/// launch makes (the session, its token file, the application token).
fn placeholder_endpoint(remote: Option<endpoint::Remote>) -> Endpoint {
    Endpoint {
        uri: PLACEHOLDER_ENDPOINT_URI.into(),
        token_file: PLACEHOLDER_TOKEN_FILE.into(),
        remote,
    }
}

/// A dry run's broker executor endpoint: the broker's HTTPS origin when it said it, the
/// application token a placeholder, the truststore from the environment.
fn placeholder_remote(
    env: &dyn Fn(&str) -> Option<String>,
    origin: Option<&str>,
) -> Result<endpoint::Remote, WrapError> {
    let origin = origin.unwrap_or(PLACEHOLDER_EXECUTOR_ORIGIN);
    Ok(endpoint::Remote {
        uri: format!("{origin}/v1/credentials/<session, given at launch>"),
        token: PLACEHOLDER_APPLICATION_TOKEN.into(),
        truststore: endpoint::truststore_from_env(env).map_err(WrapError::Config)?,
    })
}

fn non_empty(env: &dyn Fn(&str) -> Option<String>, k: &str) -> Option<String> {
    env(k).filter(|v| !v.is_empty())
}

/// Where the job's executors run and how the broker is reached: what endpoint
/// delivery needs to know to give executors in other JVMs or on other hosts an
/// endpoint they can use.
#[derive(Debug, Clone, Copy)]
pub struct Executors<'a> {
    pub deploy: Deploy,
    /// `--wrap-broker SOCKET`, if given.
    pub broker_flag: Option<&'a std::path::Path>,
}

impl Executors<'_> {
    /// Executors in the driver's JVM (`local[...]`), no broker flag.
    pub const LOCAL: Executors<'static> = Executors {
        deploy: Deploy {
            manager: Manager::Local,
            cluster: false,
        },
        broker_flag: None,
    };

    /// Whether to ask the broker for its HTTPS executor endpoint: executors run outside
    /// the driver's JVM and `SYN_EXECUTOR_CREDENTIALS_URL` does not override it.
    fn want_broker_endpoint(&self, env: &dyn Fn(&str) -> Option<String>) -> bool {
        self.deploy.executors_elsewhere() && non_empty(env, endpoint::REMOTE_URL_VAR).is_none()
    }
}

/// Obtains the identity. `dry_run` skips STS and uses placeholders.
pub fn obtain(
    env: &dyn Fn(&str) -> Option<String>,
    config_flag: Option<&std::path::Path>,
    dry_run: bool,
) -> Result<Identity, WrapError> {
    obtain_for(env, config_flag, dry_run, Executors::LOCAL)
}

fn obtain_for(
    env: &dyn Fn(&str) -> Option<String>,
    config_flag: Option<&std::path::Path>,
    dry_run: bool,
    executors: Executors<'_>,
) -> Result<Identity, WrapError> {
    match non_empty(env, MARKER) {
        Some(marker) => propagate(env, config_flag, &marker, dry_run, executors),
        None => resolve_job(env, config_flag, dry_run),
    }
}

/// [`obtain`], or the broker when one is configured and the process is not already
/// provisioned (a provisioned kernel's credentials are propagated either way).
/// `executors` says where the job's executors will run ([`crate::plan::deploy_hint`]).
pub fn obtain_any(
    env: &dyn Fn(&str) -> Option<String>,
    config_flag: Option<&std::path::Path>,
    dry_run: bool,
    executors: Executors<'_>,
) -> Result<Identity, WrapError> {
    match (
        non_empty(env, MARKER),
        provisioner_core::broker::client::socket_from(executors.broker_flag, env),
    ) {
        (None, Some(socket)) => brokered(env, &socket, dry_run, executors),
        _ => obtain_for(env, config_flag, dry_run, executors),
    }
}

/// The broker's socket where the package installs it, used inside a provisioned kernel
/// when neither `--wrap-broker` nor `SYN_BROKER_SOCKET` names one.
pub const DEFAULT_BROKER_SOCKET: &str = "/run/provisioner/broker.sock";

/// Broker mode: the broker decides the job flow for the socket peer.
///
/// The launch accepts endpoint delivery. When the job's executors run outside the
/// driver's JVM and `SYN_EXECUTOR_CREDENTIALS_URL` is not set, it also asks for the
/// broker's HTTPS executor endpoint; a broker without one answers with keys
/// (`delivery: environment`), and the job then runs with keys as before.
fn brokered(
    env: &dyn Fn(&str) -> Option<String>,
    socket: &std::path::Path,
    dry_run: bool,
    executors: Executors<'_>,
) -> Result<Identity, WrapError> {
    use provisioner_core::broker::client;
    let want_executor_endpoint = executors.want_broker_endpoint(env);
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
        // The explain request says what the launch would accept, so that a broker that
        // would deliver through its endpoint can say so (`delivery` in its record).
        let mut request =
            client::request(provisioner_core::broker::protocol::Op::Explain, ctx.clone());
        request.accept_endpoint = true;
        request.executor_endpoint = want_executor_endpoint;
        let refused = |r: client::BrokerRefusal| WrapError::Refused {
            message: format!("refused ({}): {}", r.code, r.message),
            exit_code: r.exit_code,
        };
        let answer = match client::call(socket, &request) {
            Ok(a) if a.ok => a,
            // A refusal: `granted` turns it into the refusal it carries.
            Ok(a) => {
                return Err(match client::granted(a) {
                    Err(r) => refused(r),
                    Ok(_) => WrapError::Credentials(
                        "the broker's explain answer cannot be read; fix: use a spark-submit-wrap of the broker's release".into(),
                    ),
                });
            }
            Err(r) => return Err(refused(r)),
        };
        let Some(v) = answer.record else {
            return Err(WrapError::Credentials(
                "the broker's explain answer has no record; fix: use a spark-submit-wrap of the broker's release".into(),
            ));
        };
        // A broker that knows what a launch would deliver says so in the record; one
        // that does not is shown with the keys layout.
        let endpoint_delivery = v.get("delivery").and_then(|d| d.as_str()) == Some("endpoint");
        let executor_url = v
            .get("executor_endpoint_url")
            .and_then(|u| u.as_str())
            .map(str::to_string);
        let record = read_record(v)?;
        let decision = decision_of(&record, &ctx);
        let endpoint =
            if endpoint_delivery && record.refused.is_none() && record.tier != Tier::Default {
                let remote = if non_empty(env, endpoint::REMOTE_URL_VAR).is_some() {
                    remote(env, PLACEHOLDER_ENDPOINT_URI)?
                } else if want_executor_endpoint {
                    Some(placeholder_remote(env, executor_url.as_deref())?)
                } else {
                    None
                };
                Some(placeholder_endpoint(remote))
            } else {
                None
            };
        let scoped = if endpoint.is_some() {
            None
        } else {
            placeholder(&record, record.tier)
        };
        return Ok(Identity {
            mode: Mode::Broker,
            decision,
            record,
            credentials: None,
            scoped,
            endpoint,
            region: None,
            log: DecisionLog::Stderr,
        });
    }
    let options = client::LaunchOptions {
        accept_endpoint: true,
        executor_endpoint: want_executor_endpoint,
    };
    match client::launch_with(socket, ctx.clone(), options) {
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
                    // Executors elsewhere: SYN_EXECUTOR_* when set, else the broker's
                    // HTTPS endpoint and application token (properties file only).
                    let remote = match &g.executor_endpoint {
                        _ if non_empty(env, endpoint::REMOTE_URL_VAR).is_some() => {
                            remote(env, &grant.url)?
                        }
                        Some(x) => Some(
                            endpoint::remote_from_grant(x, env).map_err(WrapError::Credentials)?,
                        ),
                        None => None,
                    };
                    Some(Endpoint {
                        remote,
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
    dry_run: bool,
    executors: Executors<'_>,
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
    let mut endpoint_warnings = Vec::new();
    let endpoint = if marker.tier != Tier::Default && !has_keys {
        propagated_endpoint(env, dry_run, executors, &mut endpoint_warnings)?
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
    warnings.extend(endpoint_warnings);
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
///
/// Executors outside the driver's JVM get, in this order: the `SYN_EXECUTOR_*`
/// settings when `SYN_EXECUTOR_CREDENTIALS_URL` is set; else the broker's HTTPS
/// endpoint with an application token the broker issues for the kernel's session
/// ([`application_endpoint`]). Without either, `local-cluster` executors (same host,
/// same user) use the loopback endpoint and a warning says why; executors of any other
/// deployment would have nothing to authenticate with, and the job is refused.
fn propagated_endpoint(
    env: &dyn Fn(&str) -> Option<String>,
    dry_run: bool,
    executors: Executors<'_>,
    warnings: &mut Vec<String>,
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
    let remote = if !executors.want_broker_endpoint(env) {
        remote(env, &uri)?
    } else if dry_run {
        Some(placeholder_remote(env, None)?)
    } else {
        match application_endpoint(env, &token_file, executors.broker_flag) {
            Ok(r) => Some(r),
            Err(problem)
                if executors.deploy.manager == Manager::LocalCluster
                    && !executors.deploy.cluster =>
            {
                warnings.push(format!(
                    "local-cluster executors use the kernel's loopback endpoint (this host, this user): {problem}"
                ));
                None
            }
            Err(problem) => {
                return Err(refuse(format!(
                    "the executors of a {} deployment cannot use the kernel's loopback credentials endpoint and {problem}; fix: configure the broker's executor endpoint (README.md, \"Executors on other hosts\"), or set {} and {} to an HTTPS endpoint and its application token, or run with --master local[*]",
                    executors.deploy.describe(),
                    endpoint::REMOTE_URL_VAR,
                    endpoint::REMOTE_TOKEN_FILE_VAR
                )));
            }
        }
    };
    Ok(Some(Endpoint {
        uri,
        token_file,
        remote,
    }))
}

/// Inside a kernel in endpoint mode: asks the broker for an application token for the
/// kernel's session (the session token read from its file proves which session; the
/// broker checks that this process runs as the session's user). The broker's socket:
/// `--wrap-broker`, else `SYN_BROKER_SOCKET`, else [`DEFAULT_BROKER_SOCKET`] when it
/// exists. Returns the problem, in words, otherwise.
fn application_endpoint(
    env: &dyn Fn(&str) -> Option<String>,
    token_file: &std::path::Path,
    broker_flag: Option<&std::path::Path>,
) -> Result<endpoint::Remote, String> {
    use provisioner_core::broker::client;
    let socket = client::socket_from(broker_flag, env)
        .or_else(|| {
            let default = std::path::PathBuf::from(DEFAULT_BROKER_SOCKET);
            default.exists().then_some(default)
        })
        .ok_or_else(|| {
            format!(
                "no broker socket was found to ask for an application token (--wrap-broker, {}, {DEFAULT_BROKER_SOCKET})",
                provisioner_core::broker::protocol::SOCKET_ENV
            )
        })?;
    let token = std::fs::read_to_string(token_file)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            format!(
                "the session token in {} cannot be read",
                token_file.display()
            )
        })?;
    let grant = client::application_token(&socket, &token).map_err(|r| {
        format!(
            "the broker at {} gave no application token ({}: {})",
            socket.display(),
            r.code,
            r.message.split("; fix:").next().unwrap_or_default()
        )
    })?;
    endpoint::remote_from_grant(&grant, env)
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
    fn the_broker_is_asked_for_the_executor_endpoint_unless_executors_share_the_jvm_or_it_is_overridden()
     {
        let at = |master: &str, mode: Option<&str>| Executors {
            deploy: Deploy::from(Some(master), mode),
            broker_flag: None,
        };
        let none = |_: &str| None;
        let overridden =
            |k: &str| (k == endpoint::REMOTE_URL_VAR).then(|| "https://front:443".to_string());
        let empty = |k: &str| (k == endpoint::REMOTE_URL_VAR).then(String::new);
        for m in ["local", "local[2]", "local[*]", "local[4,2]"] {
            assert!(!at(m, None).want_broker_endpoint(&none), "{m}");
        }
        assert!(!Executors::LOCAL.want_broker_endpoint(&none));
        for m in [
            "local-cluster[2,1,1024]",
            "spark://m:7077",
            "yarn",
            "k8s://https://a:6443",
        ] {
            assert!(at(m, None).want_broker_endpoint(&none), "{m}");
            assert!(
                at(m, None).want_broker_endpoint(&empty),
                "{m}: an empty URL is unset"
            );
            // SYN_EXECUTOR_CREDENTIALS_URL wins: the broker is not asked.
            assert!(!at(m, None).want_broker_endpoint(&overridden), "{m}");
        }
        assert!(at("local[2]", Some("cluster")).want_broker_endpoint(&none));
    }

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
