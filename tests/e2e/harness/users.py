"""Real Unix users for the multi-user tests, and the shared directory they work in.

The tests run as root (scripts/test does) and create their own users with `useradd`: a
unique prefix per test session, so two runs on one machine never share a user, and
`userdel` at the end. Each user gets a home directory (0700, owned by the user) under a
world-traversable temporary directory, so that the home in the passwd entry is real:
JupyterHub's LocalProcessSpawner takes HOME from there.

Processes run as a user through `run_as`/`popen_as`: uid, gid and the user's own
supplementary groups, HOME and USER set to the user's, and an environment built from
nothing (harness.env.clean_env) plus the users' virtualenv on PATH. Nothing here gives a
user process any AWS credential; a test that wants one must pass it explicitly.

The users' virtualenv (tests/requirements-users.txt) is made from the system Python in a
world-readable cache by scripts/test and named by PROVISIONER_USERS_VENV: a virtualenv
made from an interpreter under /root (mode 0700) cannot be run by anyone else.

What this module must never do: leave a user behind when the session ends normally,
create a file another user can write in a directory a user process trusts, or run a
user's process with root's groups.
"""

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from .env import clean_env

USERS_VENV_VAR = "PROVISIONER_USERS_VENV"
PROXY_VAR = "CONFIGURABLE_HTTP_PROXY"
HOW_TO_RUN = (
    "run scripts/test as root (it creates the users' virtualenv and configurable-http-proxy "
    f"and sets {USERS_VENV_VAR} and {PROXY_VAR})"
)


def _required():
    """True when a missing prerequisite must fail the test instead of skipping it:
    under scripts/test (PROVISIONER_E2E=1) every test must run."""
    return os.environ.get("PROVISIONER_E2E") == "1"


def require_root():
    """Skips the calling test unless it runs as root: only root can create users and
    start processes as them."""
    if os.geteuid() != 0:
        pytest.skip(f"needs root to create Unix users; {HOW_TO_RUN}")


def _missing(message):
    if _required():
        pytest.fail(f"{message}; {HOW_TO_RUN}", pytrace=False)
    pytest.skip(f"{message}; {HOW_TO_RUN}")


def users_venv():
    """The users' virtualenv (PROVISIONER_USERS_VENV), checked runnable by others."""
    value = os.environ.get(USERS_VENV_VAR)
    if not value:
        _missing(f"{USERS_VENV_VAR} is not set")
    venv = Path(value)
    if not (venv / ".complete").is_file() or not (venv / "bin" / "python").exists():
        _missing(f"{USERS_VENV_VAR}={value} is not a complete virtualenv")
    blocked = unreachable_by_others(venv / "bin" / "python")
    if blocked:
        pytest.fail(
            f"{USERS_VENV_VAR}={value}: other users cannot enter {blocked}; make the "
            "virtualenv under a world-readable directory (scripts/test does)",
            pytrace=False,
        )
    return venv


def http_proxy_bin():
    """configurable-http-proxy from npm (CONFIGURABLE_HTTP_PROXY)."""
    value = os.environ.get(PROXY_VAR)
    if not value:
        _missing(f"{PROXY_VAR} is not set")
    path = Path(value)
    if not (path.is_file() and os.access(path, os.X_OK)):
        _missing(f"{PROXY_VAR}={value} is not an executable file")
    return path


def unreachable_by_others(path):
    """The first directory on the way to `path` that others cannot traverse, or None."""
    p = Path(path).absolute()
    for d in [*reversed(p.parents)]:
        if not os.stat(d).st_mode & 0o001:
            return d
    return None


@dataclass(frozen=True)
class UnixUser:
    name: str
    uid: int
    gid: int
    home: Path

    @property
    def groups(self):
        """The user's own group ids (primary and supplementary), as at login."""
        return os.getgrouplist(self.name, self.gid)


class Users:
    """Users created for one test session under one shared, world-traversable directory.

    `shared` (0755, root's) holds what every user may read: homes' parent, binaries,
    kernelspecs, scripts. Call cleanup() at the end (the fixture does)."""

    def __init__(self, venv):
        self.venv = Path(venv)
        self.prefix = "pv" + secrets.token_hex(3)
        self.shared = Path(tempfile.mkdtemp(prefix=f"provisioner-{self.prefix}-"))
        self.shared.chmod(0o755)
        (self.shared / "home").mkdir(mode=0o755)
        self.created = []
        self.groups_created = []

    # -- users and groups -------------------------------------------------------------

    def add(self, role, groups=()):
        """Creates user PREFIX-ROLE with a private home; returns its UnixUser."""
        name = f"{self.prefix}-{role}"
        home = self.shared / "home" / name
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(home),
             "--shell", "/usr/sbin/nologin", name],
            check=True, capture_output=True, text=True, timeout=30,
        )
        self.created.append(name)
        for g in groups:
            subprocess.run(["usermod", "-a", "-G", g, name], check=True, capture_output=True,
                           text=True, timeout=30)
        pw = pwd.getpwnam(name)
        home.mkdir(mode=0o700)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        home.chmod(0o700)
        return UnixUser(name, pw.pw_uid, pw.pw_gid, home)

    def add_group(self, role):
        """Creates group PREFIX-ROLE; returns its name."""
        name = f"{self.prefix}-{role}"
        subprocess.run(["groupadd", "--system", name], check=True, capture_output=True,
                       text=True, timeout=30)
        self.groups_created.append(name)
        return name

    def cleanup(self):
        problems = []
        for name in self.created:
            r = subprocess.run(["userdel", name], capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                problems.append(f"userdel {name}: {r.stderr.strip()}")
        for name in self.groups_created:
            subprocess.run(["groupdel", name], capture_output=True, text=True, timeout=30)
        shutil.rmtree(self.shared, ignore_errors=True)
        return problems

    # -- shared files -----------------------------------------------------------------

    def share_dir(self, *parts, mode=0o755):
        """A root-owned directory under `shared` that users may read and not write."""
        d = self.shared.joinpath(*parts)
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(mode)
        return d

    def share_file(self, src, *parts, mode=0o644):
        """Copies `src` into `shared` (root-owned, not writable by users); returns the copy."""
        dst = self.shared.joinpath(*parts)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        dst.chmod(mode)
        return dst

    def write_shared(self, text, *parts, mode=0o644):
        dst = self.shared.joinpath(*parts)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(text)
        dst.chmod(mode)
        return dst

    # -- processes --------------------------------------------------------------------

    def env_for(self, user, extra=None):
        """An environment for `user`: clean_env plus the user's HOME, USER, LOGNAME, its
        Jupyter and IPython directories in its home, and the users' virtualenv first on
        PATH. `extra` is applied last (None removes a variable)."""
        base = {
            "HOME": str(user.home),
            "USER": user.name,
            "LOGNAME": user.name,
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "JUPYTER_RUNTIME_DIR": str(user.home / ".local/share/jupyter/runtime"),
            "JUPYTER_DATA_DIR": str(user.home / ".local/share/jupyter"),
            "IPYTHONDIR": str(user.home / ".ipython"),
            "TMPDIR": "/tmp",
        }
        base.update(extra or {})
        return clean_env(base)

    def _as(self, user):
        return {"user": user.uid, "group": user.gid, "extra_groups": user.groups,
                "cwd": str(user.home)}

    def run_as(self, user, argv, env=None, timeout=120, input=None):
        """Runs argv as `user` with env_for(user, env); returns the CompletedProcess."""
        return subprocess.run(
            [str(a) for a in argv], env=self.env_for(user, env), input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout, **self._as(user),
        )

    def popen_as(self, user, argv, env=None, **kw):
        """Starts argv as `user` with env_for(user, env); returns the Popen."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen([str(a) for a in argv], env=self.env_for(user, env),
                                **self._as(user), **kw)
