"""Environments for the processes the tests start.

Every subprocess gets an environment built from nothing but what it needs, so the
developer's or CI's AWS profile, credentials, proxy or platform settings can never leak
into a test, and the AWS SDKs never probe the cloud metadata address.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]

# Variables copied from the test runner's own environment: the bare minimum for a
# process to run (finding programs, a home, a locale, a temp dir, Java).
_PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "JAVA_HOME", "USER", "LOGNAME")


def clean_env(extra=None, *, keep_path=True):
    """A minimal environment: PATH, HOME, locale, temp dir, Java, plus the AWS SDK
    guards, plus `extra` (a value of None removes a variable).

    The guards: AWS_EC2_METADATA_DISABLED=true (no metadata probe), the SDK config and
    credentials files pointed at /dev/null (no profile from ~/.aws), and loopback never
    proxied.
    """
    env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    if not keep_path:
        env.pop("PATH", None)
    env.setdefault("LANG", "C.UTF-8")
    env.update(
        {
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "NO_PROXY": "127.0.0.1,localhost,::1",
            "no_proxy": "127.0.0.1,localhost,::1",
        }
    )
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def sanitize_own_environment():
    """Applies the same guards to the test process itself (boto3 clients made by the
    tests read ~/.aws and AWS_* like any SDK)."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "BOTO_")) or name in ("SYN_PLATFORM_CONFIG",):
            del os.environ[name]
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_CONFIG_FILE"] = "/dev/null"
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name, "")
        os.environ[name] = ",".join(x for x in ("127.0.0.1,localhost,::1", current) if x)
