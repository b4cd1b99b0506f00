//! Invariants of the decision over random platforms (proptest):
//! the job flow never yields `workspace_sa`; a System Admin never gets
//! `session_policy`; a user's policy never names a prefix or Glue database of a data
//! plane they are not assigned; the decision is deterministic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

mod common_platform;

use std::collections::BTreeSet;

use common_platform::no_env;
use proptest::prelude::*;
use provisioner_core::context::{Flow, LaunchContext};
use provisioner_core::decision::{Tier, resolve};
use provisioner_core::model::S3Location;
use serde_json::{Value, json};

/// A location: bucket index and folder segment indices.
type GenLocation = (usize, Vec<usize>);
/// A data plane: locations and Glue database indices.
type GenPlane = (Vec<GenLocation>, Vec<usize>);

#[derive(Debug, Clone)]
struct Gen {
    enabled: bool,
    bedrock: bool,
    folders: Vec<&'static str>,
    planes: Vec<GenPlane>,
    users: Vec<(Vec<usize>, bool)>,
    ws_sa: Vec<Option<usize>>,
    rt_sa: Vec<Option<usize>>,
}

const BUCKETS: &[&str] = &["acme-data", "acme-raw", "acme-platform", "other-bucket"];
const SEGMENTS: &[&str] = &["marketing", "market", "sales", "2024", "raw", "team-a"];
const DATABASES: &[&str] = &["marketing", "sales", "sales_staging", "finance", "hr"];

fn platforms() -> impl Strategy<Value = Gen> {
    let location = (
        0..BUCKETS.len(),
        prop::collection::vec(0..SEGMENTS.len(), 0..3),
    );
    let plane = (
        prop::collection::vec(location, 0..3),
        prop::collection::vec(0..DATABASES.len(), 0..2),
    );
    (
        any::<bool>(),
        any::<bool>(),
        prop::sample::subsequence(
            vec![
                "syn-workspace/{workspace}",
                "syn-app-logs",
                "syn-file-uploads/{user}",
            ],
            0..3,
        ),
        prop::collection::vec(plane, 1..6),
        prop::collection::vec(
            (prop::collection::vec(0usize..6, 0..4), any::<bool>()),
            1..5,
        ),
        prop::collection::vec(prop::option::of(0usize..2), 1..3),
        prop::collection::vec(prop::option::of(0usize..2), 1..3),
    )
        .prop_map(
            |(enabled, bedrock, folders, planes, users, ws_sa, rt_sa)| Gen {
                enabled,
                bedrock,
                folders,
                planes,
                users,
                ws_sa,
                rt_sa,
            },
        )
}

fn location_uri((b, segs): &GenLocation) -> String {
    let prefix: String = segs.iter().map(|s| format!("{}/", SEGMENTS[*s])).collect();
    format!("s3://{}/{prefix}", BUCKETS[*b])
}

fn platform_json(g: &Gen) -> String {
    let n_planes = g.planes.len();
    let planes: Vec<Value> = g
        .planes
        .iter()
        .enumerate()
        .map(|(i, (locs, dbs))| {
            let s3: Vec<String> = locs.iter().map(location_uri).collect();
            let glue: Vec<&str> = dbs.iter().map(|d| DATABASES[*d]).collect();
            json!({"id": format!("dp-{i}"), "s3": s3, "glue_databases": glue})
        })
        .collect();
    let users: Vec<Value> = g
        .users
        .iter()
        .enumerate()
        .map(|(i, (dps, admin))| {
            let dps: BTreeSet<String> = dps
                .iter()
                .filter(|d| **d < n_planes)
                .map(|d| format!("dp-{d}"))
                .collect();
            json!({"id": format!("user-{i}"), "data_planes": dps, "system_admin": admin})
        })
        .collect();
    let holder = |prefix: &str, sas: &[Option<usize>]| -> Vec<Value> {
        sas.iter()
            .enumerate()
            .map(|(i, sa)| match sa {
                Some(s) => {
                    json!({"id": format!("{prefix}-{i}"), "service_account": format!("sa-{s}")})
                }
                None => json!({"id": format!("{prefix}-{i}")}),
            })
            .collect()
    };
    json!({
        "settings": {
            "syntasa_session_policy_enabled": g.enabled.to_string(),
            "session_policy_bedrock": g.bedrock.to_string(),
            "session_policy_platform_folders": g.folders.join(","),
        },
        "aws": {"region": "eu-west-1", "account_id": "123456789012",
                "session_policy_role_arn": "arn:aws:iam::123456789012:role/Infra", "platform_bucket": "acme-platform"},
        "service_accounts": [
            {"id": "sa-0", "role_arn": "arn:aws:iam::123456789012:role/A"},
            {"id": "sa-1", "access_key_id": {"env": "K"}, "secret_access_key": {"env": "S"}}
        ],
        "workspaces": holder("ws", &g.ws_sa),
        "runtime_templates": holder("rt", &g.rt_sa),
        "data_planes": planes,
        "users": users,
    })
    .to_string()
}

/// Every S3 resource and list prefix of a policy, as (bucket, key pattern without `*`).
fn policy_s3_and_glue(policy: &Value) -> (Vec<(String, String)>, Vec<String>) {
    let mut s3 = Vec::new();
    let mut glue = Vec::new();
    for st in policy["Statement"].as_array().into_iter().flatten() {
        let resources: Vec<String> = match &st["Resource"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        };
        for r in &resources {
            if let Some(rest) = r.strip_prefix("arn:aws:s3:::") {
                if let Some((b, k)) = rest.split_once('/') {
                    s3.push((b.to_string(), k.trim_end_matches('*').to_string()));
                }
            } else if r.starts_with("arn:aws:glue:")
                && let Some(db) = r.split(':').nth(5).and_then(|x| x.split('/').nth(1))
            {
                glue.push(db.to_string());
            }
        }
        let prefixes = &st["Condition"]["StringLike"]["s3:prefix"];
        let list: Vec<String> = match prefixes {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        };
        if let Some(Value::String(bucket_arn)) = st.get("Resource") {
            let bucket = bucket_arn.trim_start_matches("arn:aws:s3:::").to_string();
            for p in list {
                s3.push((bucket.clone(), p.trim_end_matches('*').to_string()));
            }
        }
    }
    (s3, glue)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_random_platforms(g in platforms(), flow_i in 0usize..3, user_i in 0usize..5, ws_i in prop::option::of(0usize..3), rt_i in prop::option::of(0usize..3)) {
        let text = platform_json(&g);
        let p = provisioner_core::load::load_str(&text, "random.json", &no_env).expect("generated platform loads");
        let flow = [Flow::Notebook, Flow::NotebookRun, Flow::Job][flow_i];
        let user_idx = user_i % g.users.len();
        let ctx = LaunchContext {
            flow,
            user: format!("user-{user_idx}"),
            workspace: ws_i.filter(|i| *i < g.ws_sa.len()).map(|i| format!("ws-{i}")),
            runtime_template: rt_i.filter(|i| *i < g.rt_sa.len()).map(|i| format!("rt-{i}")),
            job_id: None,
        };
        let d = resolve(&p, &ctx, &[]);
        prop_assert_eq!(&d, &resolve(&p, &ctx, &[]), "deterministic");

        if flow == Flow::Job {
            prop_assert_ne!(d.tier, Tier::WorkspaceSa);
        }
        let user = &p.users[&ctx.user];
        if user.system_admin {
            prop_assert_ne!(d.tier, Tier::SessionPolicy);
        }
        if d.tier == Tier::SessionPolicy {
            let policy = d.policy().expect("session policy tier carries a policy");
            prop_assert!(policy.fits());
            let (s3, glue) = policy_s3_and_glue(&policy.to_value());
            let assigned: Vec<S3Location> = user.data_planes.iter().flat_map(|dp| p.data_planes[dp].s3.clone()).collect();
            let assigned_dbs: BTreeSet<String> = user.data_planes.iter().flat_map(|dp| p.data_planes[dp].glue_databases.clone()).collect();
            for (bucket, key) in s3 {
                let is_folder = bucket == "acme-platform" && ["syn-workspace/", "syn-app-logs/", "syn-file-uploads/"].iter().any(|f| key.starts_with(f));
                let in_plane = assigned.iter().any(|l| l.bucket == bucket && (key.starts_with(&l.prefix) || format!("{key}/") == l.prefix));
                prop_assert!(is_folder || in_plane, "policy names s3://{}/{} outside the user's data planes", bucket, key);
            }
            for db in glue {
                prop_assert!(assigned_dbs.contains(&db), "policy names Glue database {} the user is not assigned", db);
            }
        }
    }
}
