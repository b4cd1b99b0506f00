"""The built binaries and a runner that calls them with a clean environment."""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .env import REPO_ROOT, clean_env


def _target_dir():
    explicit = os.environ.get("CARGO_TARGET_DIR")
    return Path(explicit) if explicit else REPO_ROOT / "target"


def find_binary(name, env_var):
    """$env_var, else <target>/release/NAME, else <target>/debug/NAME.
    Raises FileNotFoundError saying how to build it."""
    explicit = os.environ.get(env_var)
    if explicit:
        p = Path(explicit)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise FileNotFoundError(f"{env_var}={explicit} is not an executable file")
        return p
    for profile in ("release", "debug"):
        p = _target_dir() / profile / name
        if p.is_file() and os.access(p, os.X_OK):
            return p
    raise FileNotFoundError(
        f"{name} is not built: run `cargo build --release` (or scripts/test), "
        f"or set {env_var} to the binary"
    )


@dataclass
class Runner:
    """Runs one binary with clean_env() plus the variables a test gives."""

    path: Path

    def run(self, *args, env=None, timeout=60, input=None, cwd=None):
        """Runs `path args...`; returns the CompletedProcess (text, never raises on a
        non-zero exit: tests assert on exit codes)."""
        return subprocess.run(
            [str(self.path), *map(str, args)],
            env=clean_env(env),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )

    def explain(self, config, user, *, workspace=None, runtime_template=None, flow=None, env=None):
        """`provisioner explain --json` for one context; returns (parsed JSON, process).
        Fails the calling test with the stderr if the output is not one JSON object."""
        args = ["explain", "--json", "--config", config, "--user", user]
        if workspace:
            args += ["--workspace", workspace]
        if runtime_template:
            args += ["--runtime-template", runtime_template]
        if flow:
            args += ["--flow", flow]
        r = self.run(*args, env=env)
        try:
            doc = json.loads(r.stdout)
        except json.JSONDecodeError:
            raise AssertionError(
                f"explain did not print JSON (exit {r.returncode}):\n"
                f"stdout: {r.stdout}\nstderr: {r.stderr}"
            ) from None
        return doc, r
