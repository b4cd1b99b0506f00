//! Command-line arguments of `provisioner`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use provisioner_core::context::{ContextFlags, Flow};

#[derive(Debug, Parser)]
#[command(
    name = "provisioner",
    version,
    // A missing subcommand is a one-line usage error like any other (see `usage`),
    // not the whole help on stderr.
    arg_required_else_help = false,
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
    #[command(arg_required_else_help = false)]
    Kernelspec {
        #[command(subcommand)]
        command: crate::kernelspec::KernelspecCommand,
    },
    /// The broker: hold the base credentials and mint for local users who connect to SOCKET.
    Serve(ServeArgs),
    /// Managed session policies in IAM.
    #[command(arg_required_else_help = false)]
    Policies {
        #[command(subcommand)]
        command: PoliciesCommand,
    },
    /// Every user's tier, policy sizes and headroom; with --aws, read-only IAM checks.
    Audit(AuditArgs),
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Create and update the platform's managed session policies in IAM (plan first).
    Sync(PoliciesSyncArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 done (with --dry-run: planned), 2 usage or configuration error, \
3 plan refused (a policy to prune is attached, a document over IAM's limit), 4 an IAM call failed."
)]
pub struct PoliciesSyncArgs {
    /// Platform file (else SYN_PLATFORM_CONFIG, else /etc/provisioner/platform.json).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object instead of the readable plan.
    #[arg(long)]
    pub json: bool,
    /// Also delete policies under the managed path that nothing references.
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 nothing to fix, 2 usage or configuration error, \
5 someone would get unrestricted credentials through OVER_LIMIT, \
6 (--aws) IAM disagrees with the platform file or could not be checked."
)]
pub struct AuditArgs {
    /// Platform file (else SYN_PLATFORM_CONFIG, else /etc/provisioner/platform.json).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print one JSON object instead of the readable report.
    #[arg(long)]
    pub json: bool,
    /// Also check, read-only, the roles, their session durations and trust, the policy
    /// simulator and the managed policies in IAM.
    #[arg(long)]
    pub aws: bool,
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
    /// Loopback address of the credentials endpoint (e.g. 127.0.0.1:8125) when not
    /// socket-activated. A port under 1024 keeps other users from taking it while the
    /// broker restarts (README, "Credentials endpoint").
    #[arg(long, value_name = "ADDR:PORT")]
    pub endpoint: Option<std::net::SocketAddr>,
    /// Address of the HTTPS endpoint for executors on other hosts (e.g. 0.0.0.0:8443),
    /// when not socket-activated; needs --tls-cert and --tls-key (README, "Executors on
    /// other hosts").
    #[arg(long, value_name = "ADDR:PORT")]
    pub executor_endpoint: Option<std::net::SocketAddr>,
    /// The origin executors connect to, https://HOST:PORT with a name the certificate
    /// holds (default: https:// and the --executor-endpoint address).
    #[arg(long, value_name = "URL")]
    pub executor_endpoint_url: Option<String>,
    /// PEM certificate chain of the executor endpoint (server certificate first).
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the executor endpoint: a regular file owned by the broker's
    /// user, mode 0600 or stricter.
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
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
