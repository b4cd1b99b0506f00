//! Fuzzes the Spark configuration path of `spark-submit-wrap`: reading a user
//! properties file and `spark-defaults.conf`, merging them with `--conf` options,
//! planning the injection, and writing the merged file that Spark reads.
//!
//! Input: one flags byte, then three parts separated by NUL bytes: the user's
//! properties file, the defaults file, and `--conf` values (one per line). Flags:
//! bit 0 no user file, bit 1 no defaults file (read only when Spark would), bit 2 `--load-spark-defaults`, bit 3
//! credentials without a session token, bits 4-5 the cluster manager, bit 6 cluster
//! deploy mode.
//!
//! Checked: nothing panics; a read error is one line; the merge follows Spark's
//! precedence; no secret reaches the command line; the configuration Spark ends up
//! with (merged file, then the user's `--conf`, then the wrapper's `--conf`, then the
//! re-read defaults) uses only the scoped credentials; and a merged file that renders
//! reads back, through a real file as Spark reads it, unchanged.

#![no_main]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spark_submit_wrap::args::Parsed;
use spark_submit_wrap::conf::{Effective, Source, read_properties};
use provisioner_core::credentials::{Credentials, carries_identity, parse_rfc3339};
use spark_submit_wrap::inject::{self, Deploy, ENV_PROVIDER};
use spark_submit_wrap::propsfile;

const KEY_ID: &str = "ASIAFUZZKEYID";
const SECRET: &str = "fuzz-secret-access-key";
const TOKEN: &str = "fuzz-session-token";
const EXPIRATION: &str = "2030-01-01T00:00:00Z";

const S3A: &str = "spark.hadoop.fs.s3a.";
const S3A_BUCKET: &str = "spark.hadoop.fs.s3a.bucket.";
const HADOOP_CREDENTIAL_PATH: &str = "spark.hadoop.hadoop.security.credential.provider.path";
const ENV_PREFIXES: &[&str] = &[
    "spark.executorEnv.",
    "spark.yarn.appMasterEnv.",
    "spark.kubernetes.driverEnv.",
    "spark.kubernetes.driver.secretKeyRef.",
    "spark.kubernetes.executor.secretKeyRef.",
];
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("props-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

/// Reads `bytes` the way the wrapper reads a user's file: from a path.
fn read_bytes(
    name: &str,
    bytes: &[u8],
    what: &'static str,
) -> Result<BTreeMap<String, String>, String> {
    let path = scratch().join(name);
    let mut f = std::fs::File::create(&path).expect("scratch file");
    f.write_all(bytes).expect("scratch write");
    drop(f);
    read_properties(&path, what).map_err(|e| e.to_string())
}

fn one_line(s: &str) {
    assert!(
        !s.contains('\n') && !s.contains('\r'),
        "an error must be one line: {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let user_bytes = parts.next().unwrap_or_default();
    let defaults_bytes = parts.next().unwrap_or_default();
    let cli_bytes = parts.next().unwrap_or_default();

    let user = if flags & 1 == 0 {
        match read_bytes("user.properties", user_bytes, "--properties-file") {
            Ok(m) => Some(m),
            Err(e) => return one_line(&e),
        }
    } else {
        None
    };
    let load_flag = flags & 4 != 0;
    // As in the wrapper: Spark reads the defaults file without a properties file, or
    // with --load-spark-defaults.
    let defaults = if flags & 2 == 0 && (user.is_none() || load_flag) {
        match read_bytes("spark-defaults.conf", defaults_bytes, "spark-defaults.conf") {
            Ok(m) => Some(m),
            Err(e) => return one_line(&e),
        }
    } else {
        None
    };

    // `--conf` options go through the argument model, as in the wrapper.
    let mut tokens: Vec<OsString> = Vec::new();
    for line in String::from_utf8_lossy(cli_bytes).split('\n') {
        tokens.push("--conf".into());
        tokens.push(line.into());
    }
    tokens.push("app.jar".into());
    let parsed = match Parsed::parse(tokens) {
        Ok(p) => p,
        Err(e) => return one_line(&e.to_string()),
    };
    let cli: Vec<(usize, String, String)> = parsed
        .confs()
        .into_iter()
        .map(|c| (c.index, c.key, c.value))
        .collect();

    let eff = Effective::merge(&cli, user.clone(), defaults.clone(), load_flag);
    check_precedence(&eff, &cli, user.as_ref(), defaults.as_ref(), load_flag);

    let token = flags & 8 == 0;
    let scoped = Credentials {
        access_key_id: KEY_ID.into(),
        secret_access_key: SECRET.into(),
        session_token: token.then(|| TOKEN.into()),
        expiration: token.then(|| parse_rfc3339(EXPIRATION)).flatten(),
    };
    let master = ["local[*]", "yarn", "k8s://https://h:6443", "spark://h:7077"]
        [usize::from((flags >> 4) & 3)];
    let mode = if flags & 64 != 0 { "cluster" } else { "client" };
    let deploy = Deploy::from(Some(master), Some(mode));
    let inj = inject::plan(&eff, &scoped, Some("us-east-1"), deploy);

    for t in inj.cli_tokens() {
        assert!(
            !t.contains(SECRET) && !t.contains(TOKEN),
            "a secret on the command line: {t:?}"
        );
    }
    for w in &inj.warnings {
        assert!(
            !w.contains(SECRET) && !w.contains(TOKEN),
            "a secret in a warning"
        );
    }

    let merged = inj.merged_file(&eff);
    let provider = if token {
        inject::TEMPORARY_PROVIDER
    } else {
        inject::SIMPLE_PROVIDER
    };
    assert_eq!(
        merged.get(&format!("{S3A}access.key")).map(String::as_str),
        Some(KEY_ID)
    );
    assert_eq!(
        merged.get(&format!("{S3A}secret.key")).map(String::as_str),
        Some(SECRET)
    );
    assert_eq!(
        merged
            .get(&format!("{S3A}aws.credentials.provider"))
            .map(String::as_str),
        Some(provider)
    );
    if token {
        assert_eq!(
            merged
                .get(&format!("{S3A}session.token"))
                .map(String::as_str),
            Some(TOKEN)
        );
    }

    // What Spark ends up with: the merged file, the user's --conf (in order), the
    // wrapper's --conf (after them: later wins), then, with --load-spark-defaults,
    // the defaults file for keys still missing.
    let mut finalv = merged.clone();
    for (_, k, v) in &cli {
        finalv.insert(k.clone(), v.clone());
    }
    for (k, v) in &inj.cli {
        finalv.insert(k.clone(), v.clone());
    }
    if eff.defaults_reread
        && let Some(d) = &defaults
    {
        for (k, v) in d {
            finalv.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    check_final(&finalv, &scoped, provider, deploy);

    match propsfile::render(&merged) {
        Ok(bytes) => {
            let back = read_bytes("merged.properties", &bytes, "merged")
                .expect("the rendered file reads back");
            assert_eq!(back, merged, "the merged file must read back unchanged");
        }
        Err(e) => {
            let s = e.to_string();
            one_line(&s);
            // Only control characters are refused; anything else must be written.
            let control = |s: &String| {
                s.chars()
                    .any(|c| c < ' ' && !matches!(c, '\t' | '\n' | '\r' | '\x0c'))
            };
            assert!(
                merged.iter().any(|(k, v)| control(k) || control(v)),
                "render refused a map without control characters: {s}"
            );
        }
    }
});

fn check_precedence(
    eff: &Effective,
    cli: &[(usize, String, String)],
    user: Option<&BTreeMap<String, String>>,
    defaults: Option<&BTreeMap<String, String>>,
    load_flag: bool,
) {
    let mut want: BTreeMap<&str, (&str, Source)> = BTreeMap::new();
    for (src, map) in [(Source::Defaults, defaults), (Source::PropertiesFile, user)] {
        for (k, v) in map.into_iter().flatten() {
            want.insert(k, (v, src));
        }
    }
    for (i, k, v) in cli {
        want.insert(k, (v, Source::Cli(*i)));
    }
    assert_eq!(eff.entries.len(), want.len());
    for (k, (v, src)) in want {
        let e = &eff.entries[k];
        assert_eq!((e.value.as_str(), e.source), (v, src), "key {k:?}");
    }
    let base = user.or(defaults).cloned().unwrap_or_default();
    assert_eq!(eff.file_base(), base);
    assert_eq!(eff.defaults_reread, load_flag && defaults.is_some());
}

/// The configuration Spark sees uses the scoped credentials only.
fn check_final(
    finalv: &BTreeMap<String, String>,
    s: &Credentials,
    provider: &str,
    deploy: Deploy,
) {
    let get = |k: &str| finalv.get(k).map(String::as_str);
    let empty_or_absent = |k: &str| {
        assert!(
            get(k).is_none_or(str::is_empty),
            "{k} keeps a value: {:?}",
            get(k)
        );
    };

    // S3A, for the default and for every bucket named anywhere: the provider that
    // applies is the scoped one (reading the scoped keys) or the environment one
    // (reading the AWS_* variables the wrapper sets). A credential store
    // (`security.credential.provider.path`) is consulted before the conf keys, so
    // where one applies only the environment provider keeps the scope.
    let bucket_of = |k: &str, suffix: &str| -> Option<String> {
        k.strip_prefix(S3A_BUCKET)?
            .strip_suffix(suffix)?
            .strip_suffix('.')
            .filter(|b| !b.is_empty())
            .map(str::to_string)
    };
    const SUFFIXES: &[&str] = &[
        "access.key",
        "secret.key",
        "session.token",
        "aws.credentials.provider",
        "security.credential.provider.path",
    ];
    let mut buckets: Vec<Option<String>> = vec![None];
    for k in finalv.keys() {
        buckets.extend(SUFFIXES.iter().filter_map(|s| bucket_of(k, s)).map(Some));
    }
    let non_empty = |v: Option<&str>| v.is_some_and(|v| !v.is_empty());
    let global_store = non_empty(get(HADOOP_CREDENTIAL_PATH))
        || non_empty(get(&format!("{S3A}security.credential.provider.path")));
    for b in &buckets {
        let key = |suffix: &str| match b {
            Some(b) => {
                get(&format!("{S3A_BUCKET}{b}.{suffix}")).or_else(|| get(&format!("{S3A}{suffix}")))
            }
            None => get(&format!("{S3A}{suffix}")),
        };
        let store = global_store || non_empty(key("security.credential.provider.path"));
        match key("aws.credentials.provider") {
            Some(p) if p == ENV_PROVIDER => {}
            Some(p) if p == provider && !store => {
                assert_eq!(
                    key("access.key"),
                    Some(s.access_key_id.as_str()),
                    "bucket {b:?}"
                );
                assert_eq!(
                    key("secret.key"),
                    Some(s.secret_access_key.as_str()),
                    "bucket {b:?}"
                );
                if let Some(t) = &s.session_token {
                    assert_eq!(key("session.token"), Some(t.as_str()), "bucket {b:?}");
                }
            }
            other => {
                panic!("bucket {b:?} uses provider {other:?} (credential store applies: {store})")
            }
        }
    }
    for k in finalv.keys() {
        for suffix in [
            "aws.credentials.provider.mapping",
            "delegation.token.binding",
        ] {
            if *k == format!("{S3A}{suffix}") || bucket_of(k, suffix).is_some() {
                empty_or_absent(k);
            }
        }
    }

    // AWS_* variables in env conf: the scoped value, or empty (fails closed).
    for prefix in ENV_PREFIXES {
        for (k, v) in finalv.range(prefix.to_string()..) {
            let Some(name) = k.strip_prefix(prefix) else {
                break;
            };
            // The variables the launcher's own child gets (core's one list), the
            // region aside; everything else that carries an identity must be empty.
            if !carries_identity(name) {
                continue;
            }
            let expected = s.launch_vars(None);
            let scoped = expected
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str());
            assert!(
                v.is_empty() || Some(v.as_str()) == scoped,
                "{k} = {v:?} is not the scoped value"
            );
        }
    }
    for prefix in deploy.env_prefixes() {
        assert_eq!(
            get(&format!("{prefix}AWS_ACCESS_KEY_ID")),
            Some(s.access_key_id.as_str()),
            "{prefix}AWS_ACCESS_KEY_ID"
        );
        assert_eq!(
            get(&format!("{prefix}AWS_EC2_METADATA_DISABLED")),
            Some("true")
        );
    }
}
