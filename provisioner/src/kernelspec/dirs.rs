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
}
