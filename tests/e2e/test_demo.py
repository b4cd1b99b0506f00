"""The README's demo (examples/demo/run_demo.py, what scripts/demo runs after building and
setting up) still shows what the README says it shows, and leaves nothing behind.

Runs the demo as a user would read it and checks its output: in embedded mode bob reads
finance and not marketing, alice the reverse; with the broker (as root) each real Unix
user's kernel gets its own platform user, reads its own plane only, is refused when it
claims the other user (launcher and protocol by hand) while the same request for itself
is granted, finds no AWS keys in /proc but its own, and the broker's log names each peer.
Not root, the demo must say that part 2 is skipped and how to see it.
"""

import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

from harness.env import REPO_ROOT, clean_env
from harness.users import USERS_VENV_VAR, users_venv

DEMO = REPO_ROOT / "examples" / "demo" / "run_demo.py"


def _blocks(out):
    """{heading line: the lines under it} for every '-- ' heading."""
    blocks, current = {}, None
    for line in out.splitlines():
        if line.startswith("-- "):
            current = line
            blocks[current] = []
        elif line.startswith("=="):
            current = None
        elif current is not None and line.strip():
            blocks[current].append(line.strip())
    return blocks


def _block(blocks, start):
    [(_, lines)] = [(h, b) for h, b in blocks.items() if h.startswith(start)]
    return lines


def _reads(lines):
    return {m.group(1): m.group(2) for m in
            (re.match(r"read s3://acme-data/(\w+)/\S+\s+(OK|AccessDenied)", ln) for ln in lines) if m}


def test_the_demo_shows_scoped_kernels_and_the_broker_and_leaves_nothing(provisioner):
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    as_root = os.geteuid() == 0
    if as_root:
        env[USERS_VENV_VAR] = str(users_venv())
    r = subprocess.run([sys.executable, str(DEMO), str(provisioner.path)], env=clean_env(env),
                       capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{r.stdout[-6000:]}\n{r.stderr[-4000:]}"
    out = r.stdout
    blocks = _blocks(out)

    # Part 1, embedded mode: the service account for bob, the session policy for alice.
    bob = _block(blocks, "-- scheduled run (papermill) of sample.ipynb as bob")
    alice = _block(blocks, "-- scheduled run (papermill) of sample.ipynb as alice")
    assert any("tier=workspace_sa" in ln and "user=bob" in ln for ln in bob), bob
    assert _reads(bob) == {"finance": "OK", "marketing": "AccessDenied"}, bob
    assert any("tier=session_policy" in ln and "user=alice" in ln for ln in alice), alice
    assert _reads(alice) == {"marketing": "OK", "finance": "AccessDenied"}, alice

    last = out.strip().splitlines()[-1]
    if not as_root:
        assert "part 2 was skipped" in last and "run scripts/demo as root" in last, out
        return

    # Part 2, the broker: each kernel runs as its Unix user and got its own platform user.
    names = re.search(r"Unix users (pv\w+-alice) \(uid (\d+)\) and (pv\w+-bob) \(uid (\d+)\)", out)
    assert names, out
    unix = {"alice": (names.group(1), names.group(2)), "bob": (names.group(3), names.group(4))}
    expected = {"alice": ("session_policy", {"marketing": "OK", "finance": "AccessDenied"}),
                "bob": ("workspace_sa", {"finance": "OK", "marketing": "AccessDenied"})}
    for me, other in (("alice", "bob"), ("bob", "alice")):
        lines = _block(blocks, f"-- {me}'s notebook, run by {unix[me][0]}")
        tier, reads = expected[me]
        assert f"unix user  {unix[me][0]} (uid {unix[me][1]})" in lines, lines
        assert any(f"tier={tier};" in ln and ln.endswith(f"user={me}") for ln in lines), lines
        assert _reads(lines) == reads, lines
        # Claiming the other user: the launcher and the protocol by hand are refused; the
        # same hand-written request for oneself is granted (the refusal is about the claim).
        assert any(ln.startswith(f"launcher --user {other}") and "exit 3" in ln and "NOT_PERMITTED" in ln
                   for ln in lines), lines
        assert any(ln.startswith(f"raw request as {other}") and ln.endswith("refused: NOT_PERMITTED")
                   for ln in lines), lines
        assert any(ln.startswith(f"raw request as {me}") and f"granted: tier session_policy for {me}" in ln
                   for ln in lines), lines
        assert any(ln.startswith("AWS keys in reach") and " none: " in ln for ln in lines), lines

    log = _block(blocks, "-- the broker's decision log")
    for me, other in (("alice", "bob"), ("bob", "alice")):
        login, uid = unix[me]
        mine = [ln for ln in log if f"{login} (uid {uid}," in ln]
        assert any(ln.startswith("granted") and f"as {me} " in ln for ln in mine), log
        assert any(ln.startswith("refused") and f"claiming {other} " in ln and "NOT_PERMITTED" in ln
                   for ln in mine), log
        # Nothing was granted to this uid for the other user.
        assert not any(ln.startswith("granted") and other in ln.split(")", 1)[1] for ln in mine), log

    # Nothing left: the users are gone (userdel refuses a user that still runs a process;
    # their uids may already belong to someone else's test users), and so are the demo's
    # directories.
    assert last.startswith("== done in") and "the users are gone" in last, out
    for login, _ in unix.values():
        try:
            pwd.getpwnam(login)
            raise AssertionError(f"user {login} is still there")
        except KeyError:
            pass
    dirs = re.findall(r"under (/tmp/provisioner-\S+)", out)
    assert len(dirs) == 2, out
    for d in dirs:
        assert not Path(d).exists(), d
