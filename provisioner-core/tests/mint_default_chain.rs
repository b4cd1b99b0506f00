//! `obtain` as the binary calls it: base credentials from the standard AWS chain and
//! the endpoint from `AWS_ENDPOINT_URL_STS`, both set in the process environment.
//!
//! This file holds exactly one test: it changes the process environment, which is
//! only sound while no other thread reads it, so nothing may run beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics
#![allow(unsafe_code)] // edition 2024: changing the environment is unsafe; see the SAFETY notes

mod common;

use common::*;
use provisioner_core::context::Flow;
use provisioner_core::decision::{DefaultReason, Tier};
use provisioner_core::mint::obtain;
use serde_json::json;

#[test]
fn obtain_uses_the_standard_chain_and_the_sts_endpoint_from_the_environment() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_role("Finance", &format!("arn:aws:iam::{ACCOUNT}:root"));
    // SAFETY: the only test in this binary; the harness's main thread only waits
    // for it, and the moto child was spawned above, so no thread reads the
    // environment while it changes.
    unsafe {
        for name in [
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_ENDPOINT_URL",
        ] {
            std::env::remove_var(name);
        }
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/aws-config");
        std::env::set_var(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        );
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDFROMCHAIN");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "secret-from-chain");
        std::env::set_var("AWS_ENDPOINT_URL_STS", moto.url());
    }
    let env = |name: &str| std::env::var(name).ok();
    let c = ctx(Flow::Notebook, "alice", Some("ws-finance"), None);

    let p = test_platform(None, json!({}), "/x");
    let m = obtain(&p, &c, &env);
    assert_eq!(m.decision.tier, Tier::WorkspaceSa, "{:?}", m.decision);
    let creds = m.credentials.as_ref().expect("credentials");
    assert_eq!(
        caller_arn(&moto.url(), creds),
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/Finance/alice")
    );
    assert_eq!(moto.assumed_roles().len(), 1, "the call went to moto");

    // No credentials anywhere in the chain: the service account falls back and the
    // warning says what was missing.
    // SAFETY: as above.
    unsafe {
        std::env::remove_var("AWS_ACCESS_KEY_ID");
        std::env::remove_var("AWS_SECRET_ACCESS_KEY");
    }
    let p = test_platform(
        None,
        json!({"syntasa_session_policy_enabled": "false"}),
        "/x",
    );
    let m = obtain(&p, &c, &env);
    assert_eq!(m.decision.tier, Tier::Default, "{:?}", m.decision);
    assert_eq!(m.decision.reason, Some(DefaultReason::Disabled));
    assert!(m.credentials.is_none());
    let w = m.decision.warnings.join("\n");
    assert!(w.contains("no usable AWS credentials"), "{w}");
    assert!(
        w.contains(&moto.url()),
        "the warning names the endpoint: {w}"
    );
    assert!(m.elapsed.as_secs() < 5, "{:?}", m.elapsed);
}
