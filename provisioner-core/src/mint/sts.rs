//! Calling STS `AssumeRole` for a plan: attempts within the tier's share of the
//! deadline, the retry of a refused duration at 3600 s, and reading the answer
//! (a malformed answer is a failure, never credentials).

use super::*;

/// A lazily built STS client on a current-thread runtime, plus the launch deadline.
pub(super) struct Sts<'a> {
    pub(super) platform: &'a Platform,
    pub(super) options: &'a StsOptions,
    /// The end of the whole launch.
    pub(super) launch_deadline: Instant,
    /// The end of the current tier's calls: the launch deadline, or half of what is
    /// left of it for a service account that may still fall back.
    pub(super) deadline: Instant,
    /// True while `deadline` is a service account's share.
    pub(super) share: bool,
    pub(super) endpoint: String,
    /// The endpoint is `http://`: the STS client is built without TLS.
    pub(super) plain_http: bool,
    pub(super) connection: Option<(tokio::runtime::Runtime, aws_sdk_sts::Client)>,
}

impl Sts<'_> {
    fn deadline_seconds(&self) -> u32 {
        self.platform.settings.sts_deadline_seconds
    }

    /// Sets the current tier's time limit (see [`Sts::deadline`]).
    pub(super) fn limit_to_share(&mut self, half: bool) {
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
    pub(super) fn assume_role(
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
            .set_policy_arns(policy_descriptors(&plan.policy_arns))
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

pub(super) fn credentials_of(out: &AssumeRoleOutput) -> Result<Credentials, CallError> {
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
pub(super) fn duration_warning(plan: &AssumeRolePlan, sts_message: &str) -> String {
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

/// `PolicyArns` as the SDK wants them; `None` (the parameter left out) when there are
/// none, so requests without managed policies stay exactly as they were.
fn policy_descriptors(arns: &[String]) -> Option<Vec<aws_sdk_sts::types::PolicyDescriptorType>> {
    (!arns.is_empty()).then(|| {
        arns.iter()
            .map(|arn| {
                aws_sdk_sts::types::PolicyDescriptorType::builder()
                    .arn(arn)
                    .build()
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
