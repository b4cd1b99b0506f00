"""A real JupyterHub on 127.0.0.1, as a platform team runs it for local users.

Hub (PyPI `jupyterhub`, run as root from the users' virtualenv) -> configurable-http-proxy
(npm) -> LocalProcessSpawner -> `jupyterhub-singleuser` as each Unix user -> kernels as
that user. The dummy authenticator admits the listed users; a service token with
`admin:users`, `admin:servers` and `access:servers` lets the test start a user's server
and kernels through it, and talk to a kernel over the same websocket JupyterLab uses.

The single-user servers find kernelspecs in `kernels_dir` (JUPYTER_PATH in the spawner's
environment). The hub's own environment holds no AWS credential: whatever a kernel
reaches, it got from its launcher.

What this module must never do: listen anywhere but 127.0.0.1, or leave the hub, the
proxy or a single-user server running (stop() sends SIGTERM; the hub stops what it
spawned).
"""

import json
import secrets
import signal
import subprocess
import time
import uuid
from pathlib import Path

import requests

from .env import clean_env
from .net import free_port

CONFIG = """
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.pid_file = {pid_file!r}
c.JupyterHub.db_url = "sqlite:///{db}"
c.JupyterHub.cookie_secret_file = {cookie!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = set({users!r})
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--ServerApp.ip=127.0.0.1"]
c.Spawner.default_url = "/api"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
c.Spawner.env_keep = ["PATH", "LANG", "LC_ALL"]
c.Spawner.environment = {spawner_env!r}
c.JupyterHub.services = [{{"name": "tester", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "tester",
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"],
    "services": ["tester"],
}}]
c.JupyterHub.cleanup_servers = True
"""


class Hub:
    """One running hub. `workdir` is private to root; `venv` is the users' virtualenv."""

    def __init__(self, workdir, venv, proxy_bin, users, spawner_env):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        self.port = free_port()
        self.hub_port = free_port()
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(24)
        cfg = CONFIG.format(
            port=self.port, hub_port=self.hub_port, api_port=self.api_port,
            proxy=str(proxy_bin), pid_file=str(self.dir / "proxy.pid"),
            db=self.dir / "jupyterhub.sqlite", cookie=str(self.dir / "cookie_secret"),
            users=sorted(users), singleuser=str(Path(venv) / "bin" / "jupyterhub-singleuser"),
            spawner_env=dict(spawner_env), token=self.token,
        )
        (self.dir / "jupyterhub_config.py").write_text(cfg)
        self.log_path = self.dir / "hub.log"
        self._log = open(self.log_path, "ab")
        env = clean_env({"PATH": f"{Path(venv) / 'bin'}:{Path(proxy_bin).parent}:/usr/local/bin:/usr/bin:/bin"})
        self.proc = subprocess.Popen(
            [str(Path(venv) / "bin" / "jupyterhub"), "-f", str(self.dir / "jupyterhub_config.py")],
            cwd=str(self.dir), env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.http = requests.Session()
        self.http.trust_env = False  # loopback, never through a proxy
        self.http.headers["Authorization"] = f"token {self.token}"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout=90):
        """Until the hub answers its API through the proxy (the proxy answers 404 for
        the hub's routes until the hub has registered them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.api("GET", "", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"jupyterhub did not answer in {timeout} s:\n{self.log()}")

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self):
        """SIGTERM, as an operator would: the hub stops the servers it spawned."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    # -- hub REST API -----------------------------------------------------------------

    def api(self, method, path, **kw):
        kw.setdefault("timeout", 30)
        return self.http.request(method, f"{self.url}/hub/api{path}", **kw)

    def start_server(self, name, timeout=90):
        """Starts NAME's single-user server and waits until the hub says it is ready."""
        r = self.api("POST", f"/users/{name}/server")
        if r.status_code not in (201, 202, 400):  # 400: already running
            raise RuntimeError(f"starting {name}'s server: {r.status_code} {r.text}\n{self.log()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            u = self.api("GET", f"/users/{name}").json()
            server = (u.get("servers") or {}).get("")
            if server and server.get("ready"):
                return server
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited:\n{self.log()}")
            time.sleep(0.3)
        raise TimeoutError(f"{name}'s server was not ready in {timeout} s:\n{self.log()}")

    def stop_server(self, name):
        self.api("DELETE", f"/users/{name}/server")

    # -- a user's server: kernels and cells --------------------------------------------

    def user_api(self, name, method, path, **kw):
        kw.setdefault("timeout", 60)
        return self.http.request(method, f"{self.url}/user/{name}/api{path}", **kw)

    def start_kernel(self, name, kernel_name):
        r = self.user_api(name, "POST", "/kernels", json={"name": kernel_name})
        if r.status_code != 201:
            raise RuntimeError(f"starting kernel {kernel_name} for {name}: {r.status_code} {r.text}")
        return r.json()["id"]

    def run_cell(self, name, kernel_id, code, timeout=90):
        """Runs `code` in the kernel over the websocket JupyterLab uses; returns
        {"stdout", "stderr", "error"} once the kernel is idle again."""
        import websocket

        ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.port}/user/{name}/api/kernels/{kernel_id}/channels",
            header=[f"Authorization: token {self.token}"], timeout=timeout,
            http_no_proxy=["127.0.0.1"],
        )
        try:
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps({
                "channel": "shell",
                "header": {"msg_id": msg_id, "username": "tester", "session": uuid.uuid4().hex,
                           "msg_type": "execute_request", "version": "5.3"},
                "parent_header": {}, "metadata": {},
                "content": {"code": code, "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
                "buffers": [],
            }))
            out = {"stdout": "", "stderr": "", "error": ""}
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id or msg.get("channel") != "iopub":
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out["stdout" if content["name"] == "stdout" else "stderr"] += content["text"]
                elif kind == "error":
                    out["error"] = f"{content['ename']}: {content['evalue']}"
                elif kind == "status" and content["execution_state"] == "idle":
                    return out
            raise TimeoutError(f"cell did not finish in {timeout} s: {out}")
        finally:
            ws.close()
