"""Refresh with real parts: a real ipykernel launched through the broker as a real Unix
user, boto3 and s3fs inside it (both at once, as a notebook does) reading, listing and
writing its plane on radosgw for longer than several lifetimes of their credentials, a
broker `kill -9` and restart in the middle, a copy of the session's token in another
user's hands, and a user removed from the platform file.

radosgw's STS will not issue credentials shorter than 900 seconds, so the broker's STS is
tests/stand_ins/fake_sts.py in relay mode: every AssumeRole goes to radosgw byte for byte
(signature included) and radosgw's credentials come back, with the Expiration rewritten
to 40 seconds from now. The kernel's SDK and the broker's scheduler see credentials that
expire every 40 s and must refresh through the endpoint; radosgw enforces the session
policy of every one of them. s3fs goes through aiobotocore, whose credential provider is
its own (async) copy of botocore's: both must refresh from the endpoint.
"""

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.net import free_port
from multiuser_support import BrokerWorld, UserWorld, cell_result

FAKE_STS = Path(__file__).resolve().parents[1] / "stand_ins" / "fake_sts.py"
LIFETIME = 40

FETCH_AS = r"""
import json, os, sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], headers={"Authorization": os.environ["SYN_TEST_TOKEN"]})
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print(json.dumps({"status": r.status}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": json.loads(e.read().decode())}))
"""


@pytest.fixture(scope="module")
def world(unix_users, provisioner):
    return UserWorld(unix_users, provisioner.path)


@pytest.fixture(scope="module")
def stack(unix_users, rgw, world, tmp_path_factory):
    a, b = unix_users.add("rita"), unix_users.add("rolf")
    relay_port, endpoint_port = free_port(), free_port()
    relay = subprocess.Popen(
        [sys.executable, str(FAKE_STS), "--port", str(relay_port), "--relay",
         rgw.endpoint.removeprefix("http://"), "--lifetime", str(LIFETIME)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", relay_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the relay did not start"
                time.sleep(0.05)
        bw = BrokerWorld(rgw, world, tmp_path_factory.mktemp("broker-refresh"), {"a": a, "b": b},
                         broker_args=["--endpoint", f"127.0.0.1:{endpoint_port}"],
                         aws={"sts_endpoint": f"http://127.0.0.1:{relay_port}"})
        world.kernelspec("refreshing", ["--broker", bw.broker.socket])
        try:
            yield bw, a, b, relay_port, endpoint_port
        finally:
            bw.stop()
    finally:
        relay.terminate()
        relay.wait(timeout=10)


def _relayed(relay_port):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{relay_port}/_requests", timeout=10) as r:
        return [x for x in json.load(r) if x.get("action") == "relayed"]


def _token_files(user):
    d = Path(f"/tmp/provisioner-{user.uid}")
    return sorted(d.glob("*.token"), key=lambda p: p.stat().st_mtime) if d.exists() else []


def _run(bw, user, seconds, during=None, at=None, s3fs=False):
    """Runs the refreshing reader in `user`'s kernel for `seconds` (with an s3fs worker
    beside it when `s3fs`); `during()` is called `at` seconds in (from another thread).
    Returns (result, what during returned)."""
    world = bw.world
    params = {"bucket": bw.bucket, "own_prefix": "plane-a/" if user is bw.owners["a"] else "plane-b/",
              "other_prefix": "plane-b/" if user is bw.owners["a"] else "plane-a/",
              "seconds": seconds, "every": 0.5, "s3fs": s3fs}
    box = {}
    if during is not None:
        def later():
            time.sleep(at)
            box["during"] = during()
        t = threading.Thread(target=later)
        t.start()
    started = time.time()
    answer = world.run_kernel(user, "refreshing", [world.probe_cell("refreshing_reader", params)],
                              env=bw.kernel_env(), timeout=seconds + 120)
    if during is not None:
        t.join()
    assert "start_error" not in answer and "driver_error" not in answer, (answer, bw.broker.log()[-3000:])
    seen = cell_result(answer["cells"][0])
    seen["started"] = started
    return seen, box.get("during")


def test_a_kernel_keeps_reading_and_writing_its_plane_across_expiries_and_a_broker_kill(stack):
    bw, a, b, relay_port, endpoint_port = stack

    def steal_and_kill():
        # Another local user holding a copy of the token gets nothing...
        token_file = _token_files(a)[-1]
        token = token_file.read_text()
        uri = f"http://127.0.0.1:{endpoint_port}/v1/credentials/{token_file.stem}"
        r = bw.world.users.run_as(b, [str(bw.world.python), "-c", FETCH_AS, uri],
                                  env={"SYN_TEST_TOKEN": token})
        stolen = json.loads(r.stdout.strip().splitlines()[-1])
        # ...then the broker dies with SIGKILL in the middle of the kernel's work.
        killed = bw.broker.kill9_and_restart()
        return {"stolen": stolen, "killed": killed}

    seen, during = _run(bw, a, seconds=100, during=steal_and_kill, at=30, s3fs=True)
    report = json.dumps({k: v for k, v in seen.items() if k not in ("failures", "s3fs")}, indent=1)

    # No key in the kernel's environment: the endpoint and the token file only.
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in seen["aws_vars"], report
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in seen["aws_vars"], report
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_CONTAINER_AUTHORIZATION_TOKEN"):
        assert name not in seen["aws_vars"], (name, report)
    assert seen["provider"] == "container-role", report
    assert (seen["token_mode"], seen["token_uid"], seen["token_newline"]) == (0o600, a.uid, False), report

    # The same boto3 client worked for 100 s, through at least four credentials (each
    # lived 40 s), and read, listed and wrote its plane the whole time except in the
    # seconds after the broker's SIGKILL.
    assert seen["rounds"] > 100, report
    assert seen["distinct_keys"] >= 4, report
    killed = during["killed"]
    late = [f for f in seen["failures"] if not killed - 1 < f["t"] < killed + 10]
    assert late == [], (late, bw.broker.log()[-4000:])
    # Still confined to its own plane.
    assert seen["other"] == "AccessDenied", report
    # The copied token was refused to the other user.
    assert during["stolen"]["status"] == 403, during
    assert during["stolen"]["body"]["code"] == "WRONG_USER", during
    # s3fs in the same kernel, at the same time, with no keys either: it listed, read,
    # wrote and read back its plane through at least four credentials, failing only in
    # the seconds after the SIGKILL, and its own plane was all it could reach.
    fs = seen["s3fs"]
    fs_report = json.dumps({k: v for k, v in fs.items() if k != "failures"}, indent=1)
    assert "error" not in fs, fs
    assert fs["provider"] == "container-role", fs_report
    assert fs["rounds"] > 50, fs_report
    assert fs["distinct_keys"] >= 4, fs_report
    fs_late = [f for f in fs["failures"] if not killed - 1 < f["t"] < killed + 10]
    assert fs_late == [], (fs_late, bw.broker.log()[-4000:])
    assert fs["listed"] >= fs["rounds"] - 10 and fs["read_back"] >= fs["rounds"] - 10, fs_report
    # The other plane: S3's AccessDenied, which s3fs raises as PermissionError (its read
    # starts with a HEAD, whose 403 carries no error code).
    assert fs["other"]["list"] == "PermissionError:AccessDenied", fs_report
    assert fs["other"]["write"] == "PermissionError:AccessDenied", fs_report
    assert fs["other"]["read"] in ("PermissionError:AccessDenied", "PermissionError:403"), fs_report
    # The restarted broker took the session back and kept refreshing it.
    assert "1 endpoint sessions restored" in bw.broker.log(), bw.broker.log()[-3000:]
    # The broker's log holds no token and no secret.
    assert bw.base.secret_access_key not in bw.broker.log()


def test_a_user_removed_from_the_platform_file_gets_nothing_minted_after_the_reload(stack):
    bw, a, b, relay_port, _ = stack
    original = bw.config.read_text()

    def remove_a():
        doc = json.loads(original)
        doc["users"] = [u for u in doc["users"] if u["id"] != a.name]
        doc["workspaces"] = [w for w in doc["workspaces"] if a.name not in w.get("users", [])]
        bw.config.write_text(json.dumps(doc))
        bw.broker.proc.send_signal(1)  # SIGHUP
        deadline = time.monotonic() + 10
        while "re-checked" not in bw.broker.log():
            assert time.monotonic() < deadline, bw.broker.log()[-2000:]
            time.sleep(0.1)
        return time.time()

    try:
        seen, reloaded = _run(bw, a, seconds=70, during=remove_a, at=12)
    finally:
        bw.config.write_text(original)
        bw.broker.proc.send_signal(1)
    # Before the reload the kernel worked; once the credentials it held expired (at most
    # one lifetime later) every operation failed; nothing was minted for it after.
    before = [f for f in seen["failures"] if f["t"] < reloaded]
    assert before == [], before
    after = [f for f in seen["failures"] if f["t"] > reloaded + LIFETIME + 2]
    assert seen["end"] > reloaded + LIFETIME + 2
    assert after, json.dumps(seen)[:3000]
    minted_after = [r for r in _relayed(relay_port) if r["time"] > reloaded + 0.5]
    assert minted_after == [], minted_after
    assert "refused (UNKNOWN_USER)" in bw.broker.log(), bw.broker.log()[-3000:]
