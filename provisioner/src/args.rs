//! Command-line arguments of `provisioner`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use provisioner_core::context::{ContextFlags, Flow};

#[derive(Debug, Parser)]
#[command(
    name = "provisioner",
    version,
    about = "Starts notebook kernels with the AWS identity the platform decides, and explains that decision",
    after_help = "Exit codes before exec: 0 ok, 2 usage or configuration error, 3 refused by policy, \
4 credentials could not be obtained, 127 program not found. After exec, the program's own."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dry run: print the decision and the session policy for a context. No STS call.
    Explain(ExplainArgs),
    /// Kernelspec entry point: resolve, obtain credentials, exec ARGV.
    Kernel(KernelArgs),
    /// Install or wrap kernelspecs that launch through provisioner.
    Kernelspec {
        #[command(subcommand)]
        command: crate::kernelspec::KernelspecCommand,
    },
    /// The broker: hold the base credentials and mint for local users who connect to SOCKET.
    Serve(ServeArgs),
}

/// The context flags shared by every subcommand that resolves.
#[derive(Debug, Clone, Args)]
pub struct ContextArgs {
    /// Platform file (else SYN_PLATFORM_CONFIG, else /etc/provisioner/platform.json).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// User id (else SYN_USER, KERNEL_USERNAME, JUPYTERHUB_USER).
    #[arg(long, value_name = "ID")]
    pub user: Option<String>,
    /// Workspace id (else SYN_WORKSPACE_ID).
    #[arg(long, value_name = "ID")]
    pub workspace: Option<String>,
    /// Runtime template id (else SYN_RUNTIME_TEMPLATE_ID).
    #[arg(long, value_name = "ID")]
    pub runtime_template: Option<String>,
    /// Which resolution table applies (else SYN_FLOW, else notebook).
    #[arg(long, value_name = "FLOW", value_parser = parse_flow)]
    pub flow: Option<Flow>,
    /// Ask the broker on this socket instead of minting here (else SYN_BROKER_SOCKET).
    /// No platform file and no base credentials are read then.
    #[arg(long, value_name = "SOCKET")]
    pub broker: Option<PathBuf>,
}

impl ContextArgs {
    pub fn flags(&self) -> ContextFlags {
        ContextFlags {
            user: self.user.clone(),
            workspace: self.workspace.clone(),
            runtime_template: self.runtime_template.clone(),
            flow: self.flow,
            job_id: None,
        }
    }
}

fn parse_flow(s: &str) -> Result<Flow, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Platform file (reloaded on SIGHUP).
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,
    /// Unix socket to listen on, in a directory only the service user can write.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// State directory for the session database (created 0700); without it sessions
    /// live in memory only.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Sidecar mode: serve only this platform user, whoever connects (set by the
    /// spawner in the pod spec; see README "Kubernetes").
    #[arg(long, value_name = "ID")]
    pub pod_user: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// Print one JSON object instead of the readable report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KernelArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// The kernel's argv, after `--` (e.g. python3 -m ipykernel_launcher -f {connection_file}).
    #[arg(last = true, required = true, value_name = "ARGV")]
    pub argv: Vec<OsString>,
}
