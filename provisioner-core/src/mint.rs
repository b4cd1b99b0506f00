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

/// Static-key files larger than this are refused.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Error codes that mean "slow down" (retried with backoff).
const THROTTLING_CODES: &[&str] = &["Throttling", "ThrottlingException", "RequestLimitExceeded"];

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
            Err(e) => failures.push(Failure {
                tier: decision.tier,
                kind: failure_kind(decision.tier, &e),
                message: e.text,
            }),
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

fn failure_kind(tier: Tier, e: &CallError) -> FailureKind {
    match tier {
        Tier::WorkspaceSa | Tier::RuntimeTemplateSa => FailureKind::ServiceAccount,
        Tier::SessionPolicy | Tier::Default => {
            if e.code.as_deref().is_some_and(is_packed_policy_too_large) {
                FailureKind::PackedPolicyTooLarge
            } else {
                FailureKind::SessionPolicyCredentials
            }
        }
    }
}

/// STS's wire code is `PackedPolicyTooLarge`; some SDKs report it with an
/// `Exception` suffix.
pub fn is_packed_policy_too_large(code: &str) -> bool {
    code == "PackedPolicyTooLarge" || code == "PackedPolicyTooLargeException"
}

/// True for the two `ValidationError`s that a shorter session cures: the role's
/// MaxSessionDuration and the 1-hour cap of role chaining.
pub fn is_duration_too_long(code: &str, message: &str) -> bool {
    code == "ValidationError" && message.contains("DurationSeconds exceeds")
}

/// Why one STS call (or reading static keys) failed. `text` is what people read; it
/// never holds a secret.
#[derive(Debug, Clone)]
struct CallError {
    code: Option<String>,
    sts_message: Option<String>,
    text: String,
}

/// One STS error, before deciding whether to retry it.
struct Attempt {
    retryable: bool,
    code: Option<String>,
    sts_message: Option<String>,
    text: String,
}

/// The endpoint named in messages: the platform's, else the one the SDK takes from
/// the environment, else the regional one.
fn endpoint_label(platform: &Platform, env: &dyn Fn(&str) -> Option<String>) -> String {
    let from_env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let url = platform
        .aws
        .sts_endpoint
        .clone()
        .or_else(|| from_env("AWS_ENDPOINT_URL_STS"))
        .or_else(|| from_env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| {
            let region = &platform.aws.region;
            let suffix = if region.starts_with("cn-") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            format!("https://sts.{region}.{suffix}")
        });
    without_userinfo(&url)
}

/// `scheme://user:password@host/…` → `scheme://host/…`: messages never carry a
/// password, wherever the URL came from.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// A lazily built STS client on a current-thread runtime, plus the launch deadline.
struct Sts<'a> {
    platform: &'a Platform,
    options: &'a StsOptions,
    /// The end of the whole launch.
    launch_deadline: Instant,
    /// The end of the current tier's calls: the launch deadline, or half of what is
    /// left of it for a service account that may still fall back.
    deadline: Instant,
    /// True while `deadline` is a service account's share.
    share: bool,
    endpoint: String,
    /// The endpoint is `http://`: the STS client is built without TLS.
    plain_http: bool,
    connection: Option<(tokio::runtime::Runtime, aws_sdk_sts::Client)>,
}

impl Sts<'_> {
    fn deadline_seconds(&self) -> u32 {
        self.platform.settings.sts_deadline_seconds
    }

    /// Sets the current tier's time limit (see [`Sts::deadline`]).
    fn limit_to_share(&mut self, half: bool) {
        let now = Instant::now();
        let left = self.launch_deadline.saturating_duration_since(now);
        self.share = half;
        self.deadline = if half {
            now + left / 2
        } else {
            self.launch_deadline
        };
    }

    /// The time limit in words, for messages.
    fn budget(&self) -> String {
        let s = self.deadline_seconds();
        if self.share {
            format!(
                "its share of the {s} s deadline (sts_deadline_seconds; the rest is kept for the fall-back tier)"
            )
        } else {
            format!("the {s} s deadline (sts_deadline_seconds)")
        }
    }

    fn connect(&mut self) -> Result<(), CallError> {
        if self.connection.is_some() {
            return Ok(());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CallError {
                code: None,
                sts_message: None,
                text: format!("cannot start the runtime for STS calls: {e}"),
            })?;
        // Loading reads profile files only (the region is given), but it is bounded
        // by the deadline like everything else.
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let client = rt
            .block_on(async {
                tokio::time::timeout(
                    remaining,
                    build_client(self.platform, self.options, self.plain_http),
                )
                .await
            })
            .map_err(|_| CallError {
                code: None,
                sts_message: None,
                text: format!(
                    "the AWS configuration did not load within the {} s deadline (sts_deadline_seconds)",
                    self.deadline_seconds()
                ),
            })?;
        self.connection = Some((rt, client));
        Ok(())
    }

    /// AssumeRole for `plan`; on a too-long duration, once more at 3600 s. Returns
    /// the credentials and the shortened duration, if any.
    fn assume_role(
        &mut self,
        plan: &AssumeRolePlan,
        notes: &mut Vec<String>,
    ) -> Result<(Credentials, Option<u32>), CallError> {
        // An unusable answer is named like every other failure of this call.
        let endpoint = self.endpoint.clone();
        let named = |e: CallError| CallError {
            text: format!(
                "AssumeRole of {} at {endpoint} failed: {}",
                plan.role_arn, e.text
            ),
            ..e
        };
        match self.call(plan, plan.duration_seconds) {
            Ok(out) => Ok((credentials_of(&out).map_err(named)?, None)),
            Err(e)
                if plan.duration_seconds > FALLBACK_DURATION_SECONDS
                    && e.code.as_deref().is_some_and(|c| {
                        is_duration_too_long(c, e.sts_message.as_deref().unwrap_or_default())
                    }) =>
            {
                let out = self
                    .call(plan, FALLBACK_DURATION_SECONDS)
                    .map_err(|again| CallError {
                        text: format!(
                            "{}; retried at {FALLBACK_DURATION_SECONDS} s: {}",
                            e.text, again.text
                        ),
                        ..again
                    })?;
                let credentials = credentials_of(&out).map_err(named)?;
                notes.push(duration_warning(
                    plan,
                    e.sts_message.as_deref().unwrap_or_default(),
                ));
                Ok((credentials, Some(FALLBACK_DURATION_SECONDS)))
            }
            Err(e) => Err(e),
        }
    }

    /// One AssumeRole call with retries, within the deadline.
    fn call(
        &mut self,
        plan: &AssumeRolePlan,
        duration: u32,
    ) -> Result<AssumeRoleOutput, CallError> {
        if Instant::now() >= self.deadline {
            return Err(CallError {
                code: None,
                sts_message: None,
                text: format!(
                    "AssumeRole of {} was not tried: {} had already passed",
                    plan.role_arn,
                    self.budget()
                ),
            });
        }
        self.connect()?;
        let request = self.request(plan, duration)?;
        let Some((rt, _)) = &self.connection else {
            return Err(CallError {
                code: None,
                sts_message: None,
                text: "the STS client is not available".into(),
            });
        };
        rt.block_on(self.call_with_retries(request, plan))
    }

    fn request(
        &self,
        plan: &AssumeRolePlan,
        duration: u32,
    ) -> Result<AssumeRoleFluentBuilder, CallError> {
        let Some((_, client)) = &self.connection else {
            return Err(CallError {
                code: None,
                sts_message: None,
                text: "the STS client is not available".into(),
            });
        };
        let mut request = client
            .assume_role()
            .role_arn(plan.role_arn.as_str())
            .role_session_name(&plan.session_name)
            .duration_seconds(i32::try_from(duration).unwrap_or(i32::MAX))
            .set_external_id(plan.external_id.clone())
            .set_policy(plan.policy.as_ref().map(|p| p.json().to_string()))
            .set_source_identity(plan.source_identity.clone());
        for (key, value) in &plan.tags {
            let tag = aws_sdk_sts::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| CallError {
                    code: None,
                    sts_message: None,
                    text: format!("session tag \"{key}\" cannot be sent: {e}"),
                })?;
            request = request.tags(tag);
        }
        Ok(request)
    }

    async fn call_with_retries(
        &self,
        request: AssumeRoleFluentBuilder,
        plan: &AssumeRolePlan,
    ) -> Result<AssumeRoleOutput, CallError> {
        let max_attempts = self.platform.settings.sts_max_attempts.max(1);
        let what = format!("AssumeRole of {} at {}", plan.role_arn, self.endpoint);
        let mut attempt: u32 = 0;
        let mut last: Option<String> = None;
        loop {
            attempt += 1;
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.deadline_error(&what, attempt - 1, last));
            }
            let limit = remaining.min(self.options.attempt_timeout);
            let cut_by_deadline = limit >= remaining;
            let failed = match tokio::time::timeout(limit, request.clone().send()).await {
                Ok(Ok(out)) => return Ok(out),
                Ok(Err(e)) => classify(&e),
                Err(_) if cut_by_deadline => {
                    let last = Some(format!(
                        "no answer within the {:.1} s left",
                        limit.as_secs_f64()
                    ));
                    return Err(self.deadline_error(&what, attempt, last));
                }
                Err(_) => Attempt {
                    retryable: true,
                    code: None,
                    sts_message: None,
                    text: format!("no answer within {:.1} s", limit.as_secs_f64()),
                },
            };
            let give_up = if !failed.retryable {
                Some(String::new())
            } else if attempt >= max_attempts {
                Some(format!(
                    " (gave up after {attempt} attempts; sts_max_attempts is {max_attempts})"
                ))
            } else {
                let pause = backoff(
                    self.options.initial_backoff,
                    self.options.max_backoff,
                    attempt,
                );
                if Instant::now() + pause >= self.deadline {
                    Some(format!(
                        " (gave up after {attempt} attempts: the next retry would pass {})",
                        self.budget()
                    ))
                } else {
                    tokio::time::sleep(pause).await;
                    None
                }
            };
            if let Some(suffix) = give_up {
                return Err(CallError {
                    code: failed.code,
                    sts_message: failed.sts_message,
                    text: format!("{what} failed: {}{suffix}", failed.text),
                });
            }
            last = Some(failed.text);
        }
    }

    fn deadline_error(&self, what: &str, attempts: u32, last: Option<String>) -> CallError {
        let last = last
            .map(|l| format!("; last error: {l}"))
            .unwrap_or_default();
        CallError {
            code: None,
            sts_message: None,
            text: format!(
                "{what} did not succeed within {} after {attempts} attempt(s){last}",
                self.budget()
            ),
        }
    }
}

async fn build_client(
    platform: &Platform,
    options: &StsOptions,
    plain_http: bool,
) -> aws_sdk_sts::Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    if let Some(conf) = direct_config(platform, options, plain_http) {
        return aws_sdk_sts::Client::from_conf(conf);
    }
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(platform.aws.region.clone()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(options.connect_timeout)
                .build(),
        );
    if let Some(c) = &options.base_credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            c.expiration,
            "explicit",
        ));
    }
    let sdk = loader.load().await;
    let mut conf = aws_sdk_sts::config::Builder::from(&sdk);
    if let Some(endpoint) = &platform.aws.sts_endpoint {
        conf = conf.endpoint_url(endpoint);
    }
    if plain_http {
        // Only the STS client gets it: credential providers of the chain (SSO, web
        // identity) keep the default HTTPS client.
        conf = conf.http_client(plain_http_client());
    }
    aws_sdk_sts::Client::from_conf(conf.build())
}

/// The STS client configuration built without `aws_config::load()`, when loading
/// would give the same: base credentials in `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), which the default chain takes
/// first; no profile file that could add settings (the config and credentials files
/// are missing or empty); no `AWS_PROFILE`, `AWS_USE_FIPS_ENDPOINT` or
/// `AWS_USE_DUALSTACK_ENDPOINT`. The region, retry and timeout settings are the ones
/// the loader is given anyway, and the endpoint is the one the SDK would take
/// ([`configured_endpoint`]). In every other case (including explicit
/// [`StsOptions::base_credentials`], handled by the loader) it returns None and the
/// default chain runs. Skipping the loader also skips building the chain's web
/// identity STS client, which loads the OS trust store.
fn direct_config(
    platform: &Platform,
    options: &StsOptions,
    plain_http: bool,
) -> Option<aws_sdk_sts::Config> {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    if options.base_credentials.is_some() {
        return None;
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let key = env("AWS_ACCESS_KEY_ID")?;
    let secret = env("AWS_SECRET_ACCESS_KEY")?;
    if [
        "AWS_PROFILE",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_USE_DUALSTACK_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some())
    {
        return None;
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(default)))
    };
    for path in [
        file("AWS_CONFIG_FILE", ".aws/config"),
        file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
    ] {
        // No HOME: the default files are unknown, so the loader decides.
        let path = path?;
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > 0 => return None,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
    }
    let credentials = aws_credential_types::Credentials::new(
        key,
        secret,
        env("AWS_SESSION_TOKEN"),
        None,
        "Environment",
    );
    let mut conf = aws_sdk_sts::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(platform.aws.region.clone()))
        .credentials_provider(credentials)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(options.connect_timeout)
                .build(),
        );
    if let Some(endpoint) = configured_endpoint(platform, &|name| std::env::var(name).ok()) {
        conf = conf.endpoint_url(endpoint);
    }
    if plain_http {
        conf = conf.http_client(plain_http_client());
    }
    Some(conf.build())
}

/// The SDK's default HTTP client without its TLS half, for `http://` endpoints.
///
/// The default client builds a rustls connector with the OS trust store on first use,
/// which reads and parses every certificate of the store (milliseconds per launch),
/// although a plain-http endpoint never needs one. This client is the same hyper
/// client, with the same connect timeout, sleep and proxy settings (`HTTP_PROXY`,
/// `NO_PROXY`, as the default client reads them), but no TLS: hyper's connector
/// refuses any `https://` URL it is given ("invalid URL, scheme is not http"), so a
/// wrong guess about the endpoint fails the call and never weakens what is verified.
fn plain_http_client() -> aws_sdk_sts::config::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut conn = ConnectorBuilder::default();
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build_http()
    })
}

/// True when the STS endpoint is `http://`: the platform's `aws.sts_endpoint`, else
/// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, as the SDK takes them (it ignores
/// the environment's when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true). The
/// regional endpoint is https.
fn plain_http_endpoint(platform: &Platform, env: &dyn Fn(&str) -> Option<String>) -> bool {
    configured_endpoint(platform, env).is_some_and(|u| {
        u.trim()
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
    })
}

/// The endpoint URL configured for STS, if any: the platform's, else the
/// environment's as the SDK reads it.
fn configured_endpoint(
    platform: &Platform,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let from_env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let ignore_env = from_env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    platform.aws.sts_endpoint.clone().or_else(|| {
        if ignore_env {
            None
        } else {
            from_env("AWS_ENDPOINT_URL_STS").or_else(|| from_env("AWS_ENDPOINT_URL"))
        }
    })
}

/// Sorts an SDK error into retryable or not, with a sentence naming the cause.
fn classify<E>(e: &SdkError<E>) -> Attempt
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let body = se.raw().body().bytes().unwrap_or_default();
            let body = String::from_utf8_lossy(body);
            // STS-compatible servers do not all use STS's error shape (moto nests
            // `Errors/Error`); the SDK then finds no code, so read it from the body.
            let code = se
                .err()
                .code()
                .map(str::to_string)
                .or_else(|| xml_element(&body, "Code"));
            let message = se
                .err()
                .message()
                .map(str::to_string)
                .or_else(|| xml_element(&body, "Message"));
            let throttled = code
                .as_deref()
                .is_some_and(|c| THROTTLING_CODES.contains(&c));
            Attempt {
                retryable: throttled || status >= 500 || status == 429,
                text: format!(
                    "{}: {} (HTTP {status})",
                    code.as_deref().unwrap_or("error without a code"),
                    message.as_deref().unwrap_or("no message"),
                ),
                code,
                sts_message: message,
            }
        }
        SdkError::DispatchFailure(_) if credentials_error(e).is_some() => Attempt {
            // The chain has its own timeouts and retries; asking it again at once
            // finds the same nothing.
            retryable: false,
            code: None,
            sts_message: None,
            text: format!(
                "the launcher has no usable AWS credentials to call STS with (standard chain: environment, profile files, web identity, container, instance metadata): {}",
                credentials_error(e)
                    .map(|c| error_chain(c))
                    .unwrap_or_default()
            ),
        },
        SdkError::DispatchFailure(df) => Attempt {
            retryable: df.is_io()
                || df.is_timeout()
                || matches!(
                    df.as_other(),
                    Some(
                        ErrorKind::TransientError
                            | ErrorKind::ThrottlingError
                            | ErrorKind::ServerError
                    )
                ),
            code: None,
            sts_message: None,
            text: format!("cannot reach STS: {}", error_chain(e)),
        },
        SdkError::TimeoutError(_) => Attempt {
            retryable: true,
            code: None,
            sts_message: None,
            text: format!("STS timed out: {}", error_chain(e)),
        },
        SdkError::ResponseError(re) => {
            let status = re.raw().status().as_u16();
            Attempt {
                retryable: status >= 500 || status == 429,
                code: None,
                sts_message: None,
                text: format!(
                    "unreadable answer from STS (HTTP {status}): {}",
                    error_chain(e)
                ),
            }
        }
        _ => Attempt {
            retryable: false,
            code: None,
            sts_message: None,
            text: error_chain(e),
        },
    }
}

/// The unescaped text of the first `<tag>` element in `xml`, if it has any.
fn xml_element(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let text = xml[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The credential-chain error behind an SDK error, if that is what it is.
fn credentials_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a CredentialsError> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<CredentialsError>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// An error and its sources as one line ("a: b: c"), without the Debug dump that
/// `DisplayErrorContext` appends. Levels that repeat the previous one are skipped.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Full-jitter exponential backoff: uniform in [0, min(max, initial * 2^(attempt-1))).
fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    initial
        .saturating_mul(factor)
        .min(max)
        .mul_f64(random_fraction())
}

/// Full jitter in [0, 1): fastrand, which the AWS SDK already brings in.
fn random_fraction() -> f64 {
    fastrand::f64()
}

fn credentials_of(out: &AssumeRoleOutput) -> Result<Credentials, CallError> {
    let Some(c) = out.credentials() else {
        return Err(CallError {
            code: None,
            sts_message: None,
            text: "STS answered AssumeRole without credentials".into(),
        });
    };
    let expiration = SystemTime::try_from(*c.expiration()).ok();
    // The SDK fills missing elements of a truncated or malformed answer with empty
    // strings and the epoch; such "credentials" must never reach a child.
    let missing: Vec<&str> = [
        ("empty AccessKeyId", c.access_key_id().trim().is_empty()),
        (
            "empty SecretAccessKey",
            c.secret_access_key().trim().is_empty(),
        ),
        ("empty SessionToken", c.session_token().trim().is_empty()),
        (
            "Expiration not in the future",
            expiration.is_none_or(|t| t <= SystemTime::now()),
        ),
    ]
    .into_iter()
    .filter_map(|(name, bad)| bad.then_some(name))
    .collect();
    if !missing.is_empty() {
        return Err(CallError {
            code: None,
            sts_message: None,
            text: format!(
                "STS answered AssumeRole with unusable credentials ({}); the answer was malformed or truncated",
                missing.join(", ")
            ),
        });
    }
    Ok(Credentials {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: c.secret_access_key().to_string(),
        session_token: Some(c.session_token().to_string()),
        expiration,
    })
}

/// The warning for a session shortened to 3600 s, with the fix.
fn duration_warning(plan: &AssumeRolePlan, sts_message: &str) -> String {
    let role = plan.role_arn.role_name();
    let wanted = plan.duration_seconds;
    let update = format!("aws iam update-role --role-name {role} --max-session-duration {wanted}");
    let cause = if sts_message.contains("role chaining") {
        format!(
            "the launcher's own credentials are a role session (instance profile, ECS task role, IRSA or Pod Identity) and role chaining caps sessions at 1 hour; for longer sessions give the launcher IAM-user credentials and allow them on the role: {update}"
        )
    } else {
        format!("fix: {update}")
    };
    format!(
        "role {} refused DurationSeconds={wanted} (\"{sts_message}\"); the session was minted for {FALLBACK_DURATION_SECONDS} s instead; {cause}",
        plan.role_arn
    )
}

/// Reads the static keys a service account references. Errors name the reference,
/// never the value.
fn read_static_keys(
    plan: &StaticKeysPlan,
    env: &dyn Fn(&str) -> Option<String>,
    notes: &mut Vec<String>,
) -> Result<Credentials, String> {
    let sa = &plan.service_account;
    let access_key_id = read_secret(&plan.access_key_id, "access key id", sa, env, notes)?;
    let secret_access_key =
        read_secret(&plan.secret_access_key, "secret access key", sa, env, notes)?;
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token: None,
        expiration: None,
    })
}

fn read_secret(
    reference: &SecretRef,
    what: &str,
    service_account: &str,
    env: &dyn Fn(&str) -> Option<String>,
    notes: &mut Vec<String>,
) -> Result<String, String> {
    let value = match reference {
        SecretRef::Env(name) => env(name).ok_or_else(|| {
            format!("its {what} is read from environment variable {name}, which is not set")
        })?,
        SecretRef::File(path) => {
            let shown = path.display();
            let meta = std::fs::metadata(path).map_err(|e| {
                format!("its {what} is read from file {shown}, which cannot be read ({e})")
            })?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o044 != 0 {
                notes.push(format!(
                    "file {shown} holding the {what} of service account \"{service_account}\" is readable by other users (mode {mode:04o}); fix: chmod 600 {shown}"
                ));
            }
            let unreadable = |e: std::io::Error| {
                format!("its {what} is read from file {shown}, which cannot be read ({e})")
            };
            let mut bytes = Vec::new();
            // A key file holds one short line; a cap keeps a wrong path (a device, a
            // log) from being read without end.
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes))
                .map_err(unreadable)?;
            if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
                return Err(format!(
                    "its {what} is read from file {shown}, which is larger than {MAX_SECRET_FILE_BYTES} bytes; it should hold only the key"
                ));
            }
            String::from_utf8(bytes).map_err(|_| {
                format!("its {what} is read from file {shown}, which is not UTF-8 text")
            })?
        }
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(format!(
            "its {what} is read from {reference}, which is empty"
        ));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_policy_code_matches_with_and_without_suffix() {
        assert!(is_packed_policy_too_large("PackedPolicyTooLarge"));
        assert!(is_packed_policy_too_large("PackedPolicyTooLargeException"));
        assert!(!is_packed_policy_too_large("ValidationError"));
    }

    #[test]
    fn both_duration_errors_are_recognised() {
        assert!(is_duration_too_long(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        ));
        assert!(is_duration_too_long(
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
        ));
        assert!(!is_duration_too_long(
            "ValidationError",
            "1 validation error detected: Value at 'roleSessionName' failed"
        ));
        assert!(!is_duration_too_long(
            "AccessDenied",
            "DurationSeconds exceeds"
        ));
    }

    #[test]
    fn error_elements_are_read_from_nested_error_bodies() {
        let body = "<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: a &amp; b is not authorized</Message></Error></Errors></ErrorResponse>";
        assert_eq!(xml_element(body, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(
            xml_element(body, "Message").as_deref(),
            Some("User: a & b is not authorized")
        );
        assert_eq!(xml_element("<Code></Code>", "Code"), None);
        assert_eq!(xml_element("<Code>x", "Code"), None);
    }

    #[test]
    fn backoff_stays_under_its_cap() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_millis(250);
        for attempt in 1..40 {
            let cap = initial.saturating_mul(1 << (attempt - 1).min(16)).min(max);
            let b = backoff(initial, max, attempt);
            assert!(b < cap, "attempt {attempt}: {b:?} >= {cap:?}");
        }
    }

    #[test]
    fn jitter_varies() {
        let samples: std::collections::BTreeSet<u64> =
            (0..32).map(|_| (random_fraction() * 1e9) as u64).collect();
        assert!(samples.len() > 16, "{samples:?}");
        assert!(samples.iter().all(|&s| s < 1_000_000_000));
    }

    #[test]
    fn endpoint_labels_drop_passwords() {
        assert_eq!(
            without_userinfo("https://u:p@sts.example.com/x@y"),
            "https://sts.example.com/x@y"
        );
        assert_eq!(
            without_userinfo("http://127.0.0.1:5000"),
            "http://127.0.0.1:5000"
        );
    }

    #[test]
    fn only_http_endpoints_get_the_client_without_tls() {
        let text = include_str!("../../examples/platform.json");
        let mut platform = crate::load::load_str(text, "examples/platform.json", &|_| None)
            .expect("the example platform loads");
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        platform.aws.sts_endpoint = None;
        assert!(!plain_http_endpoint(&platform, &env(&[])));
        assert!(plain_http_endpoint(
            &platform,
            &env(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")])
        ));
        assert!(!plain_http_endpoint(
            &platform,
            &env(&[
                ("AWS_ENDPOINT_URL_STS", "https://sts.internal"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
            ])
        ));
        assert!(!plain_http_endpoint(
            &platform,
            &env(&[
                ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1"),
                ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
            ])
        ));
        platform.aws.sts_endpoint = Some("HTTP://127.0.0.1:2".into());
        assert!(plain_http_endpoint(
            &platform,
            &env(&[("AWS_ENDPOINT_URL_STS", "https://sts.internal")])
        ));
        platform.aws.sts_endpoint = Some("https://127.0.0.1:2".into());
        assert!(!plain_http_endpoint(
            &platform,
            &env(&[("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")])
        ));
    }

    fn output(key: &str, secret: &str, token: &str, expires_in: i64) -> AssumeRoleOutput {
        let now = aws_smithy_types::DateTime::from(SystemTime::now()).secs();
        let c = aws_sdk_sts::types::Credentials::builder()
            .access_key_id(key)
            .secret_access_key(secret)
            .session_token(token)
            .expiration(aws_smithy_types::DateTime::from_secs(now + expires_in))
            .build()
            .unwrap();
        AssumeRoleOutput::builder().credentials(c).build()
    }

    #[test]
    fn incomplete_credentials_from_a_malformed_answer_are_refused() {
        assert!(credentials_of(&output("ASIAKEY", "secret", "token", 3600)).is_ok());
        let e = credentials_of(&output("", "", "", -1_000_000)).unwrap_err();
        assert!(
            e.text.contains("(empty AccessKeyId, empty SecretAccessKey, empty SessionToken, Expiration not in the future)"),
            "{}",
            e.text
        );
        assert!(credentials_of(&output("ASIAKEY", "secret", " ", 3600)).is_err());
        assert!(credentials_of(&output("ASIAKEY", "secret", "token", -5)).is_err());
        assert!(credentials_of(&AssumeRoleOutput::builder().build()).is_err());
    }
}
