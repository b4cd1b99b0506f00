//! The data-plane session policy: the inline policy sent with AssumeRole so that the
//! session reaches only the user's S3 prefixes, Glue databases and the platform's own
//! folders.
//!
//! Building is pure and deterministic: the same input gives byte-identical minified
//! JSON, so its size and sha256 identify it in decision records. Compaction never
//! widens: prefixes are merged only when one contains the other, and actions are
//! listed explicitly wherever a wildcard would reach further than needed.
//! This module must never emit a wildcard built from input (ids and prefixes are
//! validated upstream to contain none).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::S3Location;

pub mod managed;

pub use managed::{
    MAX_MANAGED_POLICY_CHARS, MAX_POLICY_ARNS, ManagedPolicy, Placement, SessionInput,
    SessionLayout, desired_managed_policies,
};

/// STS's limit on the plaintext of an inline session policy.
pub const MAX_POLICY_CHARS: usize = 2048;

/// S3 actions granted on the data-plane objects and their buckets, in one statement.
/// Object actions match only object ARNs and bucket actions only bucket ARNs, so one
/// statement grants each exactly where it belongs. `s3:*Multipart*` is exactly
/// AbortMultipartUpload and ListMultipartUploadParts on objects, and
/// ListBucketMultipartUploads on buckets; initiate, upload part and complete are
/// authorised by `s3:PutObject`.
pub const S3_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:*Multipart*",
    "s3:GetBucketLocation",
];

/// What a Spark or boto3 Glue catalog client needs to read and write tables and
/// partitions. `*Table` is Create/Update/Delete/Get/BatchDeleteTable; `*Partition` is
/// the eight partition calls (Get, Create, Update, Delete and their Batch forms); the
/// `Get*` wildcards expand to read-only calls on the same resources.
pub const GLUE_ACTIONS: &[&str] = &[
    "glue:GetDatabase*",
    "glue:GetTable*",
    "glue:*Table",
    "glue:GetPartition*",
    "glue:*Partition",
    "glue:GetUserDefinedFunction*",
];

/// Model invocation for Jupyter AI: InvokeModel and its streaming forms.
pub const BEDROCK_ACTIONS: &[&str] = &["bedrock:InvokeModel*"];

/// Everything the policy is built from, already resolved for one user and launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInput {
    /// ARN partition (`aws`, `aws-cn`, ...).
    pub partition: String,
    pub region: String,
    /// Needed only when there are Glue databases.
    pub account_id: Option<String>,
    /// Data-plane locations.
    pub s3: Vec<S3Location>,
    /// Platform-folder locations in the platform bucket.
    pub platform_folders: Vec<S3Location>,
    pub glue_databases: Vec<String>,
    pub bedrock: bool,
}

/// A built session policy: minified JSON plus its size and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    json: String,
    sha256: String,
}

impl SessionPolicy {
    /// The minified policy document, exactly as sent to STS.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Characters of the minified document (what STS counts against 2,048).
    pub fn chars(&self) -> usize {
        self.json.chars().count()
    }

    /// Hex sha256 of the minified document.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn fits(&self) -> bool {
        self.chars() <= MAX_POLICY_CHARS
    }

    /// The document as a JSON value (for `explain --json`).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.json).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statement: &'a [Statement],
}

#[derive(Serialize)]
struct Statement {
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Action")]
    action: OneOrMany,
    #[serde(rename = "Resource")]
    resource: OneOrMany,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    condition: Option<BTreeMap<&'static str, BTreeMap<&'static str, OneOrMany>>>,
}

/// IAM accepts a bare string where a list has one element; it saves characters.
#[derive(Serialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn of(mut items: Vec<String>) -> OneOrMany {
        if items.len() == 1 {
            OneOrMany::One(items.remove(0))
        } else {
            OneOrMany::Many(items)
        }
    }

    fn of_strs(items: &[&str]) -> OneOrMany {
        OneOrMany::of(items.iter().map(|s| s.to_string()).collect())
    }
}

/// Drops duplicate locations and locations inside a broader one of the same bucket,
/// and sorts the rest (bucket, then prefix).
pub fn compact_locations(locations: &[S3Location]) -> Vec<S3Location> {
    let sorted: BTreeSet<&S3Location> = locations.iter().collect();
    let mut kept: Vec<S3Location> = Vec::new();
    for loc in sorted {
        // Sorted order puts a prefix before everything it covers in the same bucket.
        if !kept.iter().any(|k| k.covers(loc)) {
            kept.push(loc.clone());
        }
    }
    kept
}

/// Builds the session policy for `input`. With nothing to allow it denies everything:
/// an empty Statement list is not a valid policy, and no policy at all would leave the
/// role's full permissions.
pub fn build(input: &PolicyInput) -> SessionPolicy {
    let mut statements = statements(input);
    if statements.is_empty() {
        statements.push(Statement {
            effect: "Deny",
            action: OneOrMany::One("*".into()),
            resource: OneOrMany::One("*".into()),
            condition: None,
        });
    }
    finish(&statements)
}

/// The minified document of `statements`, with its digest.
fn finish(statements: &[Statement]) -> SessionPolicy {
    let json = serde_json::to_string(&Document {
        version: "2012-10-17",
        statement: statements,
    })
    .unwrap_or_default();
    let sha256 = hex::encode(Sha256::digest(json.as_bytes()));
    SessionPolicy { json, sha256 }
}

/// A one-statement policy that allows `action` on `resource` and nothing else.
fn single_allow(action: &str, resource: String) -> SessionPolicy {
    finish(&[Statement {
        effect: "Allow",
        action: OneOrMany::One(action.to_string()),
        resource: OneOrMany::One(resource),
        condition: None,
    }])
}

/// The Allow statements for `input`, in document order (empty when nothing is allowed).
fn statements(input: &PolicyInput) -> Vec<Statement> {
    let s3_arn = format!("arn:{}:s3:::", input.partition);
    let data = compact_locations(&input.s3);
    let folders: Vec<S3Location> = compact_locations(&input.platform_folders)
        .into_iter()
        .filter(|f| !data.iter().any(|d| d.covers(f)))
        .collect();
    let mut statements = Vec::new();

    if !data.is_empty() || !folders.is_empty() {
        let mut resources = Vec::new();
        let mut folder_keys = Vec::new();
        for loc in &data {
            if let Some(folder) = loc.prefix.strip_suffix('/') {
                folder_keys.push(format!("{s3_arn}{}/{folder}", loc.bucket));
            }
            resources.push(format!("{s3_arn}{}/{}*", loc.bucket, loc.prefix));
        }
        // Platform folders take the form the platform documents (`folder/*`).
        for loc in &folders {
            resources.push(format!("{s3_arn}{}/{}*", loc.bucket, loc.prefix));
        }
        let mut by_bucket: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for loc in data.iter().chain(&folders) {
            by_bucket.entry(&loc.bucket).or_default().push(&loc.prefix);
        }
        resources.extend(by_bucket.keys().map(|b| format!("{s3_arn}{b}")));
        statements.push(Statement {
            effect: "Allow",
            action: OneOrMany::of_strs(S3_ACTIONS),
            resource: OneOrMany::of(resources),
            condition: None,
        });
        if !folder_keys.is_empty() {
            // S3A probes a directory as the bare key before `key/` (getFileStatus,
            // mkdirs of parents); without it a HEAD is denied instead of answering "not
            // found", and the job fails. Reading is all it needs: the bare key can lie in
            // another plane's area (nested planes), so nothing else is granted on it.
            statements.push(Statement {
                effect: "Allow",
                action: OneOrMany::One("s3:GetObject".into()),
                resource: OneOrMany::of(folder_keys),
                condition: None,
            });
        }
        // A whole-bucket location lists without a condition; otherwise listing is
        // limited to keys under the prefixes (`p/*` also matches `p/` itself). Buckets
        // listed under exactly the same prefixes share one statement: each bucket is
        // then listable under exactly its own prefixes, as with one statement each.
        let mut groups: Vec<(Option<Vec<String>>, Vec<String>)> = Vec::new();
        for (bucket, prefixes) in &by_bucket {
            let mut prefixes: Vec<&str> = prefixes.clone();
            prefixes.sort_unstable();
            let condition = (!prefixes.iter().any(|p| p.is_empty()))
                .then(|| prefixes.iter().map(|p| format!("{p}*")).collect::<Vec<_>>());
            let arn = format!("{s3_arn}{bucket}");
            match groups.iter_mut().find(|(c, _)| *c == condition) {
                Some((_, buckets)) => buckets.push(arn),
                None => groups.push((condition, vec![arn])),
            }
        }
        for (condition, buckets) in groups {
            statements.push(Statement {
                effect: "Allow",
                action: OneOrMany::One("s3:ListBucket".into()),
                resource: OneOrMany::of(buckets),
                condition: condition.map(|list| {
                    BTreeMap::from([(
                        "StringLike",
                        BTreeMap::from([("s3:prefix", OneOrMany::of(list))]),
                    )])
                }),
            });
        }
    }

    let databases: BTreeSet<&String> = input.glue_databases.iter().collect();
    if !databases.is_empty() {
        let account = input.account_id.as_deref().unwrap_or_default();
        let glue_arn = format!("arn:{}:glue:{}:{account}:", input.partition, input.region);
        let mut resources = vec![format!("{glue_arn}catalog")];
        for db in &databases {
            resources.push(format!("{glue_arn}database/{db}"));
            resources.push(format!("{glue_arn}table/{db}/*"));
            resources.push(format!("{glue_arn}userDefinedFunction/{db}/*"));
        }
        statements.push(Statement {
            effect: "Allow",
            action: OneOrMany::of_strs(GLUE_ACTIONS),
            resource: OneOrMany::of(resources),
            condition: None,
        });
    }

    if input.bedrock {
        statements.push(Statement {
            effect: "Allow",
            action: OneOrMany::of_strs(BEDROCK_ACTIONS),
            resource: OneOrMany::One("*".into()),
            condition: None,
        });
    }

    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(s: &str) -> S3Location {
        S3Location::parse(s).unwrap()
    }

    fn input(s3: &[&str], glue: &[&str], bedrock: bool) -> PolicyInput {
        PolicyInput {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account_id: Some("123456789012".into()),
            s3: s3.iter().map(|s| loc(s)).collect(),
            platform_folders: Vec::new(),
            glue_databases: glue.iter().map(|s| s.to_string()).collect(),
            bedrock,
        }
    }

    #[test]
    fn exact_document_for_one_location_and_database() {
        let mut i = input(&["s3://acme-data/marketing/"], &["marketing"], true);
        i.platform_folders = vec![loc("s3://acme-platform/syn-workspace/")];
        let p = build(&i);
        let expected = concat!(
            r#"{"Version":"2012-10-17","Statement":["#,
            r#"{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject","s3:*Multipart*","s3:GetBucketLocation"],"#,
            r#""Resource":["arn:aws:s3:::acme-data/marketing/*","arn:aws:s3:::acme-platform/syn-workspace/*","arn:aws:s3:::acme-data","arn:aws:s3:::acme-platform"]},"#,
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::acme-data/marketing"},"#,
            r#"{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::acme-data","Condition":{"StringLike":{"s3:prefix":"marketing/*"}}},"#,
            r#"{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::acme-platform","Condition":{"StringLike":{"s3:prefix":"syn-workspace/*"}}},"#,
            r#"{"Effect":"Allow","Action":["glue:GetDatabase*","glue:GetTable*","glue:*Table","glue:GetPartition*","glue:*Partition","glue:GetUserDefinedFunction*"],"#,
            r#""Resource":["arn:aws:glue:us-east-1:123456789012:catalog","arn:aws:glue:us-east-1:123456789012:database/marketing","arn:aws:glue:us-east-1:123456789012:table/marketing/*","arn:aws:glue:us-east-1:123456789012:userDefinedFunction/marketing/*"]},"#,
            r#"{"Effect":"Allow","Action":"bedrock:InvokeModel*","Resource":"*"}"#,
            "]}"
        );
        assert_eq!(p.json(), expected);
        assert_eq!(p.chars(), expected.len());
        assert!(p.fits());
    }

    #[test]
    fn deterministic_whatever_the_input_order() {
        let a = build(&input(
            &["s3://bk1/x/", "s3://bk2/y/", "s3://bk1/a/"],
            &["z", "a"],
            true,
        ));
        let b = build(&input(
            &["s3://bk1/a/", "s3://bk1/x/", "s3://bk2/y/"],
            &["a", "z"],
            true,
        ));
        assert_eq!(a.json(), b.json());
        assert_eq!(a.sha256(), b.sha256());
        assert_eq!(a.sha256().len(), 64);
    }

    #[test]
    fn covered_prefixes_are_dropped_and_same_bucket_shares_a_list_statement() {
        let p = build(&input(
            &[
                "s3://bk1/data/",
                "s3://bk1/data/2024/",
                "s3://bk1/other/",
                "s3://bk2/data/2024/",
            ],
            &[],
            false,
        ));
        let v = p.to_value();
        let st = v["Statement"].as_array().unwrap();
        let objects = st[0]["Resource"].as_array().unwrap();
        assert!(
            !objects.iter().any(|r| r == "arn:aws:s3:::bk1/data/2024/*"),
            "{objects:?}"
        );
        assert!(
            objects.iter().any(|r| r == "arn:aws:s3:::bk2/data/2024/*"),
            "the same prefix in another bucket is kept"
        );
        assert!(
            objects.iter().any(|r| r == "arn:aws:s3:::bk1")
                && objects.iter().any(|r| r == "arn:aws:s3:::bk2")
        );
        assert_eq!(
            st[1]["Action"], "s3:GetObject",
            "bare folder keys are only readable"
        );
        assert_eq!(
            st[1]["Resource"],
            serde_json::json!([
                "arn:aws:s3:::bk1/data",
                "arn:aws:s3:::bk1/other",
                "arn:aws:s3:::bk2/data/2024"
            ])
        );
        assert_eq!(st[2]["Resource"], "arn:aws:s3:::bk1");
        assert_eq!(
            st[2]["Condition"]["StringLike"]["s3:prefix"],
            serde_json::json!(["data/*", "other/*"])
        );
        assert_eq!(st[3]["Resource"], "arn:aws:s3:::bk2");
        assert_eq!(st.len(), 4);
    }

    #[test]
    fn sibling_prefix_with_common_start_is_not_covered() {
        // "market/" must not swallow "marketing/".
        let kept = compact_locations(&[loc("s3://bkt/market/"), loc("s3://bkt/marketing/")]);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn buckets_listed_under_the_same_prefixes_share_one_list_statement() {
        let p = build(&input(
            &[
                "s3://raw-bk/marketing/",
                "s3://cur-bk/marketing/",
                "s3://oth-bk/sales/",
            ],
            &[],
            false,
        ));
        let v = p.to_value();
        let lists: Vec<&serde_json::Value> = v["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Action"] == "s3:ListBucket")
            .collect();
        assert_eq!(lists.len(), 2);
        assert_eq!(
            lists[0]["Resource"],
            serde_json::json!(["arn:aws:s3:::cur-bk", "arn:aws:s3:::raw-bk"])
        );
        assert_eq!(
            lists[0]["Condition"]["StringLike"]["s3:prefix"],
            "marketing/*"
        );
        assert_eq!(lists[1]["Resource"], "arn:aws:s3:::oth-bk");
        assert_eq!(lists[1]["Condition"]["StringLike"]["s3:prefix"], "sales/*");
    }

    #[test]
    fn whole_bucket_lists_without_condition() {
        let p = build(&input(&["s3://bk1/", "s3://bk1/sub/"], &[], false));
        let v = p.to_value();
        assert_eq!(
            v["Statement"][0]["Resource"],
            serde_json::json!(["arn:aws:s3:::bk1/*", "arn:aws:s3:::bk1"])
        );
        assert!(v["Statement"][1].get("Condition").is_none());
    }

    #[test]
    fn nothing_to_allow_denies_everything() {
        let p = build(&input(&[], &[], false));
        assert_eq!(
            p.json(),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#
        );
    }

    #[test]
    fn over_limit_is_reported() {
        let many: Vec<String> = (0..40)
            .map(|i| format!("s3://bucket-{i:02}/some/long/prefix/number/{i}/"))
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let p = build(&input(&refs, &[], false));
        assert!(p.chars() > MAX_POLICY_CHARS);
        assert!(!p.fits());
    }

    #[test]
    fn partition_is_used_in_every_arn() {
        let mut i = input(&["s3://bk1/x/"], &["db"], false);
        i.partition = "aws-cn".into();
        i.region = "cn-north-1".into();
        let p = build(&i);
        assert!(!p.json().contains("arn:aws:"), "{}", p.json());
        assert!(
            p.json()
                .contains("arn:aws-cn:glue:cn-north-1:123456789012:database/db")
        );
    }
}
