//! Jupyter's data directories and kernelspec search path (Linux rules of
//! `jupyter_core`).

use super::*;

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
