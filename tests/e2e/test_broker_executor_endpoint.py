"""The broker's HTTPS executor endpoint with real parts: a real ipykernel launched through
the broker as a real Unix user asks for an application token with its session token
(what a Spark launcher inside the kernel does for executors on other hosts); an
"executor" running as another Unix user fetches the session's credentials over HTTPS,
trusting only a throw-away test CA, and uses them on radosgw, where they reach the
kernel user's plane and nothing else. The attacks: the session token over HTTPS, the
application token on loopback, another user asking for an application token with a
stolen session token, the application token after the kernel exited.
"""

import json
import threading
import time
import uuid

import pytest

from harness.net import free_port
from multiuser_support import BrokerWorld, UserWorld, cell_result
from spark_support import throwaway_ca


@pytest.fixture(scope="module")
def world(unix_users, provisioner):
    return UserWorld(unix_users, provisioner.path)


@pytest.fixture(scope="module")
def stack(unix_users, rgw, world, tmp_path_factory):
    a, b = unix_users.add("ella"), unix_users.add("emil")
    executor_user = unix_users.add("exec")
    cert, key, _truststore, _password = throwaway_ca(tmp_path_factory.mktemp("executor-pki") / "ca")
    key.chmod(0o600)
    ca = unix_users.share_file(cert.parent / "ca.pem", f"ca-{uuid.uuid4().hex[:8]}", "ca.pem")
    endpoint_port, executor_port = free_port(), free_port()
    bw = BrokerWorld(rgw, world, tmp_path_factory.mktemp("broker-executor"), {"a": a, "b": b},
                     broker_args=["--endpoint", f"127.0.0.1:{endpoint_port}",
                                  "--executor-endpoint", f"127.0.0.1:{executor_port}",
                                  "--tls-cert", str(cert), "--tls-key", str(key)])
    world.kernelspec("executors", ["--broker", bw.broker.socket])
    try:
        yield bw, a, b, executor_user, ca, executor_port
    finally:
        bw.stop()


def _fetch(bw, user, url, token, ca):
    """An executor's fetch as `user` (a stand-in for an account on another host)."""
    return bw.world.run_probe(
        user, "executor_fetch",
        {"url": url, "ca": str(ca), "bucket": bw.bucket, "own_prefix": "plane-a/",
         "other_prefix": "plane-b/"},
        env=bw.kernel_env({"SYN_TEST_TOKEN": token}))


def test_executors_elsewhere_fetch_over_https_and_reach_only_the_kernel_users_plane(stack):
    bw, a, b, executor_user, ca, executor_port = stack
    tag = uuid.uuid4().hex[:8]
    handover = a.home / f"handover-{tag}.json"
    done = bw.world.users.shared / f"done-{tag}"
    box = {}

    def executor_side():
        deadline = time.monotonic() + 60
        while not handover.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            if not handover.exists():
                box["error"] = "no handover from the kernel"
                return
            h = json.loads(handover.read_text())
            box["handover"] = h
            # The executor, as another Unix user, with the application token.
            box["fetch"] = _fetch(bw, executor_user, h["url"], h["token"], ca)
            # The kernel's own session token is refused on HTTPS.
            box["session_token_over_https"] = _fetch(bw, executor_user, h["url"],
                                                     h["session_token"], ca)
            # Another local user holding a copy of the session token asks for an
            # application token of their own.
            box["stolen"] = bw.world.run_probe(
                b, "ask_broker",
                {"socket": str(bw.broker.socket),
                 "doc": {"version": 1, "op": "application_token",
                         "session_token": h["session_token"]}})
        finally:
            done.touch()

    t = threading.Thread(target=executor_side)
    t.start()
    answer = bw.world.run_kernel(
        a, "executors",
        [bw.world.probe_cell("executor_handover",
                             {"socket": str(bw.broker.socket), "handover": str(handover),
                              "done": str(done)})],
        env=bw.kernel_env(), timeout=180)
    t.join()
    ended = time.monotonic()
    assert "start_error" not in answer and "driver_error" not in answer, (answer, bw.broker.log()[-3000:])
    kernel = cell_result(answer["cells"][0])
    assert "error" not in box, (box, kernel, bw.broker.log()[-3000:])

    # The kernel got an HTTPS URL of its session and an application token; the token
    # opens nothing on the kernel's own loopback endpoint.
    assert kernel["ok"] is True, kernel
    assert kernel["url"].startswith(f"https://127.0.0.1:{executor_port}/v1/credentials/"), kernel
    assert kernel["loopback_with_application_token"]["status"] == 403, kernel
    assert kernel["loopback_with_application_token"]["body"]["code"] == "BAD_TOKEN", kernel

    # The executor's credentials, fetched over HTTPS with only the test CA trusted, work
    # on radosgw for the kernel user's plane and nowhere else.
    fetch = box["fetch"]
    assert fetch["status"] == 200, fetch
    reach = fetch["reach"]
    assert (reach["read_own"], reach["list_own"]) == ("OK", "OK"), reach
    assert reach["read_other"] == "AccessDenied", reach
    assert reach["list_other"] == "AccessDenied", reach
    assert reach["write_other"] == "AccessDenied", reach

    # The session token over HTTPS and the stolen-token request: refused.
    s = box["session_token_over_https"]
    assert (s["status"], s["body"]["code"]) == (403, "BAD_TOKEN"), s
    stolen = box["stolen"]
    assert (stolen["ok"], stolen["error_code"]) == (False, "WRONG_USER"), stolen
    assert "fix:" in stolen["message"] and "\n" not in stolen["message"], stolen

    # The kernel has exited: its application token is refused within seconds.
    h = box["handover"]
    while True:
        after = _fetch(bw, executor_user, h["url"], h["token"], ca)
        if after["status"] == 404:
            break
        assert time.monotonic() - ended < 8, after
        time.sleep(0.3)
    assert after["body"]["code"] == "NO_SUCH_SESSION", after

    # The broker's log names the session, never a token or a secret.
    log = bw.broker.log()
    for secret in (h["token"], h["session_token"], bw.base.secret_access_key):
        assert secret not in log
    assert "executor endpoint on https://127.0.0.1:" in log, log[-2000:]
