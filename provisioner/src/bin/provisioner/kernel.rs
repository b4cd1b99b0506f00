//! `provisioner kernel`: resolve, obtain credentials, write the record, exec the kernel.

use std::ffi::OsString;

use provisioner::child_env::ChildEnv;
use provisioner::context::{Flow, LaunchContext};
use provisioner::record::DecisionRecord;
use provisioner::{exec, exit, load, mint};

use crate::args::KernelArgs;

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn run(args: KernelArgs) -> i32 {
    let path = load::config_path(args.context.config.as_deref(), &env_lookup);
    let platform = match load::load_file(&path, &env_lookup) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("provisioner: {e}");
            return exit::CONFIG;
        }
    };
    let ctx = match LaunchContext::from_sources(&args.context.flags(), &env_lookup, Flow::Notebook)
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("provisioner: {e}");
            return exit::CONFIG;
        }
    };
    let minted = mint::obtain(&platform, &ctx, &env_lookup);
    let mut record = DecisionRecord::new(&minted.decision);
    record.elapsed_ms = Some(minted.elapsed.as_millis() as u64);
    if let Err(e) = record.write(&platform.settings.decision_log) {
        eprintln!(
            "provisioner: cannot write the decision record: {e}; fix the decision_log setting"
        );
    }
    if let Some(refusal) = minted.decision.refusal() {
        eprintln!(
            "provisioner: refused: {}; fix: {}",
            refusal.message, refusal.fix
        );
        return refusal.exit_code;
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
            eprintln!("provisioner: {e}");
            return e.exit_code();
        }
    };
    let err = exec::exec(&program, &args.argv, &env);
    eprintln!("provisioner: {err}");
    err.exit_code()
}
