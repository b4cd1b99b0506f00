//! Service accounts, their secret references, the holders of a service account
//! (workspaces, runtime templates) and data planes, each validated on its own.

use super::*;

/// Platform folder names: a plain prefix inside the platform bucket; `{user}` and
/// `{workspace}` are the only placeholders.
pub(super) fn check_folder(f: &str) -> Result<(), String> {
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

/// Unix login and group names: portable characters only, so that a name in the file
/// cannot mean something else to the user database.
pub(super) fn check_unix_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 32
        && !n.starts_with('-')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{}\" is not a Unix name (1-32 of a-z, A-Z, 0-9, _ - ., not starting with -)",
            n.escape_default()
        ))
    }
}

pub(super) fn is_env_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Validator<'_> {
    pub(super) fn service_account(
        &mut self,
        raw: RawServiceAccount,
    ) -> Result<ServiceAccount, ConfigError> {
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

    pub(super) fn secret_ref(
        &self,
        entity: &str,
        field: &str,
        v: &Value,
    ) -> Result<SecretRef, ConfigError> {
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

    pub(super) fn holder(
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

    /// A `users` list: user ids (checked like ids) or `"*"` alone.
    pub(super) fn user_list(
        &self,
        entity: &str,
        field: &str,
        raw: Option<&[String]>,
    ) -> Result<Option<UserList>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let mut list = UserList {
            everyone: false,
            ids: Vec::new(),
        };
        for u in raw {
            if u == "*" {
                list.everyone = true;
            } else {
                check_id(u).map_err(|e| {
                    self.err(
                        entity,
                        field,
                        format!("\"{u}\": {e}"),
                        "list user ids, or \"*\" for everyone",
                    )
                })?;
                list.ids.push(u.clone());
            }
        }
        if list.everyone && !list.ids.is_empty() {
            return Err(self.err(
                entity,
                field,
                "\"*\" is listed beside user ids".to_string(),
                "use \"*\" alone for everyone, or list the ids",
            ));
        }
        Ok(Some(list))
    }

    pub(super) fn proxy_users(
        &self,
        raw: Vec<RawProxyUser>,
    ) -> Result<Vec<ProxyUser>, ConfigError> {
        let mut out: Vec<ProxyUser> = Vec::new();
        for p in raw {
            let entity = format!("proxy_user \"{}\"", p.unix_user);
            check_unix_name(&p.unix_user).map_err(|e| {
                self.err(&entity, "unix_user", e, "use the service's Unix login name")
            })?;
            if out.iter().any(|o| o.unix_user == p.unix_user) {
                return Err(self.dup("proxy_user", &p.unix_user));
            }
            let users = self
                .user_list(&entity, "users", Some(&p.users))?
                .unwrap_or(UserList {
                    everyone: false,
                    ids: Vec::new(),
                });
            let mut groups = UserList {
                everyone: false,
                ids: Vec::new(),
            };
            for g in &p.groups {
                if g == "*" {
                    groups.everyone = true;
                } else {
                    check_unix_name(g).map_err(|e| {
                        self.err(
                            &entity,
                            "groups",
                            format!("\"{g}\": {e}"),
                            "list Unix group names, or \"*\"",
                        )
                    })?;
                    groups.ids.push(g.clone());
                }
            }
            if users.ids.is_empty() && !users.everyone && groups.ids.is_empty() && !groups.everyone
            {
                return Err(self.err(
                    &entity,
                    "users",
                    "neither users nor groups are listed".to_string(),
                    "list the users or Unix groups it may act for, or remove the entry",
                ));
            }
            out.push(ProxyUser {
                unix_user: p.unix_user,
                users,
                groups,
            });
        }
        Ok(out)
    }

    pub(super) fn data_plane(&self, raw: RawDataPlane) -> Result<DataPlane, ConfigError> {
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
                let fix = if db.bytes().any(|b| b.is_ascii_uppercase()) {
                    format!(
                        "write the name in lower case (\"{}\"), as Glue stores it",
                        db.to_ascii_lowercase()
                    )
                } else {
                    "use the Glue database's exact name".to_string()
                };
                self.err(&entity, "glue_databases", e, fix)
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
}
