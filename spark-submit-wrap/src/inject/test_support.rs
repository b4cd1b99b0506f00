//! Shared fixtures of the injection tests.

use std::collections::BTreeMap;

use provisioner_core::credentials::Credentials;

pub(super) const REGION: Option<&str> = Some("us-east-1");

pub(super) fn scoped(token: bool) -> Credentials {
    Credentials {
        access_key_id: "ASIAEXAMPLE".into(),
        secret_access_key: "SECRETVALUE".into(),
        session_token: token.then(|| "TOKENVALUE".into()),
        expiration: token
            .then(|| provisioner_core::credentials::parse_rfc3339("2026-11-22T22:00:00Z"))
            .flatten(),
    }
}

pub(super) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn cli(pairs: &[(&str, &str)]) -> Vec<(usize, String, String)> {
    pairs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| (i * 2, k.to_string(), v.to_string()))
        .collect()
}
