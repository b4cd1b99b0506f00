"""A moto server on 127.0.0.1 for STS and IAM shapes.

moto checks identities, signatures and trust policies once IAM auth is on, and records
every AssumeRole it receives (`/moto-api/data.json`), so tests can assert what the
product sent. It does NOT enforce session policies: use radosgw (harness.rgw) to prove
scoping.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests
from botocore.config import Config

from .env import clean_env
from .net import free_port, wait_for_http

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# Any keys work while IAM auth is off (moto's initial state).
ADMIN_KEYS = ("AKIAADMINADMINADMIN0", "admin-secret-not-checked-while-auth-is-off")


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    arn: str | None = None

    def env(self):
        """The AWS_* variables that make an SDK use exactly these keys."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


def trust_policy(*principal_arns):
    """A role trust policy letting the given IAM users or roles call sts:AssumeRole."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": list(principal_arns)},
                "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            }
        ],
    }


def moto_server_path():
    """MOTO_SERVER, else moto_server beside the running Python (the test virtualenv)."""
    explicit = os.environ.get("MOTO_SERVER")
    candidate = Path(explicit) if explicit else Path(sys.executable).parent / "moto_server"
    if not candidate.is_file():
        raise FileNotFoundError(
            f"moto_server not found at {candidate}; run the tests through scripts/test "
            "or set MOTO_SERVER to the moto_server of a virtualenv with tests/requirements.txt"
        )
    return candidate


class MotoServer:
    """One `moto_server -H 127.0.0.1 -p PORT` process and helpers to shape its state."""

    def __init__(self, log_path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.account_id = ACCOUNT_ID
        self.region = REGION
        self._log = open(log_path, "wb")
        self._proc = subprocess.Popen(
            [str(moto_server_path()), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
        )
        self._http = requests.Session()
        self._http.trust_env = False  # never a proxy for loopback
        try:
            wait_for_http(f"{self.endpoint}/moto-api/data.json", timeout=30, proc=self._proc)
        except Exception:
            self.stop()
            raise

    def stop(self):
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    # -- state -----------------------------------------------------------------------

    def reset(self):
        """Forgets every user, role and recorded call, and turns IAM auth off."""
        self._post("/moto-api/reset", "")
        self.disable_auth()

    def enable_auth(self):
        """From now on moto checks signatures, identity policies and trust policies.
        Create users, roles and policies before calling this."""
        self._post("/moto-api/reset-auth", "0")

    def disable_auth(self):
        self._post("/moto-api/reset-auth", "inf")

    def data(self):
        r = self._http.get(f"{self.endpoint}/moto-api/data.json", timeout=10)
        r.raise_for_status()
        return r.json()

    def assume_role_records(self):
        """Every AssumeRole moto accepted, oldest first: dicts with role_arn,
        session_name, policy (the exact string sent), external_id, access_key_id..."""
        return list(self.data().get("sts", {}).get("AssumedRole", []))

    def _post(self, path, body):
        r = self._http.post(f"{self.endpoint}{path}", data=body, timeout=10)
        r.raise_for_status()

    # -- clients and IAM shapes ------------------------------------------------------

    def client(self, service, keys=None):
        keys = keys or Keys(*ADMIN_KEYS)
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
            aws_session_token=keys.session_token,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )

    def create_user(self, name, policy=None):
        """An IAM user with an access key; `policy` (a dict) becomes its inline policy."""
        iam = self.client("iam")
        arn = iam.create_user(UserName=name)["User"]["Arn"]
        if policy is not None:
            self.put_user_policy(name, policy)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Keys(key["AccessKeyId"], key["SecretAccessKey"], arn=arn)

    def create_role(self, name, trusted=(), *, path="/", max_session_duration=3600, policy=None):
        """An IAM role whose trust policy allows `trusted` (user or role ARNs); `policy`
        (a dict) becomes its inline policy. Returns the role ARN."""
        iam = self.client("iam")
        arn = iam.create_role(
            RoleName=name,
            Path=path,
            AssumeRolePolicyDocument=json.dumps(trust_policy(*trusted)),
            MaxSessionDuration=max_session_duration,
        )["Role"]["Arn"]
        if policy is not None:
            self.put_role_policy(name, policy)
        return arn

    def put_user_policy(self, user, policy, name="inline"):
        self.client("iam").put_user_policy(
            UserName=user, PolicyName=name, PolicyDocument=json.dumps(policy)
        )

    def put_role_policy(self, role, policy, name="inline"):
        self.client("iam").put_role_policy(
            RoleName=role, PolicyName=name, PolicyDocument=json.dumps(policy)
        )

    def attach_user_policy(self, user, policy, name):
        """Creates managed policy `name` from `policy` and attaches it to `user`."""
        iam = self.client("iam")
        arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
        iam.attach_user_policy(UserName=user, PolicyArn=arn)
        return arn

    def attach_role_policy(self, role, policy, name):
        iam = self.client("iam")
        arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
        iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        return arn


ALLOW_ASSUME_ANY_ROLE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            "Resource": "*",
        }
    ],
}
