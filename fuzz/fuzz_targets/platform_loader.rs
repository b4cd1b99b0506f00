//! Fuzzes the platform loader and everything a loaded platform feeds: resolution
//! (with the fall-back loop the mint step drives) and the decision record.
//!
//! Input: the platform JSON, optionally followed by a NUL byte and `NAME=VALUE` lines
//! that act as the environment overrides the loader reads (`SESSION_POLICY_ROLE_ARN`,
//! `SYNTASA_SESSION_POLICY_ENABLED`, ...). Without a NUL the environment is empty.
//!
//! Checked: nothing panics; a load error is one line; resolution never picks a tier
//! whose credentials already failed and ends within the number of tiers; an
//! AssumeRole plan holds what STS accepts (session name, duration, policy size); the
//! decision record and the `explain --json` value serialise to one JSON object.

#![no_main]

use libfuzzer_sys::fuzz_target;
use provisioner_core::context::{Flow, LaunchContext};
use provisioner_core::decision::{Failure, FailureKind, Plan, Tier, resolve};
use provisioner_core::load::{MAX_DURATION, MIN_DURATION, load_str};
use provisioner_core::model::Platform;
use provisioner_core::policy::MAX_POLICY_CHARS;
use provisioner_core::record::DecisionRecord;

fuzz_target!(|data: &[u8]| {
    let (json, env_text) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let text = String::from_utf8_lossy(json);
    let env: Vec<(String, String)> = env_text
        .map(|e| {
            String::from_utf8_lossy(e)
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match load_str(&text, "fuzz.json", &lookup) {
        Err(e) => {
            let line = e.to_string();
            assert!(
                !line.contains('\n') && !line.contains('\r'),
                "a load error must be one line: {line:?}"
            );
            assert!(line.starts_with("fuzz.json: "), "names the file: {line:?}");
        }
        Ok(platform) => {
            for ctx in contexts(&platform) {
                fall_back_loop(&platform, &ctx, data.len().is_multiple_of(2));
            }
        }
    }
});

/// A few contexts that reach different rows of the tables: the platform's first user,
/// workspace and runtime template, and ids the platform does not know.
fn contexts(p: &Platform) -> Vec<LaunchContext> {
    let user = p.users.keys().next().cloned();
    let ws = p.workspaces.keys().next().cloned();
    let rt = p.runtime_templates.keys().next().cloned();
    let mut out = Vec::new();
    for flow in [Flow::Notebook, Flow::NotebookRun, Flow::Job] {
        let ctx = |user: Option<&String>, ws: Option<String>, rt: Option<String>| LaunchContext {
            flow,
            user: user.cloned().unwrap_or_else(|| "nobody".into()),
            workspace: ws,
            runtime_template: rt,
            job_id: Some("job-1".into()),
        };
        out.push(ctx(user.as_ref(), ws.clone(), rt.clone()));
        out.push(ctx(None, None, None));
        out.push(ctx(user.as_ref(), Some("ws-unknown".into()), None));
    }
    out
}

/// Resolves as the mint step does: every minting tier fails once, and the decision is
/// taken again with the failures so far.
fn fall_back_loop(platform: &Platform, ctx: &LaunchContext, packed_too_large: bool) {
    let mut failures: Vec<Failure> = Vec::new();
    // Three tiers can mint; after they all failed the answer is ambient or refused.
    for _ in 0..=3 {
        let d = resolve(platform, ctx, &failures);
        check_record(&d);
        match &d.plan {
            Plan::AssumeRole(a) => {
                let n = a.session_name.chars().count();
                assert!((2..=64).contains(&n), "session name length {n}");
                assert!(
                    a.session_name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)),
                    "session name {:?}",
                    a.session_name
                );
                assert!(
                    (MIN_DURATION..=MAX_DURATION).contains(&a.duration_seconds),
                    "duration {}",
                    a.duration_seconds
                );
                if let Some(p) = &a.policy {
                    assert!(
                        p.chars() <= MAX_POLICY_CHARS,
                        "policy of {} chars",
                        p.chars()
                    );
                    assert!(p.to_value().is_object(), "policy is a JSON object");
                }
            }
            Plan::StaticKeys(_) => {}
            Plan::Ambient => {
                assert_eq!(
                    d.tier,
                    Tier::Default,
                    "ambient credentials are the default tier"
                );
                return;
            }
            Plan::Refused(r) => {
                for s in [&r.message, &r.fix] {
                    assert!(!s.is_empty() && !s.contains('\n'), "refusal text {s:?}");
                }
                assert_ne!(r.exit_code, 0);
                return;
            }
        }
        assert!(
            !failures.iter().any(|f| f.tier == d.tier),
            "tier {} chosen again after it failed",
            d.tier
        );
        let kind = match d.tier {
            Tier::SessionPolicy if packed_too_large => FailureKind::PackedPolicyTooLarge,
            Tier::SessionPolicy => FailureKind::SessionPolicyCredentials,
            _ => FailureKind::ServiceAccount,
        };
        failures.push(Failure {
            tier: d.tier,
            kind,
            message: "fuzz: minting failed".into(),
        });
    }
    panic!("resolution did not end after every minting tier failed");
}

fn check_record(d: &provisioner_core::decision::Decision) {
    let v = DecisionRecord::explain_value(d);
    let obj = v.as_object().expect("explain value is a JSON object");
    assert!(obj.contains_key("tier") && obj.contains_key("policy"));
    let line = DecisionRecord::new(d).to_line();
    assert!(
        !line.is_empty() && !line.contains('\n'),
        "record is one line"
    );
    let back: serde_json::Value = serde_json::from_str(&line).expect("record line is JSON");
    assert!(back.is_object());
}
