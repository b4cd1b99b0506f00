//! `provisioner kernelspec wrap`: an existing kernelspec copied under a new name with
//! `provisioner kernel ... --` in front of its argv.

use super::*;

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

pub(super) fn is_bare_python(s: &str) -> bool {
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
pub(super) fn bare_python_replacement(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
