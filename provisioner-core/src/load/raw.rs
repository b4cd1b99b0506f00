//! The platform file's shapes as serde reads them, before validation: unknown keys
//! are refused here, every value is checked by the validator.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlatform {
    #[serde(default)]
    pub(super) settings: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) aws: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) service_accounts: Vec<RawServiceAccount>,
    #[serde(default)]
    pub(super) workspaces: Vec<RawWorkspace>,
    #[serde(default)]
    pub(super) runtime_templates: Vec<RawWorkspace>,
    #[serde(default)]
    pub(super) data_planes: Vec<RawDataPlane>,
    #[serde(default)]
    pub(super) users: Vec<RawUser>,
    #[serde(default)]
    pub(super) proxy_users: Vec<RawProxyUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxyUser {
    pub(super) unix_user: String,
    #[serde(default)]
    pub(super) users: Vec<String>,
    #[serde(default)]
    pub(super) groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServiceAccount {
    pub(super) id: String,
    pub(super) role_arn: Option<String>,
    pub(super) external_id: Option<String>,
    pub(super) duration_seconds: Option<Value>,
    pub(super) access_key_id: Option<Value>,
    pub(super) secret_access_key: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkspace {
    pub(super) id: String,
    pub(super) service_account: Option<String>,
    pub(super) users: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDataPlane {
    pub(super) id: String,
    #[serde(default)]
    pub(super) s3: Vec<String>,
    #[serde(default)]
    pub(super) glue_databases: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) id: String,
    #[serde(default)]
    pub(super) data_planes: Vec<String>,
    #[serde(default)]
    pub(super) system_admin: bool,
    pub(super) unix_user: Option<String>,
}
