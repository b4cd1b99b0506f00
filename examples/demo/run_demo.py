#!/usr/bin/env python3
"""The product's main job, end to end, on local stand-ins.

Starts a single-node Ceph radosgw on 127.0.0.1 (S3 + STS with enforced session
policies) with one bucket, acme-data: marketing/ and finance/. Then, in two parts:

1. Embedded mode (one trusted launcher): the kernelspec launches `provisioner kernel
   --config PLATFORM`, which holds the base keys and mints. examples/demo/sample.ipynb runs
   through papermill as bob (workspace ws-finance, service account finance-sa) and alice
   (ws-open, a data-plane session policy for marketing/).
2. The broker (needs root): two real Unix users, alice's and bob's, and one `provisioner
   serve` as root holding the base keys in its own environment only. The kernelspec
   launches `provisioner kernel --broker SOCKET`; each user runs the notebook with their
   own Jupyter (nbconvert as that user), so the broker learns who asks from the socket
   peer. From inside each kernel the notebook also tries to be the other user (the
   launcher with --user, the protocol by hand) and looks for the base keys in /proc.
   Then the broker's decision log.

Each run shows the identity the kernel got, one allowed read and one AccessDenied.
Everything started here (radosgw, the broker, kernels, the users) is stopped or removed
at the end, also on failure or Ctrl-C, and the end checks that nothing is left.

Usage: run_demo.py PROVISIONER_BIN   (scripts/demo builds it and picks the Python;
PROVISIONER_USERS_VENV names the users' virtualenv for part 2)
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from harness.broker import Broker  # noqa: E402
from harness.env import clean_env  # noqa: E402
from harness.platform import merged, write_platform  # noqa: E402
from harness.rgw import LAUNCHER, Rgw  # noqa: E402
from harness.users import USERS_VENV_VAR, Users, unreachable_by_others  # noqa: E402

BUCKET = "acme-data"
FINANCE_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": [f"arn:aws:s3:::{BUCKET}/finance/*"]},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
    ],
}
KERNEL = "python3-scoped"
AS_ROOT = "run scripts/demo as root to see it"


def say(text=""):
    print(text, flush=True)


def indented(text):
    return "   " + text.strip().replace("\n", "\n   ")


def platform(rgw, roles, log):
    return {
        "settings": {
            "syntasa_session_policy_enabled": "true",
            "syntasa_session_policy_duration": "3600",
            # radosgw accepts only S3 actions in a session policy.
            "session_policy_bedrock": "false",
            "session_policy_platform_folders": "",
            "decision_log": str(log),
        },
        "aws": {"region": rgw.region, "session_policy_role_arn": roles["planes"], "sts_endpoint": rgw.endpoint},
        "service_accounts": [{"id": "sa-finance", "role_arn": roles["finance"], "duration_seconds": 3600}],
        "workspaces": [{"id": "ws-finance", "service_account": "sa-finance", "users": ["bob"]}, {"id": "ws-open"}],
        "runtime_templates": [{"id": "rt-default"}],
        "data_planes": [
            {"id": "dp-marketing", "s3": [f"s3://{BUCKET}/marketing/"]},
            {"id": "dp-finance", "s3": [f"s3://{BUCKET}/finance/"]},
        ],
        "users": [
            {"id": "alice", "data_planes": ["dp-marketing"]},
            {"id": "bob", "data_planes": ["dp-finance"]},
            {"id": "root", "system_admin": True},
        ],
    }


def stream_outputs(path):
    """The text the notebook's code cells printed, in order."""
    import nbformat

    return "".join(o.get("text", "") for cell in nbformat.read(path, as_version=4).cells
                   if cell.cell_type == "code" for o in cell.outputs if o.get("output_type") == "stream")


def install_kernelspec(provisioner, target, python, *how):
    r = subprocess.run([str(provisioner), "kernelspec", "install", "--dir", str(target), "--name", KERNEL,
                        "--python", str(python), *map(str, how)],
                       env=clean_env(), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    argv = json.loads((Path(target) / "kernels" / KERNEL / "kernel.json").read_text())["argv"]
    say(f"   kernel.json argv: {' '.join(argv)}")


# -- part 1: embedded mode --------------------------------------------------------------

def embedded(provisioner, rgw, roles, work):
    say("== part 1: embedded mode (a single trusted launcher holds the base keys and mints)")
    log = work / "decisions.jsonl"
    config = write_platform(work / "platform.json", platform(rgw, roles, log))
    jupyter_dir = work / "jupyter"
    install_kernelspec(provisioner, jupyter_dir, sys.executable, "--config", config)
    # The launcher's own (cluster) credentials: here the radosgw launcher user. Jupyter's
    # files go to the work directory, so that nothing is left in root's home.
    env = {**rgw.launcher.env(), "AWS_ENDPOINT_URL": rgw.endpoint, "AWS_REGION": rgw.region,
           "AWS_DEFAULT_REGION": rgw.region, "JUPYTER_PATH": jupyter_dir,
           "JUPYTER_RUNTIME_DIR": work / "runtime", "JUPYTER_DATA_DIR": work / "jupyter-data",
           "IPYTHONDIR": work / "ipython", "SYN_FLOW": "notebook-run"}
    for user, workspace, why in (("bob", "ws-finance", "workspace service account finance-sa"),
                                 ("alice", "ws-open", "data-plane session policy (marketing/)")):
        say()
        say(f"-- scheduled run (papermill) of sample.ipynb as {user} in {workspace}: expect {why}")
        out = work / f"sample-{user}.ipynb"
        r = subprocess.run(
            [sys.executable, "-m", "papermill", HERE / "sample.ipynb", out, "-k", KERNEL,
             "--start-timeout", "60", "--no-progress-bar"],
            env=clean_env({**env, "SYN_USER": user, "SYN_WORKSPACE_ID": workspace}),
            capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise SystemExit(f"papermill failed for {user}:\n{r.stderr[-4000:]}")
        say(indented(stream_outputs(out)))
    say()
    say("-- decision records")
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        policy = f"session policy of {rec['policy_chars']} chars" if rec["policy_chars"] else "no session policy"
        say(f"   {rec['user']:<6} tier={rec['tier']} role={rec['role_arn']}, {policy}, in {rec['elapsed_ms']} ms")
    say("   Here the user is whatever SYN_USER says, and the base keys sit in the environment of")
    say("   the process that starts kernels: fine for one trusted user, not for a shared host.")


# -- part 2: the broker -----------------------------------------------------------------

def users_venv_or_reason():
    value = os.environ.get(USERS_VENV_VAR)
    if not value:
        return None, f"{USERS_VENV_VAR} is not set (scripts/demo sets it when run as root)"
    venv = Path(value)
    if not (venv / ".complete").is_file():
        return None, f"{USERS_VENV_VAR}={value} is not a complete virtualenv; run scripts/test --setup-only as root"
    blocked = unreachable_by_others(venv / "bin" / "python")
    if blocked:
        return None, f"other users cannot enter {blocked}; make the users' virtualenv under a world-readable directory"
    return venv, None


def processes_of(uids):
    pids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.stat(f"/proc/{p}").st_uid in uids:
                    pids.append(int(p))
            except OSError:
                pass
    return pids


def decision_lines(broker):
    """The broker's decision lines, shortened: outcome, the peer (login, uid, pid), the
    user it was for or the claim, and the tier and role, or the refusal code. The demo's
    own readiness check (a connection closed without a request) is left out."""
    for d in broker.decisions():
        if d.get("pid") == str(os.getpid()):
            continue
        rec = d.get("record") or {}
        claimed, user = d.get("claimed", "-"), d.get("user", "-")
        who = f"as {user}" if claimed in ("-", user) else f"claiming {claimed}"
        detail = (f"tier={d.get('tier')} role={rec.get('role_arn') or '-'}" if d.get("outcome") == "granted"
                  else f"code={d.get('code')}")
        peer = f"{d.get('login')} (uid {d.get('uid')}, pid {d.get('pid')})"
        yield f"{d.get('outcome', '?'):<8} {peer:<36} {who:<15} {detail}"


def with_broker(provisioner, rgw, roles, broker_keys, work, venv):
    say("== part 2: a shared host: two real Unix users, one broker (provisioner serve as root)")
    users = Users(venv)
    broker = None
    made = []
    try:
        alice, bob = users.add("alice"), users.add("bob")
        made = [alice, bob]
        say(f"   Unix users {alice.name} (uid {alice.uid}) and {bob.name} (uid {bob.uid}), "
            f"homes under {users.shared / 'home'}")
        # The platform maps each Unix login to its platform user; the socket peer decides
        # who a launch is for, never SYN_USER.
        doc = merged(platform(rgw, roles, "stderr"), {"users": [
            {"id": "alice", "unix_user": alice.name, "data_planes": ["dp-marketing"]},
            {"id": "bob", "unix_user": bob.name, "data_planes": ["dp-finance"]},
            {"id": "root", "system_admin": True},
        ]})
        etc = work / "broker-etc"
        etc.mkdir(mode=0o700)
        config = write_platform(etc / "platform.json", doc)
        config.chmod(0o600)
        shared_bin = users.share_file(provisioner, "bin", "provisioner", mode=0o755)
        users.share_file(HERE / "sample.ipynb", "notebooks", "sample.ipynb")
        broker = Broker(shared_bin, config, work, users.shared / "run", broker_keys.env())
        say(f"   broker pid {broker.proc.pid}: {' '.join(broker.argv)}")
        say(f"   base keys (access key {broker_keys.access_key_id}) in its own environment only; socket directory "
            f"{broker.run_dir.stat().st_mode & 0o777:04o} root's, state directory "
            f"{broker.state.stat().st_mode & 0o777:04o}")
        jupyter_dir = users.share_dir("jupyter")
        install_kernelspec(shared_bin, jupyter_dir, venv / "bin" / "python", "--broker", broker.socket)

        for me, name, other, workspace, expect in (
                (alice, "alice", "bob", "ws-open", "data-plane session policy (marketing/)"),
                (bob, "bob", "alice", "ws-finance", "workspace service account finance-sa")):
            say()
            say(f"-- {name}'s notebook, run by {me.name} with their own Jupyter (nbconvert) in {workspace}: "
                f"expect {expect}")
            env = {"JUPYTER_PATH": jupyter_dir, "SYN_WORKSPACE_ID": workspace, "AWS_ENDPOINT_URL": rgw.endpoint,
                   "AWS_REGION": rgw.region, "AWS_DEFAULT_REGION": rgw.region,
                   "DEMO_OTHER_USER": other}
            r = users.run_as(me, [venv / "bin" / "jupyter", "nbconvert", "--to", "notebook", "--execute",
                                  users.shared / "notebooks" / "sample.ipynb", "--output-dir", me.home,
                                  "--output", "sample-out", f"--ExecutePreprocessor.kernel_name={KERNEL}",
                                  "--ExecutePreprocessor.timeout=120", "--ExecutePreprocessor.startup_timeout=60"],
                             env=env, timeout=300)
            if r.returncode != 0:
                raise SystemExit(f"nbconvert failed for {me.name}:\n{r.stderr[-4000:]}\n"
                                 f"broker log:\n{broker.log()[-3000:]}")
            say(indented(stream_outputs(me.home / "sample-out.ipynb")))

        say()
        say("-- the broker's decision log (peer uid and pid from SO_PEERCRED; records hold no secret)")
        for line in decision_lines(broker):
            say(f"   {line}")
        say("   (each user's first grant is its kernel's launch: the launcher then became the kernel, so the")
        say("   kernel keeps that pid; the other pid is the launcher started inside the kernel with --user)")
        if broker_keys.secret_access_key in broker.log():
            raise SystemExit("the broker's log holds its secret key")
    finally:
        say()
        say("== stopping the broker, removing the Unix users and their homes")
        if broker is not None:
            broker.stop()
        uids = {u.uid for u in made}
        left = processes_of(uids)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if left:
            say(f"   stopped {len(left)} leftover process(es) of the demo users: {left}")
        problems = users.cleanup()
        for p in problems:
            say(f"   {p}")
    return [u.name for u in made], users.shared


# -- main -------------------------------------------------------------------------------

def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def leftovers(user_names, dirs):
    import pwd

    out = []
    for name in user_names:
        try:
            pwd.getpwnam(name)
            out.append(f"user {name}")
        except KeyError:
            pass
    out += [f"directory {d}" for d in dirs if d is not None and Path(d).exists()]
    return out


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.split("Usage: ")[1])
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _terminate)
    provisioner = Path(sys.argv[1]).resolve()
    venv, why_not = (None, f"it creates Unix users, which needs root; {AS_ROOT}") \
        if os.geteuid() != 0 else users_venv_or_reason()
    work = Path(tempfile.mkdtemp(prefix="provisioner-demo-"))
    user_names, shared = [], None
    # Ceph's admin sockets are UNIX sockets: keep the cluster's path short.
    say(f"== starting Ceph radosgw (S3 + STS) on 127.0.0.1 under {work}")
    (work / "rgw").mkdir()
    rgw = Rgw(work / "rgw")
    try:
        say(f"   {rgw.endpoint}: bucket {BUCKET} with marketing/campaigns.csv and finance/ledger.csv")
        rgw.create_bucket(BUCKET, {"marketing/campaigns.csv": "campaign,clicks\nspring,120\n",
                                   "finance/ledger.csv": "account,balance\nops,1000000\n"})
        # The broker's base keys: a radosgw user of its own with a secret made up now (the
        # harness's launcher keys are well known).
        tag = secrets.token_hex(4).upper()
        broker_keys = rgw.create_user(f"broker-{tag.lower()}", f"BROKER{tag}", secrets.token_hex(20), caps="roles=*")
        trusted = (LAUNCHER.arn, broker_keys.arn)
        roles = {"planes": rgw.create_role("data-planes", trusted=trusted),
                 "finance": rgw.create_role("finance-sa", trusted=trusted, policy=FINANCE_ONLY)}
        say()
        embedded(provisioner, rgw, roles, work)
        say()
        if venv is None:
            say(f"== part 2 (two Unix users, one broker) skipped: {why_not}")
        else:
            user_names, shared = with_broker(provisioner, rgw, roles, broker_keys, work, venv)
    finally:
        say("== stopping radosgw")
        rgw.stop()
        shutil.rmtree(work, ignore_errors=True)
    left = leftovers(user_names, [work, shared])
    if left:
        raise SystemExit(f"scripts/demo: left behind: {', '.join(left)}; remove them by hand")
    secs = int(time.monotonic() - started)
    say(f"== done in {secs // 60}m{secs % 60:02d}s (after the build); every process it started is stopped"
        + (", the users are gone" if user_names else ""))
    if venv is None:
        say(f"   part 2 was skipped: {why_not}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("scripts/demo: interrupted; everything it started has been stopped")
