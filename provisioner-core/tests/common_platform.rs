#![allow(clippy::unwrap_used, clippy::expect_used)]
// test code: a failed step panics
// Shared helpers for the provisioner integration tests (included with `mod`).
#![allow(dead_code)]

use provisioner_core::context::{Flow, LaunchContext};
use provisioner_core::load::load_str;
use provisioner_core::model::Platform;

pub fn no_env(_: &str) -> Option<String> {
    None
}

/// A platform with one of everything, shaped by the switches.
pub struct Shape {
    pub session_policy: bool,
    pub over_limit_deny: bool,
    pub sa_failure_deny: bool,
}

pub fn platform(shape: &Shape) -> Platform {
    let planes: Vec<String> = (0..12)
        .map(|i| {
            format!(
                r#"{{"id": "dp-{i}", "s3": ["s3://acme-data-{i}/some/team/prefix/{i}/", "s3://acme-raw-{i}/landing/zone/{i}/"], "glue_databases": ["database_number_{i}"]}}"#
            )
        })
        .collect();
    let big_planes: Vec<String> = (0..12).map(|i| format!("\"dp-{i}\"")).collect();
    let json = format!(
        r#"{{
  "settings": {{
    "syntasa_session_policy_enabled": "{sp}",
    "service_account_failure": "{saf}",
    "session_policy_over_limit": "{ol}"
  }},
  "aws": {{
    "region": "us-east-1", "account_id": "123456789012",
    "session_policy_role_arn": "arn:aws:iam::123456789012:role/PlatformInfraRole",
    "platform_bucket": "acme-platform"
  }},
  "service_accounts": [
    {{"id": "sa-ws", "role_arn": "arn:aws:iam::123456789012:role/WorkspaceRole", "external_id": "ext-1"}},
    {{"id": "sa-rt", "role_arn": "arn:aws:iam::123456789012:role/TemplateRole", "duration_seconds": 3600}},
    {{"id": "sa-keys", "access_key_id": {{"env": "K"}}, "secret_access_key": {{"file": "/etc/s"}}}}
  ],
  "workspaces": [{{"id": "ws-sa", "service_account": "sa-ws"}}, {{"id": "ws-plain"}}],
  "runtime_templates": [{{"id": "rt-sa", "service_account": "sa-rt"}}, {{"id": "rt-plain"}}, {{"id": "rt-keys", "service_account": "sa-keys"}}],
  "data_planes": [{planes}],
  "users": [
    {{"id": "alice", "data_planes": ["dp-0"]}},
    {{"id": "admin", "data_planes": ["dp-0"], "system_admin": true}},
    {{"id": "big", "data_planes": [{big}]}}
  ]
}}"#,
        sp = shape.session_policy,
        saf = if shape.sa_failure_deny {
            "deny"
        } else {
            "fallback"
        },
        ol = if shape.over_limit_deny {
            "deny"
        } else {
            "fallback"
        },
        planes = planes.join(","),
        big = big_planes.join(","),
    );
    match load_str(&json, "test-platform.json", &no_env) {
        Ok(p) => p,
        Err(e) => panic!("test platform does not load: {e}"),
    }
}

pub fn ctx(flow: Flow, user: &str, ws: Option<&str>, rt: Option<&str>) -> LaunchContext {
    LaunchContext {
        flow,
        user: user.into(),
        workspace: ws.map(str::to_string),
        runtime_template: rt.map(str::to_string),
        job_id: None,
    }
}
