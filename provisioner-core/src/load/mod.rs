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

mod entities;
mod platform;
mod raw;
mod settings;
mod suggest;

use entities::*;
use raw::*;
use suggest::*;

pub use settings::setting_env_names;
use settings::*;

/// Where the platform file is looked for when no `--config` is given and
/// `SYN_PLATFORM_CONFIG` is unset.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/provisioner/platform.json";

/// The IAM path managed session policies live under unless `aws.managed_policy_path`
/// says otherwise.
pub const DEFAULT_MANAGED_POLICY_PATH: &str = "/provisioner/";

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

    fn dup(&self, kind: &str, id: &str) -> ConfigError {
        self.err(
            format!("{kind} \"{id}\""),
            "id",
            format!("duplicate {kind} id \"{id}\""),
            "give each entity a unique id",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
