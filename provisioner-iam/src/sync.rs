//! `provisioner policies sync`: makes IAM hold exactly the managed session policies the
//! platform file asks for, under the platform's IAM path.
//!
//! Three steps, so that the decision is testable without IAM:
//! 1. [`observe`] reads IAM: the policies under the path, the default version's document
//!    of each desired one, and the version list of each that differs;
//! 2. [`plan`] (pure) compares by meaning ([`crate::document::same_meaning`]): create,
//!    new version, unchanged, and for policies nothing references, prune (with
//!    `--prune`) or extra (reported, kept);
//! 3. [`apply`] carries the plan out.
//!
//! Identical inputs never churn IAM: an unchanged document makes no call that writes.
//! The sync never touches a policy outside its path, and never deletes a policy that is
//! attached to a user, group or role or used as a permissions boundary (those are not
//! session policies this product made; the admin decides).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use crate::aws::{Call, CallError, Clients, describe};
use crate::desired::ManagedPolicy;
use crate::document;

/// IAM keeps at most five versions of a managed policy.
pub const MAX_VERSIONS: usize = 5;
/// IAM's limit on a managed policy document, white space not counted.
pub use provisioner_core::policy::managed::MAX_MANAGED_POLICY_CHARS as MAX_MANAGED_CHARS;
/// Concurrent IAM reads and writes. IAM's rate limits are unpublished and low for
/// writes; the SDK backs off on throttling.
const READ_CONCURRENCY: usize = 8;
const WRITE_CONCURRENCY: usize = 4;

/// One stored version of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub id: String,
    pub is_default: bool,
    /// Creation time, seconds since the epoch.
    pub created: i64,
}

/// A managed policy found under the path.
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    pub name: String,
    pub arn: String,
    pub path: String,
    pub default_version_id: String,
    /// Users, groups and roles it is attached to, plus permissions-boundary uses.
    pub attachments: i32,
    /// The default version's document, read for the policies the platform wants.
    pub document: Option<Value>,
    /// Read for the policies whose document differs (they get a new version).
    pub versions: Vec<Version>,
}

/// What the sync does to one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Create,
    NewVersion,
    Unchanged,
    Prune,
    /// Under the path, referenced by nothing, kept because `--prune` was not given.
    Extra,
}

impl Change {
    pub fn label(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::NewVersion => "new version",
            Change::Unchanged => "unchanged",
            Change::Prune => "prune",
            Change::Extra => "extra",
        }
    }
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    pub change: Change,
    pub name: String,
    pub arn: String,
    /// sha256 of the desired document (create, new version, unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Characters of the desired document, white space not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chars: Option<usize>,
    /// New version: the oldest non-default version deleted first to make room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletes_version: Option<String>,
    /// Prune: the non-default versions deleted before the policy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deletes_versions: Vec<String>,
    /// The desired document (create, new version), as JSON: what the change writes.
    #[serde(
        rename = "document",
        serialize_with = "document_value",
        skip_serializing_if = "no_write"
    )]
    pub document: Option<String>,
    #[serde(skip)]
    pub path: String,
}

fn document_value<S: serde::Serializer>(doc: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    let v: Option<Value> = doc.as_deref().and_then(|d| serde_json::from_str(d).ok());
    v.serialize(s)
}

/// Unchanged policies need no document in the output: nothing is written.
fn no_write(doc: &Option<String>) -> bool {
    doc.is_none()
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncPlan {
    pub path: String,
    pub actions: Vec<Action>,
}

impl SyncPlan {
    pub fn count(&self, change: Change) -> usize {
        self.actions.iter().filter(|a| a.change == change).count()
    }

    /// True when IAM holds every desired policy with the desired meaning and nothing
    /// else under the path.
    pub fn in_sync(&self) -> bool {
        self.actions.iter().all(|a| a.change == Change::Unchanged)
    }

    /// True when applying the plan writes to IAM.
    pub fn writes(&self) -> bool {
        self.actions.iter().any(|a| {
            matches!(
                a.change,
                Change::Create | Change::NewVersion | Change::Prune
            )
        })
    }

    /// The plan as people read it: one line per policy, then the summary.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .actions
            .iter()
            .map(|a| {
                let detail = match a.change {
                    Change::Create => format!("{} characters", a.chars.unwrap_or_default()),
                    Change::NewVersion => match &a.deletes_version {
                        Some(v) => format!(
                            "{} characters; deletes the oldest non-default version {v} first (IAM keeps {MAX_VERSIONS})",
                            a.chars.unwrap_or_default()
                        ),
                        None => format!("{} characters", a.chars.unwrap_or_default()),
                    },
                    Change::Unchanged => String::new(),
                    Change::Prune => {
                        "nothing in the platform file references it; deleted with its versions"
                            .into()
                    }
                    Change::Extra => {
                        "nothing in the platform file references it; --prune deletes it".into()
                    }
                };
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!("  ({detail})")
                };
                format!("{:<12} {}{detail}", a.change.label(), a.arn)
            })
            .collect();
        out.push(self.summary());
        out
    }

    pub fn summary(&self) -> String {
        let extra = self.count(Change::Extra);
        let extra = if extra > 0 {
            format!(", {extra} extra (kept; --prune deletes)")
        } else {
            String::new()
        };
        format!(
            "plan for {}: {} to create, {} new version(s), {} unchanged, {} to prune{extra}",
            self.path,
            self.count(Change::Create),
            self.count(Change::NewVersion),
            self.count(Change::Unchanged),
            self.count(Change::Prune),
        )
    }

    /// Policies a launch needs that IAM lacks or holds with another meaning.
    pub fn drift(&self) -> (Vec<&Action>, Vec<&Action>, Vec<&Action>) {
        let of = |c: Change| self.actions.iter().filter(move |a| a.change == c);
        (
            of(Change::Create).collect(),
            of(Change::NewVersion).collect(),
            of(Change::Extra).chain(of(Change::Prune)).collect(),
        )
    }

    pub fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "in_sync": self.in_sync(),
            "summary": {
                "create": self.count(Change::Create),
                "new_version": self.count(Change::NewVersion),
                "unchanged": self.count(Change::Unchanged),
                "prune": self.count(Change::Prune),
                "extra": self.count(Change::Extra),
            },
            "actions": self.actions,
        })
    }
}

/// Compares the desired policies with what IAM holds. Pure.
///
/// Fails (one line, with the fix) when a desired document is over IAM's limit or when
/// `prune` would have to delete a policy that is still attached somewhere.
pub fn plan(
    path: &str,
    desired: &[ManagedPolicy],
    existing: &[Existing],
    prune: bool,
) -> Result<SyncPlan, String> {
    let by_name: BTreeMap<&str, &Existing> =
        existing.iter().map(|e| (e.name.as_str(), e)).collect();
    let wanted: BTreeSet<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    let mut actions = Vec::new();
    for d in desired {
        let chars = document::managed_chars(&d.document);
        if chars > MAX_MANAGED_CHARS {
            return Err(format!(
                "managed policy {} is {chars} characters, over IAM's {MAX_MANAGED_CHARS}; fix: split the data planes it holds into smaller ones",
                d.name
            ));
        }
        let desired_doc: Value = serde_json::from_str(&d.document)
            .map_err(|e| format!("managed policy {} is not valid JSON: {e}", d.name))?;
        let action = |change: Change, arn: &str| Action {
            change,
            name: d.name.clone(),
            arn: arn.to_string(),
            sha256: Some(d.sha256.clone()),
            chars: Some(chars),
            deletes_version: None,
            deletes_versions: Vec::new(),
            document: Some(d.document.clone()),
            path: d.path.clone(),
        };
        match by_name.get(d.name.as_str()) {
            None => actions.push(action(Change::Create, &d.arn)),
            Some(e) => {
                let same = e
                    .document
                    .as_ref()
                    .is_some_and(|doc| document::same_meaning(doc, &desired_doc));
                if same {
                    let mut a = action(Change::Unchanged, &e.arn);
                    a.document = None;
                    actions.push(a);
                } else {
                    let mut a = action(Change::NewVersion, &e.arn);
                    if e.versions.len() >= MAX_VERSIONS {
                        a.deletes_version = oldest_non_default(&e.versions);
                    }
                    actions.push(a);
                }
            }
        }
    }
    let mut blocked = Vec::new();
    for e in existing
        .iter()
        .filter(|e| !wanted.contains(e.name.as_str()))
    {
        if prune && e.attachments > 0 {
            blocked.push(e.arn.clone());
            continue;
        }
        actions.push(Action {
            change: if prune { Change::Prune } else { Change::Extra },
            name: e.name.clone(),
            arn: e.arn.clone(),
            sha256: None,
            chars: None,
            deletes_version: None,
            deletes_versions: e
                .versions
                .iter()
                .filter(|v| !v.is_default)
                .map(|v| v.id.clone())
                .collect(),
            document: None,
            path: e.path.clone(),
        });
    }
    if let Some(first) = blocked.first() {
        let more = if blocked.len() > 1 {
            format!(" (and {} more)", blocked.len() - 1)
        } else {
            String::new()
        };
        return Err(format!(
            "cannot prune {first}{more}: it is attached to a user, group or role (or is a permissions boundary), so something other than session policies uses it; fix: detach it (aws iam list-entities-for-policy --policy-arn {first} shows where), or move it out of {path}, then run the sync again; nothing was changed"
        ));
    }
    Ok(SyncPlan {
        path: path.to_string(),
        actions,
    })
}

/// The version to delete before creating a sixth: the oldest that is not the default.
pub fn oldest_non_default(versions: &[Version]) -> Option<String> {
    versions
        .iter()
        .filter(|v| !v.is_default)
        .min_by_key(|v| (v.created, version_number(&v.id)))
        .map(|v| v.id.clone())
}

fn version_number(id: &str) -> u64 {
    id.trim_start_matches('v').parse().unwrap_or(u64::MAX)
}

/// Runs `f` over `items` with at most `limit` calls in flight, in input order.
async fn limited<T, R, F, Fut>(items: Vec<T>, limit: usize, f: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let f = Arc::new(f);
    let mut set = tokio::task::JoinSet::new();
    let mut results: Vec<Option<R>> = Vec::new();
    results.resize_with(items.len(), || None);
    for (i, item) in items.into_iter().enumerate() {
        while set.len() >= limit {
            if let Some(Ok((j, r))) = set.join_next().await {
                results[j] = Some(r);
            }
        }
        let f = Arc::clone(&f);
        set.spawn(async move { (i, f(item).await) });
    }
    while let Some(joined) = set.join_next().await {
        if let Ok((j, r)) = joined {
            results[j] = Some(r);
        }
    }
    results.into_iter().flatten().collect()
}

/// The account's policy ARN pattern under `path`, for messages.
fn path_resource(account: &str, path: &str) -> String {
    format!("arn:aws:iam::{account}:policy{path}*")
}

/// Reads what IAM holds under `path` for the comparison with `desired`.
pub async fn observe(
    clients: &Clients,
    account: &str,
    path: &str,
    desired: &[ManagedPolicy],
    with_versions_of_extras: bool,
) -> Result<Vec<Existing>, CallError> {
    let endpoint = clients.iam_endpoint.clone();
    // ListPolicies has no resource of its own: IAM authorizes it on `*`.
    let _ = path_resource(account, path);
    let list_call = Call::new("iam:ListPolicies", "*");
    let mut existing = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = clients
            .iam
            .list_policies()
            .scope(aws_sdk_iam::types::PolicyScopeType::Local)
            .path_prefix(path)
            .set_marker(marker.clone())
            .max_items(1000)
            .send()
            .await
            .map_err(|e| describe(&list_call, &endpoint, &e))?;
        for p in out.policies() {
            existing.push(Existing {
                name: p.policy_name().unwrap_or_default().to_string(),
                arn: p.arn().unwrap_or_default().to_string(),
                path: p.path().unwrap_or_default().to_string(),
                default_version_id: p.default_version_id().unwrap_or_default().to_string(),
                attachments: p.attachment_count().unwrap_or(0)
                    + p.permissions_boundary_usage_count().unwrap_or(0),
                document: None,
                versions: Vec::new(),
            });
        }
        marker = out.marker().map(str::to_string);
        if !out.is_truncated() || marker.is_none() {
            break;
        }
    }

    // Default documents of the policies the platform wants, read concurrently.
    let wanted: BTreeMap<String, Value> = desired
        .iter()
        .filter_map(|d| {
            serde_json::from_str(&d.document)
                .ok()
                .map(|v| (d.name.clone(), v))
        })
        .collect();
    let to_read: Vec<(usize, String, String)> = existing
        .iter()
        .enumerate()
        .filter(|(_, e)| wanted.contains_key(&e.name))
        .map(|(i, e)| (i, e.arn.clone(), e.default_version_id.clone()))
        .collect();
    let iam = clients.iam.clone();
    let ep = endpoint.clone();
    let docs = limited(to_read, READ_CONCURRENCY, move |(i, arn, version)| {
        let iam = iam.clone();
        let ep = ep.clone();
        async move {
            let call = Call::new("iam:GetPolicyVersion", arn.clone());
            let out = iam
                .get_policy_version()
                .policy_arn(&arn)
                .version_id(&version)
                .send()
                .await
                .map_err(|e| describe(&call, &ep, &e))?;
            let text = out
                .policy_version()
                .and_then(|v| v.document())
                .unwrap_or_default();
            // A document IAM holds that does not parse is stale: a new version fixes it.
            Ok::<_, CallError>((i, document::parse(text).ok()))
        }
    })
    .await;
    for r in docs {
        let (i, doc) = r?;
        existing[i].document = doc;
    }

    // Version lists of the ones that get a new version (or are pruned).
    let to_list: Vec<(usize, String)> = existing
        .iter()
        .enumerate()
        .filter(|(_, e)| match wanted.get(&e.name) {
            Some(want) => !e
                .document
                .as_ref()
                .is_some_and(|doc| document::same_meaning(doc, want)),
            None => with_versions_of_extras,
        })
        .map(|(i, e)| (i, e.arn.clone()))
        .collect();
    let iam = clients.iam.clone();
    let ep = endpoint.clone();
    let lists = limited(to_list, READ_CONCURRENCY, move |(i, arn)| {
        let iam = iam.clone();
        let ep = ep.clone();
        async move { Ok::<_, CallError>((i, list_versions(&iam, &ep, &arn).await?)) }
    })
    .await;
    for r in lists {
        let (i, versions) = r?;
        existing[i].versions = versions;
    }
    Ok(existing)
}

async fn list_versions(
    iam: &aws_sdk_iam::Client,
    endpoint: &str,
    arn: &str,
) -> Result<Vec<Version>, CallError> {
    let call = Call::new("iam:ListPolicyVersions", arn);
    let out = iam
        .list_policy_versions()
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| describe(&call, endpoint, &e))?;
    Ok(out
        .versions()
        .iter()
        .map(|v| Version {
            id: v.version_id().unwrap_or_default().to_string(),
            is_default: v.is_default_version(),
            created: v.create_date().map(|d| d.secs()).unwrap_or(0),
        })
        .collect())
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub created: usize,
    pub new_versions: usize,
    pub versions_deleted: usize,
    pub pruned: usize,
}

/// Carries out `plan`: creates and new versions first, then prunes. Stops at the first
/// failure and says how far it got; running the sync again continues from there.
pub async fn apply(clients: &Clients, plan: &SyncPlan) -> Result<Applied, (Applied, CallError)> {
    let writes: Vec<Action> = plan
        .actions
        .iter()
        .filter(|a| matches!(a.change, Change::Create | Change::NewVersion))
        .cloned()
        .collect();
    let iam = clients.iam.clone();
    let ep = clients.iam_endpoint.clone();
    let results = limited(writes, WRITE_CONCURRENCY, move |a| {
        let iam = iam.clone();
        let ep = ep.clone();
        async move { write_one(&iam, &ep, &a).await }
    })
    .await;
    let mut done = Applied::default();
    let mut first_error = None;
    for r in results {
        match r {
            Ok((change, deleted)) => {
                done.versions_deleted += deleted;
                match change {
                    Change::Create => done.created += 1,
                    _ => done.new_versions += 1,
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err((done, e));
    }
    let prunes: Vec<Action> = plan
        .actions
        .iter()
        .filter(|a| a.change == Change::Prune)
        .cloned()
        .collect();
    let iam = clients.iam.clone();
    let ep = clients.iam_endpoint.clone();
    let results = limited(prunes, WRITE_CONCURRENCY, move |a| {
        let iam = iam.clone();
        let ep = ep.clone();
        async move { prune_one(&iam, &ep, &a).await }
    })
    .await;
    for r in results {
        match r {
            Ok(deleted) => {
                done.versions_deleted += deleted;
                done.pruned += 1;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err((done, e)),
        None => Ok(done),
    }
}

async fn write_one(
    iam: &aws_sdk_iam::Client,
    endpoint: &str,
    a: &Action,
) -> Result<(Change, usize), CallError> {
    let doc = a.document.clone().unwrap_or_default();
    match a.change {
        Change::Create => {
            let call = Call::new("iam:CreatePolicy", a.arn.clone());
            let out = iam
                .create_policy()
                .policy_name(&a.name)
                .path(&a.path)
                .policy_document(doc)
                .send()
                .await
                .map_err(|e| {
                    let mut err = describe(&call, endpoint, &e);
                    if err.code.as_deref() == Some("EntityAlreadyExists") {
                        err.line = format!(
                            "{}; fix: a policy named {} already exists outside {} (IAM names are unique per account): delete or rename it, or choose another aws.managed_policy_path",
                            err.line, a.name, a.path
                        );
                    }
                    err
                })?;
            let created = out.policy().and_then(|p| p.arn()).unwrap_or_default();
            if !created.is_empty() && created != a.arn {
                return Err(CallError {
                    code: None,
                    line: format!(
                        "IAM created {created}, but launches pass {}; fix: set aws.account_id (and the partition of aws.region) to the account the policies live in",
                        a.arn
                    ),
                });
            }
            Ok((Change::Create, 0))
        }
        _ => {
            let mut deleted = 0;
            // The plan was made from a listing that may be old by now; read the
            // versions again so that the sixth version never fails.
            let versions = list_versions(iam, endpoint, &a.arn).await?;
            if versions.len() >= MAX_VERSIONS
                && let Some(oldest) = oldest_non_default(&versions)
            {
                let call = Call::new("iam:DeletePolicyVersion", a.arn.clone());
                iam.delete_policy_version()
                    .policy_arn(&a.arn)
                    .version_id(&oldest)
                    .send()
                    .await
                    .map_err(|e| describe(&call, endpoint, &e))?;
                deleted += 1;
            }
            let call = Call::new("iam:CreatePolicyVersion", a.arn.clone());
            iam.create_policy_version()
                .policy_arn(&a.arn)
                .policy_document(doc)
                .set_as_default(true)
                .send()
                .await
                .map_err(|e| describe(&call, endpoint, &e))?;
            Ok((Change::NewVersion, deleted))
        }
    }
}

async fn prune_one(
    iam: &aws_sdk_iam::Client,
    endpoint: &str,
    a: &Action,
) -> Result<usize, CallError> {
    let versions = list_versions(iam, endpoint, &a.arn).await?;
    let mut deleted = 0;
    for v in versions.iter().filter(|v| !v.is_default) {
        let call = Call::new("iam:DeletePolicyVersion", a.arn.clone());
        iam.delete_policy_version()
            .policy_arn(&a.arn)
            .version_id(&v.id)
            .send()
            .await
            .map_err(|e| describe(&call, endpoint, &e))?;
        deleted += 1;
    }
    let call = Call::new("iam:DeletePolicy", a.arn.clone());
    iam.delete_policy()
        .policy_arn(&a.arn)
        .send()
        .await
        .map_err(|e| {
            let mut err = describe(&call, endpoint, &e);
            if err.code.as_deref() == Some("DeleteConflict") {
                err.line = format!(
                    "cannot prune {}: it was attached while the sync ran; fix: detach it (aws iam list-entities-for-policy --policy-arn {} shows where), then run the sync again",
                    a.arn, a.arn
                );
            }
            err
        })?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(name: &str, doc: &str) -> ManagedPolicy {
        ManagedPolicy {
            name: name.into(),
            path: "/provisioner/".into(),
            arn: format!("arn:aws:iam::123456789012:policy/provisioner/{name}"),
            document: doc.into(),
            sha256: "x".into(),
            holds: format!("data plane {name}"),
        }
    }

    fn existing(name: &str, doc: Option<&str>, versions: usize, attachments: i32) -> Existing {
        Existing {
            name: name.into(),
            arn: format!("arn:aws:iam::123456789012:policy/provisioner/{name}"),
            path: "/provisioner/".into(),
            default_version_id: format!("v{versions}"),
            attachments,
            document: doc.map(|d| serde_json::from_str(d).unwrap()),
            versions: (1..=versions)
                .map(|i| Version {
                    id: format!("v{i}"),
                    is_default: i == versions,
                    created: 1000 + i as i64,
                })
                .collect(),
        }
    }

    const A: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/a/*"}]}"#;
    const A_REORDERED: &str = r#"{"Statement":{"Resource":["arn:aws:s3:::b/a/*"],"Effect":"Allow","Action":["s3:GetObject"]},"Version":"2012-10-17"}"#;
    const B: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/b/*"}]}"#;

    #[test]
    fn creates_updates_keeps_and_reports_extras() {
        let p = plan(
            "/provisioner/",
            &[desired("p-a", A), desired("p-b", B), desired("p-c", A)],
            &[
                existing("p-a", Some(A_REORDERED), 1, 0),
                existing("p-b", Some(A), 2, 0),
                existing("p-old", Some(A), 1, 0),
            ],
            false,
        )
        .unwrap();
        let got: Vec<(Change, &str)> = p
            .actions
            .iter()
            .map(|a| (a.change, a.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Change::Unchanged, "p-a"),
                (Change::NewVersion, "p-b"),
                (Change::Create, "p-c"),
                (Change::Extra, "p-old"),
            ]
        );
        assert!(!p.in_sync());
        assert!(p.writes());
        assert_eq!(
            p.summary(),
            "plan for /provisioner/: 1 to create, 1 new version(s), 1 unchanged, 0 to prune, 1 extra (kept; --prune deletes)"
        );
        assert_eq!(p.lines().len(), 5);
    }

    #[test]
    fn a_sixth_version_deletes_the_oldest_non_default_first() {
        let mut e = existing("p-a", Some(B), 5, 0);
        // The default is the oldest here: the oldest *non-default* goes.
        e.versions[0].is_default = true;
        e.versions[4].is_default = false;
        let p = plan("/provisioner/", &[desired("p-a", A)], &[e], false).unwrap();
        assert_eq!(p.actions[0].change, Change::NewVersion);
        assert_eq!(p.actions[0].deletes_version.as_deref(), Some("v2"));
        let p = plan(
            "/provisioner/",
            &[desired("p-a", A)],
            &[existing("p-a", Some(B), 4, 0)],
            false,
        )
        .unwrap();
        assert_eq!(p.actions[0].deletes_version, None);
    }

    #[test]
    fn prune_refuses_attached_policies_and_changes_nothing() {
        let err = plan(
            "/provisioner/",
            &[desired("p-a", A)],
            &[
                existing("p-a", Some(A), 1, 0),
                existing("p-old", None, 1, 2),
            ],
            true,
        )
        .unwrap_err();
        assert!(err.starts_with("cannot prune arn:aws:iam::123456789012:policy/provisioner/p-old"));
        assert!(err.contains("list-entities-for-policy") && err.contains("nothing was changed"));
        assert!(!err.contains('\n'));
        let p = plan(
            "/provisioner/",
            &[desired("p-a", A)],
            &[
                existing("p-a", Some(A), 1, 0),
                existing("p-old", None, 3, 0),
            ],
            true,
        )
        .unwrap();
        assert_eq!(p.actions[1].change, Change::Prune);
        assert_eq!(p.actions[1].deletes_versions, ["v1", "v2"]);
    }

    #[test]
    fn an_unreadable_stored_document_is_stale_and_an_oversized_one_refused() {
        let p = plan(
            "/provisioner/",
            &[desired("p-a", A)],
            &[existing("p-a", None, 1, 0)],
            false,
        )
        .unwrap();
        assert_eq!(p.actions[0].change, Change::NewVersion);
        let big = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/{}/*"}}]}}"#,
            "x".repeat(6100)
        );
        let err = plan("/provisioner/", &[desired("p-big", &big)], &[], false).unwrap_err();
        assert!(err.contains("over IAM's 6144"), "{err}");
    }

    #[test]
    fn in_sync_when_all_unchanged() {
        let p = plan(
            "/provisioner/",
            &[desired("p-a", A)],
            &[existing("p-a", Some(A), 1, 0)],
            true,
        )
        .unwrap();
        assert!(p.in_sync() && !p.writes());
    }
}
