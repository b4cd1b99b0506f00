//! Sorting STS errors: retryable or not, the STS error code and message, and one
//! sentence for people that never holds a secret.

use super::*;

/// Error codes that mean "slow down" (retried with backoff).
pub(super) const THROTTLING_CODES: &[&str] =
    &["Throttling", "ThrottlingException", "RequestLimitExceeded"];

/// True when STS's answer rejects one of the managed session policies sent. AWS does not
/// document the code for a `PolicyArns` entry that IAM does not hold; reported answers
/// are `MalformedPolicyDocument` (and IAM's own `NoSuchEntity`) with a message naming
/// the ARN ("Policy ARN does not exist or is not attachable"). Any of these, or any
/// answer naming an ARN we sent, counts. Either way the launch is refused: this only
/// chooses the fix the refusal prints.
pub fn rejects_managed_policy(
    code: Option<&str>,
    message: Option<&str>,
    policy_arns: &[String],
) -> bool {
    if policy_arns.is_empty() {
        return false;
    }
    let message = message.unwrap_or_default();
    matches!(code, Some("MalformedPolicyDocument" | "NoSuchEntity"))
        || policy_arns.iter().any(|arn| message.contains(arn.as_str()))
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
pub(super) struct CallError {
    pub(super) code: Option<String>,
    pub(super) sts_message: Option<String>,
    pub(super) text: String,
}

/// One STS error, before deciding whether to retry it.
pub(super) struct Attempt {
    pub(super) retryable: bool,
    pub(super) code: Option<String>,
    pub(super) sts_message: Option<String>,
    pub(super) text: String,
}

/// Sorts an SDK error into retryable or not, with a sentence naming the cause.
pub(super) fn classify<E>(e: &SdkError<E>) -> Attempt
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let (code, message) =
                code_and_message(se.err(), se.raw().body().bytes().unwrap_or_default());
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

/// The error code and message of a service's error answer (STS, IAM): as the SDK
/// parsed them, else read from the XML body. Compatible servers do not all use the
/// service's error shape (moto nests `Errors/Error`); the SDK then finds no code.
pub fn code_and_message(
    err: &impl ProvideErrorMetadata,
    body: &[u8],
) -> (Option<String>, Option<String>) {
    let body = String::from_utf8_lossy(body);
    let code = err
        .code()
        .map(str::to_string)
        .or_else(|| xml_element(&body, "Code"));
    let message = err
        .message()
        .map(str::to_string)
        .or_else(|| xml_element(&body, "Message"));
    (code, message)
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
pub(super) fn credentials_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a CredentialsError> {
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
pub fn error_chain(e: &dyn std::error::Error) -> String {
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
}
