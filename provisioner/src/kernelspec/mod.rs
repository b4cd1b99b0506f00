//! Writing kernel.json files that launch kernels through `provisioner`.
//!
//! `provisioner kernelspec install` writes a new kernelspec whose argv is
//! `[<provisioner>, "kernel", (--config P | --broker S), (--flow F), "--", <python>, "-m",
//! "ipykernel_launcher", "-f", "{connection_file}"]`; `provisioner kernelspec wrap`
//! copies an existing kernelspec (its logos and other resources included) under a new
//! name and puts `<provisioner> kernel ... --` in front of its argv; `list` shows what
//! Jupyter would find and which specs already launch through `provisioner`.
//!
//! Directories follow Jupyter (`jupyter_core.paths`, Linux):
//!
//! | flag | data directory (the spec goes to `DATA/kernels/NAME/`) |
//! |---|---|
//! | `--user` (default) | `$JUPYTER_DATA_DIR`, else `$XDG_DATA_HOME/jupyter`, else `~/.local/share/jupyter` |
//! | `--prefix P` | `P/share/jupyter` |
//! | `--sys-prefix` | `sys.prefix` of the Python (`--python`, else `python3` on PATH) + `/share/jupyter` |
//! | `--dir D` | `D` itself |
//!
//! `wrap` and `list` search, first match wins: every `$JUPYTER_PATH` entry, the user data
//! directory, `sys.prefix/share/jupyter` of the Python, `/usr/local/share/jupyter`,
//! `/usr/share/jupyter`. (Jupyter itself puts `sys.prefix` before the user directory when
//! it runs inside a virtualenv or conda environment; when the same name exists in both,
//! pass `--from-dir` to pick one.) Names match without regard to case, as in Jupyter.
//!
//! kernel.json is not secret (it holds paths and names only) and is written with mode
//! 0644. This module never writes outside `DATA/kernels/`, never replaces a different
//! spec without `--force`, and never wraps a spec twice. Every error is one line that
//! says what to do.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

mod dirs;
mod files;
mod install;
mod list;
mod spec;
mod wrap;

use dirs::*;
use files::*;
use install::*;
use list::*;
use spec::*;
use wrap::*;

/// The data directories searched by `wrap` and `list` after `$JUPYTER_PATH`, the user
/// directory and `sys.prefix`.
pub const SYSTEM_DATA_DIRS: &[&str] = &["/usr/local/share/jupyter", "/usr/share/jupyter"];

/// The `metadata` key that marks a spec written by this module.
pub const METADATA_KEY: &str = "provisioner";

/// Set in the environment of PySpark kernels (`kernel.json` `env`).
pub const KIND_ENV: &str = "SYN_KERNEL_KIND";

/// `provisioner kernelspec ...`
#[derive(Debug, clap::Subcommand)]
pub enum KernelspecCommand {
    /// Install a kernelspec that launches an ipykernel through provisioner.
    Install(InstallArgs),
    /// Copy an existing kernelspec under a new name, launching it through provisioner.
    Wrap(WrapArgs),
    /// List the kernelspecs Jupyter would find, and whether they launch through provisioner.
    List(ListArgs),
}

/// Where a spec is written (one of these; `--user` when none is given).
#[derive(Debug, Clone, Default, clap::Args)]
#[group(id = "location", multiple = false)]
pub struct LocationArgs {
    /// The user's data directory: $JUPYTER_DATA_DIR, else $XDG_DATA_HOME/jupyter, else ~/.local/share/jupyter (default).
    #[arg(long)]
    pub user: bool,
    /// PREFIX/share/jupyter (as `jupyter kernelspec install --prefix`).
    #[arg(long, value_name = "PATH")]
    pub prefix: Option<PathBuf>,
    /// sys.prefix/share/jupyter of the Python (--python, else python3 on PATH).
    #[arg(long)]
    pub sys_prefix: bool,
    /// This Jupyter data directory: the spec goes to DIR/kernels/NAME.
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
}

/// What kind of kernel `install` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// An ipykernel.
    Python,
    /// An ipykernel whose `pyspark` starts Spark (see kernelspecs/README.md).
    Pyspark,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Python => "python",
            Kind::Pyspark => "pyspark",
        }
    }
}

/// The resolution table a kernelspec asks for (kernels only use the notebook table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpecFlow {
    /// Interactive notebooks.
    Notebook,
    /// Scheduled or triggered notebook runs (papermill).
    NotebookRun,
}

impl SpecFlow {
    fn as_str(self) -> &'static str {
        match self {
            SpecFlow::Notebook => "notebook",
            SpecFlow::NotebookRun => "notebook-run",
        }
    }
}

/// Options shared by `install` and `wrap`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LaunchArgs {
    /// The provisioner binary the spec runs (default: this one); stored as an absolute path.
    #[arg(long, value_name = "PATH")]
    pub provisioner: Option<PathBuf>,
    /// Platform file passed as `provisioner kernel --config PATH` (else the kernel reads SYN_PLATFORM_CONFIG or the default).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The broker's socket, passed as `provisioner kernel --broker SOCKET`: kernels ask `provisioner serve` and read no platform file.
    #[arg(long, value_name = "SOCKET", conflicts_with = "config")]
    pub broker: Option<PathBuf>,
    /// Flow passed as `provisioner kernel --flow F` (else SYN_FLOW, else notebook).
    #[arg(long, value_name = "FLOW")]
    pub flow: Option<SpecFlow>,
    /// Replace an existing kernelspec of the same name that differs.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    /// Kernelspec name (letters, digits, `-._`; default python3-scoped or pyspark-scoped).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Name shown in Jupyter's launcher.
    #[arg(long, value_name = "TEXT")]
    pub display_name: Option<String>,
    #[arg(long, value_enum, default_value_t = Kind::Python)]
    pub kind: Kind,
    /// The Python that runs ipykernel (default: python3 on PATH, stored as an absolute path).
    #[arg(long, value_name = "PATH")]
    pub python: Option<OsString>,
    #[command(flatten)]
    pub location: LocationArgs,
    #[command(flatten)]
    pub launch: LaunchArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WrapArgs {
    /// Name of the kernelspec to wrap (as in `jupyter kernelspec list`).
    #[arg(value_name = "EXISTING")]
    pub existing: String,
    /// Name of the new kernelspec (default EXISTING-scoped).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Name shown in Jupyter's launcher (default: the original's, marked as scoped).
    #[arg(long, value_name = "TEXT")]
    pub display_name: Option<String>,
    /// Take EXISTING from this Jupyter data directory (DIR/kernels/EXISTING) or kernelspec directory instead of searching.
    #[arg(long, value_name = "PATH")]
    pub from_dir: Option<PathBuf>,
    /// The Python used for --sys-prefix and the search path, and in place of a bare `python`/`python3` argv[0] (default: python3 on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<OsString>,
    #[command(flatten)]
    pub location: LocationArgs,
    #[command(flatten)]
    pub launch: LaunchArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// The Python whose sys.prefix is searched (default: python3 on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<OsString>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A kernelspec command that cannot go ahead; the message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KernelspecError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, KernelspecError> {
    Err(KernelspecError(msg.into()))
}

/// How the process environment is seen (tests pass their own).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// Runs a kernelspec subcommand.
pub fn run(cmd: KernelspecCommand) -> Result<(), KernelspecError> {
    match cmd {
        KernelspecCommand::Install(a) => install(&a, &process_env).map(|o| print_outcome(&o)),
        KernelspecCommand::Wrap(a) => wrap(&a, &process_env).map(|o| print_outcome(&o)),
        KernelspecCommand::List(a) => list(&a, &process_env).map(|specs| {
            if a.json {
                let v =
                    json!({ "kernelspecs": specs.iter().map(Listed::to_json).collect::<Vec<_>>() });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", list_table(&specs));
            }
        }),
    }
}

fn print_outcome(o: &Outcome) {
    for n in &o.notes {
        eprintln!("provisioner: note: {n}");
    }
    let verb = match o.status {
        Status::Installed => "Installed",
        Status::Replaced => "Replaced",
        Status::Unchanged => "Unchanged (already installed)",
    };
    println!("{verb} kernelspec {} in {}", o.name, o.dir.display());
}

/// What `install` or `wrap` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub name: String,
    /// The kernelspec directory (`DATA/kernels/NAME`).
    pub dir: PathBuf,
    pub status: Status,
    /// Things the admin should know (substitutions, missing files); never errors.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Installed,
    Replaced,
    Unchanged,
}
