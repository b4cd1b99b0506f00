//! `--wrap-explain`: the dry run. Prints one JSON object — the decision, the final
//! argument vector, the merged conf and the `AWS_*` environment — and execs nothing.
//!
//! Everything printed goes through redaction first: a conf key matching Spark's
//! default `spark.redaction.regex` (`(?i)secret|password|token|access[.]?key`) shows
//! `<redacted>`, in the conf and in `--conf` tokens of the argument vector alike, and
//! so do environment variables whose names match it. This module must never print a
//! secret, even a placeholder-free one in propagation mode.

use std::collections::BTreeMap;
use std::ffi::OsString;

use serde_json::{Value, json};

use crate::args::Parsed;

pub const REDACTED: &str = "<redacted>";

/// Spark's default redaction regex, `(?i)secret|password|token|access[.]?key`.
pub fn is_sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("secret")
        || k.contains("password")
        || k.contains("token")
        || k.contains("accesskey")
        || k.contains("access.key")
}

/// The conf with sensitive values replaced.
pub fn redact_conf(conf: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    conf.iter()
        .map(|(k, v)| {
            let v = if is_sensitive(k) {
                REDACTED.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// One `--conf` value (`KEY=VALUE`) with the value redacted when the key is sensitive.
fn redact_conf_token(t: &str) -> String {
    match t.split_once('=') {
        Some((k, _)) if is_sensitive(k) => format!("{k}={REDACTED}"),
        _ => t.to_string(),
    }
}

/// The final argument vector for display: every `--conf` value whose key is
/// sensitive is redacted, the user's and the wrapper's alike.
pub fn redact_argv(final_args: &[OsString]) -> Vec<String> {
    // Re-parse the final vector: indices of the user's parse no longer apply after
    // insertion, and the final vector is what Spark will parse.
    let Ok(p) = Parsed::parse(final_args.to_vec()) else {
        return vec![REDACTED.to_string()];
    };
    let mut out: Vec<String> = final_args
        .iter()
        .map(|t| t.to_string_lossy().into_owned())
        .collect();
    for o in p.options.iter().filter(|o| o.name == "--conf") {
        let Some(slot) = out.get_mut(o.value_index) else {
            continue;
        };
        *slot = if o.value_index == o.index {
            // Joined form: `--conf=KEY=VALUE`.
            match slot.split_once('=') {
                Some((opt, rest)) => format!("{opt}={}", redact_conf_token(rest)),
                None => slot.clone(),
            }
        } else {
            redact_conf_token(slot)
        };
    }
    out
}

/// The `AWS_*` (and marker) part of an environment, redacted.
pub fn redact_env(vars: &[(OsString, OsString)]) -> BTreeMap<String, String> {
    vars.iter()
        .filter_map(|(k, v)| {
            let k = k.to_str()?;
            let relevant = k.starts_with("AWS_")
                || k == provisioner_core::marker::MARKER
                || k.starts_with("SPARK_SUBMIT_WRAP_");
            relevant.then(|| {
                let v = if is_sensitive(k) {
                    REDACTED.to_string()
                } else {
                    v.to_string_lossy().into_owned()
                };
                (k.to_string(), v)
            })
        })
        .collect()
}

/// Everything the dry run shows.
pub struct Report<'a> {
    pub decision: Value,
    pub mode: &'a str,
    pub deploy: String,
    pub spark_submit: Result<String, String>,
    pub argv: Option<Vec<String>>,
    pub properties_file: Option<String>,
    pub conf: Option<BTreeMap<String, String>>,
    pub cli_overrides: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Endpoint delivery: where driver and executors fetch their credentials
    /// ([`endpoint_summary`]); None with keys or without credentials.
    pub credentials_endpoint: Option<Value>,
    pub warnings: Vec<String>,
}

/// What the dry run says about endpoint delivery: the provider S3A is given, the
/// endpoint of this host and its token file (a path; the token is never read here),
/// and for executors elsewhere the remote address and truststore, never the
/// application token.
pub fn endpoint_summary(e: &crate::endpoint::Endpoint, executors_remote: bool) -> Value {
    json!({
        "s3a_provider": crate::inject::CONTAINER_PROVIDER,
        "uri": e.uri,
        "token_file": e.token_file.display().to_string(),
        "executors": if executors_remote { "remote" } else { "this host" },
        "remote_uri": e.remote.as_ref().map(|r| r.uri.clone()),
        "remote_token": e.remote.as_ref().map(|_| REDACTED),
        "truststore": e.remote.as_ref().and_then(|r| r.truststore.as_ref())
            .map(|t| t.path.display().to_string()),
    })
}

impl Report<'_> {
    pub fn to_json(&self) -> Value {
        let (real, real_error) = match &self.spark_submit {
            Ok(p) => (Value::String(p.clone()), Value::Null),
            Err(e) => (Value::Null, Value::String(e.clone())),
        };
        json!({
            "decision": self.decision,
            "mode": self.mode,
            "deploy": self.deploy,
            "spark_submit": real,
            "spark_submit_error": real_error,
            "argv": self.argv,
            "properties_file": self.properties_file,
            "conf": self.conf,
            "cli_overrides": self.cli_overrides,
            "env": self.env,
            "credentials_endpoint": self.credentials_endpoint,
            "warnings": self.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_redaction_rule() {
        for k in [
            "spark.hadoop.fs.s3a.secret.key",
            "spark.hadoop.fs.s3a.access.key",
            "spark.hadoop.fs.s3a.session.token",
            "spark.executorEnv.AWS_SECRET_ACCESS_KEY",
            "spark.executorEnv.AWS_SESSION_TOKEN",
            "spark.ssl.keyPassword",
            "x.accesskey",
        ] {
            assert!(is_sensitive(k), "{k}");
        }
        for k in [
            "spark.executorEnv.AWS_ACCESS_KEY_ID",
            "spark.master",
            "spark.hadoop.fs.s3a.aws.credentials.provider",
        ] {
            assert!(!is_sensitive(k), "{k}");
        }
    }

    #[test]
    fn argv_redaction_covers_both_forms_and_leaves_app_args() {
        let argv: Vec<OsString> = [
            "--conf",
            "spark.hadoop.fs.s3a.secret.key=S1",
            "--conf=spark.executorEnv.AWS_SESSION_TOKEN=T1",
            "-c",
            "spark.app.name=x",
            "app.py",
            "--conf",
            "secret=appvalue",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let out = redact_argv(&argv);
        let joined = out.join(" ");
        assert!(!joined.contains("S1") && !joined.contains("T1"), "{joined}");
        assert!(joined.contains("spark.app.name=x"));
        // After the primary resource: the application's own argument, not Spark conf.
        assert_eq!(out[7], "secret=appvalue");
    }
}
