"""Harness for the end-to-end tests: real servers on 127.0.0.1 (moto, Ceph radosgw),
platform files, and a runner for the built binaries.

Nothing here may send traffic off loopback: every server binds 127.0.0.1, every client
gets an explicit endpoint and explicit credentials, and every subprocess environment
has AWS_EC2_METADATA_DISABLED=true and none of the caller's AWS configuration.
"""

from .env import clean_env, REPO_ROOT
from .net import free_port, wait_for_http
from .platform import BASE_PLATFORM, platform_file, write_platform

__all__ = [
    "BASE_PLATFORM",
    "REPO_ROOT",
    "clean_env",
    "free_port",
    "platform_file",
    "wait_for_http",
    "write_platform",
]
