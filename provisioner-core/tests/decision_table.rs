//! Every row of both resolution tables (README.md, "How an identity is chosen"), every skip reason, and the
//! failure rules, checked against the pure decision.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

mod common_platform;

use common_platform::*;
use provisioner_core::context::Flow;
use provisioner_core::decision::{
    DefaultReason, Failure, FailureKind, Plan, RefusalCode, SkipReason, Tier, resolve,
};
use provisioner_core::exit;

fn skips(d: &provisioner_core::decision::Decision) -> Vec<(Tier, SkipReason)> {
    d.skipped.iter().map(|s| (s.tier, s.reason)).collect()
}

/// The tables, written out independently of the implementation.
fn expected(
    flow: Flow,
    ws_sa: Option<bool>,
    rt_sa: bool,
    sp: bool,
    admin: bool,
    fits: bool,
) -> (Tier, Option<DefaultReason>) {
    if flow != Flow::Job && ws_sa == Some(true) {
        return (Tier::WorkspaceSa, None);
    }
    if rt_sa {
        return (Tier::RuntimeTemplateSa, None);
    }
    if !sp {
        return (Tier::Default, Some(DefaultReason::Disabled));
    }
    if admin {
        return (Tier::Default, Some(DefaultReason::AdminBypass));
    }
    if !fits {
        return (Tier::Default, Some(DefaultReason::OverLimit));
    }
    (Tier::SessionPolicy, None)
}

#[test]
fn every_combination_of_flow_sa_policy_admin_and_size() {
    let mut checked = 0;
    for flow in [Flow::Notebook, Flow::NotebookRun, Flow::Job] {
        for ws in [None, Some(false), Some(true)] {
            for rt_sa in [false, true] {
                for sp in [false, true] {
                    for (user, admin, fits) in [
                        ("alice", false, true),
                        ("admin", true, true),
                        ("big", false, false),
                    ] {
                        let p = platform(&Shape {
                            session_policy: sp,
                            over_limit_deny: false,
                            sa_failure_deny: false,
                        });
                        let ws_id = ws.map(|has| if has { "ws-sa" } else { "ws-plain" });
                        let rt_id = if rt_sa { "rt-sa" } else { "rt-plain" };
                        let d = resolve(&p, &ctx(flow, user, ws_id, Some(rt_id)), &[]);
                        let want = expected(flow, ws, rt_sa, sp, admin, fits);
                        assert_eq!(
                            (d.tier, d.reason),
                            want,
                            "flow={flow} ws={ws:?} rt_sa={rt_sa} sp={sp} user={user}"
                        );
                        assert!(d.refusal().is_none());
                        // The job flow records that a workspace was ignored.
                        if flow == Flow::Job && ws.is_some() {
                            assert_eq!(d.skipped[0].tier, Tier::WorkspaceSa);
                            assert_eq!(d.skipped[0].reason, SkipReason::IgnoredInJobFlow);
                        }
                        match d.tier {
                            Tier::WorkspaceSa | Tier::RuntimeTemplateSa => {
                                assert!(matches!(d.plan, Plan::AssumeRole(_)));
                                assert!(
                                    d.policy().is_none(),
                                    "service accounts carry no session policy"
                                );
                            }
                            Tier::SessionPolicy => {
                                let a = d.assume_role().unwrap();
                                assert_eq!(
                                    a.role_arn.as_str(),
                                    "arn:aws:iam::123456789012:role/PlatformInfraRole"
                                );
                                assert!(a.policy.as_ref().unwrap().fits());
                            }
                            Tier::Default => assert_eq!(d.plan, Plan::Ambient),
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 3 * 2 * 2 * 3);
}

#[test]
fn notebook_row_1_workspace_sa_overrides_runtime_template_sa() {
    let p = platform(&Shape {
        session_policy: true,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let d = resolve(
        &p,
        &ctx(Flow::Notebook, "alice", Some("ws-sa"), Some("rt-sa")),
        &[],
    );
    assert_eq!(d.tier, Tier::WorkspaceSa);
    let a = d.assume_role().unwrap();
    assert_eq!(
        a.role_arn.as_str(),
        "arn:aws:iam::123456789012:role/WorkspaceRole"
    );
    assert_eq!(a.external_id.as_deref(), Some("ext-1"));
    assert_eq!(a.duration_seconds, 43200, "default duration");
    assert_eq!(a.session_name, "alice");
    assert_eq!(d.service_account(), Some("sa-ws"));
    assert!(d.skipped.is_empty());
}

#[test]
fn notebook_row_2_runtime_template_sa_with_its_duration() {
    let p = platform(&Shape {
        session_policy: true,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let d = resolve(
        &p,
        &ctx(Flow::Notebook, "alice", Some("ws-plain"), Some("rt-sa")),
        &[],
    );
    assert_eq!(d.tier, Tier::RuntimeTemplateSa);
    assert_eq!(d.assume_role().unwrap().duration_seconds, 3600);
    assert_eq!(
        skips(&d),
        vec![(Tier::WorkspaceSa, SkipReason::NoServiceAccount)]
    );
}

#[test]
fn static_key_service_account_plans_keys_not_assume_role() {
    let p = platform(&Shape {
        session_policy: true,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let d = resolve(&p, &ctx(Flow::Job, "alice", None, Some("rt-keys")), &[]);
    assert_eq!(d.tier, Tier::RuntimeTemplateSa);
    match &d.plan {
        Plan::StaticKeys(k) => assert_eq!(k.service_account, "sa-keys"),
        other => panic!("expected static keys, got {other:?}"),
    }
}

#[test]
fn skip_reasons_no_workspace_and_no_runtime_template() {
    let p = platform(&Shape {
        session_policy: true,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let d = resolve(&p, &ctx(Flow::Notebook, "alice", None, None), &[]);
    assert_eq!(d.tier, Tier::SessionPolicy);
    assert_eq!(
        skips(&d),
        vec![
            (Tier::WorkspaceSa, SkipReason::NoWorkspace),
            (Tier::RuntimeTemplateSa, SkipReason::NoRuntimeTemplate)
        ]
    );
    // The job flow has no workspace tier at all when no workspace is given.
    let d = resolve(&p, &ctx(Flow::Job, "alice", None, None), &[]);
    assert_eq!(
        skips(&d),
        vec![(Tier::RuntimeTemplateSa, SkipReason::NoRuntimeTemplate)]
    );
}

#[test]
fn job_flow_ignores_workspace_sa_and_says_so() {
    let p = platform(&Shape {
        session_policy: false,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let d = resolve(
        &p,
        &ctx(Flow::Job, "alice", Some("ws-sa"), Some("rt-plain")),
        &[],
    );
    assert_eq!(
        (d.tier, d.reason),
        (Tier::Default, Some(DefaultReason::Disabled))
    );
    assert_eq!(d.skipped[0].reason, SkipReason::IgnoredInJobFlow);
    assert!(
        d.skipped[0].detail.contains("sa-ws"),
        "{}",
        d.skipped[0].detail
    );
    assert_eq!(
        d.context.workspace.as_deref(),
        Some("ws-sa"),
        "the record keeps the workspace it ignored"
    );
}

#[test]
fn default_reasons_disabled_admin_bypass_over_limit() {
    let off = platform(&Shape {
        session_policy: false,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let on = platform(&Shape {
        session_policy: true,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let d = resolve(&off, &ctx(Flow::Notebook, "alice", None, None), &[]);
    assert_eq!(d.reason, Some(DefaultReason::Disabled));
    assert_eq!(d.skipped.last().unwrap().reason, SkipReason::Disabled);
    for flow in [Flow::Notebook, Flow::Job] {
        let d = resolve(&on, &ctx(flow, "admin", None, None), &[]);
        assert_eq!(d.reason, Some(DefaultReason::AdminBypass), "{flow}");
        assert_eq!(d.skipped.last().unwrap().reason, SkipReason::AdminBypass);
    }
    let d = resolve(&on, &ctx(Flow::Notebook, "big", None, None), &[]);
    assert_eq!(d.reason, Some(DefaultReason::OverLimit));
    assert_eq!(d.skipped.last().unwrap().reason, SkipReason::OverLimit);
    assert!(d.skipped.last().unwrap().detail.contains("2048"));
    assert!(
        d.warnings.iter().any(|w| w.contains("falling back")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn over_limit_deny_refuses_with_exit_3() {
    let p = platform(&Shape {
        session_policy: true,
        over_limit_deny: true,
        sa_failure_deny: false,
    });
    let d = resolve(&p, &ctx(Flow::Notebook, "big", None, None), &[]);
    let r = d.refusal().expect("refused");
    assert_eq!(r.code, RefusalCode::OverLimit);
    assert_eq!(r.exit_code, exit::REFUSED);
    assert_eq!(d.reason, Some(DefaultReason::OverLimit));
}

#[test]
fn packed_policy_too_large_from_sts_is_over_limit() {
    let p = platform(&Shape {
        session_policy: true,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let f = Failure {
        tier: Tier::SessionPolicy,
        kind: FailureKind::PackedPolicyTooLarge,
        message: "PackedPolicyTooLarge: 112%".into(),
    };
    let d = resolve(&p, &ctx(Flow::Notebook, "alice", None, None), &[f]);
    assert_eq!(
        (d.tier, d.reason),
        (Tier::Default, Some(DefaultReason::OverLimit))
    );
    assert!(d.skipped.last().unwrap().detail.contains("112%"));
}

#[test]
fn service_account_failure_falls_back_to_the_next_tier_with_a_warning() {
    let p = platform(&Shape {
        session_policy: true,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let c = ctx(Flow::Notebook, "alice", Some("ws-sa"), Some("rt-sa"));
    let f1 = Failure {
        tier: Tier::WorkspaceSa,
        kind: FailureKind::ServiceAccount,
        message: "AccessDenied: not trusted".into(),
    };
    let d = resolve(&p, &c, std::slice::from_ref(&f1));
    assert_eq!(d.tier, Tier::RuntimeTemplateSa);
    assert_eq!(
        skips(&d),
        vec![(Tier::WorkspaceSa, SkipReason::ServiceAccountFailed)]
    );
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("AccessDenied: not trusted"))
    );
    let f2 = Failure {
        tier: Tier::RuntimeTemplateSa,
        kind: FailureKind::ServiceAccount,
        message: "NoSuchEntity".into(),
    };
    let d = resolve(&p, &c, &[f1, f2]);
    assert_eq!(d.tier, Tier::SessionPolicy);
}

#[test]
fn service_account_failure_deny_refuses_with_exit_3() {
    let p = platform(&Shape {
        session_policy: true,
        over_limit_deny: false,
        sa_failure_deny: true,
    });
    let f = Failure {
        tier: Tier::WorkspaceSa,
        kind: FailureKind::ServiceAccount,
        message: "unreachable".into(),
    };
    let d = resolve(&p, &ctx(Flow::Notebook, "alice", Some("ws-sa"), None), &[f]);
    let r = d.refusal().expect("refused");
    assert_eq!(
        (r.code, r.exit_code),
        (RefusalCode::ServiceAccountFailed, exit::REFUSED)
    );
    assert_eq!(d.tier, Tier::WorkspaceSa);
}

#[test]
fn session_policy_mint_failure_refuses_rather_than_widening() {
    let p = platform(&Shape {
        session_policy: true,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let f = Failure {
        tier: Tier::SessionPolicy,
        kind: FailureKind::SessionPolicyCredentials,
        message: "deadline exceeded".into(),
    };
    let d = resolve(&p, &ctx(Flow::Notebook, "alice", None, None), &[f]);
    let r = d.refusal().expect("refused");
    assert_eq!(
        (r.code, r.exit_code),
        (RefusalCode::CredentialsUnavailable, exit::CREDENTIALS)
    );
}

#[test]
fn unknown_ids_are_refused_with_the_fix() {
    let p = platform(&Shape {
        session_policy: true,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let d = resolve(
        &p,
        &ctx(Flow::Notebook, "alice", Some("ws-nope"), None),
        &[],
    );
    assert_eq!(d.refusal().unwrap().code, RefusalCode::UnknownWorkspace);
    assert_eq!(d.refusal().unwrap().exit_code, exit::CONFIG);
    let d = resolve(
        &p,
        &ctx(Flow::Notebook, "alice", None, Some("rt-nope")),
        &[],
    );
    assert_eq!(
        d.refusal().unwrap().code,
        RefusalCode::UnknownRuntimeTemplate
    );
    let d = resolve(&p, &ctx(Flow::Notebook, "mallory", None, None), &[]);
    assert_eq!(d.refusal().unwrap().code, RefusalCode::UnknownUser);
    // An unknown workspace in the job flow is ignored like any workspace.
    let d = resolve(&p, &ctx(Flow::Job, "alice", Some("ws-nope"), None), &[]);
    assert!(d.refusal().is_none());
    // An unknown user still gets a service account's identity, with a warning.
    let d = resolve(
        &p,
        &ctx(Flow::Notebook, "mallory", Some("ws-sa"), None),
        &[],
    );
    assert_eq!(d.tier, Tier::WorkspaceSa);
    assert!(d.warnings.iter().any(|w| w.contains("mallory")));
}

#[test]
fn platform_folders_substitute_user_and_workspace() {
    let json = r#"{"settings": {"syntasa_session_policy_enabled": "true", "session_policy_bedrock": "false",
        "session_policy_platform_folders": "syn-workspace/{workspace}/{user},syn-app-logs"},
      "aws": {"region": "us-east-1", "session_policy_role_arn": "arn:aws:iam:::role/nbrole", "platform_bucket": "acme-platform"},
      "workspaces": [{"id": "ws-1"}], "users": [{"id": "alice"}]}"#;
    let p = provisioner_core::load::load_str(json, "t.json", &no_env).unwrap();
    let d = resolve(&p, &ctx(Flow::Notebook, "alice", Some("ws-1"), None), &[]);
    let policy = d.policy().unwrap().json().to_string();
    assert!(
        policy.contains("acme-platform/syn-workspace/ws-1/alice/*"),
        "{policy}"
    );
    assert!(policy.contains("acme-platform/syn-app-logs/*"), "{policy}");
    // Without a workspace the folder that needs one is left out, and the record says so.
    let d = resolve(&p, &ctx(Flow::Job, "alice", Some("ws-1"), None), &[]);
    let policy = d.policy().unwrap().json().to_string();
    assert!(!policy.contains("syn-workspace"), "{policy}");
    assert!(d.warnings.iter().any(|w| w.contains("{workspace}")));
}

#[test]
fn session_tags_and_source_identity_only_when_enabled() {
    let json = r#"{"settings": {"syntasa_session_policy_enabled": "true", "session_policy_platform_folders": "",
        "sts_source_identity": "true", "sts_session_tags": "true"},
      "aws": {"region": "us-east-1", "session_policy_role_arn": "arn:aws:iam:::role/nbrole"},
      "runtime_templates": [{"id": "rt-1"}], "workspaces": [{"id": "ws-1"}], "users": [{"id": "alice@example.com"}]}"#;
    let p = provisioner_core::load::load_str(json, "t.json", &no_env).unwrap();
    let d = resolve(
        &p,
        &ctx(Flow::Job, "alice@example.com", Some("ws-1"), Some("rt-1")),
        &[],
    );
    let a = d.assume_role().unwrap();
    assert_eq!(a.source_identity.as_deref(), Some("alice@example.com"));
    let keys: Vec<&str> = a.tags.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["syn:user", "syn:runtime-template", "syn:flow"],
        "no workspace tag in the job flow"
    );
    let p = platform(&Shape {
        session_policy: true,
        over_limit_deny: false,
        sa_failure_deny: false,
    });
    let d = resolve(&p, &ctx(Flow::Notebook, "alice", None, None), &[]);
    assert!(d.assume_role().unwrap().tags.is_empty());
    assert!(d.assume_role().unwrap().source_identity.is_none());
}

#[test]
fn session_names_are_valid_for_sts() {
    use provisioner_core::decision::session_name;
    assert_eq!(session_name("alice"), "alice");
    assert_eq!(session_name("a"), "a-");
    let long = "x".repeat(100);
    let n = session_name(&long);
    assert_eq!(n.len(), 64);
    assert_ne!(
        session_name(&"x".repeat(101)),
        n,
        "long names stay distinct"
    );
    assert_eq!(session_name("al ice/é"), "al-ice--");
}
