//! Managed session policies: where the statements of a session policy go when they do
//! not all fit in the 2,048 characters of the inline `Policy`.
//!
//! AssumeRole takes one inline policy plus up to ten managed policy ARNs (`PolicyArns`).
//! The session may do what the role allows *and* one of the session policies allows
//! (the intersection of the role's policies with the union of the session policies; see
//! README.md, "Managed session policies"). The layout:
//!
//! | part | goes to | shared by |
//! |---|---|---|
//! | platform folders without `{user}`/`{workspace}`, Bedrock | `PREFIX-platform` | every user |
//! | one data plane (objects, listing, Glue) | `PREFIX-plane-PLANE` | every user of the plane |
//! | several data planes, when a user has more planes than ARNs are left | `PREFIX-planes-HASH` (hash of the sorted plane ids) | users with the same plane set |
//! | platform folders with `{user}`/`{workspace}` | the inline policy | one user (one launch) |
//!
//! `PREFIX` is the IAM path's segments joined with `-` (`/provisioner/` gives
//! `provisioner`), because IAM policy names are unique per account whatever their path.
//! Names come from what a policy holds, never from its content: a changed plane becomes a
//! new version of the same policy, and identical inputs never change a name or document.
//!
//! The inline policy is never empty: with no per-user folders it holds one narrow
//! statement, so a server that ignores `PolicyArns` (Ceph radosgw documents none) grants
//! a narrower session, never the whole role.
//!
//! Everything here is pure: no I/O, no IAM. Launches never call IAM; `provisioner
//! policies sync` writes [`desired_managed_policies`] into IAM beforehand.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::{
    MAX_POLICY_CHARS, PolicyInput, SessionPolicy, build, finish, single_allow, statements,
};
use crate::model::{DataPlane, ManagedMode, Platform, S3Location, User};

/// IAM's limit on a managed policy document, whitespace not counted (we send none).
pub const MAX_MANAGED_POLICY_CHARS: usize = 6144;

/// STS's limit on `PolicyArns` in one AssumeRole.
pub const MAX_POLICY_ARNS: usize = 10;

/// IAM's limit on a policy name.
const MAX_POLICY_NAME_CHARS: usize = 128;

/// One managed session policy: its place in IAM and its document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy {
    /// The policy name (unique in the account, content-independent).
    pub name: String,
    /// The IAM path (`/provisioner/`).
    pub path: String,
    /// `arn:PARTITION:iam::ACCOUNT:policyPATHNAME`
    pub arn: String,
    /// The minified JSON document.
    pub document: String,
    /// Hex sha256 of `document`.
    pub sha256: String,
    /// What the document holds, in words ("data plane dp-marketing").
    pub holds: String,
}

impl ManagedPolicy {
    /// Characters of the minified document (IAM counts them against 6,144).
    pub fn chars(&self) -> usize {
        self.document.chars().count()
    }

    /// The document as a JSON value (for `explain --json`).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.document).unwrap_or(serde_json::Value::Null)
    }
}

/// Where one part of the session's permissions went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The part, in words ("data plane dp-marketing", "Bedrock").
    pub part: String,
    /// `inline`, or the name of the managed policy that holds it.
    pub policy: String,
}

/// The session policies of one launch: the inline document and the managed policies
/// passed by ARN (in `PolicyArns` order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLayout {
    pub inline: SessionPolicy,
    pub managed: Vec<ManagedPolicy>,
    pub placements: Vec<Placement>,
}

impl SessionLayout {
    /// The ARNs AssumeRole passes as `PolicyArns`.
    pub fn policy_arns(&self) -> Vec<String> {
        self.managed.iter().map(|m| m.arn.clone()).collect()
    }

    /// What we count against STS's 2,048 characters: the inline document plus the text
    /// of the ARNs. AWS says "the plaintext that you use for both inline and managed
    /// session policies can't exceed 2,048 characters" without saying whether stored
    /// documents count; we assume they do not (they live in IAM, up to 6,144 characters
    /// each) and count the ARNs, which are plaintext of the request.
    pub fn plaintext_chars(&self) -> usize {
        self.inline.chars() + self.managed.iter().map(|m| m.arn.len()).sum::<usize>()
    }
}

/// Everything the session policies of one user are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInput {
    pub partition: String,
    pub region: String,
    pub account_id: Option<String>,
    pub platform_bucket: Option<String>,
    /// Platform folders without `{user}` or `{workspace}`: the same for every user.
    pub shared_folders: Vec<S3Location>,
    /// Platform folders with `{user}` or `{workspace}`, filled in for this launch, each
    /// with the folder as configured.
    pub user_folders: Vec<(String, S3Location)>,
    /// The user's data planes.
    pub planes: Vec<DataPlane>,
    pub bedrock: bool,
    pub mode: ManagedMode,
    /// The IAM path of managed policies.
    pub path: String,
}

/// True when a configured platform folder differs per user or per launch.
pub fn is_per_user_folder(folder: &str) -> bool {
    folder.contains("{user}") || folder.contains("{workspace}")
}

impl SessionInput {
    /// The input for `user` of `platform`, with the per-user folders of one launch.
    pub fn new(
        platform: &Platform,
        user: &User,
        user_folders: Vec<(String, S3Location)>,
    ) -> SessionInput {
        let shared_folders = match &platform.aws.platform_bucket {
            Some(bucket) => platform
                .settings
                .session_policy_platform_folders
                .iter()
                .filter(|f| !is_per_user_folder(f))
                .map(|f| S3Location {
                    bucket: bucket.clone(),
                    prefix: format!("{f}/"),
                })
                .collect(),
            None => Vec::new(),
        };
        SessionInput {
            partition: platform.aws.partition().to_string(),
            region: platform.aws.region.clone(),
            account_id: platform.aws.account_id.clone(),
            platform_bucket: platform.aws.platform_bucket.clone(),
            shared_folders,
            user_folders,
            planes: user
                .data_planes
                .iter()
                .filter_map(|id| platform.data_planes.get(id))
                .cloned()
                .collect(),
            bedrock: platform.settings.session_policy_bedrock,
            mode: platform.settings.session_policy_managed,
            path: platform.aws.managed_policy_path.clone(),
        }
    }

    fn input(
        &self,
        s3: Vec<S3Location>,
        folders: Vec<S3Location>,
        glue: Vec<String>,
        bedrock: bool,
    ) -> PolicyInput {
        PolicyInput {
            partition: self.partition.clone(),
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            s3,
            platform_folders: folders,
            glue_databases: glue,
            bedrock,
        }
    }

    /// Everything in one document: the inline-only policy.
    pub fn inline_only(&self) -> PolicyInput {
        let planes: Vec<&DataPlane> = self.planes.iter().collect();
        let (s3, glue) = plane_parts(&planes);
        let folders = self
            .shared_folders
            .iter()
            .cloned()
            .chain(self.user_folders.iter().map(|(_, l)| l.clone()))
            .collect();
        self.input(s3, folders, glue, self.bedrock)
    }

    /// Places every part of the session and checks every limit; `Err` says which limit
    /// a session that cannot be scoped goes over (the caller's OVER_LIMIT detail).
    pub fn layout(&self) -> Result<SessionLayout, String> {
        let inline_only = build(&self.inline_only());
        let over_inline = || {
            format!(
                "the session policy is {} characters, over the {MAX_POLICY_CHARS} limit",
                inline_only.chars()
            )
        };
        match self.mode {
            ManagedMode::Never if inline_only.fits() => return Ok(self.all_inline(inline_only)),
            ManagedMode::Never => {
                return Err(format!(
                    "{}, and session_policy_managed is \"never\"",
                    over_inline()
                ));
            }
            ManagedMode::Auto if inline_only.fits() => return Ok(self.all_inline(inline_only)),
            ManagedMode::Auto | ManagedMode::Always if self.account_id.is_none() => {
                return Err(format!(
                    "{}; managed session policies need aws.account_id",
                    over_inline()
                ));
            }
            _ => {}
        }
        let managed = self.managed_set()?;
        if managed.is_empty() {
            // Nothing is shared between users: the inline policy is all there is.
            return if inline_only.fits() {
                Ok(self.all_inline(inline_only))
            } else {
                Err(over_inline())
            };
        }
        let (inline, mut placements) = self.inline_part();
        for m in &managed {
            for part in m.holds.split("; ") {
                placements.push(Placement {
                    part: part.to_string(),
                    policy: m.name.clone(),
                });
            }
        }
        let layout = SessionLayout {
            inline,
            managed,
            placements,
        };
        if layout.plaintext_chars() > MAX_POLICY_CHARS {
            return Err(format!(
                "the inline session policy ({} characters) and {} policy ARNs ({} characters) are {} characters, over the {MAX_POLICY_CHARS} limit",
                layout.inline.chars(),
                layout.managed.len(),
                layout.plaintext_chars() - layout.inline.chars(),
                layout.plaintext_chars()
            ));
        }
        Ok(layout)
    }

    fn all_inline(&self, inline: SessionPolicy) -> SessionLayout {
        let mut placements = Vec::new();
        for (folder, loc) in &self.user_folders {
            placements.push(Placement {
                part: format!("platform folder {folder} ({loc})"),
                policy: "inline".into(),
            });
        }
        placements.extend(self.shared_parts().into_iter().map(|part| Placement {
            part,
            policy: "inline".into(),
        }));
        for p in self.sorted_planes() {
            placements.push(Placement {
                part: format!("data plane {}", p.id),
                policy: "inline".into(),
            });
        }
        SessionLayout {
            inline,
            managed: Vec::new(),
            placements,
        }
    }

    /// The parts of the platform policy, in words.
    fn shared_parts(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if !self.shared_folders.is_empty() {
            let names: Vec<String> = self
                .shared_folders
                .iter()
                .map(|l| l.prefix.trim_end_matches('/').to_string())
                .collect();
            parts.push(format!("platform folders {}", names.join(", ")));
        }
        if self.bedrock {
            parts.push("Bedrock".into());
        }
        parts
    }

    /// The user's planes that allow something, by id, each once.
    fn sorted_planes(&self) -> Vec<&DataPlane> {
        let by_id: BTreeMap<&str, &DataPlane> = self
            .planes
            .iter()
            .filter(|p| !p.s3.is_empty() || !p.glue_databases.is_empty())
            .map(|p| (p.id.as_str(), p))
            .collect();
        by_id.into_values().collect()
    }

    /// The per-user inline policy of the managed layout, and what it holds.
    fn inline_part(&self) -> (SessionPolicy, Vec<Placement>) {
        let folders: Vec<S3Location> = self.user_folders.iter().map(|(_, l)| l.clone()).collect();
        let st = statements(&self.input(Vec::new(), folders, Vec::new(), false));
        let mut placements: Vec<Placement> = self
            .user_folders
            .iter()
            .map(|(folder, loc)| Placement {
                part: format!("platform folder {folder} ({loc})"),
                policy: "inline".into(),
            })
            .collect();
        if !st.is_empty() {
            return (finish(&st), placements);
        }
        // Nothing per user: one statement that reveals no more than a bucket's region,
        // so that a server ignoring PolicyArns gives almost nothing rather than the role.
        // "-" is no valid bucket name: without any bucket the statement matches nothing.
        let bucket = self
            .platform_bucket
            .clone()
            .or_else(|| {
                self.sorted_planes()
                    .iter()
                    .flat_map(|p| p.s3.iter())
                    .map(|l| l.bucket.clone())
                    .min()
            })
            .unwrap_or_else(|| "-".into());
        placements.push(Placement {
            part: format!(
                "narrow statement (s3:GetBucketLocation on {bucket}): a server that ignores PolicyArns grants no more"
            ),
            policy: "inline".into(),
        });
        (
            single_allow(
                "s3:GetBucketLocation",
                format!("arn:{}:s3:::{bucket}", self.partition),
            ),
            placements,
        )
    }

    /// The managed policies of this user: the platform policy, then one per data plane,
    /// or bundles of planes when there are more planes than ARNs left. The same for
    /// every launch of the user (per-launch parts stay inline).
    pub fn managed_set(&self) -> Result<Vec<ManagedPolicy>, String> {
        let Some(account) = self.account_id.as_deref() else {
            return Ok(Vec::new());
        };
        let prefix = name_prefix(&self.path);
        let mut out = Vec::new();
        let shared = self.shared_parts();
        if !shared.is_empty() {
            let doc = build(&self.input(
                Vec::new(),
                self.shared_folders.clone(),
                Vec::new(),
                self.bedrock,
            ));
            out.push(self.managed(
                account,
                format!("{prefix}-platform"),
                doc,
                shared.join("; "),
            ));
        }
        let planes = self.sorted_planes();
        let slots = MAX_POLICY_ARNS - out.len();
        let groups: Vec<Vec<&DataPlane>> = if planes.len() <= slots {
            planes.iter().map(|p| vec![*p]).collect()
        } else {
            self.bundles(&planes)
        };
        if out.len() + groups.len() > MAX_POLICY_ARNS {
            return Err(format!(
                "the {} data planes need {} managed policies of at most {MAX_MANAGED_POLICY_CHARS} characters{}, over the {MAX_POLICY_ARNS} policy ARNs STS accepts",
                planes.len(),
                groups.len(),
                if out.is_empty() {
                    ""
                } else {
                    " besides the platform policy"
                }
            ));
        }
        for group in groups {
            let (name, holds) = match group.as_slice() {
                [one] => (
                    iam_name(format!("{prefix}-plane-{}", one.id), &one.id),
                    format!("data plane {}", one.id),
                ),
                many => {
                    let ids: Vec<&str> = many.iter().map(|p| p.id.as_str()).collect();
                    let digest = hex::encode(Sha256::digest(ids.join("\n").as_bytes()));
                    (
                        format!("{prefix}-planes-{}", &digest[..16]),
                        ids.iter()
                            .map(|id| format!("data plane {id}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                }
            };
            let (s3, glue) = plane_parts(&group);
            let doc = build(&self.input(s3, Vec::new(), glue, false));
            out.push(self.managed(account, name, doc, holds));
        }
        if let Some(m) = out.iter().find(|m| m.chars() > MAX_MANAGED_POLICY_CHARS) {
            return Err(format!(
                "managed session policy {} ({}) is {} characters, over the {MAX_MANAGED_POLICY_CHARS} limit",
                m.name,
                m.holds.replace("; ", ", "),
                m.chars()
            ));
        }
        Ok(out)
    }

    /// Sorted planes packed in order into documents of at most 6,144 characters.
    fn bundles<'a>(&self, planes: &[&'a DataPlane]) -> Vec<Vec<&'a DataPlane>> {
        let mut groups: Vec<Vec<&DataPlane>> = Vec::new();
        let mut current: Vec<&DataPlane> = Vec::new();
        for p in planes {
            current.push(p);
            if current.len() > 1 {
                let (s3, glue) = plane_parts(&current);
                if build(&self.input(s3, Vec::new(), glue, false)).chars()
                    > MAX_MANAGED_POLICY_CHARS
                {
                    current.pop();
                    groups.push(std::mem::take(&mut current));
                    current.push(p);
                }
            }
        }
        if !current.is_empty() {
            groups.push(current);
        }
        groups
    }

    fn managed(
        &self,
        account: &str,
        name: String,
        doc: SessionPolicy,
        holds: String,
    ) -> ManagedPolicy {
        ManagedPolicy {
            arn: format!(
                "arn:{}:iam::{account}:policy{}{name}",
                self.partition, self.path
            ),
            name,
            path: self.path.clone(),
            document: doc.json().to_string(),
            sha256: doc.sha256().to_string(),
            holds,
        }
    }
}

fn plane_parts(planes: &[&DataPlane]) -> (Vec<S3Location>, Vec<String>) {
    let s3 = planes.iter().flat_map(|p| p.s3.iter().cloned()).collect();
    let glue = planes
        .iter()
        .flat_map(|p| p.glue_databases.iter().cloned())
        .collect();
    (s3, glue)
}

/// The name prefix for policies under `path`: its segments joined with `-`, or
/// `provisioner` for `/`.
fn name_prefix(path: &str) -> String {
    let joined = path
        .split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if joined.is_empty() {
        "provisioner".into()
    } else {
        joined
    }
}

/// `base` if it is a usable IAM policy name. IAM names are unique without regard to
/// case and at most 128 characters: a name with upper case or over the limit is
/// lowered, cut and given a hash of `key`, so that distinct keys keep distinct names.
fn iam_name(base: String, key: &str) -> String {
    if base.len() <= MAX_POLICY_NAME_CHARS && !base.bytes().any(|b| b.is_ascii_uppercase()) {
        return base;
    }
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    let keep: String = base
        .to_ascii_lowercase()
        .chars()
        .take(MAX_POLICY_NAME_CHARS - 9)
        .collect();
    format!("{keep}-{}", &hash[..8])
}

/// Every managed session policy any launch of `platform` may pass: the union of the
/// managed sets of every user who can take the session-policy tier (System Admins
/// cannot), whether or not their policy fits inline today (the inline size depends on
/// the workspace of a launch). Sorted by ARN, no duplicates. Empty when
/// `session_policy_managed` is `never` or `aws.account_id` is unset. Users whose
/// managed set goes over a limit contribute nothing (their launches are OVER_LIMIT,
/// which `provisioner audit` reports).
pub fn desired_managed_policies(platform: &Platform) -> Vec<ManagedPolicy> {
    if platform.settings.session_policy_managed == ManagedMode::Never
        || platform.aws.account_id.is_none()
    {
        return Vec::new();
    }
    let mut by_arn: BTreeMap<String, ManagedPolicy> = BTreeMap::new();
    for user in platform.users.values().filter(|u| !u.system_admin) {
        let input = SessionInput::new(platform, user, Vec::new());
        if let Ok(set) = input.managed_set() {
            for m in set {
                by_arn.entry(m.arn.clone()).or_insert(m);
            }
        }
    }
    by_arn.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_str;

    const DOMAINS: &[&str] = &[
        "marketing",
        "finance",
        "sales",
        "supply-chain",
        "customer-care",
        "risk",
    ];

    /// A platform with realistic planes (two S3 locations, two Glue databases each) and
    /// user `u` holding the first `n` of them.
    fn platform(n: usize, extra_settings: &str, extra_aws: &str) -> Platform {
        let planes: Vec<String> = (0..n.max(1))
            .map(|i| {
                let d = format!("{}{}", DOMAINS[i % DOMAINS.len()], i / DOMAINS.len());
                let db = d.replace('-', "_");
                format!(
                    r#"{{"id": "dp-{d}", "s3": ["s3://acme-datalake-prod/{d}/curated/", "s3://acme-datalake-raw/{d}/landing/"], "glue_databases": ["{db}_curated", "{db}_raw"]}}"#
                )
            })
            .collect();
        let ids: Vec<String> = (0..n)
            .map(|i| format!("\"dp-{}{}\"", DOMAINS[i % DOMAINS.len()], i / DOMAINS.len()))
            .collect();
        let json = format!(
            r#"{{"settings": {{"syntasa_session_policy_enabled": "true"{extra_settings}}},
                "aws": {{"region": "us-east-1", "account_id": "123456789012",
                         "session_policy_role_arn": "arn:aws:iam::123456789012:role/PlatformInfraRole",
                         "platform_bucket": "acme-platform"{extra_aws}}},
                "data_planes": [{}],
                "users": [{{"id": "u", "data_planes": [{}]}}, {{"id": "root", "data_planes": [{}], "system_admin": true}}]}}"#,
            planes.join(","),
            ids.join(","),
            ids.join(",")
        );
        load_str(&json, "p.json", &|_: &str| None).unwrap()
    }

    fn input(p: &Platform) -> SessionInput {
        SessionInput::new(p, &p.users["u"], Vec::new())
    }

    #[test]
    fn a_user_that_fits_inline_keeps_the_inline_policy_alone() {
        let p = platform(0, "", "");
        let i = input(&p);
        let l = i.layout().unwrap();
        assert!(l.managed.is_empty());
        assert_eq!(l.inline, build(&i.inline_only()));
        assert!(l.placements.iter().all(|pl| pl.policy == "inline"));
    }

    #[test]
    fn three_realistic_planes_go_to_one_managed_policy_each_beside_the_platform_policy() {
        let p = platform(3, "", "");
        let l = input(&p).layout().unwrap();
        let names: Vec<&str> = l.managed.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "provisioner-platform",
                "provisioner-plane-dp-finance0",
                "provisioner-plane-dp-marketing0",
                "provisioner-plane-dp-sales0"
            ]
        );
        assert_eq!(
            l.policy_arns()[1],
            "arn:aws:iam::123456789012:policy/provisioner/provisioner-plane-dp-finance0"
        );
        // Nothing per user: the inline policy is one narrow statement, never empty.
        assert_eq!(
            l.inline.json(),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetBucketLocation","Resource":"arn:aws:s3:::acme-platform"}]}"#
        );
        let plane = &l.managed[1];
        assert!(plane.document.contains("database/finance0_curated"));
        assert!(!plane.document.contains("marketing"));
        assert!(!plane.document.contains("bedrock"));
        assert!(l.managed[0].document.contains("bedrock:InvokeModel*"));
        assert!(l.managed[0].document.contains("syn-workspace/*"));
        assert_eq!(
            plane.sha256,
            hex::encode(Sha256::digest(plane.document.as_bytes()))
        );
        assert!(l.plaintext_chars() <= MAX_POLICY_CHARS);
    }

    #[test]
    fn forty_planes_are_bundled_within_ten_arns_and_6144_characters() {
        let p = platform(40, "", "");
        let l = input(&p).layout().unwrap();
        assert!(l.managed.len() <= MAX_POLICY_ARNS, "{}", l.managed.len());
        assert!(
            l.managed
                .iter()
                .all(|m| m.chars() <= MAX_MANAGED_POLICY_CHARS)
        );
        assert!(
            l.managed[1..]
                .iter()
                .all(|m| m.name.starts_with("provisioner-planes-"))
        );
        for dp in p.data_planes.values() {
            for db in &dp.glue_databases {
                let needle = format!("database/{db}\"");
                assert_eq!(
                    l.managed
                        .iter()
                        .filter(|m| m.document.contains(&needle))
                        .count(),
                    1,
                    "{db}"
                );
            }
        }
    }

    #[test]
    fn never_keeps_the_inline_limit_and_says_so() {
        let p = platform(3, r#", "session_policy_managed": "never""#, "");
        let e = input(&p).layout().unwrap_err();
        assert!(
            e.contains("over the 2048 limit") && e.contains("\"never\""),
            "{e}"
        );
    }

    #[test]
    fn always_uses_managed_policies_even_for_a_small_user() {
        let p = platform(1, r#", "session_policy_managed": "always""#, "");
        let l = input(&p).layout().unwrap();
        assert_eq!(l.managed.len(), 2);
    }

    #[test]
    fn per_user_folders_stay_inline_and_shared_folders_go_to_the_platform_policy() {
        let p = platform(
            3,
            r#", "session_policy_platform_folders": "syn-app-logs,syn-file-uploads/{user}""#,
            "",
        );
        let loc = S3Location::parse("s3://acme-platform/syn-file-uploads/u/").unwrap();
        let i = SessionInput::new(
            &p,
            &p.users["u"],
            vec![("syn-file-uploads/{user}".into(), loc)],
        );
        let l = i.layout().unwrap();
        assert!(
            l.inline
                .json()
                .contains("acme-platform/syn-file-uploads/u/*")
        );
        assert!(!l.inline.json().contains("syn-app-logs"));
        assert!(l.managed[0].document.contains("syn-app-logs/*"));
        assert!(
            !l.managed
                .iter()
                .any(|m| m.document.contains("syn-file-uploads"))
        );
    }

    #[test]
    fn desired_policies_are_sorted_unique_deterministic_and_skip_admins() {
        let p = platform(40, "", "");
        let a = desired_managed_policies(&p);
        let b = desired_managed_policies(&p);
        assert_eq!(a, b);
        let arns: Vec<&str> = a.iter().map(|m| m.arn.as_str()).collect();
        let mut sorted = arns.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(arns, sorted);
        let launch = input(&p).layout().unwrap().policy_arns();
        assert!(launch.iter().all(|arn| arns.contains(&arn.as_str())));
        let never = platform(40, r#", "session_policy_managed": "never""#, "");
        assert!(desired_managed_policies(&never).is_empty());
    }

    #[test]
    fn a_changed_plane_keeps_its_name_with_a_new_document() {
        let p = platform(3, "", "");
        let mut changed = p.clone();
        changed
            .data_planes
            .get_mut("dp-sales0")
            .unwrap()
            .glue_databases
            .push("sales_extra".into());
        let before = input(&p).layout().unwrap();
        let after = input(&changed).layout().unwrap();
        assert_eq!(before.policy_arns(), after.policy_arns());
        assert_ne!(before.managed[3].document, after.managed[3].document);
        assert_eq!(before.managed[1], after.managed[1]);
    }

    #[test]
    fn names_are_case_safe_bounded_and_follow_the_path() {
        assert_eq!(iam_name("p-plane-dp-a".into(), "dp-a"), "p-plane-dp-a");
        let upper = iam_name("p-plane-dp-A".into(), "dp-A");
        assert!(upper.starts_with("p-plane-dp-a-") && upper.len() == "p-plane-dp-a".len() + 9);
        assert_ne!(upper, iam_name("p-plane-dp-a".into(), "dp-a"));
        let long = iam_name(format!("p-plane-{}", "x".repeat(200)), "k");
        assert_eq!(long.len(), MAX_POLICY_NAME_CHARS);
        assert_eq!(name_prefix("/"), "provisioner");
        assert_eq!(name_prefix("/platform/prod/"), "platform-prod");
        let p = platform(3, "", r#", "managed_policy_path": "/platform/prod/""#);
        let l = input(&p).layout().unwrap();
        assert_eq!(
            l.policy_arns()[0],
            "arn:aws:iam::123456789012:policy/platform/prod/platform-prod-platform"
        );
    }

    #[test]
    fn without_an_account_id_auto_is_over_the_limit_with_the_reason() {
        let mut p = platform(3, "", "");
        p.aws.account_id = None;
        let e = input(&p).layout().unwrap_err();
        assert!(e.contains("aws.account_id"), "{e}");
    }
}
