"""The deployment a platform team runs: a real JupyterHub (LocalProcessSpawner, two real
users with real homes) whose kernelspec launches every kernel through the broker.

The hub and the single-user servers hold no AWS credential; the broker (root) holds the
base keys. A service token starts each user's server and a kernel through it, and runs a
cell over the kernel's websocket as JupyterLab does. A bare kernel of the same server is
the control: it runs as the user and has no credentials at all. Each scoped kernel must be
its user's (uid),
hold credentials that reach that user's plane on radosgw and not the other's, and see no
trace of the base secret; the broker's records must name each user with its uid.
"""

import json
import os
import time

import pytest

from harness.jupyterhub import Hub
from harness.users import http_proxy_bin
from multiuser_support import BrokerWorld, UserWorld, cell_result


@pytest.fixture(scope="module")
def world(unix_users, provisioner):
    return UserWorld(unix_users, provisioner.path)


def test_jupyterhub_kernels_through_the_broker_are_scoped_to_their_user(
        unix_users, rgw, world, tmp_path):
    a, b = unix_users.add("hub-a"), unix_users.add("hub-b")
    bw = BrokerWorld(rgw, world, tmp_path / "broker", {"a": a, "b": b})
    world.kernelspec("bare")
    world.kernelspec("scoped-hub", ["--broker", bw.broker.socket])
    hub = None
    seen, bare = {}, {}
    try:
        hub = Hub(tmp_path / "hub", unix_users.venv, http_proxy_bin(), [a.name, b.name],
                  {"JUPYTER_PATH": str(world.jupyter), **bw.kernel_env(),
                   "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                   "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
        secrets_ = bw.secrets()
        for role, u, other in (("a", a, "b"), ("b", b, "a")):
            hub.start_server(u.name)
            probe = {"bucket": bw.bucket, "own_prefix": f"plane-{role}/",
                     "other_prefix": f"plane-{other}/", "secrets": secrets_, "canary": u.name}
            # The control: the same server's bare kernel (no launcher) has no credentials.
            out = hub.run_cell(u.name, hub.start_kernel(u.name, "bare"),
                               world.probe_cell("planes_of", probe))
            assert not out["error"], out
            bare[role] = cell_result(out)
            out = hub.run_cell(u.name, hub.start_kernel(u.name, "scoped-hub"),
                               world.probe_cell("planes_of", probe))
            assert not out["error"], (out, bw.broker.log()[-3000:])
            seen[role] = cell_result(out)
    finally:
        if hub is not None:
            assert hub.stop() is not None
        bw.stop()
    report = json.dumps({"scoped": seen, "bare": bare}, indent=1)
    for role, u in (("a", a), ("b", b)):
        # The local spawner ran the server and both kernels as the user, in its home.
        for s in (bare[role], seen[role]):
            assert s["identity"]["uid"] == u.uid and s["identity"]["user"] == u.name, report
        assert not bare[role]["identity"]["has_secret"], report
        assert all(v.startswith("ERROR") for v in bare[role]["planes"].values()), report
        s = seen[role]
        assert s["identity"]["has_secret"], report
        assert s["planes"] == {"read_own": "OK", "list_own": "OK", "read_other": "AccessDenied",
                               "list_other": "AccessDenied", "write_other": "AccessDenied"}, report
        # The user's name is in its server's environment: the scan finds it...
        assert s["proc"]["canary_seen"], report
        # ...and finds no base secret anywhere the user's kernel can look.
        assert s["proc"]["hits"] == [] and not s["proc"]["own_env_hit"], report
        # The broker's record: the user, authenticated as its own Unix user.
        records = bw.broker.launches(u.name, u.uid)
        assert records and not any(r["caller"]["proxied"] for r in records), bw.broker.log()[-3000:]
    assert seen["a"]["identity"]["key_id"] != seen["b"]["identity"]["key_id"], report
    # SIGTERM stopped the servers the hub spawned, and their kernels followed (ipykernel
    # notices its parent is gone within a few seconds): nothing of A or B is left.
    deadline = time.monotonic() + 30
    while True:
        left = [p for p in os.listdir("/proc") if p.isdigit() and _uid_of(p) in (a.uid, b.uid)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not left, f"processes of the test users outlived the hub by 30 s: {left}"


def _uid_of(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
