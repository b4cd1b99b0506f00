#!/usr/bin/env python3
"""The product's main job, end to end, on local stand-ins.

Starts a single-node Ceph radosgw on 127.0.0.1 (S3 + STS with enforced session
policies), writes a platform file, installs the provisioner kernelspec into a throwaway
Jupyter directory, and runs examples/demo/sample.ipynb through papermill as two users:

- bob, in workspace ws-finance, whose service account is the role finance-sa;
- alice, in workspace ws-open, scoped by a data-plane session policy to marketing/.

Each run shows the identity the kernel got, one allowed read and one AccessDenied,
and the decision record. Every process started here is stopped at the end.

Usage: run_demo.py PROVISIONER_BIN   (scripts/demo builds it and picks the Python)
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from harness.env import clean_env  # noqa: E402
from harness.platform import write_platform  # noqa: E402
from harness.rgw import Rgw  # noqa: E402

BUCKET = "acme-data"
FINANCE_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": [f"arn:aws:s3:::{BUCKET}/finance/*"]},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
    ],
}


def say(text=""):
    print(text, flush=True)


def platform(rgw, log):
    return {
        "settings": {
            "syntasa_session_policy_enabled": "true",
            "syntasa_session_policy_duration": "3600",
            # radosgw accepts only S3 actions in a session policy.
            "session_policy_bedrock": "false",
            "session_policy_platform_folders": "",
            "decision_log": str(log),
        },
        "aws": {"region": rgw.region, "session_policy_role_arn": rgw.role_arn, "sts_endpoint": rgw.endpoint},
        "service_accounts": [{"id": "sa-finance", "role_arn": "arn:aws:iam:::role/finance-sa", "duration_seconds": 3600}],
        "workspaces": [{"id": "ws-finance", "service_account": "sa-finance"}, {"id": "ws-open"}],
        "runtime_templates": [{"id": "rt-default"}],
        "data_planes": [
            {"id": "dp-marketing", "s3": [f"s3://{BUCKET}/marketing/"]},
            {"id": "dp-finance", "s3": [f"s3://{BUCKET}/finance/"]},
        ],
        "users": [
            {"id": "alice", "data_planes": ["dp-marketing"]},
            {"id": "bob", "data_planes": ["dp-finance"]},
            {"id": "root", "system_admin": True},
        ],
    }


def run_notebook(provisioner_env, jupyter_dir, user, workspace, work):
    out = work / f"sample-{user}.ipynb"
    env = clean_env({**provisioner_env, "SYN_USER": user, "SYN_WORKSPACE_ID": workspace,
                     "SYN_FLOW": "notebook-run", "JUPYTER_PATH": str(jupyter_dir)})
    r = subprocess.run(
        [sys.executable, "-m", "papermill", str(HERE / "sample.ipynb"), str(out), "-k", "python3-scoped",
         "--start-timeout", "60", "--no-progress-bar"],
        env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"papermill failed for {user}:\n{r.stderr[-4000:]}")
    import nbformat

    cell = nbformat.read(out, as_version=4).cells[1]
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.split("Usage: ")[1])
    provisioner = Path(sys.argv[1]).resolve()
    work = Path(tempfile.mkdtemp(prefix="provisioner-demo-"))
    # Ceph's admin sockets are UNIX sockets: keep the cluster's path short.
    say(f"== starting Ceph radosgw (S3 + STS) on 127.0.0.1 under {work}")
    (work / "rgw").mkdir()
    rgw = Rgw(work / "rgw")
    try:
        rgw.create_bucket(BUCKET, {"marketing/campaigns.csv": "campaign,clicks\nspring,120\n",
                                   "finance/ledger.csv": "account,balance\nops,1000000\n"})
        rgw.create_role("finance-sa", policy=FINANCE_ONLY)
        log = work / "decisions.jsonl"
        config = write_platform(work / "platform.json", platform(rgw, log))
        jupyter_dir = work / "jupyter"
        say(f"== platform file {config}")
        say("== installing the kernelspec into a throwaway Jupyter directory")
        r = subprocess.run([str(provisioner), "kernelspec", "install", "--dir", str(jupyter_dir),
                            "--name", "python3-scoped", "--config", str(config), "--python", sys.executable],
                           env=clean_env(), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        say("   " + r.stdout.strip().replace("\n", "\n   "))
        say(f"   argv: {json.loads((jupyter_dir / 'kernels/python3-scoped/kernel.json').read_text())['argv']}")

        # The launcher's own (cluster) credentials: here the radosgw launcher user.
        launcher_env = {**rgw.launcher.env(), "AWS_ENDPOINT_URL": rgw.endpoint,
                        "AWS_REGION": rgw.region, "AWS_DEFAULT_REGION": rgw.region}
        for user, workspace, why in (("bob", "ws-finance", "workspace service account finance-sa"),
                                     ("alice", "ws-open", "data-plane session policy (marketing/)")):
            say()
            say(f"== scheduled run of sample.ipynb as {user} in {workspace}: expect {why}")
            say("   " + run_notebook(launcher_env, jupyter_dir, user, workspace, work).strip().replace("\n", "\n   "))

        say()
        say(f"== decision records ({log})")
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            say(f"   {rec['user']}: tier={rec['tier']} role={rec['role_arn']} session={rec['session_name']} "
                f"policy_chars={rec['policy_chars']} expires={rec['expiration']} in {rec['elapsed_ms']} ms")
            say(f"      skipped: {', '.join(s['tier'] + '=' + s['reason'] for s in rec['skipped']) or '-'}")
        say()
        say("== the same decisions, explained without minting anything:")
        r = subprocess.run([str(provisioner), "explain", "--config", str(config), "--user", "alice",
                            "--workspace", "ws-open"], env=clean_env(), capture_output=True, text=True, timeout=60)
        say("   " + r.stdout.strip().replace("\n", "\n   "))
    finally:
        say()
        say("== stopping radosgw")
        rgw.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
