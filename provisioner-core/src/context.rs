//! The launch context: who is starting what, in which flow.
//!
//! A context is plain data. It comes from command-line flags, else from the
//! environment the platform sets (`SYN_*`, `KERNEL_USERNAME`, `JUPYTERHUB_USER`);
//! [`LaunchContext::from_sources`] applies that precedence without touching the real
//! process environment, so it is testable.

use std::fmt;
use std::str::FromStr;

use crate::model::check_id;

/// Which resolution table applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Interactive kernels and notebook cards.
    Notebook,
    /// Scheduled or triggered notebook runs (papermill and friends), for the notebook owner.
    NotebookRun,
    /// Spark processors and scheduled jobs.
    Job,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Notebook => "notebook",
            Flow::NotebookRun => "notebook-run",
            Flow::Job => "job",
        }
    }

    /// Notebook and notebook-run share the notebook table.
    pub fn uses_workspace_sa(self) -> bool {
        !matches!(self, Flow::Job)
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Flow {
    type Err = String;
    fn from_str(s: &str) -> Result<Flow, String> {
        match s {
            "notebook" => Ok(Flow::Notebook),
            "notebook-run" => Ok(Flow::NotebookRun),
            "job" => Ok(Flow::Job),
            other => Err(format!(
                "unknown flow \"{other}\"; use notebook, notebook-run or job"
            )),
        }
    }
}

/// Who launches what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchContext {
    pub flow: Flow,
    pub user: String,
    pub workspace: Option<String>,
    pub runtime_template: Option<String>,
    /// The platform's job id, recorded for the job flow.
    pub job_id: Option<String>,
}

/// Context values given explicitly (command-line flags).
#[derive(Debug, Clone, Default)]
pub struct ContextFlags {
    pub user: Option<String>,
    pub workspace: Option<String>,
    pub runtime_template: Option<String>,
    pub flow: Option<Flow>,
    pub job_id: Option<String>,
}

/// What the flags, else the environment, give for each part of the context, before
/// any check (the broker's client sends the user even when it is absent).
pub(crate) struct Given {
    pub user: Option<String>,
    pub workspace: Option<String>,
    pub runtime_template: Option<String>,
    pub flow: Result<Flow, ContextError>,
    pub job_id: Option<String>,
}

impl ContextFlags {
    /// Each flag, else its variable (empty counts as unset): the user from `SYN_USER`,
    /// `KERNEL_USERNAME`, `JUPYTERHUB_USER`; the flow from `SYN_FLOW`, else
    /// `default_flow`.
    pub(crate) fn with_env(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        default_flow: Flow,
    ) -> Given {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        Given {
            user: self
                .user
                .clone()
                .or_else(|| get("SYN_USER"))
                .or_else(|| get("KERNEL_USERNAME"))
                .or_else(|| get("JUPYTERHUB_USER")),
            workspace: self.workspace.clone().or_else(|| get("SYN_WORKSPACE_ID")),
            runtime_template: self
                .runtime_template
                .clone()
                .or_else(|| get("SYN_RUNTIME_TEMPLATE_ID")),
            flow: match (self.flow, get("SYN_FLOW")) {
                (Some(f), _) => Ok(f),
                (None, Some(v)) => v
                    .parse()
                    .map_err(|e: String| ContextError(format!("SYN_FLOW: {e}"))),
                (None, None) => Ok(default_flow),
            },
            job_id: self.job_id.clone().or_else(|| get("SYN_JOB_ID")),
        }
    }
}

/// A context that cannot be used, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContextError(pub String);

impl LaunchContext {
    /// Builds the context from flags, else the environment (`env` looks a variable up).
    /// `default_flow` is the flow when neither a flag nor `SYN_FLOW` gives one.
    pub fn from_sources(
        flags: &ContextFlags,
        env: &dyn Fn(&str) -> Option<String>,
        default_flow: Flow,
    ) -> Result<LaunchContext, ContextError> {
        let given = flags.with_env(env, default_flow);
        let user = given.user.ok_or_else(|| {
            ContextError(
                "no user given; pass --user ID or set SYN_USER (KERNEL_USERNAME and JUPYTERHUB_USER are read too)".into(),
            )
        })?;
        let ctx = LaunchContext {
            flow: given.flow?,
            user,
            workspace: given.workspace,
            runtime_template: given.runtime_template,
            job_id: given.job_id,
        };
        ctx.validate()?;
        Ok(ctx)
    }

    /// Ids flow into session names, tags and policy prefixes: hold them to safe characters.
    pub fn validate(&self) -> Result<(), ContextError> {
        let check = |what: &str, v: &str| {
            check_id(v).map_err(|e| {
                ContextError(format!("{what}: {e}; fix the value the platform passes"))
            })
        };
        check("user", &self.user)?;
        if let Some(w) = &self.workspace {
            check("workspace", w)?;
        }
        if let Some(r) = &self.runtime_template {
            check("runtime template", r)?;
        }
        if let Some(j) = &self.job_id {
            check("job id", j)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn user_precedence_flag_then_syn_user_then_kernel_username_then_hub() {
        let env = env_of(&[
            ("SYN_USER", "s"),
            ("KERNEL_USERNAME", "k"),
            ("JUPYTERHUB_USER", "j"),
        ]);
        let flags = ContextFlags {
            user: Some("f".into()),
            ..Default::default()
        };
        assert_eq!(
            LaunchContext::from_sources(&flags, &env, Flow::Notebook)
                .unwrap()
                .user,
            "f"
        );
        let none = ContextFlags::default();
        assert_eq!(
            LaunchContext::from_sources(&none, &env, Flow::Notebook)
                .unwrap()
                .user,
            "s"
        );
        let env = env_of(&[("KERNEL_USERNAME", "k"), ("JUPYTERHUB_USER", "j")]);
        assert_eq!(
            LaunchContext::from_sources(&none, &env, Flow::Notebook)
                .unwrap()
                .user,
            "k"
        );
        let env = env_of(&[("SYN_USER", ""), ("JUPYTERHUB_USER", "j")]);
        assert_eq!(
            LaunchContext::from_sources(&none, &env, Flow::Notebook)
                .unwrap()
                .user,
            "j"
        );
    }

    #[test]
    fn missing_user_says_how_to_give_one() {
        let err =
            LaunchContext::from_sources(&ContextFlags::default(), &env_of(&[]), Flow::Notebook)
                .unwrap_err();
        assert!(err.0.contains("--user"), "{err}");
    }

    #[test]
    fn flow_from_env_and_bad_flow_rejected() {
        let env = env_of(&[("SYN_USER", "a"), ("SYN_FLOW", "notebook-run")]);
        let ctx =
            LaunchContext::from_sources(&ContextFlags::default(), &env, Flow::Notebook).unwrap();
        assert_eq!(ctx.flow, Flow::NotebookRun);
        let env = env_of(&[("SYN_USER", "a"), ("SYN_FLOW", "batch")]);
        let err = LaunchContext::from_sources(&ContextFlags::default(), &env, Flow::Notebook)
            .unwrap_err();
        assert!(
            err.0.contains("SYN_FLOW") && err.0.contains("notebook-run"),
            "{err}"
        );
    }

    #[test]
    fn wildcard_in_user_is_rejected() {
        let env = env_of(&[("SYN_USER", "a*")]);
        assert!(
            LaunchContext::from_sources(&ContextFlags::default(), &env, Flow::Notebook).is_err()
        );
    }
}
