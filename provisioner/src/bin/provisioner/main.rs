//! `provisioner`: the Jupyter kernel launcher and its admin commands.
//!
//! The binary is thin: it parses arguments, calls the library, and maps outcomes to
//! the documented exit codes (see `provisioner::exit`). It never prints a secret.

mod args;
mod explain;
mod kernel;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version itself; usage errors get exit code 2.
            let code = if e.use_stderr() {
                provisioner::exit::CONFIG
            } else {
                provisioner::exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let code = match cli.command {
        Command::Explain(a) => explain::run(&a),
        Command::Kernel(a) => kernel::run(a),
        Command::Kernelspec { command } => provisioner::kernelspec::run(command),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
