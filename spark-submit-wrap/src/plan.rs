//! Planning a job's launch without side effects (steps 3 and 4 of the binary): the
//! configuration Spark would see, what to inject and neutralise, the merged properties
//! file's bytes and how it is handed over, and the final argument vector.
//!
//! Nothing here writes a file, prints or execs; the binary does that with the
//! [`Launch`] this returns. No secret goes into [`Launch::warnings`] or onto the
//! argument vector ([`crate::inject`] keeps secrets to the properties file).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::args::{PYSPARK_SHELL_MAIN, Parsed, SPARKR_SHELL_MAIN};
use crate::conf::{self, Effective};
use crate::error::WrapError;
use crate::identity::Identity;
use crate::inject::{self, Delivery, Deploy, Injection};
use crate::propsfile;

/// Everything decided about one launch, before anything is written or exec'd.
pub struct Launch {
    pub identity: Identity,
    pub parsed: Parsed,
    pub deploy: Deploy,
    pub injection: Option<Injection>,
    pub merged: Option<Vec<u8>>,
    pub merged_map: Option<std::collections::BTreeMap<String, String>>,
    pub strategy: propsfile::Strategy,
    pub warnings: Vec<String>,
}

/// The `SPARK_HOME` Spark's scripts derive when it is unset: the directory above
/// `bin/` of a distribution (symlinks resolved), or, for a pip-installed PySpark (its
/// `bin/` holds `find_spark_home.py`), the `pyspark` package next to the virtualenv's
/// interpreter.
pub fn spark_home_of(spark_submit: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(spark_submit).ok()?;
    let bin = real.parent()?;
    let home = bin.parent()?.to_path_buf();
    if home.join("conf").is_dir() || !bin.join("find_spark_home.py").is_file() {
        return Some(home);
    }
    let lib = std::fs::read_dir(home.join("lib")).ok()?;
    let mut candidates: Vec<PathBuf> = lib
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages").join("pyspark"))
        .filter(|p| p.is_dir())
        .collect();
    candidates.sort();
    candidates.pop().or(Some(home))
}

/// Steps 3 and 4 without side effects: conf, injection, merged file bytes. `env` is
/// the process environment (`MASTER`, `DEPLOY_MODE`, `SPARK_CONF_DIR`, ...).
pub fn plan(
    identity: Identity,
    parsed: Parsed,
    spark_home_guess: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Launch, WrapError> {
    let mut warnings = Vec::new();
    // Files are read only when something will be injected: in the default tier (or
    // for a command line Spark will reject) the user's files are Spark's business.
    let needs_conf = (identity.scoped.is_some() || identity.endpoint.is_some())
        && parsed.insertion_point().is_some();
    let effective = read_effective(&parsed, spark_home_guess, env, needs_conf, true)?;
    let deploy = deploy_of(&parsed, &effective, env);

    for &i in &parsed.unknown {
        warnings.push(format!(
            "argument {} is not a spark-submit option; Spark will reject it",
            parsed.tokens[i].to_string_lossy()
        ));
    }
    if !parsed.invalid_confs().is_empty() {
        warnings.push("a --conf value has no '='; Spark will reject it".into());
    }
    if let Some(i) = parsed.dangling {
        warnings.push(format!(
            "{} at the end of the command line has no value; passed through untouched for Spark to report",
            parsed.tokens[i].to_string_lossy()
        ));
    }

    let injection = match (
        &identity.scoped,
        &identity.endpoint,
        parsed.insertion_point(),
    ) {
        (Some(s), _, Some(_)) => Some(inject::plan(
            &effective,
            s,
            identity.region.as_deref(),
            deploy,
        )),
        (None, Some(e), Some(_)) => {
            if inject::needs_remote_endpoint(deploy, e.remote.is_some()) && e.remote.is_none() {
                return Err(WrapError::Credentials(format!(
                    "the executors of a {} deployment cannot reach the credentials endpoint {} on this host's loopback; fix: configure the broker's executor endpoint or set {} to the endpoint's HTTPS address for executors (README.md, \"Executors on other hosts\"), or run with --master local[*]",
                    deploy.describe(),
                    e.uri,
                    crate::endpoint::REMOTE_URL_VAR
                )));
            }
            Some(inject::plan_delivery(
                &effective,
                Delivery::Endpoint(e),
                identity.region.as_deref(),
                deploy,
            ))
        }
        _ => None,
    };
    let (merged, merged_map) = match &injection {
        Some(inj) => {
            let m = inj.merged_file(&effective);
            match propsfile::render(&m) {
                Ok(b) => (Some(b), Some(m)),
                Err(e) => return Err(WrapError::config(e)),
            }
        }
        None => (None, None),
    };
    if let Some(inj) = &injection {
        warnings.extend(inj.warnings.iter().cloned());
    }
    let shell = parsed.leading.is_some_and(|i| {
        let t = parsed.tokens[i].as_bytes();
        t == PYSPARK_SHELL_MAIN.as_bytes() || t == SPARKR_SHELL_MAIN.as_bytes()
    });
    let forced = env("SPARK_SUBMIT_WRAP_PROPERTIES").as_deref() == Some("file");
    let strategy = if shell || forced {
        propsfile::Strategy::Named
    } else {
        propsfile::Strategy::Descriptor
    };
    Ok(Launch {
        identity,
        parsed,
        deploy,
        injection,
        merged,
        merged_map,
        strategy,
        warnings,
    })
}

/// The configuration Spark would see: `--conf`, the user's properties file and, when
/// Spark reads it, `spark-defaults.conf`. Files are read only with `read_files`; with
/// `strict` an unreadable file is an error, otherwise it counts as absent.
fn read_effective(
    parsed: &Parsed,
    spark_home_guess: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    read_files: bool,
    strict: bool,
) -> Result<Effective, WrapError> {
    let read = |path: &Path, what: &'static str| match conf::read_properties(path, what) {
        Ok(m) => Ok(Some(m)),
        Err(e) if strict => Err(WrapError::config(e)),
        Err(_) => Ok(None),
    };
    let user_file = match parsed.properties_file().filter(|_| read_files) {
        Some(o) => read(Path::new(&o.value), "--properties-file")?,
        None => None,
    };
    // Spark reads the defaults file only without a properties file or with
    // --load-spark-defaults (see the conf module).
    let load_flag = parsed.load_spark_defaults();
    let defaults = if read_files && (parsed.properties_file().is_none() || load_flag) {
        match conf::defaults_path(env, spark_home_guess) {
            Some(p) => read(&p, "spark-defaults.conf")?,
            None => None,
        }
    } else {
        None
    };
    let cli: Vec<(usize, String, String)> = parsed
        .confs()
        .into_iter()
        .map(|c| (c.index, c.key, c.value))
        .collect();
    Ok(Effective::merge(&cli, user_file, defaults, load_flag))
}

/// Where driver and executors run. Spark: --master / --deploy-mode, else
/// spark.master / spark.submit.deployMode, else the MASTER / DEPLOY_MODE environment
/// variables.
fn deploy_of(
    parsed: &Parsed,
    effective: &Effective,
    env: &dyn Fn(&str) -> Option<String>,
) -> Deploy {
    let master = parsed
        .master()
        .or_else(|| effective.get("spark.master").map(str::to_string))
        .or_else(|| env("MASTER"));
    let deploy_mode = parsed
        .deploy_mode()
        .or_else(|| effective.get("spark.submit.deployMode").map(str::to_string))
        .or_else(|| env("DEPLOY_MODE"));
    Deploy::from(master.as_deref(), deploy_mode.as_deref())
}

/// Where the job's executors will run, worked out before the identity is obtained (a
/// broker is told whether they need its HTTPS endpoint). Files that cannot be read
/// count as absent here: [`plan`] reads them again and reports the problem when the
/// job needs them.
pub fn deploy_hint(
    parsed: &Parsed,
    spark_home_guess: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Deploy {
    read_effective(parsed, spark_home_guess, env, true, false)
        .map(|eff| deploy_of(parsed, &eff, env))
        .unwrap_or_else(|_| {
            Deploy::from(parsed.master().as_deref(), parsed.deploy_mode().as_deref())
        })
}

/// The argument vector after the program name, given the properties file path.
pub fn final_args(l: &Launch, props_path: Option<&OsStr>) -> Vec<OsString> {
    let Some(inj) = &l.injection else {
        return l.parsed.rebuild(None, &[]);
    };
    let mut additions: Vec<OsString> = Vec::new();
    let user_has_file = l.parsed.properties_file().is_some();
    if let (Some(path), false) = (props_path, user_has_file) {
        additions.push("--properties-file".into());
        additions.push(path.to_os_string());
    }
    additions.extend(inj.cli_tokens().into_iter().map(OsString::from));
    l.parsed
        .rebuild(props_path.filter(|_| user_has_file), &additions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn exe(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn spark_home_of_a_distribution_and_of_a_pip_install() {
        let t = tempfile::tempdir().unwrap();
        let dist = t.path().join("spark-4.0.0-bin-hadoop3");
        exe(&dist.join("bin/spark-submit"));
        std::fs::create_dir_all(dist.join("conf")).unwrap();
        let link = t.path().join("usr-bin/spark-submit");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(dist.join("bin/spark-submit"), &link).unwrap();
        let dist = std::fs::canonicalize(&dist).unwrap();
        assert_eq!(spark_home_of(&link), Some(dist));

        let venv = t.path().join("venv");
        exe(&venv.join("bin/spark-submit"));
        std::fs::write(venv.join("bin/find_spark_home.py"), "").unwrap();
        let pkg = venv.join("lib/python3.11/site-packages/pyspark");
        std::fs::create_dir_all(&pkg).unwrap();
        let got = spark_home_of(&venv.join("bin/spark-submit")).unwrap();
        assert_eq!(
            std::fs::canonicalize(got).unwrap(),
            std::fs::canonicalize(pkg).unwrap()
        );
    }
}
