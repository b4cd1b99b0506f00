//! Writing kernel.json files that launch kernels through `provisioner`.
//!
//! `provisioner kernelspec install` writes a new kernelspec whose argv is
//! `[<provisioner>, "kernel", (--config P), (--flow F), "--", <python>, "-m",
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

use provisioner_core::exit;

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

/// Runs a kernelspec subcommand; returns the exit code.
pub fn run(cmd: KernelspecCommand) -> i32 {
    let result = match cmd {
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
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("provisioner: kernelspec: {e}");
            exit::CONFIG
        }
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

// ---------------------------------------------------------------------------------------
// install

/// `provisioner kernelspec install`.
pub fn install(a: &InstallArgs, env: EnvLookup) -> Result<Outcome, KernelspecError> {
    let mut notes = Vec::new();
    let name = spec_name(a.name.as_deref().unwrap_or(match a.kind {
        Kind::Python => "python3-scoped",
        Kind::Pyspark => "pyspark-scoped",
    }))?;
    let path_var = env("PATH");
    let python = kernel_python(a.python.as_deref(), path_var.as_deref())?;
    if let Some(n) = ipykernel_check(&python) {
        notes.push(n);
    }
    let launch = resolve_launch(&a.launch, &mut notes)?;
    let data = data_dir(&a.location, &python, env)?;

    let mut argv = launch.prefix_argv();
    argv.extend(
        [
            python.to_string_lossy().as_ref(),
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ]
        .map(str::to_string),
    );
    let display = a.display_name.clone().unwrap_or_else(|| {
        match a.kind {
            Kind::Python => "Python 3 (scoped AWS identity)",
            Kind::Pyspark => "PySpark (scoped AWS identity)",
        }
        .to_string()
    });
    let mut meta = launch.metadata("install");
    meta.insert("kind".into(), json!(a.kind.as_str()));
    meta.insert("python".into(), json!(python.to_string_lossy()));
    let mut spec = Map::new();
    spec.insert("argv".into(), json!(argv));
    spec.insert("display_name".into(), json!(display));
    spec.insert("language".into(), json!("python"));
    spec.insert("interrupt_mode".into(), json!("signal"));
    if a.kind == Kind::Pyspark {
        // Executors must run the same Python as the driver in the kernel. The kind lets
        // the platform (and spark-submit-wrap) tell PySpark kernels apart.
        // PYSPARK_SUBMIT_ARGS is left to the platform: setting it here would pin the
        // master and deploy mode for every user of the spec.
        spec.insert(
            "env".into(),
            json!({"PYSPARK_PYTHON": python.to_string_lossy(), KIND_ENV: "pyspark"}),
        );
    }
    spec.insert("metadata".into(), json!({ METADATA_KEY: meta }));
    write_spec(
        &data,
        &name,
        &Value::Object(spec),
        None,
        launch.force,
        notes,
    )
}

/// The kernel's Python: as given (bare names stay bare and are found on PATH at launch;
/// relative paths become absolute), else `python3` on PATH as an absolute path.
fn kernel_python(
    given: Option<&OsStr>,
    path_var: Option<&OsStr>,
) -> Result<OsString, KernelspecError> {
    match given {
        Some(p) if p.is_empty() => {
            err("--python is empty; give the path of the Python that has ipykernel")
        }
        Some(p) if p.as_encoded_bytes().contains(&b'/') => {
            Ok(absolute(Path::new(p), "--python")?.into_os_string())
        }
        Some(p) => Ok(p.to_os_string()),
        None => match provisioner_core::exec::find_program(OsStr::new("python3"), path_var) {
            Ok(p) => Ok(absolute(&p, "python3")?.into_os_string()),
            Err(_) => err(
                "python3 is not on PATH; pass --python /path/to/python (the interpreter that has ipykernel)",
            ),
        },
    }
}

/// A note when the Python cannot import ipykernel (the kernel would die at start).
fn ipykernel_check(python: &OsStr) -> Option<String> {
    let shown = python.to_string_lossy();
    match Command::new(python)
        .args(["-c", "import ipykernel"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(_) => Some(format!(
            "{shown} cannot import ipykernel; install it ({shown} -m pip install ipykernel) or pass --python"
        )),
        Err(e) => Some(format!(
            "cannot run {shown} ({e}); the kernel will not start until it exists"
        )),
    }
}

// ---------------------------------------------------------------------------------------
// wrap

/// `provisioner kernelspec wrap`.
pub fn wrap(a: &WrapArgs, env: EnvLookup) -> Result<Outcome, KernelspecError> {
    let mut notes = Vec::new();
    let existing = a.existing.to_lowercase();
    if existing.is_empty() {
        return err(
            "the kernelspec to wrap is empty; give its name as shown by `jupyter kernelspec list`",
        );
    }
    let name = spec_name(a.name.as_deref().unwrap_or(&format!("{existing}-scoped")))?;
    let path_var = env("PATH");
    let python = a.python.clone().unwrap_or_else(|| "python3".into());

    let source = match &a.from_dir {
        Some(d) => {
            let d = absolute(d, "--from-dir")?;
            if d.join("kernel.json").is_file() {
                d
            } else {
                find_in(std::slice::from_ref(&d), &existing).ok_or_else(|| {
                    KernelspecError(format!(
                        "no kernelspec \"{existing}\" in {} (looked for {}/kernels/{existing}/kernel.json); check the name or the directory",
                        d.display(),
                        d.display()
                    ))
                })?
            }
        }
        None => {
            let dirs = search_path(Some(&python), env);
            find_in(&dirs, &existing).ok_or_else(|| {
                KernelspecError(format!(
                    "no kernelspec \"{existing}\" in {}; install it first (e.g. python3 -m ipykernel install --user) or pass --from-dir",
                    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
                ))
            })?
        }
    };
    let original = read_spec(&source.join("kernel.json"))?;
    let orig_argv = spec_argv(&original).map_err(|why| {
        KernelspecError(format!(
            "{}: {why}; fix that kernelspec first",
            source.join("kernel.json").display()
        ))
    })?;
    if launches_through_provisioner(&original) {
        return err(format!(
            "kernelspec \"{existing}\" at {} already launches through provisioner; use it as it is, or wrap the original spec it was made from",
            source.display()
        ));
    }

    let launch = resolve_launch(&a.launch, &mut notes)?;
    let data = data_dir(&a.location, &python, env)?;

    let mut inner = orig_argv.clone();
    let mut substituted = None;
    if is_bare_python(&inner[0]) {
        // Jupyter runs its own interpreter for a bare python argv[0]; once provisioner
        // is argv[0] that no longer happens, so pin the interpreter now.
        match bare_python_replacement(&inner[0], a.python.as_deref(), &source, path_var.as_deref()) {
            Some(p) => {
                notes.push(format!(
                    "the original argv starts with \"{}\", which Jupyter replaces with its own Python; the wrapped spec runs {} (pass --python to choose another)",
                    inner[0],
                    p.display()
                ));
                inner[0] = p.to_string_lossy().into_owned();
                substituted = Some(inner[0].clone());
            }
            None => notes.push(format!(
                "the original argv starts with \"{}\", which Jupyter replaces with its own Python; it is left as is and found on PATH at launch (pass --python to pin one)",
                inner[0]
            )),
        }
    }
    let mut argv = launch.prefix_argv();
    argv.extend(inner);

    let mut spec = original.clone();
    let orig_display = original
        .get("display_name")
        .and_then(Value::as_str)
        .unwrap_or(&existing)
        .to_string();
    spec.insert("argv".into(), json!(argv));
    spec.insert(
        "display_name".into(),
        json!(
            a.display_name
                .clone()
                .unwrap_or_else(|| format!("{orig_display} (scoped AWS identity)"))
        ),
    );
    let mut meta = launch.metadata("wrap");
    meta.insert("wrapped".into(), json!(existing));
    meta.insert("wrapped_from".into(), json!(source.to_string_lossy()));
    meta.insert("original_argv".into(), json!(orig_argv));
    if let Some(p) = substituted {
        meta.insert("python".into(), json!(p));
    }
    let mut metadata = match original.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    metadata.insert(METADATA_KEY.into(), Value::Object(meta));
    spec.insert("metadata".into(), Value::Object(metadata));
    write_spec(
        &data,
        &name,
        &Value::Object(spec),
        Some(&source),
        launch.force,
        notes,
    )
}

fn is_bare_python(s: &str) -> bool {
    match s.strip_prefix("python") {
        Some("") | Some("3") => true,
        Some(rest) => rest
            .strip_prefix("3.")
            .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// The interpreter to put in place of a bare `python` argv[0]: `--python`; else the
/// environment that owns the spec (`PREFIX/share/jupyter/kernels/NAME` →
/// `PREFIX/bin/NAME`, how ipykernel ships its spec); else the name on PATH.
fn bare_python_replacement(
    bare: &str,
    given: Option<&OsStr>,
    source: &Path,
    path_var: Option<&OsStr>,
) -> Option<PathBuf> {
    if let Some(p) = given {
        return if p.as_encoded_bytes().contains(&b'/') {
            std::path::absolute(p).ok()
        } else {
            provisioner_core::exec::find_program(p, path_var).ok()
        };
    }
    let prefix = source.parent()?.parent()?;
    if prefix.file_name() == Some(OsStr::new("jupyter"))
        && let Some(share) = prefix
            .parent()
            .filter(|s| s.file_name() == Some(OsStr::new("share")))
    {
        let candidate = share.parent()?.join("bin").join(bare);
        if is_executable_file(&candidate) {
            return Some(candidate);
        }
    }
    provisioner_core::exec::find_program(OsStr::new(bare), path_var)
        .ok()
        .and_then(|p| std::path::absolute(p).ok())
}

// ---------------------------------------------------------------------------------------
// list

/// One kernelspec found on the search path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub dir: PathBuf,
    /// Whether its argv launches through provisioner.
    pub scoped: bool,
    /// A spec of the same name earlier on the search path hides this one.
    pub shadowed: bool,
    /// Why the kernel.json cannot be used, if it cannot.
    pub problem: Option<String>,
}

impl Listed {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "resource_dir": self.dir.to_string_lossy(),
            "scoped": self.scoped,
            "shadowed": self.shadowed,
            "problem": self.problem,
        })
    }
}

/// `provisioner kernelspec list`: every spec on the search path, in search order.
pub fn list(a: &ListArgs, env: EnvLookup) -> Result<Vec<Listed>, KernelspecError> {
    let python = a.python.clone().unwrap_or_else(|| "python3".into());
    Ok(list_in(&search_path(Some(&python), env)))
}

/// The specs in `dirs` (data directories), in search order, names sorted within one.
pub fn list_in(dirs: &[PathBuf]) -> Vec<Listed> {
    let mut out: Vec<Listed> = Vec::new();
    for d in dirs {
        let Ok(entries) = fs::read_dir(d.join("kernels")) else {
            continue;
        };
        let mut found: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("kernel.json").is_file())
            .filter_map(|p| Some((p.file_name()?.to_string_lossy().to_lowercase(), p)))
            .collect();
        found.sort();
        for (name, dir) in found {
            let shadowed = out.iter().any(|l| l.name == name);
            let (scoped, problem) = match read_spec(&dir.join("kernel.json")) {
                Ok(spec) => (
                    launches_through_provisioner(&spec),
                    spec_argv(&spec).err().map(str::to_string),
                ),
                Err(e) => (false, Some(e.0)),
            };
            out.push(Listed {
                name,
                dir,
                scoped,
                shadowed,
                problem,
            });
        }
    }
    out
}

fn list_table(specs: &[Listed]) -> String {
    if specs.is_empty() {
        return "No kernelspecs found.\n".into();
    }
    let width = specs.iter().map(|l| l.name.len()).max().unwrap_or(0);
    let mut s = String::new();
    for l in specs {
        let state = match (&l.problem, l.shadowed, l.scoped) {
            (Some(_), _, _) => "invalid",
            (None, true, _) => "shadowed",
            (None, false, true) => "scoped",
            (None, false, false) => "unscoped",
        };
        s.push_str(&format!(
            "{:<width$}  {state:<8}  {}",
            l.name,
            l.dir.display()
        ));
        if let Some(p) = &l.problem {
            s.push_str(&format!("  ({p})"));
        }
        s.push('\n');
    }
    s
}

// ---------------------------------------------------------------------------------------
// directories

/// The user's Jupyter data directory (Linux rules of `jupyter_core`).
pub fn user_data_dir(env: EnvLookup) -> Result<PathBuf, KernelspecError> {
    let get = |n: &str| env(n).filter(|v| !v.is_empty());
    if let Some(d) = get("JUPYTER_DATA_DIR") {
        return absolute(Path::new(&d), "JUPYTER_DATA_DIR");
    }
    if let Some(x) = get("XDG_DATA_HOME") {
        return Ok(absolute(Path::new(&x), "XDG_DATA_HOME")?.join("jupyter"));
    }
    match get("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/jupyter")),
        None => err(
            "HOME is not set, so the user data directory is unknown; set HOME or JUPYTER_DATA_DIR, or pass --prefix or --dir",
        ),
    }
}

/// `sys.prefix` of `python` (run with the current PATH when it is a bare name).
pub fn sys_prefix(python: &OsStr) -> Result<PathBuf, KernelspecError> {
    let shown = python.to_string_lossy();
    let out = Command::new(python)
        .args(["-c", "import sys; print(sys.prefix)"])
        .output()
        .map_err(|e| {
            KernelspecError(format!(
                "cannot run {shown} to find sys.prefix ({e}); pass --python PATH, or use --prefix or --dir"
            ))
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if !out.status.success() || !line.starts_with('/') {
        let why = String::from_utf8_lossy(&out.stderr)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no sys.prefix printed")
            .trim()
            .to_string();
        return err(format!(
            "{shown} did not report its sys.prefix ({why}); pass --python PATH, or use --prefix or --dir"
        ));
    }
    Ok(PathBuf::from(line))
}

/// The data directory a location flag names.
pub fn data_dir(
    loc: &LocationArgs,
    python: &OsStr,
    env: EnvLookup,
) -> Result<PathBuf, KernelspecError> {
    if let Some(d) = &loc.dir {
        return absolute(d, "--dir");
    }
    if let Some(p) = &loc.prefix {
        return Ok(absolute(p, "--prefix")?.join("share/jupyter"));
    }
    if loc.sys_prefix {
        return Ok(sys_prefix(python)?.join("share/jupyter"));
    }
    user_data_dir(env)
}

/// Jupyter's data search path (module docs give the order), without duplicates.
/// `python` gives the `sys.prefix` entry; it is left out when that Python cannot run.
pub fn search_path(python: Option<&OsStr>, env: EnvLookup) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(jp) = env("JUPYTER_PATH") {
        dirs.extend(
            std::env::split_paths(&jp)
                .filter(|p| !p.as_os_str().is_empty())
                .filter_map(|p| std::path::absolute(p).ok()),
        );
    }
    if let Ok(u) = user_data_dir(env) {
        dirs.push(u);
    }
    if let Some(p) = python.and_then(|p| sys_prefix(p).ok()) {
        dirs.push(p.join("share/jupyter"));
    }
    dirs.extend(SYSTEM_DATA_DIRS.iter().map(PathBuf::from));
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let new = !seen.contains(d);
        seen.push(d.clone());
        new
    });
    dirs
}

/// The first `DATA/kernels/NAME` directory with a kernel.json, names compared
/// without regard to case.
pub fn find_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    let want = name.to_lowercase();
    dirs.iter().find_map(|d| {
        let mut hits: Vec<PathBuf> = fs::read_dir(d.join("kernels"))
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy().to_lowercase() == want)
                    && p.join("kernel.json").is_file()
            })
            .collect();
        hits.sort();
        hits.into_iter().next()
    })
}

// ---------------------------------------------------------------------------------------
// spec contents

/// Checks a kernelspec name the way jupyter_client does; returns it lower-cased (Jupyter
/// lower-cases names when it installs and looks them up).
pub fn spec_name(name: &str) -> Result<String, KernelspecError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name != "."
        && name != "..";
    if ok {
        Ok(name.to_lowercase())
    } else {
        err(format!(
            "kernelspec name \"{}\" is invalid; use ASCII letters, digits and - . _ only (pass --name)",
            name.escape_default()
        ))
    }
}

/// Whether a spec already launches through provisioner: it carries our metadata, or its
/// argv is `.../provisioner kernel ...`.
pub fn launches_through_provisioner(spec: &Map<String, Value>) -> bool {
    let marked = spec
        .get("metadata")
        .and_then(|m| m.get(METADATA_KEY))
        .is_some_and(Value::is_object);
    let argv = spec_argv(spec).unwrap_or_default();
    let by_argv = argv.len() >= 2
        && argv[1] == "kernel"
        && Path::new(&argv[0])
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("provisioner"));
    marked || by_argv
}

/// The argv of a spec, or why it has none Jupyter could run.
pub fn spec_argv(spec: &Map<String, Value>) -> Result<Vec<String>, &'static str> {
    let Some(Value::Array(items)) = spec.get("argv") else {
        return Err("kernel.json has no argv list");
    };
    let argv: Option<Vec<String>> = items
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect();
    match argv {
        Some(a) if !a.is_empty() && !a[0].is_empty() => Ok(a),
        Some(_) => Err("kernel.json argv is empty"),
        None => Err("kernel.json argv has a non-string entry"),
    }
}

fn read_spec(path: &Path) -> Result<Map<String, Value>, KernelspecError> {
    let text = fs::read_to_string(path).map_err(|e| {
        KernelspecError(format!(
            "cannot read {} ({e}); check the path and its permissions",
            path.display()
        ))
    })?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => err(format!(
            "{} is not a JSON object; fix or remove that kernelspec",
            path.display()
        )),
        Err(e) => err(format!(
            "{} is not valid JSON ({e}); fix or remove that kernelspec",
            path.display()
        )),
    }
}

/// The resolved provisioner, config and flow, and what goes before `--`.
struct Launch {
    provisioner: PathBuf,
    config: Option<PathBuf>,
    flow: Option<SpecFlow>,
    force: bool,
}

impl Launch {
    fn prefix_argv(&self) -> Vec<String> {
        let mut v = vec![
            self.provisioner.to_string_lossy().into_owned(),
            "kernel".into(),
        ];
        if let Some(c) = &self.config {
            v.push("--config".into());
            v.push(c.to_string_lossy().into_owned());
        }
        if let Some(f) = self.flow {
            v.push("--flow".into());
            v.push(f.as_str().into());
        }
        v.push("--".into());
        v
    }

    fn metadata(&self, command: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("command".into(), json!(command));
        m.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
        m.insert(
            "config".into(),
            json!(self.config.as_ref().map(|c| c.to_string_lossy())),
        );
        m.insert("flow".into(), json!(self.flow.map(SpecFlow::as_str)));
        m
    }
}

fn resolve_launch(a: &LaunchArgs, notes: &mut Vec<String>) -> Result<Launch, KernelspecError> {
    let provisioner = match &a.provisioner {
        Some(p) => absolute(p, "--provisioner")?,
        None => std::env::current_exe().map_err(|e| {
            KernelspecError(format!(
                "cannot tell where this provisioner binary is ({e}); pass --provisioner PATH"
            ))
        })?,
    };
    if !is_executable_file(&provisioner) {
        return err(format!(
            "{} is not an executable file; pass --provisioner with the installed provisioner binary",
            provisioner.display()
        ));
    }
    let config = match &a.config {
        Some(c) => {
            let c = absolute(c, "--config")?;
            if !c.is_file() {
                notes.push(format!(
                    "{} does not exist yet; kernels will fail to start until it does",
                    c.display()
                ));
            }
            Some(c)
        }
        None => None,
    };
    Ok(Launch {
        provisioner,
        config,
        flow: a.flow,
        force: a.force,
    })
}

// ---------------------------------------------------------------------------------------
// files

/// Writes `DATA/kernels/NAME` with `spec` as kernel.json and, for a wrap, every other
/// file of `resources`. The directory is built beside the target and renamed into place,
/// so Jupyter never sees half a spec.
fn write_spec(
    data: &Path,
    name: &str,
    spec: &Value,
    resources: Option<&Path>,
    force: bool,
    notes: Vec<String>,
) -> Result<Outcome, KernelspecError> {
    let kernels = data.join("kernels");
    let target = kernels.join(name);
    let io = |what: &str, p: &Path, e: std::io::Error| {
        KernelspecError(format!(
            "cannot {what} {} ({e}); check its permissions or choose another location (--user, --prefix, --sys-prefix, --dir)",
            p.display()
        ))
    };
    let existed = target.exists() || target.is_symlink();
    if existed {
        if !target.is_dir() {
            return err(format!(
                "{} exists and is not a kernelspec directory; remove it or choose another --name",
                target.display()
            ));
        }
        let same = read_spec(&target.join("kernel.json"))
            .map(|m| Value::Object(m) == *spec)
            .unwrap_or(false);
        if same {
            return Ok(Outcome {
                name: name.into(),
                dir: target,
                status: Status::Unchanged,
                notes,
            });
        }
        if !force {
            return err(format!(
                "a different kernelspec \"{name}\" already exists at {}; pass --force to replace it, or choose another --name",
                target.display()
            ));
        }
    }
    fs::create_dir_all(&kernels).map_err(|e| io("create", &kernels, e))?;
    let pid = std::process::id();
    let staging = kernels.join(format!(".{name}.provisioner-new-{pid}"));
    let old = kernels.join(format!(".{name}.provisioner-old-{pid}"));
    let _ = fs::remove_dir_all(&staging);
    let built = (|| {
        fs::create_dir(&staging).map_err(|e| io("create", &staging, e))?;
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))
            .map_err(|e| io("set permissions on", &staging, e))?;
        if let Some(src) = resources {
            copy_resources(src, &staging)?;
        }
        let mut text = serde_json::to_string_pretty(spec).unwrap_or_default();
        text.push('\n');
        let file = staging.join("kernel.json");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&file)
            .map_err(|e| io("write", &file, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| io("write", &file, e))?;
        // The umask may have narrowed the mode; kernel.json is meant to be readable.
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644))
            .map_err(|e| io("set permissions on", &file, e))?;
        if existed {
            fs::rename(&target, &old).map_err(|e| io("move aside", &target, e))?;
        }
        fs::rename(&staging, &target).map_err(|e| io("create", &target, e))?;
        if existed {
            let _ = fs::remove_dir_all(&old);
        }
        Ok(())
    })();
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&staging);
        if existed && !target.exists() {
            let _ = fs::rename(&old, &target);
        }
        return Err(e);
    }
    Ok(Outcome {
        name: name.into(),
        dir: target,
        status: if existed {
            Status::Replaced
        } else {
            Status::Installed
        },
        notes,
    })
}

/// Copies a spec's resources (logos, kernel.js, ...) except its kernel.json. Symlinks
/// are followed so the copy does not depend on the original staying in place; anything
/// that is neither a file nor a directory is skipped. Modes are copied with the files.
fn copy_resources(src: &Path, dst: &Path) -> Result<(), KernelspecError> {
    copy_tree(src, dst, true)
}

fn copy_tree(src: &Path, dst: &Path, top: bool) -> Result<(), KernelspecError> {
    let fail = |p: &Path, e: std::io::Error| {
        KernelspecError(format!(
            "cannot copy {} ({e}); check its permissions",
            p.display()
        ))
    };
    for entry in fs::read_dir(src).map_err(|e| fail(src, e))? {
        let entry = entry.map_err(|e| fail(src, e))?;
        if top && entry.file_name() == "kernel.json" {
            continue;
        }
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::metadata(&from).map_err(|e| fail(&from, e))?;
        if meta.is_dir() {
            fs::create_dir(&to).map_err(|e| fail(&to, e))?;
            copy_tree(&from, &to, false)?;
        } else if meta.is_file() {
            fs::copy(&from, &to).map_err(|e| fail(&from, e))?;
        }
    }
    Ok(())
}

fn is_executable_file(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn absolute(p: &Path, what: &str) -> Result<PathBuf, KernelspecError> {
    if p.as_os_str().is_empty() {
        return err(format!("{what} is empty; give a path"));
    }
    std::path::absolute(p).map_err(|e| {
        KernelspecError(format!(
            "{what} {}: cannot make it absolute ({e}); give an absolute path",
            p.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let m: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), OsString::from(v)))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn user_data_dir_follows_jupyter_precedence() {
        let e = env_of(&[
            ("JUPYTER_DATA_DIR", "/j"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(user_data_dir(&e).unwrap(), PathBuf::from("/j"));
        let e = env_of(&[
            ("JUPYTER_DATA_DIR", ""),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(user_data_dir(&e).unwrap(), PathBuf::from("/x/jupyter"));
        let e = env_of(&[("HOME", "/h")]);
        assert_eq!(
            user_data_dir(&e).unwrap(),
            PathBuf::from("/h/.local/share/jupyter")
        );
        let e = env_of(&[]);
        let msg = user_data_dir(&e).unwrap_err().0;
        assert!(msg.contains("set HOME or JUPYTER_DATA_DIR"), "{msg}");
    }

    #[test]
    fn location_flags_map_to_data_dirs() {
        let e = env_of(&[("HOME", "/h")]);
        let py = OsStr::new("python3");
        let loc = LocationArgs {
            prefix: Some("/opt/env".into()),
            ..Default::default()
        };
        assert_eq!(
            data_dir(&loc, py, &e).unwrap(),
            PathBuf::from("/opt/env/share/jupyter")
        );
        let loc = LocationArgs {
            dir: Some("/srv/jupyter".into()),
            ..Default::default()
        };
        assert_eq!(
            data_dir(&loc, py, &e).unwrap(),
            PathBuf::from("/srv/jupyter")
        );
        let loc = LocationArgs::default();
        assert_eq!(
            data_dir(&loc, py, &e).unwrap(),
            PathBuf::from("/h/.local/share/jupyter")
        );
        let loc = LocationArgs {
            user: true,
            ..Default::default()
        };
        assert_eq!(
            data_dir(&loc, py, &e).unwrap(),
            PathBuf::from("/h/.local/share/jupyter")
        );
    }

    #[test]
    fn sys_prefix_comes_from_the_python_and_failures_say_what_to_do() {
        let t = tempfile::tempdir().unwrap();
        let fake = t.path().join("python");
        test_support::write_executable(&fake, b"#!/bin/sh\necho /opt/fake-env\n");
        let g = test_support::spawning();
        let loc = LocationArgs {
            sys_prefix: true,
            ..Default::default()
        };
        assert_eq!(
            data_dir(&loc, fake.as_os_str(), &env_of(&[])).unwrap(),
            PathBuf::from("/opt/fake-env/share/jupyter")
        );
        drop(g);
        let broken = t.path().join("broken");
        test_support::write_executable(
            &broken,
            b"#!/bin/sh\necho 'No module named sys' >&2\nexit 1\n",
        );
        let _g = test_support::spawning();
        let msg = sys_prefix(broken.as_os_str()).unwrap_err().0;
        assert!(
            msg.contains("No module named sys") && msg.contains("--python"),
            "{msg}"
        );
        let msg = sys_prefix(OsStr::new("/nonexistent/python")).unwrap_err().0;
        assert!(
            msg.contains("cannot run") && msg.contains("--prefix"),
            "{msg}"
        );
    }

    #[test]
    fn search_path_order_and_dedup() {
        let t = tempfile::tempdir().unwrap();
        let fake = t.path().join("python");
        test_support::write_executable(&fake, b"#!/bin/sh\necho /opt/env\n");
        let _g = test_support::spawning();
        let e = env_of(&[("JUPYTER_PATH", "/a::/b:/a"), ("HOME", "/h")]);
        assert_eq!(
            search_path(Some(fake.as_os_str()), &e),
            [
                "/a",
                "/b",
                "/h/.local/share/jupyter",
                "/opt/env/share/jupyter",
                "/usr/local/share/jupyter",
                "/usr/share/jupyter"
            ]
            .map(PathBuf::from)
        );
        // A Python that cannot run drops only its own entry.
        let e = env_of(&[("HOME", "/h")]);
        assert_eq!(
            search_path(Some(OsStr::new("/nonexistent/python")), &e),
            [
                "/h/.local/share/jupyter",
                "/usr/local/share/jupyter",
                "/usr/share/jupyter"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn find_in_takes_the_first_directory_and_ignores_case() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        fs::create_dir_all(a.join("kernels/Other")).unwrap();
        fs::create_dir_all(a.join("kernels/R")).unwrap(); // no kernel.json: not a spec
        fs::create_dir_all(b.join("kernels/R")).unwrap();
        fs::write(a.join("kernels/Other/kernel.json"), "{}").unwrap();
        fs::write(b.join("kernels/R/kernel.json"), "{}").unwrap();
        let dirs = vec![a.clone(), b.clone()];
        assert_eq!(find_in(&dirs, "r"), Some(b.join("kernels/R")));
        assert_eq!(find_in(&dirs, "OTHER"), Some(a.join("kernels/Other")));
        assert_eq!(find_in(&dirs, "missing"), None);
    }

    #[test]
    fn names_are_checked_like_jupyter() {
        assert_eq!(
            spec_name("Python3-Scoped_1.0").unwrap(),
            "python3-scoped_1.0"
        );
        for bad in ["", "a b", "a/b", "..", "ünï", "x;rm"] {
            let msg = spec_name(bad).unwrap_err().0;
            assert!(msg.contains("--name"), "{msg}");
        }
    }

    #[test]
    fn bare_python_names_are_the_ones_jupyter_replaces() {
        for yes in ["python", "python3", "python3.11", "python3.9"] {
            assert!(is_bare_python(yes), "{yes}");
        }
        for no in [
            "python2",
            "python3.",
            "python3.x",
            "/usr/bin/python3",
            "ipython",
            "pythonw",
        ] {
            assert!(!is_bare_python(no), "{no}");
        }
    }

    #[test]
    fn provisioner_specs_are_recognised() {
        let spec = |v: Value| match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        assert!(launches_through_provisioner(&spec(json!({
            "argv": ["/usr/local/bin/provisioner", "kernel", "--", "python3"]
        }))));
        assert!(launches_through_provisioner(&spec(json!({
            "argv": ["/opt/x/launch"], "metadata": {"provisioner": {"command": "install"}}
        }))));
        assert!(!launches_through_provisioner(&spec(json!({
            "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "metadata": {"debugger": true}
        }))));
        assert!(!launches_through_provisioner(&spec(json!({
            "argv": ["/usr/bin/provisioner-other", "run"]
        }))));
        assert_eq!(
            spec_argv(&spec(json!({"argv": []}))),
            Err("kernel.json argv is empty")
        );
        assert_eq!(
            spec_argv(&spec(json!({"argv": [1]}))),
            Err("kernel.json argv has a non-string entry")
        );
        assert_eq!(
            spec_argv(&spec(json!({}))),
            Err("kernel.json has no argv list")
        );
    }
}
