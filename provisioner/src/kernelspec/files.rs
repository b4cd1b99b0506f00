//! Writing a kernelspec directory: kernel.json (0644) and, for a wrap, the resources.

use super::*;

/// Writes `DATA/kernels/NAME` with `spec` as kernel.json and, for a wrap, every other
/// file of `resources`. The directory is built beside the target and renamed into place,
/// so Jupyter never sees half a spec.
pub(super) fn write_spec(
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
pub(super) fn copy_resources(src: &Path, dst: &Path) -> Result<(), KernelspecError> {
    copy_tree(src, dst, true)
}

pub(super) fn copy_tree(src: &Path, dst: &Path, top: bool) -> Result<(), KernelspecError> {
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

pub(super) fn is_executable_file(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub(super) fn absolute(p: &Path, what: &str) -> Result<PathBuf, KernelspecError> {
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
