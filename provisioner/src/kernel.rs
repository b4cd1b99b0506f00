//! `provisioner kernel`: the kernelspec entry point. Resolve, obtain credentials,
//! write the decision record, exec the kernel.
//!
//! A notebook launch that cannot go ahead (bad platform file, missing context,
//! refusal, credentials unavailable, kernel program missing) does not just exit:
//! Jupyter would show only "kernel died". It serves the refusal kernel on the
//! connection file's ports so that the notebook shows the reason and the fix, and
//! exits with the documented code once Jupyter shuts it down.
//!
//! With a broker (`--broker SOCKET` or `SYN_BROKER_SOCKET`) the launcher reads no
//! platform file and no base credentials and calls no STS: the broker decides for
//! the socket peer and answers with the record and the credentials, or the refusal.
//! From there the launch is the same code as embedded mode: refusal kernel, child
//! environment, exec.

use std::ffi::OsString;

use provisioner_core::broker::client;
use provisioner_core::child_env::ChildEnv;
use provisioner_core::context::{Flow, LaunchContext};
use provisioner_core::credentials::Credentials;
use provisioner_core::decision::{Decision, Refusal};
use provisioner_core::record::DecisionRecord;
use provisioner_core::{container, exec, exit, load, mint};
use refusal_kernel::{self, RefusalNotice};

use crate::args::KernelArgs;

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

const CONTEXT_FIX: &str = "set the launch context the platform passes (SYN_USER, SYN_WORKSPACE_ID, SYN_RUNTIME_TEMPLATE_ID, SYN_FLOW) or the kernelspec flags";

pub fn run(args: KernelArgs) -> i32 {
    if let Some(socket) = client::socket_from(args.context.broker.as_deref(), &env_lookup) {
        return run_brokered(&args, &socket);
    }
    let path = load::config_path(args.context.config.as_deref(), &env_lookup);
    let platform = match load::load_file(&path, &env_lookup) {
        Ok(p) => p,
        Err(e) => {
            let notice = notice(
                "INVALID_PLATFORM_FILE",
                format!("{}: {}: {}", e.file, e.entity, e.problem),
                e.fix.clone(),
                exit::CONFIG,
            );
            return refuse(&args.argv, &format!("{e}"), notice);
        }
    };
    let ctx = match LaunchContext::from_sources(&args.context.flags(), &env_lookup, Flow::Notebook)
    {
        Ok(c) => c,
        Err(e) => {
            let notice = notice(
                "INVALID_LAUNCH_CONTEXT",
                e.0.clone(),
                CONTEXT_FIX.into(),
                exit::CONFIG,
            );
            return refuse(&args.argv, &e.0, notice);
        }
    };

    let minted = mint::obtain(&platform, &ctx, &env_lookup);
    let mut record = DecisionRecord::new(&minted.decision);
    record.elapsed_ms = Some(u64::try_from(minted.elapsed.as_millis()).unwrap_or(u64::MAX));
    record.expiration = minted
        .credentials
        .as_ref()
        .and_then(|c| c.expiration_rfc3339());
    if let Err(e) = record.write(&platform.settings.decision_log) {
        eprintln!(
            "provisioner: cannot write the decision record: {e}; fix the decision_log setting"
        );
    }

    if let Some(refusal) = minted.decision.refusal() {
        let mut n = notice_of(refusal);
        n.record_json = serde_json::to_string_pretty(&record).ok();
        return refuse(
            &args.argv,
            &format!(
                "refused ({}): {}; fix: {}",
                refusal.code.as_str(),
                refusal.message,
                refusal.fix
            ),
            n,
        );
    }

    exec_kernel(
        &args.argv,
        &minted.decision,
        minted.credentials.as_ref(),
        &platform.aws.region,
    )
}

/// Broker mode: ask, then refuse or exec exactly as embedded mode does.
fn run_brokered(args: &KernelArgs, socket: &std::path::Path) -> i32 {
    let ctx = match client::context_from_sources(&args.context.flags(), &env_lookup, Flow::Notebook)
    {
        Ok(c) => c,
        Err(e) => {
            let n = notice(
                "INVALID_LAUNCH_CONTEXT",
                e.0.clone(),
                CONTEXT_FIX.into(),
                exit::CONFIG,
            );
            return refuse(&args.argv, &e.0, n);
        }
    };
    match client::launch(socket, ctx) {
        Err(r) => {
            if let Some(rec) = &r.record {
                eprintln!("{rec}");
            }
            let n = RefusalNotice {
                title: r.code.clone(),
                message: r.message.clone(),
                fix: r.fix.clone(),
                exit_code: r.exit_code,
                record_json: r
                    .record
                    .as_ref()
                    .and_then(|v| serde_json::to_string_pretty(v).ok()),
            };
            refuse(
                &args.argv,
                &format!("refused ({}): {}", r.code, r.message),
                n,
            )
        }
        Ok(g) => {
            // The record as the broker wrote it (it names the authenticated caller),
            // on stderr like embedded mode's default decision_log.
            eprintln!("{}", g.record);
            match &g.endpoint {
                None => exec_kernel(&args.argv, &g.decision, g.credentials.as_ref(), &g.region),
                Some(endpoint) => {
                    // Written as the user, before exec: only the kernel's user can read it.
                    match container::write_token_file(&endpoint.token, &g.session_id, &env_lookup) {
                        Ok(token_file) => {
                            let parent: Vec<(OsString, OsString)> = std::env::vars_os().collect();
                            let env = ChildEnv::for_endpoint(
                                parent,
                                &g.decision,
                                &endpoint.url,
                                &token_file,
                                &g.region,
                            );
                            exec_with(&args.argv, &env)
                        }
                        Err(e) => {
                            let n = notice(
                                "TOKEN_FILE_UNAVAILABLE",
                                e.problem.clone(),
                                e.fix.clone(),
                                exit::CREDENTIALS,
                            );
                            refuse(&args.argv, &e.to_string(), n)
                        }
                    }
                }
            }
        }
    }
}

/// Builds the child's environment and execs the kernel; returns only on failure.
fn exec_kernel(
    argv: &[OsString],
    decision: &Decision,
    credentials: Option<&Credentials>,
    region: &str,
) -> i32 {
    let parent: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let env = ChildEnv::for_launch(parent, decision, credentials, region);
    exec_with(argv, &env)
}

/// Finds and execs the kernel with `env`; returns only on failure.
fn exec_with(argv: &[OsString], env: &ChildEnv) -> i32 {
    let program = match exec::find_program(&argv[0], env.get("PATH")) {
        Ok(p) => p,
        Err(e) => {
            let n = notice(
                "KERNEL_NOT_FOUND",
                e.to_string(),
                "install the kernel program or fix argv in the kernelspec".into(),
                e.exit_code(),
            );
            return refuse(argv, &e.to_string(), n);
        }
    };
    let err = exec::exec(&program, argv, env);
    // Exec failed after credentials were minted: they die with this process, and no
    // child ever saw them.
    let n = notice(
        "KERNEL_EXEC_FAILED",
        err.to_string(),
        "check the kernel program named in the kernelspec".into(),
        err.exit_code(),
    );
    refuse(argv, &err.to_string(), n)
}

/// The refusal kernel's notice for a refusal of the decision tables.
fn notice_of(r: &Refusal) -> RefusalNotice {
    notice(
        r.code.as_str(),
        r.message.clone(),
        r.fix.clone(),
        r.exit_code,
    )
}

fn notice(title: &str, message: String, fix: String, exit_code: i32) -> RefusalNotice {
    RefusalNotice {
        title: title.into(),
        message,
        fix,
        exit_code,
        record_json: None,
    }
}

/// Says why on stderr (the Jupyter server's log), then serves the refusal kernel
/// when the kernel argv names a connection file, and returns the exit code.
fn refuse(argv: &[OsString], line: &str, notice: RefusalNotice) -> i32 {
    eprintln!("provisioner: {line}");
    if let Some(cf) = refusal_kernel::connection_file_from_argv(argv)
        && let Err(e) = refusal_kernel::serve(&cf, &notice)
    {
        eprintln!("provisioner: {e}");
    }
    notice.exit_code
}

#[cfg(test)]
mod tests {
    use super::*;
    use provisioner_core::decision::RefusalCode;

    #[test]
    fn notice_from_refusal() {
        let r = Refusal {
            code: RefusalCode::UnknownUser,
            message: "user alice is not in the platform file".into(),
            fix: "add alice under users".into(),
            exit_code: 3,
        };
        let n = notice_of(&r);
        assert_eq!(
            n.text(),
            "Kernel refused: UNKNOWN_USER\nuser alice is not in the platform file\nFix: add alice under users"
        );
        assert_eq!(n.exit_code, 3);
        assert_eq!(n.record_json, None);
    }
}
