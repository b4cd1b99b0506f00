//! Minting against a real moto server (STS and IAM): the identity the minted
//! credentials carry, the exact AssumeRole parameters moto received, and fall-back
//! or refusal when a trust policy denies the launcher. Needs MOTO_SERVER.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

mod common;

use common::*;
use provisioner_core::context::Flow;
use provisioner_core::credentials::Credentials;
use provisioner_core::decision::{RefusalCode, SkipReason, Tier};
use provisioner_core::exit;
use provisioner_core::mint::{StsOptions, obtain_with};
use provisioner_core::record::DecisionRecord;
use serde_json::json;

fn assumed_role_arn(role: &str, session: &str) -> String {
    format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}")
}

#[test]
fn a_role_service_account_gets_credentials_for_the_assumed_role() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_role("Finance", &format!("arn:aws:iam::{ACCOUNT}:root"));
    let p = test_platform(Some(&moto.url()), json!({}), "/x");
    let c = ctx(Flow::Notebook, "alice", Some("ws-finance"), None);
    let m = obtain_with(&p, &c, &no_env, &options());

    assert_eq!(m.decision.tier, Tier::WorkspaceSa, "{:?}", m.decision);
    let creds = m.credentials.as_ref().expect("credentials");
    assert!(creds.session_token.is_some());
    let left = seconds_until(creds.expiration.expect("expiration"));
    assert!((43100..=43200).contains(&left), "expires in {left} s");
    assert_eq!(
        caller_arn(&moto.url(), creds),
        assumed_role_arn("Finance", "alice")
    );

    let calls = moto.assumed_roles();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["role_arn"], json!(role_arn("Finance")));
    assert_eq!(calls[0]["session_name"], json!("alice"));
    assert_eq!(calls[0]["external_id"], json!("fin-ext"));
    assert!(calls[0]["policy"].is_null(), "{:?}", calls[0]["policy"]);
}

#[test]
fn the_session_policy_tier_sends_the_exact_policy_and_duration() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_role("PlatformInfraRole", &format!("arn:aws:iam::{ACCOUNT}:root"));
    let p = test_platform(
        Some(&moto.url()),
        json!({"syntasa_session_policy_duration": "1800"}),
        "/x",
    );
    let c = ctx(Flow::Notebook, "alice", Some("ws-open"), None);
    let m = obtain_with(&p, &c, &no_env, &options());

    assert_eq!(m.decision.tier, Tier::SessionPolicy, "{:?}", m.decision);
    let creds = m.credentials.as_ref().expect("credentials");
    let left = seconds_until(creds.expiration.expect("expiration"));
    assert!((1700..=1800).contains(&left), "expires in {left} s");
    assert_eq!(
        caller_arn(&moto.url(), creds),
        assumed_role_arn("PlatformInfraRole", "alice")
    );

    let calls = moto.assumed_roles();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let sent = calls[0]["policy"].as_str().expect("a policy was sent");
    let policy = m.decision.policy().expect("decision has a policy");
    assert_eq!(sent, policy.json(), "the minified policy, byte for byte");
    assert!(
        sent.contains("arn:aws:s3:::acme-data/marketing/*"),
        "{sent}"
    );
    assert_eq!(calls[0]["role_arn"], json!(role_arn("PlatformInfraRole")));
    assert!(calls[0]["external_id"].is_null());
}

/// moto with IAM enforcement: a launcher user allowed to call sts:AssumeRole,
/// `PlatformInfraRole` trusting it, and `Finance` trusting someone else.
fn enforcing_moto() -> Option<(Moto, StsOptions)> {
    let moto = Moto::start()?;
    let launcher = moto.create_launcher_user("launcher");
    moto.create_role(
        "PlatformInfraRole",
        &format!("arn:aws:iam::{ACCOUNT}:user/launcher"),
    );
    moto.create_role(
        "Finance",
        &format!("arn:aws:iam::{ACCOUNT}:user/someone-else"),
    );
    moto.enforce_auth();
    let opts = StsOptions {
        base_credentials: Some(launcher),
        ..options()
    };
    Some((moto, opts))
}

#[test]
fn a_trust_policy_denial_falls_back_and_the_record_says_why() {
    let Some((moto, opts)) = enforcing_moto() else {
        return;
    };
    let p = test_platform(Some(&moto.url()), json!({}), "/x");
    let c = ctx(Flow::Notebook, "alice", Some("ws-finance"), None);
    let m = obtain_with(&p, &c, &no_env, &opts);

    assert_eq!(m.decision.tier, Tier::SessionPolicy, "{:?}", m.decision);
    assert!(
        m.decision
            .skipped
            .iter()
            .any(|s| s.tier == Tier::WorkspaceSa && s.reason == SkipReason::ServiceAccountFailed),
        "{:?}",
        m.decision.skipped
    );
    let creds: &Credentials = m.credentials.as_ref().expect("session-policy credentials");
    assert_eq!(
        caller_arn(&moto.url(), creds),
        assumed_role_arn("PlatformInfraRole", "alice")
    );

    let record = DecisionRecord::new(&m.decision);
    let line = record.to_line();
    let warning = record
        .warnings
        .iter()
        .find(|w| w.contains("\"sa-finance\""))
        .unwrap_or_else(|| panic!("no warning names the service account: {line}"));
    assert!(
        warning.contains("AccessDenied") && warning.contains("falling back"),
        "{warning}"
    );
    let launcher = opts.base_credentials.as_ref().expect("launcher");
    assert!(!line.contains(&launcher.secret_access_key));
    assert!(!line.contains(&creds.secret_access_key));
    assert!(!line.contains(creds.session_token.as_deref().unwrap_or("-")));
}

#[test]
fn a_trust_policy_denial_with_service_account_failure_deny_refuses() {
    let Some((moto, opts)) = enforcing_moto() else {
        return;
    };
    let p = test_platform(
        Some(&moto.url()),
        json!({"service_account_failure": "deny"}),
        "/x",
    );
    let c = ctx(Flow::Notebook, "alice", Some("ws-finance"), None);
    let m = obtain_with(&p, &c, &no_env, &opts);

    assert!(m.credentials.is_none());
    let r = m.decision.refusal().expect("refused");
    assert_eq!(r.code, RefusalCode::ServiceAccountFailed);
    assert_eq!(r.exit_code, exit::REFUSED);
    assert!(r.message.contains("AccessDenied"), "{}", r.message);
    // Refusing must not have gone on to the session-policy role.
    let calls = moto.assumed_roles();
    assert!(
        calls
            .iter()
            .all(|c| c["role_arn"] != json!(role_arn("PlatformInfraRole"))),
        "{calls:?}"
    );
}
