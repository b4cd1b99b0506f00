//! IAM and STS clients for the admin commands, and their errors as one line with a fix.
//!
//! Credentials come from the standard AWS chain of whoever runs the command (an admin,
//! a CI/CD job), never from the platform file. Endpoints come from `aws.iam_endpoint`
//! and `aws.sts_endpoint` (else the SDK's own configuration, else AWS's). This module
//! is never used by a launch: IAM is global, eventually consistent and slow, and a
//! launch must not depend on it.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use provisioner_core::mint::code_and_message;
use provisioner_core::model::Platform;

/// Attempts per IAM call. IAM throttles writes at a low, unpublished rate; the SDK's
/// standard retry backs off with jitter between attempts.
const MAX_ATTEMPTS: u32 = 8;

/// The IAM and STS clients of one command run.
#[derive(Clone)]
pub struct Clients {
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    /// The IAM endpoint, for messages.
    pub iam_endpoint: String,
    /// The STS endpoint, for messages.
    pub sts_endpoint: String,
}

impl Clients {
    /// Builds both clients from the standard credential chain.
    pub async fn new(platform: &Platform) -> Clients {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(platform.aws.region.clone()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(10)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            )
            .load()
            .await;
        let mut iam = aws_sdk_iam::config::Builder::from(&sdk);
        if let Some(endpoint) = &platform.aws.iam_endpoint {
            iam = iam.endpoint_url(endpoint);
        }
        let mut sts = aws_sdk_sts::config::Builder::from(&sdk);
        if let Some(endpoint) = &platform.aws.sts_endpoint {
            sts = sts.endpoint_url(endpoint);
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let iam_endpoint = platform
            .aws
            .iam_endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_IAM"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| "https://iam.amazonaws.com".into());
        let sts_endpoint = platform
            .aws
            .sts_endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_STS"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com", platform.aws.region));
        Clients {
            iam: aws_sdk_iam::Client::from_conf(iam.build()),
            sts: aws_sdk_sts::Client::from_conf(sts.build()),
            iam_endpoint,
            sts_endpoint,
        }
    }
}

/// What a failed call was trying to do: the IAM action it needs and the resource, so
/// that AccessDenied can name exactly what to allow.
#[derive(Debug, Clone)]
pub struct Call {
    pub action: &'static str,
    pub resource: String,
}

impl Call {
    pub fn new(action: &'static str, resource: impl Into<String>) -> Call {
        Call {
            action,
            resource: resource.into(),
        }
    }
}

/// A failed call, as one line with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The service's error code, when it gave one.
    pub code: Option<String>,
    pub line: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

/// Describes an SDK error of `call` against `endpoint` in one line with the fix.
pub fn describe<E>(call: &Call, endpoint: &str, e: &SdkError<E>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let service = call
        .action
        .split(':')
        .next()
        .unwrap_or("iam")
        .to_uppercase();
    match e {
        SdkError::ServiceError(se) => {
            let (code, message) =
                code_and_message(se.err(), se.raw().body().bytes().unwrap_or_default());
            let message = one_line(&message.unwrap_or_else(|| "no message".into()));
            let line = match code.as_deref() {
                Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation") => {
                    format!(
                        "{service} denied {} on {} ({message}); fix: allow {} on {} for the identity running this command (the README lists every action the command needs)",
                        call.action, call.resource, call.action, call.resource
                    )
                }
                Some(
                    "InvalidClientTokenId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "UnrecognizedClientException",
                ) => format!(
                    "{service} rejected the credentials calling {} ({}: {message}); fix: give this command valid credentials through the standard AWS chain",
                    call.action,
                    code.as_deref().unwrap_or_default()
                ),
                Some("Throttling" | "ThrottlingException" | "LimitExceeded") => format!(
                    "{service} kept throttling {} after {MAX_ATTEMPTS} attempts ({message}); fix: run the command again later",
                    call.action
                ),
                other => format!(
                    "{} on {} failed: {}: {message}",
                    call.action,
                    call.resource,
                    other.unwrap_or("error without a code")
                ),
            };
            CallError { code, line }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            let chain = error_chain(e);
            let line = if chain.contains("credential") {
                format!(
                    "no AWS credentials for {} ({chain}); fix: give this command credentials through the standard AWS chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or an instance role)",
                    call.action
                )
            } else {
                format!(
                    "could not reach {service} at {endpoint} for {} ({chain}); fix: check aws.{}_endpoint (or the network and proxy settings)",
                    call.action,
                    service.to_lowercase()
                )
            };
            CallError { code: None, line }
        }
        other => CallError {
            code: None,
            line: format!("{} failed: {}", call.action, error_chain(other)),
        },
    }
}

/// An error and its sources as one line ("a: b: c"); levels that repeat the previous
/// one are skipped.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    one_line(&provisioner_core::mint::error_chain(e))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
