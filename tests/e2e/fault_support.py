"""Support for the fault, bad-input and secret-hygiene tests: the stand-in STS as a
fixture, a program that dumps its environment, a stand-in spark-submit, launches that
measure wall time, and a sampler of every process's command line.

The stand-in STS (tests/stand_ins/fake_sts.py) runs inside the test process on a free
127.0.0.1 port, in a daemon thread, so that the tests can also see exactly which
credentials it issued (`FakeSts.issued`) and prove that the child got those and nothing
broader.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from harness.env import REPO_ROOT, clean_env
from harness.net import free_port, wait_for_http
from harness.platform import platform_file

sys.path.insert(0, str(REPO_ROOT / "tests" / "stand_ins"))
import fake_sts  # noqa: E402

ACCOUNT = "123456789012"
# The launcher's own (base) credentials. With the default tier the child keeps them;
# with any minted tier it must never see them.
LAUNCHER_KEY_ID = "AKIALAUNCHERBASE0001"
LAUNCHER_SECRET = "launcher-base-secret-never-in-a-child-0001"
LEGACY_KEY_ID = "AKIALEGACYSTATIC0001"
LEGACY_SECRET = "legacy-static-secret-value-0001"


# -- the stand-in STS ----------------------------------------------------------------


class FakeSts:
    """tests/stand_ins/fake_sts.py on 127.0.0.1:PORT, served from a daemon thread.

    `issued` lists every set of credentials it answered with (dicts with
    access_key_id, secret_access_key, session_token, expiration, role_arn, duration),
    oldest first."""

    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.issued = []
        self._lock = threading.Lock()
        self._state = _GenerationState("ok", None, 0.0, 50.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), fake_sts.make_handler(self._state))
        self._server.daemon_threads = True
        self._server.request_queue_size = 512
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._http = requests.Session()
        self._http.trust_env = False
        wait_for_http(f"{self.endpoint}/_health", timeout=10)

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def reset(self):
        self._post("/_reset", {})
        with self._lock:
            self.issued.clear()
            # A delayed answer to an earlier test's request is not this test's.
            self._state.generation += 1

    def hold_policies(self, arns):
        """From now on only these managed policy ARNs exist (None: any ARN is accepted)."""
        self._post("/_control", {"mode": "ok", "policies": arns})

    def cue(self, mode, count=None, delay=None, rate=None):
        """The next `count` AssumeRole calls (all, without count) get `mode`."""
        cue = {"mode": mode}
        if count is not None:
            cue["count"] = count
        if delay is not None:
            cue["delay"] = delay
        if rate is not None:
            cue["rate"] = rate
        self._post("/_control", cue)

    def requests(self):
        r = self._http.get(f"{self.endpoint}/_requests", timeout=10)
        r.raise_for_status()
        return r.json()

    def assume_roles(self):
        """Every AssumeRole received: dicts with role, duration, policy, mode."""
        return [
            {
                "role": q["params"].get("RoleArn", "").rsplit("/", 1)[-1],
                "duration": int(q["params"].get("DurationSeconds", "0")),
                "policy": q["params"].get("Policy"),
                "external_id": q["params"].get("ExternalId"),
                "policy_arns": fake_sts.policy_arns(q["params"]),
                "mode": q["mode"],
            }
            for q in self.requests()
            if q["action"] == "AssumeRole"
        ]

    def _post(self, path, body):
        r = self._http.post(f"{self.endpoint}{path}", data=json.dumps(body), timeout=10)
        r.raise_for_status()

    def _record(self, params, xml):
        if getattr(_request_generation, "value", None) != self._state.generation:
            return
        def el(tag):
            m = re.search(rf"<{tag}>([^<]*)</{tag}>", xml)
            return m.group(1) if m else None

        with self._lock:
            self.issued.append(
                {
                    "access_key_id": el("AccessKeyId"),
                    "secret_access_key": el("SecretAccessKey"),
                    "session_token": el("SessionToken"),
                    "expiration": el("Expiration"),
                    "role_arn": params.get("RoleArn"),
                    "duration": int(params.get("DurationSeconds", "0")),
                }
            )

    def issued_for(self, access_key_id):
        with self._lock:
            return next((c for c in self.issued if c["access_key_id"] == access_key_id), None)

    def all_secrets(self):
        with self._lock:
            return [v for c in self.issued for v in (c["secret_access_key"], c["session_token"]) if v]


_request_generation = threading.local()


class _GenerationState(fake_sts.State):
    """The stand-in's state, noting in the handling thread which test (generation) a
    request arrived in: a delayed answer may be sent after the next test began."""

    generation = 0

    def take_mode(self):
        _request_generation.value = self.generation
        return super().take_mode()


_SERVERS = []
_original_xml = fake_sts.assume_role_xml


def _recording_xml(params, lifetime=None):
    xml = _original_xml(params, lifetime)
    for server in _SERVERS:
        server._record(params, xml)
    return xml


# The handler calls the module-level function by name at request time.
fake_sts.assume_role_xml = _recording_xml


@pytest.fixture(scope="session")
def fake_sts_server():
    server = FakeSts()
    _SERVERS.append(server)
    try:
        yield server
    finally:
        _SERVERS.remove(server)
        server.stop()


@pytest.fixture
def fake_sts_endpoint(fake_sts_server):
    """The stand-in STS with an empty request log, answering normally."""
    fake_sts_server.reset()
    yield fake_sts_server
    fake_sts_server.reset()


# -- platform files --------------------------------------------------------------------


def fault_platform(tmp_path, endpoint, *, log=None, name="platform.json", **overrides):
    """A platform pointing at `endpoint`, with a short STS deadline, a decision log
    file, a workspace service account (sa-finance, 43200 s), a runtime-template
    service account (sa-etl), a static-keys one (sa-legacy) and the session policy on.
    `overrides` as in harness.platform.platform_file (settings/aws merged key by key)."""
    settings = {
        "sts_deadline_seconds": "3",
        "sts_max_attempts": "4",
        "decision_log": str(log or tmp_path / "decisions.jsonl"),
        "syntasa_session_policy_duration": "3600",
        "session_policy_platform_folders": "none",
    }
    settings.update(overrides.pop("settings", {}))
    aws = {"sts_endpoint": endpoint}
    aws.update(overrides.pop("aws", {}))
    secret_file = tmp_path / "legacy-secret"
    if not secret_file.exists():
        secret_file.write_text(LEGACY_SECRET + "\n")
        secret_file.chmod(0o600)
    doc = {
        "settings": settings,
        "aws": aws,
        "service_accounts": [
            {"id": "sa-finance", "role_arn": f"arn:aws:iam::{ACCOUNT}:role/Finance",
             "external_id": "fin-ext", "duration_seconds": 43200},
            {"id": "sa-etl", "role_arn": f"arn:aws:iam::{ACCOUNT}:role/Etl", "duration_seconds": 3600},
            {"id": "sa-legacy", "access_key_id": {"env": "LEGACY_KEY_ID"},
             "secret_access_key": {"file": str(secret_file)}},
        ],
        "workspaces": [{"id": "ws-finance", "service_account": "sa-finance"}, {"id": "ws-open"}],
        "runtime_templates": [{"id": "rt-default"}, {"id": "rt-etl", "service_account": "sa-etl"},
                              {"id": "rt-legacy", "service_account": "sa-legacy"}],
    }
    doc.update(overrides)
    return platform_file(tmp_path, name=name, **doc)


def launcher_env(**extra):
    """What a kernel launcher's environment holds: base keys and the platform context."""
    env = {"AWS_ACCESS_KEY_ID": LAUNCHER_KEY_ID, "AWS_SECRET_ACCESS_KEY": LAUNCHER_SECRET,
           "LEGACY_KEY_ID": LEGACY_KEY_ID, "AWS_REGION": "us-east-1"}
    env.update(extra)
    return env


def read_records(path):
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


# -- launching -------------------------------------------------------------------------

# The program a launch starts: writes its whole environment (JSON) to argv[1], then
# sleeps argv[2] seconds so that a sampler can look at the live process.
ENV_DUMP_CODE = (
    "import json, os, sys, time\n"
    "out = sys.argv[1]\n"
    "with open(out + '.tmp', 'w') as f:\n"
    "    json.dump(dict(os.environ), f)\n"
    "os.rename(out + '.tmp', out)\n"
    "time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 0)\n"
)


def env_dump_argv(out, linger=0.0):
    return [sys.executable, "-c", ENV_DUMP_CODE, str(out), str(linger)]


STANDIN_SPARK_SUBMIT = """#!{python}
# A stand-in spark-submit: records its argv, environment and the properties file it was
# given (read through the path it got, /dev/fd/N included), then lingers a moment.
import json, os, sys, time
argv = sys.argv[1:]
props = None
for i, a in enumerate(argv):
    if a == "--properties-file" and i + 1 < len(argv):
        path = argv[i + 1]
        try:
            st = os.stat(path)
            with open(path, encoding="utf-8") as f:
                props = {{"path": path, "text": f.read(), "mode": st.st_mode & 0o777,
                          "dir_mode": os.stat(os.path.dirname(path)).st_mode & 0o777}}
        except OSError as e:
            props = {{"path": path, "error": str(e)}}
out = os.environ["STANDIN_OUT"]
with open(out + ".tmp", "w") as f:
    json.dump({{"argv": argv, "env": dict(os.environ), "props": props}}, f)
os.rename(out + ".tmp", out)
time.sleep(float(os.environ.get("STANDIN_LINGER", "0")))
sys.exit(int(os.environ.get("STANDIN_EXIT", "0")))
"""


def parse_properties(text):
    """Java properties (as Spark reads them): `key=value` or `key: value` lines, `#` and
    `!` comments, backslash escapes and line continuations."""
    out = {}
    logical, pending = [], ""
    for raw in text.splitlines():
        line = pending + raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending = line[:-1]
            continue
        pending = ""
        logical.append(line)
    escapes = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
    for line in logical:
        key, value, i, in_key = [], [], 0, True
        while i < len(line):
            c = line[i]
            if c == "\\" and i + 1 < len(line):
                n = line[i + 1]
                if n == "u" and i + 5 < len(line):
                    ch, i = chr(int(line[i + 2:i + 6], 16)), i + 6
                else:
                    ch, i = escapes.get(n, n), i + 2
                (key if in_key else value).append(ch)
                continue
            if in_key and c in "=: \t":
                in_key = False
                i += 1
                while i < len(line) and line[i] in " \t":
                    i += 1
                if c in " \t" and i < len(line) and line[i] in "=:":
                    i += 1
                    while i < len(line) and line[i] in " \t":
                        i += 1
                continue
            (key if in_key else value).append(c)
            i += 1
        out["".join(key)] = "".join(value)
    return out


def standin_spark_home(tmp_path):
    """A SPARK_HOME whose bin/spark-submit is the stand-in."""
    home = tmp_path / "spark-home"
    (home / "bin").mkdir(parents=True, exist_ok=True)
    (home / "conf").mkdir(exist_ok=True)
    script = home / "bin" / "spark-submit"
    script.write_text(STANDIN_SPARK_SUBMIT.format(python=sys.executable))
    script.chmod(0o755)
    return home


@dataclass
class Launch:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float
    child: dict | None  # what the child saw (env dump), None if it never ran
    records: list = field(default_factory=list)
    cmdlines: list = field(default_factory=list)

    @property
    def record(self):
        assert len(self.records) == 1, f"expected one decision record, got {self.records}"
        return self.records[0]


def run_timed(argv, env, timeout=30, sampler=None, cwd=None):
    """Runs argv with clean_env(env); returns (exit code, stdout, stderr, seconds).
    A process still running after `timeout` seconds fails the test as a hang."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [str(a) for a in argv], env=clean_env(env), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
    )
    if sampler:
        sampler.watch(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{argv[:3]} still running after {timeout} s (a hang): {err[-2000:]}") from None
    return proc.returncode, out, err, time.monotonic() - t0


def launch_kernel(provisioner, config, env, out, log, *, linger=0.0, sampler=None, args=()):
    """`provisioner kernel --config CONFIG ARGS -- <env dump to OUT>`."""
    argv = [provisioner.path, "kernel", "--config", config, *args, "--", *env_dump_argv(out, linger)]
    rc, so, se, elapsed = run_timed(argv, env, sampler=sampler)
    child = json.loads(Path(out).read_text()) if Path(out).exists() else None
    return Launch(rc, so, se, elapsed, child, read_records(log))


def launch_wrap(wrap, config, env, out, log, spark_home, *, spark_args=("--master", "local[1]", "app.py"),
                linger=0.0, sampler=None, wrap_args=()):
    """`spark-submit-wrap --wrap-config CONFIG SPARK_ARGS` with the stand-in spark-submit."""
    env = {**env, "SPARK_HOME": spark_home, "STANDIN_OUT": out, "STANDIN_LINGER": linger}
    argv = [wrap.path, "--wrap-config", config, *wrap_args, *spark_args]
    rc, so, se, elapsed = run_timed(argv, env, sampler=sampler)
    child = json.loads(Path(out).read_text()) if Path(out).exists() else None
    return Launch(rc, so, se, elapsed, child, read_records(log))


# -- watching command lines ------------------------------------------------------------


class CmdlineSampler:
    """Reads /proc/*/cmdline of every process, every few milliseconds, in a thread,
    while launches run. `seen` collects each distinct command line (as text)."""

    def __init__(self, interval=0.005):
        self.interval = interval
        self.seen = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._watched = []

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def watch(self, pid):
        self._watched.append(pid)

    def _run(self):
        while not self._stop.is_set():
            self._sweep()
            time.sleep(self.interval)

    def _sweep(self):
        self.samples += 1
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            if raw:
                self.seen.add(raw.replace(b"\0", b" ").decode("utf-8", "replace"))

    def leaks(self, secrets):
        return [(s[:6] + "...", c[:200]) for s in secrets if s for c in self.seen if s in c]
