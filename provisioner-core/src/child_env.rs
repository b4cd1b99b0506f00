//! The environment the child program starts with (README.md, "What the kernel's environment holds").
//!
//! [`ChildEnv::for_launch`] turns the launcher's raw environment (every `environ`
//! entry, in order, duplicates included: `std::env::vars_os()` on Linux keeps them) and
//! the launch's decision and credentials into the exact list handed to `execve`.
//!
//! Rules, in the order they apply:
//!
//! 1. **Credentials present** (minted by STS, or static keys): every entry of every
//!    name in [`SET_WHEN_CREDENTIALS`], [`REMOVED_WHEN_CREDENTIALS`] and [`MARKER`] is
//!    removed, not only the first one, because a process reading its environment with a
//!    different library may pick a different duplicate. Then `AWS_ACCESS_KEY_ID`,
//!    `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (only when the identity has one),
//!    `AWS_CREDENTIAL_EXPIRATION` (only when it expires), `AWS_REGION`,
//!    `AWS_DEFAULT_REGION`, `AWS_EC2_METADATA_DISABLED=true` and the marker are
//!    appended in that order. A token or expiry left over from the parent is therefore
//!    gone when the identity has none: a stale token would be sent with static keys and
//!    rejected, a stale expiry would make botocore treat the keys as expired.
//! 2. **Default tier** (`Plan::Ambient`, no credentials): the environment is kept as it
//!    is, except that every old marker entry is replaced by the new one. The child keeps
//!    the cluster's own credential chain, which is what the default tier means.
//! 3. **A plan that needed credentials but got none, or a refusal** (a caller bug: the
//!    launcher never execs in those cases): fail closed. Every credential source is
//!    removed as in rule 1, the metadata service is disabled, and no marker is set, so
//!    a child started anyway has no AWS identity at all rather than a broader one.
//!
//! Entries that are not touched keep their relative order, and duplicates of untouched
//! names are passed through as they are.
//!
//! The marker ([`MARKER`], format in [`Marker`]) tells `spark-submit-wrap` running
//! inside the kernel that the process was already provisioned.
//!
//! This module never logs, and its `Debug` output never shows a value from the
//! environment: the list holds the secret key and the session token.

use std::ffi::{OsStr, OsString};
use std::fmt;

use crate::credentials::{
    AWS_EC2_METADATA_DISABLED, Credentials, REMOVED_WHEN_CREDENTIALS, SET_WHEN_CREDENTIALS,
};
use crate::decision::{Decision, Plan};
use crate::marker::{MARKER, Marker};

/// The child's complete environment, in order, duplicates preserved unless removed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChildEnv {
    vars: Vec<(OsString, OsString)>,
}

impl fmt::Debug for ChildEnv {
    /// Names only: values include the secret key and the session token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildEnv")
            .field(
                "names",
                &self
                    .vars
                    .iter()
                    .map(|(k, _)| k.to_string_lossy())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ChildEnv {
    /// Builds the child's environment from the parent's raw entries (module docs give
    /// the rules).
    pub fn for_launch(
        parent: Vec<(OsString, OsString)>,
        decision: &Decision,
        creds: Option<&Credentials>,
        region: &str,
    ) -> ChildEnv {
        let mut env = ChildEnv { vars: parent };
        match (creds, &decision.plan) {
            (Some(c), _) => {
                env.remove_credential_sources();
                for (name, value) in c.launch_vars(Some(region)) {
                    env.push(name, &value);
                }
                env.push(MARKER, &Marker::for_launch(decision, creds).to_string());
            }
            (None, Plan::Ambient) => {
                env.remove_all(MARKER);
                env.push(MARKER, &Marker::for_launch(decision, None).to_string());
            }
            (None, Plan::AssumeRole(_) | Plan::StaticKeys(_) | Plan::Refused(_)) => {
                env.remove_credential_sources();
                env.push(AWS_EC2_METADATA_DISABLED, "true");
            }
        }
        env
    }

    /// The child's environment for endpoint delivery (README.md, "Long-running kernels
    /// and jobs"): no keys, the SDKs fetch and refresh them from the broker.
    ///
    /// Every credential source is removed as with keys (rule 1 of the module docs), and
    /// so is every other `AWS_CONTAINER_*` entry; then
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` (the endpoint's URL),
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (`token_file`, written by
    /// [`crate::container::write_token_file`]), `AWS_REGION`, `AWS_DEFAULT_REGION`,
    /// `AWS_EC2_METADATA_DISABLED=true` and the marker (tier and user, no expiry: the
    /// credentials are renewed behind it) are appended in that order. The token itself
    /// is never put in the environment (the Java SDK would prefer the variable to the
    /// file, and the file can be read afresh).
    pub fn for_endpoint(
        parent: Vec<(OsString, OsString)>,
        decision: &Decision,
        url: &str,
        token_file: &std::path::Path,
        region: &str,
    ) -> ChildEnv {
        let mut env = ChildEnv { vars: parent };
        env.remove_credential_sources();
        env.vars.retain(|(k, _)| {
            !k.as_encoded_bytes()
                .starts_with(crate::container::PREFIX.as_bytes())
        });
        env.push(crate::container::FULL_URI, url);
        env.vars.push((
            crate::container::TOKEN_FILE.into(),
            token_file.as_os_str().to_owned(),
        ));
        env.push(crate::credentials::AWS_REGION, region);
        env.push(crate::credentials::AWS_DEFAULT_REGION, region);
        env.push(AWS_EC2_METADATA_DISABLED, "true");
        env.push(MARKER, &Marker::for_launch(decision, None).to_string());
        env
    }

    /// An environment taken as is (for callers that build the list themselves).
    pub fn from_vars(vars: Vec<(OsString, OsString)>) -> ChildEnv {
        ChildEnv { vars }
    }

    pub fn vars(&self) -> &[(OsString, OsString)] {
        &self.vars
    }

    /// The last entry for `name` (what getenv would return).
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// Removes every entry that could carry or point at an identity, and the marker.
    fn remove_credential_sources(&mut self) {
        self.vars.retain(|(k, _)| {
            !(k == MARKER
                || SET_WHEN_CREDENTIALS.iter().any(|n| k == n)
                || REMOVED_WHEN_CREDENTIALS.iter().any(|n| k == n))
        });
    }

    fn remove_all(&mut self, name: &str) {
        self.vars.retain(|(k, _)| k != name);
    }

    fn push(&mut self, name: &str, value: &str) {
        self.vars.push((name.into(), value.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Flow, LaunchContext};
    use crate::decision::Tier;
    use crate::decision::{AssumeRolePlan, DefaultReason, Refusal, RefusalCode, StaticKeysPlan};
    use crate::model::{RoleArn, SecretRef};
    use std::time::{Duration, UNIX_EPOCH};

    const EXP_SECS: u64 = 1_795_384_800; // 2026-11-22T22:00:00Z

    fn ctx() -> LaunchContext {
        LaunchContext {
            flow: Flow::Notebook,
            user: "alice".into(),
            workspace: None,
            runtime_template: None,
            job_id: None,
        }
    }

    fn decision(tier: Tier, plan: Plan) -> Decision {
        Decision {
            context: ctx(),
            tier,
            reason: (tier == Tier::Default).then_some(DefaultReason::Disabled),
            skipped: vec![],
            warnings: vec![],
            plan,
        }
    }

    fn assume_role() -> Decision {
        decision(
            Tier::SessionPolicy,
            Plan::AssumeRole(AssumeRolePlan {
                service_account: None,
                role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/PlatformInfraRole")
                    .unwrap(),
                session_name: "alice".into(),
                duration_seconds: 43200,
                external_id: None,
                policy: None,
                policy_arns: vec![],
                managed_policies: vec![],
                placements: vec![],
                source_identity: None,
                tags: vec![],
            }),
        )
    }

    fn static_keys() -> Decision {
        decision(
            Tier::RuntimeTemplateSa,
            Plan::StaticKeys(StaticKeysPlan {
                service_account: "sa-legacy".into(),
                access_key_id: SecretRef::Env("K".into()),
                secret_access_key: SecretRef::Env("S".into()),
            }),
        )
    }

    fn ambient() -> Decision {
        decision(Tier::Default, Plan::Ambient)
    }

    fn sts_creds() -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "secret/value".into(),
            session_token: Some("token-value".into()),
            expiration: Some(UNIX_EPOCH + Duration::from_secs(EXP_SECS)),
        }
    }

    fn key_creds() -> Credentials {
        Credentials {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "static-secret".into(),
            session_token: None,
            expiration: None,
        }
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        list.iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn pairs(env: &ChildEnv) -> Vec<(String, String)> {
        env.vars()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    fn count(env: &ChildEnv, name: &str) -> usize {
        env.vars().iter().filter(|(k, _)| k == name).count()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn minted_credentials_are_appended_in_order_after_untouched_entries() {
        let parent = vars(&[
            ("PATH", "/usr/bin"),
            ("AWS_ACCESS_KEY_ID", "OLD"),
            ("HOME", "/home/alice"),
            ("AWS_SECRET_ACCESS_KEY", "OLD"),
        ]);
        let env = ChildEnv::for_launch(parent, &assume_role(), Some(&sts_creds()), "eu-west-1");
        assert_eq!(
            pairs(&env),
            owned(&[
                ("PATH", "/usr/bin"),
                ("HOME", "/home/alice"),
                ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "secret/value"),
                ("AWS_SESSION_TOKEN", "token-value"),
                ("AWS_CREDENTIAL_EXPIRATION", "2026-11-22T22:00:00Z"),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                (
                    "SYN_PROVISIONED",
                    "tier=session_policy;expiration=2026-11-22T22:00:00Z;user=alice"
                ),
            ])
        );
    }

    #[test]
    fn every_duplicate_of_a_set_name_is_removed() {
        let parent = vars(&[
            ("AWS_ACCESS_KEY_ID", "OLD1"),
            ("AWS_REGION", "us-west-2"),
            ("AWS_ACCESS_KEY_ID", "OLD2"),
            ("AWS_SESSION_TOKEN", "OLDTOKEN1"),
            ("AWS_EC2_METADATA_DISABLED", "false"),
            ("AWS_SESSION_TOKEN", "OLDTOKEN2"),
            ("SYN_PROVISIONED", "tier=default;user=bob"),
            ("AWS_CREDENTIAL_EXPIRATION", "2000-01-01T00:00:00Z"),
            ("SYN_PROVISIONED", "tier=default;user=carol"),
        ]);
        let env = ChildEnv::for_launch(parent, &assume_role(), Some(&sts_creds()), "eu-west-1");
        for name in SET_WHEN_CREDENTIALS.iter().chain([&MARKER]) {
            assert_eq!(count(&env, name), 1, "{name}");
        }
        assert_eq!(
            env.get("AWS_ACCESS_KEY_ID"),
            Some(OsStr::new("ASIAEXAMPLE"))
        );
        assert_eq!(
            env.get("AWS_SESSION_TOKEN"),
            Some(OsStr::new("token-value"))
        );
        assert_eq!(env.get("AWS_REGION"), Some(OsStr::new("eu-west-1")));
        assert_eq!(
            env.get("AWS_EC2_METADATA_DISABLED"),
            Some(OsStr::new("true"))
        );
        let text = format!("{:?}", pairs(&env));
        for old in [
            "OLD1",
            "OLD2",
            "OLDTOKEN",
            "us-west-2",
            "2000-01-01",
            "bob",
            "carol",
        ] {
            assert!(!text.contains(old), "{old} survived: {text}");
        }
    }

    #[test]
    fn static_keys_remove_every_inherited_session_token_and_expiry() {
        let parent = vars(&[
            ("AWS_SESSION_TOKEN", "T1"),
            ("X", "1"),
            ("AWS_SESSION_TOKEN", "T2"),
            ("AWS_CREDENTIAL_EXPIRATION", "2030-01-01T00:00:00Z"),
        ]);
        let env = ChildEnv::for_launch(parent, &static_keys(), Some(&key_creds()), "us-east-1");
        assert_eq!(count(&env, "AWS_SESSION_TOKEN"), 0);
        assert_eq!(count(&env, "AWS_CREDENTIAL_EXPIRATION"), 0);
        assert_eq!(
            env.get("AWS_ACCESS_KEY_ID"),
            Some(OsStr::new("AKIAEXAMPLE"))
        );
        assert_eq!(
            env.get("AWS_SECRET_ACCESS_KEY"),
            Some(OsStr::new("static-secret"))
        );
        assert_eq!(
            env.get(MARKER),
            Some(OsStr::new("tier=runtime_template_sa;user=alice"))
        );
        assert_eq!(env.vars()[0], ("X".into(), "1".into()));
    }

    #[test]
    fn every_listed_credential_source_is_removed_with_its_duplicates() {
        let mut list: Vec<(OsString, OsString)> = Vec::new();
        for name in REMOVED_WHEN_CREDENTIALS {
            list.push(((*name).into(), "a".into()));
            list.push(("KEEP".into(), (*name).into()));
            list.push(((*name).into(), "b".into()));
        }
        for (d, c) in [(assume_role(), sts_creds()), (static_keys(), key_creds())] {
            let env = ChildEnv::for_launch(list.clone(), &d, Some(&c), "us-east-1");
            for name in REMOVED_WHEN_CREDENTIALS {
                assert_eq!(count(&env, name), 0, "{name} survived");
            }
            // Untouched entries keep their number and order, duplicates included.
            let kept: Vec<&OsString> = env
                .vars()
                .iter()
                .filter(|(k, _)| k == "KEEP")
                .map(|(_, v)| v)
                .collect();
            let expected: Vec<OsString> = REMOVED_WHEN_CREDENTIALS
                .iter()
                .map(|n| (*n).into())
                .collect();
            assert_eq!(kept, expected.iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn names_that_only_share_a_prefix_are_kept() {
        let parent = vars(&[
            ("AWS_PROFILE_X", "1"),
            ("aws_profile", "2"),
            ("MY_AWS_PROFILE", "3"),
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000"),
        ]);
        let env = ChildEnv::for_launch(
            parent.clone(),
            &assume_role(),
            Some(&sts_creds()),
            "us-east-1",
        );
        assert_eq!(&env.vars()[..4], &parent[..]);
    }

    #[test]
    fn default_tier_keeps_the_environment_and_replaces_the_marker() {
        let parent = vars(&[
            ("AWS_PROFILE", "dev"),
            ("SYN_PROVISIONED", "tier=session_policy;user=bob"),
            ("AWS_SESSION_TOKEN", "ambient-token"),
            ("PATH", "/bin"),
            ("PATH", "/usr/bin"),
            ("SYN_PROVISIONED", "tier=workspace_sa;user=bob"),
        ]);
        let env = ChildEnv::for_launch(parent, &ambient(), None, "us-east-1");
        assert_eq!(
            pairs(&env),
            owned(&[
                ("AWS_PROFILE", "dev"),
                ("AWS_SESSION_TOKEN", "ambient-token"),
                ("PATH", "/bin"),
                ("PATH", "/usr/bin"),
                ("SYN_PROVISIONED", "tier=default;user=alice"),
            ])
        );
    }

    #[test]
    fn missing_credentials_for_a_minting_plan_leave_no_identity() {
        let parent = vars(&[
            ("AWS_PROFILE", "dev"),
            ("AWS_ACCESS_KEY_ID", "AMBIENT"),
            ("SYN_PROVISIONED", "tier=default;user=bob"),
            ("HOME", "/h"),
        ]);
        let refused = decision(
            Tier::SessionPolicy,
            Plan::Refused(Refusal {
                code: RefusalCode::OverLimit,
                message: "m".into(),
                fix: "f".into(),
                exit_code: 3,
            }),
        );
        for d in [assume_role(), static_keys(), refused] {
            let env = ChildEnv::for_launch(parent.clone(), &d, None, "us-east-1");
            assert_eq!(
                pairs(&env),
                owned(&[("HOME", "/h"), ("AWS_EC2_METADATA_DISABLED", "true")])
            );
        }
    }

    #[test]
    fn endpoint_delivery_sets_the_endpoint_and_the_token_file_and_no_key() {
        let parent = vars(&[
            ("PATH", "/bin"),
            ("AWS_ACCESS_KEY_ID", "OLD"),
            ("AWS_SECRET_ACCESS_KEY", "OLD"),
            ("AWS_SESSION_TOKEN", "OLD"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://evil/"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "inherited"),
            ("AWS_CONTAINER_SOMETHING_NEW", "x"),
            ("AWS_PROFILE", "dev"),
            ("SYN_PROVISIONED", "tier=default;user=bob"),
        ]);
        let env = ChildEnv::for_endpoint(
            parent,
            &assume_role(),
            "http://127.0.0.1:8125/v1/credentials/abc",
            std::path::Path::new("/run/user/1000/provisioner/abc.token"),
            "eu-west-1",
        );
        assert_eq!(
            pairs(&env),
            owned(&[
                ("PATH", "/bin"),
                (
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "http://127.0.0.1:8125/v1/credentials/abc"
                ),
                (
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                    "/run/user/1000/provisioner/abc.token"
                ),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("SYN_PROVISIONED", "tier=session_policy;user=alice"),
            ])
        );
    }

    #[test]
    fn debug_output_shows_names_only() {
        let env = ChildEnv::for_launch(vec![], &assume_role(), Some(&sts_creds()), "us-east-1");
        let dbg = format!("{env:?}");
        assert!(dbg.contains("AWS_SECRET_ACCESS_KEY"));
        assert!(!dbg.contains("secret/value"), "{dbg}");
        assert!(!dbg.contains("token-value"), "{dbg}");
    }
}
