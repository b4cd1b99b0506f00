//! Keys delivery: the scoped keys in the S3A conf (globally and for buckets with keys
//! of their own), the provider that reads exactly those keys, and the provider that
//! reads the `AWS_*` variables the wrapper sets (for neutralised `--conf` keys). The
//! executors' `AWS_*` variables come from
//! `provisioner_core::credentials::Credentials::launch_vars`.
//!
//! Secrets handled here only go into [`Injection::set`], the properties file.

use provisioner_core::credentials::Credentials;

use super::Injection;

// Provider class names as Hadoop 3.4+ (AWS SDK v2) documents them. Hadoop's own two
// read `fs.s3a.access.key`, `.secret.key` (and `.session.token`) from the conf.
pub const TEMPORARY_PROVIDER: &str = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider";
pub const SIMPLE_PROVIDER: &str = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider";
/// The SDK v2 provider that reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN` from the process environment. Its SDK v1 name,
/// `com.amazonaws.auth.EnvironmentVariableCredentialsProvider`, still works (Hadoop maps
/// it), but costs a deprecation warning in every job's log.
pub const ENV_PROVIDER: &str =
    "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider";

/// The S3A provider that reads exactly the injected keys: the temporary one for
/// credentials with a session token, the simple one for static keys.
fn provider(creds: &Credentials) -> &'static str {
    if creds.session_token.is_some() {
        TEMPORARY_PROVIDER
    } else {
        SIMPLE_PROVIDER
    }
}

/// Writes the scoped keys under `prefix` (`spark.hadoop.fs.s3a.` or a bucket's
/// `spark.hadoop.fs.s3a.bucket.NAME.`), taking them off the list of keys left out of
/// the merged file; returns the provider that reads them.
pub(super) fn set_scoped(inj: &mut Injection, prefix: &str, creds: &Credentials) -> &'static str {
    inj.set
        .insert(format!("{prefix}access.key"), creds.access_key_id.clone());
    inj.set.insert(
        format!("{prefix}secret.key"),
        creds.secret_access_key.clone(),
    );
    if let Some(t) = &creds.session_token {
        inj.set.insert(format!("{prefix}session.token"), t.clone());
        inj.remove.remove(&format!("{prefix}session.token"));
    }
    for k in ["access.key", "secret.key"] {
        inj.remove.remove(&format!("{prefix}{k}"));
    }
    provider(creds)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Deploy, K8S_DRIVER_ENV, plan};
    use super::*;
    use crate::conf::Effective;

    #[test]
    fn injects_temporary_provider_and_env_for_yarn_cluster() {
        let eff = Effective::merge(&[], None, None, false);
        let inj = plan(
            &eff,
            &scoped(true),
            REGION,
            Deploy::from(Some("yarn"), Some("cluster")),
        );
        let s = &inj.set;
        assert_eq!(
            s["spark.hadoop.fs.s3a.aws.credentials.provider"],
            TEMPORARY_PROVIDER
        );
        assert_eq!(s["spark.hadoop.fs.s3a.session.token"], "TOKENVALUE");
        assert_eq!(s["spark.executorEnv.AWS_SECRET_ACCESS_KEY"], "SECRETVALUE");
        assert_eq!(s["spark.yarn.appMasterEnv.AWS_SESSION_TOKEN"], "TOKENVALUE");
        assert_eq!(s["spark.executorEnv.AWS_EC2_METADATA_DISABLED"], "true");
        assert!(!s.keys().any(|k| k.starts_with(K8S_DRIVER_ENV)));
        assert!(inj.cli.is_empty() && inj.warnings.is_empty());
    }

    #[test]
    fn static_keys_use_simple_provider_and_drop_user_tokens() {
        let eff = Effective::merge(
            &[],
            Some(map(&[
                ("spark.hadoop.fs.s3a.session.token", "old"),
                ("spark.executorEnv.AWS_SESSION_TOKEN", "old"),
            ])),
            None,
            false,
        );
        let inj = plan(
            &eff,
            &scoped(false),
            REGION,
            Deploy::from(Some("local[2]"), None),
        );
        assert_eq!(
            inj.set["spark.hadoop.fs.s3a.aws.credentials.provider"],
            SIMPLE_PROVIDER
        );
        let merged = inj.merged_file(&eff);
        assert!(!merged.contains_key("spark.hadoop.fs.s3a.session.token"));
        assert!(!merged.contains_key("spark.executorEnv.AWS_SESSION_TOKEN"));
        assert_eq!(inj.warnings.len(), 2);
    }

    #[test]
    fn user_region_stands() {
        let eff = Effective::merge(
            &cli(&[("spark.executorEnv.AWS_REGION", "eu-west-1")]),
            None,
            None,
            false,
        );
        let inj = plan(&eff, &scoped(true), REGION, Deploy::from(None, None));
        assert!(!inj.set.contains_key("spark.executorEnv.AWS_REGION"));
        assert!(inj.cli.is_empty());
    }

    #[test]
    fn scoped_debug_hides_secrets() {
        let s = format!("{:?}", scoped(true));
        assert!(
            !s.contains("SECRETVALUE") && !s.contains("TOKENVALUE"),
            "{s}"
        );
    }
}
