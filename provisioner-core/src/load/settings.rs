//! The `settings` and `aws` sections: each setting from the environment (upper-cased
//! name), else the file, else its default, with its type and range checked.

use super::*;

/// Settings keys of the `settings` object, with their defaults. The platform's own
/// convention is string values; JSON booleans and numbers are accepted too.
pub(super) const SETTINGS: &[(&str, &str)] = &[
    ("syntasa_session_policy_enabled", "false"),
    ("syntasa_session_policy_duration", "43200"),
    ("service_account_failure", "fallback"),
    ("session_policy_over_limit", "fallback"),
    ("session_policy_bedrock", "true"),
    (
        "session_policy_platform_folders",
        "syn-workspace,syn-app-logs,syn-cluster-config,syn-file-uploads,syn-volumes,syn-spark-history,syn-cluster-logs",
    ),
    ("sts_source_identity", "false"),
    ("sts_session_tags", "false"),
    ("sts_deadline_seconds", "10"),
    ("sts_max_attempts", "8"),
    ("decision_log", "stderr"),
    ("broker_min_remaining_seconds", "3600"),
    ("broker_max_connections_per_uid", "32"),
    ("broker_max_sessions_per_uid", "256"),
    ("session_policy_managed", "auto"),
    ("credential_delivery", "endpoint"),
    ("credential_lifetime_seconds", "3600"),
    ("max_session_seconds", "604800"),
];

/// Looks a setting up: its value and where it came from (empty: the platform file).
type SettingLookup<'a> = dyn Fn(&str) -> Result<Option<(String, String)>, ConfigError> + 'a;

/// Keys of the `aws` object. Each can be overridden by its upper-cased name too.
pub(super) const AWS_KEYS: &[&str] = &[
    "region",
    "account_id",
    "session_policy_role_arn",
    "platform_bucket",
    "sts_endpoint",
    "iam_endpoint",
    "managed_policy_path",
];

/// Names of every environment variable that can override a setting.
pub fn setting_env_names() -> Vec<String> {
    SETTINGS
        .iter()
        .map(|(k, _)| k.to_ascii_uppercase())
        .chain(AWS_KEYS.iter().map(|k| k.to_ascii_uppercase()))
        .collect()
}

impl Validator<'_> {
    pub(super) fn env_override(&self, key: &str) -> Option<String> {
        (self.env)(&key.to_ascii_uppercase()).filter(|v| !v.is_empty())
    }

    /// A setting's value as text: environment first, then the file, then the default.
    pub(super) fn setting_text(
        &self,
        section: &str,
        map: &BTreeMap<String, Value>,
        key: &str,
    ) -> Result<Option<(String, String)>, ConfigError> {
        if let Some(v) = self.env_override(key) {
            return Ok(Some((
                v,
                format!("environment variable {}", key.to_ascii_uppercase()),
            )));
        }
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some((s.clone(), String::new()))),
            Some(Value::Bool(b)) => Ok(Some((b.to_string(), String::new()))),
            Some(Value::Number(n)) => Ok(Some((n.to_string(), String::new()))),
            Some(other) => Err(self.err(
                section,
                key,
                format!("expected a string, got {}", json_kind(other)),
                "give the setting a string value, e.g. \"true\"",
            )),
        }
    }

    pub(super) fn settings(&self, map: &BTreeMap<String, Value>) -> Result<Settings, ConfigError> {
        let text = |key: &str| -> Result<(String, String), ConfigError> {
            let default = SETTINGS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, d)| *d)
                .unwrap_or_default();
            Ok(self
                .setting_text("settings", map, key)?
                .unwrap_or_else(|| (default.to_string(), String::new())))
        };
        let where_ = |from: &str| {
            if from.is_empty() {
                "settings".to_string()
            } else {
                format!("settings (from {from})")
            }
        };
        let boolean = |key: &str| -> Result<bool, ConfigError> {
            let (v, from) = text(key)?;
            match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(self.err(
                    where_(&from),
                    key,
                    format!("\"{v}\" is not a boolean"),
                    "use \"true\" or \"false\"",
                )),
            }
        };
        let number =
            |key: &str, range: std::ops::RangeInclusive<u32>| -> Result<u32, ConfigError> {
                let (v, from) = text(key)?;
                match v.trim().parse::<u32>() {
                    Ok(n) if range.contains(&n) => Ok(n),
                    _ => Err(self.err(
                        where_(&from),
                        key,
                        format!(
                            "\"{v}\" is not a whole number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                        format!("use a value from {} to {}", range.start(), range.end()),
                    )),
                }
            };
        let mode = |key: &str| -> Result<FailureMode, ConfigError> {
            let (v, from) = text(key)?;
            match v.trim() {
                "fallback" => Ok(FailureMode::Fallback),
                "deny" => Ok(FailureMode::Deny),
                _ => Err(self.err(
                    where_(&from),
                    key,
                    format!("\"{v}\" is not a failure mode"),
                    "use \"fallback\" or \"deny\"",
                )),
            }
        };
        let (folders_text, folders_from) = text("session_policy_platform_folders")?;
        let mut folders = Vec::new();
        let folders_text = if folders_text.trim() == "none" {
            String::new()
        } else {
            folders_text
        };
        for f in folders_text
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            let f = f.trim_matches('/');
            check_folder(f).map_err(|e| {
                self.err(
                    where_(&folders_from),
                    "session_policy_platform_folders",
                    e,
                    "list plain folder names separated by commas, e.g. syn-workspace/{user}",
                )
            })?;
            if !folders.iter().any(|x: &String| x == f) {
                folders.push(f.to_string());
            }
        }
        let (log, log_from) = text("decision_log")?;
        let decision_log = match log.trim() {
            "" | "stderr" | "-" => DecisionLog::Stderr,
            // Launchers run in whatever directory Jupyter or the job runner picks: a
            // relative path would scatter records, or fail, depending on it.
            path if !Path::new(path).is_absolute() => {
                return Err(self.err(
                    where_(&log_from),
                    "decision_log",
                    format!("\"{path}\" is a relative path"),
                    "use an absolute path such as /var/log/provisioner/decisions.jsonl, or \"stderr\"",
                ));
            }
            path => DecisionLog::File(PathBuf::from(path)),
        };
        Ok(Settings {
            session_policy_enabled: boolean("syntasa_session_policy_enabled")?,
            session_policy_duration: number(
                "syntasa_session_policy_duration",
                MIN_DURATION..=MAX_DURATION,
            )?,
            service_account_failure: mode("service_account_failure")?,
            session_policy_over_limit: mode("session_policy_over_limit")?,
            session_policy_bedrock: boolean("session_policy_bedrock")?,
            session_policy_platform_folders: folders,
            sts_source_identity: boolean("sts_source_identity")?,
            sts_session_tags: boolean("sts_session_tags")?,
            sts_deadline_seconds: number("sts_deadline_seconds", 1..=300)?,
            sts_max_attempts: number("sts_max_attempts", 1..=10)?,
            decision_log,
            broker_min_remaining_seconds: number("broker_min_remaining_seconds", 0..=43200)?,
            broker_max_connections_per_uid: number("broker_max_connections_per_uid", 1..=4096)?,
            broker_max_sessions_per_uid: number("broker_max_sessions_per_uid", 1..=65536)?,
            brokered: false,
            credential_delivery: {
                let (v, from) = text("credential_delivery")?;
                match v.trim() {
                    "endpoint" => CredentialDelivery::Endpoint,
                    "environment" => CredentialDelivery::Environment,
                    _ => {
                        return Err(self.err(
                            where_(&from),
                            "credential_delivery",
                            format!("\"{v}\" is not a credential delivery"),
                            "use \"endpoint\" or \"environment\"",
                        ));
                    }
                }
            },
            credential_lifetime_seconds: number(
                "credential_lifetime_seconds",
                MIN_DURATION..=MAX_DURATION,
            )?,
            max_session_seconds: number("max_session_seconds", 60..=31_536_000)?,
            session_policy_managed: {
                let (v, from) = text("session_policy_managed")?;
                match v.trim() {
                    "auto" => ManagedMode::Auto,
                    "always" => ManagedMode::Always,
                    "never" => ManagedMode::Never,
                    _ => {
                        return Err(self.err(
                            where_(&from),
                            "session_policy_managed",
                            format!("\"{v}\" is not a managed session policy mode"),
                            "use \"auto\", \"always\" or \"never\"",
                        ));
                    }
                }
            },
        })
    }

    pub(super) fn aws(&self, map: &BTreeMap<String, Value>) -> Result<AwsSettings, ConfigError> {
        let get = |key: &str| -> Result<Option<(String, String)>, ConfigError> {
            Ok(self
                .setting_text("aws", map, key)?
                .map(|(v, from)| (v.trim().to_string(), from)))
        };
        let entity = |from: &str| {
            if from.is_empty() {
                "aws".to_string()
            } else {
                format!("aws (from {from})")
            }
        };
        let region = match get("region")? {
            Some((r, from)) => {
                let ok = r.split('-').count() >= 3
                    && r.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    return Err(self.err(
                        entity(&from),
                        "region",
                        format!("\"{r}\" is not an AWS region"),
                        "use a region name such as us-east-1",
                    ));
                }
                r
            }
            None => {
                return Err(self.err(
                    "aws",
                    "region",
                    "missing",
                    "set aws.region (e.g. \"us-east-1\") or the REGION environment variable",
                ));
            }
        };
        let account_id = match get("account_id")? {
            Some((a, from)) => {
                if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(self.err(
                        entity(&from),
                        "account_id",
                        format!("\"{a}\" is not a 12-digit account id"),
                        "use the 12-digit AWS account id",
                    ));
                }
                Some(a)
            }
            None => None,
        };
        let session_policy_role_arn = match get("session_policy_role_arn")? {
            Some((a, from)) => Some(RoleArn::parse(&a).map_err(|e| {
                self.err(
                    entity(&from),
                    "session_policy_role_arn",
                    e,
                    "use the ARN of the role session-policy credentials are assumed from",
                )
            })?),
            None => None,
        };
        let platform_bucket = match get("platform_bucket")? {
            Some((b, from)) => {
                check_bucket_name(&b).map_err(|e| {
                    self.err(
                        entity(&from),
                        "platform_bucket",
                        e,
                        "use the platform bucket's name, without s3://",
                    )
                })?;
                Some(b)
            }
            None => None,
        };
        let sts_endpoint =
            self.endpoint(&get, "sts_endpoint", "https://sts.us-east-1.amazonaws.com")?;
        let iam_endpoint = self.endpoint(&get, "iam_endpoint", "https://iam.amazonaws.com")?;
        let managed_policy_path = match get("managed_policy_path")? {
            Some((p, from)) => {
                check_iam_path(&p).map_err(|e| {
                    self.err(
                        entity(&from),
                        "managed_policy_path",
                        e,
                        "use an IAM path such as /provisioner/ (starts and ends with /)",
                    )
                })?;
                p
            }
            None => DEFAULT_MANAGED_POLICY_PATH.to_string(),
        };
        Ok(AwsSettings {
            region,
            account_id,
            session_policy_role_arn,
            platform_bucket,
            sts_endpoint,
            iam_endpoint,
            managed_policy_path,
        })
    }

    /// An endpoint override (`sts_endpoint`, `iam_endpoint`): an http(s) URL, kept
    /// without a trailing slash.
    fn endpoint(
        &self,
        get: &SettingLookup<'_>,
        key: &str,
        example: &str,
    ) -> Result<Option<String>, ConfigError> {
        let Some((u, from)) = get(key)? else {
            return Ok(None);
        };
        let ok = (u.starts_with("http://") || u.starts_with("https://"))
            && u.split("://")
                .nth(1)
                .is_some_and(|h| !h.is_empty() && !h.contains(char::is_whitespace));
        if !ok {
            let entity = if from.is_empty() {
                "aws".to_string()
            } else {
                format!("aws (from {from})")
            };
            return Err(self.err(
                entity,
                key,
                format!("\"{u}\" is not an http(s) URL"),
                format!("use a URL such as {example}"),
            ));
        }
        Ok(Some(u.trim_end_matches('/').to_string()))
    }
}

/// IAM paths: `/`, or `/` + segments + `/`, at most 512 characters. Segments are held
/// to IAM's name characters: the path also prefixes managed policy names.
fn check_iam_path(p: &str) -> Result<(), String> {
    if p == "/" {
        return Ok(());
    }
    let inner = p.strip_prefix('/').and_then(|r| r.strip_suffix('/'));
    let ok = p.len() <= 512
        && inner.is_some_and(|i| {
            i.split('/')
                .all(|seg| !seg.is_empty() && seg.chars().all(is_iam_name_char))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{}\" is not an IAM path (/ or /segment/.../ of letters, digits and _+=,.@-, at most 512 characters)",
            p.escape_default()
        ))
    }
}
