//! Endpoint delivery: S3A gets the AWS SDK v2 container-credentials provider by name,
//! driver and executors the endpoint instead of keys ([`crate::endpoint`]), and JVMs
//! that use the remote (HTTPS) endpoint the truststore for its CA.
//!
//! The application token only reaches [`Injection::set`] (the properties file), through
//! the executors' `AWS_CONTAINER_AUTHORIZATION_TOKEN`; nothing here puts it on a command
//! line.

use crate::conf::{Effective, Source};
use crate::endpoint::Endpoint;

use super::{Deploy, Injection, Manager};

/// The SDK v2 provider that fetches from `AWS_CONTAINER_CREDENTIALS_FULL_URI` with the
/// token of `AWS_CONTAINER_AUTHORIZATION_TOKEN` or `..._TOKEN_FILE`, and fetches again
/// before the credentials expire. Named explicitly for endpoint delivery: Hadoop's
/// default chain reaches it through `IAMInstanceCredentialsProvider`, which falls back
/// to the instance metadata service (the node's role) after one error.
pub const CONTAINER_PROVIDER: &str =
    "software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider";

/// Whether executors (or a cluster-mode driver) of this deployment run where the
/// loopback endpoint cannot serve them: on other hosts, or for `local-cluster`
/// when a remote endpoint is configured (separate JVMs, as on a cluster).
pub fn needs_remote_endpoint(deploy: Deploy, remote_configured: bool) -> bool {
    match deploy.manager {
        Manager::Local => false,
        Manager::LocalCluster => remote_configured,
        Manager::Standalone | Manager::Yarn | Manager::Kubernetes | Manager::Other => true,
    }
}

/// The variables of executors (and a cluster-mode driver) for `region`: the remote
/// endpoint's when they need it and one is configured, else the loopback endpoint's.
pub(super) fn env_values(
    e: &Endpoint,
    remote: bool,
    region: Option<&str>,
) -> Vec<(&'static str, String)> {
    if remote {
        e.remote_vars(region)
            .unwrap_or_else(|| e.local_vars(region))
    } else {
        e.local_vars(region)
    }
}

/// JVMs that use the remote endpoint trust its CA: `-Djavax.net.ssl.trustStore` (and
/// its password, which guards only the store's integrity) added to the executors'
/// (and a cluster-mode driver's) `extraJavaOptions`, after what the user set there.
/// The truststore replaces the JVM's default one, so it must hold the CAs S3 and
/// other services need as well (README.md, "Executors on other hosts").
pub(super) fn trust_for_remote_jvms(
    inj: &mut Injection,
    eff: &Effective,
    deploy: Deploy,
    e: &Endpoint,
) {
    let Some(ts) = e.remote.as_ref().and_then(|r| r.truststore.as_ref()) else {
        return;
    };
    let mut opts = format!("-Djavax.net.ssl.trustStore={}", ts.path.display());
    if let Some(p) = &ts.password {
        opts.push_str(&format!(" -Djavax.net.ssl.trustStorePassword={p}"));
    }
    let mut keys = vec!["spark.executor.extraJavaOptions"];
    if deploy.cluster {
        keys.push("spark.driver.extraJavaOptions");
    }
    for key in keys {
        match eff.entries.get(key) {
            Some(entry) => {
                let value = format!("{} {opts}", entry.value);
                if matches!(entry.source, Source::Cli(_)) {
                    // --conf wins over the file: the combined value goes there too.
                    inj.cli.push((key.to_string(), value));
                } else {
                    inj.set.insert(key.to_string(), value);
                }
            }
            None => {
                inj.set.insert(key.to_string(), opts.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::test_support::*;
    use super::super::{Delivery, EXECUTOR_ENV, YARN_AM_ENV, plan_delivery};
    use super::*;
    use crate::endpoint::{Remote, Truststore};

    fn endpoint(remote: bool) -> Endpoint {
        Endpoint {
            uri: "http://127.0.0.1:4711/v1/credentials".into(),
            token_file: "/run/user/1000/provisioner/session.token".into(),
            remote: remote.then(|| Remote {
                uri: "https://broker.internal:8443/v1/credentials".into(),
                token: "APPTOKENVALUE".into(),
                truststore: Some(Truststore {
                    path: "/etc/provisioner/truststore.p12".into(),
                    password: Some("changeit".into()),
                }),
            }),
        }
    }

    const KEY_VARS: [&str; 3] = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ];

    #[test]
    fn endpoint_names_the_container_provider_and_passes_the_endpoint_not_keys() {
        let eff = Effective::merge(&[], None, None, false);
        let e = endpoint(false);
        let inj = plan_delivery(
            &eff,
            Delivery::Endpoint(&e),
            REGION,
            Deploy::from(Some("local[2]"), None),
        );
        let s = &inj.set;
        assert_eq!(
            s["spark.hadoop.fs.s3a.aws.credentials.provider"],
            CONTAINER_PROVIDER
        );
        assert_eq!(
            CONTAINER_PROVIDER,
            "software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider"
        );
        for k in ["access.key", "secret.key", "session.token"] {
            assert!(!s.contains_key(&format!("spark.hadoop.fs.s3a.{k}")), "{k}");
        }
        assert_eq!(
            s["spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            e.uri
        );
        assert_eq!(
            s["spark.executorEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"],
            "/run/user/1000/provisioner/session.token"
        );
        assert_eq!(s["spark.executorEnv.AWS_EC2_METADATA_DISABLED"], "true");
        assert_eq!(s["spark.executorEnv.AWS_REGION"], "us-east-1");
        for v in KEY_VARS {
            assert!(!s.contains_key(&format!("spark.executorEnv.{v}")), "{v}");
        }
        // The session token itself is in none of it: only its file's path.
        assert!(!s.contains_key("spark.executorEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN"));
        assert!(!s.contains_key("spark.executor.extraJavaOptions"));
        assert!(inj.cli.is_empty() && inj.warnings.is_empty(), "{inj:?}");
    }

    #[test]
    fn endpoint_replaces_every_provider_and_key_the_user_set() {
        let eff = Effective::merge(
            &cli(&[
                (
                    "spark.hadoop.fs.s3a.bucket.logs.aws.credentials.provider",
                    "org.apache.hadoop.fs.s3a.auth.IAMInstanceCredentialsProvider",
                ),
                (
                    "spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "http://127.0.0.1:9/elsewhere",
                ),
                (
                    "spark.executorEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN",
                    "stolen",
                ),
                ("spark.executorEnv.AWS_SECRET_ACCESS_KEY", "usersecret"),
            ]),
            Some(map(&[
                ("spark.hadoop.fs.s3a.access.key", "AKIAUSER"),
                ("spark.hadoop.fs.s3a.secret.key", "usersecret"),
                (
                    "spark.hadoop.fs.s3a.aws.credentials.provider",
                    "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
                ),
                (
                    "spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider",
                    "com.amazonaws.auth.InstanceProfileCredentialsProvider",
                ),
                ("spark.hadoop.fs.s3a.bucket.raw.access.key", "AKIAUSER"),
                ("spark.hadoop.fs.s3a.bucket.raw.secret.key", "usersecret"),
                ("spark.executorEnv.AWS_ACCESS_KEY_ID", "AKIAUSER"),
            ])),
            None,
            false,
        );
        let e = endpoint(false);
        let inj = plan_delivery(
            &eff,
            Delivery::Endpoint(&e),
            REGION,
            Deploy::from(Some("local[*]"), None),
        );
        let m = inj.merged_file(&eff);
        assert_eq!(
            m["spark.hadoop.fs.s3a.aws.credentials.provider"],
            CONTAINER_PROVIDER
        );
        assert_eq!(
            m["spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider"],
            CONTAINER_PROVIDER
        );
        for k in [
            "spark.hadoop.fs.s3a.access.key",
            "spark.hadoop.fs.s3a.secret.key",
            "spark.hadoop.fs.s3a.bucket.raw.access.key",
            "spark.hadoop.fs.s3a.bucket.raw.secret.key",
            "spark.hadoop.fs.s3a.bucket.raw.session.token",
            "spark.executorEnv.AWS_ACCESS_KEY_ID",
        ] {
            assert!(!m.contains_key(k), "{k}");
        }
        let cli: BTreeMap<_, _> = inj.cli.iter().cloned().collect();
        assert_eq!(
            cli["spark.hadoop.fs.s3a.bucket.logs.aws.credentials.provider"],
            CONTAINER_PROVIDER
        );
        // The endpoint's address and the token file's path are no secrets: they win on
        // the command line; a token or a key from --conf is emptied there.
        assert_eq!(
            cli["spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            e.uri
        );
        assert_eq!(
            cli["spark.executorEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN"],
            ""
        );
        assert_eq!(cli["spark.executorEnv.AWS_SECRET_ACCESS_KEY"], "");
        assert!(!cli.contains_key("spark.hadoop.fs.s3a.aws.credentials.provider"));
        assert!(
            inj.warnings
                .iter()
                .any(|w| w.contains("fetches them from the credentials endpoint")),
            "{:#?}",
            inj.warnings
        );
        assert_eq!(inj.warnings.len(), 11, "{:#?}", inj.warnings);
        assert!(
            inj.warnings
                .iter()
                .all(|w| !w.contains("usersecret") && !w.contains("stolen"))
        );
    }

    #[test]
    fn where_executors_need_the_remote_endpoint() {
        let d = |m: &str| Deploy::from(Some(m), None);
        assert!(!needs_remote_endpoint(d("local[2]"), true));
        assert_eq!(d("local-cluster[2,1,1024]").manager, Manager::LocalCluster);
        assert!(!needs_remote_endpoint(d("local-cluster[2,1,1024]"), false));
        assert!(needs_remote_endpoint(d("local-cluster[2,1,1024]"), true));
        for m in [
            "yarn",
            "spark://m:7077",
            "k8s://https://api:6443",
            "mesos://x",
        ] {
            assert!(needs_remote_endpoint(d(m), false), "{m}");
        }
    }

    #[test]
    fn remote_executors_get_the_https_endpoint_an_application_token_and_the_truststore() {
        let eff = Effective::merge(
            &cli(&[
                ("spark.executor.extraJavaOptions", "-XX:+UseG1GC"),
                // A user who knows the application token still cannot put it on the
                // command line through the wrapper.
                (
                    "spark.executorEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN",
                    "APPTOKENVALUE",
                ),
            ]),
            None,
            None,
            false,
        );
        let e = endpoint(true);
        let inj = plan_delivery(
            &eff,
            Delivery::Endpoint(&e),
            REGION,
            Deploy::from(Some("yarn"), Some("cluster")),
        );
        let s = &inj.set;
        for prefix in [EXECUTOR_ENV, YARN_AM_ENV] {
            assert_eq!(
                s[&format!("{prefix}AWS_CONTAINER_CREDENTIALS_FULL_URI")],
                "https://broker.internal:8443/v1/credentials"
            );
            assert_eq!(
                s[&format!("{prefix}AWS_CONTAINER_AUTHORIZATION_TOKEN")],
                "APPTOKENVALUE"
            );
            // Shadowed: an inherited session token file would win in botocore.
            assert_eq!(
                s[&format!("{prefix}AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")],
                ""
            );
        }
        let trust = "-Djavax.net.ssl.trustStore=/etc/provisioner/truststore.p12 -Djavax.net.ssl.trustStorePassword=changeit";
        assert_eq!(s["spark.driver.extraJavaOptions"], trust);
        let cli: BTreeMap<_, _> = inj.cli.iter().cloned().collect();
        assert_eq!(
            cli["spark.executor.extraJavaOptions"],
            format!("-XX:+UseG1GC {trust}")
        );
        assert!(inj.cli.iter().all(|(_, v)| !v.contains("APPTOKENVALUE")));

        // local-cluster with a remote endpoint: executors use it (separate JVMs).
        let eff = Effective::merge(&[], None, None, false);
        let inj = plan_delivery(
            &eff,
            Delivery::Endpoint(&e),
            None,
            Deploy::from(Some("local-cluster[2,1,1024]"), None),
        );
        assert_eq!(
            inj.set["spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            "https://broker.internal:8443/v1/credentials"
        );
        assert_eq!(inj.set["spark.executor.extraJavaOptions"], trust);
        assert!(!inj.set.contains_key("spark.driver.extraJavaOptions"));
        // plain local: the loopback endpoint and the token file, no truststore.
        let inj = plan_delivery(
            &eff,
            Delivery::Endpoint(&e),
            None,
            Deploy::from(Some("local[2]"), None),
        );
        assert_eq!(
            inj.set["spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            e.uri
        );
        assert!(!inj.set.contains_key("spark.executor.extraJavaOptions"));
    }
}
