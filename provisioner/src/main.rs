//! `provisioner`: the Jupyter kernel launcher and its admin commands.
//!
//! The binary is thin: it parses arguments, calls the library, and ends through
//! [`error::Error`], whose `exit_code` is the one mapping to the documented exit codes
//! (`provisioner_core::exit`). It never prints a secret.

mod args;
mod audit;
mod error;
mod explain;
mod kernel;
mod kernelspec;
mod platform;
mod policies;
mod usage;

use std::process::ExitCode;

use clap::Parser;
use provisioner_core::exit;

use args::{Cli, Command};
use error::Error;

fn main() -> ExitCode {
    let code = match run() {
        Ok(()) => exit::OK,
        Err(e) => e.exit_code(),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Runs the command line; an error has been reported (stderr, and for a kernel launch
/// the refusal kernel) by the time it is returned.
fn run() -> Result<(), Error> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout as clap renders them.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return Ok(());
        }
        Err(e) => return Err(usage::usage_error(&e)).inspect_err(Error::report),
    };
    let result = match cli.command {
        // A refused notebook launch reports through the refusal kernel.
        Command::Kernel(a) => return kernel::run(a),
        Command::Explain(a) => explain::run(&a),
        Command::Serve(a) => Error::from_exit_code(provisioner_broker::server::run(
            provisioner_broker::server::ServeOptions {
                config: a.config,
                socket: a.socket,
                state: a.state,
                pod_user: a.pod_user,
                sts: Default::default(),
                endpoint: a.endpoint,
                executor_endpoint: a.executor_endpoint,
                executor_endpoint_url: a.executor_endpoint_url,
                tls_cert: a.tls_cert,
                tls_key: a.tls_key,
            },
        )),
        Command::Kernelspec { command } => kernelspec::run(command).map_err(Error::from),
        Command::Policies {
            command: args::PoliciesCommand::Sync(a),
        } => policies::run(&a),
        Command::Audit(a) => audit::run(&a),
    };
    result.inspect_err(Error::report)
}
