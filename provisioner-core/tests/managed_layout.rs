//! Managed session policies in the decision: a user over the inline limit takes the
//! session-policy tier with `PolicyArns`; STS rejecting one of them refuses the launch
//! with the sync fix (never a fall-back, whatever `session_policy_over_limit` says); the
//! record and explain carry the ARNs and documents.

mod common_platform;

use common_platform::*;
use provisioner_core::context::Flow;
use provisioner_core::decision::{
    DefaultReason, Failure, FailureKind, Plan, RefusalCode, Tier, resolve,
};
use provisioner_core::exit;
use provisioner_core::mint::rejects_managed_policy;
use provisioner_core::model::{ManagedMode, Platform};
use provisioner_core::policy::desired_managed_policies;
use provisioner_core::record::DecisionRecord;

/// The shared test platform with managed session policies in `mode` (user "big" holds
/// twelve planes, over the inline limit).
fn managed(mode: ManagedMode, over_limit_deny: bool) -> Platform {
    let mut p = platform(&Shape {
        session_policy: true,
        over_limit_deny,
        sa_failure_deny: false,
    });
    p.settings.session_policy_managed = mode;
    p
}

fn big() -> provisioner_core::context::LaunchContext {
    ctx(Flow::Notebook, "big", Some("ws-plain"), None)
}

#[test]
fn a_user_over_the_inline_limit_is_scoped_with_policy_arns() {
    let p = managed(ManagedMode::Auto, false);
    let d = resolve(&p, &big(), &[]);
    assert_eq!((d.tier, d.reason), (Tier::SessionPolicy, None));
    let a = d.assume_role().unwrap();
    assert!(!a.policy_arns.is_empty() && a.policy_arns.len() <= 10);
    let arns: Vec<&str> = a.managed_policies.iter().map(|m| m.arn.as_str()).collect();
    assert_eq!(arns, a.policy_arns);
    let desired = desired_managed_policies(&p);
    for m in &a.managed_policies {
        assert!(
            desired.contains(m),
            "{} is not among the policies to sync",
            m.arn
        );
    }
    let rec = DecisionRecord::new(&d);
    assert_eq!(rec.policy_arns, a.policy_arns);
    let v = DecisionRecord::explain_value(&d);
    let keys: Vec<&String> = v["managed_policies"].as_object().unwrap().keys().collect();
    assert_eq!(keys, a.policy_arns.iter().collect::<Vec<_>>());
    // A user who fits inline keeps the exact inline policy and passes no ARNs.
    let alice = resolve(
        &p,
        &ctx(Flow::Notebook, "alice", Some("ws-plain"), None),
        &[],
    );
    assert!(alice.assume_role().unwrap().policy_arns.is_empty());
    assert_eq!(
        DecisionRecord::explain_value(&alice)["managed_policies"],
        serde_json::json!({})
    );
}

#[test]
fn a_rejected_managed_policy_refuses_with_the_sync_fix_and_never_falls_back() {
    for deny in [false, true] {
        let p = managed(ManagedMode::Auto, deny);
        let failure = Failure {
            tier: Tier::SessionPolicy,
            kind: FailureKind::ManagedPolicyRejected,
            message: "MalformedPolicyDocument: Policy arn:aws:iam::123456789012:policy/provisioner/provisioner-plane-dp-3 does not exist or is not attachable. (HTTP 400)".into(),
        };
        let d = resolve(&p, &big(), &[failure]);
        let r = d.refusal().expect("refused");
        assert_eq!(r.code, RefusalCode::ManagedPolicyUnavailable);
        assert_eq!(r.exit_code, exit::CREDENTIALS);
        assert!(
            r.fix.starts_with("run provisioner policies sync --config"),
            "{}",
            r.fix
        );
        assert!(
            r.message.contains("provisioner-plane-dp-3"),
            "{}",
            r.message
        );
        assert_eq!((d.tier, d.reason), (Tier::SessionPolicy, None));
        assert!(!matches!(d.plan, Plan::Ambient));
    }
}

#[test]
fn packed_policy_too_large_with_managed_policies_is_still_over_limit() {
    let p = managed(ManagedMode::Always, false);
    let failure = Failure {
        tier: Tier::SessionPolicy,
        kind: FailureKind::PackedPolicyTooLarge,
        message: "PackedPolicyTooLarge".into(),
    };
    let d = resolve(&p, &big(), &[failure]);
    assert_eq!(
        (d.tier, d.reason),
        (Tier::Default, Some(DefaultReason::OverLimit))
    );
}

#[test]
fn never_keeps_over_limit_and_always_splits_even_small_users() {
    let d = resolve(&managed(ManagedMode::Never, false), &big(), &[]);
    assert_eq!(d.reason, Some(DefaultReason::OverLimit));
    assert!(d.skipped.last().unwrap().detail.contains("\"never\""));
    let alice = ctx(Flow::Notebook, "alice", Some("ws-plain"), None);
    let d = resolve(&managed(ManagedMode::Always, false), &alice, &[]);
    assert!(!d.assume_role().unwrap().policy_arns.is_empty());
}

#[test]
fn only_answers_about_a_sent_policy_arn_count_as_its_rejection() {
    let arns =
        vec!["arn:aws:iam::123456789012:policy/provisioner/provisioner-platform".to_string()];
    assert!(rejects_managed_policy(
        Some("MalformedPolicyDocument"),
        None,
        &arns
    ));
    assert!(rejects_managed_policy(Some("NoSuchEntity"), None, &arns));
    assert!(rejects_managed_policy(
        Some("InvalidParameterValue"),
        Some(&format!("Policy {} is not attachable", arns[0])),
        &arns
    ));
    assert!(!rejects_managed_policy(
        Some("AccessDenied"),
        Some("not authorized"),
        &arns
    ));
    assert!(!rejects_managed_policy(
        Some("MalformedPolicyDocument"),
        None,
        &[]
    ));
}
