//! Minting against a stand-in STS server for what moto cannot do (throttling, 5xx,
//! duration and packed-size errors, a server that never answers), plus static keys
//! and an unreachable endpoint. The stand-in speaks STS's query protocol: real
//! AssumeRole XML answers and ErrorResponse bodies with STS's status codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use provisioner_core::context::Flow;
use provisioner_core::decision::{DefaultReason, Plan, RefusalCode, SkipReason, Tier};
use provisioner_core::exit;
use provisioner_core::mint::{Minted, StsOptions, obtain_with};
use provisioner_core::record::DecisionRecord;
use serde_json::json;

const MAX_SESSION: &str =
    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.";
const ROLE_CHAINING: &str = "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.";

fn warnings(m: &Minted) -> String {
    m.decision.warnings.join("\n")
}

fn durations(sts: &StandIn) -> Vec<String> {
    sts.requests()
        .iter()
        .map(|r| r.get("DurationSeconds").cloned().unwrap_or_default())
        .collect()
}

fn is_role(form: &std::collections::BTreeMap<String, String>, name: &str) -> bool {
    form.get("RoleArn")
        .is_some_and(|a| a.ends_with(&format!("/{name}")))
}

#[test]
fn throttling_is_retried_until_sts_answers_and_every_parameter_is_sent() {
    let sts = StandIn::start(|n, _| {
        if n < 2 {
            Reply::Error(400, "Throttling", "Rate exceeded")
        } else {
            Reply::Ok
        }
    });
    let p = test_platform(
        Some(&sts.url()),
        json!({"sts_source_identity": "true", "sts_session_tags": "true"}),
        "/nonexistent",
    );
    let c = ctx(Flow::Notebook, "alice", Some("ws-finance"), None);
    let m = obtain_with(&p, &c, &no_env, &options());

    assert_eq!(m.decision.tier, Tier::WorkspaceSa, "{:?}", m.decision);
    let creds = m.credentials.as_ref().expect("credentials after retries");
    assert_eq!(creds.access_key_id, "ASIASTANDIN");
    assert_eq!(creds.secret_access_key, "standin-secret");
    assert_eq!(creds.session_token.as_deref(), Some("standin-token"));
    let left = seconds_until(creds.expiration.expect("expiration from the answer"));
    assert!((43100..=43200).contains(&left), "expires in {left} s");

    let reqs = sts.requests();
    assert_eq!(reqs.len(), 3, "two throttled attempts and one success");
    let last = &reqs[2];
    let get = |k: &str| last.get(k).map(String::as_str);
    assert_eq!(get("Action"), Some("AssumeRole"));
    assert_eq!(get("RoleArn"), Some(role_arn("Finance").as_str()));
    assert_eq!(get("RoleSessionName"), Some("alice"));
    assert_eq!(get("DurationSeconds"), Some("43200"));
    assert_eq!(get("ExternalId"), Some("fin-ext"));
    assert_eq!(get("SourceIdentity"), Some("alice"));
    assert_eq!(
        get("Policy"),
        None,
        "service accounts get no session policy"
    );
    let tags: Vec<(String, String)> = (1..=10)
        .filter_map(|i| {
            Some((
                last.get(&format!("Tags.member.{i}.Key"))?.clone(),
                last.get(&format!("Tags.member.{i}.Value"))?.clone(),
            ))
        })
        .collect();
    assert_eq!(
        tags,
        vec![
            ("syn:user".to_string(), "alice".to_string()),
            ("syn:workspace".into(), "ws-finance".into()),
            ("syn:flow".into(), "notebook".into()),
        ]
    );

    let line = DecisionRecord::new(&m.decision).to_line();
    assert!(!line.contains("standin-secret") && !line.contains("standin-token"));
    assert!(!format!("{m:?}").contains("standin-secret"));
}

#[test]
fn server_errors_are_retried() {
    let sts = StandIn::start(|n, _| match n {
        0 => Reply::Error(503, "ServiceUnavailable", "Service is unavailable"),
        1 => Reply::Error(500, "InternalFailure", "internal failure"),
        _ => Reply::Ok,
    });
    let p = test_platform(Some(&sts.url()), json!({}), "/nonexistent");
    let c = ctx(Flow::Notebook, "alice", Some("ws-open"), None);
    let m = obtain_with(&p, &c, &no_env, &options());
    assert_eq!(m.decision.tier, Tier::SessionPolicy, "{:?}", m.decision);
    assert!(m.credentials.is_some());
    assert_eq!(sts.requests().len(), 3);
}

#[test]
fn persistent_throttling_stops_at_max_attempts_and_the_service_account_falls_back() {
    let sts = StandIn::start(|_, form| {
        if is_role(form, "Finance") {
            Reply::Error(400, "Throttling", "Rate exceeded")
        } else {
            Reply::Ok
        }
    });
    let p = test_platform(Some(&sts.url()), json!({"sts_max_attempts": "3"}), "/x");
    let c = ctx(Flow::Notebook, "alice", Some("ws-finance"), None);
    let m = obtain_with(&p, &c, &no_env, &options());

    let finance = sts
        .requests()
        .iter()
        .filter(|r| is_role(r, "Finance"))
        .count();
    assert_eq!(finance, 3, "sts_max_attempts bounds the attempts");
    assert_eq!(m.decision.tier, Tier::SessionPolicy, "{:?}", m.decision);
    assert!(m.credentials.is_some());
    let w = warnings(&m);
    assert!(
        w.contains("\"sa-finance\"")
            && w.contains("Throttling: Rate exceeded")
            && w.contains("gave up after 3 attempts")
            && w.contains("falling back"),
        "{w}"
    );
    assert!(
        m.decision
            .skipped
            .iter()
            .any(|s| s.tier == Tier::WorkspaceSa && s.reason == SkipReason::ServiceAccountFailed)
    );
}

#[test]
fn access_denied_is_not_retried_and_the_session_policy_tier_refuses() {
    let sts = StandIn::start(|_, _| {
        Reply::Error(
            403,
            "AccessDenied",
            "User: arn:aws:iam::123456789012:user/launcher is not authorized to perform: sts:AssumeRole",
        )
    });
    let p = test_platform(Some(&sts.url()), json!({}), "/x");
    let c = ctx(Flow::Notebook, "alice", Some("ws-open"), None);
    let m = obtain_with(&p, &c, &no_env, &options());
    assert_eq!(sts.requests().len(), 1, "AccessDenied is final");
    assert!(m.credentials.is_none());
    let r = m.decision.refusal().expect("refused rather than widened");
    assert_eq!(r.code, RefusalCode::CredentialsUnavailable);
    assert_eq!(r.exit_code, exit::CREDENTIALS);
    assert!(r.message.contains("AccessDenied"), "{}", r.message);
}

#[test]
fn max_session_duration_is_retried_once_at_3600_with_the_fix() {
    let sts = StandIn::start(|_, form| {
        if form.get("DurationSeconds").map(String::as_str) == Some("43200") {
            Reply::Error(400, "ValidationError", MAX_SESSION)
        } else {
            Reply::Ok
        }
    });
    let p = test_platform(Some(&sts.url()), json!({}), "/x");
    let c = ctx(Flow::Notebook, "alice", Some("ws-finance"), None);
    let m = obtain_with(&p, &c, &no_env, &options());

    assert_eq!(durations(&sts), vec!["43200", "3600"]);
    assert_eq!(m.decision.tier, Tier::WorkspaceSa);
    assert_eq!(
        m.decision.assume_role().map(|a| a.duration_seconds),
        Some(3600)
    );
    assert_eq!(
        DecisionRecord::new(&m.decision).duration_seconds,
        Some(3600)
    );
    let left = seconds_until(
        m.credentials
            .as_ref()
            .expect("creds")
            .expiration
            .expect("exp"),
    );
    assert!((3500..=3600).contains(&left), "expires in {left} s");
    let w = warnings(&m);
    assert!(
        w.contains("aws iam update-role --role-name Finance --max-session-duration 43200"),
        "{w}"
    );
}

#[test]
fn role_chaining_limit_is_retried_at_3600_and_explained() {
    let sts = StandIn::start(|_, form| {
        if form.get("DurationSeconds").map(String::as_str) == Some("43200") {
            Reply::Error(400, "ValidationError", ROLE_CHAINING)
        } else {
            Reply::Ok
        }
    });
    let p = test_platform(
        Some(&sts.url()),
        json!({"syntasa_session_policy_duration": "43200"}),
        "/x",
    );
    let c = ctx(Flow::Notebook, "alice", Some("ws-open"), None);
    let m = obtain_with(&p, &c, &no_env, &options());
    assert_eq!(durations(&sts), vec!["43200", "3600"]);
    assert_eq!(m.decision.tier, Tier::SessionPolicy);
    assert!(m.credentials.is_some());
    assert_eq!(
        m.decision.assume_role().map(|a| a.duration_seconds),
        Some(3600)
    );
    let w = warnings(&m);
    assert!(w.contains("role chaining"), "{w}");
    assert!(
        w.contains(
            "aws iam update-role --role-name PlatformInfraRole --max-session-duration 43200"
        ),
        "{w}"
    );
}

#[test]
fn a_duration_error_at_3600_is_not_retried() {
    let sts = StandIn::start(|_, _| Reply::Error(400, "ValidationError", MAX_SESSION));
    let p = test_platform(Some(&sts.url()), json!({}), "/x");
    // The session-policy tier asks for 3600 s here: there is nothing shorter to try.
    let c = ctx(Flow::Notebook, "alice", Some("ws-open"), None);
    let m = obtain_with(&p, &c, &no_env, &options());
    assert_eq!(durations(&sts), vec!["3600"]);
    assert_eq!(
        m.decision.refusal().map(|r| r.code),
        Some(RefusalCode::CredentialsUnavailable)
    );
}

#[test]
fn packed_policy_too_large_from_sts_is_over_limit() {
    for code in ["PackedPolicyTooLarge", "PackedPolicyTooLargeException"] {
        let sts = StandIn::start(move |_, _| {
            Reply::Error(
                400,
                code,
                "Packed size of session policies and session tags exceeds the limit",
            )
        });
        let c = ctx(Flow::Notebook, "alice", Some("ws-open"), None);

        let p = test_platform(Some(&sts.url()), json!({}), "/x");
        let m = obtain_with(&p, &c, &no_env, &options());
        assert_eq!(m.decision.tier, Tier::Default, "{code}: {:?}", m.decision);
        assert_eq!(m.decision.reason, Some(DefaultReason::OverLimit));
        assert_eq!(m.decision.plan, Plan::Ambient);
        assert!(m.credentials.is_none());
        assert!(
            warnings(&m).contains("too large when packed"),
            "{}",
            warnings(&m)
        );

        let p = test_platform(
            Some(&sts.url()),
            json!({"session_policy_over_limit": "deny"}),
            "/x",
        );
        let m = obtain_with(&p, &c, &no_env, &options());
        let r = m.decision.refusal().expect("deny refuses");
        assert_eq!(r.code, RefusalCode::OverLimit);
        assert_eq!(r.exit_code, exit::REFUSED);
        assert!(m.credentials.is_none());
    }
}

#[test]
fn an_sts_that_never_answers_fails_at_the_deadline() {
    let sts = StandIn::start(|_, _| Reply::Hang);
    let p = test_platform(Some(&sts.url()), json!({"sts_deadline_seconds": "2"}), "/x");
    let c = ctx(Flow::Notebook, "alice", Some("ws-open"), None);
    let m = obtain_with(&p, &c, &no_env, &options());
    assert!(
        m.elapsed >= Duration::from_millis(1900) && m.elapsed < Duration::from_millis(3000),
        "elapsed {:?}",
        m.elapsed
    );
    let r = m.decision.refusal().expect("refused");
    assert_eq!(r.code, RefusalCode::CredentialsUnavailable);
    assert!(r.message.contains("2 s deadline"), "{}", r.message);
}

#[test]
fn backoff_never_sleeps_past_the_deadline() {
    let sts = StandIn::start(|_, _| Reply::Error(400, "RequestLimitExceeded", "slow down"));
    let p = test_platform(
        Some(&sts.url()),
        json!({"sts_deadline_seconds": "1", "sts_max_attempts": "10"}),
        "/x",
    );
    // Backoffs drawn from [0, 30 s): almost every one would end past the deadline,
    // so a loop that slept them anyway would blow through it.
    let opts = StsOptions {
        initial_backoff: Duration::from_secs(30),
        max_backoff: Duration::from_secs(30),
        ..options()
    };
    let c = ctx(Flow::Notebook, "alice", Some("ws-finance"), None);
    let m = obtain_with(&p, &c, &no_env, &opts);
    assert!(
        m.elapsed < Duration::from_millis(1500),
        "elapsed {:?}",
        m.elapsed
    );
    assert!(sts.requests().len() < 10);
    // Both tiers failed within the one deadline: refused, not widened.
    assert_eq!(
        m.decision.refusal().map(|r| r.code),
        Some(RefusalCode::CredentialsUnavailable)
    );
    assert!(
        warnings(&m).contains("RequestLimitExceeded"),
        "{}",
        warnings(&m)
    );
}

#[test]
fn an_unreachable_endpoint_falls_back_or_refuses_within_the_deadline() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let c = ctx(Flow::Notebook, "alice", Some("ws-finance"), None);

    let p = test_platform(
        Some(&url),
        json!({"syntasa_session_policy_enabled": "false"}),
        "/x",
    );
    let m = obtain_with(&p, &c, &no_env, &options());
    assert!(m.elapsed < Duration::from_secs(5), "{:?}", m.elapsed);
    assert_eq!(m.decision.tier, Tier::Default);
    assert_eq!(m.decision.reason, Some(DefaultReason::Disabled));
    assert!(m.credentials.is_none());
    let w = warnings(&m);
    assert!(
        w.contains(&format!("at {url} failed: cannot reach STS")),
        "{w}"
    );

    let p = test_platform(Some(&url), json!({}), "/x");
    let m = obtain_with(&p, &c, &no_env, &options());
    assert!(m.elapsed < Duration::from_secs(5), "{:?}", m.elapsed);
    let r = m.decision.refusal().expect("refused");
    assert_eq!(r.code, RefusalCode::CredentialsUnavailable);
    assert_eq!(r.exit_code, exit::CREDENTIALS);
    assert!(r.message.contains("cannot reach STS"), "{}", r.message);
}

#[test]
fn static_keys_come_from_the_environment_and_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("legacy-secret");
    std::fs::write(&file, "  legacy-secret-value\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let p = test_platform(None, json!({}), &file.display().to_string());
    let c = ctx(Flow::Job, "alice", None, Some("rt-legacy"));
    let env = |name: &str| (name == "LEGACY_KEY_ID").then(|| "AKIDLEGACY".to_string());

    let m = obtain_with(&p, &c, &env, &options());
    assert_eq!(m.decision.tier, Tier::RuntimeTemplateSa, "{:?}", m.decision);
    let creds = m.credentials.as_ref().expect("static keys");
    assert_eq!(creds.access_key_id, "AKIDLEGACY");
    assert_eq!(creds.secret_access_key, "legacy-secret-value");
    assert_eq!(creds.session_token, None);
    assert_eq!(creds.expiration, None);
    assert!(!warnings(&m).contains("readable"), "{}", warnings(&m));

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let m = obtain_with(&p, &c, &env, &options());
    assert!(m.credentials.is_some());
    let w = warnings(&m);
    assert!(
        w.contains("readable by other users")
            && w.contains(&format!("chmod 600 {}", file.display())),
        "{w}"
    );
    assert!(!w.contains("legacy-secret-value"));
}

#[test]
fn unreadable_static_keys_fall_back_naming_the_reference_never_the_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("legacy-secret");
    let settings = json!({"syntasa_session_policy_enabled": "false"});
    let p = test_platform(None, settings, &file.display().to_string());
    let c = ctx(Flow::Job, "alice", None, Some("rt-legacy"));

    // Key id variable unset.
    let m = obtain_with(&p, &c, &no_env, &options());
    assert_eq!(m.decision.tier, Tier::Default);
    assert!(m.credentials.is_none());
    let w = warnings(&m);
    assert!(
        w.contains("environment variable LEGACY_KEY_ID, which is not set"),
        "{w}"
    );

    // Key id set, secret file missing.
    let env = |name: &str| (name == "LEGACY_KEY_ID").then(|| "AKIDLEGACY".to_string());
    let m = obtain_with(&p, &c, &env, &options());
    let w = warnings(&m);
    assert!(w.contains(&format!("file {}", file.display())), "{w}");
    assert!(!w.contains("AKIDLEGACY"), "{w}");

    // Secret file empty.
    std::fs::write(&file, "\n  \n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let m = obtain_with(&p, &c, &env, &options());
    assert!(warnings(&m).contains("which is empty"), "{}", warnings(&m));
    assert!(m.credentials.is_none());

    // service_account_failure = deny refuses instead.
    let p = test_platform(
        None,
        json!({"syntasa_session_policy_enabled": "false", "service_account_failure": "deny"}),
        &file.display().to_string(),
    );
    let m = obtain_with(&p, &c, &env, &options());
    let r = m.decision.refusal().expect("refused");
    assert_eq!(r.code, RefusalCode::ServiceAccountFailed);
    assert_eq!(r.exit_code, exit::REFUSED);
    assert!(m.credentials.is_none());
}
