//! Loading the platform file and validating it into a [`Platform`].
//!
//! Every problem is reported as one [`ConfigError`] line that names the file, the
//! entity, the field and the fix. Loading never panics, whatever the input. Settings
//! can be overridden by environment variables named like the setting, upper-cased
//! (`SYNTASA_SESSION_POLICY_ENABLED`, `SESSION_POLICY_ROLE_ARN`, ...); the lookup is
//! passed in so that tests need not touch the process environment.
//!
//! This module reads one file and nothing else; it never reads a secret (static keys
//! stay references until minting).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::model::*;

/// Where the platform file is looked for when no `--config` is given and
/// `SYN_PLATFORM_CONFIG` is unset.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/provisioner/platform.json";

/// The 2,048-character limit and the 900..=43200 s range come from STS.
pub const MIN_DURATION: u32 = 900;
pub const MAX_DURATION: u32 = 43200;

/// One invalid input, as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub entity: String,
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", one_line(&self.file), one_line(&self.entity))?;
        if !self.field.is_empty() {
            write!(f, " field \"{}\"", one_line(&self.field))?;
        }
        write!(
            f,
            ": {}; fix: {}",
            one_line(&self.problem),
            one_line(&self.fix)
        )
    }
}

/// `s` with control characters and line separators escaped (`\n`, `\u{2028}`): the
/// parts quote names from the file (a JSON key may hold `\n`), and the error must stay
/// one line.
fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    let escape = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !s.chars().any(escape) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Settings keys of the `settings` object, with their defaults. The platform's own
/// convention is string values; JSON booleans and numbers are accepted too.
const SETTINGS: &[(&str, &str)] = &[
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
];

/// Keys of the `aws` object. Each can be overridden by its upper-cased name too.
const AWS_KEYS: &[&str] = &[
    "region",
    "account_id",
    "session_policy_role_arn",
    "platform_bucket",
    "sts_endpoint",
];

/// Names of every environment variable that can override a setting.
pub fn setting_env_names() -> Vec<String> {
    SETTINGS
        .iter()
        .map(|(k, _)| k.to_ascii_uppercase())
        .chain(AWS_KEYS.iter().map(|k| k.to_ascii_uppercase()))
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    #[serde(default)]
    settings: BTreeMap<String, Value>,
    #[serde(default)]
    aws: BTreeMap<String, Value>,
    #[serde(default)]
    service_accounts: Vec<RawServiceAccount>,
    #[serde(default)]
    workspaces: Vec<RawWorkspace>,
    #[serde(default)]
    runtime_templates: Vec<RawWorkspace>,
    #[serde(default)]
    data_planes: Vec<RawDataPlane>,
    #[serde(default)]
    users: Vec<RawUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceAccount {
    id: String,
    role_arn: Option<String>,
    external_id: Option<String>,
    duration_seconds: Option<Value>,
    access_key_id: Option<Value>,
    secret_access_key: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkspace {
    id: String,
    service_account: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataPlane {
    id: String,
    #[serde(default)]
    s3: Vec<String>,
    #[serde(default)]
    glue_databases: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    id: String,
    #[serde(default)]
    data_planes: Vec<String>,
    #[serde(default)]
    system_admin: bool,
}

/// Finds the platform file: `--config`, else `SYN_PLATFORM_CONFIG`, else the default path.
pub fn config_path(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| {
            env("SYN_PLATFORM_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// Reads and validates the platform file at `path`.
pub fn load_file(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Platform, ConfigError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: source.clone(),
        entity: "platform file".into(),
        field: String::new(),
        problem: format!("cannot be read ({e})"),
        fix: "pass --config PATH or set SYN_PLATFORM_CONFIG to a readable platform file".into(),
    })?;
    load_str(&text, &source, env)
}

/// Validates platform JSON `text`; `source` names it in messages.
pub fn load_str(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Platform, ConfigError> {
    // serde would also accept a JSON array for a struct; a platform file is an object.
    if let Some(c) = text.trim_start().chars().next().filter(|c| *c != '{') {
        return Err(ConfigError {
            file: source.to_string(),
            entity: "platform file".into(),
            field: String::new(),
            problem: format!("starts with '{}', not a JSON object", c.escape_default()),
            fix: "write the platform as one JSON object (see examples/platform.json)".into(),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let raw: RawPlatform = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (entity, field) = split_path(&path);
        ConfigError {
            file: source.to_string(),
            entity,
            field,
            problem: format!("{inner}"),
            fix: fix_for_serde(&inner),
        }
    })?;
    Validator {
        source,
        env,
        warnings: Vec::new(),
    }
    .platform(raw)
}

fn split_path(path: &str) -> (String, String) {
    // serde_path_to_error paths look like `service_accounts[1].role_arn` or `.`.
    if path == "." || path == "?" || path.is_empty() {
        return ("platform file".into(), String::new());
    }
    match path.rsplit_once('.') {
        // `?` stands for a key serde could not read (a syntax error inside an object):
        // name the object alone rather than a field called "?".
        Some((entity, "?")) => (entity.to_string(), String::new()),
        Some((entity, field)) => (entity.to_string(), field.to_string()),
        None if path.contains('[') => (path.to_string(), String::new()),
        None => ("platform file".into(), path.to_string()),
    }
}

fn fix_for_serde(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let msg = e.to_string();
    match e.classify() {
        Category::Syntax | Category::Eof => {
            "correct the JSON syntax at that line and column".into()
        }
        Category::Io => "make the file readable".into(),
        Category::Data if msg.starts_with("unknown field") => {
            "remove or rename the field to one of the expected names".into()
        }
        Category::Data if msg.starts_with("missing field") => "add the field".into(),
        Category::Data if msg.starts_with("duplicate field") => {
            "keep one of the duplicate fields".into()
        }
        Category::Data => {
            "give the field a value of the expected type (see examples/platform.json)".into()
        }
    }
}

struct Validator<'a> {
    source: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
}

impl Validator<'_> {
    fn err(
        &self,
        entity: impl Into<String>,
        field: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.source.to_string(),
            entity: entity.into(),
            field: field.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    fn env_override(&self, key: &str) -> Option<String> {
        (self.env)(&key.to_ascii_uppercase()).filter(|v| !v.is_empty())
    }

    /// A setting's value as text: environment first, then the file, then the default.
    fn setting_text(
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

    fn check_unknown(
        &self,
        section: &str,
        map: &BTreeMap<String, Value>,
        known: &[&str],
    ) -> Result<(), ConfigError> {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let hint = closest(key, known)
                    .map(|k| format!("did you mean \"{k}\"?"))
                    .unwrap_or_else(|| format!("known keys: {}", known.join(", ")));
                return Err(self.err(
                    section,
                    key,
                    "unknown setting",
                    format!("remove it or rename it ({hint})"),
                ));
            }
        }
        Ok(())
    }

    fn platform(mut self, raw: RawPlatform) -> Result<Platform, ConfigError> {
        let known: Vec<&str> = SETTINGS.iter().map(|(k, _)| *k).collect();
        self.check_unknown("settings", &raw.settings, &known)?;
        self.check_unknown("aws", &raw.aws, AWS_KEYS)?;
        let settings = self.settings(&raw.settings)?;
        let aws = self.aws(&raw.aws)?;

        let mut service_accounts = BTreeMap::new();
        for sa in raw.service_accounts {
            let sa = self.service_account(sa)?;
            if service_accounts.contains_key(&sa.id) {
                return Err(self.dup("service_account", &sa.id));
            }
            service_accounts.insert(sa.id.clone(), sa);
        }
        let mut workspaces = BTreeMap::new();
        for w in raw.workspaces {
            let (id, service_account) = self.holder("workspace", w, &service_accounts)?;
            if workspaces.contains_key(&id) {
                return Err(self.dup("workspace", &id));
            }
            workspaces.insert(
                id.clone(),
                Workspace {
                    id,
                    service_account,
                },
            );
        }
        let mut runtime_templates = BTreeMap::new();
        for r in raw.runtime_templates {
            let (id, service_account) = self.holder("runtime_template", r, &service_accounts)?;
            if runtime_templates.contains_key(&id) {
                return Err(self.dup("runtime_template", &id));
            }
            runtime_templates.insert(
                id.clone(),
                RuntimeTemplate {
                    id,
                    service_account,
                },
            );
        }
        let mut data_planes = BTreeMap::new();
        for d in raw.data_planes {
            let d = self.data_plane(d)?;
            if data_planes.contains_key(&d.id) {
                return Err(self.dup("data_plane", &d.id));
            }
            data_planes.insert(d.id.clone(), d);
        }
        let mut users = BTreeMap::new();
        for u in raw.users {
            let entity = format!("user \"{}\"", u.id);
            check_id(&u.id)
                .map_err(|e| self.err(&entity, "id", e, "use the platform's user id"))?;
            let mut seen = BTreeSet::new();
            for dp in &u.data_planes {
                if !data_planes.contains_key(dp) {
                    return Err(self.err(
                        &entity,
                        "data_planes",
                        format!("unknown data plane \"{dp}\""),
                        format!(
                            "use one of {} or add it to data_planes",
                            list_ids(data_planes.keys())
                        ),
                    ));
                }
                if !seen.insert(dp) {
                    return Err(self.err(
                        &entity,
                        "data_planes",
                        format!("data plane \"{dp}\" is listed twice"),
                        "list it once",
                    ));
                }
            }
            if users.contains_key(&u.id) {
                return Err(self.dup("user", &u.id));
            }
            users.insert(
                u.id.clone(),
                User {
                    id: u.id,
                    data_planes: u.data_planes,
                    system_admin: u.system_admin,
                },
            );
        }

        self.cross_checks(&settings, &aws, &data_planes)?;

        Ok(Platform {
            source: self.source.to_string(),
            settings,
            aws,
            service_accounts,
            workspaces,
            runtime_templates,
            data_planes,
            users,
            warnings: self.warnings,
        })
    }

    fn dup(&self, kind: &str, id: &str) -> ConfigError {
        self.err(
            format!("{kind} \"{id}\""),
            "id",
            format!("duplicate {kind} id \"{id}\""),
            "give each entity a unique id",
        )
    }

    fn settings(&self, map: &BTreeMap<String, Value>) -> Result<Settings, ConfigError> {
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
        })
    }

    fn aws(&self, map: &BTreeMap<String, Value>) -> Result<AwsSettings, ConfigError> {
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
        let sts_endpoint = match get("sts_endpoint")? {
            Some((u, from)) => {
                let ok = (u.starts_with("http://") || u.starts_with("https://"))
                    && u.split("://")
                        .nth(1)
                        .is_some_and(|h| !h.is_empty() && !h.contains(char::is_whitespace));
                if !ok {
                    return Err(self.err(
                        entity(&from),
                        "sts_endpoint",
                        format!("\"{u}\" is not an http(s) URL"),
                        "use a URL such as https://sts.us-east-1.amazonaws.com",
                    ));
                }
                Some(u.trim_end_matches('/').to_string())
            }
            None => None,
        };
        Ok(AwsSettings {
            region,
            account_id,
            session_policy_role_arn,
            platform_bucket,
            sts_endpoint,
        })
    }

    fn service_account(&mut self, raw: RawServiceAccount) -> Result<ServiceAccount, ConfigError> {
        let entity = format!("service_account \"{}\"", raw.id);
        check_id(&raw.id)
            .map_err(|e| self.err(&entity, "id", e, "use letters, digits and _+=,.@-"))?;
        let keys = match (&raw.access_key_id, &raw.secret_access_key) {
            (None, None) => None,
            (Some(a), Some(s)) => Some((
                self.secret_ref(&entity, "access_key_id", a)?,
                self.secret_ref(&entity, "secret_access_key", s)?,
            )),
            (Some(_), None) => {
                return Err(self.err(
                    &entity,
                    "secret_access_key",
                    "missing (access_key_id is given)",
                    "add secret_access_key as {\"env\": NAME} or {\"file\": PATH}",
                ));
            }
            (None, Some(_)) => {
                return Err(self.err(
                    &entity,
                    "access_key_id",
                    "missing (secret_access_key is given)",
                    "add access_key_id as {\"env\": NAME} or {\"file\": PATH}",
                ));
            }
        };
        let role = match &raw.role_arn {
            Some(arn) => Some(RoleArn::parse(arn).map_err(|e| {
                self.err(
                    &entity,
                    "role_arn",
                    e,
                    "use the ARN of the IAM role this service account assumes",
                )
            })?),
            None => None,
        };
        if let Some(ext) = &raw.external_id {
            let ok = (2..=1224).contains(&ext.len())
                && ext
                    .chars()
                    .all(|c| is_iam_name_char(c) || c == ':' || c == '/');
            if !ok {
                return Err(self.err(
                    &entity,
                    "external_id",
                    "must be 2-1224 characters of letters, digits and _+=,.@:/-",
                    "use the external id the role's trust policy expects",
                ));
            }
        }
        let duration_seconds = match &raw.duration_seconds {
            None | Some(Value::Null) => MAX_DURATION,
            Some(v) => {
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                match n {
                    Some(n) if (u64::from(MIN_DURATION)..=u64::from(MAX_DURATION)).contains(&n) => {
                        n as u32
                    }
                    _ => {
                        return Err(self.err(
                            &entity,
                            "duration_seconds",
                            format!("{v} is not a duration from 900 to 43200 seconds"),
                            "use a value from 900 to 43200 (default 43200)",
                        ));
                    }
                }
            }
        };
        let identity = match (keys, role) {
            (Some((access_key_id, secret_access_key)), role) => {
                if role.is_some() {
                    self.warnings.push(format!(
                        "{entity} has both role_arn and static keys; the static keys are used (remove one of them in {})",
                        self.source
                    ));
                }
                ServiceAccountIdentity::StaticKeys {
                    access_key_id,
                    secret_access_key,
                }
            }
            (None, Some(role_arn)) => ServiceAccountIdentity::Role {
                role_arn,
                external_id: raw.external_id.clone(),
                duration_seconds,
            },
            (None, None) => {
                return Err(self.err(
                    &entity,
                    "role_arn",
                    "neither role_arn nor static keys are given",
                    "add role_arn, or access_key_id and secret_access_key references",
                ));
            }
        };
        Ok(ServiceAccount {
            id: raw.id,
            identity,
        })
    }

    fn secret_ref(&self, entity: &str, field: &str, v: &Value) -> Result<SecretRef, ConfigError> {
        let fix = format!(
            "write {field} as {{\"env\": \"VARIABLE\"}} or {{\"file\": \"/path/to/secret\"}}"
        );
        let Value::Object(o) = v else {
            let problem = if v.is_string() {
                "is an inline value; secrets are never written in the platform file".to_string()
            } else {
                format!("expected a reference object, got {}", json_kind(v))
            };
            return Err(self.err(entity, field, problem, fix));
        };
        match (o.len(), o.get("env"), o.get("file")) {
            (1, Some(Value::String(name)), None) if is_env_name(name) => {
                Ok(SecretRef::Env(name.clone()))
            }
            (1, None, Some(Value::String(path))) if path.starts_with('/') => {
                Ok(SecretRef::File(PathBuf::from(path)))
            }
            (1, None, Some(Value::String(path))) => Err(self.err(
                entity,
                field,
                format!("file reference \"{path}\" is not an absolute path"),
                "use an absolute path",
            )),
            (1, Some(Value::String(name)), None) => Err(self.err(
                entity,
                field,
                format!("\"{name}\" is not an environment variable name"),
                "use letters, digits and underscores, not starting with a digit",
            )),
            _ => Err(self.err(
                entity,
                field,
                "expected exactly one of \"env\" or \"file\" with a string value",
                fix,
            )),
        }
    }

    fn holder(
        &self,
        kind: &str,
        raw: RawWorkspace,
        sas: &BTreeMap<String, ServiceAccount>,
    ) -> Result<(String, Option<String>), ConfigError> {
        let entity = format!("{kind} \"{}\"", raw.id);
        check_id(&raw.id)
            .map_err(|e| self.err(&entity, "id", e, "use letters, digits and _+=,.@-"))?;
        if let Some(sa) = &raw.service_account
            && !sas.contains_key(sa)
        {
            return Err(self.err(
                &entity,
                "service_account",
                format!("unknown service account \"{sa}\""),
                format!(
                    "use one of {} or add it to service_accounts",
                    list_ids(sas.keys())
                ),
            ));
        }
        Ok((raw.id, raw.service_account))
    }

    fn data_plane(&self, raw: RawDataPlane) -> Result<DataPlane, ConfigError> {
        let entity = format!("data_plane \"{}\"", raw.id);
        check_id(&raw.id)
            .map_err(|e| self.err(&entity, "id", e, "use letters, digits and _+=,.@-"))?;
        let mut s3 = Vec::new();
        for uri in &raw.s3 {
            let loc = S3Location::parse(uri).map_err(|e| {
                self.err(&entity, "s3", e, "write locations as s3://bucket/prefix/")
            })?;
            if !s3.contains(&loc) {
                s3.push(loc);
            }
        }
        let mut glue = Vec::new();
        for db in &raw.glue_databases {
            check_glue_database(db).map_err(|e| {
                self.err(
                    &entity,
                    "glue_databases",
                    e,
                    "use the Glue database's exact name",
                )
            })?;
            if !glue.contains(db) {
                glue.push(db.clone());
            }
        }
        Ok(DataPlane {
            id: raw.id,
            s3,
            glue_databases: glue,
        })
    }

    fn cross_checks(
        &self,
        s: &Settings,
        aws: &AwsSettings,
        dps: &BTreeMap<String, DataPlane>,
    ) -> Result<(), ConfigError> {
        if !s.session_policy_enabled {
            return Ok(());
        }
        if aws.session_policy_role_arn.is_none() {
            return Err(self.err(
                "aws",
                "session_policy_role_arn",
                "missing while syntasa_session_policy_enabled is \"true\"",
                "set the role that session-policy credentials are assumed from",
            ));
        }
        if !s.session_policy_platform_folders.is_empty() && aws.platform_bucket.is_none() {
            return Err(self.err(
                "aws",
                "platform_bucket",
                "missing while session_policy_platform_folders is not empty",
                "set aws.platform_bucket, or set session_policy_platform_folders to \"\"",
            ));
        }
        if aws.account_id.is_none()
            && let Some(dp) = dps.values().find(|d| !d.glue_databases.is_empty())
        {
            return Err(self.err(
                "aws",
                "account_id",
                format!(
                    "missing; data_plane \"{}\" has Glue databases, whose ARNs need it",
                    dp.id
                ),
                "set aws.account_id to the 12-digit account id",
            ));
        }
        Ok(())
    }
}

/// Platform folder names: a plain prefix inside the platform bucket; `{user}` and
/// `{workspace}` are the only placeholders.
fn check_folder(f: &str) -> Result<(), String> {
    let stripped = f.replace("{user}", "").replace("{workspace}", "");
    if let Some(c) = stripped.chars().find(|c| {
        matches!(c, '*' | '?' | '$' | '{' | '}' | '"' | '\\') || c.is_control() || c.is_whitespace()
    }) {
        return Err(format!(
            "folder \"{f}\" contains '{}' (only {{user}} and {{workspace}} placeholders are allowed)",
            c.escape_default()
        ));
    }
    if f.contains("//") {
        return Err(format!("folder \"{f}\" contains an empty path segment"));
    }
    Ok(())
}

fn is_env_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn list_ids<'a>(ids: impl Iterator<Item = &'a String>) -> String {
    let ids: Vec<&str> = ids.map(String::as_str).collect();
    if ids.is_empty() {
        "(none defined)".into()
    } else {
        ids.join(", ")
    }
}

/// The known key nearest to a mistyped one, if any is close.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 5))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_log_must_be_stderr_or_an_absolute_path() {
        let no_env = |_: &str| None;
        let doc = |log: &str| {
            format!(
                r#"{{"aws": {{"region": "us-east-1"}}, "settings": {{"decision_log": "{log}"}}}}"#
            )
        };
        let e = load_str(&doc("logs/decisions.jsonl"), "p.json", &no_env).unwrap_err();
        assert_eq!(e.field, "decision_log");
        assert!(
            e.problem.contains("relative path") && e.fix.contains("absolute path"),
            "{e}"
        );
        for ok in ["stderr", "/var/log/provisioner/decisions.jsonl"] {
            assert!(load_str(&doc(ok), "p.json", &no_env).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_key_with_a_line_break_is_reported_on_one_line() {
        let e = load_str("{\"a\\nb\": 1}", "p.json", &|_: &str| None).unwrap_err();
        let line = e.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("a\\nb"), "{line}");
        let e = load_str("{\"\\n\"", "p.json", &|_: &str| None).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn a_syntax_error_inside_an_object_names_the_object_not_a_field_called_question_mark() {
        let e = load_str(r#"{"settings": {,}}"#, "p.json", &|_: &str| None).unwrap_err();
        assert_eq!((e.entity.as_str(), e.field.as_str()), ("settings", ""));
        assert!(!e.to_string().contains("\"?\""), "{e}");
    }
}
