"""A job runner's service user acting for users through the broker's `proxy_users`
grant, with spark-submit-wrap and the real spark-submit (PySpark from the users'
virtualenv), on radosgw.

The runner's Unix user is granted to act for user A (by name) and for the members of a
Unix group B belongs to: each job it submits with
SYN_USER set gets that user's scoped credentials (A's job reads A's plane and not B's,
and the reverse). A second service user that has no grant, and the runner acting for a
user it was not granted, are refused before spark-submit runs. What a grant means is
stated in the README: code running under the runner's uid can act for everyone the
runner may act for.
"""

import json
import subprocess

import pytest

from multiuser_support import BrokerWorld, UserWorld

SPARK_CONF = ["--master", "local[1]", "--conf", "spark.ui.enabled=false",
              "--conf", "spark.sql.shuffle.partitions=1", "--conf", "spark.driver.memory=512m"]


@pytest.fixture(scope="module")
def world(unix_users, provisioner, spark_submit_wrap):
    return UserWorld(unix_users, provisioner.path, spark_submit_wrap.path)


@pytest.fixture(scope="module")
def stack(unix_users, rgw, world, tmp_path_factory):
    # The runner may act for A by name and for B through B's Unix group; C is neither.
    team = unix_users.add_group("team")
    a, b, c = unix_users.add("job-a"), unix_users.add("job-b", groups=[team]), unix_users.add("job-c")
    runner, rogue = unix_users.add("runner"), unix_users.add("rogue")
    bw = BrokerWorld(rgw, world, tmp_path_factory.mktemp("broker-jobs"), {"a": a, "b": b, "c": c},
                     proxy_users=[{"unix_user": runner.name, "users": [a.name], "groups": [team]}])
    try:
        yield bw, {"a": a, "b": b, "c": c}, runner, rogue
    finally:
        bw.stop()


def submit(bw, as_user, for_user, own, other, broker_flag=True):
    """Starts spark-submit-wrap as `as_user` for `for_user`; returns a function that
    waits for it and returns (exit code, stderr, the job's RESULT or None)."""
    world = bw.world
    params = {"bucket": bw.bucket, "own_prefix": f"plane-{own}/", "other_prefix": f"plane-{other}/"}
    argv = [world.wrap]
    env = bw.kernel_env({
        "SYN_USER": for_user.name, "SYN_RUNTIME_TEMPLATE_ID": "rt-default",
        "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": str(world.python),
        "PYSPARK_DRIVER_PYTHON": str(world.python), "SPARK_HOME": None})
    if broker_flag:
        argv += ["--wrap-broker", bw.broker.socket]
    else:
        env["SYN_BROKER_SOCKET"] = str(bw.broker.socket)
    argv += [*SPARK_CONF, world.lib / "user_spark_job.py", json.dumps(params)]
    proc = world.users.popen_as(as_user, argv, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def wait():
        try:
            out, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        result = None
        for line in out.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
        return proc.returncode, err, result

    return wait


def test_runner_jobs_get_each_users_scope(stack):
    bw, u, runner, _ = stack
    # Both jobs at once, as a job runner's workers would submit them.
    waits = {own: submit(bw, runner, u[own], own, other, broker_flag=flag)
             for own, other, flag in (("a", "b", True), ("b", "a", False))}
    seen = {}
    for own, wait in waits.items():
        rc, err, result = wait()
        assert rc == 0 and result, (rc, err[-4000:], bw.broker.log()[-2000:])
        seen[own] = result
    for own in ("a", "b"):
        s = seen[own]
        assert s["identity"]["uid"] == runner.uid, s
        assert s["planes"] == {"read_own": "OK", "list_own": "OK", "read_other": "AccessDenied",
                               "list_other": "AccessDenied", "write_other": "AccessDenied"}, (own, s)
        # S3A and the executors get the same scoped keys as the driver.
        assert s["conf_key_is_driver_key"] and s["executor_key_is_driver_key"], s
    assert seen["a"]["identity"]["key_id"] != seen["b"]["identity"]["key_id"]
    for own in ("a", "b"):
        # The record names the claimed user and the authenticated peer (the runner).
        records = bw.broker.launches(u[own].name, runner.uid)
        assert records, bw.broker.log()[-3000:]
        assert all(r["caller"]["proxied"] and r["caller"]["unix_user"] == runner.name
                   and r["flow"] == "job" for r in records), records


@pytest.mark.parametrize("who", ["rogue_for_a", "runner_for_c", "a_for_b"])
def test_acting_for_a_user_without_a_grant_is_refused(stack, who):
    bw, u, runner, rogue = stack
    as_user, for_user, own, other = {
        "rogue_for_a": (rogue, u["a"], "a", "b"),
        "runner_for_c": (runner, u["c"], "c", "a"),
        "a_for_b": (u["a"], u["b"], "b", "a"),
    }[who]
    rc, err, result = submit(bw, as_user, for_user, own, other)()
    assert result is None, f"spark-submit ran for {who}: {result}"
    assert rc == 3, (rc, err[-3000:])
    # The refusal says who may not act for whom.
    assert for_user.name in err or as_user.name in err, err[-3000:]
