//! `provisioner kernelspec list`: what Jupyter would find, and which specs launch
//! through `provisioner`.

use super::*;

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
    pub(super) fn to_json(&self) -> Value {
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

pub(super) fn list_table(specs: &[Listed]) -> String {
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
