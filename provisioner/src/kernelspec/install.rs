//! `provisioner kernelspec install`: a new kernelspec for a Python with ipykernel.

use super::*;

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
pub(super) fn kernel_python(
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
pub(super) fn ipykernel_check(python: &OsStr) -> Option<String> {
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
