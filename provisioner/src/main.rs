//! `provisioner`: the Jupyter kernel launcher and its admin commands.
//!
//! The binary is thin: it parses arguments, calls the library, and maps outcomes to
//! the documented exit codes (see `provisioner_core::exit`). It never prints a secret.

mod args;
mod audit;
mod explain;
mod kernel;
mod kernelspec;
mod policies;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout as clap renders them; usage errors are
            // one line on stderr and exit code 2.
            if !e.use_stderr() {
                let _ = e.print();
                return ExitCode::from(provisioner_core::exit::OK as u8);
            }
            eprintln!("{}", usage_error_line(&e.render().to_string(), e.kind()));
            return ExitCode::from(provisioner_core::exit::CONFIG as u8);
        }
    };
    let code = match cli.command {
        Command::Explain(a) => explain::run(&a),
        Command::Kernel(a) => kernel::run(a),
        Command::Serve(a) => {
            provisioner_broker::server::run(provisioner_broker::server::ServeOptions {
                config: a.config,
                socket: a.socket,
                state: a.state,
                pod_user: a.pod_user,
                sts: Default::default(),
                endpoint: a.endpoint,
            })
        }
        Command::Kernelspec { command } => crate::kernelspec::run(command),
        Command::Policies {
            command: args::PoliciesCommand::Sync(a),
        } => policies::run(&a),
        Command::Audit(a) => audit::run(&a),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// clap renders a usage error as several paragraphs (the error, an optional tip, the
/// usage, "For more information..."), or as the whole help when a subcommand is
/// missing. The product's rule is one line naming the problem and the fix, so the
/// paragraphs are folded into `provisioner: PROBLEM; fix: ...`.
fn usage_error_line(rendered: &str, kind: clap::error::ErrorKind) -> String {
    use clap::error::ErrorKind;
    let paragraphs: Vec<String> = rendered
        .split("\n\n")
        .map(|p| {
            p.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|p| !p.is_empty())
        .collect();
    let usage = paragraphs
        .iter()
        .find_map(|p| p.strip_prefix("Usage: "))
        .map(|u| u.split(" Commands:").next().unwrap_or(u).to_string());
    let commands: Vec<&str> = rendered
        .split("\n\n")
        .find_map(|p| p.trim_start().strip_prefix("Commands:"))
        .map(|list| {
            list.lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|c| *c != "help")
                .collect()
        })
        .unwrap_or_default();
    let problem = match kind {
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            "no subcommand given".to_string()
        }
        _ => paragraphs
            .first()
            .map(|p| p.strip_prefix("error: ").unwrap_or(p).to_string())
            .unwrap_or_else(|| "invalid arguments".to_string()),
    };
    let mut fix: Vec<String> = paragraphs
        .iter()
        .filter_map(|p| p.strip_prefix("tip: "))
        .map(str::to_string)
        .collect();
    if let Some(u) = usage {
        let mut text = format!("the usage is `{u}`");
        if !commands.is_empty() {
            text.push_str(&format!(" with COMMAND one of {}", commands.join(", ")));
        }
        fix.push(text);
    }
    fix.push("--help explains every option".into());
    format!("provisioner: {problem}; fix: {}", fix.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn line(args: &[&str]) -> String {
        let e = Cli::try_parse_from(args).unwrap_err();
        assert!(e.use_stderr());
        usage_error_line(&e.render().to_string(), e.kind())
    }

    #[test]
    fn usage_errors_are_one_line_with_problem_and_fix() {
        for args in [
            &["provisioner"][..],
            &["provisioner", "bogus"],
            &["provisioner", "kernel"],
            &["provisioner", "explain", "--nope"],
            &["provisioner", "explain", "--flow", "batch"],
            &["provisioner", "kernelspec"],
            &["provisioner", "kernelspec", "wrap"],
            &["provisioner", "kernel", "--user"],
        ] {
            let l = line(args);
            assert!(!l.contains('\n'), "{args:?}: {l}");
            assert!(
                l.starts_with("provisioner: ") && l.contains("; fix: "),
                "{args:?}: {l}"
            );
        }
        assert_eq!(
            line(&["provisioner"]),
            "provisioner: no subcommand given; fix: the usage is `provisioner <COMMAND>` with COMMAND one of explain, kernel, kernelspec, serve, policies, audit; --help explains every option"
        );
        let l = line(&["provisioner", "kernel"]);
        assert!(
            l.contains("<ARGV>") && l.contains("provisioner kernel -- <ARGV>"),
            "{l}"
        );
        let l = line(&["provisioner", "explain", "--flow", "batch"]);
        assert!(
            l.contains("unknown flow \"batch\"; use notebook, notebook-run or job"),
            "{l}"
        );
    }
}
