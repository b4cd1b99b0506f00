"""Support for the managed-policy sync and audit tests: the stand-in IAM endpoint as a
fixture, realistic platform files, and helpers that read IAM (moto) directly.

The stand-in (tests/stand_ins/fake_iam.py) runs inside the test process on a free
127.0.0.1 port, in a daemon thread, and passes every request except the policy
simulator to the test's moto server, so roles, policies and trust documents are moto's.
Its request log shows which IAM calls a command made.
"""

import json
import sys
import threading
import urllib.parse
from http.server import ThreadingHTTPServer

import pytest
import requests

from harness.env import REPO_ROOT
from harness.net import free_port, wait_for_http
from harness.platform import BASE_PLATFORM, merged, write_platform

sys.path.insert(0, str(REPO_ROOT / "tests" / "stand_ins"))
import fake_iam  # noqa: E402

ACCOUNT = "123456789012"
PATH = "/provisioner/"
WRITE_ACTIONS = {"CreatePolicy", "CreatePolicyVersion", "DeletePolicyVersion", "DeletePolicy",
                 "SetDefaultPolicyVersion"}


class FakeIam:
    """tests/stand_ins/fake_iam.py on 127.0.0.1:PORT in front of `upstream` (moto)."""

    def __init__(self, upstream):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._state = fake_iam.State(upstream)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), fake_iam.make_handler(self._state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._http = requests.Session()
        self._http.trust_env = False
        wait_for_http(f"{self.endpoint}/_health", timeout=10)

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def reset(self):
        self._post("/_reset", {})

    def cue(self, mode):
        self._post("/_control", {"mode": mode})

    def requests(self):
        r = self._http.get(f"{self.endpoint}/_requests", timeout=10)
        r.raise_for_status()
        return r.json()

    def actions(self):
        return [q["action"] for q in self.requests()]

    def _post(self, path, body):
        r = self._http.post(f"{self.endpoint}{path}", data=json.dumps(body), timeout=10)
        r.raise_for_status()


@pytest.fixture(scope="session")
def fake_iam_server(moto_server):
    server = FakeIam(moto_server.endpoint)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def iam_standin(moto, fake_iam_server):
    """The stand-in IAM in front of a freshly reset moto, with an empty request log."""
    fake_iam_server.reset()
    yield fake_iam_server
    fake_iam_server.reset()


def plane(i, *, bucket="acme-datalake-prod", area="marketing"):
    """A realistic data plane: two S3 locations and two Glue databases."""
    return {
        "id": f"dp-{area}-{i:03d}",
        "s3": [f"s3://{bucket}/{area}/p{i:03d}/curated/", f"s3://{bucket}/{area}/p{i:03d}/raw/"],
        "glue_databases": [f"{area}_p{i:03d}_curated", f"{area}_p{i:03d}_raw"],
    }


def iam_platform(tmp_path, iam_endpoint, sts_endpoint, *, planes=3, users=None, name="platform.json",
                 **overrides):
    """A platform file with `planes` realistic planes (all given to alice unless `users`),
    pointing IAM and STS at the given endpoints."""
    dps = [plane(i) for i in range(planes)]
    doc = merged(BASE_PLATFORM, {
        "aws": {"iam_endpoint": iam_endpoint, "sts_endpoint": sts_endpoint},
        "data_planes": dps,
        "users": users if users is not None else [
            {"id": "alice", "data_planes": [d["id"] for d in dps]},
            {"id": "root", "system_admin": True},
        ],
    })
    doc = merged(doc, overrides)
    return write_platform(tmp_path / name, doc)


def admin_env(moto, **extra):
    """Credentials moto accepts while IAM auth is off, and nothing else."""
    env = {"AWS_ACCESS_KEY_ID": "AKIAADMINADMINADMIN0",
           "AWS_SECRET_ACCESS_KEY": "admin-secret-not-checked-while-auth-is-off",
           "AWS_REGION": "us-east-1"}
    env.update(extra)
    return env


def sync(provisioner, config, *args, env, timeout=300):
    """`provisioner policies sync --json` (plus args); returns (parsed JSON or None, process)."""
    r = provisioner.run("policies", "sync", "--config", config, "--json", *args, env=env, timeout=timeout)
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError:
        doc = None
    return doc, r


def managed(moto, path=PATH):
    """{arn: (default document as a dict, [version ids], default version id)} under `path`."""
    iam = moto.client("iam")
    out = {}
    for page in iam.get_paginator("list_policies").paginate(Scope="Local", PathPrefix=path):
        for p in page["Policies"]:
            arn = p["Arn"]
            ver = iam.get_policy_version(PolicyArn=arn, VersionId=p["DefaultVersionId"])
            doc = ver["PolicyVersion"]["Document"]
            if isinstance(doc, str):
                doc = json.loads(urllib.parse.unquote(doc))
            versions = [v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]]
            out[arn] = (doc, sorted(versions, key=lambda v: int(v[1:])), p["DefaultVersionId"])
    return out
