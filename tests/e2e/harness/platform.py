"""Platform files for tests.

BASE_PLATFORM is a small, valid platform (the shape of examples/platform.json): session
policy enabled, one data plane for alice, a System Admin, a workspace with a role service
account. Tests change what they need with overrides instead of writing whole files.
"""

import copy
import json

BASE_PLATFORM = {
    "settings": {
        "syntasa_session_policy_enabled": "true",
        "syntasa_session_policy_duration": "3600",
        "service_account_failure": "fallback",
        "session_policy_over_limit": "fallback",
        "session_policy_bedrock": "true",
        "session_policy_platform_folders": "syn-workspace/{workspace},syn-file-uploads/{user}",
        "sts_deadline_seconds": "10",
        "decision_log": "stderr",
    },
    "aws": {
        "region": "us-east-1",
        "account_id": "123456789012",
        "session_policy_role_arn": "arn:aws:iam::123456789012:role/PlatformInfraRole",
        "platform_bucket": "acme-platform",
        # Never a real endpoint: tests that mint point this at their own server.
        "sts_endpoint": "http://127.0.0.1:9",
    },
    "service_accounts": [
        {
            "id": "sa-finance",
            "role_arn": "arn:aws:iam::123456789012:role/Finance",
            "external_id": "fin-ext",
            "duration_seconds": 3600,
        }
    ],
    "workspaces": [{"id": "ws-finance", "service_account": "sa-finance"}, {"id": "ws-open"}],
    "runtime_templates": [{"id": "rt-default"}],
    "data_planes": [
        {"id": "dp-marketing", "s3": ["s3://acme-data/marketing/"], "glue_databases": ["marketing"]}
    ],
    "users": [
        {"id": "alice", "data_planes": ["dp-marketing"]},
        {"id": "root", "system_admin": True},
    ],
}


def merged(base, overrides):
    """`base` with `overrides` applied: `settings` and `aws` are merged key by key (a value
    of None removes the key); any other top-level key is replaced (None removes it)."""
    doc = copy.deepcopy(base)
    for key, value in overrides.items():
        if key in ("settings", "aws") and isinstance(value, dict):
            section = doc.setdefault(key, {})
            for k, v in value.items():
                if v is None:
                    section.pop(k, None)
                else:
                    section[k] = v
        elif value is None:
            doc.pop(key, None)
        else:
            doc[key] = copy.deepcopy(value)
    return doc


def write_platform(path, doc):
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def platform_file(tmp_path, name="platform.json", base=BASE_PLATFORM, **overrides):
    """Writes BASE_PLATFORM (or `base`) with `overrides` to tmp_path/name; returns the path.

    platform_file(tmp_path, settings={"session_policy_bedrock": "false"},
                  users=[{"id": "u", "data_planes": []}])
    """
    return write_platform(tmp_path / name, merged(base, overrides))
