#!/usr/bin/env python3
"""Refresh figures for BENCHMARKS.md: the credentials endpoint's latency (p50, p99) under
1,000 requests per second, and the STS call rate of the refresh scheduler with 1,000 live
endpoint sessions.

Setup: tests/stand_ins/fake_sts.py with `--lifetime L` (credentials expire L seconds after
issue, whatever DurationSeconds says, so that several refresh periods fit in a run),
`provisioner serve --endpoint 127.0.0.1:PORT` with 1,000 platform users, and this process
launching one session per user over the broker's socket (as a proxy user for all of
them; the session's process is this benchmark, which stays alive). The sessions' uid is
this process's, so its requests pass the endpoint's owner check.

Latency: open loop, W worker processes pacing requests at 1,000 per second in total, each
for a random session, measured from before connect to the last byte of the answer; once
with a new TCP connection per request (what an SDK does after its connection idled out:
the owner lookup in /proc/net/tcp runs per connection) and once over kept-alive
connections.

STS rate: after the launches, the stand-in's request log is cleared and every AssumeRole
for DURATION seconds is counted, per second. The scheduler re-mints when 20 minutes plus a
jitter of up to 10 are left, scaled for short lifetimes: with lifetime L (under 40 min) the
lead is L/2 and the jitter window L/4, so a session re-mints every L/4 to L/2 seconds, mean
3L/8. Expected calls: sessions x DURATION / (3L/8).

Idle (`--idle SECONDS`, instead of the two above): the broker's CPU time and context
switches (all its threads, from /proc) over SECONDS with the sessions live and nothing to
do: no request, and credentials (`--lifetime 3600`) far from their refresh. What is left
is the cost of watching the sessions' processes. `--without-pidfd` starts the broker
under tests/stand_ins/without_pidfd.py (pidfd_open refused), so that it polls each
session's process every second as it does where pidfds are unavailable.

Everything listens on 127.0.0.1 or a Unix socket in a scratch directory. Run as any user.

Usage: refresh_bench.py --provisioner target/release/provisioner [--sessions 1000]
                        [--lifetime 40] [--duration 90] [--rate 1000] [--seconds 20] [--out DIR]
       refresh_bench.py --provisioner target/release/provisioner --idle 60 --lifetime 3600
                        [--without-pidfd]
"""

import argparse
import getpass
import json
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAKE_STS = HERE.parent / "stand_ins" / "fake_sts.py"
WITHOUT_PIDFD = HERE.parent / "stand_ins" / "without_pidfd.py"
BASE_KEY = "AKIABENCHBASEKEY0000"
ROLE = "arn:aws:iam::123456789012:role/PlatformInfraRole"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not start on {port}")


def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("closed")
        buf += chunk
    return buf


def launch(sock_path, user):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(str(sock_path))
        s.sendall(frame({"version": 1, "op": "launch", "accept_endpoint": True,
                         "context": {"user": user, "flow": "notebook"}}))
        (n,) = struct.unpack(">I", recv_exact(s, 4))
        return json.loads(recv_exact(s, n))


def platform(sts_url, n):
    return {
        "settings": {"syntasa_session_policy_enabled": "true", "session_policy_bedrock": "false",
                     "session_policy_platform_folders": "none",
                     "broker_max_sessions_per_uid": str(n + 100),
                     "broker_max_connections_per_uid": "4096",
                     "credential_lifetime_seconds": "900", "decision_log": "stderr"},
        "aws": {"region": "us-east-1", "account_id": "123456789012",
                "session_policy_role_arn": ROLE, "platform_bucket": "acme-platform",
                "sts_endpoint": sts_url},
        "data_planes": [{"id": "dp-1", "s3": ["s3://acme-data/one/"]}],
        "users": [{"id": f"u{i:04d}", "data_planes": ["dp-1"]} for i in range(n)],
        "proxy_users": [{"unix_user": getpass.getuser(), "users": ["*"]}],
    }


def sts_requests(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_requests", timeout=30) as r:
        return json.load(r)


def sts_post(port, path, doc):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(doc).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def http_get(sock, host, path, token):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed")
        body += chunk
    return status


def load_worker(args):
    """One paced worker: `rate` requests per second for `seconds`, latencies in ms."""
    port, sessions, rate, seconds, keepalive, seed = args
    rnd = random.Random(seed)
    host = f"127.0.0.1:{port}"
    lat, errors, late = [], 0, 0
    conn = None
    start = time.perf_counter() + 0.2
    n = int(rate * seconds)
    for i in range(n):
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        else:
            late += 1
        path, token = rnd.choice(sessions)
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            status = http_get(conn, host, path, token)
            if not keepalive:
                conn.close()
                conn = None
        except OSError:
            status = 0
            if conn is not None:
                conn.close()
            conn = None
        lat.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            errors += 1
    if conn is not None:
        conn.close()
    return lat, errors, late, time.perf_counter() - start


def latency(port, sessions, rate, seconds, keepalive, workers):
    per = rate / workers
    with multiprocessing.Pool(workers) as pool:
        results = pool.map(load_worker, [(port, sessions, per, seconds, keepalive, i) for i in range(workers)])
    lat = sorted(x for r in results for x in r[0])
    errors = sum(r[1] for r in results)
    late = sum(r[2] for r in results)
    wall = max(r[3] for r in results)

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))]

    return {"requests": len(lat), "errors": errors, "achieved_rps": round(len(lat) / wall, 1),
            "late_sends": late, "p50_ms": round(pct(50), 3), "p90_ms": round(pct(90), 3),
            "p99_ms": round(pct(99), 3), "max_ms": round(lat[-1], 3)}


def tcp_rows():
    n = 0
    for t in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(t) as f:
                n += sum(1 for _ in f) - 1
        except OSError:
            pass
    return n


def cpu_and_switches(pid):
    """(CPU seconds of the whole process so far, {thread id: context switches so far})."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    switches = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                switches[task] = sum(int(line.split()[1]) for line in f
                                     if line.startswith(("voluntary_ctxt_switches",
                                                         "nonvoluntary_ctxt_switches")))
        except OSError:
            pass
    return cpu, switches


def idle(broker_pid, sessions, seconds):
    """The broker's CPU use and context switches per second over `seconds` of idling.
    CPU time counts every thread; context switches count the threads alive at the end
    (Tokio's blocking threads come and go)."""
    time.sleep(5)  # let the launches' tasks settle
    cpu0, sw0 = cpu_and_switches(broker_pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    cpu1, sw1 = cpu_and_switches(broker_pid)
    wall = time.monotonic() - t0
    switched = sum(n - sw0.get(tid, 0) for tid, n in sw1.items())
    return {"sessions": sessions, "seconds": round(wall, 1),
            "cpu_ms_per_s": round((cpu1 - cpu0) * 1000 / wall, 3),
            "cpu_percent_of_one_core": round((cpu1 - cpu0) * 100 / wall, 3),
            "context_switches_per_s": round(switched / wall, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--provisioner", required=True)
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--lifetime", type=int, default=40)
    ap.add_argument("--duration", type=int, default=90)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--idle", type=int, metavar="SECONDS")
    ap.add_argument("--without-pidfd", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="refresh-bench-"))
    os.chmod(scratch, 0o755)
    sts_port, ep_port = free_port(), free_port()
    procs = []
    try:
        sts = subprocess.Popen([sys.executable, str(FAKE_STS), "--port", str(sts_port),
                                "--lifetime", str(a.lifetime)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sts)
        wait_port(sts_port, "the stand-in STS")
        cfg = scratch / "platform.json"
        cfg.write_text(json.dumps(platform(f"http://127.0.0.1:{sts_port}", a.sessions)))
        sock = scratch / "broker.sock"
        log = open(scratch / "broker.log", "wb")
        env = {"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_ACCESS_KEY_ID": BASE_KEY, "AWS_SECRET_ACCESS_KEY": "bench-base-secret"}
        wrapper = [sys.executable, str(WITHOUT_PIDFD)] if a.without_pidfd else []
        broker = subprocess.Popen([*wrapper, a.provisioner, "serve", "--config", str(cfg), "--socket", str(sock),
                                   "--state", str(scratch / "state"), "--endpoint", f"127.0.0.1:{ep_port}"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=log)
        procs.append(broker)
        wait_port(ep_port, "the broker's endpoint")
        deadline = time.monotonic() + 15
        while not sock.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the broker made no socket")
            time.sleep(0.05)

        t0 = time.monotonic()
        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda i: launch(sock, f"u{i:04d}"), range(a.sessions)))
        launch_s = time.monotonic() - t0
        bad = [x for x in answers if not x.get("ok") or x.get("delivery") != "endpoint"]
        if bad:
            raise SystemExit(f"{len(bad)} launches without endpoint delivery, e.g. {bad[0]}")
        sessions = []
        for x in answers:
            url = x["endpoint"]["url"]
            sessions.append((url[url.index("/v1/"):], x["endpoint"]["token"]))

        if a.idle:
            result = idle(broker.pid, a.sessions, a.idle)
            log_text = (scratch / "broker.log").read_text(errors="replace")
            result.update(launch_s=round(launch_s, 1), lifetime_s=a.lifetime,
                          watched_by="polling" if "pidfd_open is not available" in log_text else "pidfd",
                          loadavg=os.getloadavg(), cpus=os.cpu_count())
            print(json.dumps(result, indent=1))
            if a.out:
                Path(a.out).mkdir(parents=True, exist_ok=True)
                (Path(a.out) / "refresh-idle.json").write_text(json.dumps(result, indent=1))
            return 0

        sts_post(sts_port, "/_reset", {})
        observe_start = time.time()
        # Latency in the middle of the observation window, both connection modes.
        time.sleep(5)
        new_conn = latency(ep_port, sessions, a.rate, a.seconds, False, a.workers)
        rows_after_new = tcp_rows()
        keep = latency(ep_port, sessions, a.rate, a.seconds, True, a.workers)
        remaining = a.duration - (time.time() - observe_start)
        if remaining > 0:
            time.sleep(remaining)
        observed = time.time() - observe_start
        calls = [r["time"] for r in sts_requests(sts_port) if r["action"] == "AssumeRole"]
        buckets = [0] * (int(observed) + 1)
        for t in calls:
            i = int(t - observe_start)
            if 0 <= i < len(buckets):
                buckets[i] += 1
        buckets = buckets[:int(observed)]
        mean_period = 3 * a.lifetime / 8
        expected = a.sessions * observed / mean_period
        # The first refreshes of sessions launched together fall in one jitter window; the
        # spread is judged on the second half, when phases have mixed.
        half = buckets[len(buckets) // 2:]
        spread = {
            "mean_per_s": round(statistics.mean(half), 1),
            "max_per_s": max(half),
            "min_per_s": min(half),
            "cv": round(statistics.pstdev(half) / statistics.mean(half), 3) if statistics.mean(half) else None,
        }
        result = {
            "sessions": a.sessions, "lifetime_s": a.lifetime, "launch_s": round(launch_s, 1),
            "observed_s": round(observed, 1), "assume_role_calls": len(calls),
            "expected_calls": round(expected), "calls_per_session_per_period": round(len(calls) / expected, 3),
            "calls_per_second": buckets, "spread_second_half": spread,
            "latency_new_connection": new_conn, "latency_keepalive": keep,
            "tcp_rows_after_new_connection_run": rows_after_new,
            "endpoint_refusals_in_log": (scratch / "broker.log").read_text(errors="replace").count("endpoint: "),
            "loadavg": os.getloadavg(), "cpus": os.cpu_count(),
        }
        print(json.dumps(result, indent=1))
        if a.out:
            Path(a.out).mkdir(parents=True, exist_ok=True)
            (Path(a.out) / "refresh.json").write_text(json.dumps(result, indent=1))
        ok = (new_conn["errors"] == 0 and keep["errors"] == 0
              and 0.8 <= result["calls_per_session_per_period"] <= 1.25)
        return 0 if ok else 1
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
