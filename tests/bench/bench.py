#!/usr/bin/env python3
"""The benchmark harness behind scripts/bench: launch overhead, peak memory, binary
sizes, a throttled burst of launches, session-policy fit and spark-submit-wrap
overhead. Every figure of BENCHMARKS.md comes from one run of this file.

Method (see BENCHMARKS.md): every contender of a comparison runs in the same loop, in
a freshly shuffled order each round, so that machine noise hits all of them alike.
Children are started with posix_spawn and reaped with wait4 for the wall time from
spawn to exit. Overhead is median(launcher -> program) - median(program alone). Peak
memory is ru_maxrss from wait4 too, but taken by a small spawner (rss_spawn.rs): a
child of this Python process would inherit the harness's own resident pages in its
high-water mark (Linux keeps the mark across exec, which is also why it covers the
launcher and not only the program it exec'd).

Everything listens on and talks to 127.0.0.1 only. Every loop is bounded: a fixed
number of rounds, and a wall-clock limit on every child.

Usage: bench.py --provisioner BIN --wrap BIN --out DIR [--quick]
"""

import argparse
import json
import os
import platform as pyplatform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FAKE_STS = ROOT / "tests" / "stand_ins" / "fake_sts.py"
INSTANT_STS = HERE / "instant_sts.py"
PY_LAUNCHER = HERE / "python_launcher.py"

BASE_KEY = "AKIABENCHBASE0000000"
BASE_SECRET = "bench-base-secret-not-real"
LEGACY_KEY = "AKIABENCHSTATIC00000"
TRUE = "/bin/true"
CHILD_LIMIT_S = 60.0  # no single child may run longer than this

ROLE_SA = "arn:aws:iam::123456789012:role/analytics/FinanceAnalysts"
ROLE_ETL = "arn:aws:iam::123456789012:role/etl/NightlyEtl"
ROLE_INFRA = "arn:aws:iam::123456789012:role/PlatformInfraRole"

PLATFORM_FOLDERS = ("syn-workspace/{workspace},syn-app-logs,syn-cluster-config,syn-file-uploads/{user},"
                    "syn-volumes,syn-spark-history,syn-cluster-logs")

# Realistic data planes: (domain, dataset, landing source). Names in the style of a
# lake's warehouse and raw landing zones; Glue database <domain>_<dataset>.
PLANES = [
    ("marketing", "campaign_touchpoints", "salesforce_marketing_cloud"),
    ("finance", "general_ledger_daily", "sap_s4hana"),
    ("sales", "opportunity_pipeline", "salesforce_crm"),
    ("customer", "customer_360_profiles", "segment_events"),
    ("supply_chain", "inventory_snapshots", "manhattan_wms"),
    ("product", "feature_usage_events", "amplitude_export"),
    ("risk", "credit_exposure_monthly", "moodys_feed"),
    ("hr", "headcount_history", "workday_reports"),
    ("operations", "store_footfall_hourly", "sensormatic_counters"),
    ("logistics", "shipment_tracking", "project44_api"),
    ("ecommerce", "web_sessions_clickstream", "adobe_analytics"),
    ("support", "ticket_resolution", "zendesk_export"),
    ("pricing", "competitor_price_index", "dataweave_scrapes"),
    ("procurement", "supplier_invoices", "coupa_export"),
    ("merchandising", "assortment_plans", "blue_yonder"),
    ("loyalty", "member_transactions", "antavo_events"),
    ("fraud", "payment_risk_scores", "adyen_reports"),
    ("media", "ad_impressions_daily", "google_ads_api"),
    ("legal", "contract_obligations", "icertis_export"),
    ("it", "asset_inventory", "servicenow_cmdb"),
    ("energy", "meter_readings_15min", "smart_meter_mqtt"),
    ("quality", "inspection_results", "sap_qm"),
    ("retail", "pos_transactions", "ncr_pos_export"),
    ("treasury", "cash_positions", "kyriba_api"),
]

NAIVE_S3_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"]
NAIVE_GLUE_ACTIONS = ["glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables",
                      "glue:GetTableVersion", "glue:GetTableVersions", "glue:CreateTable", "glue:UpdateTable",
                      "glue:DeleteTable", "glue:BatchDeleteTable", "glue:GetPartition", "glue:GetPartitions",
                      "glue:BatchGetPartition", "glue:CreatePartition", "glue:BatchCreatePartition",
                      "glue:UpdatePartition", "glue:BatchUpdatePartition", "glue:DeletePartition",
                      "glue:BatchDeletePartition", "glue:GetUserDefinedFunction", "glue:GetUserDefinedFunctions"]


# ---------------------------------------------------------------------------------------
# small helpers

def pct(values, p):
    """Percentile p (0-100) with linear interpolation."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, data=None, timeout=10):
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    with opener.open(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_ready(url, proc, what):
    for _ in range(200):  # 10 s
        if proc.poll() is not None:
            sys.exit(f"bench: {what} exited at start (status {proc.returncode})")
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"bench: {what} did not answer {url} within 10 s")


def reap(pid, started, limit=CHILD_LIMIT_S):
    """Waits for one child with a wall-clock limit; returns (status, seconds, maxrss_kib)."""
    while True:
        got, status, ru = os.wait4(pid, os.WNOHANG)
        now = time.perf_counter()
        if got == pid:
            return os.waitstatus_to_exitcode(status), now - started, ru.ru_maxrss
        if now - started > limit:
            os.kill(pid, signal.SIGKILL)
            _, status, ru = os.wait4(pid, 0)
            return -9, now - started, ru.ru_maxrss
        time.sleep(0.0002)


DEVNULL_ACTIONS = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]


def run_once(argv, env):
    """Spawn argv (absolute path), wait; (exit code, seconds, peak RSS KiB)."""
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=DEVNULL_ACTIONS)
    return reap(pid, started)


def run_capture(argv, env, timeout=CHILD_LIMIT_S):
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)


# ---------------------------------------------------------------------------------------
# setup

class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.prov = str(Path(args.provisioner).resolve())
        self.wrap = str(Path(args.wrap).resolve())
        self.python = sys.executable
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="provisioner-bench."))
        self.servers = []
        self.results = {"quick": self.quick}
        self.rng = random.Random(20241122)

    def start_server(self, argv, health, what):
        log = open(self.tmp / f"{what}.log", "w")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.server_env())
        self.servers.append(proc)
        wait_ready(health, proc, what)
        return proc

    def server_env(self):
        return {"PATH": "/usr/bin:/bin", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}

    def stop(self):
        for proc in self.servers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def child_env(self, extra=None):
        """What every launcher gets: explicit base credentials, no AWS config, no IMDS."""
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.tmp),
            "LANG": "C.UTF-8",
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
            "AWS_ACCESS_KEY_ID": BASE_KEY,
            "AWS_SECRET_ACCESS_KEY": BASE_SECRET,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "LEGACY_KEY_ID": LEGACY_KEY,
        }
        env.update(extra or {})
        return env

    def platform(self, sts_port, decision_log, users, data_planes, settings=None):
        secret_file = self.tmp / "legacy-secret"
        if not secret_file.exists():
            secret_file.write_text("bench-static-secret-not-real\n")
            secret_file.chmod(0o600)
        doc = {
            "settings": {
                "syntasa_session_policy_enabled": "true",
                "syntasa_session_policy_duration": "43200",
                "service_account_failure": "fallback",
                "session_policy_over_limit": "fallback",
                "session_policy_bedrock": "true",
                "session_policy_platform_folders": PLATFORM_FOLDERS,
                "sts_deadline_seconds": "10",
                "decision_log": str(decision_log),
            },
            "aws": {
                "region": "us-east-1",
                "account_id": "123456789012",
                "session_policy_role_arn": ROLE_INFRA,
                "platform_bucket": "acme-platform",
                "sts_endpoint": f"http://127.0.0.1:{sts_port}",
            },
            "service_accounts": [
                {"id": "sa-finance", "role_arn": ROLE_SA, "external_id": "fin-ext", "duration_seconds": 43200},
                {"id": "sa-etl", "role_arn": ROLE_ETL, "duration_seconds": 3600},
                {"id": "sa-legacy", "access_key_id": {"env": "LEGACY_KEY_ID"},
                 "secret_access_key": {"file": str(secret_file)}},
            ],
            "workspaces": [{"id": "ws-finance", "service_account": "sa-finance"}, {"id": "ws-open"}],
            "runtime_templates": [{"id": "rt-default"}, {"id": "rt-etl", "service_account": "sa-etl"},
                                  {"id": "rt-legacy", "service_account": "sa-legacy"}],
            "data_planes": data_planes,
            "users": users,
        }
        doc["settings"].update(settings or {})
        return doc

    def write_json(self, name, doc):
        path = self.tmp / name
        path.write_text(json.dumps(doc, indent=1))
        return path

    # -----------------------------------------------------------------------------------
    def setup(self):
        self.instant_port = free_port()
        self.start_server([self.python, str(INSTANT_STS), "--port", str(self.instant_port)],
                          f"http://127.0.0.1:{self.instant_port}/_health", "instant_sts")
        planes = [plane(i) for i in range(8)]
        # One realistic plane: with the seven platform folders and Bedrock, two planes
        # already pass 2,048 characters (see the policy-fit part).
        users = [{"id": "alice", "data_planes": [planes[7]["id"]]},
                 {"id": "root", "system_admin": True}]
        self.launch_log = self.tmp / "launch-decisions.jsonl"
        self.launch_config = self.write_json(
            "launch-platform.json", self.platform(self.instant_port, self.launch_log, users, planes))
        self.results["machine"] = machine()
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet"], check=False).returncode != 0
        self.results["revision"] = rev + (" (with uncommitted changes)" if dirty else "")
        self.results["python_launcher"] = {
            "python": sys.version.split()[0],
            "boto3": subprocess.run([self.python, "-c", "import boto3; print(boto3.__version__)"],
                                    capture_output=True, text=True, check=False).stdout.strip(),
        }

    # -----------------------------------------------------------------------------------
    # 1 + 2: launch overhead and peak memory, `provisioner kernel` vs the Python launcher

    TIERS = [
        # name, context flags, expected marker tier, credentials kind
        ("workspace_sa", ["--user", "alice", "--workspace", "ws-finance"], "workspace_sa", "sts"),
        ("runtime_template_sa (static keys)", ["--user", "alice", "--runtime-template", "rt-legacy"],
         "runtime_template_sa", "static"),
        ("session_policy", ["--user", "alice", "--workspace", "ws-open"], "session_policy", "sts"),
        ("default", ["--user", "root"], "default", "base"),
    ]

    def ours(self, flags, program):
        return [self.prov, "kernel", "--config", str(self.launch_config), *flags, "--", *program]

    def theirs(self, flags, program):
        return [self.python, str(PY_LAUNCHER), "--config", str(self.launch_config), *flags, "--", *program]

    def check_launchers(self):
        """Before timing: each launcher, each tier, gives the program the credentials it should."""
        env = self.child_env()
        for name, flags, tier, kind in self.TIERS:
            for who, argv in (("provisioner", self.ours(flags, ["/usr/bin/env"])),
                              ("python", self.theirs(flags, ["/usr/bin/env"]))):
                r = run_capture(argv, env)
                child = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
                key = child.get("AWS_ACCESS_KEY_ID", "")
                ok = r.returncode == 0 and {
                    "sts": key.startswith("ASIA") and "AWS_SESSION_TOKEN" in child,
                    "static": key == LEGACY_KEY,
                    "base": key == BASE_KEY,
                }[kind]
                if who == "provisioner":
                    ok = ok and child.get("SYN_PROVISIONED", "").startswith(f"tier={tier};")
                if not ok:
                    sys.exit(f"bench: {who} launcher, tier {name}: wrong result (exit {r.returncode}, "
                             f"key {key!r}, marker {child.get('SYN_PROVISIONED')!r}); stderr: {r.stderr[-2000:]}")

    def launch_overhead(self):
        self.check_launchers()
        rounds = 8 if self.quick else 40
        warmup = 2
        env = self.child_env()
        contenders = [("baseline", None, [TRUE], env)]
        for name, flags, _, _ in self.TIERS:
            contenders.append(("provisioner", name, self.ours(flags, [TRUE]), env))
            contenders.append(("python", name, self.theirs(flags, [TRUE]), env))
        # Diagnostics, not goals: where our time goes. Starting the binary alone, and the
        # STS tier with the OS certificate store made empty (SSL_CERT_FILE/SSL_CERT_DIR),
        # which the HTTPS client otherwise loads and parses at every launch.
        empty = self.tmp / "empty-ca"
        empty.mkdir(exist_ok=True)
        (empty / "none.pem").write_text("")
        no_ca = env | {"SSL_CERT_FILE": str(empty / "none.pem"), "SSL_CERT_DIR": str(empty)}
        diagnostics = {"provisioner --version (binary start and exit only)": ([self.prov, "--version"], env),
                       "workspace_sa, OS certificate store emptied": (self.ours(self.TIERS[0][1], [TRUE]), no_ca),
                       "session_policy, OS certificate store emptied": (self.ours(self.TIERS[2][1], [TRUE]), no_ca)}
        for name, (argv, e) in diagnostics.items():
            contenders.append(("diagnostic", name, argv, e))
        samples = {(who, tier): [] for who, tier, _, _ in contenders}
        for r in range(warmup + rounds):
            order = list(contenders)
            self.rng.shuffle(order)
            for who, tier, argv, env in order:
                code, secs, _ = run_once(argv, env)
                if code != 0:
                    sys.exit(f"bench: {who} {tier} exited {code} in round {r}; rerun by hand: {' '.join(argv)}")
                if r >= warmup:
                    samples[(who, tier)].append(secs * 1000)
        base = statistics.median(samples[("baseline", None)])
        out = {"rounds": rounds, "baseline_ms": summary(samples[("baseline", None)]), "tiers": {}}
        for name, _, _, _ in self.TIERS:
            row = {}
            for who in ("provisioner", "python"):
                s = samples[(who, name)]
                row[who] = {**summary(s), "overhead_ms": statistics.median(s) - base,
                            "overhead_p90_ms": pct(s, 90) - base}
            row["ratio"] = row["python"]["overhead_ms"] / max(row["provisioner"]["overhead_ms"], 1e-6)
            out["tiers"][name] = row
        out["diagnostics"] = {name: {**summary(samples[("diagnostic", name)]),
                                     "overhead_ms": statistics.median(samples[("diagnostic", name)]) - base}
                              for name in diagnostics}
        stats = http_json(f"http://127.0.0.1:{self.instant_port}/_stats")
        out["sts_service_us_median"] = statistics.median(stats["service_us"]) if stats["service_us"] else None
        out["sts_requests"] = stats["requests"]
        records = [json.loads(line) for line in self.launch_log.read_text().splitlines() if line.strip()]
        by_tier = {}
        for rec in records:
            by_tier.setdefault(rec["tier"], []).append(rec.get("elapsed_ms") or 0)
        out["decision_elapsed_ms_median"] = {t: statistics.median(v) for t, v in by_tier.items()}
        self.results["launch"] = out

    # -----------------------------------------------------------------------------------
    # 2: peak memory, through the small spawner (see rss_spawn.rs for why)

    def build_spawner(self):
        exe = self.tmp / "rss_spawn"
        r = subprocess.run(["rustc", "--edition", "2024", "-O", "-o", str(exe), str(HERE / "rss_spawn.rs")],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            sys.exit(f"bench: cannot build rss_spawn.rs with rustc: {r.stderr[-2000:]}")
        return str(exe)

    def memory(self):
        spawner = self.build_spawner()
        runs = 3 if self.quick else 10
        env = self.child_env()
        contenders = [("baseline", None, [TRUE])]
        for name, flags, _, _ in self.TIERS:
            contenders.append(("provisioner", name, self.ours(flags, [TRUE])))
            contenders.append(("python", name, self.theirs(flags, [TRUE])))
        peaks = {(who, tier): [] for who, tier, _ in contenders}
        for _ in range(runs):
            order = list(contenders)
            self.rng.shuffle(order)
            for who, tier, argv in order:
                r = run_capture([spawner, *argv], env)
                fields = r.stdout.split()
                if r.returncode != 0 or len(fields) != 3 or fields[2] != "0":
                    sys.exit(f"bench: memory run of {who} {tier} failed: {r.stdout} {r.stderr[-1000:]}")
                peaks[(who, tier)].append(int(fields[0]))
        out = {"runs": runs, "floor_kib": max(peaks[("baseline", None)]), "tiers": {}}
        for name, _, _, _ in self.TIERS:
            out["tiers"][name] = {who: {"max_kib": max(peaks[(who, name)]),
                                        "median_kib": statistics.median(peaks[(who, name)])}
                                  for who in ("provisioner", "python")}
        self.results["memory"] = out

    # -----------------------------------------------------------------------------------
    # 2: binary sizes

    def sizes(self):
        boto = subprocess.run([self.python, "-c",
                               "import boto3, botocore, os; print(os.path.dirname(boto3.__file__)); "
                               "print(os.path.dirname(botocore.__file__))"],
                              capture_output=True, text=True, check=False).stdout.split()
        self.results["sizes"] = {
            "provisioner": os.path.getsize(self.prov),
            "spark-submit-wrap": os.path.getsize(self.wrap),
            "boto3+botocore installed": sum(dir_size(Path(p)) for p in boto),
        }

    # -----------------------------------------------------------------------------------
    # 3: a burst of launches against a throttling STS

    def burst(self):
        """The same burst twice: with the product's default retry budget, and with the
        largest one the settings allow."""
        n, rate = self.args.burst_launches, self.args.burst_rate
        self.results["burst"] = [
            self.burst_once("product defaults", n, rate, attempts=8, deadline=10),
            self.burst_once("sts_max_attempts 10, sts_deadline_seconds 30", n, rate, attempts=10, deadline=30),
        ]

    def burst_once(self, label, n, rate, attempts, deadline):
        port = free_port()
        server = self.start_server([self.python, str(FAKE_STS), "--port", str(port), "--mode", "rate",
                                    "--rate", str(rate)], f"http://127.0.0.1:{port}/_health", f"fake_sts_{port}")
        planes, users, jobs = [], [], {}
        for i in range(n):
            p = plane(i, suffix=f"{i:03d}")
            planes.append(p)
            user = f"analyst{i:03d}"
            users.append({"id": user, "data_planes": [p["id"]]})
            if i % 2 == 0:
                jobs[user] = (["--user", user, "--workspace", "ws-finance"], "workspace_sa", ROLE_SA, False)
            else:
                jobs[user] = (["--user", user, "--workspace", "ws-open"], "session_policy", ROLE_INFRA, True)
        log = self.tmp / f"burst-{port}.jsonl"
        # Over-limit policies are refused rather than run on default credentials, so that
        # a launch on the base key can only mean a fall-back the rules do not allow.
        config = self.write_json(f"burst-{port}.json", self.platform(
            port, log, users, planes,
            {"sts_deadline_seconds": str(deadline), "sts_max_attempts": str(attempts),
             "session_policy_over_limit": "deny",
             "session_policy_platform_folders": "syn-workspace/{workspace},syn-file-uploads/{user}"}))
        for user in list(jobs)[:2]:
            flags, tier, _, _ = jobs[user]
            r = run_capture([self.prov, "explain", "--json", "--config", str(config), *flags], self.child_env())
            if r.returncode != 0 or json.loads(r.stdout)["tier"] != tier:
                sys.exit(f"bench: the burst platform file does not resolve {user} to {tier}: {r.stdout[:300]} "
                         f"{r.stderr[-500:]}")
        outdir = self.tmp / f"burst-out-{port}"
        outdir.mkdir()
        env = self.child_env()
        script = 'printf "%s|%s|%s\\n" "$AWS_ACCESS_KEY_ID" "${AWS_SESSION_TOKEN:+token}" "$SYN_PROVISIONED" > "$0"'
        # "At once": every launch first blocks opening a FIFO; opening its write end
        # releases them all together, so spawning the processes does not spread the burst.
        gate = self.tmp / f"burst-gate-{port}"
        os.mkfifo(gate)
        pids = {}
        t0 = time.perf_counter()
        for user, (flags, *_) in jobs.items():
            launch = [self.prov, "kernel", "--config", str(config), *flags, "--",
                      "/bin/sh", "-c", script, str(outdir / user)]
            argv = ["/bin/sh", "-c", 'read _ < "$0"; exec "$@"', str(gate), *launch]
            pids[os.posix_spawn(argv[0], argv, env, file_actions=DEVNULL_ACTIONS)] = user
        spawned = time.perf_counter() - t0
        time.sleep(0.5 if len(pids) <= 50 else 2.0)  # let every shell reach the gate
        released, released_wall = time.perf_counter(), time.time()
        os.close(os.open(gate, os.O_WRONLY))
        ended = {}
        limit = released + deadline + 30
        # Poll each launch by pid (never wait for "any child": the servers are children too).
        while len(ended) < len(pids) and time.perf_counter() < limit:
            if time.perf_counter() < released + 3:
                # A shell that reached the gate after the release would wait forever.
                try:
                    os.close(os.open(gate, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass  # ENXIO: nobody waiting
            for pid in [p for p in pids if p not in ended]:
                got, status, _ = os.wait4(pid, os.WNOHANG)
                if got == pid:
                    ended[pid] = (os.waitstatus_to_exitcode(status), time.perf_counter())
            time.sleep(0.001)
        for pid in pids:
            if pid not in ended:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                ended[pid] = (-9, time.perf_counter())
        requests = [q for q in http_json(f"http://127.0.0.1:{port}/_requests") if q["action"] == "AssumeRole"]
        server.terminate()
        server.wait(timeout=10)
        per_session = {}
        for q in requests:
            per_session.setdefault(q["params"].get("RoleSessionName"), []).append(q)

        # Every launch ends in exactly one class. "broader" is the one that must never happen.
        classes = {"right credentials": 0, "refused (exit 4, program not run)": 0,
                   "other scoped identity (fell back)": 0, "broader or no minted credentials": 0,
                   "over the deadline": 0, "killed": 0}
        problems, times, times_no_retry, retries, keys, minted_twice = [], [], [], [], {}, []
        # When each launch's first AssumeRole reached the server: the launcher's own start
        # under contention, before any STS wait.
        first_request_ms = [(min(q["time"] for q in v) - released_wall) * 1000 for v in per_session.values()]
        for pid, user in pids.items():
            code, end = ended[pid]
            secs = end - released
            flags, tier, role, with_policy = jobs[user]
            sent = per_session.get(user, [])
            tries = max(len(sent) - 1, 0)
            times.append(secs * 1000)
            retries.append(tries)
            if code == -9:
                classes["killed"] += 1
                problems.append(f"{user}: still running {deadline + 30} s after the start; killed")
                continue
            if code != 0:
                classes["refused (exit 4, program not run)" if code == 4 else "broader or no minted credentials"] += 1
                problems.append(f"{user}: exit {code}")
                continue
            if not tries:
                times_no_retry.append(secs * 1000)
            try:
                key, token, marker = (outdir / user).read_text().strip().split("|")
            except (OSError, ValueError):
                classes["broader or no minted credentials"] += 1
                problems.append(f"{user}: exit 0 but the program did not report its environment")
                continue
            keys.setdefault(key, []).append(user)
            ok_answers = [q for q in sent if q["mode"] == "ok"]
            if len(ok_answers) > 1:
                # STS minted more than once for this launch: an answer came after the
                # launcher had stopped waiting for it (attempt timeout) and retried.
                minted_twice.append({"user": user, "requests": timeline(sent, released_wall)})
            if key == BASE_KEY or not key.startswith("ASIA") or token != "token" or not ok_answers:
                classes["broader or no minted credentials"] += 1
                problems.append(f"{user}: ran with key {key[:8]}..., token {token!r}, "
                                f"{len(ok_answers)} successful AssumeRole answers")
            elif (not marker.startswith(f"tier={tier};") or f"user={user}" not in marker
                  or any(q["params"].get("RoleArn") != role or ("Policy" in q["params"]) != with_policy
                         for q in ok_answers)):
                classes["other scoped identity (fell back)"] += 1
                problems.append(f"{user}: expected {tier} ({role}), got {marker.split(';')[0]} "
                                f"({ok_answers[-1]['params'].get('RoleArn')}, policy sent: "
                                f"{'Policy' in ok_answers[-1]['params']})")
            elif secs > deadline:
                classes["over the deadline"] += 1
                problems.append(f"{user}: {secs:.1f} s, over the {deadline} s deadline")
            else:
                classes["right credentials"] += 1
        for k, v in keys.items():
            if len(v) > 1:
                problems.append(f"key {k[:8]}... given to {len(v)} launches")
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        elapsed = [r.get("elapsed_ms") or 0 for r in records]
        refusals = {}
        for r in records:
            if r.get("refused"):
                # The message names the last STS error; keep its gist for the report.
                gist = re.sub(r"analyst\d+", "USER", r["refused"]["message"])
                gist = re.sub(r"arn:aws:iam::\d+:role/\S+", "ROLE", gist)
                gist = re.sub(r"http://127\.0\.0\.1:\d+", "STS", gist)
                refusals[gist] = refusals.get(gist, 0) + 1
        first = min((q["time"] for q in requests), default=0)
        last = max((q["time"] for q in requests), default=0)
        return {
            "label": label, "launches": n, "rate_limit_per_s": rate, "sts_deadline_seconds": deadline,
            "sts_max_attempts": attempts, "spawn_all_s": spawned, "classes": classes,
            "launch_ms": summary(times) | {"p99": pct(times, 99)},
            "launch_ms_without_retry": summary(times_no_retry) if times_no_retry else None,
            "first_request_ms": summary(first_request_ms) | {"p99": pct(first_request_ms, 99)},
            "record_elapsed_ms": summary(elapsed) | {"p99": pct(elapsed, 99)},
            "assume_role_requests": len(requests),
            "throttled_answers": sum(1 for q in requests if q["mode"] != "ok"),
            "retries_total": sum(retries), "retries_p50": pct(retries, 50), "retries_p99": pct(retries, 99),
            "retries_max": max(retries), "launches_retried": sum(1 for r in retries if r),
            "sts_window_s": last - first, "refusal_messages": refusals, "problems": problems,
            "minted_more_than_once": minted_twice,
            "elapsed_of_minted_twice": [r.get("elapsed_ms") for r in records
                                        if r["user"] in {m["user"] for m in minted_twice}],
            # AssumeRole arrivals and successful answers per 250 ms after the common start.
            "arrivals_per_250ms": histogram([q["time"] - released_wall for q in requests], 0.25),
            "answers_per_250ms": histogram([q["time"] - released_wall for q in requests if q["mode"] == "ok"], 0.25),
        }

    # -----------------------------------------------------------------------------------
    # 4: how many data planes fit in 2,048 characters

    def policy_fit(self):
        out = {}
        # The inline policy alone (managed session policies off), then the managed layout.
        variants = {
            "data planes only": {"session_policy_platform_folders": "none", "session_policy_bedrock": "false",
                                 "session_policy_managed": "never"},
            "with the platform folders and Bedrock": {"session_policy_managed": "never"},
        }
        for label, settings in variants.items():
            rows = []
            for n in range(1, len(PLANES) + 1):
                planes = [plane(i) for i in range(n)]
                users = [{"id": "analyst", "data_planes": [p["id"] for p in planes]}]
                config = self.write_json("fit-platform.json", self.platform(
                    self.instant_port, self.tmp / "fit.jsonl", users, planes, settings))
                r = run_capture([self.prov, "explain", "--json", "--config", str(config),
                                 "--user", "analyst", "--workspace", "ws-open"], self.child_env())
                d = json.loads(r.stdout)
                chars = d.get("policy_chars")
                if chars is None:
                    m = [re.search(r"is (\d+) characters", s.get("detail", "")) for s in d.get("skipped", [])]
                    chars = next(int(x.group(1)) for x in m if x)
                naive = len(naive_policy(planes, settings.get("session_policy_platform_folders", PLATFORM_FOLDERS),
                                         settings.get("session_policy_bedrock", "true") == "true",
                                         user="analyst", workspace="ws-open"))
                rows.append({"planes": n, "compacted": chars, "tier": d["tier"], "naive": naive})
                if chars > 2048 and naive > 2048:
                    break
            out[label] = {
                "rows": rows,
                "fit_compacted": max([r["planes"] for r in rows if r["compacted"] <= 2048 and r["tier"] == "session_policy"],
                                     default=0),
                "fit_naive": max([r["planes"] for r in rows if r["naive"] <= 2048], default=0),
            }
        example = [plane(i) for i in range(2)]
        out["example_naive_one_plane"] = naive_policy(example[:1], "none", False, "analyst", "ws-open")
        # Managed session policies (the default "auto"), platform folders and Bedrock on.
        managed = []
        for n in (1, 2, 3, 5, 9, 10, 20, 30, 40):
            planes = [plane(i, suffix=str(i // len(PLANES)) if i >= len(PLANES) else "") for i in range(n)]
            users = [{"id": "analyst", "data_planes": [p["id"] for p in planes]}]
            config = self.write_json("fit-platform.json", self.platform(
                self.instant_port, self.tmp / "fit.jsonl", users, planes, {}))
            r = run_capture([self.prov, "explain", "--json", "--config", str(config),
                             "--user", "analyst", "--workspace", "ws-open"], self.child_env())
            d = json.loads(r.stdout)
            docs = d.get("managed_policies") or {}
            managed.append({
                "planes": n, "tier": d["tier"], "inline": d.get("policy_chars"),
                "inline_and_arns": (d.get("policy_chars") or 0) + sum(len(a) for a in d.get("policy_arns", [])),
                "arns": len(d.get("policy_arns", [])),
                "largest_managed": max((len(json.dumps(v, separators=(",", ":"))) for v in docs.values()), default=0),
            })
        out["managed"] = managed
        self.results["policy_fit"] = out

    # -----------------------------------------------------------------------------------
    # 5: spark-submit-wrap in front of a stand-in spark-submit

    JOB_TIERS = [
        ("runtime_template_sa (role)", {"SYN_USER": "alice", "SYN_RUNTIME_TEMPLATE_ID": "rt-etl"}),
        ("runtime_template_sa (static keys)", {"SYN_USER": "alice", "SYN_RUNTIME_TEMPLATE_ID": "rt-legacy"}),
        ("session_policy", {"SYN_USER": "alice"}),
        ("default", {"SYN_USER": "root"}),
    ]

    def spark_wrap(self):
        stand_in = self.tmp / "spark-submit"
        stand_in.write_text("#!/bin/sh\nexit 0\n")
        stand_in.chmod(0o755)
        recorder = self.tmp / "spark-submit-record"
        recorder.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$SPARK_BENCH_ARGS"\n')
        recorder.chmod(0o755)
        spark_args = ["--master", "local[1]", "--name", "bench", str(self.tmp / "app.py")]
        rounds = 15 if self.quick else 60
        warmup = 2
        base_env = self.child_env({"SYN_PLATFORM_CONFIG": str(self.launch_config),
                                   "SPARK_SUBMIT_WRAP_REAL": str(stand_in)})
        # Check first: the wrapper execs the stand-in with a properties file for minted tiers.
        notes = []
        for name, ctx in self.JOB_TIERS:
            args_file = self.tmp / "spark-args.txt"
            env = base_env | ctx | {"SPARK_SUBMIT_WRAP_REAL": str(recorder), "SPARK_BENCH_ARGS": str(args_file)}
            r = run_capture([self.wrap, *spark_args], env)
            seen = args_file.read_text().split("\n") if args_file.exists() else []
            if r.returncode != 0 or not seen:
                sys.exit(f"bench: spark-submit-wrap, tier {name}: exit {r.returncode}, stand-in not run; "
                         f"stderr: {r.stderr[-2000:]}")
            if name != "default" and "--properties-file" not in seen:
                notes.append(f"{name}: no --properties-file passed")
            args_file.unlink()
        contenders = [("baseline", None, [str(stand_in), *spark_args], base_env)]
        contenders += [("wrap", name, [self.wrap, *spark_args], base_env | ctx) for name, ctx in self.JOB_TIERS]
        samples = {(who, t): [] for who, t, _, _ in contenders}
        for r in range(warmup + rounds):
            order = list(contenders)
            self.rng.shuffle(order)
            for who, tier, argv, env in order:
                code, secs, _ = run_once(argv, env)
                if code != 0:
                    sys.exit(f"bench: spark-submit-wrap {tier} exited {code} in round {r}")
                if r >= warmup:
                    samples[(who, tier)].append(secs * 1000)
        base = statistics.median(samples[("baseline", None)])
        out = {"rounds": rounds, "baseline_ms": summary(samples[("baseline", None)]), "tiers": {}, "notes": notes}
        for name, _ in self.JOB_TIERS:
            s = samples[("wrap", name)]
            out["tiers"][name] = {**summary(s), "overhead_ms": statistics.median(s) - base,
                                  "overhead_p90_ms": pct(s, 90) - base}
        self.results["spark_wrap"] = out


def plane(i, suffix=""):
    domain, dataset, source = PLANES[i % len(PLANES)]
    if suffix:
        dataset, source = f"{dataset}_{suffix}", f"{source}_{suffix}"
    return {"id": f"dp-{domain}-{dataset}".replace("_", "-"),
            "s3": [f"s3://acme-analytics-prod/warehouse/{domain}/{dataset}/",
                   f"s3://acme-raw-landing/{domain}/{source}/"],
            "glue_databases": [f"{domain}_{dataset}"]}


def naive_policy(planes, folders, bedrock, user, workspace):
    """The policy as one would first write it: one statement per S3 location with the
    full action list spelled out, one ListBucket statement per location, one Glue
    statement per database with the explicit action list; no merging, no wildcards in
    actions. Minified like ours, so the difference is structure, not whitespace."""
    locations = [loc for p in planes for loc in p["s3"]]
    if folders and folders != "none":
        for f in folders.split(","):
            f = f.replace("{user}", user).replace("{workspace}", workspace)
            locations.append(f"s3://acme-platform/{f}/")
    statements = []
    for loc in locations:
        bucket, _, prefix = loc[len("s3://"):].partition("/")
        statements.append({"Effect": "Allow", "Action": NAIVE_S3_ACTIONS,
                           "Resource": [f"arn:aws:s3:::{bucket}/{prefix.rstrip('/')}",
                                        f"arn:aws:s3:::{bucket}/{prefix}*", f"arn:aws:s3:::{bucket}"]})
        statements.append({"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"],
                           "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}})
    for p in planes:
        for db in p["glue_databases"]:
            arn = "arn:aws:glue:us-east-1:123456789012:"
            statements.append({"Effect": "Allow", "Action": NAIVE_GLUE_ACTIONS,
                               "Resource": [f"{arn}catalog", f"{arn}database/{db}", f"{arn}table/{db}/*",
                                            f"{arn}userDefinedFunction/{db}/*"]})
    if bedrock:
        statements.append({"Effect": "Allow", "Action": ["bedrock:InvokeModel",
                                                         "bedrock:InvokeModelWithResponseStream"],
                           "Resource": ["*"]})
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


def timeline(requests, start):
    """A session's AssumeRole requests: seconds after the start, answer, role."""
    return [(round(q["time"] - start, 3), q["mode"], q["params"].get("RoleArn", "").rsplit("/", 1)[-1])
            for q in requests]


def histogram(offsets, width):
    counts = [0] * (int(max(offsets, default=0) / width) + 1)
    for t in offsets:
        counts[max(int(t / width), 0)] += 1
    return counts


def summary(values):
    return {"median": statistics.median(values), "p90": pct(values, 90), "min": min(values), "max": max(values),
            "n": len(values)}


def dir_size(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def machine():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": pyplatform.release(),
            "loadavg_at_start": os.getloadavg()}


# ---------------------------------------------------------------------------------------
# report

def ms(x):
    return f"{x:.2f}"


def report(res):
    lines = []
    m = res["machine"]
    lines.append(f"machine: {m['nproc']} CPUs, {m['cpu']}, Linux {m['kernel']}, "
                 f"load average at start {m['loadavg_at_start'][0]:.2f}")
    lines.append(f"revision: {res.get('revision')}")
    lines.append(f"python launcher: Python {res['python_launcher']['python']}, boto3 {res['python_launcher']['boto3']}")
    if "launch" in res:
        L = res["launch"]
        b = L["baseline_ms"]
        lines.append("")
        lines.append(f"## 1. Launch overhead ({L['rounds']} interleaved rounds; /bin/true alone: "
                     f"median {ms(b['median'])} ms, p90 {ms(b['p90'])}, min {ms(b['min'])}; "
                     f"STS stand-in service time median {L['sts_service_us_median']:.0f} µs)")
        lines.append("")
        lines.append("| tier | launcher | median ms | p90 ms | min ms | overhead ms (median − true) | ratio |")
        lines.append("|---|---|---:|---:|---:|---:|---:|")
        for tier, row in L["tiers"].items():
            for who in ("provisioner", "python"):
                r = row[who]
                ratio = f"{row['ratio']:.0f}×" if who == "python" else ""
                lines.append(f"| {tier} | {who} | {ms(r['median'])} | {ms(r['p90'])} | {ms(r['min'])} | "
                             f"{ms(r['overhead_ms'])} | {ratio} |")
        lines.append("")
        lines.append("Diagnostics (same loop):")
        lines.append("")
        lines.append("| run | median ms | p90 ms | min ms | overhead ms |")
        lines.append("|---|---:|---:|---:|---:|")
        for name, r in L["diagnostics"].items():
            lines.append(f"| {name} | {ms(r['median'])} | {ms(r['p90'])} | {ms(r['min'])} | {ms(r['overhead_ms'])} |")
        lines.append("")
        lines.append("decision-record elapsed_ms (median, resolve + mint inside provisioner): "
                     + ", ".join(f"{t} {v}" for t, v in L["decision_elapsed_ms_median"].items()))
    if "memory" in res:
        M = res["memory"]
        lines.append("")
        lines.append(f"## 2. Peak memory of a launch (ru_maxrss, launcher then /bin/true; {M['runs']} runs each; "
                     f"/bin/true alone through the same spawner: {M['floor_kib'] / 1024:.1f} MiB)")
        lines.append("")
        lines.append("| tier | provisioner max MiB | python max MiB |")
        lines.append("|---|---:|---:|")
        for tier, row in M["tiers"].items():
            lines.append(f"| {tier} | {row['provisioner']['max_kib'] / 1024:.1f} | {row['python']['max_kib'] / 1024:.1f} |")
    if "sizes" in res:
        lines.append("")
        lines.append("| file | size |")
        lines.append("|---|---:|")
        for k, v in res["sizes"].items():
            lines.append(f"| {k} | {v / 1048576:.1f} MiB ({v:,} bytes) |")
    if "burst" in res:
        lines.append("")
        first = res["burst"][0]
        lines.append(f"## 3. Burst: {first['launches']} launches released at once (half workspace_sa, half "
                     f"session_policy), STS stand-in throttling above {first['rate_limit_per_s']:.0f} requests/s")
        lines.append("")
        lines.append("| figure | " + " | ".join(B["label"] for B in res["burst"]) + " |")
        lines.append("|---|" + "---:|" * len(res["burst"]) + "")
        rows = [
            ("sts_max_attempts / sts_deadline_seconds", lambda B: f"{B['sts_max_attempts']} / {B['sts_deadline_seconds']} s"),
        ]
        for cls in res["burst"][0]["classes"]:
            rows.append((f"launches: {cls}", lambda B, c=cls: str(B["classes"][c])))
        rows += [
            ("launch time p50 / p99 / max (from the common start to the program's exit)",
             lambda B: f"{B['launch_ms']['median']:.0f} / {B['launch_ms']['p99']:.0f} / {B['launch_ms']['max']:.0f} ms"),
            ("first AssumeRole of a launch received by the stand-in, p50 / p99 after the start",
             lambda B: f"{B['first_request_ms']['median']:.0f} / {B['first_request_ms']['p99']:.0f} ms"),
            ("launch time p50 of launches that needed no retry",
             lambda B: f"{B['launch_ms_without_retry']['median']:.0f} ms" if B["launch_ms_without_retry"] else "-"),
            ("decision record elapsed_ms p50 / p99",
             lambda B: f"{B['record_elapsed_ms']['median']:.0f} / {B['record_elapsed_ms']['p99']:.0f} ms"),
            ("AssumeRole requests / throttled", lambda B: f"{B['assume_role_requests']} / {B['throttled_answers']}"),
            ("retries per launch p50 / p99 / max",
             lambda B: f"{B['retries_p50']:.0f} / {B['retries_p99']:.0f} / {B['retries_max']}"),
            ("launches that retried / retries in all", lambda B: f"{B['launches_retried']} / {B['retries_total']}"),
            ("launches for which STS minted twice (a late answer, then a retry)",
             lambda B: str(len(B["minted_more_than_once"]))),
            ("first to last STS request", lambda B: f"{B['sts_window_s']:.1f} s"),
        ]
        for title, f in rows:
            lines.append(f"| {title} | " + " | ".join(f(B) for B in res["burst"]) + " |")
        for B in res["burst"]:
            for msg, count in B["refusal_messages"].items():
                lines.append(f"- {B['label']}: {count} refused: {msg[:400]}")
            for p in B["problems"][:8]:
                lines.append(f"- {B['label']}: {p}")
            if len(B["problems"]) > 8:
                lines.append(f"- {B['label']}: ... {len(B['problems']) - 8} more in results.json")
    if "policy_fit" in res:
        lines.append("")
        lines.append("## 4. Policy fit (data planes of two S3 locations and one Glue database)")
        for label in ("data planes only", "with the platform folders and Bedrock"):
            F = res["policy_fit"][label]
            lines.append("")
            lines.append(f"{label}: fit in 2,048 characters — compacted {F['fit_compacted']}, naive {F['fit_naive']}")
            lines.append("")
            lines.append("| planes | compacted chars | naive chars |")
            lines.append("|---:|---:|---:|")
            for r in F["rows"]:
                lines.append(f"| {r['planes']} | {r['compacted']} | {r['naive']} |")
        lines.append("")
        lines.append("With managed session policies (`session_policy_managed` auto), platform folders and Bedrock:")
        lines.append("")
        lines.append("| planes | tier | inline + ARN chars of 2,048 | ARNs of 10 | largest managed document of 6,144 |")
        lines.append("|---:|---|---:|---:|---:|")
        for r in res["policy_fit"].get("managed", []):
            lines.append(f"| {r['planes']} | {r['tier']} | {r['inline_and_arns']} | {r['arns']} | {r['largest_managed']} |")
    if "spark_wrap" in res:
        S = res["spark_wrap"]
        b = S["baseline_ms"]
        lines.append("")
        lines.append(f"## 5. spark-submit-wrap overhead ({S['rounds']} interleaved rounds; stand-in spark-submit alone: "
                     f"median {ms(b['median'])} ms, p90 {ms(b['p90'])}, min {ms(b['min'])})")
        lines.append("")
        lines.append("| tier | median ms | p90 ms | min ms | overhead ms (median − stand-in) |")
        lines.append("|---|---:|---:|---:|---:|")
        for tier, r in S["tiers"].items():
            lines.append(f"| {tier} | {ms(r['median'])} | {ms(r['p90'])} | {ms(r['min'])} | {ms(r['overhead_ms'])} |")
        for n in S["notes"]:
            lines.append(f"- note: {n}")
    return "\n".join(lines)


def goals(res):
    """The goals of BENCHMARKS.md, each met or not, with the figure."""
    out = []
    if "launch" in res:
        tiers = res["launch"]["tiers"]
        worst = max(r["provisioner"]["overhead_ms"] for r in tiers.values())
        out.append(("median launch overhead under 3 ms (every tier)", worst < 3.0, f"worst tier {worst:.2f} ms"))
        ratio = min(r["ratio"] for r in tiers.values())
        out.append(("at least 50× less than the Python launcher (every tier)", ratio >= 50, f"lowest ratio {ratio:.0f}×"))
    if "memory" in res:
        peak = max(r["provisioner"]["max_kib"] for r in res["memory"]["tiers"].values()) * 1024
        out.append(("peak memory of a launch under 20 MB", peak < 20e6, f"max {peak / 1e6:.1f} MB"))
    if "burst" in res:
        for B in res["burst"]:
            c = B["classes"]
            out.append((f"burst ({B['label']}): every launch has the right credentials within the deadline",
                        c["right credentials"] == B["launches"] and not B["problems"],
                        f"{c['right credentials']}/{B['launches']}"))
            out.append((f"burst ({B['label']}): no launch with broader credentials",
                        c["broader or no minted credentials"] == 0 and c["killed"] == 0,
                        f"{c['broader or no minted credentials']} broader, {c['killed']} killed"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--provisioner", required=True)
    ap.add_argument("--wrap", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="fewer rounds (about 20 s instead of a few minutes)")
    ap.add_argument("--burst-launches", type=int, default=200)
    ap.add_argument("--burst-rate", type=float, default=100, help="stand-in STS throttles above this many requests/s")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (platform files, logs)")
    ap.add_argument("--only", action="append",
                    choices=["launch", "memory", "sizes", "burst", "policy", "spark"], help="run only these parts")
    args = ap.parse_args()
    bench = Bench(args)
    parts = args.only or ["launch", "memory", "sizes", "burst", "policy", "spark"]
    started = time.time()
    try:
        bench.setup()
        if "launch" in parts:
            print("bench: launch overhead and memory ...", flush=True)
            bench.launch_overhead()
        if "memory" in parts:
            print("bench: peak memory ...", flush=True)
            bench.memory()
        if "sizes" in parts:
            bench.sizes()
        if "spark" in parts:
            print("bench: spark-submit-wrap overhead ...", flush=True)
            bench.spark_wrap()
        if "burst" in parts:
            print("bench: burst ...", flush=True)
            bench.burst()
        if "policy" in parts:
            print("bench: policy fit ...", flush=True)
            bench.policy_fit()
    finally:
        bench.stop()
        if not args.keep:
            shutil.rmtree(bench.tmp, ignore_errors=True)
    res = bench.results
    res["duration_s"] = time.time() - started
    (bench.out / "results.json").write_text(json.dumps(res, indent=1))
    text = report(res)
    verdicts = goals(res)
    text += "\n\n## Goals\n\n" + "\n".join(f"- {'MET' if ok else 'MISSED'}: {g} ({fig})" for g, ok, fig in verdicts)
    text += f"\n\nrun time {res['duration_s']:.0f} s; raw figures in {bench.out / 'results.json'}\n"
    (bench.out / "report.md").write_text(text)
    print(text)
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
