"""Helpers for tests with several real Unix users and the broker.

`UserWorld` puts what the users run into their shared directory (copies of the built
binaries, this suite's user-side scripts, kernelspecs), starts kernels as a user through
user_kernel_driver.py, and runs user_probes.py functions as a user.

Kernelspecs are written by hand in the form `provisioner kernelspec install` writes:
argv `[provisioner, "kernel", "--broker", SOCKET, "--", python, "-m", "ipykernel_launcher",
"-f", "{connection_file}"]`. A platform team puts them where every single-user server finds
them (here: a directory named by JUPYTER_PATH).
"""

import json
import secrets
import shutil
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent


class UserWorld:
    def __init__(self, users, provisioner_bin, wrap_bin=None):
        self.users = users
        self.venv = users.venv
        self.python = self.venv / "bin" / "python"
        # One directory per world: a binary another module's broker still runs is never
        # overwritten (ETXTBSY).
        tag = uuid.uuid4().hex[:8]
        self.bin_dir = users.share_dir(f"bin-{tag}")
        self.provisioner = users.share_file(provisioner_bin, f"bin-{tag}", "provisioner", mode=0o755)
        self.wrap = (users.share_file(wrap_bin, f"bin-{tag}", "spark-submit-wrap", mode=0o755)
                     if wrap_bin else None)
        self.lib = users.share_dir(f"lib-{tag}")
        for name in ("user_probes.py", "user_kernel_driver.py", "user_spark_job.py"):
            users.share_file(HERE / name, f"lib-{tag}", name)
        self.jupyter = users.share_dir(f"jupyter-{tag}")
        self.kernels_rel = f"jupyter-{tag}"
        users.share_dir(f"jupyter-{tag}", "kernels")

    def kernelspec(self, name, launcher_args=None, env=None):
        """Writes JUPYTER/kernels/NAME/kernel.json (root's, 0644). Without
        `launcher_args` the kernel is the bare ipykernel; with them, `provisioner
        kernel ARGS -- ipykernel...` (the scoped kernel)."""
        kernel = [str(self.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        argv = kernel if launcher_args is None else [str(self.provisioner), "kernel",
                                                     *map(str, launcher_args), "--", *kernel]
        spec = {"argv": argv, "display_name": f"Python ({name})", "language": "python",
                "env": dict(env or {}), "metadata": {"provisioner": {"kind": "python"}}}
        self.users.share_dir(self.kernels_rel, "kernels", name)
        self.users.write_shared(json.dumps(spec, indent=1) + "\n", self.kernels_rel, "kernels",
                                name, "kernel.json")
        return argv

    def run_kernel(self, user, kernel_name, cells, env=None, timeout=120):
        """Starts `kernel_name` as `user` (the kernel manager runs as the user), runs
        `cells`, shuts it down; returns the driver's answer (dict)."""
        req = {"kernel_name": kernel_name, "kernel_dirs": [str(self.jupyter / "kernels")],
               "cells": cells, "timeout": timeout}
        r = self.users.run_as(user, [self.python, self.lib / "user_kernel_driver.py"],
                              env=env, input=json.dumps(req), timeout=timeout * (len(cells) + 2))
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        assert lines, (f"the kernel driver printed no answer (exit {r.returncode}):\n"
                       f"stdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-4000:]}")
        answer = json.loads(lines[-1])
        answer["driver_stderr"] = r.stderr
        return answer

    def probe_cell(self, function, params):
        """A cell that runs user_probes.FUNCTION(params) and prints its JSON result."""
        return (f"import json, sys\nsys.path.insert(0, {str(self.lib)!r})\n"
                f"import user_probes\n"
                f"print('RESULT ' + json.dumps(user_probes.{function}(json.loads({json.dumps(params)!r}))))\n")

    def run_probe(self, user, function, params, env=None, timeout=180):
        """Runs user_probes.FUNCTION(params) as a program of `user`; returns its result."""
        r = self.users.run_as(user, [self.python, self.lib / "user_probes.py", function,
                                     json.dumps(params)], env=env, timeout=timeout)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        assert r.returncode == 0 and lines, (f"probe {function} failed (exit {r.returncode}):\n"
                                             f"{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
        return json.loads(lines[-1])


def cell_result(cell):
    """The JSON a probe cell printed after 'RESULT ' (fails with the cell's output)."""
    for line in cell["stdout"].splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError(f"the cell printed no result: error={cell.get('error')!r}\n"
                         f"stdout={cell['stdout'][-2000:]}\nstderr={cell['stderr'][-2000:]}\n"
                         + "\n".join(cell.get("traceback", []))[-3000:])


def copy_tree_readable(src, dst):
    shutil.copytree(src, dst)
    for p in [Path(dst), *Path(dst).rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


class BrokerWorld:
    """radosgw, a bucket with one data plane per user, a platform file naming real Unix
    users, and `provisioner serve` as root holding base keys of its own.

    Each plane `plane-<role>/` holds `data.csv`. radosgw enforces session policies only
    for S3 actions, so the planes have no Glue databases and the Bedrock statement and
    platform folders are off. `ws-<role>` is a workspace with a service account (the
    broker's role, which may do anything in S3) that only `<role>`'s user may use: a user
    who got in would read every plane. The broker's base keys are `base` (made up per
    world); `secrets()` are the values no user process may ever see.

    `platform` overrides go through harness.platform.merged (e.g. proxy_users);
    `broker_args` are added to `provisioner serve` (e.g. --endpoint)."""

    def __init__(self, rgw, world, workdir, owners, broker_args=(), **platform):
        from harness.broker import Broker
        from harness.platform import BASE_PLATFORM, merged, write_platform

        self.rgw, self.world = rgw, world
        self.owners = dict(owners)  # role -> UnixUser
        tag = uuid.uuid4().hex[:8]
        self.bucket = f"brk-{tag}"
        # The broker's base credentials: an radosgw user of its own with a secret made up
        # here (the harness's launcher keys are well known, and other test runs on this
        # machine show them in radosgw-admin command lines), and a role only it may assume.
        self.base = rgw.create_user(f"broker-{tag}", f"BROKER{tag.upper()}", secrets.token_hex(20),
                                    caps="roles=*")
        role_arn = rgw.create_role(f"brokerrole-{tag}", trusted=(self.base.arn,))
        rgw.create_bucket(self.bucket, {f"plane-{r}/data.csv": f"{r}\n1,2\n" for r in self.owners})
        self.workdir = Path(workdir)
        private = self.workdir / "etc"
        private.mkdir(mode=0o700, parents=True)
        doc = merged(BASE_PLATFORM, {
            "settings": {"session_policy_bedrock": "false", "session_policy_platform_folders": "",
                         "syntasa_session_policy_duration": "3600", "decision_log": "stderr"},
            "aws": {"sts_endpoint": rgw.endpoint, "session_policy_role_arn": role_arn,
                    "account_id": None, "platform_bucket": None, "region": rgw.region},
            "service_accounts": [{"id": "sa-nb", "role_arn": role_arn, "duration_seconds": 3600}],
            "workspaces": [{"id": "ws-open"}] + [
                {"id": f"ws-{r}", "service_account": "sa-nb", "users": [u.name]}
                for r, u in self.owners.items()],
            "runtime_templates": [{"id": "rt-default"}],
            "data_planes": [{"id": f"dp-{r}", "s3": [f"s3://{self.bucket}/plane-{r}/"]}
                            for r in self.owners],
            "users": [{"id": u.name, "data_planes": [f"dp-{r}"]} for r, u in self.owners.items()],
        })
        doc = merged(doc, platform)
        self.platform_doc = doc
        self.config = write_platform(private / "platform.json", doc)
        self.config.chmod(0o600)
        # A copy a user can read: the platform file holds no secret, and the embedded-mode
        # attack needs one.
        self.readable_config = world.users.write_shared(json.dumps(doc), f"etc-{self.bucket}", "platform.json")
        self.broker = Broker(world.provisioner, self.config, self.workdir,
                             world.users.shared / f"run-{self.bucket}", self.base.env(),
                             extra_args=tuple(broker_args))

    def secrets(self):
        return [self.base.secret_access_key, self.base.access_key_id]

    def kernel_env(self, extra=None):
        """What a user's kernel needs besides credentials: radosgw's endpoint and region."""
        return {"AWS_ENDPOINT_URL": self.rgw.endpoint, "AWS_REGION": self.rgw.region,
                "AWS_DEFAULT_REGION": self.rgw.region, **(extra or {})}

    def stop(self):
        return self.broker.stop()
