//! The platform model: service accounts, workspaces, runtime templates, data planes,
//! users and settings, as validated values.
//!
//! Every value in here has passed validation in [`crate::load`]: role ARNs parse, S3
//! locations are normalised, references resolve. Code that holds a [`Platform`] never
//! re-checks them. This module must never hold a secret value: static keys are kept as
//! references ([`SecretRef`]) and only read at mint time.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The whole platform, as loaded from one platform file plus environment overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Platform {
    /// Where the model came from (a path, or a name for tests), used in messages.
    pub source: String,
    pub settings: Settings,
    pub aws: AwsSettings,
    pub service_accounts: BTreeMap<String, ServiceAccount>,
    pub workspaces: BTreeMap<String, Workspace>,
    pub runtime_templates: BTreeMap<String, RuntimeTemplate>,
    pub data_planes: BTreeMap<String, DataPlane>,
    pub users: BTreeMap<String, User>,
    /// Unix service users that may launch for others in broker mode (Hadoop's
    /// proxy-user pattern); see [`crate::access`].
    pub proxy_users: Vec<ProxyUser>,
    /// Things that loaded but deserve attention (e.g. a service account with both a role
    /// and keys). They are copied into every decision record.
    pub warnings: Vec<String>,
}

/// What to do when an identity cannot be used: fall through to the next tier, or refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    Fallback,
    Deny,
}

impl FailureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::Fallback => "fallback",
            FailureMode::Deny => "deny",
        }
    }
}

/// Platform settings (the `settings` object of the platform file).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `syntasa_session_policy_enabled`
    pub session_policy_enabled: bool,
    /// `syntasa_session_policy_duration`, 900..=43200 seconds.
    pub session_policy_duration: u32,
    /// `service_account_failure`
    pub service_account_failure: FailureMode,
    /// `session_policy_over_limit`
    pub session_policy_over_limit: FailureMode,
    /// `session_policy_bedrock`
    pub session_policy_bedrock: bool,
    /// `session_policy_platform_folders`: prefixes in the platform bucket, without
    /// trailing slash; may contain `{user}` and `{workspace}`.
    pub session_policy_platform_folders: Vec<String>,
    /// `sts_source_identity`: send the user as `SourceIdentity`.
    pub sts_source_identity: bool,
    /// `sts_session_tags`: send user, workspace, runtime template and flow as session tags.
    pub sts_session_tags: bool,
    /// `sts_deadline_seconds`: total time allowed for obtaining credentials per launch.
    pub sts_deadline_seconds: u32,
    /// `sts_max_attempts`: attempts per STS call, including the first.
    pub sts_max_attempts: u32,
    /// `decision_log`: where decision records go.
    pub decision_log: DecisionLog,
    /// `broker_min_remaining_seconds`: the broker hands out cached credentials only
    /// while at least this much of their lifetime is left.
    pub broker_min_remaining_seconds: u32,
    /// `broker_max_connections_per_uid`: concurrent connections one uid may hold open.
    pub broker_max_connections_per_uid: u32,
    /// `broker_max_sessions_per_uid`: live sessions (launched processes) per uid.
    pub broker_max_sessions_per_uid: u32,
    /// Set by `provisioner serve`, never read from a file: the launch's user was
    /// authenticated by the broker, and entitlement is strict (a workspace or runtime
    /// template holding a service account must list its users).
    pub brokered: bool,
    /// `credential_delivery`: how the broker delivers credentials (`endpoint`, the
    /// default, when it serves a credentials endpoint; else `environment`).
    pub credential_delivery: CredentialDelivery,
    /// `credential_lifetime_seconds`: the lifetime the broker asks STS for when it
    /// delivers through its endpoint; bounds how long a removed user keeps access.
    pub credential_lifetime_seconds: u32,
    /// `max_session_seconds`: a broker session (and its refreshes) ends this long after
    /// its launch even if the process still runs.
    pub max_session_seconds: u32,
    /// `session_policy_managed`: when the session policy is split into managed session
    /// policies passed as `PolicyArns` (see [`crate::policy::managed`]).
    pub session_policy_managed: ManagedMode,
}

/// How brokered credentials reach the launched process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialDelivery {
    /// The broker's container-credentials endpoint; SDKs refresh by themselves.
    Endpoint,
    /// Keys written once into the environment; they expire with the credentials.
    Environment,
}

impl CredentialDelivery {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialDelivery::Endpoint => "endpoint",
            CredentialDelivery::Environment => "environment",
        }
    }
}

/// When a session-policy launch passes managed session policies (`PolicyArns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagedMode {
    /// The inline policy alone when it fits in 2,048 characters, else the managed layout.
    Auto,
    /// Always the managed layout.
    Always,
    /// Never: a policy that does not fit inline is over the limit.
    Never,
}

impl ManagedMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ManagedMode::Auto => "auto",
            ManagedMode::Always => "always",
            ManagedMode::Never => "never",
        }
    }
}

/// Where decision records are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionLog {
    Stderr,
    File(PathBuf),
}

/// The `aws` object of the platform file.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsSettings {
    pub region: String,
    pub account_id: Option<String>,
    pub session_policy_role_arn: Option<RoleArn>,
    pub platform_bucket: Option<String>,
    pub sts_endpoint: Option<String>,
    /// Endpoint override for IAM, used only by the admin commands (`policies sync`,
    /// `audit --aws`); a launch never calls IAM.
    pub iam_endpoint: Option<String>,
    /// `managed_policy_path`: the IAM path every managed session policy lives under
    /// (`/` or `/a/b/`).
    pub managed_policy_path: String,
}

impl AwsSettings {
    /// The ARN partition used for policy resources: the session-policy role's, else
    /// the one the region belongs to.
    pub fn partition(&self) -> &str {
        if let Some(arn) = &self.session_policy_role_arn {
            return arn.partition();
        }
        partition_of_region(&self.region)
    }
}

/// The AWS partition a region belongs to.
pub fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// A validated IAM role ARN: `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`.
/// ACCOUNT may be empty (S3-compatible STS servers such as Ceph radosgw).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoleArn {
    text: String,
    partition_end: usize,
}

impl RoleArn {
    /// Parses a role ARN, or says what is wrong with it.
    pub fn parse(s: &str) -> Result<RoleArn, String> {
        let expected = "expected arn:aws:iam::123456789012:role/NAME";
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(format!("\"{s}\" is not an ARN ({expected})"));
        }
        let (partition, service, region, account, resource) =
            (parts[1], parts[2], parts[3], parts[4], parts[5]);
        if !is_partition(partition) {
            return Err(format!(
                "\"{s}\" has partition \"{partition}\" ({expected}; partitions are aws, aws-cn, aws-us-gov, ...)"
            ));
        }
        if service != "iam" {
            return Err(format!("\"{s}\" is not an IAM ARN ({expected})"));
        }
        if !region.is_empty() {
            return Err(format!(
                "\"{s}\" has a region; IAM ARNs have none ({expected})"
            ));
        }
        if !(account.is_empty()
            || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())))
        {
            return Err(format!(
                "\"{s}\" has account \"{account}\"; an account id is 12 digits (or empty for S3-compatible STS servers)"
            ));
        }
        let Some(path_name) = resource.strip_prefix("role/") else {
            return Err(format!("\"{s}\" is not a role ARN ({expected})"));
        };
        let name = path_name.rsplit('/').next().unwrap_or_default();
        if !is_role_name(name) {
            return Err(format!(
                "\"{s}\" has role name \"{name}\"; a role name is 1-64 characters of letters, digits and +=,.@_-"
            ));
        }
        let path = &path_name[..path_name.len() - name.len()];
        if !path.is_empty()
            && !path
                .split('/')
                .filter(|p| !p.is_empty())
                .all(is_role_path_segment)
        {
            return Err(format!(
                "\"{s}\" has role path \"/{path}\"; path segments are letters, digits and +=,.@_-"
            ));
        }
        Ok(RoleArn {
            text: s.to_string(),
            partition_end: 4 + partition.len(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn partition(&self) -> &str {
        &self.text[4..self.partition_end]
    }

    /// The role's name (last path segment), as `aws iam update-role --role-name` wants it.
    pub fn role_name(&self) -> &str {
        self.text.rsplit('/').next().unwrap_or_default()
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_partition(p: &str) -> bool {
    p == "aws"
        || (p.starts_with("aws-")
            && p.len() > 4
            && p[4..].bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
}

/// IAM's `[\w+=,.@-]` character class (ASCII word characters).
pub fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(is_iam_name_char)
}

fn is_role_path_segment(seg: &str) -> bool {
    seg.chars().all(is_iam_name_char)
}

/// A service account: an IAM role to assume, or an IAM user's static keys.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAccount {
    pub id: String,
    pub identity: ServiceAccountIdentity,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServiceAccountIdentity {
    Role {
        role_arn: RoleArn,
        external_id: Option<String>,
        duration_seconds: u32,
    },
    StaticKeys {
        access_key_id: SecretRef,
        secret_access_key: SecretRef,
    },
}

/// Where a secret lives. The value itself is read only when credentials are minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable of the launcher's process.
    Env(String),
    /// A file, read whole and trimmed of surrounding white space.
    File(PathBuf),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "environment variable {name}"),
            SecretRef::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub service_account: Option<String>,
    /// Who may launch with it; `None` when the file has no list.
    pub users: Option<UserList>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeTemplate {
    pub id: String,
    pub service_account: Option<String>,
    /// Who may launch with it; `None` when the file has no list.
    pub users: Option<UserList>,
}

/// A `users` list of the platform file: user ids, or `"*"` for everyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserList {
    pub everyone: bool,
    pub ids: Vec<String>,
}

impl UserList {
    pub fn admits(&self, user: &str) -> bool {
        self.everyone || self.ids.iter().any(|u| u == user)
    }
}

/// One `proxy_users` entry: the Unix user `unix_user` may launch for the platform
/// users in `users` and for members of the Unix groups in `groups` (`"*"` in either
/// means everyone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUser {
    pub unix_user: String,
    pub users: UserList,
    pub groups: UserList,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPlane {
    pub id: String,
    pub s3: Vec<S3Location>,
    pub glue_databases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub data_planes: Vec<String>,
    pub system_admin: bool,
    /// The Unix login of this user when it differs from the id (broker mode).
    pub unix_user: Option<String>,
}

/// An S3 location `s3://bucket/prefix/`. The prefix is empty (whole bucket) or ends in `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket/prefix/`. A prefix without a trailing slash is taken as a
    /// folder (`s3://b/p` is `s3://b/p/`): data planes own folders, not key fragments.
    pub fn parse(uri: &str) -> Result<S3Location, String> {
        let Some(rest) = uri.strip_prefix("s3://") else {
            return Err(format!(
                "\"{uri}\" is not an S3 URI (expected s3://bucket/prefix/)"
            ));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket_name(bucket).map_err(|e| format!("\"{uri}\": {e}"))?;
        let prefix = prefix.trim_start_matches('/');
        check_prefix(prefix).map_err(|e| format!("\"{uri}\": {e}"))?;
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix,
        })
    }

    /// True when every key under `other` is also under `self`.
    pub fn covers(&self, other: &S3Location) -> bool {
        self.bucket == other.bucket && other.prefix.starts_with(&self.prefix)
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// S3 bucket naming rules (the general-purpose bucket rules).
pub fn check_bucket_name(b: &str) -> Result<(), String> {
    let ok_chars = b
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
    let ends_ok = b
        .bytes()
        .next()
        .zip(b.bytes().last())
        .is_some_and(|(f, l)| f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric());
    if !(3..=63).contains(&b.len()) || !ok_chars || !ends_ok || b.contains("..") {
        return Err(format!(
            "bucket name \"{b}\" is invalid (3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

/// Characters that would change the meaning of an ARN in a policy (wildcards, policy
/// variables) or cannot be part of an S3 key we scope to.
fn check_prefix(p: &str) -> Result<(), String> {
    if let Some(c) = p
        .chars()
        .find(|c| matches!(c, '*' | '?' | '$' | '"' | '\\') || c.is_control())
    {
        return Err(format!(
            "prefix \"{p}\" contains '{}', which would widen or break the session policy; use a plain folder path",
            c.escape_default()
        ));
    }
    if p.contains("//") {
        return Err(format!("prefix \"{p}\" contains an empty folder (//)"));
    }
    if p.len() > 900 {
        return Err(format!("prefix \"{p}\" is longer than 900 characters"));
    }
    Ok(())
}

/// Glue database names: letters, digits, underscores and hyphens, 1-255 characters, in
/// lower case. Glue folds a name to lower case when it stores it, and the case of the
/// ARN it authorizes is not documented: a policy naming `database/Sales` might match
/// nothing, or match only by accident.
pub fn check_glue_database(name: &str) -> Result<(), String> {
    let valid = (1..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(format!(
            "Glue database name \"{name}\" is invalid (1-255 letters, digits, underscores, hyphens; no wildcards)"
        ));
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "Glue database name \"{name}\" has upper-case letters; Glue stores database names in lower case, and the case of the ARNs it authorizes is not documented"
        ));
    }
    Ok(())
}

/// Ids of users, workspaces and runtime templates end up in session names, session
/// tags and policy prefixes, so they are held to characters that are safe in all three.
pub fn check_id(id: &str) -> Result<(), String> {
    if (1..=128).contains(&id.len()) && id.chars().all(is_iam_name_char) {
        Ok(())
    } else {
        Err(format!(
            "id \"{}\" is invalid (1-128 letters, digits and _+=,.@-)",
            id.escape_default()
        ))
    }
}
