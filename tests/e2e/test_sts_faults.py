"""STS faults through the real binaries: `provisioner kernel` (and `spark-submit-wrap`
with a stand-in spark-submit) against the stand-in STS, which on cue resets
connections, answers 500/503, throttles, sends malformed XML, hangs, delays, or returns
the MaxSessionDuration, role-chaining and PackedPolicyTooLarge errors.

For each fault and tier the launch succeeds after retries, falls back, or refuses exactly
as the settings say; it ends within the deadline (`sts_deadline_seconds`, 3 s here) plus
process start-up; the decision record explains it; and the child either never ran or ran
with exactly the credentials the stand-in issued for the decided role (or, for the
default tier, the launcher's own), never the launcher's base key when a minted tier was
decided.
"""

import json
import threading

import pytest

from fault_support import (
    LAUNCHER_KEY_ID,
    LAUNCHER_SECRET,
    fault_platform,
    fake_sts_endpoint,  # noqa: F401 - fixture
    fake_sts_server,  # noqa: F401 - fixture
    launch_kernel,
    launch_wrap,
    launcher_env,
    parse_properties,
    standin_spark_home,
)

DEADLINE = 3
# Start-up of the launcher and of the child program, on a busy two-core machine.
MARGIN = 1.5


# Launch setups: the context the platform passes, settings, and which role is tried first.
SETUPS = {
    "workspace_sa-fallback": ({"SYN_WORKSPACE_ID": "ws-finance"}, {}, "workspace_sa", "Finance"),
    "workspace_sa-fallback-no_session_policy": (
        {"SYN_WORKSPACE_ID": "ws-finance"}, {"syntasa_session_policy_enabled": "false"}, "workspace_sa", "Finance"),
    "workspace_sa-deny": ({"SYN_WORKSPACE_ID": "ws-finance"}, {"service_account_failure": "deny"}, "workspace_sa", "Finance"),
    "runtime_template_sa-fallback": (
        {"SYN_WORKSPACE_ID": "ws-open", "SYN_RUNTIME_TEMPLATE_ID": "rt-etl"}, {}, "runtime_template_sa", "Etl"),
    "runtime_template_sa-deny": (
        {"SYN_WORKSPACE_ID": "ws-open", "SYN_RUNTIME_TEMPLATE_ID": "rt-etl"}, {"service_account_failure": "deny"},
        "runtime_template_sa", "Etl"),
    "session_policy": ({"SYN_WORKSPACE_ID": "ws-open"}, {}, "session_policy", "PlatformInfraRole"),
}

# Attempts per STS call (sts_max_attempts) for throttling, 5xx and transport errors.
ATTEMPTS = 3

# fault -> (words the record must name as the cause, attempts one tier makes)
FAULTS = {
    "reset": (["cannot reach STS", "Connection reset"], ATTEMPTS),
    "500": (["InternalFailure", "HTTP 500"], ATTEMPTS),
    "503": (["ServiceUnavailable", "HTTP 503"], ATTEMPTS),
    "throttle": (["Throttling"], ATTEMPTS),
    "malformed": (["malformed"], 1),  # a 200 answer: not retried
    "hang": (["deadline"], 1),  # the one attempt runs into the deadline
}
# A hang costs the whole deadline: one setup per outcome is enough.
HANG_SETUPS = {"workspace_sa-fallback-no_session_policy", "workspace_sa-deny", "session_policy"}
QUICK_FAULTS = [f for f in FAULTS if f != "hang"]


@pytest.fixture
def sts(fake_sts_endpoint):  # noqa: F811
    """The stand-in STS, reset for this test."""
    return fake_sts_endpoint


def kernel(provisioner, sts, tmp_path, setup, *, settings=None, linger=0.0, **platform):
    ctx, setup_settings, _, _ = SETUPS[setup]
    log = tmp_path / "decisions.jsonl"
    config = fault_platform(tmp_path, sts.endpoint, log=log,
                            settings={"sts_deadline_seconds": str(DEADLINE), "sts_max_attempts": str(ATTEMPTS),
                                      **setup_settings, **(settings or {})},
                            **platform)
    env = launcher_env(SYN_USER="alice", **ctx)
    return launch_kernel(provisioner, config, env, tmp_path / "child-env.json", log, linger=linger)


# -- what a launch must look like ------------------------------------------------------


def child_env(launch):
    if launch.child is None:
        return None
    return launch.child.get("env", launch.child) if "argv" in launch.child else launch.child


def assert_within_deadline(launch, deadline=DEADLINE):
    assert launch.elapsed <= deadline + MARGIN, (
        f"launch took {launch.elapsed:.2f} s, deadline {deadline} s; stderr: {launch.stderr}")
    assert launch.record.get("elapsed_ms", 0) <= deadline * 1000 + 200, launch.record


def assert_no_crash(launch):
    for text in (launch.stderr, launch.stdout):
        assert "panicked at" not in text and "Traceback" not in text, text


def assert_minted(launch, sts, tier, role):
    """The child runs with exactly the credentials the stand-in issued for `role`."""
    assert_no_crash(launch)
    assert launch.returncode == 0, launch.stderr
    rec = launch.record
    assert (rec["tier"], rec["refused"], rec["credentials"]) == (tier, None, "assumed_role"), rec
    assert rec["role_arn"].endswith(f":role/{role}"), rec
    env = child_env(launch)
    assert env is not None, "the child did not run"
    issued = sts.issued_for(env.get("AWS_ACCESS_KEY_ID"))
    assert issued, f"child's key {env.get('AWS_ACCESS_KEY_ID')!r} was not issued by STS"
    assert issued["role_arn"].endswith(f":role/{role}"), issued["role_arn"]
    assert sts.issued[-1] is issued, "the child must get the last session minted, no other"
    assert env["AWS_SECRET_ACCESS_KEY"] == issued["secret_access_key"]
    assert env["AWS_SESSION_TOKEN"] == issued["session_token"]
    assert env["AWS_CREDENTIAL_EXPIRATION"] == issued["expiration"] == rec["expiration"]
    assert rec["duration_seconds"] == issued["duration"]
    assert env["SYN_PROVISIONED"].startswith(f"tier={tier};expiration={issued['expiration']}")
    dumped = json.dumps(env)
    assert LAUNCHER_KEY_ID not in dumped and LAUNCHER_SECRET not in dumped, "launcher's base key reached the child"
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    return env


def assert_ambient(launch, reason):
    """Default tier: nothing minted, the child keeps the launcher's own chain."""
    assert_no_crash(launch)
    assert launch.returncode == 0, launch.stderr
    rec = launch.record
    assert (rec["tier"], rec["reason"], rec["credentials"], rec["refused"]) == ("default", reason, "ambient", None), rec
    env = child_env(launch)
    assert env is not None, "the child did not run"
    assert env["AWS_ACCESS_KEY_ID"] == LAUNCHER_KEY_ID
    assert "AWS_SESSION_TOKEN" not in env and "AWS_CREDENTIAL_EXPIRATION" not in env
    assert env["SYN_PROVISIONED"] == "tier=default;user=alice"
    return rec


def assert_refused(launch, code, exit_code, tier):
    assert_no_crash(launch)
    assert launch.returncode == exit_code, (launch.returncode, launch.stderr)
    assert child_env(launch) is None, "a refused launch must not start the program"
    rec = launch.record
    assert rec["tier"] == tier and rec["credentials"] == "none", rec
    assert rec["refused"]["code"] == code and rec["refused"]["exit_code"] == exit_code, rec
    lines = launch.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {launch.stderr}"
    assert code in lines[0] and "fix:" in lines[0], lines[0]
    return rec


def skipped(rec):
    return {s["tier"]: s["reason"] for s in rec["skipped"]}


def assert_names_cause(text, words):
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"


# -- every fault, every tier, every setting ------------------------------------------


PERSISTENT = [(f, s) for f in FAULTS for s in SETUPS if f != "hang" or s in HANG_SETUPS]


@pytest.mark.parametrize("fault,setup", PERSISTENT, ids=[f"{f}-{s}" for f, s in PERSISTENT])
def test_persistent_fault(provisioner, sts, tmp_path, fault, setup):
    """STS fails every AssumeRole: fall back, or refuse, as the settings say."""
    words, attempts = FAULTS[fault]
    sts.cue(fault)
    launch = kernel(provisioner, sts, tmp_path, setup)
    assert_within_deadline(launch)
    _, settings, first_tier, first_role = SETUPS[setup]
    calls = sts.assume_roles()
    first = [c for c in calls if c["role"] == first_role]
    assert len(first) == attempts, calls

    if setup.endswith("-deny"):
        rec = assert_refused(launch, "SERVICE_ACCOUNT_FAILED", 3, first_tier)
        assert_names_cause(rec["refused"]["message"], words)
        assert len(calls) == attempts, "deny: no other tier may be tried"
    elif setup == "session_policy":
        rec = assert_refused(launch, "CREDENTIALS_UNAVAILABLE", 4, "session_policy")
        assert_names_cause(rec["refused"]["message"], words)
    elif setup.endswith("no_session_policy"):
        rec = assert_ambient(launch, "DISABLED")
        assert skipped(rec)[first_tier] == "SERVICE_ACCOUNT_FAILED"
        [warning] = rec["warnings"]
        assert "sa-finance" in warning and "falling back" in warning
        assert_names_cause(warning, words)
    else:
        # The service account failed and fell back; the session policy met the same
        # fault, and falling back further would widen the session: refused.
        rec = assert_refused(launch, "CREDENTIALS_UNAVAILABLE", 4, "session_policy")
        assert skipped(rec)[first_tier] == "SERVICE_ACCOUNT_FAILED"
        assert any("falling back" in w for w in rec["warnings"]), rec["warnings"]
        assert_names_cause(" ".join(rec["warnings"]), words)


@pytest.mark.parametrize("setup", ["workspace_sa-fallback", "runtime_template_sa-fallback"])
@pytest.mark.parametrize("fault", QUICK_FAULTS)
def test_service_account_fault_falls_back_to_session_policy(provisioner, sts, tmp_path, fault, setup):
    words, attempts = FAULTS[fault]
    sts.cue(fault, count=attempts)  # every attempt of the service account fails, then STS recovers
    launch = kernel(provisioner, sts, tmp_path, setup)
    assert_within_deadline(launch)
    assert_minted(launch, sts, "session_policy", "PlatformInfraRole")
    rec = launch.record
    _, _, first_tier, role = SETUPS[setup]
    assert skipped(rec)[first_tier] == "SERVICE_ACCOUNT_FAILED"
    [warning] = rec["warnings"]
    assert "falling back" in warning and role in warning
    assert_names_cause(warning, words)
    assert [c["role"] for c in sts.assume_roles()] == [role] * attempts + ["PlatformInfraRole"]


@pytest.mark.parametrize("setup", ["workspace_sa-deny", "runtime_template_sa-fallback", "session_policy"])
@pytest.mark.parametrize("fault", ["reset", "500", "503", "throttle"])
def test_transient_fault_succeeds_after_retries(provisioner, sts, tmp_path, fault, setup):
    sts.cue(fault, count=2)
    launch = kernel(provisioner, sts, tmp_path, setup)
    assert_within_deadline(launch)
    _, _, tier, role = SETUPS[setup]
    assert_minted(launch, sts, tier, role)
    assert launch.record["warnings"] == []
    assert [c["mode"] for c in sts.assume_roles()] == [fault, fault, "ok"]


def test_hung_service_account_leaves_time_for_the_fallback(provisioner, sts, tmp_path):
    # A service account that may fall back gets half of the time left, so a hung STS
    # call for it cannot starve the session-policy tier of the rest.
    sts.cue("hang", count=1)
    launch = kernel(provisioner, sts, tmp_path, "workspace_sa-fallback")
    assert_within_deadline(launch)
    assert_minted(launch, sts, "session_policy", "PlatformInfraRole")
    rec = launch.record
    assert skipped(rec)["workspace_sa"] == "SERVICE_ACCOUNT_FAILED"
    assert "share of the 3 s deadline" in rec["warnings"][0], rec["warnings"]
    assert [c["mode"] for c in sts.assume_roles()] == ["hang", "ok"]


def test_slow_sts_within_the_deadline_succeeds(provisioner, sts, tmp_path):
    sts.cue("delay", delay=1.0)
    launch = kernel(provisioner, sts, tmp_path, "session_policy")
    assert_within_deadline(launch)
    assert launch.elapsed >= 1.0
    assert_minted(launch, sts, "session_policy", "PlatformInfraRole")


def test_sts_slower_than_the_deadline_is_cut_at_the_deadline(provisioner, sts, tmp_path):
    sts.cue("delay", delay=DEADLINE + 5)
    launch = kernel(provisioner, sts, tmp_path, "session_policy")
    assert_within_deadline(launch)
    assert launch.elapsed >= DEADLINE - 0.2
    rec = assert_refused(launch, "CREDENTIALS_UNAVAILABLE", 4, "session_policy")
    assert "3 s deadline (sts_deadline_seconds)" in rec["refused"]["message"]


def test_one_hung_attempt_is_retried_within_a_longer_deadline(provisioner, sts, tmp_path):
    sts.cue("hang", count=1)
    launch = kernel(provisioner, sts, tmp_path, "workspace_sa-deny", settings={"sts_deadline_seconds": "7"})
    assert_within_deadline(launch, deadline=7)
    assert_minted(launch, sts, "workspace_sa", "Finance")
    assert [c["mode"] for c in sts.assume_roles()] == ["hang", "ok"]


# -- duration limits, packed policies --------------------------------------------------


@pytest.mark.parametrize("fault", ["max_duration", "chaining"])
@pytest.mark.parametrize("setup", ["workspace_sa-deny", "session_policy"])
def test_duration_refused_by_the_role_is_retried_at_3600_with_the_fix(provisioner, sts, tmp_path, fault, setup):
    sts.cue(fault, count=1)
    launch = kernel(provisioner, sts, tmp_path, setup, settings={"syntasa_session_policy_duration": "43200"})
    assert_within_deadline(launch)
    _, _, tier, role = SETUPS[setup]
    assert_minted(launch, sts, tier, role)
    rec = launch.record
    assert rec["duration_seconds"] == 3600
    assert [(c["role"], c["duration"]) for c in sts.assume_roles()] == [(role, 43200), (role, 3600)]
    [warning] = rec["warnings"]
    assert f"aws iam update-role --role-name {role} --max-session-duration 43200" in warning
    assert "3600 s" in warning
    if fault == "chaining":
        assert "role chaining" in warning


def test_duration_refused_even_at_3600_follows_the_failure_setting(provisioner, sts, tmp_path):
    sts.cue("max_duration")
    launch = kernel(provisioner, sts, tmp_path, "workspace_sa-deny")
    assert_within_deadline(launch)
    rec = assert_refused(launch, "SERVICE_ACCOUNT_FAILED", 3, "workspace_sa")
    assert "retried at 3600 s" in rec["refused"]["message"]
    assert [c["duration"] for c in sts.assume_roles()] == [43200, 3600]


def test_packed_policy_too_large_falls_back_to_default_over_limit(provisioner, sts, tmp_path):
    sts.cue("packed")
    launch = kernel(provisioner, sts, tmp_path, "session_policy")
    assert_within_deadline(launch)
    rec = assert_ambient(launch, "OVER_LIMIT")
    assert skipped(rec)["session_policy"] == "OVER_LIMIT"
    [warning] = rec["warnings"]
    assert "PackedPolicyTooLarge" in warning and "falling back to default" in warning
    assert len(sts.assume_roles()) == 1, "PackedPolicyTooLarge is not retried"


def test_packed_policy_too_large_with_deny_refuses(provisioner, sts, tmp_path):
    sts.cue("packed")
    launch = kernel(provisioner, sts, tmp_path, "session_policy", settings={"session_policy_over_limit": "deny"})
    assert_within_deadline(launch)
    rec = assert_refused(launch, "OVER_LIMIT", 3, "default")
    assert rec["reason"] == "OVER_LIMIT"
    assert "PackedPolicyTooLarge" in rec["refused"]["message"]


# -- many launches against a rate-limited STS ------------------------------------------


def test_concurrent_launches_under_a_rate_limit_all_get_their_own_session(provisioner, sts, tmp_path):
    """Six kernels start at once against an STS that throttles above 3 requests per
    second: throttled calls back off and retry, and every kernel gets its own session
    within the deadline."""
    sts.cue("rate", rate=3)
    results = [None] * 6

    def one(i):
        d = tmp_path / f"k{i}"
        d.mkdir()
        results[i] = kernel(provisioner, sts, d, "session_policy", settings={"sts_deadline_seconds": "6",
                                                                             "sts_max_attempts": "8"})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    keys = set()
    for launch in results:
        assert launch is not None
        assert_within_deadline(launch, deadline=6)
        env = assert_minted_any(launch, sts)
        keys.add(env["AWS_ACCESS_KEY_ID"])
    assert len(keys) == 6, "every kernel has its own session"
    modes = [c["mode"] for c in sts.assume_roles()]
    assert "rate" in modes, "the test must actually throttle some calls"


def assert_minted_any(launch, sts):
    """Minted session_policy credentials issued by STS (the last-issued check does not
    apply when launches run at once)."""
    assert_no_crash(launch)
    assert launch.returncode == 0, launch.stderr
    env = child_env(launch)
    issued = sts.issued_for(env["AWS_ACCESS_KEY_ID"])
    assert issued and env["AWS_SECRET_ACCESS_KEY"] == issued["secret_access_key"]
    assert env["AWS_SESSION_TOKEN"] == issued["session_token"]
    assert launch.record["tier"] == "session_policy"
    return env


# -- spark-submit-wrap -----------------------------------------------------------------


def wrap(spark_submit_wrap, sts, tmp_path, ctx, settings=None, linger=0.0):
    log = tmp_path / "decisions.jsonl"
    config = fault_platform(tmp_path, sts.endpoint, log=log,
                            settings={"sts_deadline_seconds": str(DEADLINE), "sts_max_attempts": str(ATTEMPTS),
                                      **(settings or {})})
    home = standin_spark_home(tmp_path)
    env = launcher_env(SYN_USER="alice", **ctx)
    return launch_wrap(spark_submit_wrap, config, env, tmp_path / "spark-submit.json", log, home, linger=linger)


def props(launch):
    return parse_properties(launch.child["props"]["text"])


def assert_job_minted(launch, sts, tier, role):
    env = assert_minted(launch, sts, tier, role)
    p = props(launch)
    assert p["spark.hadoop.fs.s3a.access.key"] == env["AWS_ACCESS_KEY_ID"]
    assert p["spark.hadoop.fs.s3a.secret.key"] == env["AWS_SECRET_ACCESS_KEY"]
    assert p["spark.hadoop.fs.s3a.session.token"] == env["AWS_SESSION_TOKEN"]
    argv = " ".join(launch.child["argv"])
    assert env["AWS_SECRET_ACCESS_KEY"] not in argv and env["AWS_SESSION_TOKEN"] not in argv
    assert launch.child["argv"][-1] == "app.py"


def test_wrap_service_account_503_falls_back_to_session_policy(spark_submit_wrap, sts, tmp_path):
    sts.cue("503", count=ATTEMPTS)
    launch = wrap(spark_submit_wrap, sts, tmp_path, {"SYN_RUNTIME_TEMPLATE_ID": "rt-etl"})
    assert_within_deadline(launch)
    assert_job_minted(launch, sts, "session_policy", "PlatformInfraRole")
    rec = launch.record
    assert rec["flow"] == "job" and skipped(rec)["runtime_template_sa"] == "SERVICE_ACCOUNT_FAILED"
    assert any("HTTP 503" in w and "falling back" in w for w in rec["warnings"]), rec["warnings"]


def test_wrap_throttled_then_ok_runs_the_job_with_its_service_account(spark_submit_wrap, sts, tmp_path):
    sts.cue("throttle", count=ATTEMPTS - 1)
    launch = wrap(spark_submit_wrap, sts, tmp_path, {"SYN_RUNTIME_TEMPLATE_ID": "rt-etl",
                                                     "SYN_WORKSPACE_ID": "ws-finance"})
    assert_within_deadline(launch)
    assert_job_minted(launch, sts, "runtime_template_sa", "Etl")
    assert skipped(launch.record)["workspace_sa"] == "IGNORED_IN_JOB_FLOW"


def test_wrap_session_policy_unreachable_refuses_and_never_runs_spark(spark_submit_wrap, sts, tmp_path):
    sts.cue("reset")
    launch = wrap(spark_submit_wrap, sts, tmp_path, {})
    assert_within_deadline(launch)
    rec = assert_refused(launch, "CREDENTIALS_UNAVAILABLE", 4, "session_policy")
    assert "cannot reach STS" in rec["refused"]["message"]


@pytest.mark.parametrize("fault", ["hang", "malformed"])
def test_wrap_service_account_fault_with_deny_refuses_within_the_deadline(spark_submit_wrap, sts, tmp_path, fault):
    sts.cue(fault)
    launch = wrap(spark_submit_wrap, sts, tmp_path, {"SYN_RUNTIME_TEMPLATE_ID": "rt-etl"},
                  settings={"service_account_failure": "deny"})
    assert_within_deadline(launch)
    rec = assert_refused(launch, "SERVICE_ACCOUNT_FAILED", 3, "runtime_template_sa")
    assert_names_cause(rec["refused"]["message"], FAULTS[fault][0])


def test_wrap_packed_policy_falls_back_to_default_without_injecting(spark_submit_wrap, sts, tmp_path):
    sts.cue("packed")
    launch = wrap(spark_submit_wrap, sts, tmp_path, {})
    assert_within_deadline(launch)
    assert_ambient(launch, "OVER_LIMIT")
    assert launch.child["props"] is None, "nothing is injected in the default tier"
    assert launch.child["argv"] == ["--master", "local[1]", "app.py"]


def test_wrap_role_chaining_is_retried_at_3600(spark_submit_wrap, sts, tmp_path):
    sts.cue("chaining", count=1)
    launch = wrap(spark_submit_wrap, sts, tmp_path, {}, settings={"syntasa_session_policy_duration": "43200"})
    assert_within_deadline(launch)
    assert_job_minted(launch, sts, "session_policy", "PlatformInfraRole")
    [warning] = launch.record["warnings"]
    assert "aws iam update-role --role-name PlatformInfraRole --max-session-duration 43200" in warning
