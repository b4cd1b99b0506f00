//! The whole platform: each section in turn, duplicate ids, and the checks across
//! entities (references that must exist, combinations that cannot work).

use super::*;

impl Validator<'_> {
    pub(super) fn platform(mut self, raw: RawPlatform) -> Result<Platform, ConfigError> {
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
            let users = self.user_list(
                &format!("workspace \"{}\"", w.id),
                "users",
                w.users.as_deref(),
            )?;
            let (id, service_account) = self.holder("workspace", w, &service_accounts)?;
            if workspaces.contains_key(&id) {
                return Err(self.dup("workspace", &id));
            }
            workspaces.insert(
                id.clone(),
                Workspace {
                    id,
                    service_account,
                    users,
                },
            );
        }
        let mut runtime_templates = BTreeMap::new();
        for r in raw.runtime_templates {
            let users = self.user_list(
                &format!("runtime_template \"{}\"", r.id),
                "users",
                r.users.as_deref(),
            )?;
            let (id, service_account) = self.holder("runtime_template", r, &service_accounts)?;
            if runtime_templates.contains_key(&id) {
                return Err(self.dup("runtime_template", &id));
            }
            runtime_templates.insert(
                id.clone(),
                RuntimeTemplate {
                    id,
                    service_account,
                    users,
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
            if let Some(login) = &u.unix_user {
                check_unix_name(login).map_err(|e| {
                    self.err(&entity, "unix_user", e, "use the user's Unix login name")
                })?;
            }
            users.insert(
                u.id.clone(),
                User {
                    id: u.id,
                    data_planes: u.data_planes,
                    system_admin: u.system_admin,
                    unix_user: u.unix_user,
                },
            );
        }
        let proxy_users = self.proxy_users(raw.proxy_users)?;
        let lists = workspaces
            .values()
            .map(|w| (format!("workspace \"{}\"", w.id), w.users.as_ref()))
            .chain(
                runtime_templates
                    .values()
                    .map(|r| (format!("runtime_template \"{}\"", r.id), r.users.as_ref())),
            )
            .chain(
                proxy_users
                    .iter()
                    .map(|p| (format!("proxy_user \"{}\"", p.unix_user), Some(&p.users))),
            );
        for (entity, list) in lists {
            let Some(list) = list else { continue };
            if let Some(u) = list.ids.iter().find(|u| !users.contains_key(*u)) {
                return Err(self.err(
                    &entity,
                    "users",
                    format!("unknown user \"{u}\""),
                    format!(
                        "use one of {} or add the user to users",
                        list_ids(users.keys())
                    ),
                ));
            }
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
            proxy_users,
            warnings: self.warnings,
        })
    }

    pub(super) fn cross_checks(
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
        if aws.account_id.is_none() && s.session_policy_managed == ManagedMode::Always {
            return Err(self.err(
                "aws",
                "account_id",
                "missing while session_policy_managed is \"always\"; managed policy ARNs need it",
                "set aws.account_id to the 12-digit account id, or set session_policy_managed to \"auto\"",
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
