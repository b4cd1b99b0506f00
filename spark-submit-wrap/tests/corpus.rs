//! Runs every command line of `tests/corpus.txt` through the built wrapper against a
//! stand-in `spark-submit` ($SPARK_HOME/bin/spark-submit), in propagation mode (a
//! provisioned kernel's marker and scoped credentials; no STS needed), and checks
//! what the stand-in received:
//!
//! * the user's tokens byte-identical and in order; the only changes are the
//!   additions at the marked point and the documented in-place replacement of the
//!   last `--properties-file` value (before the primary resource);
//! * the additions are only `--properties-file PATH` and `--conf KEY=VALUE` pairs,
//!   and exactly the `--conf` overrides the line expects;
//! * no secret (secret key, session token) in argv, in `/proc/PID/cmdline`, or in the
//!   decision record;
//! * the properties file, read through its path as Spark reads it, holds the scoped
//!   keys and the per-line expected values;
//! * the job kept the wrapper's PID (exec, not a child).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;

use common::*;

const TEMPORARY: &str = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider";

#[derive(Debug)]
struct Case {
    line_no: usize,
    text: String,
    user: Vec<String>,
    /// Index in `user` where additions go; None: no additions expected.
    insert_at: Option<usize>,
    mode: Option<String>,
    present: Vec<(String, String)>,
    absent: Vec<String>,
    cli: Vec<(String, String)>,
}

fn load_corpus() -> Vec<Case> {
    let text = include_str!("corpus.txt");
    let mut cases = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (cmd, notes) = match line.split_once(" #=> ") {
            Some((c, n)) => (c, n),
            None => (line, ""),
        };
        let (none, cmd) = match cmd.strip_prefix("! ") {
            Some(rest) => (true, rest),
            None => (false, cmd),
        };
        let words: Vec<String> = shell_words(cmd).iter().map(|w| expand(w)).collect();
        let marks: Vec<usize> = words
            .iter()
            .enumerate()
            .filter(|(_, w)| w.as_str() == "^")
            .map(|(i, _)| i)
            .collect();
        assert!(
            marks.len() == usize::from(!none),
            "corpus line {}: expected exactly one ^ (or a leading !): {line}",
            i + 1
        );
        let user: Vec<String> = words
            .iter()
            .filter(|w| w.as_str() != "^")
            .cloned()
            .collect();
        let mut case = Case {
            line_no: i + 1,
            text: line.to_string(),
            user,
            insert_at: marks.first().copied(),
            mode: None,
            present: Vec::new(),
            absent: Vec::new(),
            cli: Vec::new(),
        };
        for note in shell_words(notes).iter().map(|n| expand(n)) {
            if let Some(m) = note.strip_prefix("mode=") {
                case.mode = Some(m.to_string());
            } else if let Some(kv) = note.strip_prefix("cli:") {
                let (k, v) = kv.split_once('=').expect("cli:KEY=VALUE");
                case.cli.push((k.to_string(), v.to_string()));
            } else if let Some(k) = note.strip_suffix('!') {
                case.absent.push(k.to_string());
            } else {
                let (k, v) = note.split_once('=').expect("KEY=VALUE");
                case.present.push((k.to_string(), v.to_string()));
            }
        }
        cases.push(case);
    }
    cases
}

/// Finds the user's last `--properties-file` value before `end`: (token index, joined form).
fn user_properties_token(user: &[String], end: usize) -> Option<(usize, bool)> {
    let mut found = None;
    let mut i = 0;
    while i < end {
        if user[i] == "--properties-file" && i + 1 < end {
            found = Some((i + 1, false));
            i += 2;
            continue;
        }
        if user[i].starts_with("--properties-file=") {
            found = Some((i, true));
        }
        i += 1;
    }
    found
}

fn check_case(sb: &Sandbox, case: &Case) -> Result<(), String> {
    let ctx = format!("corpus line {}: {}", case.line_no, case.text);
    let args: Vec<OsString> = case.user.iter().map(OsString::from).collect();
    let run = sb.run(
        &format!("line{}", case.line_no),
        &args,
        &sb.propagation_env(),
    );
    if !run.ran() {
        return Err(format!(
            "{ctx}\nstand-in did not run; stderr: {}",
            run.stderr()
        ));
    }
    if run.code() != Some(0) {
        return Err(format!(
            "{ctx}\nexit {:?}; stderr: {}",
            run.code(),
            run.stderr()
        ));
    }
    if run.standin_pid() != Some(run.pid) {
        return Err(format!(
            "{ctx}\nspark-submit did not keep the wrapper's PID (no exec)"
        ));
    }
    let got: Vec<String> = run
        .argv()
        .iter()
        .map(|a| a.to_str().expect("utf-8 corpus").to_string())
        .collect();

    // No secret anywhere on a command line or in the record.
    for secret in [SECRET, TOKEN] {
        if got.iter().any(|a| a.contains(secret)) {
            return Err(format!("{ctx}\nsecret in argv: {got:?}"));
        }
        if contains_bytes(&run.cmdline_bytes(), secret.as_bytes()) {
            return Err(format!("{ctx}\nsecret in /proc/PID/cmdline"));
        }
        if run.stderr().contains(secret) {
            return Err(format!(
                "{ctx}\nsecret in the wrapper's stderr (decision record)"
            ));
        }
    }

    let Some(p) = case.insert_at else {
        if got != case.user {
            return Err(format!("{ctx}\nexpected argv untouched, got {got:?}"));
        }
        return Ok(());
    };

    // User tokens identical and in order around the insertion point.
    let added = got
        .len()
        .checked_sub(case.user.len())
        .ok_or(format!("{ctx}\nfewer tokens than the user gave: {got:?}"))?;
    let (before, rest) = got.split_at(p);
    let (additions, after) = rest.split_at(added);
    if after != &case.user[p..] {
        return Err(format!(
            "{ctx}\ntokens after the insertion point changed: {after:?} vs {:?}",
            &case.user[p..]
        ));
    }
    let replaced = user_properties_token(&case.user, p);
    for (i, (g, u)) in before.iter().zip(&case.user[..p]).enumerate() {
        if replaced.map(|(r, _)| r) == Some(i) {
            continue;
        }
        if g != u {
            return Err(format!("{ctx}\ntoken {i} changed: {g:?} (was {u:?})"));
        }
    }

    // The additions: optionally --properties-file PATH, then --conf pairs.
    let mut props_path = match replaced {
        Some((r, joined)) => {
            let tok = &before[r];
            let path = if joined {
                tok.strip_prefix("--properties-file=")
                    .ok_or(format!("{ctx}\njoined form not kept: {tok}"))?
                    .to_string()
            } else {
                tok.clone()
            };
            Some(path)
        }
        None => None,
    };
    let mut rest = additions;
    if replaced.is_none() {
        match rest {
            [opt, path, tail @ ..] if opt == "--properties-file" => {
                props_path = Some(path.clone());
                rest = tail;
            }
            _ => return Err(format!("{ctx}\nno --properties-file added: {additions:?}")),
        }
    }
    let mut cli = Vec::new();
    for pair in rest.chunks(2) {
        match pair {
            [opt, kv] if opt == "--conf" => {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or(format!("{ctx}\nbad --conf {kv}"))?;
                cli.push((k.to_string(), v.to_string()));
            }
            _ => return Err(format!("{ctx}\nunexpected addition {pair:?}")),
        }
    }
    let mut want_cli = case.cli.clone();
    want_cli.sort();
    cli.sort();
    if cli != want_cli {
        return Err(format!(
            "{ctx}\n--conf overrides {cli:?}, expected {want_cli:?}"
        ));
    }
    let props_path = props_path.ok_or(format!("{ctx}\nno properties file"))?;

    // The properties file as Spark reads it.
    let files = run.props_files();
    let content = files
        .iter()
        .rev()
        .find(|(path, _, _)| *path == props_path)
        .and_then(|(_, c, _)| c.clone())
        .ok_or(format!(
            "{ctx}\nproperties file {props_path} not readable by spark-submit"
        ))?;
    let conf = parse_properties(&content);
    let mut want: BTreeMap<String, String> = [
        ("spark.hadoop.fs.s3a.access.key", KEYID),
        ("spark.hadoop.fs.s3a.secret.key", SECRET),
        ("spark.hadoop.fs.s3a.session.token", TOKEN),
        ("spark.hadoop.fs.s3a.aws.credentials.provider", TEMPORARY),
        ("spark.executorEnv.AWS_ACCESS_KEY_ID", KEYID),
        ("spark.executorEnv.AWS_SECRET_ACCESS_KEY", SECRET),
        ("spark.executorEnv.AWS_SESSION_TOKEN", TOKEN),
        ("spark.executorEnv.AWS_EC2_METADATA_DISABLED", "true"),
        (
            "spark.executorEnv.AWS_CREDENTIAL_EXPIRATION",
            "2099-01-01T00:00:00Z",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let driver_env = match case.mode.as_deref() {
        Some("yarn-cluster") => Some("spark.yarn.appMasterEnv."),
        Some("k8s-cluster") => Some("spark.kubernetes.driverEnv."),
        None => None,
        Some(other) => return Err(format!("{ctx}\nunknown mode {other}")),
    };
    if let Some(prefix) = driver_env {
        want.insert(format!("{prefix}AWS_SECRET_ACCESS_KEY"), SECRET.into());
        want.insert(format!("{prefix}AWS_SESSION_TOKEN"), TOKEN.into());
        want.insert(format!("{prefix}AWS_ACCESS_KEY_ID"), KEYID.into());
    }
    for prefix in ["spark.yarn.appMasterEnv.", "spark.kubernetes.driverEnv."] {
        if Some(prefix) != driver_env
            && conf.contains_key(&format!("{prefix}AWS_SECRET_ACCESS_KEY"))
        {
            return Err(format!(
                "{ctx}\nunexpected {prefix}AWS_SECRET_ACCESS_KEY for this mode"
            ));
        }
    }
    for (k, v) in &case.present {
        want.insert(k.clone(), v.clone());
    }
    for (k, v) in &want {
        if conf.get(k) != Some(v) {
            let shown = if k.contains("secret")
                || k.contains("SECRET")
                || k.contains("token")
                || k.contains("TOKEN")
            {
                "<hidden>".to_string()
            } else {
                format!("{:?}", conf.get(k))
            };
            return Err(format!(
                "{ctx}\nproperties file: {k} is {shown}, expected {v:?}"
            ));
        }
    }
    for k in &case.absent {
        if conf.contains_key(k) {
            return Err(format!("{ctx}\nproperties file still has {k}"));
        }
    }

    // Every neutralised key is named in the record.
    let record = run.record_json();
    let warnings = record["warnings"].as_array().cloned().unwrap_or_default();
    for (k, _) in &case.cli {
        let named = |w: &str| {
            w.contains(k.as_str())
                || (k.ends_with("aws.credentials.provider")
                    && w.contains("S3A now reads them from the AWS_* environment"))
        };
        if !warnings.iter().any(|w| w.as_str().is_some_and(named)) {
            return Err(format!("{ctx}\nno warning in the record for {k}: {record}"));
        }
    }
    if record["credentials"] != "propagated" {
        return Err(format!(
            "{ctx}\nrecord does not say the credentials were propagated: {record}"
        ));
    }
    Ok(())
}

#[test]
fn corpus_has_at_least_forty_realistic_lines() {
    assert!(load_corpus().len() >= 40);
}

#[test]
fn every_corpus_line_passes_through_intact_with_scoped_credentials() {
    let sb = Sandbox::new();
    let failures: Vec<String> = load_corpus()
        .iter()
        .filter_map(|c| check_case(&sb, c).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} corpus line(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
