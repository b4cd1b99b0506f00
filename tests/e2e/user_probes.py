"""Code that runs as a test user: inside that user's kernels, or as that user's own
program. The tests copy this file into the users' shared directory; kernels import it.

It is what a hostile notebook user would try against the broker: other users' data with
the kernel's own credentials, the base secret in every readable /proc/*/environ, the
installed launcher with another user's name (flags and the variables Jupyter and
JupyterHub set), a workspace reserved for another user, and the broker's wire protocol
spoken by hand. Every function returns plain facts (exit codes, error codes, booleans,
the first line of an error), never a secret value, and never raises for an expected
failure: the tests decide what is acceptable.

Only the standard library, boto3 and s3fs (in the users' virtualenv) are used.
"""

import json
import os
import socket
import struct
import subprocess
import sys

# A child that reports the credentials it was given, for the launcher to exec.
DUMP_ENV = (
    "import json, os; print('ENV ' + json.dumps({k: v for k, v in os.environ.items() "
    "if k.startswith(('AWS_', 'SYN_', 'PROVISIONER_'))}))"
)


def _s3(creds=None, endpoint=None):
    import boto3
    from botocore.config import Config

    kw = {}
    if creds is not None:
        kw = {
            "aws_access_key_id": creds.get("AWS_ACCESS_KEY_ID"),
            "aws_secret_access_key": creds.get("AWS_SECRET_ACCESS_KEY"),
            "aws_session_token": creds.get("AWS_SESSION_TOKEN"),
        }
    return boto3.client(
        "s3",
        endpoint_url=endpoint or os.environ.get("AWS_ENDPOINT_URL"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                      connect_timeout=5, read_timeout=20),
        **kw,
    )


def attempt(call):
    """'OK', or the S3 error code (HTTP status when radosgw gives no code), or
    'ERROR <type>' for anything else (no credentials, connection refused...)."""
    from botocore.exceptions import ClientError

    try:
        call()
        return "OK"
    except ClientError as e:
        return e.response["Error"].get("Code") or str(e.response["ResponseMetadata"]["HTTPStatusCode"])
    except Exception as e:  # noqa: BLE001 - reported, the test decides
        return f"ERROR {type(e).__name__}"


def planes(bucket, own_prefix, other_prefix, creds=None):
    """What the given credentials (else the process's own) can do on both planes."""
    s3 = _s3(creds)
    return {
        "read_own": attempt(lambda: s3.get_object(Bucket=bucket, Key=f"{own_prefix}data.csv")["Body"].read()),
        "list_own": attempt(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=own_prefix)),
        "read_other": attempt(lambda: s3.get_object(Bucket=bucket, Key=f"{other_prefix}data.csv")["Body"].read()),
        "list_other": attempt(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=other_prefix)),
        "write_other": attempt(lambda: s3.put_object(Bucket=bucket, Key=f"{other_prefix}planted.csv", Body=b"x")),
    }


def _s3fs_error(e):
    """'<exception type>:<S3 error code>' for an s3fs failure (s3fs turns S3's errors
    into Python ones, e.g. AccessDenied into PermissionError, and chains the original)."""
    cause = e.__cause__ or e.__context__
    code = getattr(cause, "response", {}).get("Error", {}).get("Code") if cause is not None else None
    return f"{type(e).__name__}:{code or ''}"


def s3fs_worker(p, stop, out):
    """What a data scientist's s3fs (fsspec) code does in the same kernel, until `stop` is
    set: one S3FileSystem, no keys given (its credentials come from the container
    endpoint in the environment, as boto3's do), listing, reading and writing its own
    plane every `every` seconds. Fills `out` with the rounds, the distinct access keys
    its refreshing credentials went through, every failed operation (with the time),
    whether what it wrote read back, and what reading, listing and writing the other
    plane gave."""
    import time

    import s3fs
    from fsspec.asyn import sync

    env = os.environ
    fs = s3fs.S3FileSystem(
        endpoint_url=env.get("AWS_ENDPOINT_URL"),
        client_kwargs={"region_name": env.get("AWS_REGION", "us-east-1")},
        config_kwargs={"s3": {"addressing_style": "path"}, "connect_timeout": 5, "read_timeout": 20},
        skip_instance_cache=True, use_listings_cache=False)
    bucket, own = p["bucket"], p["own_prefix"]
    keys, failures, n, read_back, listed = [], [], 0, [], []
    creds = None
    while not stop.is_set():
        n += 1
        key = f"{bucket}/{own}s3fs/{n}.txt"
        body = f"round {n}".encode()
        for op, call in (
            ("s3fs-list", lambda: listed.append(f"{bucket}/{own}data.csv" in fs.ls(f"{bucket}/{own}", detail=False))),
            ("s3fs-read", lambda: fs.cat_file(f"{bucket}/{own}data.csv")),
            ("s3fs-write", lambda: fs.pipe_file(key, body)),
            ("s3fs-read-back", lambda: read_back.append(fs.cat_file(key) == body)),
        ):
            try:
                call()
            except Exception as e:  # noqa: BLE001 - reported, the test decides
                failures.append({"t": time.time(), "op": op, "error": _s3fs_error(e)})
        try:
            if creds is None and fs.session is not None:
                creds = sync(fs.loop, fs.session.get_credentials)
            if creds is not None:
                keys.append(sync(fs.loop, creds.get_frozen_credentials).access_key)
        except Exception as e:  # noqa: BLE001 - reported
            failures.append({"t": time.time(), "op": "s3fs-credentials", "error": type(e).__name__})
        stop.wait(p["every"])
    other_prefix = f"{bucket}/{p['other_prefix']}"
    other = {}
    for op, call in (
        ("read", lambda: fs.cat_file(f"{other_prefix}data.csv")),
        ("list", lambda: fs.ls(other_prefix)),
        ("write", lambda: fs.pipe_file(f"{other_prefix}s3fs-planted.txt", b"x")),
    ):
        try:
            call()
            other[op] = "OK"
        except Exception as e:  # noqa: BLE001 - reported
            other[op] = _s3fs_error(e)
    out.update(rounds=n, distinct_keys=len(set(keys)), failures=failures,
               provider=getattr(creds, "method", None), other=other,
               listed=sum(listed), read_back=sum(read_back))


def refreshing_reader(p):
    """A long-running kernel's work: one boto3 session and client kept for `seconds`,
    reading, listing and writing its own plane every `every` seconds. Reports the
    credential variables it was given, its token file's mode and owner, how many
    distinct access keys the client's refreshing credentials went through, and every
    operation that failed (with the time), so the test can see work continue across the
    credentials' expiries and a broker restart. With `s3fs` set, an s3fs filesystem
    works the same plane at the same time in the same kernel (`s3fs_worker`); its
    report is under "s3fs"."""
    import stat
    import threading
    import time

    import boto3
    from botocore.config import Config

    env = os.environ
    tf = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    st = os.lstat(tf) if tf else None
    with open(tf, "rb") if tf else open(os.devnull, "rb") as f:
        token = f.read()
    out = {"uid": os.getuid(), "aws_vars": sorted(k for k in env if k.startswith("AWS_")),
           "uri": env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
           "token_file": tf, "token_mode": stat.S_IMODE(st.st_mode) if st else None,
           "token_uid": st.st_uid if st else None, "token_newline": token.endswith(b"\n")}
    session = boto3.session.Session()
    s3 = session.client("s3", endpoint_url=env.get("AWS_ENDPOINT_URL"),
                        region_name=env.get("AWS_REGION", "us-east-1"),
                        config=Config(s3={"addressing_style": "path"},
                                      connect_timeout=5, read_timeout=20))
    creds = session.get_credentials()
    out["provider"] = getattr(creds, "method", None)
    keys, failures, n = [], [], 0
    bucket, own = p["bucket"], p["own_prefix"]
    stop, fs_out, worker = threading.Event(), {}, None
    if p.get("s3fs"):
        def run_s3fs():
            try:
                s3fs_worker(p, stop, fs_out)
            except Exception as e:  # noqa: BLE001 - reported
                fs_out["error"] = f"{type(e).__name__}: {e}"
        worker = threading.Thread(target=run_s3fs, daemon=True)
        worker.start()
    end = time.time() + p["seconds"]
    while time.time() < end:
        n += 1
        try:
            keys.append(creds.get_frozen_credentials().access_key)
        except Exception as e:  # noqa: BLE001 - reported
            failures.append({"t": time.time(), "op": "credentials", "error": type(e).__name__})
        for op, call in (
            ("read", lambda: s3.get_object(Bucket=bucket, Key=f"{own}data.csv")["Body"].read()),
            ("list", lambda: s3.list_objects_v2(Bucket=bucket, Prefix=own)),
            ("write", lambda: s3.put_object(Bucket=bucket, Key=f"{own}out/{n}.txt", Body=b"x")),
        ):
            r = attempt(call)
            if r != "OK":
                failures.append({"t": time.time(), "op": op, "error": r})
        time.sleep(p["every"])
    if worker is not None:
        stop.set()
        worker.join(timeout=60)
        out["s3fs"] = fs_out
    out.update(rounds=n, distinct_keys=len(set(keys)), failures=failures,
               other=attempt(lambda: s3.get_object(Bucket=bucket, Key=f"{p['other_prefix']}data.csv")),
               end=time.time())
    return out


def identity():
    """Who this process is and which credentials it holds (key id only)."""
    return {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "user": os.environ.get("USER"),
        "key_id": os.environ.get("AWS_ACCESS_KEY_ID"),
        "has_secret": bool(os.environ.get("AWS_SECRET_ACCESS_KEY")),
        "has_token": bool(os.environ.get("AWS_SESSION_TOKEN")),
        "marker": {k: v for k, v in os.environ.items() if k.startswith("SYN_") and "PROVISION" in k},
        "syn": {k: v for k, v in os.environ.items() if k.startswith("SYN_")},
    }


def scan_proc(needles, canary=None):
    """Reads every /proc/*/environ and /proc/*/cmdline this process may read. Returns how
    many it read, the pids whose environ or cmdline holds any of `needles`, and whether
    `canary` (a value put in this user's own processes' environment by the test) was
    seen: the control that shows the scan can find what is there."""
    readable = 0
    hits = []
    canary_pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        for name in ("environ", "cmdline"):
            try:
                with open(f"/proc/{entry}/{name}", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if name == "environ":
                readable += 1
            if any(n.encode() in data for n in needles if n):
                hits.append(f"{entry}/{name}")
            if canary and canary.encode() in data:
                canary_pids.append(int(entry))
    own = "\n".join(f"{k}={v}" for k, v in os.environ.items())
    return {
        "environ_read": readable,
        "hits": hits,
        "own_env_hit": any(n in own for n in needles if n),
        "canary_seen": bool(canary_pids),
    }


def planes_of(p):
    """This process's identity and reach on both planes; with p["secrets"], also the
    /proc scan for them."""
    out = {"identity": identity(), "planes": planes(p["bucket"], p["own_prefix"], p["other_prefix"])}
    if p.get("secrets"):
        out["proc"] = scan_proc(p["secrets"], p.get("canary"))
    return out


def scan(p):
    """scan_proc for {"needles": [...], "canary": ...}."""
    return scan_proc(p.get("needles", []), p.get("canary"))


def _parse_env_dump(stdout):
    for line in stdout.splitlines():
        if line.startswith("ENV "):
            return json.loads(line[4:])
    return None


def launch(argv, env_overrides, bucket, own_prefix, other_prefix, timeout=60):
    """Runs the launcher (argv, exec'ing DUMP_ENV) with this process's environment plus
    `env_overrides` (None removes). Returns its exit code, first stderr line, whether the
    child ran, and -- if the child was given credentials -- what they reach."""
    env = dict(os.environ)
    for k, v in env_overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    # What the launcher must replace: start the child from an environment without keys
    # of its own, so any key it shows came from the launch.
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(k, None)
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"rc": "TIMEOUT"}
    child = _parse_env_dump(r.stdout)
    out = {
        "rc": r.returncode,
        "stderr": [ln for ln in r.stderr.splitlines() if ln.strip()][-6:],
        "child_ran": child is not None,
        "child_has_secret": bool(child and child.get("AWS_SECRET_ACCESS_KEY")),
        "child_key_id": child.get("AWS_ACCESS_KEY_ID") if child else None,
        "child_syn": {k: v for k, v in (child or {}).items() if k.startswith("SYN_")},
    }
    if out["child_has_secret"]:
        out["reach"] = planes(bucket, own_prefix, other_prefix, child)
    return out


def _frame(doc):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return struct.pack(">I", len(body)) + body


def _read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def raw_request(socket_path, doc, timeout=15):
    """One request written by hand on the broker's socket. Returns a summary of the
    answer: ok, error code/exit code/message, whether credentials came back, and the
    user the record names; secrets are summarised, never returned."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(_frame(doc))
            head = _read_exact(s, 4)
            if head is None:
                return {"closed": True}
            (n,) = struct.unpack(">I", head)
            body = _read_exact(s, n)
    except OSError as e:
        return {"os_error": f"{type(e).__name__}: {e}"}
    if body is None:
        return {"closed": True}
    answer = json.loads(body)
    creds = answer.get("credentials") if isinstance(answer, dict) else None
    record = answer.get("record") if isinstance(answer, dict) else None
    error = answer.get("error") if isinstance(answer, dict) else None
    return {
        "ok": answer.get("ok") if isinstance(answer, dict) else None,
        "error_code": (error or {}).get("code"),
        "exit_code": (error or {}).get("exit_code"),
        "message": (error or {}).get("message"),
        "credentials": bool(creds),
        "credentials_value": creds,  # kept only in the kernel: the test never prints it
        "record_user": (record or {}).get("user"),
        "record_tier": (record or {}).get("tier"),
        "answer_keys": sorted(answer) if isinstance(answer, dict) else None,
    }


def _creds_env(creds):
    """Credentials from a protocol answer as AWS_* variables (field names as the broker
    sends them: either already AWS_* names or AccessKeyId-style)."""
    if not isinstance(creds, dict):
        return {}
    pick = lambda *names: next((creds[n] for n in names if creds.get(n)), None)  # noqa: E731
    return {
        "AWS_ACCESS_KEY_ID": pick("AWS_ACCESS_KEY_ID", "access_key_id", "AccessKeyId"),
        "AWS_SECRET_ACCESS_KEY": pick("AWS_SECRET_ACCESS_KEY", "secret_access_key", "SecretAccessKey"),
        "AWS_SESSION_TOKEN": pick("AWS_SESSION_TOKEN", "session_token", "SessionToken", "Token"),
    }


def hostile(p):
    """Every attack of a user's kernel against another user, in one call.

    p: bucket, own_prefix, other_prefix, socket, provisioner, python, me, victim,
    victim_workspace, secrets (the base credential values to look for), canary,
    readable_config (a platform file this user can read, for the embedded-mode try)."""
    bucket, mine, theirs = p["bucket"], p["own_prefix"], p["other_prefix"]
    prov, sock, py = p["provisioner"], p["socket"], p["python"]
    victim = p["victim"]
    dump = [py, "-c", DUMP_ENV]
    out = {"identity": identity(), "planes": planes(bucket, mine, theirs)}
    out["proc"] = scan_proc(p["secrets"], p.get("canary"))

    launches = {
        "flag_user": ([prov, "kernel", "--broker", sock, "--user", victim, "--", *dump], {}),
        "env_socket_flag_user": ([prov, "kernel", "--user", victim, "--", *dump],
                                 {"SYN_BROKER_SOCKET": sock}),
        "syn_user": ([prov, "kernel", "--broker", sock, "--", *dump], {"SYN_USER": victim}),
        "kernel_username": ([prov, "kernel", "--broker", sock, "--", *dump],
                            {"KERNEL_USERNAME": victim, "SYN_USER": None}),
        "jupyterhub_user": ([prov, "kernel", "--broker", sock, "--", *dump],
                            {"JUPYTERHUB_USER": victim, "SYN_USER": None, "KERNEL_USERNAME": None}),
        "all_three": ([prov, "kernel", "--broker", sock, "--", *dump],
                      {"SYN_USER": victim, "KERNEL_USERNAME": victim, "JUPYTERHUB_USER": victim}),
        "victim_workspace": ([prov, "kernel", "--broker", sock, "--workspace",
                              p["victim_workspace"], "--", *dump], {}),
        "victim_workspace_env": ([prov, "kernel", "--broker", sock, "--", *dump],
                                 {"SYN_WORKSPACE_ID": p["victim_workspace"]}),
        "flow_job_as_victim": ([prov, "kernel", "--broker", sock, "--flow", "notebook-run",
                                "--user", victim, "--", *dump], {}),
        "own_launch": ([prov, "kernel", "--broker", sock, "--", *dump], {}),
    }
    if p.get("readable_config"):
        # Embedded mode, without the broker: this user has no base credentials to mint with.
        launches["embedded_as_victim"] = (
            [prov, "kernel", "--config", p["readable_config"], "--user", victim, "--", *dump],
            {"SYN_BROKER_SOCKET": None})
    out["launch"] = {name: launch(argv, env, bucket, mine, theirs)
                     for name, (argv, env) in launches.items()}

    explains = {
        "explain_victim": [prov, "explain", "--broker", sock, "--user", victim, "--json"],
        "explain_victim_workspace": [prov, "explain", "--broker", sock, "--workspace",
                                     p["victim_workspace"], "--json"],
    }
    out["explain"] = {}
    for name, argv in explains.items():
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        try:
            doc = json.loads(r.stdout)
        except json.JSONDecodeError:
            doc = None
        out["explain"][name] = {
            "rc": r.returncode,
            "stderr": [ln for ln in r.stderr.splitlines() if ln.strip()][-4:],
            "record_user": doc.get("user") if isinstance(doc, dict) else None,
            "printed_policy": bool(isinstance(doc, dict) and doc.get("policy")),
        }

    ctx = lambda **kw: {"user": victim, "workspace": None, "runtime_template": None,  # noqa: E731
                        "flow": "notebook", **kw}
    raw = {
        "launch_as_victim": {"version": 1, "op": "launch", "context": ctx()},
        "explain_as_victim": {"version": 1, "op": "explain", "context": ctx()},
        "launch_victim_workspace": {"version": 1, "op": "launch",
                                    "context": ctx(workspace=p["victim_workspace"])},
        "launch_victim_job": {"version": 1, "op": "launch", "context": ctx(flow="job")},
        "launch_victim_with_peer_claim": {
            "version": 1, "op": "launch", "context": ctx(),
            "peer": {"uid": 0, "user": victim}, "uid": 0, "authenticated_user": victim},
        "launch_root": {"version": 1, "op": "launch", "context": ctx(user="root")},
        "own_user_victim_workspace": {"version": 1, "op": "launch",
                                      "context": ctx(workspace=p["victim_workspace"], user=p["me"])},
    }
    out["raw"] = {}
    for name, doc in raw.items():
        answer = raw_request(sock, doc)
        creds = answer.pop("credentials_value", None)
        if creds:
            answer["reach"] = planes(bucket, mine, theirs, _creds_env(creds))
        out["raw"][name] = answer
    # Control: the same hand-written request for oneself is answered with credentials.
    own = raw_request(sock, {"version": 1, "op": "launch", "context": ctx(user=p["me"])})
    own_creds = own.pop("credentials_value", None)
    if own_creds:
        own["reach"] = planes(bucket, mine, theirs, _creds_env(own_creds))
    out["raw_own"] = own
    return out


def _https_get(url, token, ca):
    """GET with a bearer token, trusting only the CA file `ca`: (status, JSON body), or
    (0, error text) when no HTTP answer came."""
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context(cafile=ca)
    req = urllib.request.Request(url, headers={"Authorization": token})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "null")
    except Exception as e:  # noqa: BLE001 - reported, the test decides
        return 0, f"{type(e).__name__}: {e}"


def executor_handover(p):
    """What a launcher inside an endpoint-mode kernel does for executors on other hosts:
    asks the broker, with the kernel's own session token (the file
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names), for an application token and the HTTPS
    executor endpoint. Writes them to `p["handover"]` (0600) for the test to give to an
    executor, checks that the application token opens nothing on the kernel's loopback
    endpoint, then keeps the session alive until `p["done"]` exists."""
    import time
    import urllib.error
    import urllib.request

    with open(os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]) as f:
        session_token = f.read()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(15)
        s.connect(p["socket"])
        s.sendall(_frame({"version": 1, "op": "application_token",
                          "session_token": session_token}))
        (n,) = struct.unpack(">I", _read_exact(s, 4))
        answer = json.loads(_read_exact(s, n))
    out = {"ok": answer.get("ok"), "error": answer.get("error")}
    grant = answer.get("executor_endpoint")
    if answer.get("ok") and grant:
        fd = os.open(p["handover"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": grant["url"], "token": grant["token"],
                       "session_token": session_token}, f)
        req = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                                     headers={"Authorization": grant["token"]})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                out["loopback_with_application_token"] = {"status": r.status}
        except urllib.error.HTTPError as e:
            out["loopback_with_application_token"] = {"status": e.code,
                                                      "body": json.loads(e.read().decode())}
        out["url"] = grant["url"]
    end = time.time() + p.get("wait", 90)
    while not os.path.exists(p["done"]) and time.time() < end:
        time.sleep(0.2)
    return out


def executor_fetch(p):
    """An executor on another host: fetches the session's credentials from the HTTPS
    executor endpoint with the token in SYN_TEST_TOKEN, trusting only the CA `p["ca"]`,
    and reports what they reach on radosgw (own and other plane). Secrets are not
    returned."""
    status, body = _https_get(p["url"], os.environ["SYN_TEST_TOKEN"], p["ca"])
    out = {"status": status, "body": body if status != 200 else None}
    if status == 200:
        out["expiration"] = body.get("Expiration")
        out["reach"] = planes(p["bucket"], p["own_prefix"], p["other_prefix"],
                              _creds_env(body))
    return out


def ask_broker(p):
    """One hand-written request on the broker's socket (see raw_request)."""
    out = raw_request(p["socket"], p["doc"])
    out.pop("credentials_value", None)
    return out


def main():
    """`python user_probes.py FUNCTION JSON`: runs one probe as a program and prints its
    result as one JSON line (for tests that need no kernel)."""
    name, arg = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(globals()[name](arg)))


if __name__ == "__main__":
    main()
