//! kernel.json contents: names, argv, and the `provisioner kernel` prefix.

use super::*;

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

pub(super) fn read_spec(path: &Path) -> Result<Map<String, Value>, KernelspecError> {
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
pub(super) struct Launch {
    pub(super) provisioner: PathBuf,
    pub(super) config: Option<PathBuf>,
    pub(super) broker: Option<PathBuf>,
    pub(super) flow: Option<SpecFlow>,
    pub(super) force: bool,
}

impl Launch {
    pub(super) fn prefix_argv(&self) -> Vec<String> {
        let mut v = vec![
            self.provisioner.to_string_lossy().into_owned(),
            "kernel".into(),
        ];
        if let Some(c) = &self.config {
            v.push("--config".into());
            v.push(c.to_string_lossy().into_owned());
        }
        if let Some(b) = &self.broker {
            v.push("--broker".into());
            v.push(b.to_string_lossy().into_owned());
        }
        if let Some(f) = self.flow {
            v.push("--flow".into());
            v.push(f.as_str().into());
        }
        v.push("--".into());
        v
    }

    pub(super) fn metadata(&self, command: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("command".into(), json!(command));
        m.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
        m.insert(
            "config".into(),
            json!(self.config.as_ref().map(|c| c.to_string_lossy())),
        );
        // Only when set: specs written before broker mode keep their exact metadata.
        if let Some(b) = &self.broker {
            m.insert("broker".into(), json!(b.to_string_lossy()));
        }
        m.insert("flow".into(), json!(self.flow.map(SpecFlow::as_str)));
        m
    }
}

pub(super) fn resolve_launch(
    a: &LaunchArgs,
    notes: &mut Vec<String>,
) -> Result<Launch, KernelspecError> {
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
    let broker = match &a.broker {
        Some(b) => {
            let b = absolute(b, "--broker")?;
            if !b.exists() {
                notes.push(format!(
                    "no broker socket at {} yet; kernels will fail to start until `provisioner serve` listens there",
                    b.display()
                ));
            }
            Some(b)
        }
        None => None,
    };
    Ok(Launch {
        provisioner,
        config,
        broker,
        flow: a.flow,
        force: a.force,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
