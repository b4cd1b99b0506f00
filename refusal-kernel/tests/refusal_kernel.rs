//! The refusal kernel, spoken to over real ZeroMQ sockets the way Jupyter does:
//! signed messages on DEALER (shell, control), SUB (iopub) and REQ (heartbeat).
//!
//! Most tests run `serve` on a thread; the signal and parent tests run it in a
//! child process (this test binary, re-run on the ignored `child_kernel` entry).
//! The jupyter_client test needs `JUPYTER_BIN_DIR` (a bin dir with a python that
//! has jupyter_client); it is skipped without it unless `PROVISIONER_E2E=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step panics

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use refusal_kernel::{RefusalKernelError, RefusalNotice, connection_file_from_argv, serve};
use serde_json::{Value, json};
use sha2::Sha256;
use zeromq::{DealerSocket, ReqSocket, Socket, SocketRecv, SocketSend, SubSocket, ZmqMessage};

const STEP: Duration = Duration::from_secs(10);
const KEY: &str = "0f1e2d3c-test-key";

fn notice() -> RefusalNotice {
    RefusalNotice {
        title: "UNKNOWN_USER".into(),
        message: "user alice is not in the platform file, so her data planes are unknown".into(),
        fix: "add alice under users in the platform file".into(),
        exit_code: 3,
        record_json: Some(r#"{"flow":"notebook","user":"alice","credentials":"none"}"#.into()),
    }
}

fn expected_text() -> String {
    notice().text()
}

struct Conn {
    _dir: tempfile::TempDir,
    path: PathBuf,
    shell: u16,
    iopub: u16,
    /// Bound by the kernel; no test talks on it.
    _stdin: u16,
    control: u16,
    hb: u16,
    key: String,
}

fn free_ports() -> [u16; 5] {
    // All five listeners are held at once so the ports are distinct.
    let ls: Vec<TcpListener> = (0..5)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let p: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
    [p[0], p[1], p[2], p[3], p[4]]
}

fn conn_file(key: &str) -> Conn {
    let dir = tempfile::tempdir().unwrap();
    let [shell, iopub, stdin, control, hb] = free_ports();
    let path = dir.path().join("kernel-test.json");
    let body = json!({
        "shell_port": shell, "iopub_port": iopub, "stdin_port": stdin,
        "control_port": control, "hb_port": hb, "ip": "127.0.0.1", "key": key,
        "transport": "tcp", "signature_scheme": "hmac-sha256", "kernel_name": "python3",
    });
    std::fs::write(&path, body.to_string()).unwrap();
    Conn {
        _dir: dir,
        path,
        shell,
        iopub,
        _stdin: stdin,
        control,
        hb,
        key: key.to_string(),
    }
}

/// Runs `serve` on a thread; the receiver gets its result.
fn serve_in_thread(conn: &Conn) -> mpsc::Receiver<Result<(), String>> {
    let (tx, rx) = mpsc::channel();
    let path = conn.path.clone();
    std::thread::spawn(move || {
        let r = serve(&path, &notice()).map_err(|e| e.to_string());
        let _ = tx.send(r);
    });
    rx
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn sign(key: &str, parts: [&[u8]; 4]) -> String {
    if key.is_empty() {
        return String::new();
    }
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    for p in parts {
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

#[derive(Debug)]
struct Msg {
    msg_type: String,
    parent_id: String,
    content: Value,
}

struct Client {
    shell: DealerSocket,
    control: DealerSocket,
    iopub: SubSocket,
    hb: ReqSocket,
    key: String,
    n: u64,
}

impl Client {
    async fn connect(conn: &Conn) -> Client {
        let ep = |p: u16| format!("tcp://127.0.0.1:{p}");
        let mut shell = DealerSocket::new();
        let mut control = DealerSocket::new();
        let mut iopub = SubSocket::new();
        let mut hb = ReqSocket::new();
        iopub.subscribe("").await.unwrap();
        let all = async {
            shell.connect(&ep(conn.shell)).await.unwrap();
            control.connect(&ep(conn.control)).await.unwrap();
            iopub.connect(&ep(conn.iopub)).await.unwrap();
            hb.connect(&ep(conn.hb)).await.unwrap();
        };
        tokio::time::timeout(STEP, all)
            .await
            .expect("connecting to the refusal kernel timed out");
        Client {
            shell,
            control,
            iopub,
            hb,
            key: conn.key.clone(),
            n: 0,
        }
    }

    /// A request; `signature` overrides the correct one.
    fn request(
        &mut self,
        msg_type: &str,
        content: Value,
        signature: Option<&str>,
    ) -> (String, ZmqMessage) {
        self.n += 1;
        let id = format!("test-{msg_type}-{}", self.n);
        let header = json!({
            "msg_id": id, "msg_type": msg_type, "username": "test", "session": "test-session",
            "date": "2026-01-01T00:00:00.000000Z", "version": "5.3",
        })
        .to_string();
        let parent = "{}".to_string();
        let metadata = "{}".to_string();
        let content = content.to_string();
        let sig = match signature {
            Some(s) => s.to_string(),
            None => sign(
                &self.key,
                [
                    header.as_bytes(),
                    parent.as_bytes(),
                    metadata.as_bytes(),
                    content.as_bytes(),
                ],
            ),
        };
        let mut m = ZmqMessage::from(b"<IDS|MSG>".to_vec());
        for f in [sig, header, parent, metadata, content] {
            m.push_back(f.into_bytes().into());
        }
        (id, m)
    }

    async fn send_shell(&mut self, msg_type: &str, content: Value) -> String {
        let (id, m) = self.request(msg_type, content, None);
        self.shell.send(m).await.unwrap();
        id
    }

    async fn send_control(&mut self, msg_type: &str, content: Value) -> String {
        let (id, m) = self.request(msg_type, content, None);
        self.control.send(m).await.unwrap();
        id
    }

    /// Decodes a message from the kernel, checking its signature.
    fn decode(&self, m: ZmqMessage) -> Msg {
        let frames: Vec<Vec<u8>> = m.into_vec().into_iter().map(|b| b.to_vec()).collect();
        let at = frames
            .iter()
            .position(|f| f == b"<IDS|MSG>")
            .expect("no delimiter in a kernel message");
        let f = &frames[at..];
        assert!(f.len() >= 6, "short kernel message: {} frames", f.len());
        let want = sign(&self.key, [&f[2], &f[3], &f[4], &f[5]]);
        assert_eq!(
            String::from_utf8_lossy(&f[1]),
            want,
            "kernel message signature does not verify"
        );
        let header: Value = serde_json::from_slice(&f[2]).unwrap();
        let parent: Value = serde_json::from_slice(&f[3]).unwrap();
        assert_eq!(header["version"], "5.3");
        assert!(header["date"].as_str().unwrap().ends_with('Z'));
        Msg {
            msg_type: header["msg_type"].as_str().unwrap().to_string(),
            parent_id: parent["msg_id"].as_str().unwrap_or("").to_string(),
            content: serde_json::from_slice(&f[5]).unwrap(),
        }
    }

    async fn shell_reply(&mut self, within: Duration) -> Option<Msg> {
        let m = tokio::time::timeout(within, self.shell.recv()).await.ok()?;
        Some(self.decode(m.unwrap()))
    }

    async fn control_reply(&mut self) -> Msg {
        let m = tokio::time::timeout(STEP, self.control.recv())
            .await
            .expect("no reply on control")
            .unwrap();
        self.decode(m)
    }

    async fn iopub_msg(&mut self, within: Duration) -> Option<Msg> {
        let m = tokio::time::timeout(within, self.iopub.recv()).await.ok()?;
        Some(self.decode(m.unwrap()))
    }

    /// iopub messages for `parent` up to and including its `idle` status.
    async fn iopub_until_idle(&mut self, parent: &str) -> Vec<Msg> {
        let deadline = Instant::now() + STEP;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .iopub_msg(left)
                .await
                .unwrap_or_else(|| panic!("no idle status for {parent} on iopub; got {out:?}"));
            if m.parent_id != parent {
                continue;
            }
            let idle = m.msg_type == "status" && m.content["execution_state"] == "idle";
            out.push(m);
            if idle {
                return out;
            }
        }
    }

    /// kernel_info until a reply arrives and iopub delivers, as jupyter_client does
    /// (a SUB socket misses whatever was published before it joined).
    async fn wait_ready(&mut self) -> Msg {
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            let id = self.send_shell("kernel_info_request", json!({})).await;
            let Some(reply) = self.shell_reply(Duration::from_secs(1)).await else {
                continue;
            };
            assert_eq!(reply.msg_type, "kernel_info_reply");
            if reply.parent_id != id {
                continue;
            }
            if self.iopub_msg(Duration::from_millis(300)).await.is_some() {
                return reply;
            }
        }
        panic!("the refusal kernel never became ready");
    }

    async fn ping(&mut self, payload: &str) -> String {
        self.hb.send(ZmqMessage::from(payload)).await.unwrap();
        let m = tokio::time::timeout(STEP, self.hb.recv())
            .await
            .expect("no heartbeat echo")
            .unwrap();
        String::try_from(m).unwrap()
    }
}

fn wait_result(rx: &mpsc::Receiver<Result<(), String>>) -> Result<(), String> {
    rx.recv_timeout(STEP)
        .expect("serve did not return after shutdown")
}

#[test]
fn kernel_info_and_execute_answer_with_the_refusal() {
    let conn = conn_file(KEY);
    let done = serve_in_thread(&conn);
    runtime().block_on(async {
        let mut c = Client::connect(&conn).await;
        let info = c.wait_ready().await;
        assert_eq!(info.content["status"], "ok");
        assert_eq!(info.content["protocol_version"], "5.3");
        assert_eq!(info.content["implementation"], "provisioner-refusal");
        assert_eq!(info.content["language_info"]["name"], "python");
        let banner = info.content["banner"].as_str().unwrap();
        assert!(banner.contains(&expected_text()), "banner: {banner}");

        for count in 1..=2u64 {
            let id = c
                .send_shell(
                    "execute_request",
                    json!({"code": "print(1)", "silent": false}),
                )
                .await;
            let reply = c.shell_reply(STEP).await.expect("no execute_reply");
            assert_eq!(reply.msg_type, "execute_reply");
            assert_eq!(reply.parent_id, id);
            assert_eq!(reply.content["status"], "error");
            assert_eq!(reply.content["ename"], "KernelRefused");
            assert_eq!(reply.content["evalue"], notice().message);
            assert_eq!(reply.content["execution_count"], count);
            let tb = reply.content["traceback"].as_array().unwrap();
            let joined: Vec<&str> = tb.iter().map(|l| l.as_str().unwrap()).collect();
            assert!(
                joined.join("\n").contains(&expected_text()),
                "traceback: {joined:?}"
            );

            let io = c.iopub_until_idle(&id).await;
            let types: Vec<&str> = io.iter().map(|m| m.msg_type.as_str()).collect();
            assert_eq!(
                types,
                ["status", "execute_input", "error", "status"],
                "{io:?}"
            );
            assert_eq!(io[0].content["execution_state"], "busy");
            assert_eq!(io[1].content["code"], "print(1)");
            assert_eq!(io[1].content["execution_count"], count);
            let shown: Vec<&str> = io[2].content["traceback"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            let shown = shown.join("\n");
            assert!(shown.contains(&expected_text()), "error output: {shown}");
            assert!(
                shown.contains(r#""user":"alice""#),
                "record missing: {shown}"
            );
        }

        // A silent execution shows nothing and does not count.
        let id = c
            .send_shell("execute_request", json!({"code": "x", "silent": true}))
            .await;
        let reply = c.shell_reply(STEP).await.unwrap();
        assert_eq!(reply.content["status"], "error");
        assert_eq!(reply.content["execution_count"], 2);
        let io = c.iopub_until_idle(&id).await;
        assert!(io.iter().all(|m| m.msg_type == "status"), "{io:?}");

        let id = c
            .send_control("shutdown_request", json!({"restart": false}))
            .await;
        let reply = c.control_reply().await;
        assert_eq!(reply.msg_type, "shutdown_reply");
        assert_eq!(reply.parent_id, id);
        assert_eq!(reply.content, json!({"status": "ok", "restart": false}));
    });
    assert_eq!(wait_result(&done), Ok(()));
}

#[test]
fn messages_with_a_bad_signature_are_not_answered() {
    let conn = conn_file(KEY);
    let done = serve_in_thread(&conn);
    runtime().block_on(async {
        let mut c = Client::connect(&conn).await;
        c.wait_ready().await;

        let forged = "00".repeat(32);
        for sig in [forged.as_str(), "", "not-hex"] {
            let (_, m) = c.request("execute_request", json!({"code": "1"}), Some(sig));
            c.shell.send(m).await.unwrap();
            let got = c.shell_reply(Duration::from_millis(700)).await;
            assert!(got.is_none(), "answered a message signed {sig:?}: {got:?}");
        }
        // A message signed with another key is dropped too.
        let (_, m) = {
            let real = c.key.clone();
            c.key = "another-key".into();
            let r = c.request("kernel_info_request", json!({}), None);
            c.key = real;
            r
        };
        c.shell.send(m).await.unwrap();
        assert!(c.shell_reply(Duration::from_millis(700)).await.is_none());

        // Still alive, and the first real execution is number 1.
        let id = c.send_shell("execute_request", json!({"code": "1"})).await;
        let reply = c
            .shell_reply(STEP)
            .await
            .expect("no reply after forged ones");
        assert_eq!(reply.parent_id, id);
        assert_eq!(reply.content["execution_count"], 1);

        // A replayed (byte-identical) message is dropped.
        let (_, m) = c.request("kernel_info_request", json!({}), None);
        c.shell.send(m.clone()).await.unwrap();
        assert!(c.shell_reply(STEP).await.is_some());
        c.shell.send(m).await.unwrap();
        assert!(c.shell_reply(Duration::from_millis(700)).await.is_none());

        c.send_shell("shutdown_request", json!({"restart": true}))
            .await;
        let reply = c.shell_reply(STEP).await.unwrap();
        assert_eq!(reply.content["restart"], true);
    });
    assert_eq!(wait_result(&done), Ok(()));
}

#[test]
fn heartbeat_echoes_and_small_requests_get_empty_answers() {
    let conn = conn_file(KEY);
    let done = serve_in_thread(&conn);
    runtime().block_on(async {
        let mut c = Client::connect(&conn).await;
        assert_eq!(c.ping("ping").await, "ping");
        assert_eq!(c.ping("second beat").await, "second beat");
        c.wait_ready().await;

        let cases = [
            (
                "is_complete_request",
                json!({"code": "1+"}),
                "is_complete_reply",
            ),
            (
                "complete_request",
                json!({"code": "pri", "cursor_pos": 3}),
                "complete_reply",
            ),
            (
                "inspect_request",
                json!({"code": "x", "cursor_pos": 1, "detail_level": 0}),
                "inspect_reply",
            ),
            ("comm_info_request", json!({}), "comm_info_reply"),
            (
                "history_request",
                json!({"hist_access_type": "tail", "n": 10}),
                "history_reply",
            ),
        ];
        for (req, content, want) in cases {
            let id = c.send_shell(req, content).await;
            let r = c
                .shell_reply(STEP)
                .await
                .unwrap_or_else(|| panic!("no {want}"));
            assert_eq!(
                (r.msg_type.as_str(), r.parent_id.as_str()),
                (want, id.as_str())
            );
            match want {
                "is_complete_reply" => assert_eq!(r.content["status"], "complete"),
                "complete_reply" => {
                    assert_eq!(r.content["matches"], json!([]));
                    assert_eq!(r.content["cursor_start"], 3);
                }
                "inspect_reply" => assert_eq!(r.content["found"], false),
                "comm_info_reply" => assert_eq!(r.content["comms"], json!({})),
                _ => assert_eq!(r.content["history"], json!([])),
            }
        }

        // Unknown requests are ignored, not answered and not fatal.
        c.send_shell("debug_request", json!({})).await;
        assert!(c.shell_reply(Duration::from_millis(500)).await.is_none());

        let id = c.send_control("interrupt_request", json!({})).await;
        let r = c.control_reply().await;
        assert_eq!(
            (r.msg_type.as_str(), r.parent_id.as_str()),
            ("interrupt_reply", id.as_str())
        );
        assert_eq!(r.content["status"], "ok");

        assert_eq!(c.ping("after").await, "after");
        c.send_control("shutdown_request", json!({"restart": false}))
            .await;
        assert_eq!(c.control_reply().await.msg_type, "shutdown_reply");
    });
    assert_eq!(wait_result(&done), Ok(()));
}

#[test]
fn an_empty_key_means_unsigned_messages() {
    let conn = conn_file("");
    let done = serve_in_thread(&conn);
    runtime().block_on(async {
        let mut c = Client::connect(&conn).await;
        let info = c.wait_ready().await;
        assert_eq!(info.content["implementation"], "provisioner-refusal");
        c.send_control("shutdown_request", json!({})).await;
        c.control_reply().await;
    });
    assert_eq!(wait_result(&done), Ok(()));
}

#[test]
fn unusable_connection_files_fail_with_the_problem_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.json");
    let e = serve(&missing, &notice()).unwrap_err();
    assert!(matches!(e, RefusalKernelError::Read { .. }));
    let s = e.to_string();
    assert!(s.contains("gone.json") && s.contains("fix:"), "{s}");

    let ipc = dir.path().join("ipc.json");
    std::fs::write(
        &ipc,
        r#"{"transport":"ipc","ip":"/tmp/k","shell_port":1,"iopub_port":2,"stdin_port":3,"control_port":4,"hb_port":5,"key":"k"}"#,
    )
    .unwrap();
    let s = serve(&ipc, &notice()).unwrap_err().to_string();
    assert!(s.contains("ipc") && s.contains("fix:"), "{s}");

    // A port somebody else holds: the error names the channel and the endpoint.
    let conn = conn_file(KEY);
    let holder = TcpListener::bind(("127.0.0.1", conn.control)).unwrap();
    let e = serve(&conn.path, &notice()).unwrap_err();
    drop(holder);
    let s = e.to_string();
    assert!(
        s.contains("control") && s.contains(&format!("127.0.0.1:{}", conn.control)),
        "{s}"
    );
}

#[test]
fn finds_the_connection_file_jupyter_passes() {
    let conn = conn_file(KEY);
    let argv: Vec<std::ffi::OsString> = ["python", "-m", "ipykernel_launcher", "-f"]
        .iter()
        .map(Into::into)
        .chain([conn.path.clone().into_os_string()])
        .collect();
    assert_eq!(connection_file_from_argv(&argv), Some(conn.path.clone()));
}

// ---- child-process tests: signals and parent exit -------------------------------

const CHILD_ENV: &str = "REFUSAL_KERNEL_TEST_CONNECTION_FILE";

/// Not a test: the body of the child process of the tests below.
#[test]
#[ignore = "entry point of the child process in the signal tests"]
fn child_kernel() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let n = notice();
    match serve(Path::new(&path), &n) {
        Ok(()) => std::process::exit(n.exit_code),
        Err(e) => {
            eprintln!("provisioner: {e}");
            std::process::exit(99)
        }
    }
}

fn child_command(conn: &Conn) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "child_kernel", "--nocapture"])
        .env(CHILD_ENV, &conn.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

#[test]
fn sigint_is_an_interrupt_and_sigterm_ends_the_kernel() {
    let conn = conn_file(KEY);
    let mut child = child_command(&conn).stderr(Stdio::piped()).spawn().unwrap();
    let rt = runtime();
    let mut c = rt.block_on(Client::connect(&conn));
    rt.block_on(c.wait_ready());

    // Jupyter's interrupt button (interrupt_mode "signal") must not kill the kernel.
    signal(child.id(), nix::sys::signal::Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGINT ended the kernel"
    );
    rt.block_on(async {
        c.send_shell("execute_request", json!({"code": "1"})).await;
        let r = c.shell_reply(STEP).await.expect("no reply after SIGINT");
        assert_eq!(r.content["ename"], "KernelRefused");
    });

    signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    let status = wait_exit(&mut child, STEP);
    if status.is_none() {
        let _ = child.kill();
    }
    let status = status.expect("SIGTERM did not end the kernel");
    assert_eq!(status.code(), Some(notice().exit_code));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("interrupted"), "stderr: {err}");
    assert!(err.contains("terminated by signal"), "stderr: {err}");
    assert!(!err.contains(KEY), "the key leaked to stderr: {err}");
}

#[test]
fn exits_when_the_process_that_started_it_goes_away() {
    let conn = conn_file(KEY);
    let exe = std::env::current_exe().unwrap();
    // sh starts the kernel in the background, prints its pid, and exits when we
    // close its stdin: the kernel's parent is then gone.
    let mut sh = Command::new("sh")
        .args([
            "-c",
            r#""$0" --ignored --exact child_kernel --nocapture </dev/null >/dev/null 2>&1 & echo $!; read _"#,
        ])
        .arg(&exe)
        .env(CHILD_ENV, &conn.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(sh.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let pid: u32 = line.trim().parse().unwrap();

    let rt = runtime();
    let mut c = rt.block_on(Client::connect(&conn));
    rt.block_on(c.wait_ready());

    drop(sh.stdin.take());
    assert!(wait_exit(&mut sh, STEP).is_some(), "sh did not exit");

    // The kernel is no longer our child: watch /proc (a zombie counts as gone).
    let gone = |pid: u32| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    };
    let deadline = Instant::now() + STEP;
    while !gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if !gone(pid) {
        signal(pid, nix::sys::signal::Signal::SIGKILL);
        panic!("the kernel outlived its parent");
    }
}

// ---- jupyter_client --------------------------------------------------------------

#[test]
fn jupyter_client_sees_the_refusal() {
    let Some(bin) = test_support::server(
        "JUPYTER_BIN_DIR",
        "a bin directory with python and jupyter_client (a virtualenv's bin)",
    ) else {
        return;
    };
    let python = Path::new(&bin).join("python");
    assert!(
        python.is_file(),
        "no python in JUPYTER_BIN_DIR ({})",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/refusal_client.py");
    let conn = conn_file(KEY);
    let done = serve_in_thread(&conn);

    let mut child = Command::new(&python)
        .arg(&script)
        .arg(&conn.path)
        .arg("--shutdown")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.is_some(),
        "refusal_client.py timed out; stdout: {stdout} stderr: {stderr}"
    );
    assert!(
        out.status.success(),
        "refusal_client.py failed; stdout: {stdout} stderr: {stderr}"
    );
    assert!(stdout.contains("reply status: error"), "{stdout}");
    assert!(stdout.contains("ename: KernelRefused"), "{stdout}");
    assert!(stdout.contains(&expected_text()), "{stdout}");
    assert_eq!(wait_result(&done), Ok(()));
}
