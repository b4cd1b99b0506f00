//! `provisioner kernel`: the kernelspec entry point. Resolve, obtain credentials,
//! write the decision record, exec the kernel.
//!
//! A notebook launch that cannot go ahead (bad platform file, missing context,
//! refusal, credentials unavailable, kernel program missing) does not just exit:
//! Jupyter would show only "kernel died". It serves the refusal kernel on the
//! connection file's ports so that the notebook shows the reason and the fix, and
//! exits with the documented code once Jupyter shuts it down.

use std::ffi::OsString;

use provisioner_core::child_env::ChildEnv;
use provisioner_core::context::{Flow, LaunchContext};
use provisioner_core::decision::Refusal;
use provisioner_core::record::DecisionRecord;
use provisioner_core::{exec, exit, load, mint};
use refusal_kernel::{self, RefusalNotice};

use crate::args::KernelArgs;

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn run(args: KernelArgs) -> i32 {
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
            let notice = notice("INVALID_LAUNCH_CONTEXT", e.0.clone(), "set the launch context the platform passes (SYN_USER, SYN_WORKSPACE_ID, SYN_RUNTIME_TEMPLATE_ID, SYN_FLOW) or the kernelspec flags".into(), exit::CONFIG);
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

    let parent: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let env = ChildEnv::for_launch(
        parent,
        &minted.decision,
        minted.credentials.as_ref(),
        &platform.aws.region,
    );
    let program = match exec::find_program(&args.argv[0], env.get("PATH")) {
        Ok(p) => p,
        Err(e) => {
            let n = notice(
                "KERNEL_NOT_FOUND",
                e.to_string(),
                "install the kernel program or fix argv in the kernelspec".into(),
                e.exit_code(),
            );
            return refuse(&args.argv, &e.to_string(), n);
        }
    };
    let err = exec::exec(&program, &args.argv, &env);
    // Exec failed after credentials were minted: they die with this process, and no
    // child ever saw them.
    let n = notice(
        "KERNEL_EXEC_FAILED",
        err.to_string(),
        "check the kernel program named in the kernelspec".into(),
        err.exit_code(),
    );
    refuse(&args.argv, &err.to_string(), n)
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
