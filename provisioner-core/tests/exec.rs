//! `exec` replaces the process: the program keeps the launcher's PID, sees exactly the
//! environment list built for it (order, duplicates, bytes), keeps the argv[0] the user
//! wrote, and starts with default signal dispositions.
//!
//! A successful exec cannot run inside the test process itself, so the test starts a
//! copy of this test binary (std's spawn is safe in a threaded process, unlike a bare
//! fork) running only itself with `EXEC_TEST_OUT` set; in that role it execs
//! `/bin/sh`, which writes what the kernel sees of it to files the parent then checks.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use provisioner_core::child_env::ChildEnv;
use provisioner_core::context::{Flow, LaunchContext};
use provisioner_core::credentials::Credentials;
use provisioner_core::decision::{Decision, Plan, StaticKeysPlan, Tier};
use provisioner_core::exec::{exec, find_program};
use provisioner_core::model::SecretRef;

const ROLE: &str = "EXEC_TEST_OUT";
const ARGV0: &str = "kernel-as-the-user-wrote-it";
// The status is read with shell builtins: while the shell waits for a child such as
// `cat`, dash blocks every signal, and the status would show that temporary mask.
const SCRIPT: &str = r#"echo $$ > "$1/pid"
cat /proc/$$/environ > "$1/environ"
cat /proc/$$/cmdline > "$1/cmdline"
while IFS= read -r l; do echo "$l"; done < /proc/$$/status > "$1/status""#;

fn decision() -> Decision {
    Decision {
        context: LaunchContext {
            flow: Flow::Notebook,
            user: "alice".into(),
            workspace: None,
            runtime_template: Some("rt-etl".into()),
            job_id: None,
        },
        tier: Tier::RuntimeTemplateSa,
        reason: None,
        skipped: vec![],
        warnings: vec![],
        plan: Plan::StaticKeys(StaticKeysPlan {
            service_account: "sa-legacy".into(),
            access_key_id: SecretRef::Env("LEGACY_KEY_ID".into()),
            secret_access_key: SecretRef::Env("LEGACY_SECRET".into()),
        }),
    }
}

/// The environment the child gets: built by the real rules from a parent with
/// duplicates, stale credentials and a value that is not UTF-8.
fn child_env() -> ChildEnv {
    let parent: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("DUP".into(), "first".into()),
        ("AWS_PROFILE".into(), "admin".into()),
        ("AWS_SESSION_TOKEN".into(), "stale-1".into()),
        ("DUP".into(), "second".into()),
        (
            "BYTES".into(),
            OsString::from_vec(vec![0xff, 0xfe, b'=', 0x80]),
        ),
        ("AWS_SESSION_TOKEN".into(), "stale-2".into()),
        ("EMPTY".into(), "".into()),
    ];
    let creds = Credentials {
        access_key_id: "AKIAEXAMPLE".into(),
        secret_access_key: "static-secret".into(),
        session_token: None,
        expiration: Some(UNIX_EPOCH + Duration::from_secs(1_795_384_800)),
    };
    ChildEnv::for_launch(parent, &decision(), Some(&creds), "us-east-1")
}

fn expected_environ(env: &ChildEnv) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in env.vars() {
        out.extend_from_slice(k.as_encoded_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_encoded_bytes());
        out.push(0);
    }
    out
}

/// The role of the spawned copy: exec /bin/sh, or say why not.
fn exec_role(out: &Path) -> ! {
    let program = match find_program("sh".as_ref(), Some("/usr/bin:/bin".as_ref())) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("find_program: {e}");
            std::process::exit(90);
        }
    };
    let argv: Vec<OsString> = vec![
        ARGV0.into(),
        "-c".into(),
        SCRIPT.into(),
        "sh".into(),
        out.into(),
    ];
    let err = exec(&program, &argv, &child_env());
    eprintln!("exec: {err}");
    std::process::exit(91);
}

#[test]
fn exec_keeps_the_pid_argv0_and_the_exact_environment() {
    if let Some(out) = std::env::var_os(ROLE) {
        exec_role(Path::new(&out));
    }
    let dir = tempfile::tempdir().unwrap();
    let me = std::env::current_exe().unwrap();
    let child = Command::new(&me)
        .args([
            "--exact",
            "exec_keeps_the_pid_argv0_and_the_exact_environment",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "spawned copy failed: {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // Same process: the shell's $$ is the PID we spawned, and nothing else ran after it.
    let sh_pid = fs::read_to_string(dir.path().join("pid")).unwrap();
    assert_eq!(sh_pid.trim(), pid.to_string());

    // argv exactly as given, argv[0] included.
    let cmdline = fs::read(dir.path().join("cmdline")).unwrap();
    let mut want = Vec::new();
    for a in [ARGV0, "-c", SCRIPT, "sh", dir.path().to_str().unwrap()] {
        want.extend_from_slice(a.as_bytes());
        want.push(0);
    }
    assert_eq!(cmdline, want);

    // The environment block the kernel received is the list, byte for byte.
    let environ = fs::read(dir.path().join("environ")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&environ),
        String::from_utf8_lossy(&expected_environ(&child_env()))
    );
    assert_eq!(environ, expected_environ(&child_env()));
    let text = String::from_utf8_lossy(&environ);
    assert!(text.contains("\0DUP=first\0DUP=second\0"), "{text}");
    assert!(!text.contains("AWS_PROFILE"), "{text}");
    assert!(!text.contains("AWS_SESSION_TOKEN"), "{text}");
    assert!(!text.contains(ROLE), "{text}");
    assert!(
        text.contains(
            "SYN_PROVISIONED=tier=runtime_template_sa;expiration=2026-11-22T22:00:00Z;user=alice\0"
        ),
        "{text}"
    );

    // Default signal state: SIGPIPE (13) neither ignored nor blocked.
    let status = fs::read_to_string(dir.path().join("status")).unwrap();
    for field in ["SigIgn:", "SigBlk:"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in {status}"));
        let mask = u64::from_str_radix(line[field.len()..].trim(), 16).unwrap();
        assert_eq!(mask & (1 << 12), 0, "SIGPIPE set in {line}");
    }
}
