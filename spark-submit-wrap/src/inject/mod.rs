//! What the wrapper adds to a Spark job's configuration so that the scoped
//! credentials reach the driver and the executors, and what it neutralises so that
//! user configuration cannot route around them.
//!
//! ## What is injected (tiers with credentials)
//!
//! | key | where it matters |
//! |---|---|
//! | `spark.hadoop.fs.s3a.access.key`, `.secret.key`, `.session.token` (when there is a token) | S3A on driver and executors |
//! | `spark.hadoop.fs.s3a.aws.credentials.provider` = `TemporaryAWSCredentialsProvider` (token) or `SimpleAWSCredentialsProvider` (static keys) | S3A reads only those keys |
//! | `spark.executorEnv.AWS_*` | executors (all cluster managers; in `local` the executors share the driver's environment) |
//! | `spark.yarn.appMasterEnv.AWS_*` | YARN cluster mode: the driver runs in the application master |
//! | `spark.kubernetes.driverEnv.AWS_*` | Kubernetes cluster mode: the driver pod |
//!
//! `AWS_*` here is `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`
//! (with a token), `AWS_CREDENTIAL_EXPIRATION` (with an expiry), `AWS_REGION`,
//! `AWS_DEFAULT_REGION` (unless the user configured them: a region does not widen
//! anything) and `AWS_EC2_METADATA_DISABLED=true` (no fall-back to the node's instance
//! profile). In client and local mode the driver is the `spark-submit` process
//! itself; it gets the same variables through its process environment
//! (`provisioner_core::child_env`), not through conf.
//!
//! Standalone cluster mode: the driver gets the S3A keys through conf; its process
//! environment is the submitter's only with the legacy (non-REST) submission client.
//!
//! ## What is neutralised
//!
//! Keys that would widen or bypass the scope, wherever they come from:
//!
//! * S3A credential keys, globally or per bucket (`fs.s3a.bucket.NAME.…`): `access.key`,
//!   `secret.key`, `session.token`, `aws.credentials.provider`,
//!   `aws.credentials.provider.mapping` (can rename the provider class),
//!   `security.credential.provider.path` (a credential store is consulted *before*
//!   the conf value), `delegation.token.binding`, every `assumed.role.*`, and
//!   `auth.profile.file` / `auth.profile.name` (the profile Hadoop 3.5's
//!   `ProfileAWSCredentialsProvider` reads);
//! * `spark.hadoop.hadoop.security.credential.provider.path`;
//! * `AWS_*` credential variables in `spark.executorEnv.`, `spark.yarn.appMasterEnv.`,
//!   `spark.kubernetes.driverEnv.` and `spark.kubernetes.{driver,executor}.secretKeyRef.`:
//!   the ones the wrapper sets, plus the credential-source variables of
//!   `provisioner_core::credentials::REMOVED_WHEN_CREDENTIALS`
//!   (`AWS_PROFILE`, `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_ROLE_ARN`,
//!   `AWS_WEB_IDENTITY_TOKEN_FILE`, every `AWS_CONTAINER_*`, `BOTO_CONFIG`, …).
//!   Other `AWS_*` (region, endpoints, retries) are left alone.
//!
//! How depends on where the key comes from, because `--conf` beats the properties
//! file and secrets must never be put on the command line:
//!
//! * **from a properties file or `spark-defaults.conf`** — the merged file is the
//!   wrapper's: keys it injects are overwritten with the scoped values; a bucket with
//!   its own provider or keys gets the scoped provider and keys for that bucket; every
//!   other neutralised key is left out (or, when Spark will re-read the defaults
//!   file, shadowed with an empty value);
//! * **from `--conf`** — the user's token stays as it is and a later `--conf` (inserted
//!   before the primary resource, so last-wins makes it win) carries a *non-secret*
//!   neutral value: for S3A keys, the scope's provider becomes the AWS SDK v2's
//!   `software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider`
//!   (the name Hadoop 3.4+ documents), which ignores the conf keys and reads the
//!   `AWS_*` variables the wrapper sets on driver and executors; for `AWS_ACCESS_KEY_ID`,
//!   `AWS_EC2_METADATA_DISABLED` and `AWS_CREDENTIAL_EXPIRATION` the scoped value; for
//!   secret variables and credential sources an empty value — an SDK then finds no
//!   usable credentials there and fails closed; `assumed.role.*` and `auth.profile.*`
//!   keys need nothing as no provider that reads them is left in place. A credential store path from
//!   `--conf` stays too, and Hadoop asks it for a bucket's keys before the conf, so
//!   buckets that would get the scoped keys from the file get the environment
//!   provider on the command line instead.
//!
//! Neutralising goes by key, never by the provider class a value names: a user's
//! provider is replaced whether it is written with an SDK v1 name
//! (`com.amazonaws.auth.…`, which Hadoop 3.4+ maps to its SDK v2 counterpart), an SDK v2
//! name (`software.amazon.awssdk.auth.credentials.…`) or a class of Hadoop's own.
//!
//! Every neutralised key adds one warning (key and source, never a value) to the
//! decision record.
//!
//! ## The default tier
//!
//! With default cluster credentials nothing is minted, nothing is injected and
//! nothing is neutralised: the platform documents default credentials as
//! unrestricted, so there is no scope to protect, and the job runs exactly as the user
//! wrote it.
//!
//! ## Limits
//!
//! Only Spark configuration is seen. Hadoop XML files on the cluster (`core-site.xml`),
//! Kubernetes pod templates and mounted secrets, and EMRFS (`s3://` on EMR, which is
//! not S3A) are outside this module's reach.
//!
//! This module never writes, logs or puts on a command line a secret value: secrets
//! only go into [`Injection::set`], which ends up in the properties file.

//!
//! ## Modules
//!
//! This module plans and neutralises whatever the delivery; [`deploy`] says where
//! driver and executors run, [`keys`] what keys delivery writes and [`container`]
//! what endpoint delivery writes (the container-credentials provider, the loopback or
//! remote endpoint, the truststore).

mod container;
mod deploy;
mod keys;
#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, BTreeSet};

use provisioner_core::credentials::{Credentials, REGION_VARS, carries_identity};

use crate::conf::{Effective, Source};
use crate::endpoint::{self, Endpoint};

pub use container::{CONTAINER_PROVIDER, needs_remote_endpoint};
pub use deploy::{Deploy, Manager};
pub use keys::{ENV_PROVIDER, SIMPLE_PROVIDER, TEMPORARY_PROVIDER};

pub(crate) const S3A: &str = "spark.hadoop.fs.s3a.";
const S3A_BUCKET: &str = "spark.hadoop.fs.s3a.bucket.";
const HADOOP_CREDENTIAL_PATH: &str = "spark.hadoop.hadoop.security.credential.provider.path";

pub const EXECUTOR_ENV: &str = "spark.executorEnv.";
pub const YARN_AM_ENV: &str = "spark.yarn.appMasterEnv.";
pub const K8S_DRIVER_ENV: &str = "spark.kubernetes.driverEnv.";
const ENV_PREFIXES: &[&str] = &[
    EXECUTOR_ENV,
    YARN_AM_ENV,
    K8S_DRIVER_ENV,
    "spark.kubernetes.driver.secretKeyRef.",
    "spark.kubernetes.executor.secretKeyRef.",
];

/// What to do to the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Injection {
    /// Keys to write into the merged properties file (over its base content).
    pub set: BTreeMap<String, String>,
    /// Keys to leave out of the merged properties file.
    pub remove: BTreeSet<String>,
    /// `--conf KEY=VALUE` overrides for the command line. Never a secret.
    pub cli: Vec<(String, String)>,
    /// One line per neutralised key, for the decision record. Never a value.
    pub warnings: Vec<String>,
}

impl Injection {
    /// The merged properties file: the base content (see [`Effective::file_base`]),
    /// minus `remove`, plus `set`.
    pub fn merged_file(&self, eff: &Effective) -> BTreeMap<String, String> {
        let mut m = eff.file_base();
        for k in &self.remove {
            m.remove(k);
        }
        for (k, v) in &self.set {
            m.insert(k.clone(), v.clone());
        }
        m
    }

    /// The command-line additions as tokens (`--conf`, `KEY=VALUE`, …).
    pub fn cli_tokens(&self) -> Vec<String> {
        self.cli
            .iter()
            .flat_map(|(k, v)| ["--conf".to_string(), format!("{k}={v}")])
            .collect()
    }
}

/// The kinds of S3A keys that decide which credentials S3A uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S3aKind {
    AccessKey,
    SecretKey,
    SessionToken,
    Provider,
    ProviderMapping,
    CredentialPath,
    DelegationBinding,
    AssumedRole,
    /// `auth.profile.file`, `auth.profile.name`: read only by
    /// `ProfileAWSCredentialsProvider`.
    Profile,
}

const S3A_SUFFIXES: &[(&str, S3aKind)] = &[
    ("access.key", S3aKind::AccessKey),
    ("secret.key", S3aKind::SecretKey),
    ("session.token", S3aKind::SessionToken),
    ("aws.credentials.provider.mapping", S3aKind::ProviderMapping),
    ("aws.credentials.provider", S3aKind::Provider),
    ("security.credential.provider.path", S3aKind::CredentialPath),
    ("delegation.token.binding", S3aKind::DelegationBinding),
    ("auth.profile.file", S3aKind::Profile),
    ("auth.profile.name", S3aKind::Profile),
];

/// A configuration key that decides credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Class {
    /// `spark.hadoop.fs.s3a.KIND` (and the Hadoop-wide credential provider path).
    S3aBase(S3aKind),
    /// `spark.hadoop.fs.s3a.bucket.BUCKET.KIND`.
    S3aBucket(String, S3aKind),
    /// `PREFIX` + an `AWS_*` credential variable.
    Env { prefix: &'static str, name: String },
}

fn classify(key: &str) -> Option<Class> {
    if key == HADOOP_CREDENTIAL_PATH {
        return Some(Class::S3aBase(S3aKind::CredentialPath));
    }
    if let Some(rest) = key.strip_prefix(S3A_BUCKET) {
        for (suffix, kind) in S3A_SUFFIXES {
            if let Some(bucket) = rest
                .strip_suffix(suffix)
                .and_then(|b| b.strip_suffix('.'))
                .filter(|b| !b.is_empty())
            {
                return Some(Class::S3aBucket(bucket.to_string(), *kind));
            }
        }
        if let Some(pos) = rest.find(".assumed.role.")
            && pos > 0
        {
            return Some(Class::S3aBucket(
                rest[..pos].to_string(),
                S3aKind::AssumedRole,
            ));
        }
        return None;
    }
    if let Some(rest) = key.strip_prefix(S3A) {
        if rest.starts_with("assumed.role.") {
            return Some(Class::S3aBase(S3aKind::AssumedRole));
        }
        return S3A_SUFFIXES
            .iter()
            .find(|(s, _)| *s == rest)
            .map(|(_, k)| Class::S3aBase(*k));
    }
    for prefix in ENV_PREFIXES {
        if let Some(name) = key.strip_prefix(prefix) {
            return carries_identity(name).then(|| Class::Env {
                prefix,
                name: name.to_string(),
            });
        }
    }
    None
}

/// How the scoped identity reaches the job.
#[derive(Debug, Clone, Copy)]
pub enum Delivery<'a> {
    /// Keys in the conf and the environment (minted, static or propagated).
    Keys(&'a Credentials),
    /// A container-credentials endpoint that S3A and every SDK fetch from and refresh
    /// through ([`crate::endpoint`]).
    Endpoint(&'a Endpoint),
}

impl Delivery<'_> {
    fn is_secret(&self, value: &str) -> bool {
        match self {
            Delivery::Keys(c) => c.is_secret(value),
            Delivery::Endpoint(e) => e.is_secret(value),
        }
    }

    /// The provider a neutralised `--conf` key is overridden with on the command line
    /// (a name, never a secret), and how the warning says where S3A now looks.
    fn cli_provider(&self) -> (&'static str, &'static str) {
        match self {
            Delivery::Keys(_) => (ENV_PROVIDER, "reads them from the AWS_* environment"),
            Delivery::Endpoint(_) => (
                CONTAINER_PROVIDER,
                "fetches them from the credentials endpoint",
            ),
        }
    }
}

/// The `AWS_*` variables whose scoped value may replace a user's `--conf` on the
/// command line (none of them is a secret; every other one gets an empty value).
const CLI_SAFE_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_CREDENTIAL_EXPIRATION",
    endpoint::FULL_URI,
    endpoint::TOKEN_FILE,
];

/// Plans the injection for a tier with credentials; `region` is the job's region, if
/// any. (The default tier does not call this: nothing is injected or neutralised
/// there.)
pub fn plan(
    eff: &Effective,
    creds: &Credentials,
    region: Option<&str>,
    deploy: Deploy,
) -> Injection {
    plan_delivery(eff, Delivery::Keys(creds), region, deploy)
}

/// [`plan`] for either delivery. With an endpoint, a deployment that
/// [`needs_remote_endpoint`] must have one configured (the caller refuses otherwise);
/// without it the loopback endpoint is written, which fails closed on other hosts.
pub fn plan_delivery(
    eff: &Effective,
    delivery: Delivery<'_>,
    region: Option<&str>,
    deploy: Deploy,
) -> Injection {
    let mut inj = Injection::default();
    let (cli_provider, cli_means) = delivery.cli_provider();

    // 1. The scoped values, per key.
    let provider = match delivery {
        Delivery::Keys(creds) => keys::set_scoped(&mut inj, S3A, creds),
        Delivery::Endpoint(_) => CONTAINER_PROVIDER,
    };
    inj.set
        .insert(format!("{S3A}aws.credentials.provider"), provider.into());
    let remote = match delivery {
        Delivery::Endpoint(e) => needs_remote_endpoint(deploy, e.remote.is_some()),
        Delivery::Keys(_) => false,
    };
    for prefix in deploy.env_prefixes() {
        let env_values = match delivery {
            Delivery::Keys(creds) => creds.launch_vars(region),
            Delivery::Endpoint(e) => container::env_values(e, remote, region),
        };
        for (name, value) in &env_values {
            let key = format!("{prefix}{name}");
            if REGION_VARS.contains(name) && eff.entries.contains_key(&key) {
                continue; // the user's region stands
            }
            inj.set.insert(key, value.clone());
        }
    }
    if let Delivery::Endpoint(e) = delivery
        && remote
    {
        container::trust_for_remote_jvms(&mut inj, eff, deploy, e);
    }
    if deploy.cluster && deploy.manager == Manager::Other {
        inj.warnings.push(
            "spark conf: unknown cluster manager in cluster mode; the driver gets the scoped keys through spark.hadoop.fs.s3a.* only, not through its environment".into(),
        );
    }

    // 2. Neutralise what the user configured.
    let mut base_cli_env_provider = false;
    // A credential store named on the command line (Hadoop-wide or S3A-wide) stays in
    // place, and Hadoop consults it before the conf keys for every bucket too.
    let mut cli_credential_store = false;
    let mut bucket_keys: BTreeSet<String> = BTreeSet::new();
    let mut bucket_cli_env_provider: BTreeSet<String> = BTreeSet::new();
    for (key, entry) in &eff.entries {
        let Some(class) = classify(key) else { continue };
        let from = entry.source.describe();
        match (&class, entry.source) {
            // Keys the wrapper sets itself, from a file: overwritten in the merged file.
            (Class::S3aBase(_) | Class::Env { .. }, Source::PropertiesFile | Source::Defaults)
                if inj.set.contains_key(key) =>
            {
                if inj.set.get(key) != Some(&entry.value) {
                    inj.warnings.push(format!(
                        "spark conf: {key} from {from} replaced by the scoped value"
                    ));
                }
            }
            // The same for the base keys and a bucket's: these kinds are neutralised on
            // the command line (an assumed-role or profile key is inert once no
            // provider that reads it is left in place).
            (Class::S3aBase(kind) | Class::S3aBucket(_, kind), Source::Cli(_))
                if matches!(
                    kind,
                    S3aKind::AssumedRole
                        | S3aKind::Profile
                        | S3aKind::DelegationBinding
                        | S3aKind::ProviderMapping
                ) =>
            {
                if *kind == S3aKind::AssumedRole {
                    inj.warnings.push(format!(
                        "spark conf: {key} from --conf has no effect: no assumed-role provider is left in place; remove it"
                    ));
                } else if *kind == S3aKind::Profile {
                    inj.warnings.push(format!(
                        "spark conf: {key} from --conf has no effect: no profile provider is left in place; remove it"
                    ));
                } else {
                    inj.cli.push((key.clone(), String::new()));
                    inj.warnings.push(format!(
                        "spark conf: {key} from --conf bypasses the scoped credentials; overridden with an empty value on the command line; remove it"
                    ));
                }
            }
            (Class::S3aBase(kind), Source::Cli(_)) => {
                base_cli_env_provider = true;
                cli_credential_store |= *kind == S3aKind::CredentialPath;
                inj.warnings.push(format!(
                    "spark conf: {key} from --conf bypasses the scoped credentials; S3A now {cli_means} the wrapper sets; remove it"
                ));
            }
            (Class::S3aBucket(bucket, _), Source::Cli(_)) => {
                bucket_cli_env_provider.insert(bucket.clone());
                inj.warnings.push(format!(
                    "spark conf: {key} from --conf bypasses the scoped credentials for bucket {bucket}; S3A now {cli_means} the wrapper sets; remove it"
                ));
            }
            (Class::S3aBucket(bucket, kind), _) => {
                if matches!(
                    kind,
                    S3aKind::AccessKey
                        | S3aKind::SecretKey
                        | S3aKind::SessionToken
                        | S3aKind::Provider
                ) {
                    bucket_keys.insert(bucket.clone());
                }
                drop_from_file(&mut inj, eff, key);
                inj.warnings.push(format!(
                    "spark conf: {key} from {from} bypasses the scoped credentials for bucket {bucket}; removed"
                ));
            }
            (Class::S3aBase(_), _) => {
                drop_from_file(&mut inj, eff, key);
                inj.warnings.push(format!(
                    "spark conf: {key} from {from} bypasses the scoped credentials; removed"
                ));
            }
            (Class::Env { name, .. }, Source::Cli(_)) => {
                let value = match inj.set.get(key) {
                    Some(v) if CLI_SAFE_VARS.contains(&name.as_str()) && !delivery.is_secret(v) => {
                        v.clone()
                    }
                    _ => String::new(),
                };
                let what = if value.is_empty() {
                    "overridden with an empty value on the command line (secrets never go there), so this variable holds no credential"
                } else {
                    "overridden with the scoped value on the command line"
                };
                inj.cli.push((key.clone(), value));
                inj.warnings.push(format!(
                    "spark conf: {key} from --conf bypasses the scoped credentials; {what}; remove it"
                ));
            }
            (Class::Env { .. }, _) => {
                drop_from_file(&mut inj, eff, key);
                inj.warnings.push(format!(
                    "spark conf: {key} from {from} bypasses the scoped credentials; removed"
                ));
            }
        }
    }

    // 3. Buckets with their own provider or keys use the scoped ones; with a credential
    // store from the command line still in place (it would answer for the bucket's
    // keys first), the command-line provider instead, as for the default.
    for bucket in &bucket_keys {
        if cli_credential_store {
            bucket_cli_env_provider.insert(bucket.clone());
        }
        let p = format!("{S3A_BUCKET}{bucket}.");
        inj.set
            .insert(format!("{p}aws.credentials.provider"), provider.into());
        inj.remove.remove(&format!("{p}aws.credentials.provider"));
        // With an endpoint the bucket's keys stay removed: the provider reads none.
        if let Delivery::Keys(creds) = delivery {
            keys::set_scoped(&mut inj, &p, creds);
        }
    }
    if base_cli_env_provider {
        inj.cli.push((
            format!("{S3A}aws.credentials.provider"),
            cli_provider.into(),
        ));
    }
    for bucket in &bucket_cli_env_provider {
        inj.cli.push((
            format!("{S3A_BUCKET}{bucket}.aws.credentials.provider"),
            cli_provider.into(),
        ));
    }

    // A secret must never reach the command line, whatever the rules above say.
    inj.cli.retain(|(_, v)| !delivery.is_secret(v));
    inj
}

/// Leaves `key` out of the merged file; when Spark will re-read the defaults file
/// and finds the key there, shadows it with an empty value instead.
fn drop_from_file(inj: &mut Injection, eff: &Effective, key: &str) {
    let in_defaults = eff.defaults.as_ref().is_some_and(|d| d.contains_key(key));
    if eff.defaults_reread && in_defaults {
        inj.set.entry(key.to_string()).or_default();
    } else {
        inj.remove.insert(key.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn classify_keys() {
        assert_eq!(
            classify("spark.hadoop.fs.s3a.bucket.my.data.bucket.secret.key"),
            Some(Class::S3aBucket(
                "my.data.bucket".into(),
                S3aKind::SecretKey
            ))
        );
        assert_eq!(
            classify("spark.hadoop.fs.s3a.bucket.b.aws.credentials.provider.mapping"),
            Some(Class::S3aBucket("b".into(), S3aKind::ProviderMapping))
        );
        assert_eq!(
            classify("spark.hadoop.fs.s3a.bucket.b.assumed.role.arn"),
            Some(Class::S3aBucket("b".into(), S3aKind::AssumedRole))
        );
        assert_eq!(
            classify("spark.hadoop.fs.s3a.bucket.b.auth.profile.name"),
            Some(Class::S3aBucket("b".into(), S3aKind::Profile))
        );
        assert_eq!(
            classify("spark.hadoop.fs.s3a.auth.profile.file"),
            Some(Class::S3aBase(S3aKind::Profile))
        );
        assert_eq!(classify("spark.hadoop.fs.s3a.bucket.b.endpoint"), None);
        assert_eq!(
            classify("spark.hadoop.fs.s3a.assumed.role.credentials.provider"),
            Some(Class::S3aBase(S3aKind::AssumedRole))
        );
        assert_eq!(classify("spark.hadoop.fs.s3a.endpoint"), None);
        assert_eq!(
            classify("spark.hadoop.hadoop.security.credential.provider.path"),
            Some(Class::S3aBase(S3aKind::CredentialPath))
        );
        assert!(matches!(
            classify("spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            Some(Class::Env { .. })
        ));
        assert!(matches!(
            classify("spark.kubernetes.driver.secretKeyRef.AWS_SECRET_ACCESS_KEY"),
            Some(Class::Env { .. })
        ));
        assert_eq!(classify("spark.executorEnv.AWS_ENDPOINT_URL"), None);
        assert_eq!(classify("spark.executorEnv.PATH"), None);
    }

    #[test]
    fn file_bucket_keys_get_scoped_values_and_other_bypasses_are_removed() {
        let eff = Effective::merge(
            &[],
            Some(map(&[
                ("spark.hadoop.fs.s3a.bucket.raw.access.key", "AKIAUSER"),
                ("spark.hadoop.fs.s3a.bucket.raw.secret.key", "usersecret"),
                (
                    "spark.hadoop.fs.s3a.bucket.raw.assumed.role.arn",
                    "arn:aws:iam::1:role/x",
                ),
                (
                    "spark.hadoop.fs.s3a.assumed.role.arn",
                    "arn:aws:iam::1:role/y",
                ),
                (
                    "spark.hadoop.hadoop.security.credential.provider.path",
                    "jceks://file/x",
                ),
                ("spark.executorEnv.AWS_PROFILE", "admin"),
                ("spark.executorEnv.AWS_SECRET_ACCESS_KEY", "usersecret"),
                ("spark.hadoop.fs.s3a.endpoint", "http://127.0.0.1:9000"),
            ])),
            None,
            false,
        );
        let inj = plan(
            &eff,
            &scoped(true),
            REGION,
            Deploy::from(Some("yarn"), Some("client")),
        );
        let m = inj.merged_file(&eff);
        assert_eq!(
            m["spark.hadoop.fs.s3a.bucket.raw.access.key"],
            "ASIAEXAMPLE"
        );
        assert_eq!(
            m["spark.hadoop.fs.s3a.bucket.raw.secret.key"],
            "SECRETVALUE"
        );
        assert_eq!(
            m["spark.hadoop.fs.s3a.bucket.raw.session.token"],
            "TOKENVALUE"
        );
        assert_eq!(
            m["spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider"],
            TEMPORARY_PROVIDER
        );
        assert!(!m.contains_key("spark.hadoop.fs.s3a.bucket.raw.assumed.role.arn"));
        assert!(!m.contains_key("spark.hadoop.fs.s3a.assumed.role.arn"));
        assert!(!m.contains_key("spark.hadoop.hadoop.security.credential.provider.path"));
        assert!(!m.contains_key("spark.executorEnv.AWS_PROFILE"));
        assert_eq!(m["spark.executorEnv.AWS_SECRET_ACCESS_KEY"], "SECRETVALUE");
        assert_eq!(m["spark.hadoop.fs.s3a.endpoint"], "http://127.0.0.1:9000");
        assert!(inj.cli.is_empty());
        assert_eq!(inj.warnings.len(), 7, "{:#?}", inj.warnings);
        assert!(
            inj.warnings
                .iter()
                .all(|w| !w.contains("usersecret") && !w.contains("AKIAUSER"))
        );
    }

    #[test]
    fn defaults_reread_shadows_instead_of_removing() {
        let eff = Effective::merge(
            &[],
            Some(map(&[])),
            Some(map(&[
                ("spark.executorEnv.AWS_PROFILE", "admin"),
                ("spark.hadoop.fs.s3a.assumed.role.arn", "arn"),
            ])),
            true,
        );
        let inj = plan(&eff, &scoped(true), REGION, Deploy::from(None, None));
        let m = inj.merged_file(&eff);
        assert_eq!(m["spark.executorEnv.AWS_PROFILE"], "");
        assert_eq!(m["spark.hadoop.fs.s3a.assumed.role.arn"], "");
    }

    #[test]
    fn cli_bypasses_get_non_secret_overrides() {
        let eff = Effective::merge(
            &cli(&[
                ("spark.hadoop.fs.s3a.secret.key", "usersecret"),
                (
                    "spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider",
                    "com.amazonaws.auth.InstanceProfileCredentialsProvider",
                ),
                ("spark.hadoop.fs.s3a.bucket.raw.assumed.role.arn", "arn"),
                ("spark.executorEnv.AWS_ACCESS_KEY_ID", "AKIAUSER"),
                ("spark.executorEnv.AWS_SECRET_ACCESS_KEY", "usersecret"),
                ("spark.executorEnv.AWS_PROFILE", "admin"),
                ("spark.hadoop.fs.s3a.delegation.token.binding", "x"),
            ]),
            None,
            None,
            false,
        );
        let inj = plan(
            &eff,
            &scoped(true),
            REGION,
            Deploy::from(Some("yarn"), Some("client")),
        );
        let cli: BTreeMap<_, _> = inj.cli.iter().cloned().collect();
        assert_eq!(
            cli["spark.hadoop.fs.s3a.aws.credentials.provider"],
            ENV_PROVIDER
        );
        assert_eq!(
            cli["spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider"],
            ENV_PROVIDER
        );
        assert_eq!(cli["spark.executorEnv.AWS_ACCESS_KEY_ID"], "ASIAEXAMPLE");
        assert_eq!(cli["spark.executorEnv.AWS_SECRET_ACCESS_KEY"], "");
        assert_eq!(cli["spark.executorEnv.AWS_PROFILE"], "");
        assert_eq!(cli["spark.hadoop.fs.s3a.delegation.token.binding"], "");
        assert!(!cli.contains_key("spark.hadoop.fs.s3a.bucket.raw.assumed.role.arn"));
        for (_, v) in &inj.cli {
            assert!(v != "SECRETVALUE" && v != "TOKENVALUE");
        }
        assert_eq!(inj.warnings.len(), 7);
    }

    #[test]
    fn user_providers_are_neutralised_whatever_sdk_names_them() {
        // Hadoop 3.4+ maps the SDK v1 names to SDK v2 classes: a user may write either,
        // or a class of Hadoop's own. All are replaced, and the wrapper's own value is
        // the SDK v2 name, never the v1 one Hadoop would warn about.
        for user in [
            "com.amazonaws.auth.EnvironmentVariableCredentialsProvider",
            "com.amazonaws.auth.profile.ProfileCredentialsProvider",
            "com.amazonaws.auth.InstanceProfileCredentialsProvider",
            "software.amazon.awssdk.auth.credentials.ProfileCredentialsProvider",
            "software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider",
            "org.apache.hadoop.fs.s3a.auth.ProfileAWSCredentialsProvider",
            "org.apache.hadoop.fs.s3a.auth.IAMInstanceCredentialsProvider",
        ] {
            let eff = Effective::merge(
                &cli(&[
                    ("spark.hadoop.fs.s3a.aws.credentials.provider", user),
                    (
                        "spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider",
                        user,
                    ),
                ]),
                None,
                None,
                false,
            );
            let inj = plan(&eff, &scoped(true), REGION, Deploy::from(None, None));
            let cli: BTreeMap<_, _> = inj.cli.iter().cloned().collect();
            for key in [
                "spark.hadoop.fs.s3a.aws.credentials.provider",
                "spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider",
            ] {
                assert_eq!(
                    cli.get(key).map(String::as_str),
                    Some(
                        "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
                    ),
                    "{user} in {key}"
                );
            }
            assert_eq!(inj.warnings.len(), 2, "{user}: {:#?}", inj.warnings);

            let eff = Effective::merge(
                &[],
                Some(map(&[(
                    "spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider",
                    user,
                )])),
                None,
                false,
            );
            let inj = plan(&eff, &scoped(true), REGION, Deploy::from(None, None));
            assert_eq!(
                inj.merged_file(&eff)["spark.hadoop.fs.s3a.bucket.raw.aws.credentials.provider"],
                TEMPORARY_PROVIDER,
                "{user} from a file"
            );
            assert!(inj.cli.is_empty());
        }
        assert!(!ENV_PROVIDER.starts_with("com.amazonaws."));
    }

    #[test]
    fn profile_keys_are_removed_from_files_and_reported_from_the_command_line() {
        // Hadoop 3.5's ProfileAWSCredentialsProvider reads a profile file and name from
        // these keys; with the provider replaced they are inert, but they say the user
        // meant other credentials.
        let eff = Effective::merge(
            &cli(&[
                ("spark.hadoop.fs.s3a.auth.profile.name", "admin"),
                (
                    "spark.hadoop.fs.s3a.bucket.raw.auth.profile.file",
                    "/home/alice/.aws/c",
                ),
            ]),
            Some(map(&[
                (
                    "spark.hadoop.fs.s3a.auth.profile.file",
                    "/etc/aws/credentials",
                ),
                ("spark.hadoop.fs.s3a.bucket.logs.auth.profile.name", "admin"),
            ])),
            None,
            false,
        );
        let inj = plan(&eff, &scoped(true), REGION, Deploy::from(None, None));
        let m = inj.merged_file(&eff);
        assert!(!m.contains_key("spark.hadoop.fs.s3a.auth.profile.file"));
        assert!(!m.contains_key("spark.hadoop.fs.s3a.bucket.logs.auth.profile.name"));
        // Nothing to override on the command line: no provider reads them.
        assert!(inj.cli.is_empty(), "{:?}", inj.cli);
        assert_eq!(inj.warnings.len(), 4, "{:#?}", inj.warnings);
        assert!(
            inj.warnings
                .iter()
                .filter(|w| w.contains("from --conf"))
                .all(|w| w.contains("no profile provider is left in place")),
            "{:#?}",
            inj.warnings
        );
        assert!(inj.warnings.iter().all(|w| !w.contains("admin")));
    }

    #[test]
    fn credential_store_on_the_command_line_moves_file_buckets_to_the_env_provider() {
        // Hadoop asks a credential store for fs.s3a.bucket.B.access.key before the
        // conf: with the user's store left in place, the scoped keys written for a
        // bucket of the defaults file would not be the ones used.
        let eff = Effective::merge(
            &cli(&[(
                "spark.hadoop.hadoop.security.credential.provider.path",
                "jceks://hdfs/user/alice/aws.jceks",
            )]),
            None,
            Some(map(&[(
                "spark.hadoop.fs.s3a.bucket.legacy.access.key",
                "AKIADEFAULTS",
            )])),
            false,
        );
        let inj = plan(&eff, &scoped(true), REGION, Deploy::from(None, None));
        let cli: BTreeMap<_, _> = inj.cli.iter().cloned().collect();
        assert_eq!(
            cli["spark.hadoop.fs.s3a.aws.credentials.provider"],
            ENV_PROVIDER
        );
        assert_eq!(
            cli["spark.hadoop.fs.s3a.bucket.legacy.aws.credentials.provider"],
            ENV_PROVIDER
        );
        // Without the store the bucket keeps the scoped provider and keys.
        let eff = Effective::merge(&[], None, eff.defaults.clone(), false);
        let inj = plan(&eff, &scoped(true), REGION, Deploy::from(None, None));
        assert!(inj.cli.is_empty());
        assert_eq!(
            inj.merged_file(&eff)["spark.hadoop.fs.s3a.bucket.legacy.access.key"],
            "ASIAEXAMPLE"
        );
    }

    #[test]
    fn secret_env_conf_in_a_mode_without_that_prefix_is_emptied() {
        // appMasterEnv is not injected in client mode; the user's value is still
        // neutralised.
        let eff = Effective::merge(
            &cli(&[("spark.yarn.appMasterEnv.AWS_ACCESS_KEY_ID", "AKIAUSER")]),
            None,
            None,
            false,
        );
        let inj = plan(
            &eff,
            &scoped(true),
            REGION,
            Deploy::from(Some("yarn"), Some("client")),
        );
        assert_eq!(
            inj.cli,
            vec![(
                "spark.yarn.appMasterEnv.AWS_ACCESS_KEY_ID".to_string(),
                String::new()
            )]
        );
    }
}
