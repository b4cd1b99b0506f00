"""Starting kernels through an installed provisioner kernelspec, as Jupyter does.

`ScopedKernels` installs a kernelspec with `provisioner kernelspec install` into a
throwaway Jupyter data directory, and starts kernels from it with jupyter_client's
KernelManager (the same code path JupyterLab, papermill and Enterprise Gateway use).
Cells are run with a BlockingKernelClient; their stdout, stderr and errors come back as
text.
"""

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

from harness.env import clean_env

KERNEL_NAME = "scoped"


@dataclass
class CellResult:
    stdout: str = ""
    stderr: str = ""
    error: str = ""  # "ename: evalue" of an error, if any
    traceback: list = field(default_factory=list)

    def json(self):
        """The last stdout line parsed as JSON (cells print one JSON object)."""
        lines = [ln for ln in self.stdout.splitlines() if ln.strip()]
        assert lines, f"cell printed nothing; stderr={self.stderr!r} error={self.error!r}"
        return json.loads(lines[-1])


def run_cell(kc, code, timeout=60):
    """Runs `code` and collects its output until the kernel is idle again."""
    msg_id = kc.execute(code)
    out = CellResult()
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            if content["name"] == "stdout":
                out.stdout += content["text"]
            else:
                out.stderr += content["text"]
        elif kind == "error":
            out.error = f"{content['ename']}: {content['evalue']}"
            out.traceback = content.get("traceback", [])
        elif kind == "status" and content["execution_state"] == "idle":
            return out


class ScopedKernels:
    """A kernelspec installed through provisioner in `jupyter_dir`, and the kernels
    started from it (all shut down by close())."""

    def __init__(self, provisioner, jupyter_dir, config, flow=None, name=KERNEL_NAME):
        self.dir = Path(jupyter_dir)
        self.name = name
        args = ["kernelspec", "install", "--dir", self.dir, "--name", name,
                "--config", config, "--python", sys.executable]
        if flow:
            args += ["--flow", flow]
        r = provisioner.run(*args)
        assert r.returncode == 0, f"kernelspec install failed: {r.stderr}"
        self.spec_file = self.dir / "kernels" / name / "kernel.json"
        self.managers = []

    def spec_manager(self):
        return KernelSpecManager(kernel_dirs=[str(self.dir / "kernels")])

    def start(self, env, stderr_path=None, ready_timeout=60):
        """Starts a kernel with exactly `env` (plus the test guards of clean_env);
        returns (KernelManager, BlockingKernelClient)."""
        km = KernelManager(kernel_name=self.name, kernel_spec_manager=self.spec_manager())
        kw = {"env": clean_env(env)}
        if stderr_path:
            kw["stderr"] = open(stderr_path, "ab")
        km.start_kernel(**kw)
        self.managers.append(km)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=ready_timeout)
        except RuntimeError:
            kc.stop_channels()
            raise
        return km, kc

    def close(self):
        for km in self.managers:
            try:
                if km.is_alive():
                    km.shutdown_kernel(now=True)
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass


def read_records(path):
    """Decision records (JSON lines) written to a decision_log file."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


# Code run inside kernels: what a user would run to see who they are.
WHOAMI = """
import json, os, boto3
ident = boto3.client("sts").get_caller_identity()
print(json.dumps({"arn": ident["Arn"], "pid": os.getpid(),
                  "env": {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "BOTO_", "SYN_"))}}))
"""


def env_has_no_secret_leak(env_seen, forbidden_values):
    """True when none of `forbidden_values` appears in any variable the kernel sees."""
    joined = "\n".join(f"{k}={v}" for k, v in env_seen.items())
    return not any(v and v in joined for v in forbidden_values)


def pids_alive(*pids):
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive
