"""Bad input, table-driven, through the real binaries: platform files, settings,
environment, arguments of `provisioner` and `spark-submit-wrap`, connection files and
kernelspecs.

Each row gives the exit code and the words its message must hold (the problem and the
fix). For every row: the documented exit code, one line on stderr (a refused kernel
launch with a connection file adds the connection file's own line), no Python traceback,
no Rust panic, nothing started, and no secret value echoed.
"""

import json
from dataclasses import dataclass, field

import pytest

from fault_support import LAUNCHER_SECRET, fault_platform, launcher_env, run_timed, standin_spark_home

# Never contacted: rows fail before any STS call (a row that reached STS would fail
# with a different message and exit code).
DEAD_ENDPOINT = "http://127.0.0.1:9"
INLINE_SECRET = "inline-secret-value-must-not-be-echoed"


@dataclass
class Row:
    id: str
    code: int
    words: list
    bin: str = "provisioner"  # or "wrap"
    args: list | None = None  # None: the default command line of `bin`
    doc: dict = field(default_factory=dict)  # platform overrides (see fault_platform)
    edit: object = None  # function(doc) -> None, for deep edits
    text: object = None  # raw platform file content (str or bytes)
    env: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # extra files: name -> (content, mode)
    lines: int = 1


def sa(doc, i):
    return doc["service_accounts"][i]


def set_in(path, value):
    """An edit that sets doc[path...] = value (path: keys and list indexes)."""
    def edit(doc):
        target = doc
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = value
    return edit


def append_to(key, value):
    def edit(doc):
        doc[key].append(value)
    return edit


def delete(path):
    def edit(doc):
        target = doc
        for k in path[:-1]:
            target = target[k]
        del target[path[-1]]
    return edit


# The default tier mints nothing: rows about what happens after minting use it.
NO_MINT = {"SYNTASA_SESSION_POLICY_ENABLED": "false"}
KERNEL = ["kernel", "--config", "{config}", "--", "/bin/true"]
EXPLAIN = ["explain", "--config", "{config}", "--user", "alice"]
CF_KERNEL = ["kernel", "--config", "{config}", "--", "/bin/true", "-f", "{tmp}/cf.json"]
GOOD_CF = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5,
           "ip": "127.0.0.1", "key": "k", "transport": "tcp", "signature_scheme": "hmac-sha256"}


def cf(**changes):
    doc = {**GOOD_CF, **changes}
    return {"cf.json": (json.dumps({k: v for k, v in doc.items() if v is not None}), 0o600)}


ROWS = [
    # -- the platform file --------------------------------------------------------------
    Row("platform-missing", 2, ["nope.json", "cannot be read", "--config"], args=["kernel", "--config", "{tmp}/nope.json", "--", "/bin/true"]),
    Row("platform-is-a-directory", 2, ["cannot be read", "readable platform file"], args=["explain", "--config", "{tmp}", "--user", "alice"]),
    Row("platform-empty", 2, ["EOF while parsing", "correct the JSON syntax"], text=""),
    Row("platform-not-json", 2, ["starts with 'h'", "not a JSON object", "examples/platform.json"], text="hello"),
    Row("platform-json-array", 2, ["starts with '['", "one JSON object"], text="[]"),
    Row("platform-syntax-error", 2, ["platform.json: settings: key must be a string at line 1 column 15",
                                     "correct the JSON syntax"], text='{"settings": {,}}'),
    Row("platform-not-utf8", 2, ["UTF-8", "cannot be read"], text=b'{"settings": {"decision_log": "\xff"}}'),
    Row("platform-unknown-top-level-key", 2, ["workspaces_typo", "unknown field", "rename"], doc={"workspaces_typo": []}),
    Row("platform-settings-not-object", 2, ["field \"settings\"", "expected a map", "give the field a value of the expected type"], edit=set_in(["settings"], "on")),
    # -- settings in the file -----------------------------------------------------------
    Row("setting-unknown-key", 2, ["syntasa_session_policy_enabld", "did you mean", "syntasa_session_policy_enabled"],
        doc={"settings": {"syntasa_session_policy_enabld": "true"}}),
    Row("setting-not-boolean", 2, ["syntasa_session_policy_enabled", "\"maybe\" is not a boolean", "use \"true\" or \"false\""],
        doc={"settings": {"syntasa_session_policy_enabled": "maybe"}}),
    Row("setting-duration-too-short", 2, ["syntasa_session_policy_duration", "900", "43200"],
        doc={"settings": {"syntasa_session_policy_duration": "100"}}),
    Row("setting-duration-too-long", 2, ["syntasa_session_policy_duration", "900", "43200"],
        doc={"settings": {"syntasa_session_policy_duration": "50000"}}),
    Row("setting-duration-not-number", 2, ["syntasa_session_policy_duration", "\"abc\" is not a whole number", "use a value from 900 to 43200"],
        doc={"settings": {"syntasa_session_policy_duration": "abc"}}),
    Row("setting-failure-mode", 2, ["service_account_failure", "\"ignore\"", "fallback", "deny"],
        doc={"settings": {"service_account_failure": "ignore"}}),
    Row("setting-over-limit-mode", 2, ["session_policy_over_limit", "\"skip\"", "fallback", "deny"],
        doc={"settings": {"session_policy_over_limit": "skip"}}),
    Row("setting-deadline-zero", 2, ["sts_deadline_seconds", "\"0\" is not a whole number from 1 to 300", "use a value"], doc={"settings": {"sts_deadline_seconds": "0"}}),
    Row("setting-max-attempts-zero", 2, ["sts_max_attempts", "\"0\" is not a whole number from 1 to 10", "use a value"], doc={"settings": {"sts_max_attempts": "0"}}),
    Row("setting-array-value", 2, ["session_policy_platform_folders", "expected a string, got an array", "give the setting a string value"],
        doc={"settings": {"session_policy_platform_folders": ["syn-workspace"]}}),
    Row("setting-folder-wildcard", 2, ["session_policy_platform_folders", "folder \"syn-*\" contains '*'", "list plain folder names"],
        doc={"settings": {"session_policy_platform_folders": "syn-*"}}),
    Row("setting-decision-log-relative", 2, ["decision_log", "\"logs/decisions.jsonl\" is a relative path", "absolute path"],
        doc={"settings": {"decision_log": "logs/decisions.jsonl"}}),
    Row("aws-region-invalid", 2, ["region", "\"moon-1\" is not an AWS region", "use a region name"], doc={"aws": {"region": "moon-1"}}),
    Row("aws-region-missing", 2, ["aws field \"region\": missing", "set aws.region"], doc={"aws": {"region": None}}),
    Row("aws-account-id-short", 2, ["account_id", "\"123\" is not a 12-digit account id", "use the 12-digit"], doc={"aws": {"account_id": "123"}}),
    Row("aws-account-id-missing-with-glue", 2, ["account_id", "Glue databases", "set aws.account_id"], doc={"aws": {"account_id": None}}),
    Row("aws-session-policy-role-not-a-role", 2, ["session_policy_role_arn", "\"arn:aws:iam::123456789012:user/x\" is not a role ARN", "use the ARN"],
        doc={"aws": {"session_policy_role_arn": "arn:aws:iam::123456789012:user/x"}}),
    Row("aws-session-policy-role-missing", 2, ["session_policy_role_arn", "missing while syntasa_session_policy_enabled is \"true\"", "set the role"], doc={"aws": {"session_policy_role_arn": None}}),
    Row("aws-sts-endpoint-not-http", 2, ["sts_endpoint", "\"ftp://sts.example\" is not an http(s) URL", "use a URL"],
        doc={"aws": {"sts_endpoint": "ftp://sts.example"}}),
    Row("aws-platform-bucket-missing", 2, ["platform_bucket", "missing while session_policy_platform_folders is not empty", "set aws.platform_bucket"],
        doc={"aws": {"platform_bucket": None}, "settings": {"session_policy_platform_folders": "syn-workspace"}}),
    Row("aws-unknown-key", 2, ["regoin", "did you mean"], doc={"aws": {"regoin": "us-east-1"}}),
    # -- entities -----------------------------------------------------------------------
    Row("sa-role-arn-malformed", 2, ["service_account \"sa-finance\" field \"role_arn\"", "\"Finance\" is not an ARN", "use the ARN of the IAM role"],
        edit=lambda d: sa(d, 0).update(role_arn="Finance")),
    Row("sa-no-identity", 2, ["service_account \"sa-empty\"", "neither role_arn nor static keys are given", "add role_arn"], edit=append_to("service_accounts", {"id": "sa-empty"})),
    Row("sa-duration-out-of-range", 2, ["service_account \"sa-finance\"", "duration_seconds", "100 is not a duration from 900 to 43200", "use a value"],
        edit=lambda d: sa(d, 0).update(duration_seconds=100)),
    Row("sa-inline-secret", 2, ["service_account \"sa-legacy\"", "secret_access_key", "inline value", '{"env": "VARIABLE"}'],
        edit=lambda d: sa(d, 2).update(secret_access_key=INLINE_SECRET)),
    Row("sa-secret-file-relative", 2, ["secret_access_key", "\"keys/secret\" is not an absolute path", "use an absolute path"],
        edit=lambda d: sa(d, 2).update(secret_access_key={"file": "keys/secret"})),
    Row("sa-secret-env-name-invalid", 2, ["access_key_id", "\"1BAD-NAME\" is not an environment variable name", "use letters, digits and underscores"],
        edit=lambda d: sa(d, 2).update(access_key_id={"env": "1BAD-NAME"})),
    Row("sa-duplicate-id", 2, ["duplicate service_account id \"sa-finance\"", "give each entity a unique id"],
        edit=append_to("service_accounts", {"id": "sa-finance", "role_arn": "arn:aws:iam::123456789012:role/Other"})),
    Row("workspace-unknown-service-account", 2, ["workspace \"ws-finance\"", "service_account", "unknown service account \"sa-fin\"", "sa-finance"],
        edit=lambda d: d["workspaces"][0].update(service_account="sa-fin")),
    Row("workspace-duplicate-id", 2, ["duplicate workspace id \"ws-open\"", "give each entity a unique id"], edit=append_to("workspaces", {"id": "ws-open"})),
    Row("workspace-without-id", 2, ["workspaces[2]", "missing field `id`", "add the field"],
        edit=append_to("workspaces", {"service_account": "sa-finance"})),
    Row("runtime-template-unknown-service-account", 2, ["runtime_template \"rt-etl\"", "unknown service account \"sa-nope\"", "use one of sa-etl, sa-finance, sa-legacy"],
        edit=lambda d: d["runtime_templates"][1].update(service_account="sa-nope")),
    Row("user-unknown-data-plane", 2, ["user \"alice\"", "unknown data plane \"dp-sales\"", "dp-marketing"],
        edit=lambda d: d["users"][0].update(data_planes=["dp-sales"])),
    Row("user-id-invalid", 2, ["user \"al ice\" field \"id\"", "is invalid", "fix: use the platform's user id"], edit=append_to("users", {"id": "al ice"})),
    Row("data-plane-not-s3-uri", 2, ["data_plane \"dp-marketing\"", "\"http://acme-data/marketing/\" is not an S3 URI", "write locations as s3://bucket/prefix/"],
        edit=lambda d: d["data_planes"][0].update(s3=["http://acme-data/marketing/"])),
    Row("data-plane-wildcard", 2, ["data_plane \"dp-marketing\"", "contains '*'", "use a plain folder path"],
        edit=lambda d: d["data_planes"][0].update(s3=["s3://acme-data/mark*/"])),
    Row("data-plane-s3-not-a-list", 2, ["data_planes[0]", "s3", "expected a sequence"],
        edit=lambda d: d["data_planes"][0].update(s3="s3://acme-data/marketing/")),
    # -- settings from the environment --------------------------------------------------
    Row("env-enabled-not-boolean", 2, ["SYNTASA_SESSION_POLICY_ENABLED", "\"perhaps\" is not a boolean", "use \"true\" or \"false\""],
        env={"SYNTASA_SESSION_POLICY_ENABLED": "perhaps"}),
    Row("env-duration-too-short", 2, ["SYNTASA_SESSION_POLICY_DURATION", "\"10\"", "use a value from 900 to 43200"], env={"SYNTASA_SESSION_POLICY_DURATION": "10"}),
    Row("env-deadline-not-number", 2, ["STS_DEADLINE_SECONDS", "\"soon\"", "use a value from 1 to 300"], env={"STS_DEADLINE_SECONDS": "soon"}),
    Row("env-region-invalid", 2, ["REGION", "\"nowhere\" is not an AWS region", "use a region name"], env={"REGION": "nowhere"}),
    Row("env-role-arn-invalid", 2, ["SESSION_POLICY_ROLE_ARN", "\"not-an-arn\" is not an ARN", "use the ARN"], env={"SESSION_POLICY_ROLE_ARN": "not-an-arn"}),
    Row("env-sts-endpoint-invalid", 2, ["STS_ENDPOINT", "is not an http(s) URL", "use a URL"], env={"STS_ENDPOINT": "file:///etc/passwd"}),
    Row("env-platform-config-missing", 2, ["/nonexistent/platform.json", "SYN_PLATFORM_CONFIG"],
        args=["kernel", "--", "/bin/true"], env={"SYN_PLATFORM_CONFIG": "/nonexistent/platform.json"}),
    # -- the launch context --------------------------------------------------------------
    Row("context-no-user", 2, ["no user given", "--user", "SYN_USER"], env={"SYN_USER": None}),
    Row("context-user-invalid", 2, ["user: id \"al ice\" is invalid", "fix the value the platform passes"], env={"SYN_USER": "al ice"}),
    Row("context-user-flag-empty", 2, ["user: id \"\" is invalid", "fix the value"], args=["kernel", "--config", "{config}", "--user", "", "--", "/bin/true"]),
    Row("context-flow-unknown", 2, ["SYN_FLOW", "unknown flow \"batch\"", "notebook-run"], env={"SYN_FLOW": "batch"}),
    Row("context-workspace-invalid", 2, ["workspace: id \"ws/../x\" is invalid", "fix the value the platform passes"], env={"SYN_WORKSPACE_ID": "ws/../x"}),
    Row("context-workspace-unknown", 2, ["UNKNOWN_WORKSPACE", "ws-nope", "add the workspace"], env={"SYN_WORKSPACE_ID": "ws-nope"}),
    Row("context-runtime-template-unknown", 2, ["UNKNOWN_RUNTIME_TEMPLATE", "rt-nope", "add the runtime template"], env={"SYN_RUNTIME_TEMPLATE_ID": "rt-nope"}),
    Row("context-user-unknown", 3, ["UNKNOWN_USER", "mallory", "add the user"], env={"SYN_USER": "mallory"}),
    # -- provisioner's arguments ---------------------------------------------------------
    Row("args-none", 2, ["no subcommand given", "explain, kernel, kernelspec"], args=[]),
    Row("args-unknown-subcommand", 2, ["unrecognized subcommand 'launch'", "provisioner <COMMAND>"], args=["launch"]),
    Row("args-kernel-without-argv", 2, ["<ARGV>", "provisioner kernel --config <PATH> -- <ARGV>"], args=["kernel", "--config", "{config}"]),
    Row("args-flow-unknown", 2, ["unknown flow \"batch\"", "notebook, notebook-run or job"], args=["explain", "--flow", "batch"]),
    Row("args-unknown-option", 2, ["unexpected argument '--verbose'", "provisioner explain [OPTIONS]"], args=["explain", "--verbose"]),
    Row("args-option-without-value", 2, ["'--user <ID>'", "none was supplied", "--help"], args=["explain", "--user"]),
    Row("args-option-twice", 2, ["'--json' cannot be used multiple times", "the usage is `provisioner explain [OPTIONS]`"], args=["explain", "--json", "--json"]),
    Row("args-kernel-program-missing", 127, ["program \"no-such-kernel-program\" not found", "install it", "full path in the kernelspec"],
        args=["kernel", "--config", "{config}", "--", "no-such-kernel-program"], env=NO_MINT),
    Row("args-kernel-program-not-executable", 126, ["{tmp}/not-executable", "permission denied", "chmod +x"],
        args=["kernel", "--config", "{config}", "--", "{tmp}/not-executable"], files={"not-executable": ("#!/bin/sh\n", 0o644)},
        env=NO_MINT),
    # -- kernelspecs -----------------------------------------------------------------------
    Row("kernelspec-no-subcommand", 2, ["no subcommand given", "install, wrap, list"], args=["kernelspec"]),
    Row("kernelspec-wrap-unknown", 2, ["no kernelspec \"nonexistent-kernel\"", "install it first"],
        args=["kernelspec", "wrap", "nonexistent-kernel", "--dir", "{tmp}/jupyter"]),
    Row("kernelspec-wrap-without-name", 2, ["<EXISTING>", "provisioner kernelspec wrap <EXISTING>"], args=["kernelspec", "wrap"]),
    Row("kernelspec-install-dir-is-a-file", 2, ["cannot create {tmp}/a-file/kernels", "choose another location"],
        args=["kernelspec", "install", "--dir", "{tmp}/a-file", "--config", "{config}"], files={"a-file": ("x", 0o644)}),
    Row("kernelspec-install-bad-name", 2, ["kernelspec name \"bad name!\" is invalid", "use ASCII letters, digits"],
        args=["kernelspec", "install", "--dir", "{tmp}/jupyter", "--name", "bad name!", "--config", "{config}"]),
    Row("kernelspec-install-provisioner-not-executable", 2, ["{tmp}/not-executable", "--provisioner"],
        args=["kernelspec", "install", "--dir", "{tmp}/jupyter", "--provisioner", "{tmp}/not-executable"],
        files={"not-executable": ("#!/bin/sh\n", 0o644)}),
    Row("kernelspec-install-two-locations", 2, ["'--user' cannot be used with '--prefix <PATH>'", "the usage is"],
        args=["kernelspec", "install", "--user", "--prefix", "{tmp}/p", "--config", "{config}"]),
    Row("kernelspec-wrap-invalid-kernel-json", 2, ["{tmp}/src/kernels/broken/kernel.json is not valid JSON", "fix or remove that kernelspec"],
        args=["kernelspec", "wrap", "broken", "--dir", "{tmp}/out", "--from-dir", "{tmp}/src"],
        files={"src/kernels/broken/kernel.json": ("{not json", 0o644)}),
    # -- connection files of a refused kernel launch --------------------------------------
    Row("connection-file-missing", 3, ["cannot read the kernel connection file", "{tmp}/cf.json", "start the kernel from Jupyter"],
        args=CF_KERNEL, env={"SYN_USER": "mallory"}, lines=2),
    Row("connection-file-not-json", 3, ["{tmp}/cf.json", "is not usable", "start the kernel from Jupyter"],
        args=CF_KERNEL, env={"SYN_USER": "mallory"}, files={"cf.json": ("{nope", 0o600)}, lines=2),
    Row("connection-file-ipc-transport", 3, ["transport \"ipc\" is not supported", "start the kernel from Jupyter"],
        args=CF_KERNEL, env={"SYN_USER": "mallory"}, files=cf(transport="ipc"), lines=2),
    Row("connection-file-port-zero", 3, ["shell_port is 0", "start the kernel from Jupyter"], args=CF_KERNEL, env={"SYN_USER": "mallory"},
        files=cf(shell_port=0), lines=2),
    Row("connection-file-port-missing", 3, ["{tmp}/cf.json is not usable", "missing field `hb_port`", "start the kernel from Jupyter"], args=CF_KERNEL, env={"SYN_USER": "mallory"},
        files=cf(hb_port=None), lines=2),
    Row("connection-file-signature-scheme", 3, ["signature_scheme \"hmac-md5\" is not supported", "start the kernel from Jupyter"],
        args=CF_KERNEL, env={"SYN_USER": "mallory"}, files=cf(signature_scheme="hmac-md5"), lines=2),
    Row("connection-file-key-not-string", 3, ["key is not a string", "start the kernel from Jupyter"], args=CF_KERNEL, env={"SYN_USER": "mallory"},
        files=cf(key=12345), lines=2),
    # -- spark-submit-wrap ---------------------------------------------------------------
    Row("wrap-no-user", 2, ["no user given", "set SYN_USER in the job's environment"], bin="wrap", env={"SYN_USER": None}),
    Row("wrap-config-missing", 2, ["{tmp}/nope.json", "cannot be read", "pass --wrap-config PATH"], bin="wrap",
        args=["--wrap-config", "{tmp}/nope.json", "--master", "local[1]", "app.py"]),
    Row("wrap-config-without-value", 2, ["--wrap-config needs a value", "--wrap-config PATH"], bin="wrap", args=["--wrap-config"]),
    Row("wrap-unknown-wrapper-option", 2, ["unknown wrapper option --wrap-bogus", "--wrap-explain"], bin="wrap",
        args=["--wrap-bogus", "--wrap-config", "{config}", "app.py"]),
    Row("wrap-platform-invalid", 2, ["service_account_failure", "\"ignore\"", "use \"fallback\" or \"deny\""], bin="wrap",
        doc={"settings": {"service_account_failure": "ignore"}}),
    Row("wrap-user-unknown", 3, ["UNKNOWN_USER", "mallory", "add the user"], bin="wrap", env={"SYN_USER": "mallory"}),
    Row("wrap-runtime-template-unknown", 2, ["UNKNOWN_RUNTIME_TEMPLATE", "rt-nope", "add the runtime template"], bin="wrap",
        env={"SYN_RUNTIME_TEMPLATE_ID": "rt-nope"}),
    Row("wrap-spark-submit-not-found", 127, ["spark-submit was not found", "SPARK_HOME"], bin="wrap",
        env={"SPARK_HOME": None, "PATH": "/usr/bin:/bin", "SYNTASA_SESSION_POLICY_ENABLED": "false"}),
    Row("wrap-real-not-executable", 127, ["SPARK_SUBMIT_WRAP_REAL={tmp}/not-executable", "not an executable file"], bin="wrap",
        env={**NO_MINT, "SPARK_SUBMIT_WRAP_REAL": "{tmp}/not-executable"}, files={"not-executable": ("#!/bin/sh\n", 0o644)}),
    Row("wrap-real-is-itself", 2, ["is this wrapper itself", "Spark's bin/spark-submit"], bin="wrap",
        env={**NO_MINT, "SPARK_SUBMIT_WRAP_REAL": "{wrap}"}),
    Row("wrap-properties-file-missing", 2, ["--properties-file {tmp}/nope.properties", "fix the path"], bin="wrap",
        env={"SYN_PROVISIONED": "tier=session_policy;expiration=2099-01-01T00:00:00Z;user=alice",
             "AWS_SESSION_TOKEN": "kernel-session-token"},
        args=["--wrap-config", "{config}", "--properties-file", "{tmp}/nope.properties", "app.py"]),
    Row("wrap-marker-malformed", 2, ["SYN_PROVISIONED", "\"garbage\"", "launch through provisioner again"], bin="wrap",
        env={"SYN_PROVISIONED": "garbage"}),
    Row("wrap-marker-without-credentials", 4, ["CREDENTIALS_UNAVAILABLE", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set", "restart the kernel"], bin="wrap",
        env={"SYN_PROVISIONED": "tier=session_policy;expiration=2099-01-01T00:00:00Z;user=alice",
             "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}),
    Row("wrap-loop-guard", 2, ["would run itself in a loop", "SPARK_SUBMIT_WRAP_DEPTH=99", "set SPARK_SUBMIT_WRAP_REAL"], bin="wrap", env={"SPARK_SUBMIT_WRAP_DEPTH": "99"}),
]


def test_the_table_is_large_enough():
    assert len(ROWS) >= 60
    assert len({r.id for r in ROWS}) == len(ROWS), "row ids must be unique"
    thin = [r.id for r in ROWS if len(r.words) < 2]
    assert not thin, f"each row names the problem and the fix: {thin}"


def fill(value, tmp_path, config, wrap_path):
    return (str(value).replace("{tmp}", str(tmp_path)).replace("{config}", str(config))
            .replace("{wrap}", str(wrap_path)))


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_bad_input(row, tmp_path, provisioner, spark_submit_wrap):
    log = tmp_path / "decisions.jsonl"
    doc = dict(row.doc)
    settings = {"syntasa_session_policy_enabled": "true", **doc.pop("settings", {})}
    config = fault_platform(tmp_path, DEAD_ENDPOINT, log=log, settings=settings, **doc)
    if row.edit or row.text is not None:
        if row.text is not None:
            data = row.text.encode() if isinstance(row.text, str) else row.text
            config.write_bytes(data)
        else:
            doc = json.loads(config.read_text())
            row.edit(doc)
            config.write_text(json.dumps(doc, indent=2))
    for name, (content, mode) in row.files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        p.chmod(mode)
    home = standin_spark_home(tmp_path)
    env = launcher_env(SYN_USER="alice", SPARK_HOME=home, STANDIN_OUT=tmp_path / "spark-ran.json",
                       JUPYTER_DATA_DIR=tmp_path / "jupyter-data", JUPYTER_PATH=tmp_path / "jupyter-path",
                       HOME=tmp_path / "home")
    for k, v in row.env.items():
        env[k] = None if v is None else fill(v, tmp_path, config, spark_submit_wrap.path)
    if row.bin == "wrap":
        binary = spark_submit_wrap.path
        args = row.args if row.args is not None else ["--wrap-config", "{config}", "--master", "local[1]", "app.py"]
    else:
        binary = provisioner.path
        args = row.args if row.args is not None else KERNEL
    argv = [binary, *(fill(a, tmp_path, config, spark_submit_wrap.path) for a in args)]

    code, out, err, elapsed = run_timed(argv, env, timeout=20)

    everything = out + err
    assert "panicked at" not in everything and "RUST_BACKTRACE" not in everything, everything
    assert "Traceback" not in everything, everything
    assert code == row.code, f"exit {code}, expected {row.code}; stderr: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == row.lines, f"expected {row.lines} line(s) on stderr, got:\n{err}"
    for line in lines:
        assert line.startswith(("provisioner: ", "spark-submit-wrap: ")), line
    message = lines[-1]
    for w in row.words:
        w = fill(w, tmp_path, config, spark_submit_wrap.path)
        assert w in message, f"{w!r} not in: {message}"
    assert INLINE_SECRET not in everything and LAUNCHER_SECRET not in everything
    assert not (tmp_path / "spark-ran.json").exists(), "spark-submit must not run on bad input"
    assert elapsed < 10, "bad input must fail fast"
