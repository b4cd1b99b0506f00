//! Every kind of invalid platform file is rejected with one line naming the file, the
//! entity, the field and the fix; valid oddities load with a warning.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

use provisioner_core::load::{ConfigError, load_str};

fn no_env(_: &str) -> Option<String> {
    None
}

fn wrap(body: &str) -> String {
    format!(r#"{{"aws": {{"region": "us-east-1"}}, {body}}}"#)
}

fn err(text: &str) -> ConfigError {
    match load_str(text, "/etc/provisioner/platform.json", &no_env) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e,
    }
}

/// (input, entity, field, words the problem or fix must contain)
const CASES: &[(&str, &str, &str, &str)] = &[
    ("{", "platform file", "", "JSON syntax"),
    ("[]", "platform file", "", "not a JSON object"),
    ("", "platform file", "", "JSON syntax"),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_acounts": []}"#,
        "platform file",
        "service_acounts",
        "unknown field",
    ),
    (r#"{"settings": {}}"#, "aws", "region", "us-east-1"),
    (
        r#"{"aws": {"region": "mars"}}"#,
        "aws",
        "region",
        "region name",
    ),
    (
        r#"{"aws": {"region": "us-east-1", "account_id": "12345"}}"#,
        "aws",
        "account_id",
        "12-digit",
    ),
    (
        r#"{"aws": {"region": "us-east-1", "sts_endpoint": "sts.local"}}"#,
        "aws",
        "sts_endpoint",
        "http",
    ),
    (
        r#"{"aws": {"region": "us-east-1", "platform_bucket": "Bad_Bucket"}}"#,
        "aws",
        "platform_bucket",
        "bucket name",
    ),
    (
        r#"{"aws": {"region": "us-east-1", "session_policy_role_arn": "arn:aws:iam::123456789012:user/bob"}}"#,
        "aws",
        "session_policy_role_arn",
        "not a role ARN",
    ),
    (
        r#"{"aws": {"region": "us-east-1", "regoin": "x"}}"#,
        "aws",
        "regoin",
        "did you mean \"region\"",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "settings": {"syntasa_session_policy_enable": "true"}}"#,
        "settings",
        "syntasa_session_policy_enable",
        "did you mean \"syntasa_session_policy_enabled\"",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "settings": {"syntasa_session_policy_enabled": "yes"}}"#,
        "settings",
        "syntasa_session_policy_enabled",
        "\"true\" or \"false\"",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "settings": {"syntasa_session_policy_duration": "899"}}"#,
        "settings",
        "syntasa_session_policy_duration",
        "900 to 43200",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "settings": {"syntasa_session_policy_duration": "43201"}}"#,
        "settings",
        "syntasa_session_policy_duration",
        "900 to 43200",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "settings": {"service_account_failure": "ignore"}}"#,
        "settings",
        "service_account_failure",
        "\"fallback\" or \"deny\"",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "settings": {"session_policy_over_limit": "drop"}}"#,
        "settings",
        "session_policy_over_limit",
        "\"fallback\" or \"deny\"",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "settings": {"session_policy_platform_folders": "syn-*"}}"#,
        "settings",
        "session_policy_platform_folders",
        "'*'",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "settings": {"session_policy_platform_folders": "syn-{team}"}}"#,
        "settings",
        "session_policy_platform_folders",
        "placeholders",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "settings": {"syntasa_session_policy_enabled": ["true"]}}"#,
        "settings",
        "syntasa_session_policy_enabled",
        "string",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "settings": {"syntasa_session_policy_enabled": "true"}}"#,
        "aws",
        "session_policy_role_arn",
        "missing",
    ),
    (
        r#"{"aws": {"region": "us-east-1", "session_policy_role_arn": "arn:aws:iam::123456789012:role/R"}, "settings": {"syntasa_session_policy_enabled": "true"}}"#,
        "aws",
        "platform_bucket",
        "missing",
    ),
    (
        r#"{"aws": {"region": "us-east-1", "session_policy_role_arn": "arn:aws:iam::123456789012:role/R"}, "settings": {"syntasa_session_policy_enabled": "true", "session_policy_platform_folders": ""}, "data_planes": [{"id": "d", "glue_databases": ["db"]}]}"#,
        "aws",
        "account_id",
        "Glue",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa"}]}"#,
        "service_account \"sa\"",
        "role_arn",
        "neither role_arn nor static keys",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "role_arn": "arn:aws:iam::123:role/R"}]}"#,
        "service_account \"sa\"",
        "role_arn",
        "12 digits",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "role_arn": "arn:aws:s3:::bucket"}]}"#,
        "service_account \"sa\"",
        "role_arn",
        "not an IAM ARN",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "role_arn": "role/R"}]}"#,
        "service_account \"sa\"",
        "role_arn",
        "not an ARN",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "role_arn": "arn:aws:iam::123456789012:role/bad name"}]}"#,
        "service_account \"sa\"",
        "role_arn",
        "role name",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "role_arn": "arn:aws:iam::123456789012:role/R", "duration_seconds": 60}]}"#,
        "service_account \"sa\"",
        "duration_seconds",
        "900 to 43200",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "role_arn": "arn:aws:iam::123456789012:role/R", "duration_seconds": 50000}]}"#,
        "service_account \"sa\"",
        "duration_seconds",
        "900 to 43200",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "role_arn": "arn:aws:iam::123456789012:role/R", "external_id": "x"}]}"#,
        "service_account \"sa\"",
        "external_id",
        "2-1224",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "access_key_id": "AKIAXXXX", "secret_access_key": {"env": "S"}}]}"#,
        "service_account \"sa\"",
        "access_key_id",
        "inline value",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "access_key_id": {"env": "K"}}]}"#,
        "service_account \"sa\"",
        "secret_access_key",
        "missing",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "access_key_id": {"env": "K"}, "secret_access_key": {"file": "relative/path"}}]}"#,
        "service_account \"sa\"",
        "secret_access_key",
        "absolute path",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "access_key_id": {"env": "K", "file": "/x"}, "secret_access_key": {"env": "S"}}]}"#,
        "service_account \"sa\"",
        "access_key_id",
        "exactly one",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "access_key_id": {"env": "1BAD"}, "secret_access_key": {"env": "S"}}]}"#,
        "service_account \"sa\"",
        "access_key_id",
        "environment variable name",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "service_accounts": [{"id": "sa", "role_arn": "arn:aws:iam::123456789012:role/R"}, {"id": "sa", "role_arn": "arn:aws:iam::123456789012:role/R"}]}"#,
        "service_account \"sa\"",
        "id",
        "duplicate",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "workspaces": [{"id": "ws", "service_account": "nope"}]}"#,
        "workspace \"ws\"",
        "service_account",
        "unknown service account",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "workspaces": [{"id": "ws"}, {"id": "ws"}]}"#,
        "workspace \"ws\"",
        "id",
        "duplicate",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "runtime_templates": [{"id": "rt", "service_account": "nope"}]}"#,
        "runtime_template \"rt\"",
        "service_account",
        "unknown service account",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "runtime_templates": [{"id": "rt"}, {"id": "rt"}]}"#,
        "runtime_template \"rt\"",
        "id",
        "duplicate",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "workspaces": [{"id": "ws*"}]}"#,
        "workspace \"ws*\"",
        "id",
        "invalid",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "data_planes": [{"id": "d", "s3": ["https://bucket/x"]}]}"#,
        "data_plane \"d\"",
        "s3",
        "not an S3 URI",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "data_planes": [{"id": "d", "s3": ["s3://b/x"]}]}"#,
        "data_plane \"d\"",
        "s3",
        "bucket name",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "data_planes": [{"id": "d", "s3": ["s3://bucket/team*/"]}]}"#,
        "data_plane \"d\"",
        "s3",
        "widen",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "data_planes": [{"id": "d", "s3": ["s3://bucket/${aws:username}/"]}]}"#,
        "data_plane \"d\"",
        "s3",
        "widen",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "data_planes": [{"id": "d", "s3": ["s3://bucket/a//b/"]}]}"#,
        "data_plane \"d\"",
        "s3",
        "empty folder",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "data_planes": [{"id": "d", "glue_databases": ["db*"]}]}"#,
        "data_plane \"d\"",
        "glue_databases",
        "no wildcards",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "data_planes": [{"id": "d"}, {"id": "d"}]}"#,
        "data_plane \"d\"",
        "id",
        "duplicate",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "users": [{"id": "u", "data_planes": ["nope"]}]}"#,
        "user \"u\"",
        "data_planes",
        "unknown data plane",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "data_planes": [{"id": "d"}], "users": [{"id": "u", "data_planes": ["d", "d"]}]}"#,
        "user \"u\"",
        "data_planes",
        "twice",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "users": [{"id": "u"}, {"id": "u"}]}"#,
        "user \"u\"",
        "id",
        "duplicate",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "users": [{"id": "u", "system_admin": "yes"}]}"#,
        "users[0]",
        "system_admin",
        "expected a boolean",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "users": [{"id": "u", "role": "admin"}]}"#,
        "users[0]",
        "role",
        "unknown field",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "users": [{"data_planes": []}]}"#,
        "users[0]",
        "",
        "missing field `id`",
    ),
    (
        r#"{"aws": {"region": "us-east-1"}, "users": [{"id": "u", "id": "v"}]}"#,
        "users[0]",
        "",
        "duplicate field",
    ),
];

#[test]
fn every_bad_input_names_file_entity_field_and_fix() {
    for (input, entity, field, words) in CASES {
        let e = err(input);
        let line = e.to_string();
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(
            line.starts_with("/etc/provisioner/platform.json: "),
            "{line}"
        );
        assert!(
            e.entity.starts_with(entity),
            "entity of {input}: got {:?} in {line}",
            e.entity
        );
        assert_eq!(e.field, *field, "field of {input}: {line}");
        assert!(
            line.contains(words),
            "{input}\n  -> {line}\n  should contain {words:?}"
        );
        assert!(line.contains("; fix: ") && !e.fix.is_empty(), "{line}");
    }
    assert!(CASES.len() >= 50);
}

#[test]
fn both_role_and_keys_loads_with_keys_winning_and_a_warning() {
    let p = load_str(
        &wrap(r#""service_accounts": [{"id": "sa", "role_arn": "arn:aws:iam::123456789012:role/R", "access_key_id": {"env": "K"}, "secret_access_key": {"file": "/run/s"}}]"#),
        "p.json",
        &no_env,
    )
    .unwrap();
    assert!(matches!(
        p.service_accounts["sa"].identity,
        provisioner_core::model::ServiceAccountIdentity::StaticKeys { .. }
    ));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("static keys are used")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn environment_overrides_settings_and_names_itself_in_errors() {
    let env = |k: &str| match k {
        "SYNTASA_SESSION_POLICY_DURATION" => Some("3600".to_string()),
        "SESSION_POLICY_ROLE_ARN" => Some("arn:aws:iam:::role/nbrole".to_string()),
        "SYNTASA_SESSION_POLICY_ENABLED" => Some("TRUE".to_string()),
        "SESSION_POLICY_PLATFORM_FOLDERS" => Some("none".to_string()),
        _ => None,
    };
    let p = load_str(r#"{"aws": {"region": "us-east-1"}, "settings": {"syntasa_session_policy_duration": "43200"}}"#, "p.json", &env).unwrap();
    assert_eq!(p.settings.session_policy_duration, 3600);
    assert!(p.settings.session_policy_enabled);
    assert!(p.settings.session_policy_platform_folders.is_empty());
    assert_eq!(
        p.aws.session_policy_role_arn.unwrap().as_str(),
        "arn:aws:iam:::role/nbrole"
    );
    let bad = |k: &str| (k == "SYNTASA_SESSION_POLICY_DURATION").then(|| "12h".to_string());
    let e = load_str(r#"{"aws": {"region": "us-east-1"}}"#, "p.json", &bad).unwrap_err();
    assert!(
        e.to_string()
            .contains("environment variable SYNTASA_SESSION_POLICY_DURATION"),
        "{e}"
    );
}

#[test]
fn defaults_and_string_or_native_values() {
    let p = load_str(r#"{"aws": {"region": "us-east-1"}}"#, "p.json", &no_env).unwrap();
    let s = &p.settings;
    assert!(!s.session_policy_enabled);
    assert_eq!(s.session_policy_duration, 43200);
    assert!(s.session_policy_bedrock);
    assert_eq!(s.session_policy_platform_folders.len(), 7);
    assert_eq!(s.sts_deadline_seconds, 10);
    assert_eq!(s.sts_max_attempts, 8);
    let p = load_str(r#"{"aws": {"region": "us-east-1"}, "settings": {"session_policy_bedrock": false, "syntasa_session_policy_duration": 900}}"#, "p.json", &no_env).unwrap();
    assert!(!p.settings.session_policy_bedrock);
    assert_eq!(p.settings.session_policy_duration, 900);
}

#[test]
fn role_arns_with_empty_account_and_paths_are_accepted() {
    let p = load_str(
        &wrap(r#""service_accounts": [{"id": "a", "role_arn": "arn:aws:iam:::role/nbrole"}, {"id": "b", "role_arn": "arn:aws-us-gov:iam::123456789012:role/team/etl/Nightly"}]"#),
        "p.json",
        &no_env,
    )
    .unwrap();
    match &p.service_accounts["b"].identity {
        provisioner_core::model::ServiceAccountIdentity::Role {
            role_arn,
            duration_seconds,
            ..
        } => {
            assert_eq!(role_arn.role_name(), "Nightly");
            assert_eq!(role_arn.partition(), "aws-us-gov");
            assert_eq!(*duration_seconds, 43200);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn s3_locations_are_normalised_to_folders() {
    let p = load_str(&wrap(r#""data_planes": [{"id": "d", "s3": ["s3://acme-data/marketing", "s3://acme-data/marketing/", "s3://acme-all"]}]"#), "p.json", &no_env).unwrap();
    let locs: Vec<String> = p.data_planes["d"]
        .s3
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(locs, ["s3://acme-data/marketing/", "s3://acme-all/"]);
}

#[test]
fn the_example_platform_file_loads() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/platform.json"
    ))
    .unwrap();
    let p = load_str(&text, "examples/platform.json", &no_env).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.users.len(), 4);
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Truncations and byte flips of a valid file: every prefix must give Ok or one error line.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/platform.json"
    ))
    .unwrap();
    for cut in (0..text.len()).step_by(7) {
        if let Err(e) = load_str(&text[..cut], "p.json", &no_env) {
            assert!(!e.to_string().contains('\n'));
        }
    }
}
