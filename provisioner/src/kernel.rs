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
use provisioner_core::decision::Decision;
use provisioner_core::record::DecisionRecord;
use provisioner_core::{container, exec, mint};
use refusal_kernel::{self, RefusalNotice};

use crate::args::KernelArgs;
use crate::error::Error;
use crate::platform::{self, env_lookup};

const CONTEXT_FIX: &str = "set the launch context the platform passes (SYN_USER, SYN_WORKSPACE_ID, SYN_RUNTIME_TEMPLATE_ID, SYN_FLOW) or the kernelspec flags";

/// Launches the kernel; returns only when it cannot, after saying why on stderr and,
/// when the argv names a connection file, through the refusal kernel.
pub fn run(args: KernelArgs) -> Result<(), Error> {
    launch(&args).inspect_err(|e| refuse(&args.argv, e))
}

fn launch(args: &KernelArgs) -> Result<(), Error> {
    if let Some(socket) = client::socket_from(args.context.broker.as_deref(), &env_lookup) {
        return launch_brokered(args, &socket);
    }
    let platform = platform::load(args.context.config.as_deref())?;
    let ctx = LaunchContext::from_sources(&args.context.flags(), &env_lookup, Flow::Notebook)?;

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
        return Err(Error::Refused {
            refusal: refusal.clone(),
            record_json: serde_json::to_string_pretty(&record).ok(),
        });
    }

    exec_kernel(
        &args.argv,
        &minted.decision,
        minted.credentials.as_ref(),
        &platform.aws.region,
    )
}

/// Broker mode: ask, then refuse or exec exactly as embedded mode does.
fn launch_brokered(args: &KernelArgs, socket: &std::path::Path) -> Result<(), Error> {
    let ctx = client::context_from_sources(&args.context.flags(), &env_lookup, Flow::Notebook)?;
    match client::launch_accepting_endpoint(socket, ctx) {
        Err(r) => {
            if let Some(rec) = &r.record {
                log_record(rec);
            }
            Err(Error::Broker(Box::new(r)))
        }
        Ok(g) => {
            // The record as the broker wrote it (it names the authenticated caller),
            // on stderr like embedded mode's default decision_log.
            log_record(&g.record);
            match &g.endpoint {
                None => exec_kernel(&args.argv, &g.decision, g.credentials.as_ref(), &g.region),
                Some(endpoint) => {
                    // Written as the user, before exec: only the kernel's user can read it.
                    let token_file =
                        container::write_token_file(&endpoint.token, &g.session_id, &env_lookup)
                            .map_err(Error::Delivery)?;
                    // Tools in the kernel find the broker where the launcher did:
                    // spark-submit-wrap asks it for an application token for executors
                    // in other JVMs (a path, not a secret).
                    let socket =
                        std::path::absolute(socket).unwrap_or_else(|_| socket.to_path_buf());
                    let parent: Vec<(OsString, OsString)> = std::env::vars_os()
                        .filter(|(k, _)| k != provisioner_core::broker::protocol::SOCKET_ENV)
                        .chain([(
                            provisioner_core::broker::protocol::SOCKET_ENV.into(),
                            socket.into_os_string(),
                        )])
                        .collect();
                    let env = ChildEnv::for_endpoint(
                        parent,
                        &g.decision,
                        &endpoint.url,
                        &token_file,
                        &g.region,
                    );
                    exec_with(&args.argv, &env)
                }
            }
        }
    }
}

/// The broker's decision record on stderr as one line. Rendered first and written once:
/// stderr is unbuffered, and a `Value` displayed straight into it costs one `write` per
/// token, a few hundred per launch.
fn log_record(record: &serde_json::Value) {
    use std::io::Write;
    let mut line = record.to_string();
    line.push('\n');
    // Nowhere to report a failed write to stderr; the launch goes on as embedded mode's does.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Builds the child's environment and execs the kernel; returns only on failure.
fn exec_kernel(
    argv: &[OsString],
    decision: &Decision,
    credentials: Option<&Credentials>,
    region: &str,
) -> Result<(), Error> {
    let parent: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let env = ChildEnv::for_launch(parent, decision, credentials, region);
    exec_with(argv, &env)
}

/// Finds and execs the kernel with `env`; returns only on failure.
fn exec_with(argv: &[OsString], env: &ChildEnv) -> Result<(), Error> {
    let program = exec::find_program(&argv[0], env.get("PATH")).map_err(Error::ProgramNotFound)?;
    // Exec failed after credentials were minted: they die with this process, and no
    // child ever saw them.
    Err(Error::Exec(exec::exec(&program, argv, env)))
}

/// What the refusal kernel shows for `e`: a title, the problem, the fix.
fn notice(e: &Error) -> RefusalNotice {
    let (title, message, fix, record_json) = match e {
        Error::Config(c) => (
            "INVALID_PLATFORM_FILE",
            format!("{}: {}: {}", c.file, c.entity, c.problem),
            c.fix.clone(),
            None,
        ),
        Error::Context(c) => (
            "INVALID_LAUNCH_CONTEXT",
            c.0.clone(),
            CONTEXT_FIX.to_string(),
            None,
        ),
        Error::Refused {
            refusal,
            record_json,
        } => (
            refusal.code.as_str(),
            refusal.message.clone(),
            refusal.fix.clone(),
            record_json.clone(),
        ),
        Error::Broker(r) => (
            r.code.as_str(),
            r.message.clone(),
            r.fix.clone(),
            r.record
                .as_ref()
                .and_then(|v| serde_json::to_string_pretty(v).ok()),
        ),
        Error::ProgramNotFound(x) => (
            "KERNEL_NOT_FOUND",
            x.to_string(),
            "install the kernel program or fix argv in the kernelspec".to_string(),
            None,
        ),
        Error::Delivery(x) => (
            "TOKEN_FILE_UNAVAILABLE",
            x.problem.clone(),
            x.fix.clone(),
            None,
        ),
        Error::Exec(x) => (
            "KERNEL_EXEC_FAILED",
            x.to_string(),
            "check the kernel program named in the kernelspec".to_string(),
            None,
        ),
        // Not an end of a kernel launch; shown as it would be on stderr.
        other => ("KERNEL_REFUSED", other.to_string(), String::new(), None),
    };
    RefusalNotice {
        title: title.into(),
        message,
        fix,
        exit_code: e.exit_code(),
        record_json,
    }
}

/// Says why on stderr (the Jupyter server's log), then serves the refusal kernel
/// when the kernel argv names a connection file.
fn refuse(argv: &[OsString], e: &Error) {
    e.report();
    if let Some(cf) = refusal_kernel::connection_file_from_argv(argv)
        && let Err(err) = refusal_kernel::serve(&cf, &notice(e))
    {
        eprintln!("provisioner: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use provisioner_core::decision::{Refusal, RefusalCode};

    #[test]
    fn notice_from_refusal() {
        let r = Refusal {
            code: RefusalCode::UnknownUser,
            message: "user alice is not in the platform file".into(),
            fix: "add alice under users".into(),
            exit_code: 3,
        };
        let n = notice(&Error::Refused {
            refusal: r,
            record_json: None,
        });
        assert_eq!(
            n.text(),
            "Kernel refused: UNKNOWN_USER\nuser alice is not in the platform file\nFix: add alice under users"
        );
        assert_eq!(n.exit_code, 3);
        assert_eq!(n.record_json, None);
    }
}
