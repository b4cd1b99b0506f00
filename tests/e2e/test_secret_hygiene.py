"""Secret hygiene, for both binaries and every tier, with credentials minted by moto
(IAM auth on): no secret key or session token (minted, static, or the launcher's own)
in any process's command line while a launch runs, in the launcher's stdout or stderr,
in the decision log (file or stderr), in `provisioner explain` or `--wrap-explain`
output; every file a launch creates is private (the decision log 0600, the Spark
properties file 0600 in a 0700 directory, or a descriptor with no name at all).
"""

import json
import os
import stat
import time
from pathlib import Path

import pytest

from fault_support import (
    CmdlineSampler,
    launch_kernel,
    launch_wrap,
    parse_properties,
    read_records,
    run_timed,
    standin_spark_home,
)
from harness.moto import ALLOW_ASSUME_ANY_ROLE
from harness.platform import platform_file

ACCOUNT = "123456789012"

KERNEL_TIERS = {
    "workspace_sa": ("alice", {"SYN_WORKSPACE_ID": "ws-finance"}, "Finance"),
    "runtime_template_sa": ("alice", {"SYN_WORKSPACE_ID": "ws-open", "SYN_RUNTIME_TEMPLATE_ID": "rt-etl"}, "Etl"),
    "static_keys": ("alice", {"SYN_RUNTIME_TEMPLATE_ID": "rt-legacy"}, None),
    "session_policy": ("alice", {"SYN_WORKSPACE_ID": "ws-open"}, "PlatformInfraRole"),
    "default": ("root", {}, None),
}
# The job flow has no workspace tier (a workspace is ignored).
JOB_TIERS = {k: v for k, v in KERNEL_TIERS.items() if k != "workspace_sa"}
RECORD_TIER = {"static_keys": "runtime_template_sa"}


class World:
    """moto with a launcher user, the roles, a static-keys user; a platform file; and
    per-launch private directories (TMPDIR, XDG_RUNTIME_DIR, HOME)."""

    def __init__(self, moto, tmp_path, provisioner, wrap):
        self.moto, self.tmp, self.provisioner, self.wrap = moto, tmp_path, provisioner, wrap
        self.launcher = moto.create_user("launcher", policy=ALLOW_ASSUME_ANY_ROLE)
        self.legacy = moto.create_user("legacy")
        roles = {n: moto.create_role(n, trusted=[self.launcher.arn], max_session_duration=43200)
                 for n in ("PlatformInfraRole", "Finance", "Etl")}
        moto.enable_auth()
        secret_file = tmp_path / "legacy-secret"
        secret_file.write_text(self.legacy.secret_access_key + "\n")
        secret_file.chmod(0o600)
        self.log = tmp_path / "logs" / "decisions.jsonl"
        self.log.parent.mkdir()
        self.spark_home = standin_spark_home(tmp_path)
        common = dict(
            aws={"sts_endpoint": moto.endpoint, "session_policy_role_arn": roles["PlatformInfraRole"]},
            service_accounts=[
                {"id": "sa-finance", "role_arn": roles["Finance"], "external_id": "fin-ext", "duration_seconds": 3600},
                {"id": "sa-etl", "role_arn": roles["Etl"], "duration_seconds": 3600},
                {"id": "sa-legacy", "access_key_id": {"env": "LEGACY_KEY_ID"},
                 "secret_access_key": {"file": str(secret_file)}},
            ],
            workspaces=[{"id": "ws-finance", "service_account": "sa-finance"}, {"id": "ws-open"}],
            runtime_templates=[{"id": "rt-etl", "service_account": "sa-etl"},
                               {"id": "rt-legacy", "service_account": "sa-legacy"}],
        )
        self.config = platform_file(tmp_path, settings={"decision_log": str(self.log),
                                                        "syntasa_session_policy_duration": "3600"}, **common)
        self.config_stderr = platform_file(tmp_path, name="platform-stderr.json",
                                           settings={"decision_log": "stderr",
                                                     "syntasa_session_policy_duration": "3600"}, **common)
        self.runs = 0

    def env(self, user, ctx):
        self.runs += 1
        run = self.tmp / f"run{self.runs}"
        dirs = {name: run / name for name in ("tmp", "xdg", "home")}
        for d in dirs.values():
            d.mkdir(parents=True)
            d.chmod(0o700)
        return {**self.launcher.env(), "LEGACY_KEY_ID": self.legacy.access_key_id, "SYN_USER": user,
                "TMPDIR": dirs["tmp"], "XDG_RUNTIME_DIR": dirs["xdg"], "HOME": dirs["home"], **ctx}

    def base_secrets(self):
        """Secrets that exist before any launch: the launcher's own and the static key."""
        return [self.launcher.secret_access_key, self.legacy.secret_access_key]


@pytest.fixture
def world(moto, tmp_path, provisioner, spark_submit_wrap):
    old = os.umask(0o022)  # the usual umask: a file created without care becomes 0644
    try:
        yield World(moto, tmp_path, provisioner, spark_submit_wrap)
    finally:
        os.umask(old)


def files_under(root):
    return {p for p in Path(root).rglob("*")}


def secrets_of(env):
    return [v for v in (env.get("AWS_SECRET_ACCESS_KEY"), env.get("AWS_SESSION_TOKEN")) if v]


def assert_not_in(text, secrets, where):
    for s in secrets:
        assert s and s not in text, f"a secret ({s[:4]}...) appears in {where}"


def is_spark_properties(p):
    """The named properties file: the one file meant to hold the job's secrets."""
    return p.name == "spark.properties" and p.parent.name.startswith("spark-submit-wrap-")


def assert_private_and_clean(paths, secrets, exclude=()):
    """Every path (created by the launch) is private to its owner, and holds no secret
    unless it is the job's own properties file."""
    for p in paths:
        if p in exclude or not p.exists():
            continue
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, f"{p} is readable by others (mode {mode:04o})"
        if p.is_file() and not is_spark_properties(p):
            assert_not_in(p.read_text(errors="replace"), secrets, p)


def assert_identity(world, tier, role, env):
    """The child holds exactly the identity of the tier (moto issued these keys)."""
    if role:
        [sent] = [r for r in world.moto.assume_role_records() if r["access_key_id"] == env["AWS_ACCESS_KEY_ID"]]
        assert sent["role_arn"].endswith(f":role/{role}"), sent
        assert env.get("AWS_SESSION_TOKEN")
    elif tier == "static_keys":
        assert env["AWS_ACCESS_KEY_ID"] == world.legacy.access_key_id
        assert env["AWS_SECRET_ACCESS_KEY"] == world.legacy.secret_access_key
        assert "AWS_SESSION_TOKEN" not in env
    else:
        assert env["AWS_ACCESS_KEY_ID"] == world.launcher.access_key_id
    if tier != "default":
        assert world.launcher.secret_access_key not in json.dumps(env), "the launcher's secret reached the child"


def check_explain(world, user, ctx, secrets, flow=None):
    """`provisioner explain`, text and JSON, for the launch's context: no secret."""
    for extra in ([], ["--json"]):
        args = ["explain", "--config", world.config, *extra]
        if flow:
            args += ["--flow", flow]
        code, out, err, _ = run_timed([world.provisioner.path, *args], world.env(user, ctx), timeout=30)
        assert code == 0, err
        assert_not_in(out + err, secrets, f"explain {' '.join(extra)}")


# -- provisioner kernel -----------------------------------------------------------------


@pytest.mark.parametrize("tier", list(KERNEL_TIERS))
def test_kernel_launch_keeps_secrets_out_of_argv_logs_records_and_shared_files(world, tier):
    user, ctx, role = KERNEL_TIERS[tier]
    env = world.env(user, ctx)
    before = files_under(world.tmp)
    out = world.tmp / f"child-{tier}.json"
    with CmdlineSampler() as sampler:
        launch = launch_kernel(world.provisioner, world.config, env, out, world.log, linger=0.5, sampler=sampler)
    assert launch.returncode == 0, launch.stderr
    child = launch.child
    assert_identity(world, tier, role, child)
    secrets = secrets_of(child) + world.base_secrets()

    # The sampler looked while the launch ran: it saw the child itself.
    assert any(str(out) in c for c in sampler.seen), "the sampler never saw the child; it proves nothing"
    assert not sampler.leaks(secrets), sampler.leaks(secrets)
    assert_not_in(launch.stdout + launch.stderr, secrets, "the launcher's output")

    [record] = launch.records
    assert record["tier"] == RECORD_TIER.get(tier, tier)
    log_text = world.log.read_text()
    assert_not_in(log_text, secrets, "the decision log")
    assert stat.S_IMODE(world.log.stat().st_mode) == 0o600, "the decision log is created 0600"

    created = files_under(world.tmp) - before
    assert world.log in created, "the log must be created by this launch for its mode to mean anything"
    assert_private_and_clean(created, secrets, exclude={out})
    check_explain(world, user, ctx, secrets)


@pytest.mark.parametrize("tier", ["session_policy", "static_keys"])
def test_kernel_decision_record_on_stderr_holds_no_secret(world, tier):
    user, ctx, role = KERNEL_TIERS[tier]
    out = world.tmp / "child.json"
    launch = launch_kernel(world.provisioner, world.config_stderr, world.env(user, ctx), out, world.log)
    assert launch.returncode == 0, launch.stderr
    [line] = launch.stderr.strip().splitlines()
    assert json.loads(line)["tier"] == RECORD_TIER.get(tier, tier)
    assert_not_in(launch.stderr + launch.stdout, secrets_of(launch.child) + world.base_secrets(), "stderr")


def test_refused_kernel_launch_leaks_nothing(world):
    """A refused launch (unknown user) with the launcher's keys in its environment."""
    out = world.tmp / "child.json"
    launch = launch_kernel(world.provisioner, world.config, world.env("mallory", {}), out, world.log)
    assert launch.returncode == 3 and launch.child is None
    assert_not_in(launch.stdout + launch.stderr + world.log.read_text(), world.base_secrets(), "a refusal")


# -- spark-submit-wrap ------------------------------------------------------------------


def props_map(child):
    return parse_properties(child["props"]["text"])


@pytest.mark.parametrize("strategy", ["descriptor", "named-file"])
@pytest.mark.parametrize("tier", list(JOB_TIERS))
def test_job_launch_keeps_secrets_out_of_argv_logs_records_and_shared_files(world, tier, strategy):
    user, ctx, role = JOB_TIERS[tier]
    env = world.env(user, ctx)
    if strategy == "named-file":
        env["SPARK_SUBMIT_WRAP_PROPERTIES"] = "file"
    xdg = Path(env["XDG_RUNTIME_DIR"])
    before = files_under(world.tmp)
    out = world.tmp / f"spark-{tier}-{strategy}.json"
    with CmdlineSampler() as sampler:
        launch = launch_wrap(world.wrap, world.config, env, out, world.log, world.spark_home,
                             linger=0.5, sampler=sampler,
                             spark_args=("--master", "local[1]", "--conf", "spark.app.name=hygiene", "app.py", "arg1"))
    assert launch.returncode == 0, launch.stderr
    child = launch.child
    assert_identity(world, tier, role, child["env"])
    secrets = secrets_of(child["env"]) + world.base_secrets()

    assert any("spark.app.name=hygiene" in c for c in sampler.seen), "the sampler never saw spark-submit"
    assert not sampler.leaks(secrets), sampler.leaks(secrets)
    assert_not_in(" ".join(child["argv"]), secrets, "spark-submit's argv")
    assert child["argv"][-2:] == ["app.py", "arg1"], "application arguments pass through untouched"
    assert_not_in(launch.stdout + launch.stderr, secrets, "the wrapper's output")

    [record] = launch.records
    assert record["flow"] == "job" and record["tier"] == RECORD_TIER.get(tier, tier)
    assert_not_in(world.log.read_text(), secrets, "the decision log")
    assert stat.S_IMODE(world.log.stat().st_mode) == 0o600

    if tier == "default":
        assert child["props"] is None, "nothing is injected in the default tier"
    else:
        props = child["props"]
        p = props_map(child)
        # The secrets travel in the properties file, and only there.
        assert p["spark.hadoop.fs.s3a.secret.key"] == child["env"]["AWS_SECRET_ACCESS_KEY"]
        if strategy == "descriptor":
            assert props["path"].startswith("/dev/fd/"), props["path"]
        else:
            # As spark-submit saw it while the job ran (a cleaner removes it afterwards).
            path = Path(props["path"])
            assert path.parent.parent == xdg, f"{path} is not in XDG_RUNTIME_DIR"
            assert (props["mode"], props["dir_mode"]) == (0o600, 0o700), (oct(props["mode"]), oct(props["dir_mode"]))
            if tier == "session_policy":
                # The cleaner removes it once the job's process is gone (it polls every 2 s).
                deadline = time.monotonic() + 6
                while path.parent.exists() and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert not path.parent.exists(), f"{path.parent} was left behind after the job"
    # Whatever the launch created and left (files and directories) is private and clean.
    created = files_under(world.tmp) - before
    assert_private_and_clean(created, secrets, exclude={out})

    check_explain(world, user, ctx, secrets, flow="job")
    code, dry, err, _ = run_timed([world.wrap.path, "--wrap-explain", "--wrap-config", world.config,
                                   "--master", "local[1]", "app.py"], env, timeout=30)
    assert code == 0, err
    assert_not_in(dry + err, secrets, "--wrap-explain")
    assert json.loads(dry)["decision"]["tier"] == RECORD_TIER.get(tier, tier)


def test_job_decision_record_on_stderr_holds_no_secret(world):
    user, ctx, _ = JOB_TIERS["session_policy"]
    out = world.tmp / "spark.json"
    launch = launch_wrap(world.wrap, world.config_stderr, world.env(user, ctx), out, world.log, world.spark_home)
    assert launch.returncode == 0, launch.stderr
    [line] = launch.stderr.strip().splitlines()
    assert json.loads(line)["tier"] == "session_policy"
    assert_not_in(launch.stderr + launch.stdout, secrets_of(launch.child["env"]) + world.base_secrets(), "stderr")


def test_job_inside_a_provisioned_kernel_propagates_without_leaking(world):
    """spark-submit-wrap run from a kernel (marker set) passes the kernel's session on:
    not on a command line, not in its output, redacted in --wrap-explain."""
    user, ctx, _ = KERNEL_TIERS["session_policy"]
    kernel_out = world.tmp / "kernel.json"
    kernel = launch_kernel(world.provisioner, world.config, world.env(user, ctx), kernel_out, world.log)
    assert kernel.returncode == 0, kernel.stderr
    kenv = {k: v for k, v in kernel.child.items() if k.startswith(("AWS_", "SYN_"))}
    secrets = secrets_of(kenv) + world.base_secrets()
    env = {**world.env(user, {}), **kenv}
    for k in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        env[k] = None  # the kernel's environment has none
    out = world.tmp / "spark.json"
    with CmdlineSampler() as sampler:
        launch = launch_wrap(world.wrap, world.config, env, out, world.log, world.spark_home, linger=0.3,
                             sampler=sampler)
    assert launch.returncode == 0, launch.stderr
    assert launch.child["env"]["AWS_SECRET_ACCESS_KEY"] == kenv["AWS_SECRET_ACCESS_KEY"]
    assert props_map(launch.child)["spark.hadoop.fs.s3a.session.token"] == kenv["AWS_SESSION_TOKEN"]
    assert read_records(world.log)[-1]["credentials"] == "propagated"
    assert any("local[1]" in c for c in sampler.seen)
    assert not sampler.leaks(secrets), sampler.leaks(secrets)
    assert_not_in(" ".join(launch.child["argv"]) + launch.stdout + launch.stderr + world.log.read_text(),
                  secrets, "argv, output or log")
    code, dry, err, _ = run_timed([world.wrap.path, "--wrap-explain", "--master", "local[1]", "app.py"], env)
    assert code == 0, err
    assert "<redacted>" in dry
    assert_not_in(dry + err, secrets, "--wrap-explain in a kernel")
