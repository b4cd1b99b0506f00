//! `spark-submit-wrap`: a drop-in `spark-submit` that runs the job with the AWS
//! identity the platform decides (README.md, "Spark jobs: spark-submit-wrap").
//!
//! Same argument vector as `spark-submit`, same exit status (after exec, the exit
//! status *is* Spark's). The steps:
//!
//! 1. parse the command line like Spark ([`args`](spark_submit_wrap::args)) and check
//!    the loop guard ([`find`]);
//! 2. decide the identity and obtain credentials, or propagate those of a provisioned
//!    kernel ([`identity`]);
//! 3. work out the configuration Spark would see ([`conf`]) and what to inject and
//!    neutralise ([`inject`]);
//! 4. write the merged properties file where only the job can read it ([`propsfile`]),
//!    add `--properties-file` (or replace the user's value in place) and the non-secret
//!    overrides right before the primary resource;
//! 5. write the decision record and `exec` the real `spark-submit` with the scoped
//!    process environment (`provisioner_core::child_env`, `provisioner_core::exec`).
//!
//! Wrapper options start with `--wrap-` (Spark rejects such options, so they never
//! collide) and are removed before exec: `--wrap-explain` (dry run: print decision,
//! argv and redacted conf as JSON, exec nothing), `--wrap-broker SOCKET` (ask the broker,
//! also `SYN_BROKER_SOCKET`) and `--wrap-config PATH` (platform
//! file). Environment: `SYN_PLATFORM_CONFIG`, `SYN_USER`, `SYN_RUNTIME_TEMPLATE_ID`,
//! `SYN_JOB_ID`, `SYN_WORKSPACE_ID` (recorded, ignored by the job flow),
//! `SYN_PROVISIONED` (propagation), `SPARK_SUBMIT_WRAP_REAL` (the real spark-submit),
//! `SPARK_SUBMIT_WRAP_PROPERTIES=file` (force a named properties file).
//!
//! `--version`, `--help` (`-h`) and `--usage-error` on their own (wrapper options
//! aside) are passed straight through: Spark only prints and exits, so nothing is
//! resolved (no `SYN_USER` or platform file needed), no record is written and the
//! environment is left as it is. With any other option or argument they are part of
//! a submission and go through the steps above.
//!
//! Exit codes before exec: 2 usage or configuration, 3 refused by policy, 4
//! credentials could not be obtained, 127 the real `spark-submit` was not found.
//!
//! The wrapper never puts a secret on a command line, in a log, or in the record.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use provisioner_core::child_env::ChildEnv;
use provisioner_core::exec::ExecError;
use provisioner_core::exit;

use spark_submit_wrap::args::Parsed;
use spark_submit_wrap::error::WrapError;
use spark_submit_wrap::identity::{self, Identity};
use spark_submit_wrap::plan::{self, Launch, final_args};
use spark_submit_wrap::{endpoint, explain, find, inject, propsfile};

const NAME: &str = "spark-submit-wrap";

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn main() -> ExitCode {
    let tokens: Vec<OsString> = std::env::args_os().skip(1).collect();
    let code =
        if tokens.first().map(OsString::as_os_str) == Some(OsStr::new(propsfile::CLEANER_OPTION)) {
            propsfile::cleaner_main(&tokens[1..])
        } else {
            match run(tokens) {
                Ok(()) => exit::OK,
                Err(e) => {
                    e.report();
                    e.exit_code()
                }
            }
        };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Runs the wrapper; returns only for a dry run or when Spark cannot be started.
fn run(tokens: Vec<OsString>) -> Result<(), WrapError> {
    let parsed = Parsed::parse(tokens).map_err(WrapError::config)?;
    let pid = std::process::id();
    find::check_guard(&env_lookup, pid)?;
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| find::FileId::of(&p));
    let real = find::real_spark_submit(&env_lookup, me.as_ref());

    if parsed.is_info_only() {
        return pass_through(&parsed, real, pid);
    }

    let spark_home_guess = real.as_ref().ok().and_then(|p| plan::spark_home_of(p));
    // Where executors run decides whether they need the broker's HTTPS endpoint.
    let executors = identity::Executors {
        deploy: plan::deploy_hint(&parsed, spark_home_guess.as_deref(), &env_lookup),
        broker_flag: parsed.wrap.broker.as_deref(),
    };
    let identity = identity::obtain_any(
        &env_lookup,
        parsed.wrap.config.as_deref(),
        parsed.wrap.explain,
        executors,
    )?;
    if let Some(r) = identity.refusal().filter(|_| !parsed.wrap.explain) {
        write_record(&identity, &[]);
        return Err(WrapError::refused(r));
    }

    let launch = plan::plan(identity, parsed, spark_home_guess.as_deref(), &env_lookup)?;

    if launch.parsed.wrap.explain {
        return explain(&launch, &real);
    }

    let real = match real {
        Ok(r) => r,
        Err(e) => {
            write_record(&launch.identity, &launch.warnings);
            return Err(e.into());
        }
    };
    launch_job(launch, &real, pid)
}

/// `--version`, `--help` / `-h`, `--usage-error` on their own: Spark only prints and
/// exits, no application starts and no AWS identity is used, so nothing is resolved
/// (no `SYN_USER` or platform file needed), no record is written and the environment
/// is passed on as it is (plus the loop guard). The wrapper's own options are still
/// removed; with `--wrap-explain` the dry run says `"mode": "passthrough"`.
fn pass_through(
    parsed: &Parsed,
    real: Result<PathBuf, find::FindError>,
    pid: u32,
) -> Result<(), WrapError> {
    let args = parsed.rebuild(None, &[]);
    let env = ChildEnv::from_vars(guarded_env(pid));
    if parsed.wrap.explain {
        let report = explain::Report {
            decision: serde_json::Value::Null,
            mode: "passthrough",
            deploy: "none (nothing is submitted)".into(),
            spark_submit: real
                .as_ref()
                .map(|p| p.display().to_string())
                .map_err(|e| e.to_string()),
            argv: Some(explain::redact_argv(&args)),
            properties_file: None,
            conf: None,
            cli_overrides: Vec::new(),
            env: explain::redact_env(env.vars()),
            credentials_endpoint: None,
            warnings: Vec::new(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        );
        return Ok(());
    }
    exec(&real?, &args, &env)
}

fn write_record(identity: &Identity, warnings: &[String]) {
    let mut record = identity.record.clone();
    record.warnings.extend(warnings.iter().cloned());
    if let Err(e) = record.write(&identity.log) {
        eprintln!("{NAME}: cannot write the decision record: {e}; fix the decision_log setting");
    }
}

/// Our own environment with the loop guard variables set (every old entry of them
/// removed).
fn guarded_env(pid: u32) -> Vec<(OsString, OsString)> {
    let guard = find::guard_vars(&env_lookup, pid);
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !guard.iter().any(|(g, _)| g == k))
        .collect();
    vars.extend(guard);
    vars
}

/// The scoped process environment for spark-submit (and, in client mode, the driver):
/// the endpoint's variables with endpoint delivery, else the credentials'.
fn child_env(identity: &Identity, pid: u32) -> ChildEnv {
    if let Some(e) = &identity.endpoint {
        return endpoint::child_env(
            guarded_env(pid),
            &identity.decision,
            e,
            identity.region.as_deref(),
        );
    }
    let region = identity.region.clone().unwrap_or_default();
    ChildEnv::for_launch(
        guarded_env(pid),
        &identity.decision,
        identity.credentials.as_ref(),
        &region,
    )
}

fn explain(l: &Launch, real: &Result<PathBuf, find::FindError>) -> Result<(), WrapError> {
    let props_display = l.merged.as_ref().map(|_| match l.strategy {
        propsfile::Strategy::Descriptor => "/dev/fd/N".to_string(),
        propsfile::Strategy::Named => "<private directory>/spark.properties".to_string(),
    });
    let refused = l.identity.refusal().cloned();
    let args = final_args(l, props_display.as_deref().map(OsStr::new));
    let decision = match l.identity.mode {
        identity::Mode::Resolve => {
            let mut v =
                provisioner_core::record::DecisionRecord::explain_value(&l.identity.decision);
            if let (Some(obj), Some(r)) = (v.as_object_mut(), &refused) {
                obj.insert(
                    "refused".into(),
                    serde_json::to_value(r).unwrap_or_default(),
                );
            }
            v
        }
        identity::Mode::Propagate | identity::Mode::Broker => {
            serde_json::to_value(&l.identity.record).unwrap_or_default()
        }
    };
    let report = explain::Report {
        decision,
        mode: l.identity.mode.as_str(),
        deploy: l.deploy.describe(),
        spark_submit: real
            .as_ref()
            .map(|p| p.display().to_string())
            .map_err(|e| e.to_string()),
        argv: refused.is_none().then(|| explain::redact_argv(&args)),
        properties_file: props_display,
        conf: l.merged_map.as_ref().map(explain::redact_conf),
        cli_overrides: l
            .injection
            .as_ref()
            .map(|i| i.cli.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default(),
        env: explain::redact_env(child_env(&l.identity, std::process::id()).vars()),
        credentials_endpoint: l.identity.endpoint.as_ref().map(|e| {
            explain::endpoint_summary(
                e,
                inject::needs_remote_endpoint(l.deploy, e.remote.is_some()),
            )
        }),
        warnings: l.warnings.clone(),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
    );
    refused.map_or(Ok(()), |r| {
        Err(WrapError::Reported {
            exit_code: r.exit_code,
        })
    })
}

fn launch_job(l: Launch, real: &Path, pid: u32) -> Result<(), WrapError> {
    let mut warnings = l.warnings.clone();
    let file = match &l.merged {
        Some(bytes) => {
            let base = propsfile::private_base(&env_lookup);
            match propsfile::create(bytes, l.strategy, &base) {
                Ok(f) => Some(f),
                Err(e) => {
                    write_record(&l.identity, &warnings);
                    return Err(WrapError::config(e));
                }
            }
        }
        None => None,
    };
    if let Some(propsfile::PropertiesFile {
        kind: propsfile::Kind::Named { dir },
        ..
    }) = &file
        && !propsfile::start_cleaner(dir)
    {
        warnings.push(format!(
                "the properties file in {} could not be given to a cleaner; remove that directory after the job",
                dir.display()
            ));
    }
    let args = final_args(&l, file.as_ref().map(|f| f.path.as_os_str()));
    write_record(&l.identity, &warnings);
    let env = child_env(&l.identity, pid);
    exec(real, &args, &env)
}

/// Replaces this process with the real `spark-submit` (`provisioner_core::exec`: the
/// properties memfd, opened without close-on-exec, stays open; signal state is reset
/// as a shell would leave it). `args` excludes the program name: argv\[0\] is the
/// resolved path, so Spark's scripts find their installation from it. Returns only
/// on failure.
fn exec(real: &Path, args: &[OsString], env: &ChildEnv) -> Result<(), WrapError> {
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(real.as_os_str().to_os_string());
    argv.extend(args.iter().cloned());
    Err(match provisioner_core::exec::exec(real, &argv, env) {
        // Found a moment ago: it was removed in between. Say it in the wrapper's terms.
        ExecError::NotFound(_) => WrapError::Find(find::FindError::NotFound {
            looked: format!("{}, which disappeared before exec", real.display()),
        }),
        e => WrapError::Exec(e),
    })
}
