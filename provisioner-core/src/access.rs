//! Who may launch as whom, and with which workspace or runtime template.
//!
//! Two pure checks, both functions of the platform model and their arguments:
//!
//! - [`authorize`] (broker mode): the broker knows the caller from the socket peer.
//!   A caller launches as itself; launching as someone else needs a `proxy_users`
//!   entry for the caller's Unix user (Hadoop's proxy-user pattern), root included.
//! - [`entitlement`] (both modes, called by [`crate::decision::resolve`]): a workspace
//!   or runtime template with a `users` list admits only those users. In broker mode
//!   one that holds a service account and has no list is closed (`"*"` opens it); in
//!   embedded mode it stays open as before lists existed, and [`unlisted_notes`] gives
//!   the warning `provisioner explain` shows (decision records stay as they were).
//!
//! Nothing here looks anything up: the broker passes the caller's login and the
//! claimed user's Unix groups in.

use crate::context::{Flow, LaunchContext};
use crate::decision::{RefusalCode, Tier};
use crate::model::{Platform, UserList};

/// The platform user a Unix login stands for: the user whose `unix_user` names it,
/// else the user with that id.
pub fn platform_user_of(platform: &Platform, login: &str) -> String {
    platform
        .users
        .values()
        .find(|u| u.unix_user.as_deref() == Some(login))
        .map(|u| u.id.clone())
        .unwrap_or_else(|| login.to_string())
}

/// The Unix login of a platform user (its `unix_user`, else its id).
pub fn unix_user_of(platform: &Platform, user: &str) -> String {
    platform
        .users
        .get(user)
        .and_then(|u| u.unix_user.clone())
        .unwrap_or_else(|| user.to_string())
}

/// Who a brokered launch is for, and how that was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The platform user the launch runs as.
    pub user: String,
    /// The platform user of the socket peer.
    pub authenticated_user: String,
    /// The user the request named, if it named one.
    pub claimed_user: Option<String>,
    /// The caller acts for another user through `proxy_users`.
    pub proxied: bool,
}

/// A launch the checks refuse, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub code: RefusalCode,
    pub message: String,
    pub fix: String,
}

/// Decides who a brokered launch is for. `login` is the socket peer's Unix login (None
/// when its uid has no entry in the user database), `claimed` the user the request
/// names, `claimed_groups` the Unix groups of the claimed user's login.
pub fn authorize(
    platform: &Platform,
    login: Option<&str>,
    uid: u32,
    claimed: Option<&str>,
    claimed_groups: &[String],
) -> Result<Authorized, Denied> {
    let Some(login) = login else {
        return Err(Denied {
            code: RefusalCode::NotPermitted,
            message: format!("uid {uid} has no login name, so it is no platform user"),
            fix: "run the launcher as a user of the system's user database".into(),
        });
    };
    let authenticated = platform_user_of(platform, login);
    let claimed = claimed.filter(|c| !c.is_empty());
    let Some(claimed) = claimed.filter(|c| *c != authenticated) else {
        return Ok(Authorized {
            user: authenticated.clone(),
            authenticated_user: authenticated,
            claimed_user: claimed.map(str::to_string),
            proxied: false,
        });
    };
    let Some(rule) = platform.proxy_users.iter().find(|p| p.unix_user == login) else {
        return Err(Denied {
            code: RefusalCode::NotPermitted,
            message: format!(
                "Unix user \"{login}\" (platform user \"{authenticated}\") may launch only as itself, not as \"{claimed}\""
            ),
            fix: format!(
                "run the launch as \"{claimed}\"'s own Unix user, or, for a job runner, list \"{login}\" in proxy_users for that user"
            ),
        });
    };
    let by_group =
        rule.groups.everyone || claimed_groups.iter().any(|g| rule.groups.ids.contains(g));
    if rule.users.admits(claimed) || by_group {
        return Ok(Authorized {
            user: claimed.to_string(),
            authenticated_user: authenticated,
            claimed_user: Some(claimed.to_string()),
            proxied: true,
        });
    }
    Err(Denied {
        code: RefusalCode::NotPermitted,
        message: format!(
            "proxy user \"{login}\" may not act for \"{claimed}\" (neither listed nor in a listed group)"
        ),
        fix: format!(
            "add \"{claimed}\" (or one of its groups) to the proxy_users entry of \"{login}\", or launch as \"{claimed}\" itself"
        ),
    })
}

/// Checks the `users` lists of the workspace (notebook flows, where its service
/// account applies) and the runtime template of a launch; the refusal comes with the
/// tier it belongs to.
pub fn entitlement(platform: &Platform, ctx: &LaunchContext) -> Result<(), (Tier, Denied)> {
    let brokered = platform.settings.brokered;
    let workspace = ctx
        .workspace
        .as_ref()
        .filter(|_| ctx.flow != Flow::Job)
        .and_then(|id| platform.workspaces.get(id))
        .map(|w| {
            (
                "workspace",
                &w.id,
                w.service_account.is_some(),
                w.users.as_ref(),
                Tier::WorkspaceSa,
            )
        });
    let template = ctx
        .runtime_template
        .as_ref()
        .and_then(|id| platform.runtime_templates.get(id))
        .map(|t| {
            (
                "runtime template",
                &t.id,
                t.service_account.is_some(),
                t.users.as_ref(),
                Tier::RuntimeTemplateSa,
            )
        });
    for (kind, id, has_sa, users, tier) in workspace.into_iter().chain(template) {
        match users {
            Some(list) => check_list(kind, id, list, &ctx.user).map_err(|d| (tier, d))?,
            None if has_sa && brokered => {
                return Err((
                    tier,
                    Denied {
                        code: RefusalCode::NotEntitled,
                        message: format!(
                            "{kind} \"{id}\" holds a service account and lists no users, so the broker opens it to nobody"
                        ),
                        fix: format!(
                            "list who may use it in the platform file ({kind} \"{id}\": \"users\": [\"{}\"], or [\"*\"] for everyone)",
                            ctx.user
                        ),
                    },
                ));
            }
            None => {}
        }
    }
    Ok(())
}

/// Embedded mode's warning for the workspace and runtime template of a launch that hold
/// a service account and list no users (any user may launch with them there).
pub fn unlisted_notes(platform: &Platform, ctx: &LaunchContext) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(w) = ctx
        .workspace
        .as_ref()
        .filter(|_| ctx.flow != Flow::Job)
        .and_then(|id| platform.workspaces.get(id))
        .filter(|w| w.service_account.is_some() && w.users.is_none())
    {
        notes.push(format!(
            "workspace \"{}\" holds a service account and lists no users: any user may launch with it; list them in \"users\" (required in broker mode)",
            w.id
        ));
    }
    if let Some(t) = ctx
        .runtime_template
        .as_ref()
        .and_then(|id| platform.runtime_templates.get(id))
        .filter(|t| t.service_account.is_some() && t.users.is_none())
    {
        notes.push(format!(
            "runtime template \"{}\" holds a service account and lists no users: any user may launch with it; list them in \"users\" (required in broker mode)",
            t.id
        ));
    }
    notes
}

fn check_list(kind: &str, id: &str, list: &UserList, user: &str) -> Result<(), Denied> {
    if list.admits(user) {
        return Ok(());
    }
    Err(Denied {
        code: RefusalCode::NotEntitled,
        message: format!("user \"{user}\" is not among the users of {kind} \"{id}\""),
        fix: format!(
            "launch with a {kind} that lists \"{user}\", or ask the platform team to add \"{user}\" to its users"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Plan, resolve};
    use crate::load::load_str;

    fn platform(brokered: bool) -> Platform {
        let text = r#"{
          "settings": {"syntasa_session_policy_enabled": "true"},
          "aws": {"region": "us-east-1", "account_id": "123456789012",
                  "session_policy_role_arn": "arn:aws:iam::123456789012:role/Infra",
                  "platform_bucket": "acme-platform"},
          "service_accounts": [{"id": "sa", "role_arn": "arn:aws:iam::123456789012:role/Fin"}],
          "workspaces": [
            {"id": "ws-fin", "service_account": "sa", "users": ["bob"]},
            {"id": "ws-unlisted", "service_account": "sa"},
            {"id": "ws-all", "service_account": "sa", "users": ["*"]},
            {"id": "ws-plain"}
          ],
          "runtime_templates": [{"id": "rt-etl", "service_account": "sa", "users": ["alice"]}],
          "users": [{"id": "alice", "unix_user": "alice.smith"}, {"id": "bob"}],
          "proxy_users": [
            {"unix_user": "airflow", "users": ["alice"], "groups": ["analysts"]},
            {"unix_user": "root", "users": ["*"]}
          ]
        }"#;
        let mut p = load_str(text, "platform.json", &|_| None).unwrap();
        p.settings.brokered = brokered;
        p
    }

    fn ctx(user: &str, ws: Option<&str>, rt: Option<&str>, flow: Flow) -> LaunchContext {
        LaunchContext {
            flow,
            user: user.into(),
            workspace: ws.map(str::to_string),
            runtime_template: rt.map(str::to_string),
            job_id: None,
        }
    }

    #[test]
    fn a_login_maps_to_its_platform_user_and_back() {
        let p = platform(true);
        assert_eq!(platform_user_of(&p, "alice.smith"), "alice");
        assert_eq!(platform_user_of(&p, "bob"), "bob");
        assert_eq!(unix_user_of(&p, "alice"), "alice.smith");
        assert_eq!(unix_user_of(&p, "carol"), "carol");
    }

    #[test]
    fn callers_launch_as_themselves_or_as_a_proxy_user_allows() {
        let p = platform(true);
        let a = authorize(&p, Some("alice.smith"), 1000, None, &[]).unwrap();
        assert_eq!((a.user.as_str(), a.proxied), ("alice", false));
        let a = authorize(&p, Some("alice.smith"), 1000, Some("alice"), &[]).unwrap();
        assert_eq!(a.claimed_user.as_deref(), Some("alice"));
        let d = authorize(&p, Some("alice.smith"), 1000, Some("bob"), &[]).unwrap_err();
        assert_eq!(d.code, RefusalCode::NotPermitted);
        assert!(
            d.message.contains("only as itself") && d.fix.contains("proxy_users"),
            "{d:?}"
        );
        // By user list, by group, and neither.
        assert!(
            authorize(&p, Some("airflow"), 5, Some("alice"), &[])
                .unwrap()
                .proxied
        );
        assert!(authorize(&p, Some("airflow"), 5, Some("bob"), &["analysts".into()]).is_ok());
        let d = authorize(&p, Some("airflow"), 5, Some("bob"), &["staff".into()]).unwrap_err();
        assert!(d.message.contains("may not act for"), "{d:?}");
        // Root only because it is configured; a uid without a login is nobody.
        assert!(authorize(&p, Some("root"), 0, Some("bob"), &[]).is_ok());
        let d = authorize(&p, None, 4242, None, &[]).unwrap_err();
        assert!(d.message.contains("uid 4242"), "{d:?}");
    }

    #[test]
    fn user_lists_are_enforced_in_both_modes() {
        for brokered in [false, true] {
            let p = platform(brokered);
            let d = resolve(&p, &ctx("alice", Some("ws-fin"), None, Flow::Notebook), &[]);
            let r = d.refusal().expect("refused");
            assert_eq!(r.code, RefusalCode::NotEntitled);
            assert!(
                r.message.contains("ws-fin") && r.fix.contains("alice"),
                "{r:?}"
            );
            let d = resolve(&p, &ctx("bob", Some("ws-fin"), None, Flow::Notebook), &[]);
            assert!(matches!(d.plan, Plan::AssumeRole(_)), "{d:?}");
            let d = resolve(&p, &ctx("bob", None, Some("rt-etl"), Flow::Job), &[]);
            assert_eq!(d.refusal().map(|r| r.code), Some(RefusalCode::NotEntitled));
            // "*" opens it; a workspace without a service account needs no list; the
            // job flow ignores the workspace.
            for c in [
                ctx("alice", Some("ws-all"), None, Flow::Notebook),
                ctx("alice", Some("ws-plain"), None, Flow::Notebook),
                ctx("alice", Some("ws-fin"), None, Flow::Job),
            ] {
                assert!(resolve(&p, &c, &[]).refusal().is_none(), "{c:?}");
            }
        }
    }

    #[test]
    fn an_unlisted_service_account_is_closed_in_broker_mode_and_a_warning_in_embedded_mode() {
        let c = ctx("alice", Some("ws-unlisted"), None, Flow::Notebook);
        let d = resolve(&platform(true), &c, &[]);
        let r = d.refusal().expect("refused in broker mode");
        assert_eq!(r.code, RefusalCode::NotEntitled);
        assert!(
            r.message.contains("lists no users") && r.fix.contains("\"*\""),
            "{r:?}"
        );
        let p = platform(false);
        let d = resolve(&p, &c, &[]);
        assert!(matches!(d.plan, Plan::AssumeRole(_)));
        // Records stay as they were; explain shows the note.
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        let notes = unlisted_notes(&p, &c);
        assert!(
            notes.len() == 1 && notes[0].contains("lists no users"),
            "{notes:?}"
        );
    }

    #[test]
    fn bad_lists_are_rejected_at_load_with_the_fix() {
        let bad = |patch: &str| {
            let users = if patch.contains("\"users\": [{") {
                String::new()
            } else {
                r#""users": [{"id": "alice"}], "#.to_string()
            };
            let text = format!(r#"{{"aws": {{"region": "us-east-1"}}, {users}{patch}}}"#);
            load_str(&text, "platform.json", &|_| None)
                .unwrap_err()
                .to_string()
        };
        let e = bad(r#""workspaces": [{"id": "w", "users": ["carol"]}]"#);
        assert!(e.contains("unknown user \"carol\""), "{e}");
        let e = bad(r#""workspaces": [{"id": "w", "users": ["*", "alice"]}]"#);
        assert!(e.contains("\"*\" alone"), "{e}");
        let e = bad(r#""proxy_users": [{"unix_user": "air flow", "users": ["alice"]}]"#);
        assert!(e.contains("not a Unix name"), "{e}");
        let e = bad(r#""proxy_users": [{"unix_user": "airflow"}]"#);
        assert!(e.contains("neither users nor groups"), "{e}");
        let e = bad(r#""users": [{"id": "bob", "unix_user": "-x"}]"#);
        assert!(e.contains("unix_user"), "{e}");
    }
}
