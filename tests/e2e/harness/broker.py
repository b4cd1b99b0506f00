"""`provisioner serve` as a platform team runs it, and its wire protocol from the outside.

The broker runs as root with the base credentials in its own environment only (no user
process is given them); its socket lives in a root-owned 0755 directory that users can
reach and not write; its state and decision log live in a directory only root can enter.

The protocol (README.md of the product): each message is a 4-byte big-endian length and
that many bytes of UTF-8 JSON. Request
`{"version": 1, "op": "launch"|"explain", "context": {"user", "workspace",
"runtime_template", "flow"}}`; answer `{"version": 1, "ok": true, "record": {...},
"credentials": {...}|null}` or `{"version": 1, "ok": false, "error": {"code", "message",
"exit_code"}}`. `frame`/`exchange` below are also copied into user processes (see
user_probes.py), which speak the protocol by hand as an attacker would.

What this module must never do: put the base credentials anywhere but the broker's own
environment, or leave the broker running after the session.
"""

import json
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

from .env import clean_env

MAX_FRAME = 1 << 20


def frame(doc):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return struct.pack(">I", len(body)) + body


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(sock):
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">I", head)
    if n > MAX_FRAME:
        raise ValueError(f"answer of {n} bytes")
    body = _recv_exact(sock, n)
    return None if body is None else json.loads(body)


def exchange(path, doc, timeout=15):
    """Sends one request (a dict, or raw bytes already framed when `doc` is bytes and
    starts with its own length) and returns the parsed answer (None if the broker closed
    the connection without one)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(frame(doc))
        return read_frame(s)


class Broker:
    """One `provisioner serve` process as root.

    `workdir` must be private to root (the test's tmp_path); `run_dir` is the socket's
    directory (created 0755, root's, under a path users can traverse)."""

    def __init__(self, provisioner_bin, config, workdir, run_dir, base_env, extra_args=()):
        self.workdir = Path(workdir)
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o755)
        self.socket = self.run_dir / "broker.sock"
        self.state = self.workdir / "broker-state"
        self.state.mkdir(mode=0o700, exist_ok=True)
        self.log_path = self.workdir / "broker.log"
        self.config = Path(config)
        self._log = open(self.log_path, "ab")
        self.argv = [str(provisioner_bin), "serve", "--config", str(config),
                     "--socket", str(self.socket), "--state", str(self.state), *extra_args]
        self._env = clean_env(base_env)
        self.proc = subprocess.Popen(
            self.argv, env=self._env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, cwd=str(self.workdir),
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"provisioner serve exited with {self.proc.returncode}:\n{self.log()}")
            if self.socket.exists():
                try:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                        s.settimeout(2)
                        s.connect(str(self.socket))
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise TimeoutError(f"provisioner serve made no socket in {timeout} s:\n{self.log()}")

    def log(self):
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def decisions(self):
        """One dict per decision line the broker logged, oldest first: the line's
        `key=value` fields (uid, pid, login, authenticated, claimed, user, outcome, code,
        tier, ...; "-" means none) and, under "record", the decision record the line
        carries (None when the request was refused before a decision)."""
        out = []
        for line in self.log().splitlines():
            if " decision " not in line:
                continue
            head, _, record = line.partition(" record=")
            fields = dict(kv.split("=", 1) for kv in head.split() if "=" in kv)
            try:
                fields["record"] = json.loads(record) if record.strip() not in ("", "-") else None
            except json.JSONDecodeError:
                fields["record"] = None
            out.append(fields)
        return out

    def records(self):
        """The decision records the broker logged, oldest first."""
        return [d["record"] for d in self.decisions() if isinstance(d["record"], dict)]

    def launches(self, user, caller_uid):
        """Decision records of launches for platform user `user` whose authenticated
        socket peer had uid `caller_uid`."""
        return [r for r in self.records()
                if r.get("user") == user and (r.get("caller") or {}).get("uid") == caller_uid]

    def kill9_and_restart(self, pause=0.5):
        """SIGKILL, a pause, and the same command again (the state directory is kept).
        Returns the time of the kill."""
        self.proc.kill()
        self.proc.wait()
        killed = time.time()
        time.sleep(pause)
        self.proc = subprocess.Popen(
            self.argv, env=self._env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, cwd=str(self.workdir),
        )
        self._wait_ready()
        return killed

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def environ_of_pid(self):
        """The broker's own /proc environ (root can read it): where the base secret is."""
        return Path(f"/proc/{self.proc.pid}/environ").read_bytes()


def socket_mode_facts(path):
    """(mode of the socket, mode/owner of its directory) for assertions."""
    st = os.stat(path)
    dst = os.stat(Path(path).parent)
    return st.st_mode & 0o777, dst.st_mode & 0o777, dst.st_uid
