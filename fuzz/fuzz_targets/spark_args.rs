//! Fuzzes the `spark-submit` argument model of `spark-submit-wrap`.
//!
//! Input: the argument vector after the program name, tokens separated by NUL bytes
//! (a real argv cannot hold NUL, so every token shape is reachable).
//!
//! Checked: nothing panics; a usage error is one line; without additions the rebuilt
//! vector is the user's, byte-identical, minus the wrapper's own options; with the
//! wrapper's additions (as `main.rs` makes them: `--properties-file` or the in-place
//! replacement of the user's last one, plus `--conf` overrides) the user's tokens are
//! still all there in order, the additions sit in one block at the insertion point,
//! and Spark, parsing the result, sees the wrapper's properties file and the
//! wrapper's `--conf` values as the last word, with the primary resource and its
//! arguments unchanged.

#![no_main]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use libfuzzer_sys::fuzz_target;
use spark_submit_wrap::args::{Form, Parsed};

const PROPS: &str = "/dev/fd/9";
const MARK: &str = "__wrapper__";

fuzz_target!(|data: &[u8]| {
    let tokens: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|t| OsString::from_vec(t.to_vec()))
        .collect();
    let parsed = match Parsed::parse(tokens.clone()) {
        Ok(p) => p,
        Err(e) => {
            let s = e.to_string();
            assert!(
                !s.contains('\n') && !s.contains('\r'),
                "a usage error must be one line: {s:?}"
            );
            assert!(
                tokens.iter().any(|t| t.as_bytes().starts_with(b"--wrap-")),
                "only wrapper options are usage errors"
            );
            return;
        }
    };
    assert_eq!(parsed.tokens, tokens);
    check_indices(&parsed);

    // No additions: the user's tokens, byte-identical, wrapper options removed.
    let user: Vec<OsString> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| !parsed.wrap_tokens.contains(i))
        .map(|(_, t)| t.clone())
        .collect();
    assert_eq!(parsed.rebuild(None, &[]), user);
    if parsed.wrap_tokens.is_empty() {
        assert_eq!(parsed.rebuild(None, &[]), tokens);
    }
    if parsed.is_info_only() {
        assert!(parsed.primary.is_none() && parsed.options.is_empty());
        return;
    }

    // The wrapper's additions, as main.rs builds them.
    let mut keys: Vec<String> = parsed.confs().into_iter().map(|c| c.key).collect();
    keys.truncate(3);
    keys.push("spark.hadoop.fs.s3a.aws.credentials.provider".into());
    let user_file = parsed.properties_file().cloned();
    let mut additions: Vec<OsString> = Vec::new();
    if user_file.is_none() {
        additions.push("--properties-file".into());
        additions.push(PROPS.into());
    }
    for k in &keys {
        additions.push("--conf".into());
        additions.push(format!("{k}={MARK}").into());
    }
    let replace = user_file.as_ref().map(|_| OsStr::new(PROPS));
    let out = parsed.rebuild(replace, &additions);

    let Some(at) = parsed.insertion_point() else {
        // A dangling option: nothing may be added or replaced.
        assert!(parsed.dangling.is_some());
        assert_eq!(out, user);
        return;
    };
    // The insertion point in the user's vector (wrapper options removed).
    let at = at - parsed.wrap_tokens.iter().filter(|&&i| i < at).count();
    assert_eq!(out.len(), user.len() + additions.len());
    assert_eq!(&out[at..at + additions.len()], &additions[..]);
    let mut rest: Vec<OsString> = out[..at].to_vec();
    rest.extend_from_slice(&out[at + additions.len()..]);
    // Apart from the additions, only the user's last --properties-file value changed.
    let changed: Vec<usize> = (0..user.len()).filter(|&i| rest[i] != user[i]).collect();
    match &user_file {
        None => assert!(changed.is_empty(), "user tokens changed at {changed:?}"),
        Some(o) => {
            assert!(changed.len() <= 1, "user tokens changed at {changed:?}");
            let want: OsString = match o.form {
                Form::Separate => PROPS.into(),
                Form::Joined => format!("--properties-file={PROPS}").into(),
            };
            let i = o.value_index
                - parsed
                    .wrap_tokens
                    .iter()
                    .filter(|&&w| w < o.value_index)
                    .count();
            assert_eq!(
                rest[i], want,
                "the properties file value is replaced in place"
            );
        }
    }

    // Spark's view of the result.
    let again = Parsed::parse(out.clone()).expect("the rebuilt vector parses");
    assert!(again.dangling.is_none());
    assert_eq!(
        again.properties_file().map(|o| o.value.clone()),
        Some(OsString::from(PROPS)),
        "Spark reads the wrapper's properties file"
    );
    let confs = again.confs();
    for k in &keys {
        let last = confs
            .iter()
            .rev()
            .find(|c| &c.key == k)
            .map(|c| c.value.as_str());
        assert_eq!(
            last,
            Some(MARK),
            "the wrapper's --conf {k} is the last word"
        );
    }
    assert_eq!(again.master(), parsed.master());
    assert_eq!(again.deploy_mode(), parsed.deploy_mode());
    assert_eq!(again.load_spark_defaults(), parsed.load_spark_defaults());
    assert_eq!(again.mixed, parsed.mixed);
    if let (Some(p), false) = (parsed.primary, parsed.mixed) {
        // The primary resource and the application's arguments are untouched, and
        // no addition became an application argument.
        let q = again.primary.expect("the primary resource is still there");
        assert_eq!(&out[q..], &tokens[p..]);
        assert!(at + additions.len() <= q);
    }
});

fn check_indices(p: &Parsed) {
    let n = p.tokens.len();
    for o in &p.options {
        assert!(o.index < n && o.value_index < n && o.index <= o.value_index);
        assert!(o.name.starts_with("--"));
    }
    for (i, _) in &p.switches {
        assert!(*i < n);
    }
    for i in p.unknown.iter().chain(&p.wrap_tokens) {
        assert!(*i < n);
    }
    if let Some(pr) = p.primary {
        assert!(pr < n);
        if !p.mixed {
            // Nothing after the primary resource is interpreted.
            assert!(p.options.iter().all(|o| o.value_index < pr));
            assert!(p.switches.iter().all(|(i, _)| *i < pr));
            assert!(p.unknown.iter().all(|i| *i < pr));
        }
    }
}
