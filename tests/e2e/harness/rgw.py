"""A single-node Ceph cluster with radosgw on 127.0.0.1: S3 plus STS with enforced
session policies, the only server on this machine that proves what a scoped session can
and cannot reach.

Started by rgw-start.sh (beside this file) in a fresh directory with free ports, stopped
by rgw-stop.sh. What it provides:
- the launcher user: LAUNCHERKEY / LAUNCHERSECRET (`arn:aws:iam:::user/launcher`), allowed
  to assume roles and owner of the test buckets;
- role `nbrole` (`arn:aws:iam:::role/nbrole`), trusting the launcher, with an `s3:*` role
  policy, so a session's reach is decided by its session policy alone. Its
  MaxSessionDuration is 3,600 s (radosgw-admin cannot set another; AWS's default too);
  `create_role(..., max_session_duration=43200)` makes roles that allow more.

radosgw facts that matter to tests: ARNs carry no account; policies must be sent as
minified JSON; a session policy naming a non-S3 action (glue:*, bedrock:*) is refused;
STS errors carry no code (boto3 reports "Unknown"); S3 denials are `AccessDenied`;
GetCallerIdentity is not implemented.
"""

import json
import subprocess
from datetime import timezone
from pathlib import Path

import boto3
from botocore.config import Config

from .env import clean_env
from .moto import Keys
from .net import free_port

HERE = Path(__file__).resolve().parent
LAUNCHER = Keys("LAUNCHERKEY", "LAUNCHERSECRET", arn="arn:aws:iam:::user/launcher")
NBROLE_ARN = "arn:aws:iam:::role/nbrole"
REGION = "us-east-1"
S3_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::*"]}],
}


def minified(doc):
    """Policy JSON as radosgw accepts it (spaces break its form decoding)."""
    return doc if isinstance(doc, str) else json.dumps(doc, separators=(",", ":"))


class Rgw:
    """A running cluster under `workdir`. Call stop() when done (the fixture does)."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.port = free_port()
        self.mon_port = free_port()
        while self.mon_port == self.port:
            self.mon_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.region = REGION
        self.launcher = LAUNCHER
        self.role_arn = NBROLE_ARN
        try:
            subprocess.run(
                [str(HERE / "rgw-start.sh"), str(self.dir), str(self.port), str(self.mon_port)],
                env=clean_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=180,
                check=True,
            )
        except subprocess.CalledProcessError as e:
            self.stop()
            raise RuntimeError(
                f"radosgw did not start (exit {e.returncode}):\n{e.stdout}\n{e.stderr}"
            ) from None
        except BaseException:
            self.stop()
            raise

    def stop(self):
        subprocess.run(
            [str(HERE / "rgw-stop.sh"), str(self.dir)],
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )

    # -- administration --------------------------------------------------------------

    def admin(self, *args):
        """Runs radosgw-admin against this cluster; returns stdout, raises on failure."""
        r = subprocess.run(
            [
                "radosgw-admin",
                "-c",
                str(self.dir / "ceph.conf"),
                "-n",
                "client.rgw",
                # The daemon owns client.rgw's admin socket; this process needs none.
                "--admin-socket",
                "",
                *args,
            ],
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode != 0:
            raise RuntimeError(f"radosgw-admin {' '.join(args[:2])} failed: {r.stderr.strip()}")
        return r.stdout

    def create_user(self, uid, access_key, secret_key, caps=None):
        """An S3 user with the given keys; caps="roles=*" lets it assume roles."""
        self.admin(
            "user", "create", f"--uid={uid}", f"--display-name={uid}",
            f"--access-key={access_key}", f"--secret={secret_key}",
        )
        if caps:
            self.admin("caps", "add", f"--uid={uid}", f"--caps={caps}")
        return Keys(access_key, secret_key, arn=f"arn:aws:iam:::user/{uid}")

    def create_role(self, name, trusted=(LAUNCHER.arn,), policy=S3_ALL, max_session_duration=None):
        """A role trusting `trusted` (user or role ARNs) with `policy` as its role policy.
        With max_session_duration the role is made through radosgw's IAM API (radosgw-admin
        cannot set it); otherwise with radosgw-admin (MaxSessionDuration 3,600 s).
        Returns the role ARN."""
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": list(trusted)},
                    "Action": ["sts:AssumeRole"],
                }
            ],
        }
        if max_session_duration is None:
            self.admin(
                "role", "create", f"--role-name={name}", "--path=/",
                f"--assume-role-policy-doc={minified(trust)}",
            )
            if policy is not None:
                self.admin(
                    "role-policy", "put", f"--role-name={name}", "--policy-name=policy",
                    f"--policy-doc={minified(policy)}",
                )
        else:
            iam = self.client("iam")
            iam.create_role(
                RoleName=name,
                Path="/",
                AssumeRolePolicyDocument=minified(trust),
                MaxSessionDuration=max_session_duration,
            )
            if policy is not None:
                iam.put_role_policy(
                    RoleName=name, PolicyName="policy", PolicyDocument=minified(policy)
                )
        return f"arn:aws:iam:::role/{name}"

    # -- clients ---------------------------------------------------------------------

    def client(self, service, keys=None, validate=True):
        """A boto3 client for this radosgw (s3, sts or iam), launcher keys by default.
        validate=False turns off botocore's client-side parameter checks (for STS
        durations under AWS's 900 s minimum, which this radosgw accepts)."""
        keys = keys or self.launcher
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
            aws_session_token=keys.session_token,
            config=Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4" if service == "s3" else None,
                retries={"max_attempts": 1},
                connect_timeout=5,
                read_timeout=30,
                parameter_validation=validate,
            ),
        )

    def s3(self, keys=None):
        return self.client("s3", keys)

    def create_bucket(self, bucket, objects=None, keys=None):
        """Creates `bucket` (if new) with the launcher's keys and puts `objects`
        ({key: bytes or str})."""
        s3 = self.s3(keys)
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        self.put_objects(bucket, objects or {}, keys)

    def put_objects(self, bucket, objects, keys=None):
        s3 = self.s3(keys)
        for key, body in objects.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)

    def assume_role(self, policy=None, role_arn=None, session_name="e2e", duration=3600, keys=None):
        """AssumeRole (launcher keys by default) with an optional session policy (dict or
        string, sent minified). Returns the session's Keys."""
        kwargs = {
            "RoleArn": role_arn or self.role_arn,
            "RoleSessionName": session_name,
            "DurationSeconds": duration,
        }
        if policy is not None:
            kwargs["Policy"] = minified(policy)
        c = self.client("sts", keys).assume_role(**kwargs)["Credentials"]
        return Keys(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])

    def mint(self, policy=None, duration=3600, session_name="e2e", role_arn=None):
        """AssumeRole like assume_role(), returning (Keys, Expiration) with radosgw's own
        expiry as RFC 3339 text. Durations down to 20 s are accepted (rgw-start.sh lowers
        radosgw's minimum; AWS's is 900 s), so that tests can watch credentials expire."""
        kwargs = {
            "RoleArn": role_arn or self.role_arn,
            "RoleSessionName": session_name,
            "DurationSeconds": duration,
        }
        if policy is not None:
            kwargs["Policy"] = minified(policy)
        c = self.client("sts", validate=duration >= 900).assume_role(**kwargs)["Credentials"]
        expiration = c["Expiration"].astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return Keys(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]), expiration
