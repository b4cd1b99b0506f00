//! Endpoint delivery: the job fetches (and refreshes) its credentials from a
//! container-credentials endpoint instead of carrying keys (README.md, "Long-running
//! jobs"; ARCHITECTURE.md, "spark-submit-wrap").
//!
//! A provisioned kernel in endpoint mode holds `AWS_CONTAINER_CREDENTIALS_FULL_URI` (http
//! on loopback) and `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (a file only its user can
//! read) and no keys. The wrapper running inside it passes that endpoint on:
//!
//! * S3A gets the AWS SDK v2 `ContainerCredentialsProvider` by name, globally and for
//!   every bucket with a provider of its own. Hadoop's default chain is not used: its
//!   `IAMInstanceCredentialsProvider` turns to the instance metadata service, the node's
//!   own role, after one error from the container endpoint.
//! * The driver's process environment (client and local mode) holds the two endpoint
//!   variables and none of `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` or
//!   `AWS_SESSION_TOKEN`: Spark copies those into static `fs.s3a.*` keys.
//! * Executors get the same variables through `spark.executorEnv.*` (and the YARN
//!   application master or Kubernetes driver pod in cluster mode), in the private
//!   properties file.
//! * Executors in other JVMs that cannot use the loopback address (other hosts; or, when
//!   one is configured, Spark's `local-cluster`) get the endpoint's HTTPS address
//!   ([`Remote`]), a per-application token in `AWS_CONTAINER_AUTHORIZATION_TOKEN` (in the
//!   properties file only) and, when given, a Java truststore that trusts the endpoint's
//!   CA through `spark.executor.extraJavaOptions`.
//!
//! The session token itself never leaves its file: only its path travels. The
//! application token is a secret: this module hands it only to [`crate::inject`], which
//! writes it into the properties file; it never goes on a command line, into a record
//! or a log.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use provisioner_core::credentials::{
    AWS_DEFAULT_REGION, AWS_EC2_METADATA_DISABLED, AWS_REGION, REMOVED_WHEN_CREDENTIALS,
    SET_WHEN_CREDENTIALS,
};
use provisioner_core::decision::Decision;
use provisioner_core::marker::{MARKER, Marker};

pub const FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
pub const TOKEN_FILE: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
pub const TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";

/// The wrapper's settings for executors that cannot reach the loopback endpoint.
pub const REMOTE_URL_VAR: &str = "SYN_EXECUTOR_CREDENTIALS_URL";
pub const REMOTE_TOKEN_FILE_VAR: &str = "SYN_EXECUTOR_CREDENTIALS_TOKEN_FILE";
pub const TRUSTSTORE_VAR: &str = "SYN_EXECUTOR_TRUSTSTORE";
pub const TRUSTSTORE_PASSWORD_VAR: &str = "SYN_EXECUTOR_TRUSTSTORE_PASSWORD";

/// The container-credentials endpoint a job uses.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` for the driver and executors on this host.
    pub uri: String,
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`: where the session's token is.
    pub token_file: PathBuf,
    /// For executors in JVMs that do not use the loopback endpoint.
    pub remote: Option<Remote>,
}

/// The endpoint as executors on other hosts reach it: HTTPS, an application token.
#[derive(Clone, PartialEq, Eq)]
pub struct Remote {
    /// `https://HOST:PORT/PATH`.
    pub uri: String,
    /// The application token (a secret: properties file only).
    pub token: String,
    /// A Java truststore (on every node) that trusts the endpoint's CA, if the JVM's
    /// default one does not.
    pub truststore: Option<Truststore>,
}

/// A Java truststore: its path and the password of its integrity check (not a secret:
/// a truststore holds only public certificates).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Truststore {
    pub path: PathBuf,
    pub password: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("uri", &self.uri)
            .field("token_file", &self.token_file)
            .field("remote", &self.remote)
            .finish()
    }
}

impl fmt::Debug for Remote {
    /// Never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("uri", &self.uri)
            .field("token", &"<redacted>")
            .field("truststore", &self.truststore)
            .finish()
    }
}

impl Endpoint {
    /// True when `value` is the application token (callers keep it off command lines).
    pub fn is_secret(&self, value: &str) -> bool {
        self.remote
            .as_ref()
            .is_some_and(|r| !r.token.is_empty() && r.token == value)
    }

    /// The variables of a JVM on this host, in order: the endpoint, its token file, the
    /// region (when there is one) and `AWS_EC2_METADATA_DISABLED=true`.
    pub fn local_vars(&self, region: Option<&str>) -> Vec<(&'static str, String)> {
        let mut v = vec![
            (FULL_URI, self.uri.clone()),
            (TOKEN_FILE, self.token_file.display().to_string()),
        ];
        push_region_and_metadata(&mut v, region);
        v
    }

    /// The variables of a JVM that uses the remote endpoint, in order; None without one.
    pub fn remote_vars(&self, region: Option<&str>) -> Option<Vec<(&'static str, String)>> {
        let r = self.remote.as_ref()?;
        let mut v = vec![(FULL_URI, r.uri.clone()), (TOKEN, r.token.clone())];
        push_region_and_metadata(&mut v, region);
        Some(v)
    }
}

fn push_region_and_metadata(v: &mut Vec<(&'static str, String)>, region: Option<&str>) {
    if let Some(r) = region.filter(|r| !r.is_empty()) {
        v.push((AWS_REGION, r.to_string()));
        v.push((AWS_DEFAULT_REGION, r.to_string()));
    }
    v.push((AWS_EC2_METADATA_DISABLED, "true".into()));
}

/// Whether `uri` is one the AWS SDKs accept over plain HTTP (a loopback host) or HTTPS.
/// Returns the problem otherwise.
pub fn check_uri(uri: &str) -> Result<(), String> {
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| format!("\"{uri}\" is not an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .trim();
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    if host.is_empty() {
        return Err(format!("\"{uri}\" has no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => Err(format!(
            "\"{uri}\" is plain http to a host that is not loopback; the AWS SDKs refuse that (use https)"
        )),
        _ => Err(format!("\"{uri}\" is not an http:// or https:// URL")),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The process environment of `spark-submit` (and of the driver in client and local
/// mode) for endpoint delivery: every credential source of the parent removed (every
/// entry of every name, as `provisioner_core::child_env` does for keys, and any
/// `AWS_CONTAINER_*`), then the endpoint's variables and the marker appended.
pub fn child_env(
    parent: Vec<(OsString, OsString)>,
    decision: &Decision,
    endpoint: &Endpoint,
    region: Option<&str>,
) -> Vec<(OsString, OsString)> {
    let mut vars: Vec<(OsString, OsString)> = parent
        .into_iter()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !(k == MARKER
                || k.starts_with("AWS_CONTAINER_")
                || SET_WHEN_CREDENTIALS.contains(&k.as_ref())
                || REMOVED_WHEN_CREDENTIALS.contains(&k.as_ref()))
        })
        .collect();
    for (k, v) in endpoint.local_vars(region) {
        vars.push((k.into(), v.into()));
    }
    vars.push((
        MARKER.into(),
        Marker::for_launch(decision, None).to_string().into(),
    ));
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use provisioner_core::context::{Flow, LaunchContext};
    use provisioner_core::decision::{Plan, Tier};

    fn endpoint() -> Endpoint {
        Endpoint {
            uri: "http://127.0.0.1:4711/v1/credentials".into(),
            token_file: "/run/user/1000/provisioner/token".into(),
            remote: Some(Remote {
                uri: "https://broker.internal:8443/v1/credentials".into(),
                token: "APPTOKENVALUE".into(),
                truststore: None,
            }),
        }
    }

    #[test]
    fn uris_the_sdks_accept() {
        for ok in [
            "http://127.0.0.1:4711/v1/credentials",
            "http://localhost:1/x",
            "http://[::1]:80/x",
            "https://broker.internal:8443/v1/credentials",
            "HTTPS://10.0.0.1/",
        ] {
            assert_eq!(check_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:80/x",
            "http://169.254.169.254/latest",
            "ftp://127.0.0.1/",
            "127.0.0.1:80",
            "http:///x",
            "http://127.0.0.1.evil.example/x",
        ] {
            assert!(check_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn child_env_drops_keys_and_other_container_settings_and_sets_the_endpoint() {
        let parent: Vec<(OsString, OsString)> = [
            ("PATH", "/usr/bin"),
            ("AWS_ACCESS_KEY_ID", "AKIAUSER"),
            ("AWS_SECRET_ACCESS_KEY", "usersecret"),
            ("AWS_SESSION_TOKEN", "usertoken"),
            ("AWS_SESSION_TOKEN", "second"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "stale"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://127.0.0.1:1/old",
            ),
            ("AWS_CONTAINER_FUTURE_SETTING", "x"),
            ("AWS_PROFILE", "admin"),
            ("SYN_PROVISIONED", "tier=session_policy;user=alice"),
        ]
        .iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let decision = Decision {
            context: LaunchContext {
                flow: Flow::Job,
                user: "alice".into(),
                workspace: None,
                runtime_template: None,
                job_id: None,
            },
            tier: Tier::SessionPolicy,
            reason: None,
            skipped: vec![],
            warnings: vec![],
            plan: Plan::Ambient,
        };
        let env = child_env(parent, &decision, &endpoint(), Some("us-east-1"));
        let names: Vec<String> = env
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "PATH",
                FULL_URI,
                TOKEN_FILE,
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "AWS_EC2_METADATA_DISABLED",
                "SYN_PROVISIONED"
            ]
        );
        let get = |n: &str| {
            env.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(
            get(FULL_URI).as_deref(),
            Some("http://127.0.0.1:4711/v1/credentials")
        );
        assert_eq!(
            get(TOKEN_FILE).as_deref(),
            Some("/run/user/1000/provisioner/token")
        );
        assert_eq!(
            get("SYN_PROVISIONED").as_deref(),
            Some("tier=session_policy;user=alice")
        );
    }

    #[test]
    fn remote_vars_carry_the_application_token_and_debug_hides_it() {
        let e = endpoint();
        let v = e.remote_vars(None).unwrap();
        assert_eq!(v[0], (FULL_URI, e.remote.as_ref().unwrap().uri.clone()));
        assert_eq!(v[1], (TOKEN, "APPTOKENVALUE".to_string()));
        assert_eq!(v[2], (AWS_EC2_METADATA_DISABLED, "true".to_string()));
        assert!(e.is_secret("APPTOKENVALUE"));
        assert!(!e.is_secret(&e.uri));
        assert!(!format!("{e:?}").contains("APPTOKENVALUE"));
        let local = Endpoint {
            remote: None,
            ..endpoint()
        };
        assert!(local.remote_vars(None).is_none());
        assert!(!local.is_secret(""));
    }
}
