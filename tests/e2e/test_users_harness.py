"""The multi-user harness itself: real Unix users with private homes, a virtualenv they
can run, and kernels started by a kernel manager running as the user. (The JupyterHub
harness is checked in test_broker_jupyterhub.py, with a bare kernel beside the scoped one.)

These are the assumptions the broker's attack tests rest on; each is checked by what a
user process actually sees (its uid, what it can open), not by what the harness meant to
set up.
"""

import json
import os
import stat

import pytest

from multiuser_support import UserWorld, cell_result


@pytest.fixture(scope="module")
def world(unix_users, provisioner):
    return UserWorld(unix_users, provisioner.path)


@pytest.fixture(scope="module")
def pair(unix_users):
    return unix_users.add("hx-a"), unix_users.add("hx-b")


def test_users_are_distinct_with_private_homes(unix_users, pair):
    a, b = pair
    assert a.uid != b.uid and a.uid != 0 and b.uid != 0
    for u in pair:
        st = os.stat(u.home)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (u.uid, u.gid, 0o700)
    (b.home / "private.txt").write_text("b only\n")
    os.chown(b.home / "private.txt", b.uid, b.gid)
    r = unix_users.run_as(a, ["cat", b.home / "private.txt"])
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    r = unix_users.run_as(b, ["cat", b.home / "private.txt"])
    assert r.returncode == 0 and r.stdout == "b only\n", r


def test_users_run_the_virtualenv_as_themselves(unix_users, pair):
    a, _ = pair
    code = ("import json, os, jupyter_client, ipykernel, boto3, jupyterhub; "
            "print(json.dumps([os.getuid(), os.getgid(), os.getgroups(), os.environ['HOME']]))")
    r = unix_users.run_as(a, [unix_users.venv / "bin" / "python", "-c", code])
    assert r.returncode == 0, r.stderr
    uid, gid, groups, home = json.loads(r.stdout)
    assert (uid, gid, home) == (a.uid, a.gid, str(a.home))
    assert 0 not in groups, "a user process must not keep root's groups"


def test_kernel_manager_as_user_starts_kernels_as_that_user(unix_users, world, pair):
    a, b = pair
    world.kernelspec("bare")
    canary_a, canary_b = f"canary-a-{os.getpid()}", f"canary-b-{os.getpid()}"
    # A process of B whose environment holds canary_b, alive while A's kernel looks.
    sleeper = unix_users.popen_as(b, ["sleep", "120"], env={"HARNESS_CANARY": canary_b})
    try:
        cells = [
            "import os, json\nprint('RESULT ' + json.dumps([os.getuid(), os.environ['HOME']]))",
            world.probe_cell("scan", {"needles": [canary_b], "canary": canary_a}),
        ]
        answer = world.run_kernel(a, "bare", cells, env={"HARNESS_CANARY": canary_a})
    finally:
        sleeper.kill()
        sleeper.wait()
    assert "start_error" not in answer and "driver_error" not in answer, answer
    uid, home = cell_result(answer["cells"][0])
    assert (uid, home) == (a.uid, str(a.home))
    scan = cell_result(answer["cells"][1])
    # The control every /proc scan relies on: a value in the environment of the user's
    # own kernel manager is found by code in the kernel...
    assert scan["canary_seen"] and scan["environ_read"] > 0, scan
    # ...and the same kind of value in another user's process is not.
    assert scan["hits"] == [], scan
