//! `provisioner audit`: every user's tier, policy sizes and headroom before anyone
//! launches, and with `--aws` the read-only IAM checks (see `provisioner_iam::audit`
//! and `provisioner_iam::checks`).
//!
//! Exit codes: 0 nothing found that needs fixing, 2 usage or configuration error,
//! 5 someone would get unrestricted credentials through OVER_LIMIT, 6 (`--aws`) IAM
//! disagrees with the platform file or could not be checked.

use provisioner_core::{exit, load};
use provisioner_iam::audit::audit;
use provisioner_iam::aws::Clients;
use provisioner_iam::checks;

use crate::args::AuditArgs;

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn run(args: &AuditArgs) -> i32 {
    let path = load::config_path(args.config.as_deref(), &env_lookup);
    let platform = match load::load_file(&path, &env_lookup) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("provisioner: {e}");
            return exit::CONFIG;
        }
    };
    let report = audit(&platform);
    let iam_findings = if args.aws {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("provisioner: cannot start the async runtime: {e}");
                return exit::CREDENTIALS;
            }
        };
        runtime.block_on(async {
            let clients = Clients::new(&platform).await;
            checks::check(&clients, &platform).await
        })
    } else {
        Vec::new()
    };
    let code = report.exit_code(iam_findings.len());
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json(&iam_findings, code)).unwrap_or_default()
        );
    } else {
        print!("{}", report.text(&iam_findings, code));
    }
    code
}
