//! `provisioner audit`: every user's tier, policy sizes and headroom before anyone
//! launches, and with `--aws` the read-only IAM checks (see `provisioner_iam::audit`
//! and `provisioner_iam::checks`).
//!
//! Exit codes: 0 nothing found that needs fixing, 2 usage or configuration error,
//! 5 someone would get unrestricted credentials through OVER_LIMIT, 6 (`--aws`) IAM
//! disagrees with the platform file or could not be checked.

use provisioner_iam::audit::audit;
use provisioner_iam::aws::Clients;
use provisioner_iam::checks;

use crate::args::AuditArgs;
use crate::error::Error;
use crate::platform;

pub fn run(args: &AuditArgs) -> Result<(), Error> {
    let platform = platform::load(args.config.as_deref())?;
    let report = audit(&platform);
    let iam_findings = if args.aws {
        platform::runtime()?.block_on(async {
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
    Error::from_exit_code(code)
}
