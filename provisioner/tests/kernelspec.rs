//! `provisioner kernelspec install|wrap|list`, run as the built binary against
//! temporary Jupyter data directories.
//!
//! Tests that need a real Jupyter (`jupyter kernelspec list`, a kernel started by
//! jupyter_client through a wrapped spec) run when `JUPYTER_BIN_DIR` names a virtualenv
//! `bin` directory holding `jupyter` and `python` with ipykernel and jupyter_client.
//! Without it they are skipped with a note, unless `PROVISIONER_E2E=1`, where a missing
//! `JUPYTER_BIN_DIR` is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::RwLock;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");

/// Writing an executable while another thread forks can leave the child holding the
/// write descriptor, and executing the file then fails with "text file busy". Writers
/// take the write side, process starters the read side.
static FORK_LOCK: RwLock<()> = RwLock::new(());

fn write_executable(path: &Path, text: &str) {
    let _g = FORK_LOCK.write().unwrap_or_else(|e| e.into_inner());
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with only the given environment (plus the metadata switch every test sets).
fn run(args: &[&OsStr], env: &[(&str, &OsStr)]) -> Out {
    let _g = FORK_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(AsRef::<OsStr>::as_ref(&$a)),*] };
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
}

fn provisioner_path() -> String {
    // The spec stores the binary's own path as the kernel sees it (/proc/self/exe).
    fs::canonicalize(BIN)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A stand-in Python: prints `prefix` as sys.prefix and accepts `import ipykernel`.
fn fake_python(dir: &Path, prefix: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let p = dir.join("python");
    write_executable(
        &p,
        &format!("#!/bin/sh\ncase \"$2\" in *sys.prefix*) echo {prefix} ;; esac\nexit 0\n"),
    );
    p
}

fn one_line_error(o: &Out) {
    assert_eq!(o.code, 2, "stdout: {} stderr: {}", o.stdout, o.stderr);
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    assert!(
        o.stderr.starts_with("provisioner: kernelspec: "),
        "{}",
        o.stderr
    );
}

#[test]
fn install_writes_the_documented_kernel_json() {
    let t = tempfile::tempdir().unwrap();
    let py = fake_python(&t.path().join("env/bin"), "/unused");
    let cfg = t.path().join("platform.json");
    fs::write(&cfg, "{}").unwrap();
    let data = t.path().join("data");
    let o = run(
        args![
            "kernelspec",
            "install",
            "--dir",
            data,
            "--name",
            "Team-Py",
            "--display-name",
            "Team Python",
            "--python",
            py,
            "--config",
            cfg,
            "--flow",
            "notebook-run"
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let dir = data.join("kernels/team-py");
    assert!(
        o.stdout.contains("Installed kernelspec team-py"),
        "{}",
        o.stdout
    );
    let spec = read_json(&dir.join("kernel.json"));
    assert_eq!(
        spec,
        json!({
            "argv": [provisioner_path(), "kernel", "--config", cfg, "--flow", "notebook-run", "--",
                     py, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Team Python",
            "language": "python",
            "interrupt_mode": "signal",
            "metadata": {"provisioner": {
                "command": "install", "version": env!("CARGO_PKG_VERSION"), "kind": "python",
                "python": py, "config": cfg, "flow": "notebook-run"
            }}
        })
    );
    let mode = fs::metadata(dir.join("kernel.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    // Only kernel.json: install has no resources to copy.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    // No leftovers beside the spec.
    assert_eq!(fs::read_dir(data.join("kernels")).unwrap().count(), 1);
}

#[test]
fn install_for_the_broker_puts_the_socket_in_the_argv_and_reads_no_platform_file() {
    let t = tempfile::tempdir().unwrap();
    let py = fake_python(&t.path().join("env/bin"), "/unused");
    let socket = t.path().join("run/broker.sock");
    let data = t.path().join("data");
    let o = run(
        args![
            "kernelspec",
            "install",
            "--dir",
            data,
            "--python",
            py,
            "--broker",
            socket
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    // The broker is not running yet: installed anyway, with a note saying what follows.
    assert!(
        o.stderr.contains("no broker socket at") && o.stderr.contains("provisioner serve"),
        "{}",
        o.stderr
    );
    let spec = read_json(&data.join("kernels/python3-scoped/kernel.json"));
    assert_eq!(
        spec["argv"],
        json!([
            provisioner_path(),
            "kernel",
            "--broker",
            socket,
            "--",
            py,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}"
        ])
    );
    assert_eq!(spec["metadata"]["provisioner"]["broker"], json!(socket));
    assert_eq!(spec["metadata"]["provisioner"]["config"], Value::Null);

    // A launcher in broker mode reads no platform file: both at once is a usage error.
    let cfg = t.path().join("platform.json");
    fs::write(&cfg, "{}").unwrap();
    let o = run(
        args![
            "kernelspec",
            "install",
            "--dir",
            t.path().join("d2"),
            "--python",
            py,
            "--broker",
            socket,
            "--config",
            cfg
        ],
        &[],
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("cannot be used with"), "{}", o.stderr);
    assert!(!t.path().join("d2").exists());
}

#[test]
fn install_defaults_to_python3_on_path_and_without_optional_flags() {
    let t = tempfile::tempdir().unwrap();
    let bin = t.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    write_executable(&bin.join("python3"), "#!/bin/sh\nexit 0\n");
    let data = t.path().join("data");
    let o = run(
        args!["kernelspec", "install", "--dir", data],
        &[("PATH", bin.as_os_str())],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let spec = read_json(&data.join("kernels/python3-scoped/kernel.json"));
    let py = bin.join("python3");
    assert_eq!(
        spec["argv"],
        json!([
            provisioner_path(),
            "kernel",
            "--",
            py,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}"
        ])
    );
    assert_eq!(spec["display_name"], "Python 3 (scoped AWS identity)");
    assert!(spec.get("env").is_none());

    let empty = t.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let o = run(
        args!["kernelspec", "install", "--dir", t.path().join("d2")],
        &[("PATH", empty.as_os_str())],
    );
    one_line_error(&o);
    assert!(o.stderr.contains("pass --python"), "{}", o.stderr);
}

#[test]
fn pyspark_kind_sets_the_python_for_executors_and_the_kind() {
    let t = tempfile::tempdir().unwrap();
    let py = fake_python(&t.path().join("bin"), "/unused");
    let data = t.path().join("data");
    let o = run(
        args![
            "kernelspec",
            "install",
            "--dir",
            data,
            "--kind",
            "pyspark",
            "--python",
            py
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let spec = read_json(&data.join("kernels/pyspark-scoped/kernel.json"));
    assert_eq!(
        spec["env"],
        json!({"PYSPARK_PYTHON": py, "SYN_KERNEL_KIND": "pyspark"})
    );
    assert_eq!(spec["argv"][3], json!(py));
    assert_eq!(spec["metadata"]["provisioner"]["kind"], "pyspark");
    assert_eq!(spec["display_name"], "PySpark (scoped AWS identity)");
}

#[test]
fn an_existing_different_spec_is_kept_unless_forced() {
    let t = tempfile::tempdir().unwrap();
    let py = fake_python(&t.path().join("bin"), "/unused");
    let data = t.path().join("data");
    let file = data.join("kernels/python3-scoped/kernel.json");
    let first = run(
        args!["kernelspec", "install", "--dir", data, "--python", py],
        &[],
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    let original = fs::read(&file).unwrap();

    // The same spec again: nothing to do, success (safe to re-run from config management).
    let again = run(
        args!["kernelspec", "install", "--dir", data, "--python", py],
        &[],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("Unchanged"), "{}", again.stdout);

    let cfg = t.path().join("p.json");
    fs::write(&cfg, "{}").unwrap();
    let refused = run(
        args![
            "kernelspec",
            "install",
            "--dir",
            data,
            "--python",
            py,
            "--config",
            cfg
        ],
        &[],
    );
    one_line_error(&refused);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(fs::read(&file).unwrap(), original);

    let forced = run(
        args![
            "kernelspec",
            "install",
            "--dir",
            data,
            "--python",
            py,
            "--config",
            cfg,
            "--force"
        ],
        &[],
    );
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(forced.stdout.contains("Replaced"), "{}", forced.stdout);
    assert_eq!(read_json(&file)["argv"][3], json!(cfg));
    assert_eq!(fs::read_dir(data.join("kernels")).unwrap().count(), 1);
}

#[test]
fn location_flags_pick_jupyters_directories() {
    let t = tempfile::tempdir().unwrap();
    let py = fake_python(&t.path().join("env/bin"), "/opt/conda-env");
    let home = t.path().join("home");
    let name = |n: &str| format!("k-{n}");
    let install = |extra: &[&OsStr], n: &str, env: &[(&str, &OsStr)]| {
        let mut a: Vec<&OsStr> = vec![
            "kernelspec".as_ref(),
            "install".as_ref(),
            "--python".as_ref(),
            py.as_os_str(),
            "--name".as_ref(),
        ];
        let n = name(n);
        a.push(n.as_ref());
        a.extend_from_slice(extra);
        run(&a, env)
    };
    let exists = |d: PathBuf, n: &str| {
        d.join("kernels")
            .join(name(n))
            .join("kernel.json")
            .is_file()
    };

    // --user (and the default): JUPYTER_DATA_DIR, else XDG_DATA_HOME/jupyter, else ~/.local/share/jupyter.
    let jdd = t.path().join("jdd");
    let o = install(
        &["--user".as_ref()],
        "a",
        &[
            ("JUPYTER_DATA_DIR", jdd.as_os_str()),
            ("HOME", home.as_os_str()),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(exists(jdd.clone(), "a"));
    let xdg = t.path().join("xdg");
    let o = install(
        &[],
        "b",
        &[
            ("XDG_DATA_HOME", xdg.as_os_str()),
            ("HOME", home.as_os_str()),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(exists(xdg.join("jupyter"), "b"));
    let o = install(&[], "c", &[("HOME", home.as_os_str())]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(exists(home.join(".local/share/jupyter"), "c"));
    let o = install(&[], "d", &[]);
    one_line_error(&o);
    assert!(o.stderr.contains("HOME"), "{}", o.stderr);

    // --prefix P: P/share/jupyter.
    let prefix = t.path().join("prefix");
    let o = install(&["--prefix".as_ref(), prefix.as_os_str()], "e", &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(exists(prefix.join("share/jupyter"), "e"));

    // --sys-prefix: the Python's sys.prefix/share/jupyter (the fake Python says /opt/conda-env,
    // so point it at a writable place instead).
    let sp = t.path().join("sysprefix");
    let py2 = fake_python(&t.path().join("env2/bin"), sp.to_str().unwrap());
    let o = run(
        args![
            "kernelspec",
            "install",
            "--python",
            py2,
            "--sys-prefix",
            "--name",
            "f"
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(sp.join("share/jupyter/kernels/f/kernel.json").is_file());

    // The location flags exclude each other.
    let o = install(
        &["--user".as_ref(), "--prefix".as_ref(), prefix.as_os_str()],
        "g",
        &[],
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("cannot be used with"), "{}", o.stderr);
}

#[test]
fn bad_input_is_one_line_with_the_fix() {
    let t = tempfile::tempdir().unwrap();
    let py = fake_python(&t.path().join("bin"), "/unused");
    let data = t.path().join("data");
    let o = run(
        args![
            "kernelspec",
            "install",
            "--dir",
            data,
            "--python",
            py,
            "--name",
            "my kernel"
        ],
        &[],
    );
    one_line_error(&o);
    assert!(o.stderr.contains("--name"), "{}", o.stderr);
    let o = run(
        args![
            "kernelspec",
            "install",
            "--dir",
            data,
            "--python",
            py,
            "--provisioner",
            "/nonexistent/provisioner"
        ],
        &[],
    );
    one_line_error(&o);
    assert!(o.stderr.contains("--provisioner"), "{}", o.stderr);
    // A file where the kernels directory should be.
    let blocked = t.path().join("blocked");
    fs::create_dir_all(&blocked).unwrap();
    fs::write(blocked.join("kernels"), "").unwrap();
    let o = run(
        args!["kernelspec", "install", "--dir", blocked, "--python", py],
        &[],
    );
    one_line_error(&o);
    assert!(o.stderr.contains("choose another location"), "{}", o.stderr);
    assert!(!data.exists());
}

/// A realistic ipykernel spec as `python -m ipykernel install` and the ipykernel wheel
/// leave it: PREFIX/share/jupyter/kernels/python3 with logos, and PREFIX/bin/python.
fn ipykernel_env(root: &Path) -> (PathBuf, PathBuf) {
    let spec = root.join("share/jupyter/kernels/python3");
    fs::create_dir_all(spec.join("resources")).unwrap();
    fs::write(
        spec.join("kernel.json"),
        serde_json::to_string_pretty(&json!({
            "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "interrupt_mode": "message",
            "env": {"PYDEVD_DISABLE_FILE_VALIDATION": "1"},
            "metadata": {"debugger": true, "supported_encryption": ["curve"]},
            "kernel_protocol_version": "5.5"
        }))
        .unwrap(),
    )
    .unwrap();
    fs::write(
        spec.join("logo-32x32.png"),
        [0x89, b'P', b'N', b'G', 0, 1, 2, 0xff],
    )
    .unwrap();
    fs::write(spec.join("logo-svg.svg"), "<svg/>").unwrap();
    fs::write(
        spec.join("resources/kernel.js"),
        "define([], function() {});",
    )
    .unwrap();
    let py = fake_python(&root.join("bin"), root.to_str().unwrap());
    (spec, py)
}

#[test]
fn wrap_copies_resources_and_prefixes_the_argv() {
    let t = tempfile::tempdir().unwrap();
    let (src, env_python) = ipykernel_env(&t.path().join("venv"));
    let data = t.path().join("data");
    let cfg = t.path().join("platform.json");
    fs::write(&cfg, "{}").unwrap();
    let o = run(
        args![
            "kernelspec",
            "wrap",
            "python3",
            "--from-dir",
            t.path().join("venv/share/jupyter"),
            "--dir",
            data,
            "--config",
            cfg
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let dir = data.join("kernels/python3-scoped");
    let spec = read_json(&dir.join("kernel.json"));
    // A bare "python" is what Jupyter swaps for its own interpreter; the wrap pins the
    // environment's own Python instead, and says so.
    assert_eq!(
        spec["argv"],
        json!([
            provisioner_path(),
            "kernel",
            "--config",
            cfg,
            "--",
            env_python,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}"
        ])
    );
    assert!(
        o.stderr.contains("note:") && o.stderr.contains(env_python.to_str().unwrap()),
        "{}",
        o.stderr
    );
    assert_eq!(
        spec["display_name"],
        "Python 3 (ipykernel) (scoped AWS identity)"
    );
    assert_eq!(spec["language"], "python");
    assert_eq!(spec["interrupt_mode"], "message");
    assert_eq!(spec["env"], json!({"PYDEVD_DISABLE_FILE_VALIDATION": "1"}));
    assert_eq!(spec["kernel_protocol_version"], "5.5");
    assert_eq!(spec["metadata"]["debugger"], true);
    assert_eq!(spec["metadata"]["supported_encryption"], json!(["curve"]));
    let meta = &spec["metadata"]["provisioner"];
    assert_eq!(meta["command"], "wrap");
    assert_eq!(meta["wrapped"], "python3");
    assert_eq!(meta["wrapped_from"], json!(src));
    assert_eq!(meta["original_argv"][0], "python");
    for f in ["logo-32x32.png", "logo-svg.svg", "resources/kernel.js"] {
        assert_eq!(
            fs::read(dir.join(f)).unwrap(),
            fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
    // The original is untouched.
    assert_eq!(read_json(&src.join("kernel.json"))["argv"][0], "python");
}

#[test]
fn wrap_takes_python_and_names_from_flags() {
    let t = tempfile::tempdir().unwrap();
    let (src, _) = ipykernel_env(&t.path().join("venv"));
    let other = fake_python(&t.path().join("other/bin"), "/unused");
    let data = t.path().join("data");
    // --from-dir may also name the kernelspec directory itself.
    let o = run(
        args![
            "kernelspec",
            "wrap",
            "python3",
            "--from-dir",
            src,
            "--dir",
            data,
            "--name",
            "Py-Team",
            "--display-name",
            "Team",
            "--python",
            other,
            "--flow",
            "notebook-run"
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let spec = read_json(&data.join("kernels/py-team/kernel.json"));
    assert_eq!(
        spec["argv"],
        json!([
            provisioner_path(),
            "kernel",
            "--flow",
            "notebook-run",
            "--",
            other,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}"
        ])
    );
    assert_eq!(spec["display_name"], "Team");
}

#[test]
fn an_absolute_original_argv_is_kept_as_is() {
    let t = tempfile::tempdir().unwrap();
    let spec_dir = t.path().join("src/kernels/ir");
    fs::create_dir_all(&spec_dir).unwrap();
    fs::write(
        spec_dir.join("kernel.json"),
        r#"{"argv": ["/opt/R/bin/R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"],
            "display_name": "R", "language": "R"}"#,
    )
    .unwrap();
    let data = t.path().join("data");
    let o = run(
        args![
            "kernelspec",
            "wrap",
            "IR",
            "--from-dir",
            t.path().join("src"),
            "--dir",
            data
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!o.stderr.contains("note:"), "{}", o.stderr);
    let spec = read_json(&data.join("kernels/ir-scoped/kernel.json"));
    assert_eq!(
        spec["argv"],
        json!([
            provisioner_path(),
            "kernel",
            "--",
            "/opt/R/bin/R",
            "--slave",
            "-e",
            "IRkernel::main()",
            "--args",
            "{connection_file}"
        ])
    );
    assert_eq!(spec["language"], "R");
    assert!(spec.get("interrupt_mode").is_none());
}

#[test]
fn wrapping_twice_is_refused() {
    let t = tempfile::tempdir().unwrap();
    ipykernel_env(&t.path().join("venv"));
    let data = t.path().join("data");
    let o = run(
        args![
            "kernelspec",
            "wrap",
            "python3",
            "--from-dir",
            t.path().join("venv/share/jupyter"),
            "--dir",
            data
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = run(
        args![
            "kernelspec",
            "wrap",
            "python3-scoped",
            "--from-dir",
            data,
            "--dir",
            data
        ],
        &[],
    );
    one_line_error(&o);
    assert!(
        o.stderr.contains("already launches through provisioner"),
        "{}",
        o.stderr
    );
    assert!(!data.join("kernels/python3-scoped-scoped").exists());

    // Recognised by its argv alone too (a spec written by hand or from the templates).
    let hand = t.path().join("hand/kernels/mine");
    fs::create_dir_all(&hand).unwrap();
    fs::write(
        hand.join("kernel.json"),
        r#"{"argv": ["/usr/local/bin/provisioner", "kernel", "--", "python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "x", "language": "python"}"#,
    )
    .unwrap();
    let o = run(
        args![
            "kernelspec",
            "wrap",
            "mine",
            "--from-dir",
            t.path().join("hand"),
            "--dir",
            data
        ],
        &[],
    );
    one_line_error(&o);
    assert!(
        o.stderr.contains("already launches through provisioner"),
        "{}",
        o.stderr
    );
}

#[test]
fn wrap_force_replaces_a_different_spec_and_keeps_resources() {
    let t = tempfile::tempdir().unwrap();
    ipykernel_env(&t.path().join("venv"));
    let from = t.path().join("venv/share/jupyter");
    let data = t.path().join("data");
    let cfg = t.path().join("p.json");
    fs::write(&cfg, "{}").unwrap();
    let base = args![
        "kernelspec",
        "wrap",
        "python3",
        "--from-dir",
        from,
        "--dir",
        data
    ];
    assert_eq!(run(base, &[]).code, 0);
    let again = run(base, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("Unchanged"), "{}", again.stdout);

    let mut with_cfg: Vec<&OsStr> = base.to_vec();
    with_cfg.extend_from_slice(args!["--config", cfg]);
    one_line_error(&run(&with_cfg, &[]));
    with_cfg.push("--force".as_ref());
    let o = run(&with_cfg, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let dir = data.join("kernels/python3-scoped");
    assert_eq!(read_json(&dir.join("kernel.json"))["argv"][3], json!(cfg));
    assert!(dir.join("logo-32x32.png").is_file());
}

#[test]
fn wrap_searches_jupyter_path_first_and_reports_where_it_looked() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    for d in [&a, &b] {
        let k = d.join("kernels/Julia-1.10");
        fs::create_dir_all(&k).unwrap();
        fs::write(
            k.join("kernel.json"),
            r#"{"argv": ["/opt/julia/bin/julia", "-i", "{connection_file}"], "display_name": "Julia", "language": "julia"}"#,
        )
        .unwrap();
    }
    let home = t.path().join("home");
    let jp = std::env::join_paths([&a, &b]).unwrap();
    let data = t.path().join("data");
    let env = [("JUPYTER_PATH", jp.as_os_str()), ("HOME", home.as_os_str())];
    let o = run(
        args!["kernelspec", "wrap", "julia-1.10", "--dir", data],
        &env,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let spec = read_json(&data.join("kernels/julia-1.10-scoped/kernel.json"));
    assert_eq!(
        spec["metadata"]["provisioner"]["wrapped_from"],
        json!(a.join("kernels/Julia-1.10"))
    );

    let o = run(args!["kernelspec", "wrap", "nope", "--dir", data], &env);
    one_line_error(&o);
    for d in [
        &a,
        &b,
        &home.join(".local/share/jupyter"),
        &PathBuf::from("/usr/share/jupyter"),
    ] {
        assert!(
            o.stderr.contains(d.to_str().unwrap()),
            "{d:?} in {}",
            o.stderr
        );
    }
    assert!(o.stderr.contains("--from-dir"), "{}", o.stderr);
}

#[test]
fn list_shows_scoped_unscoped_and_shadowed_specs() {
    let t = tempfile::tempdir().unwrap();
    ipykernel_env(&t.path().join("venv"));
    let venv_data = t.path().join("venv/share/jupyter");
    let data = t.path().join("data");
    let o = run(
        args![
            "kernelspec",
            "wrap",
            "python3",
            "--from-dir",
            venv_data,
            "--dir",
            data
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    fs::create_dir_all(data.join("kernels/python3")).unwrap();
    fs::write(
        data.join("kernels/python3/kernel.json"),
        r#"{"argv": "python"}"#,
    )
    .unwrap();
    let jp = std::env::join_paths([&data, &venv_data]).unwrap();
    let home = t.path().join("home");
    let env = [("JUPYTER_PATH", jp.as_os_str()), ("HOME", home.as_os_str())];
    let o = run(args!["kernelspec", "list", "--json"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let specs: Vec<(String, bool, bool, bool)> = v["kernelspecs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["scoped"].as_bool().unwrap(),
                s["shadowed"].as_bool().unwrap(),
                s["problem"].is_null(),
            )
        })
        .collect();
    assert_eq!(
        specs,
        vec![
            ("python3".into(), false, false, false),
            ("python3-scoped".into(), true, false, true),
            ("python3".into(), false, true, true),
        ]
    );
    let o = run(args!["kernelspec", "list"], &env);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", o.stdout);
    assert!(
        lines[0].contains("invalid") && lines[0].contains("argv"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("scoped") && !lines[1].contains("unscoped"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("shadowed"), "{}", lines[2]);
}

fn repo_templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernelspecs")
}

#[test]
fn repository_templates_launch_through_provisioner() {
    for (kind, extra_env) in [("python", None), ("pyspark", Some("pyspark"))] {
        let spec = read_json(&repo_templates().join(kind).join("kernel.json"));
        let argv: Vec<&str> = spec["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let sep = argv.iter().position(|a| *a == "--").unwrap();
        assert_eq!(&argv[..2], ["provisioner", "kernel"], "{kind}");
        assert_eq!(
            &argv[sep + 2..],
            ["-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "{kind}"
        );
        assert_eq!(spec["interrupt_mode"], "signal");
        assert_eq!(spec["language"], "python");
        assert_eq!(spec["env"]["SYN_KERNEL_KIND"].as_str(), extra_env, "{kind}");

        // Wrapping a template is refused: it already launches through provisioner.
        let t = tempfile::tempdir().unwrap();
        let o = run(
            args![
                "kernelspec",
                "wrap",
                kind,
                "--from-dir",
                repo_templates().join(kind),
                "--dir",
                t.path()
            ],
            &[],
        );
        one_line_error(&o);
    }
    assert!(repo_templates().join("README.md").is_file());
}

// ---------------------------------------------------------------------------------------
// with a real Jupyter

/// `JUPYTER_BIN_DIR`, or None (skip) with a note; under `PROVISIONER_E2E=1` a missing
/// value fails.
fn jupyter_bin_dir() -> Option<PathBuf> {
    let d = PathBuf::from(test_support::server(
        "JUPYTER_BIN_DIR",
        "a virtualenv bin directory holding jupyter (jupyter_client and ipykernel)",
    )?);
    assert!(
        d.join("jupyter").is_file() && d.join("python").is_file(),
        "JUPYTER_BIN_DIR={} has no jupyter and python; point it at a virtualenv bin directory with jupyter_client and ipykernel",
        d.display()
    );
    Some(d)
}

#[test]
fn jupyter_lists_installed_and_wrapped_specs() {
    let Some(bin) = jupyter_bin_dir() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let py = bin.join("python");
    let o = run(
        args!["kernelspec", "install", "--dir", data, "--python", py],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let venv_data = bin.parent().unwrap().join("share/jupyter");
    let o = run(
        args![
            "kernelspec",
            "wrap",
            "python3",
            "--from-dir",
            venv_data,
            "--dir",
            data,
            "--name",
            "wrapped"
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);

    let out = Command::new(bin.join("jupyter"))
        .args(["kernelspec", "list", "--json"])
        .env_clear()
        .env("PATH", &bin)
        .env("HOME", t.path().join("home"))
        .env("JUPYTER_PATH", &data)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in ["python3-scoped", "wrapped"] {
        let ks = &v["kernelspecs"][name];
        assert_eq!(
            ks["resource_dir"],
            json!(data.join("kernels").join(name)),
            "{v}"
        );
        assert_eq!(ks["spec"]["argv"][0], json!(provisioner_path()));
        assert_eq!(ks["spec"]["argv"][1], "kernel");
        assert_eq!(ks["spec"]["interrupt_mode"], "signal");
    }
}

/// Starts a kernel through a wrapped spec with jupyter_client, as JupyterLab does, and
/// checks what the user would notice: it runs code, it is the very process Jupyter
/// started (exec, no launcher left behind), it carries the launch marker, interrupt
/// reaches it, and shutdown leaves nothing running.
const DRIVER: &str = r#"
import json, os, sys, time
from jupyter_client.manager import KernelManager

km = KernelManager(kernel_name=sys.argv[1])
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)

def run(code, on_stream=None):
    msg_id = kc.execute(code)
    out = []
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        t = msg["msg_type"]
        if t == "stream":
            out.append(msg["content"]["text"])
            if on_stream:
                on_stream()
        elif t == "error":
            out.append("ERROR " + msg["content"]["ename"])
        elif t == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)

res = {"started_pid": km.provisioner.pid}
res["kernel"] = json.loads(run(
    "import os, json\n"
    "print(json.dumps({'pid': os.getpid(), 'marker': os.environ.get('SYN_PROVISIONED'),"
    " 'metadata_disabled': os.environ.get('AWS_EC2_METADATA_DISABLED'),"
    " 'profile': os.environ.get('AWS_PROFILE'),"
    " 'cmd0': open('/proc/self/cmdline','rb').read().split(b'\\0')[0].decode()}))"
))
sent = []
def interrupt():
    if not sent:
        sent.append(1)
        km.interrupt_kernel()
res["interrupt"] = run(
    "import time\ntry:\n    print('sleeping', flush=True)\n    time.sleep(30)\n    print('slept')\n"
    "except KeyboardInterrupt:\n    print('interrupted')",
    on_stream=interrupt,
)
kc.stop_channels()
t0 = time.time()
km.shutdown_kernel(now=False)
res["shutdown_s"] = time.time() - t0
try:
    os.kill(res["started_pid"], 0)
    res["alive_after_shutdown"] = True
except ProcessLookupError:
    res["alive_after_shutdown"] = False
print("RESULT " + json.dumps(res))
"#;

#[test]
fn jupyter_client_runs_interrupts_and_stops_a_wrapped_kernel() {
    let Some(bin) = jupyter_bin_dir() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let platform = t.path().join("platform.json");
    fs::write(
        &platform,
        r#"{"settings": {"syntasa_session_policy_enabled": "false"},
            "aws": {"region": "us-east-1", "sts_endpoint": "http://127.0.0.1:9"},
            "users": [{"id": "alice"}]}"#,
    )
    .unwrap();
    let data = t.path().join("data");
    let venv_data = bin.parent().unwrap().join("share/jupyter");
    let o = run(
        args![
            "kernelspec",
            "wrap",
            "python3",
            "--from-dir",
            venv_data,
            "--dir",
            data,
            "--config",
            platform
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let driver = t.path().join("driver.py");
    fs::write(&driver, DRIVER).unwrap();
    let out = {
        let _g = FORK_LOCK.read().unwrap_or_else(|e| e.into_inner());
        Command::new(bin.join("python"))
            .arg(&driver)
            .arg("python3-scoped")
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HOME", t.path().join("home"))
            .env("JUPYTER_PATH", &data)
            .env("JUPYTER_RUNTIME_DIR", t.path().join("runtime"))
            .env("SYN_USER", "alice")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PROFILE", "kept-on-the-default-tier")
            .output()
            .unwrap()
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no result; stdout: {stdout}\nstderr: {stderr}"));
    let r: Value = serde_json::from_str(line).unwrap();
    let k = &r["kernel"];
    assert_eq!(
        k["pid"], r["started_pid"],
        "the kernel is not the process Jupyter started: {r}"
    );
    assert_eq!(k["marker"], "tier=default;user=alice", "{r}");
    // Default tier: the environment is left as it was (no credentials were minted).
    assert_eq!(k["metadata_disabled"], "true", "{r}");
    assert_eq!(k["profile"], "kept-on-the-default-tier", "{r}");
    assert!(k["cmd0"].as_str().unwrap().ends_with("/python"), "{r}");
    assert!(
        r["interrupt"].as_str().unwrap().contains("interrupted"),
        "{r}"
    );
    assert!(!r["interrupt"].as_str().unwrap().contains("slept"), "{r}");
    assert_eq!(r["alive_after_shutdown"], false, "{r}");
    assert!(r["shutdown_s"].as_f64().unwrap() < 10.0, "{r}");
    // The decision record went to the kernel's stderr, which Jupyter shows in its log.
    assert!(stderr.contains("\"tier\":\"default\""), "{stderr}");
}
