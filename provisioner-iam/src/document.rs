//! Policy documents as IAM hands them back, and when two of them mean the same.
//!
//! IAM returns stored documents URL-encoded (RFC 3986) and keeps the text it was given,
//! so a byte comparison with what the platform file produces would call a policy stale
//! whenever a tool or a person re-saved it with other whitespace or order. The sync
//! compares meaning instead: the same statements with the same effects, actions,
//! resources and conditions, in any order and in either the one-string or the list form
//! IAM accepts. It must never call two documents equal when IAM would evaluate them
//! differently: only forms IAM defines as equivalent are folded.

use serde_json::{Map, Value};

/// The JSON text of a document as IAM returned it: URL-decoded when it is encoded.
/// Some IAM-compatible servers answer with the raw JSON; that is taken as it is.
pub fn decode(text: &str) -> String {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return text.to_string();
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a document as IAM returned it (URL-encoded or not).
pub fn parse(text: &str) -> Result<Value, String> {
    serde_json::from_str(&decode(text)).map_err(|e| format!("not a JSON policy document: {e}"))
}

/// Keys whose value IAM reads as a set of strings, where `"x"` and `["x"]` are the same.
const SET_KEYS: &[&str] = &["Action", "NotAction", "Resource", "NotResource"];

/// The canonical form of a policy document: statement lists sorted, one-string forms
/// turned into sorted, de-duplicated lists (actions compared case-insensitively, as IAM
/// matches them), and condition values likewise. Equal canonical forms mean IAM
/// evaluates the documents the same way.
pub fn canonical(doc: &Value) -> Value {
    let Value::Object(obj) = doc else {
        return doc.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        let v = match k.as_str() {
            "Statement" => {
                let statements = match v {
                    Value::Array(items) => items.iter().map(canonical_statement).collect(),
                    other => vec![canonical_statement(other)],
                };
                let mut keyed: Vec<(String, Value)> =
                    statements.into_iter().map(|s| (s.to_string(), s)).collect();
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
                keyed.dedup_by(|a, b| a.0 == b.0);
                Value::Array(keyed.into_iter().map(|(_, s)| s).collect())
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    sorted_object(out)
}

fn canonical_statement(statement: &Value) -> Value {
    let Value::Object(obj) = statement else {
        return statement.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        let v = if SET_KEYS.contains(&k.as_str()) {
            let lower = k.ends_with("Action");
            string_set(v, lower)
        } else if k == "Condition" {
            canonical_condition(v)
        } else if k == "Principal" || k == "NotPrincipal" {
            match v {
                Value::Object(p) => sorted_object(
                    p.iter()
                        .map(|(pk, pv)| (pk.clone(), string_set(pv, false)))
                        .collect(),
                ),
                other => other.clone(),
            }
        } else {
            v.clone()
        };
        out.insert(k.clone(), v);
    }
    sorted_object(out)
}

fn canonical_condition(v: &Value) -> Value {
    let Value::Object(ops) = v else {
        return v.clone();
    };
    sorted_object(
        ops.iter()
            .map(|(op, keys)| {
                let keys = match keys {
                    Value::Object(k) => sorted_object(
                        k.iter()
                            .map(|(name, values)| (name.clone(), string_set(values, false)))
                            .collect(),
                    ),
                    other => other.clone(),
                };
                (op.clone(), keys)
            })
            .collect(),
    )
}

/// `"x"` or `["x", ...]` as a sorted list without duplicates. Anything else is kept as
/// it is, so a malformed document never compares equal to a well-formed one.
fn string_set(v: &Value, lower: bool) -> Value {
    let items: Option<Vec<String>> = match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
        _ => None,
    };
    match items {
        Some(mut items) => {
            if lower {
                items.iter_mut().for_each(|s| *s = s.to_ascii_lowercase());
            }
            items.sort();
            items.dedup();
            Value::Array(items.into_iter().map(Value::String).collect())
        }
        None => v.clone(),
    }
}

fn sorted_object(map: Map<String, Value>) -> Value {
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(entries.into_iter().collect())
}

/// True when the two documents grant the same (see [`canonical`]).
pub fn same_meaning(a: &Value, b: &Value) -> bool {
    canonical(a) == canonical(b)
}

/// Characters IAM counts against a managed policy's 6,144: everything but white space.
pub fn managed_chars(json: &str) -> usize {
    json.chars().filter(|c| !c.is_whitespace()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_encoded_documents_decode() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/p/*"}]}"#;
        let encoded: String =
            percent_encoding::utf8_percent_encode(doc, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert!(encoded.starts_with("%7B"));
        assert_eq!(decode(&encoded), doc);
        assert_eq!(decode(doc), doc);
        assert_eq!(parse(&encoded).unwrap(), parse(doc).unwrap());
    }

    #[test]
    fn equivalent_forms_compare_equal() {
        let a = json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::b/p/*"},
            {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
             "Condition":{"StringLike":{"s3:prefix":["p/","p/*"]}}}]});
        let b = json!({"Statement":[
            {"Resource":["arn:aws:s3:::b"],"Action":["S3:ListBucket"],"Effect":"Allow",
             "Condition":{"StringLike":{"s3:prefix":["p/*","p/"]}}},
            {"Effect":"Allow","Action":["s3:PutObject","s3:GetObject","s3:GetObject"],"Resource":["arn:aws:s3:::b/p/*"]}],
            "Version":"2012-10-17"});
        assert!(same_meaning(&a, &b));
    }

    #[test]
    fn different_grants_compare_different() {
        let base = json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/p/*"}]});
        for other in [
            json!({"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/p/*"}]}),
            json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/P/*"}]}),
            json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/p/x*"}]}),
            json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::b/p/*"}]}),
            json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"s3:GetObject","Resource":"arn:aws:s3:::b/p/*"}]}),
            json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/p/*"},
                                                      {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::c/*"}]}),
            json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/p/*",
                                                       "Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}),
        ] {
            assert!(!same_meaning(&base, &other), "{other}");
        }
    }

    #[test]
    fn whitespace_does_not_count() {
        assert_eq!(managed_chars("{\n  \"a\": \"b c\"\n}"), 10);
    }
}
