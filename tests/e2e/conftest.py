"""Fixtures for the end-to-end tests.

Servers run on 127.0.0.1 with free ports and are stopped at the end of the session, also
when tests fail. A missing binary or server is a test error, never a skip: a suite that
silently skips proves nothing. The one exception: the tests with real Unix users need root
(to create the users) and the users' virtualenv; outside scripts/test they are skipped with
the reason and how to run them, under scripts/test (PROVISIONER_E2E=1) a missing
virtualenv fails them (harness/users.py).
"""

import tempfile
from pathlib import Path

import pytest

from harness.env import sanitize_own_environment
from harness.moto import MotoServer
from harness.provisioner import Runner, find_binary
from harness.rgw import Rgw
from harness.users import Users, require_root, users_venv

# boto3 clients made by the tests themselves read AWS_* and ~/.aws like any SDK.
sanitize_own_environment()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """One moto server for the whole session (state is reset per test by `moto`)."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server):
    """The moto server with no users, roles or recorded calls, and IAM auth off."""
    moto_server.reset()
    yield moto_server


def _short_dir(tmp_path_factory, name):
    # Ceph's admin sockets are UNIX sockets: their path must stay under 108 bytes.
    d = tmp_path_factory.mktemp(name)
    if len(str(d)) > 60:
        d = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    return d


@pytest.fixture(scope="session")
def rgw(tmp_path_factory):
    """A Ceph cluster with radosgw (S3 + STS, session policies enforced) for the session.
    See harness/rgw.py for what it holds."""
    try:
        cluster = Rgw(_short_dir(tmp_path_factory, "rgw"))
    except RuntimeError:
        # Several test runs share this machine: a port picked free a moment ago can be
        # taken by another run's monitor before ours binds it. Once more, on new ports.
        cluster = Rgw(_short_dir(tmp_path_factory, "rgw"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def provisioner():
    """Runner for the built `provisioner` (PROVISIONER_BIN, else target/release, else
    target/debug)."""
    try:
        return Runner(find_binary("provisioner", "PROVISIONER_BIN"))
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def spark_submit_wrap():
    """Runner for the built `spark-submit-wrap` (SPARK_SUBMIT_WRAP_BIN, else target/...)."""
    try:
        return Runner(find_binary("spark-submit-wrap", "SPARK_SUBMIT_WRAP_BIN"))
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def unix_users():
    """Real Unix users for the session (harness/users.py): needs root and the users'
    virtualenv; skipped with the reason otherwise, and never skipped under scripts/test.
    Users and their homes are removed at the end."""
    require_root()
    users = Users(users_venv())
    try:
        yield users
    finally:
        problems = users.cleanup()
        if problems:
            print("cleanup of test users:", *problems, sep="\n  ")
