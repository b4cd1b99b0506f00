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

use provisioner_core::child_env::ChildEnv;
use provisioner_core::credentials::{AWS_DEFAULT_REGION, AWS_EC2_METADATA_DISABLED, AWS_REGION};
use provisioner_core::decision::Decision;

pub use provisioner_core::container::{FULL_URI, TOKEN_FILE};
/// The token itself in a variable: only for JVMs on other hosts, which cannot read the
/// session's token file (the Java SDK v2 prefers it to the file).
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
    /// The token file is set empty: an executor started from this host's environment
    /// (`local-cluster`, standalone workers started by the user) would otherwise inherit
    /// the session's, which botocore prefers to the token variable.
    pub fn remote_vars(&self, region: Option<&str>) -> Option<Vec<(&'static str, String)>> {
        let r = self.remote.as_ref()?;
        let mut v = vec![
            (FULL_URI, r.uri.clone()),
            (TOKEN, r.token.clone()),
            (TOKEN_FILE, String::new()),
        ];
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

/// Executors elsewhere, from the wrapper's environment: `SYN_EXECUTOR_CREDENTIALS_URL`
/// (`https://HOST:PORT`, the endpoint's HTTPS listener; the path is the local
/// endpoint's), `SYN_EXECUTOR_CREDENTIALS_TOKEN_FILE` (the application's token, read
/// here and written only into the properties file), `SYN_EXECUTOR_TRUSTSTORE` and
/// `SYN_EXECUTOR_TRUSTSTORE_PASSWORD` (a Java truststore on every node that trusts the
/// endpoint's CA). None without the URL. The error is one line with the fix.
pub fn remote_from_env(
    env: &dyn Fn(&str) -> Option<String>,
    local_uri: &str,
) -> Result<Option<Remote>, String> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let Some(address) = get(REMOTE_URL_VAR) else {
        return Ok(None);
    };
    let address = address.trim_end_matches('/');
    check_remote_uri(address).map_err(|p| format!("{REMOTE_URL_VAR}: {p}; fix: set it to the credentials endpoint's HTTPS address, https://HOST:PORT"))?;
    if address.splitn(4, '/').nth(3).is_some() {
        return Err(format!(
            "{REMOTE_URL_VAR}=\"{address}\" has a path; fix: give only https://HOST:PORT (the path is the session's)"
        ));
    }
    let path = local_uri
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let Some(token_file) = get(REMOTE_TOKEN_FILE_VAR) else {
        return Err(format!(
            "{REMOTE_URL_VAR} is set but {REMOTE_TOKEN_FILE_VAR} is not; fix: point {REMOTE_TOKEN_FILE_VAR} at the application token's file"
        ));
    };
    let token = read_token(std::path::Path::new(&token_file))?;
    Ok(Some(Remote {
        uri: format!("{address}{path}"),
        token,
        truststore: truststore_from_env(env)?,
    }))
}

/// The Java truststore for JVMs that use the remote endpoint: `SYN_EXECUTOR_TRUSTSTORE`
/// and `SYN_EXECUTOR_TRUSTSTORE_PASSWORD`, site configuration at the same path on every
/// node, whichever way the remote endpoint was obtained. None when unset (the JVM's
/// default truststore then has to trust the endpoint's CA).
pub fn truststore_from_env(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Truststore>, String> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let Some(p) = get(TRUSTSTORE_VAR) else {
        return Ok(None);
    };
    let path = PathBuf::from(p);
    if !path.is_file() {
        return Err(format!(
            "{TRUSTSTORE_VAR} names {}, which is not a file; fix: install the truststore there (on every node) or unset {TRUSTSTORE_VAR}",
            path.display()
        ));
    }
    Ok(Some(Truststore {
        path,
        password: get(TRUSTSTORE_PASSWORD_VAR),
    }))
}

/// Executors elsewhere, from the broker: the HTTPS URL of the session on the broker's
/// executor endpoint and an application token (which only fetches that session's
/// credentials and dies with it), with the truststore of [`truststore_from_env`]. The
/// error is one line with the fix and never shows the token.
pub fn remote_from_grant(
    grant: &provisioner_core::container::EndpointGrant,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Remote, String> {
    check_remote_uri(&grant.url).map_err(|p| {
        format!("the broker's executor endpoint is unusable: {p}; fix: give the broker an https:// URL that executors reach (README.md, \"Executors on other hosts\")")
    })?;
    if grant.token.is_empty()
        || grant.token.len() > 4096
        || !grant.token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err("the broker's application token is empty or holds characters a header cannot carry; fix: use a spark-submit-wrap of the broker's release".into());
    }
    Ok(Remote {
        uri: grant.url.clone(),
        token: grant.token.clone(),
        truststore: truststore_from_env(env)?,
    })
}

/// The application token from its file: at most 4 KiB, one trailing newline allowed,
/// no other control character or space (SDKs send it as a header value). Errors never
/// show the content.
fn read_token(path: &std::path::Path) -> Result<String, String> {
    let fix =
        format!("write the application token alone into the file {REMOTE_TOKEN_FILE_VAR} names");
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "{REMOTE_TOKEN_FILE_VAR}: cannot read {}: {e}; fix: {fix}",
            path.display()
        )
    })?;
    let text = String::from_utf8(bytes).unwrap_or_default();
    let token = text.strip_suffix('\n').unwrap_or(&text);
    if token.is_empty()
        || token.len() > 4096
        || token.bytes().any(|b| b.is_ascii_control() || b == b' ')
    {
        return Err(format!(
            "{REMOTE_TOKEN_FILE_VAR}: {} does not hold a usable token; fix: {fix}",
            path.display()
        ));
    }
    Ok(token.to_string())
}

/// Checks the endpoint for this host (http on loopback, as the broker serves it) and, if
/// any, the remote one (https: executors on other hosts send the application token to
/// it). Returns the problem otherwise.
pub fn check(e: &Endpoint) -> Result<(), String> {
    provisioner_core::container::check_endpoint_url(&e.uri).map_err(|d| d.problem)?;
    if let Some(r) = &e.remote {
        check_remote_uri(&r.uri)?;
    }
    Ok(())
}

/// An `https://` URL with a host.
pub fn check_remote_uri(uri: &str) -> Result<(), String> {
    let rest = uri
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("https://"))
        .and_then(|_| uri.get(8..))
        .ok_or_else(|| format!("\"{uri}\" is not an https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("\"{uri}\" has no host, or carries a user name"));
    }
    Ok(())
}

/// The process environment of `spark-submit` (and of the driver in client and local
/// mode) for endpoint delivery: `provisioner_core::child_env::ChildEnv::for_endpoint`
/// (every credential source and every other `AWS_CONTAINER_*` removed, the endpoint,
/// its token file, the region, `AWS_EC2_METADATA_DISABLED=true` and the marker
/// appended), without region variables when the job has no region.
pub fn child_env(
    parent: Vec<(OsString, OsString)>,
    decision: &Decision,
    endpoint: &Endpoint,
    region: Option<&str>,
) -> ChildEnv {
    let region = region.unwrap_or_default();
    let env = ChildEnv::for_endpoint(
        parent,
        decision,
        &endpoint.uri,
        &endpoint.token_file,
        region,
    );
    if !region.is_empty() {
        return env;
    }
    let vars = env
        .vars()
        .iter()
        .filter(|(k, v)| !(v.is_empty() && (k == AWS_REGION || k == AWS_DEFAULT_REGION)))
        .cloned()
        .collect();
    ChildEnv::from_vars(vars)
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
    fn endpoints_the_sdks_accept() {
        assert_eq!(check(&endpoint()), Ok(()));
        for bad in [
            "http://10.0.0.1:80/x",
            "http://198.51.100.7/latest",
            "https://127.0.0.1/x",
            "127.0.0.1:80",
        ] {
            let e = Endpoint {
                uri: bad.into(),
                ..endpoint()
            };
            assert!(check(&e).is_err(), "{bad}");
        }
        for bad in [
            "http://broker:8443/x",
            "https://",
            "https://u@host/x",
            "ftp://x/",
        ] {
            assert!(check_remote_uri(bad).is_err(), "{bad}");
        }
        assert_eq!(check_remote_uri("HTTPS://10.0.0.1:8443/v1"), Ok(()));
    }

    #[test]
    fn remote_settings_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("app.token");
        std::fs::write(&token, "APPTOKENVALUE\n").unwrap();
        let ts = dir.path().join("truststore.p12");
        std::fs::write(&ts, "x").unwrap();
        let vars = |pairs: Vec<(&'static str, String)>| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let local = "http://127.0.0.1:4711/v1/credentials/abc";
        assert_eq!(remote_from_env(&vars(vec![]), local), Ok(None));
        let env = vars(vec![
            (REMOTE_URL_VAR, "https://broker.internal:8443/".into()),
            (REMOTE_TOKEN_FILE_VAR, token.display().to_string()),
            (TRUSTSTORE_VAR, ts.display().to_string()),
            (TRUSTSTORE_PASSWORD_VAR, "changeit".into()),
        ]);
        let r = remote_from_env(&env, local).unwrap().unwrap();
        assert_eq!(r.uri, "https://broker.internal:8443/v1/credentials/abc");
        assert_eq!(r.token, "APPTOKENVALUE");
        assert_eq!(r.truststore.as_ref().unwrap().path, ts);
        for (pairs, needle) in [
            (
                vec![(REMOTE_URL_VAR, "http://broker:8443".to_string())],
                "https",
            ),
            (
                vec![(REMOTE_URL_VAR, "https://broker:8443/v1".to_string())],
                "has a path",
            ),
            (
                vec![(REMOTE_URL_VAR, "https://broker:8443".to_string())],
                REMOTE_TOKEN_FILE_VAR,
            ),
            (
                vec![
                    (REMOTE_URL_VAR, "https://broker:8443".to_string()),
                    (REMOTE_TOKEN_FILE_VAR, "/nonexistent/app.token".to_string()),
                ],
                "/nonexistent/app.token",
            ),
            (
                vec![
                    (REMOTE_URL_VAR, "https://broker:8443".to_string()),
                    (REMOTE_TOKEN_FILE_VAR, token.display().to_string()),
                    (TRUSTSTORE_VAR, "/nonexistent/ts.p12".to_string()),
                ],
                "/nonexistent/ts.p12",
            ),
        ] {
            let e = remote_from_env(&vars(pairs), local).unwrap_err();
            assert!(e.contains(needle) && e.contains("fix:"), "{e}");
            assert!(!e.contains("APPTOKENVALUE"));
        }
        std::fs::write(&token, "two\nlines").unwrap();
        let e = remote_from_env(&env, local).unwrap_err();
        assert!(e.contains("usable token") && !e.contains("two"), "{e}");
    }

    #[test]
    fn the_brokers_executor_endpoint_with_the_sites_truststore() {
        use provisioner_core::container::EndpointGrant;
        let dir = tempfile::tempdir().unwrap();
        let ts = dir.path().join("truststore.p12");
        std::fs::write(&ts, "x").unwrap();
        let ts_env = ts.display().to_string();
        let env = move |k: &str| match k {
            TRUSTSTORE_VAR => Some(ts_env.clone()),
            TRUSTSTORE_PASSWORD_VAR => Some("changeit".to_string()),
            _ => None,
        };
        let grant = EndpointGrant {
            url: "https://broker.internal:8443/v1/credentials/abc".into(),
            token: "APPTOKENVALUE".into(),
        };
        let r = remote_from_grant(&grant, &env).unwrap();
        assert_eq!(r.uri, grant.url);
        assert_eq!(r.token, "APPTOKENVALUE");
        let t = r.truststore.unwrap();
        assert_eq!((t.path, t.password.as_deref()), (ts, Some("changeit")));
        // Without the site's truststore setting: the JVM's default one.
        assert!(
            remote_from_grant(&grant, &|_: &str| None)
                .unwrap()
                .truststore
                .is_none()
        );
        for (url, token, needle) in [
            (
                "http://broker:8443/v1/credentials/abc",
                "APPTOKENVALUE",
                "https",
            ),
            (
                "https://broker:8443/v1/credentials/abc",
                "",
                "application token",
            ),
            (
                "https://broker:8443/v1/credentials/abc",
                "two words",
                "application token",
            ),
        ] {
            let g = EndpointGrant {
                url: url.into(),
                token: token.into(),
            };
            let e = remote_from_grant(&g, &env).unwrap_err();
            assert!(e.contains(needle) && e.contains("fix:"), "{e}");
            assert!(
                !e.contains("APPTOKENVALUE") && !e.contains("two words"),
                "{e}"
            );
        }
        let missing = |k: &str| (k == TRUSTSTORE_VAR).then(|| "/nonexistent/ts.p12".to_string());
        let e = remote_from_grant(&grant, &missing).unwrap_err();
        assert!(e.contains("/nonexistent/ts.p12"), "{e}");
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
        let env = child_env(parent.clone(), &decision, &endpoint(), Some("us-east-1"));
        let env = env.vars();
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
        // Without a region, no empty region variables.
        let env = child_env(parent, &decision, &endpoint(), None);
        assert!(env.get("AWS_REGION").is_none() && env.get("AWS_DEFAULT_REGION").is_none());
        assert_eq!(
            env.get("AWS_EC2_METADATA_DISABLED"),
            Some(std::ffi::OsStr::new("true"))
        );
    }

    #[test]
    fn remote_vars_carry_the_application_token_and_debug_hides_it() {
        let e = endpoint();
        let v = e.remote_vars(None).unwrap();
        assert_eq!(v[0], (FULL_URI, e.remote.as_ref().unwrap().uri.clone()));
        assert_eq!(v[1], (TOKEN, "APPTOKENVALUE".to_string()));
        assert_eq!(v[2], (TOKEN_FILE, String::new()));
        assert_eq!(v[3], (AWS_EC2_METADATA_DISABLED, "true".to_string()));
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
