#!/usr/bin/env python3
"""Broker figures for BENCHMARKS.md: launch overhead of `provisioner kernel` through the
broker (cache hit and cache miss) beside embedded mode, the Python/boto3 launcher and a
floor (a minimal Rust program that only execs the same child), interleaved in one run;
a burst of 200 launches for 50 users; the broker's memory with 1,000 live sessions.

Everything listens on 127.0.0.1 or a Unix socket in a scratch directory. The STS is
tests/bench/instant_sts.py (AssumeRole answered as fast as Python can), so what is
measured is the launcher and the broker, not the server. Run as any user; the broker's
socket directory is the scratch directory, owned by that user.

Usage: broker_bench.py --provisioner target/release/provisioner --python VENV/bin/python
                       [--rounds 30] [--out DIR]
"""

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTANT_STS = HERE / "instant_sts.py"
PY_LAUNCHER = HERE / "python_launcher.py"
BASE_KEY = "AKIABENCHBASEKEY0000"
ROLE = "arn:aws:iam::123456789012:role/PlatformInfraRole"

FLOOR_RS = """
use std::os::unix::process::CommandExt;
fn main() {
    let a: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let e = std::process::Command::new(&a[0]).args(&a[1..]).exec();
    eprintln!("{e}");
    std::process::exit(127);
}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_base():
    return {"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true", "HOME": "/tmp"}


def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def ask(sock_path, user):
    """One raw protocol-v1 launch, as a job runner acting for `user` would send it."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(sock_path)
        s.sendall(frame({"version": 1, "op": "launch",
                         "context": {"user": user, "workspace": None, "runtime_template": None,
                                     "flow": "notebook"}}))
        head = b""
        while len(head) < 4:
            chunk = s.recv(4 - len(head))
            if not chunk:
                raise RuntimeError("broker closed without an answer")
            head += chunk
        n = struct.unpack(">I", head)[0]
        body = b""
        while len(body) < n:
            chunk = s.recv(n - len(body))
            if not chunk:
                raise RuntimeError("short answer")
            body += chunk
    return json.loads(body)


def platform(sts_port, users, min_remaining):
    planes = [{"id": f"dp-{i}", "s3": [f"s3://acme-datalake-prod/plane{i}/curated/"],
               "glue_databases": [f"plane{i}_curated"]} for i in range(4)]
    return {
        "settings": {"syntasa_session_policy_enabled": "true", "sts_deadline_seconds": "10",
                     "broker_min_remaining_seconds": str(min_remaining),
                     "broker_max_connections_per_uid": "4096",
                     "broker_max_sessions_per_uid": "65536",
                     "decision_log": "stderr"},
        "aws": {"region": "us-east-1", "account_id": "123456789012", "session_policy_role_arn": ROLE,
                "platform_bucket": "acme-platform", "sts_endpoint": f"http://127.0.0.1:{sts_port}"},
        "data_planes": planes,
        "users": [{"id": u, "data_planes": ["dp-0"]} for u in users],
        "proxy_users": [{"unix_user": me(), "users": ["*"]}],
    }


def me():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


class Broker:
    def __init__(self, prov, tmp, name, doc):
        self.dir = tmp / name
        self.dir.mkdir(mode=0o755)
        self.config = self.dir / "platform.json"
        self.config.write_text(json.dumps(doc))
        self.socket = str(self.dir / "broker.sock")
        env = env_base() | {"AWS_ACCESS_KEY_ID": BASE_KEY, "AWS_SECRET_ACCESS_KEY": "bench-base-secret"}
        self.log = open(self.dir / "broker.log", "w")
        self.proc = subprocess.Popen([prov, "serve", "--config", str(self.config), "--socket", self.socket,
                                      "--state", str(self.dir / "state")], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 10
        while not os.path.exists(self.socket):
            if time.time() > deadline or self.proc.poll() is not None:
                sys.exit(f"broker_bench: broker {name} did not start; see {self.dir / 'broker.log'}")
            time.sleep(0.02)

    def rss_kib(self):
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return {k: int(v.split()[0]) for k, v in (l.split(":", 1) for l in status.splitlines())
                if k in ("VmRSS", "VmHWM")}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def timed(argv, env):
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"broker_bench: {argv[:4]} exited {r.returncode}")
    return dt * 1000


def summary(v):
    v = sorted(v)
    q = lambda p: v[min(len(v) - 1, int(round(p * (len(v) - 1))))]
    return {"n": len(v), "median_ms": statistics.median(v), "p10_ms": q(0.1), "p90_ms": q(0.9),
            "min_ms": v[0], "max_ms": v[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--provisioner", required=True)
    ap.add_argument("--python", required=True, help="a Python with boto3, for the Python launcher")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--out")
    a = ap.parse_args()
    prov = str(Path(a.provisioner).resolve())
    tmp = Path(tempfile.mkdtemp(prefix="broker-bench-"))
    os.chmod(tmp, 0o755)
    res = {}
    sts_port = free_port()
    sts = subprocess.Popen([sys.executable, str(INSTANT_STS), "--port", str(sts_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{sts_port}/_health", timeout=1)
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("broker_bench: instant_sts did not start")
                time.sleep(0.05)

        # The floor: a minimal Rust program that only execs the child.
        (tmp / "floor.rs").write_text(FLOOR_RS)
        subprocess.run(["rustc", "-O", "-o", str(tmp / "floor"), str(tmp / "floor.rs")], check=True)

        user = me()
        embedded_cfg = tmp / "embedded.json"
        embedded_cfg.write_text(json.dumps(platform(sts_port, [user], 3600)))
        hit = Broker(prov, tmp, "hit", platform(sts_port, [user], 3600))
        # Credentials live 43,200 s; asking for more left than that means never reusing them.
        miss = Broker(prov, tmp, "miss", platform(sts_port, [user], 43200))
        child = ["/bin/true"]
        env = env_base()
        emb_env = env | {"AWS_ACCESS_KEY_ID": BASE_KEY, "AWS_SECRET_ACCESS_KEY": "bench-base-secret"}
        variants = {
            "floor (exec only)": ([str(tmp / "floor"), *child], env),
            "embedded (STS per launch)": ([prov, "kernel", "--config", str(embedded_cfg), "--user", user, "--",
                                           *child], emb_env),
            "broker, cache hit": ([prov, "kernel", "--broker", hit.socket, "--", *child], env),
            "broker, cache miss (STS per launch)": ([prov, "kernel", "--broker", miss.socket, "--", *child], env),
            "Python launcher (boto3)": ([a.python, str(PY_LAUNCHER), "--config", str(embedded_cfg), "--user", user,
                                         "--", *child], emb_env),
            "/bin/true alone": (child, env),
        }
        for argv, e in variants.values():  # warm-up, and the first hit fills the cache
            timed(argv, e)
        times = {k: [] for k in variants}
        # A new order every round (fixed seed), so noise from other processes hits every
        # launcher alike.
        order = list(variants)
        rng = random.Random(20261130)
        for _ in range(a.rounds):
            rng.shuffle(order)
            for k in order:
                argv, e = variants[k]
                times[k].append(timed(argv, e))
        res["launch"] = {k: summary(v) for k, v in times.items()}
        res["rounds"] = a.rounds
        res["load_average"] = os.getloadavg()

        # Burst: 200 launches for 50 users at once through a fresh broker.
        names = [f"user{i:02d}" for i in range(50)]
        burst = Broker(prov, tmp, "burst", platform(sts_port, names, 900))
        before = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sts_port}/_stats"))["requests"]
        answers = [None] * 200
        lat = [0.0] * 200

        def one(i):
            t = time.perf_counter()
            answers[i] = ask(burst.socket, names[i % 50])
            lat[i] = (time.perf_counter() - t) * 1000

        t0 = time.perf_counter()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = (time.perf_counter() - t0) * 1000
        calls = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sts_port}/_stats"))["requests"] - before
        ok = sum(1 for i, x in enumerate(answers)
                 if x and x.get("ok") and x["record"]["user"] == names[i % 50] and x["credentials"])
        res["burst"] = {"launches": 200, "users": 50, "assume_role_calls": calls, "granted": ok,
                        "wall_ms": wall, "latency": summary(lat)}
        burst.stop()

        # Memory with 1,000 live sessions (1,000 users: 1,000 cache entries too).
        many = [f"u{i:04d}" for i in range(1000)]
        big = Broker(prov, tmp, "sessions", platform(sts_port, many, 900))
        idle = big.rss_kib()
        for u in many:
            r = ask(big.socket, u)
            if not r.get("ok"):
                sys.exit(f"broker_bench: launch for {u} refused: {r}")
        res["sessions"] = {"live_sessions": 1000, "idle_kib": idle, "with_sessions_kib": big.rss_kib(),
                           "state_bytes": sum(p.stat().st_size for p in (big.dir / "state").iterdir())}
        big.stop()
        hit.stop()
        miss.stop()
    finally:
        sts.terminate()
        sts.wait()
        if not a.out:
            shutil.rmtree(tmp, ignore_errors=True)

    base = res["launch"]["/bin/true alone"]["median_ms"]
    floor = res["launch"]["floor (exec only)"]["median_ms"]
    lines = [f"## Broker ({res['rounds']} interleaved rounds, child /bin/true, "
             f"load average {res['load_average'][0]:.1f} after the launches)", "",
             "| launcher | median ms | p10 | p90 | overhead ms (median − /bin/true) | above the floor ms |",
             "|---|---:|---:|---:|---:|---:|"]
    for k, s in res["launch"].items():
        lines.append(f"| {k} | {s['median_ms']:.2f} | {s['p10_ms']:.2f} | {s['p90_ms']:.2f} | "
                     f"{s['median_ms'] - base:.2f} | {s['median_ms'] - floor:.2f} |")
    hit_gap = res["launch"]["broker, cache hit"]["median_ms"] - floor
    res["goal_hit_within_1ms_of_floor"] = hit_gap <= 1.0
    b = res["burst"]
    lines += ["", f"Burst: {b['launches']} launches for {b['users']} users: {b['assume_role_calls']} AssumeRole calls, "
              f"{b['granted']} granted with the user's own identity, {b['wall_ms']:.0f} ms wall, latency median "
              f"{b['latency']['median_ms']:.1f} ms, p90 {b['latency']['p90_ms']:.1f} ms."]
    s = res["sessions"]
    lines += [f"Memory: idle RSS {s['idle_kib']['VmRSS'] / 1024:.1f} MiB; with {s['live_sessions']} live sessions "
              f"{s['with_sessions_kib']['VmRSS'] / 1024:.1f} MiB (peak {s['with_sessions_kib']['VmHWM'] / 1024:.1f} MiB); "
              f"state directory {s['state_bytes'] / 1024:.0f} KiB."]
    lines += ["", f"Goal: a cache hit within 1 ms of the floor: {'MET' if hit_gap <= 1.0 else 'MISSED'} "
              f"({hit_gap:.2f} ms)."]
    text = "\n".join(lines)
    print(text)
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "broker.md").write_text(text + "\n")
        (out / "broker.json").write_text(json.dumps(res, indent=1))
    if hit_gap > 1.0:
        sys.exit(1)


if __name__ == "__main__":
    main()
