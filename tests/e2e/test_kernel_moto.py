"""Kernels started by jupyter_client through the installed provisioner kernelspec, with
credentials minted from a moto STS (IAM auth on: signatures and trust policies are
checked). For each tier the kernel's own boto3 sees the expected identity, moto saw the
exact request, and the kernel's environment holds nothing broader.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from harness.env import clean_env
from harness.moto import ALLOW_ASSUME_ANY_ROLE
from harness.net import free_port, wait_for_http
from harness.platform import platform_file
from kernel_support import WHOAMI, ScopedKernels, pids_alive, read_records, run_cell

ACCOUNT = "123456789012"

# Variables a launcher may hold that would let kernel code reach broader credentials.
LEAKY = {
    "AWS_PROFILE": "broad-profile",
    "AWS_DEFAULT_PROFILE": "broad-profile",
    "AWS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/Broad",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/token",
    "AWS_ROLE_SESSION_NAME": "node",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-token",
    "AWS_SECURITY_TOKEN": "stale-security-token",
    "AWS_SDK_LOAD_CONFIG": "1",
    "BOTO_CONFIG": "/dev/null",
}
REMOVED = sorted(set(LEAKY) | {"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"})


@pytest.fixture
def stack(moto, tmp_path, provisioner):
    """moto with a launcher user, the platform roles, IAM auth on; a platform file
    pointing at it; a kernelspec installed through provisioner."""
    launcher = moto.create_user("launcher", policy=ALLOW_ASSUME_ANY_ROLE)
    legacy = moto.create_user("legacy", policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}]})
    roles = {}
    for name in ("PlatformInfraRole", "Finance", "Etl"):
        roles[name] = moto.create_role(name, trusted=[launcher.arn], max_session_duration=43200)
    roles["Untrusted"] = moto.create_role("Untrusted", trusted=[f"arn:aws:iam::{ACCOUNT}:user/nobody"])
    moto.enable_auth()

    secret_file = tmp_path / "legacy-secret"
    secret_file.write_text(legacy.secret_access_key + "\n")
    secret_file.chmod(0o600)
    log = tmp_path / "decisions.jsonl"
    config = platform_file(
        tmp_path,
        settings={"decision_log": str(log), "syntasa_session_policy_duration": "3600"},
        aws={"sts_endpoint": moto.endpoint, "session_policy_role_arn": roles["PlatformInfraRole"]},
        service_accounts=[
            {"id": "sa-finance", "role_arn": roles["Finance"], "external_id": "fin-ext", "duration_seconds": 3600},
            {"id": "sa-etl", "role_arn": roles["Etl"], "duration_seconds": 3600},
            {"id": "sa-untrusted", "role_arn": roles["Untrusted"], "duration_seconds": 3600},
            {"id": "sa-legacy", "access_key_id": {"env": "LEGACY_KEY_ID"},
             "secret_access_key": {"file": str(secret_file)}},
        ],
        workspaces=[{"id": "ws-finance", "service_account": "sa-finance"}, {"id": "ws-open"},
                    {"id": "ws-broken", "service_account": "sa-untrusted"}],
        runtime_templates=[{"id": "rt-default"}, {"id": "rt-etl", "service_account": "sa-etl"},
                           {"id": "rt-legacy", "service_account": "sa-legacy"}],
    )
    kernels = ScopedKernels(provisioner, tmp_path / "jupyter", config)

    def env(user, leaky=True, **extra):
        e = {**launcher.env(), **(LEAKY if leaky else {}), "AWS_ENDPOINT_URL": moto.endpoint,
             "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "SYN_USER": user, "LEGACY_KEY_ID": legacy.access_key_id}
        e.update(extra)
        return e

    yield type("Stack", (), {"moto": moto, "launcher": launcher, "legacy": legacy, "roles": roles,
                             "config": config, "log": log, "kernels": kernels, "env": staticmethod(env),
                             "tmp": tmp_path, "provisioner": provisioner})
    kernels.close()


def whoami(stack, user, leaky=True, **extra):
    km, kc = stack.kernels.start(stack.env(user, leaky, **extra))
    try:
        result = run_cell(kc, WHOAMI)
        assert not result.error, result.error + "\n".join(result.traceback)
        return result.json(), km
    finally:
        kc.stop_channels()


def assert_clean_env(seen, launcher):
    for name in REMOVED:
        assert name not in seen, f"{name} reached the kernel"
    assert seen.get("AWS_ACCESS_KEY_ID") != launcher.access_key_id
    assert launcher.secret_access_key not in json.dumps(seen), "launcher's base secret reached the kernel"
    assert seen["AWS_EC2_METADATA_DISABLED"] == "true"


def test_session_policy_kernel_runs_as_scoped_session(stack):
    me, km = whoami(stack, "alice", SYN_WORKSPACE_ID="ws-open")
    assert me["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/PlatformInfraRole/alice"
    assert me["pid"] == km.provisioner.pid, "provisioner must exec the kernel in place (same PID)"
    assert_clean_env(me["env"], stack.launcher)
    assert me["env"]["SYN_PROVISIONED"].startswith("tier=session_policy;expiration=")
    assert me["env"]["AWS_CREDENTIAL_EXPIRATION"].endswith("Z")

    # moto received exactly the policy explain shows, for this user and duration.
    explained, _ = stack.provisioner.explain(stack.config, "alice", workspace="ws-open")
    sent = [r for r in stack.moto.assume_role_records() if r["role_arn"].endswith("/PlatformInfraRole")]
    assert len(sent) == 1
    assert sent[0]["session_name"] == "alice"
    assert json.loads(sent[0]["policy"]) == explained["policy"]
    assert sent[0]["policy"] == json.dumps(explained["policy"], separators=(",", ":"))

    [record] = read_records(stack.log)
    assert record["tier"] == "session_policy" and record["policy_sha256"] == explained["policy_sha256"]
    assert record["expiration"] == me["env"]["AWS_CREDENTIAL_EXPIRATION"]
    assert me["env"]["AWS_SECRET_ACCESS_KEY"] not in stack.log.read_text()
    assert me["env"]["AWS_SESSION_TOKEN"] not in stack.log.read_text()


def test_workspace_service_account_kernel(stack):
    me, _ = whoami(stack, "alice", SYN_WORKSPACE_ID="ws-finance", SYN_RUNTIME_TEMPLATE_ID="rt-etl")
    assert me["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Finance/alice"
    assert_clean_env(me["env"], stack.launcher)
    [sent] = stack.moto.assume_role_records()
    assert sent["external_id"] == "fin-ext"
    assert sent["policy"] is None, "service accounts are not scoped by a session policy"
    [record] = read_records(stack.log)
    assert (record["tier"], record["service_account"]) == ("workspace_sa", "sa-finance")


def test_runtime_template_service_account_kernel(stack):
    me, _ = whoami(stack, "alice", SYN_WORKSPACE_ID="ws-open", SYN_RUNTIME_TEMPLATE_ID="rt-etl")
    assert me["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Etl/alice"
    [record] = read_records(stack.log)
    assert record["tier"] == "runtime_template_sa"
    assert [s["reason"] for s in record["skipped"]] == ["NO_SERVICE_ACCOUNT"]


def test_static_key_service_account_kernel(stack):
    me, _ = whoami(stack, "alice", SYN_RUNTIME_TEMPLATE_ID="rt-legacy", AWS_SESSION_TOKEN="stale-token")
    assert me["arn"] == f"arn:aws:iam::{ACCOUNT}:user/legacy"
    assert me["env"]["AWS_ACCESS_KEY_ID"] == stack.legacy.access_key_id
    assert "AWS_SESSION_TOKEN" not in me["env"], "static keys must not carry a stale session token"
    assert "AWS_CREDENTIAL_EXPIRATION" not in me["env"]
    assert_clean_env(me["env"], stack.launcher)
    assert stack.moto.assume_role_records() == []


def test_system_admin_kernel_keeps_default_credentials(stack):
    # The default tier leaves the environment as the cluster set it (here: plain keys).
    me, _ = whoami(stack, "root", leaky=False, AWS_PROFILE=None)
    # Default tier: nothing minted, the kernel keeps the launcher's (cluster) credentials.
    assert me["arn"] == f"arn:aws:iam::{ACCOUNT}:user/launcher"
    assert me["env"]["SYN_PROVISIONED"] == "tier=default;user=root"
    [record] = read_records(stack.log)
    assert (record["tier"], record["reason"]) == ("default", "ADMIN_BYPASS")


def test_untrusted_service_account_falls_back_with_warning(stack):
    me, _ = whoami(stack, "alice", SYN_WORKSPACE_ID="ws-broken")
    assert me["arn"].endswith("assumed-role/PlatformInfraRole/alice")
    [record] = read_records(stack.log)
    assert record["tier"] == "session_policy"
    assert record["skipped"][0]["reason"] == "SERVICE_ACCOUNT_FAILED"
    assert any("sa-untrusted" in w and "falling back" in w for w in record["warnings"]), record["warnings"]


def test_interrupt_restart_and_shutdown_behave_as_with_the_bare_kernel(stack):
    km, kc = stack.kernels.start(stack.env("alice"))
    try:
        first = run_cell(kc, WHOAMI).json()
        # Interrupt: a long cell ends with KeyboardInterrupt, promptly.
        msg_id = kc.execute("import time\ntime.sleep(60)")
        time.sleep(1.0)
        t0 = time.monotonic()
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=20)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=20)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - t0 < 10
        assert run_cell(kc, "print(1+1)").stdout.strip() == "2", "kernel survives the interrupt"

        # Restart re-runs the kernelspec argv: provisioner resolves again and mints anew.
        old_pid = km.provisioner.pid
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=60)
        second = run_cell(kc, WHOAMI).json()
        assert second["pid"] == km.provisioner.pid != old_pid
        assert second["env"]["AWS_ACCESS_KEY_ID"] != first["env"]["AWS_ACCESS_KEY_ID"], "fresh credentials"
        assert second["arn"] == first["arn"]
        assert len(read_records(stack.log)) == 2
        assert not pids_alive(old_pid), "no process lingers after restart"

        # Shutdown: the kernel process (our PID) is gone, nothing left behind.
        pid = km.provisioner.pid
        kc.stop_channels()
        km.shutdown_kernel(now=False)
        assert not km.is_alive()
        assert not pids_alive(pid)
    finally:
        kc.stop_channels()


def test_scheduled_run_through_papermill_uses_the_owners_scope(stack, tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(WHOAMI)]
    src, out = tmp_path / "scheduled.ipynb", tmp_path / "scheduled-out.ipynb"
    nbformat.write(nb, src)
    env = clean_env({**stack.env("alice"), "SYN_FLOW": "notebook-run",
                     "JUPYTER_PATH": str(stack.kernels.dir)})
    r = subprocess.run([sys.executable, "-m", "papermill", str(src), str(out), "-k", stack.kernels.name,
                        "--start-timeout", "60"], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    cell = nbformat.read(out, as_version=4).cells[0]
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    me = json.loads(text.strip().splitlines()[-1])
    assert me["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/PlatformInfraRole/alice"
    [record] = read_records(stack.log)
    assert (record["flow"], record["tier"], record["user"]) == ("notebook-run", "session_policy", "alice")


def test_jupyter_server_creates_kernel_and_runs_cell_over_websocket(stack, tmp_path):
    import uuid

    import websocket

    port, token = free_port(), uuid.uuid4().hex
    env = clean_env({**stack.env("alice"), "JUPYTER_PATH": str(stack.kernels.dir),
                     "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")})
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.port_retries=0", "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "wb"))
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    http.trust_env = False
    http.headers["Authorization"] = f"token {token}"
    try:
        wait_for_http(f"{base}/api/status?token={token}", timeout=60, proc=server)
        kernel = http.post(f"{base}/api/kernels", json={"name": stack.kernels.name}, timeout=60).json()
        assert kernel.get("name") == stack.kernels.name, kernel
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={token}", timeout=60)
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "alice",
                       "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": WHOAMI, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        text, deadline = "", time.monotonic() + 90
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        ws.close()
        me = json.loads(text.strip().splitlines()[-1])
        assert me["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/PlatformInfraRole/alice"
        assert http.delete(f"{base}/api/kernels/{kernel['id']}", timeout=60).status_code == 204
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_refused_launch_explains_itself_in_the_notebook(stack):
    # An unknown user cannot be scoped: the launch is refused, and the notebook says why.
    km, kc = stack.kernels.start(stack.env("mallory"))
    try:
        result = run_cell(kc, "print('never runs')")
        assert "never runs" not in result.stdout
        text = result.error + "\n".join(result.traceback) + result.stderr
        assert "UNKNOWN_USER" in text and "mallory" in text and "add the user" in text, text
        [record] = read_records(stack.log)
        assert record["refused"]["code"] == "UNKNOWN_USER"
        assert record["credentials"] == "none"
    finally:
        kc.stop_channels()
    km.shutdown_kernel(now=False)
    assert not km.is_alive()


def test_refused_scheduled_run_shows_the_reason_in_the_papermill_output(stack, tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('never runs')")]
    src, out = tmp_path / "refused.ipynb", tmp_path / "refused-out.ipynb"
    nbformat.write(nb, src)
    env = clean_env({**stack.env("mallory"), "SYN_FLOW": "notebook-run", "JUPYTER_PATH": str(stack.kernels.dir)})
    r = subprocess.run([sys.executable, "-m", "papermill", str(src), str(out), "-k", stack.kernels.name,
                        "--start-timeout", "60"], env=env, capture_output=True, text=True, timeout=180)
    # The run fails (the cell raised), and both the run's error and the saved notebook
    # say why and what to fix, instead of "kernel died".
    assert r.returncode != 0
    assert "Kernel refused: UNKNOWN_USER" in r.stderr and "Fix: add the user" in r.stderr, r.stderr[-2000:]
    # papermill puts a markdown banner first; the code cell holds the error output.
    [cell] = [c for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"]
    errors = [o for o in cell.outputs if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "KernelRefused"
    text = errors[0]["evalue"] + "\n".join(errors[0]["traceback"])
    assert "mallory" in text and "add the user" in text, text
    assert not any("never runs" in o.get("text", "") for o in cell.outputs)
