"""A hostile notebook user against the broker, with real users, a real kernel and
radosgw enforcing the session policies.

The broker (`provisioner serve`) runs as root and is the only process holding the base
credentials. User A starts a kernel the way JupyterHub's local spawner does: the kernel
manager runs as A and launches the kernelspec `provisioner kernel --broker SOCKET -- ...`.
Code in A's kernel then tries everything a user can try to act as user B: B's data with
its own credentials, the base secret in every /proc/*/environ it can read, the launcher
with `--user B`, with SYN_USER, KERNEL_USERNAME and JUPYTERHUB_USER set to B, a workspace
only B may use, explain as B, embedded mode without the broker, and the broker's wire
protocol written by hand claiming B. Every attempt must fail, and A's own plane must work.

Each refusal is checked together with a control that succeeds the same way for A (the
same launcher call, the same hand-written request for oneself, a canary the /proc scan
must find), so a refusal that happens for an unrelated reason cannot pass as security.
"""

import json
import os
import stat

import pytest

from multiuser_support import BrokerWorld, UserWorld, cell_result


@pytest.fixture(scope="module")
def world(unix_users, provisioner):
    return UserWorld(unix_users, provisioner.path)


@pytest.fixture(scope="module")
def stack(unix_users, rgw, world, tmp_path_factory):
    a, b = unix_users.add("ana"), unix_users.add("ben")
    bw = BrokerWorld(rgw, world, tmp_path_factory.mktemp("broker-hostile"), {"a": a, "b": b})
    world.kernelspec("scoped", ["--broker", bw.broker.socket])
    try:
        yield bw, a, b
    finally:
        bw.stop()


def _is_refusal(attempt):
    return attempt["rc"] not in (0, "TIMEOUT") and not attempt["child_ran"]


def _own_reach_only(reach):
    return (reach["read_own"], reach["list_own"], reach["read_other"], reach["list_other"],
            reach["write_other"]) == ("OK", "OK", "AccessDenied", "AccessDenied", "AccessDenied")


def test_broker_socket_is_reachable_by_users_and_its_directory_is_not_writable(stack):
    bw, a, _ = stack
    st = os.stat(bw.broker.socket)
    assert stat.S_ISSOCK(st.st_mode)
    d = os.stat(bw.broker.socket.parent)
    assert d.st_uid == 0 and d.st_mode & 0o022 == 0, oct(d.st_mode)
    # Any local user may connect (and nothing else: a user cannot replace the socket).
    r = bw.world.users.run_as(a, ["sh", "-c", f"test -w {bw.broker.socket} && ! test -w {bw.broker.socket.parent}"])
    assert r.returncode == 0, r
    # The base secret is in the broker's environment and nowhere a user is given it.
    assert bw.base.secret_access_key.encode() in bw.broker.environ_of_pid()


def test_hostile_kernel_cannot_act_as_another_user(stack):
    bw, a, b = stack
    world = bw.world
    canary = f"canary-{os.getpid()}-{a.name}"
    params = {
        "bucket": bw.bucket, "own_prefix": "plane-a/", "other_prefix": "plane-b/",
        "socket": str(bw.broker.socket), "provisioner": str(world.provisioner),
        "python": str(world.python), "me": a.name, "victim": b.name,
        "victim_workspace": "ws-b",
        "secrets": bw.secrets(),
        "canary": canary, "readable_config": str(bw.readable_config),
    }
    answer = world.run_kernel(a, "scoped", [world.probe_cell("hostile", params)],
                              env=bw.kernel_env({"HARNESS_CANARY": canary}), timeout=240)
    assert "start_error" not in answer and "driver_error" not in answer, (answer, bw.broker.log()[-3000:])
    seen = cell_result(answer["cells"][0])
    report = json.dumps(seen, indent=1)

    # The kernel is A's and holds scoped credentials from the broker.
    assert seen["identity"]["uid"] == a.uid, report
    assert seen["identity"]["has_secret"] and seen["identity"]["key_id"] != bw.base.access_key_id, report
    # A's own plane works; B's does not, with the kernel's own credentials.
    assert _own_reach_only(seen["planes"]), report

    # The base secret is nowhere A can read: not in its own environment, not in any
    # /proc/*/environ or cmdline it may open -- while the scan demonstrably finds a value
    # that is in A's own kernel manager's environment.
    proc = seen["proc"]
    assert proc["canary_seen"] and proc["environ_read"] > 0, report
    assert proc["hits"] == [] and not proc["own_env_hit"], report

    launches = seen["launch"]
    # Control: the same launcher call, for oneself, is granted with A's scope.
    own = launches["own_launch"]
    assert own["rc"] == 0 and own["child_ran"] and own["child_has_secret"], report
    assert _own_reach_only(own["reach"]), report
    # Claiming B on the command line, with the socket from the flag or the environment,
    # or for a scheduled run: refused, and the program never runs.
    for name in ("flag_user", "env_socket_flag_user", "flow_job_as_victim"):
        assert _is_refusal(launches[name]), (name, report)
    # The variables Jupyter and JupyterHub set: either refused, or the launch is A's
    # (the broker takes the user from the socket peer, never from the environment).
    for name in ("syn_user", "kernel_username", "jupyterhub_user", "all_three"):
        attempt = launches[name]
        if attempt["child_ran"]:
            assert attempt["rc"] == 0 and attempt["child_has_secret"], (name, report)
            assert _own_reach_only(attempt["reach"]), (name, report)
        else:
            assert _is_refusal(attempt), (name, report)
    # A workspace only B may use: refused, with the reason naming the workspace.
    for name in ("victim_workspace", "victim_workspace_env"):
        attempt = launches[name]
        assert _is_refusal(attempt), (name, report)
        assert "ws-b" in " ".join(attempt["stderr"]), (name, report)
    # Embedded mode without the broker: A has no base credentials, so nothing that
    # reaches B's plane can come out of it.
    emb = launches["embedded_as_victim"]
    assert not (emb["child_has_secret"] and emb["reach"]["read_other"] == "OK"), report
    assert not (emb["child_has_secret"] and emb["reach"]["list_other"] == "OK"), report

    # Explain as B, or for B's workspace: refused, and no policy printed.
    for name, attempt in seen["explain"].items():
        assert attempt["rc"] != 0 and not attempt["printed_policy"], (name, report)
        assert attempt["record_user"] in (None, a.name), (name, report)

    # The protocol by hand. Control: a request for oneself gets A's credentials.
    raw_own = seen["raw_own"]
    assert raw_own["ok"] is True and raw_own["credentials"], report
    assert _own_reach_only(raw_own["reach"]), report
    for name, answer_ in seen["raw"].items():
        assert answer_.get("ok") is False and not answer_.get("credentials"), (name, report)
        assert answer_.get("error_code") and answer_.get("exit_code") not in (None, 0), (name, report)
    assert seen["raw"]["launch_victim_workspace"]["error_code"] != "MALFORMED_REQUEST", report

    # The broker is still serving, and its records name the authenticated peer.
    mine = bw.broker.launches(a.name, a.uid)
    assert mine and all(r["caller"]["unix_user"] == a.name for r in mine), bw.broker.log()[-3000:]
    # Nothing was ever granted to A's uid for anyone but A, and the refusals of the
    # claims to be B were logged with both names: the peer's login and the claim.
    decisions = [d for d in bw.broker.decisions() if d.get("uid") == str(a.uid)]
    granted = [d for d in decisions if d.get("outcome") == "granted"]
    assert granted and all(d["user"] == a.name for d in granted), bw.broker.log()[-3000:]
    claims = [d for d in decisions if d.get("claimed") == b.name]
    assert claims and all(d["outcome"] == "refused" and d["code"] == "NOT_PERMITTED"
                          and d["login"] == a.name for d in claims), bw.broker.log()[-3000:]
    assert bw.base.secret_access_key not in bw.broker.log()


def test_user_b_is_served_and_sees_only_its_own_plane(stack):
    # The same kernelspec for B: the refusals above are about who asks, not a broker
    # that refuses everyone.
    bw, _, b = stack
    world = bw.world
    cell = world.probe_cell("planes_of", {"bucket": bw.bucket, "own_prefix": "plane-b/",
                                          "other_prefix": "plane-a/"})
    answer = world.run_kernel(b, "scoped", [cell], env=bw.kernel_env())
    assert "start_error" not in answer and "driver_error" not in answer, answer
    seen = cell_result(answer["cells"][0])
    assert seen["identity"]["uid"] == b.uid
    assert _own_reach_only(seen["planes"]), seen


def test_kernel_in_another_users_workspace_is_refused_and_says_why(stack):
    # The notebook a user opens in a workspace reserved for someone else: the kernel
    # starts (so Jupyter can show something), runs nothing, and every cell answers with
    # the refusal naming the workspace.
    bw, a, _ = stack
    world = bw.world
    answer = world.run_kernel(a, "scoped", ["print('never runs')"],
                              env=bw.kernel_env({"SYN_WORKSPACE_ID": "ws-b"}))
    assert "start_error" not in answer and "driver_error" not in answer, answer
    [cell] = answer["cells"]
    assert "never runs" not in cell["stdout"], cell
    text = cell["error"] + "\n".join(cell["traceback"]) + cell["stderr"] + cell["stdout"]
    assert "ws-b" in text, text
