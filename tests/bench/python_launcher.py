#!/usr/bin/env python3
"""The comparison launcher for the benchmarks: the same job as `provisioner kernel`,
written the way a platform team would write it in Python with boto3.

It loads the platform file, resolves the notebook identity (workspace SA, runtime
template SA, session policy, default), builds the session policy (data planes,
platform folders, Bedrock), calls STS AssumeRole or reads a service account's static
keys, writes the credentials into the environment and execs the program. It skips
what the benchmarks do not exercise (fall-backs, validation, decision records), so it
is, if anything, favoured.
It exists only to be measured against; it is not part of the product.

Usage: python_launcher.py --config F --user U [--workspace W] [--runtime-template R] -- ARGV...
"""

import argparse
import json
import os
import sys

import boto3  # the import alone is most of this launcher's cost
from botocore.config import Config

REMOVE = [
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SDK_LOAD_CONFIG", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CREDENTIAL_FILE", "AWS_SECURITY_TOKEN",
    "AWS_SESSION_EXPIRATION", "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "BOTO_CONFIG",
]


def one_or_many(items):
    """IAM takes a bare string for a one-element list; it saves characters."""
    return items[0] if len(items) == 1 else items


def policy_for(platform, user, workspace):
    aws, settings = platform["aws"], platform.get("settings", {})
    s3_objects, buckets, dbs = [], {}, []
    for dp in platform.get("data_planes", []):
        if dp["id"] not in user.get("data_planes", []):
            continue
        for uri in dp.get("s3", []):
            bucket, _, prefix = uri[len("s3://"):].partition("/")
            prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
            if prefix:
                s3_objects.append(f"arn:aws:s3:::{bucket}/{prefix.rstrip('/')}")
            s3_objects.append(f"arn:aws:s3:::{bucket}/{prefix}*")
            buckets.setdefault(bucket, []).append(prefix + "*")
        dbs.extend(dp.get("glue_databases", []))
    folders = settings.get("session_policy_platform_folders", "")
    for folder in [f.strip() for f in folders.split(",") if f.strip() and folders != "none"]:
        folder = folder.replace("{user}", user["id"])
        if "{workspace}" in folder:
            if not workspace:
                continue
            folder = folder.replace("{workspace}", workspace)
        s3_objects.append(f"arn:aws:s3:::{aws['platform_bucket']}/{folder}/*")
        buckets.setdefault(aws["platform_bucket"], []).append(folder + "/*")
    statements = []
    if s3_objects:
        statements.append({"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                                         "s3:*Multipart*", "s3:GetBucketLocation"],
                           "Resource": s3_objects + [f"arn:aws:s3:::{b}" for b in sorted(buckets)]})
        for b, prefixes in sorted(buckets.items()):
            statements.append({"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{b}",
                               "Condition": {"StringLike": {"s3:prefix": one_or_many(sorted(prefixes))}}})
    if dbs:
        arn = f"arn:aws:glue:{aws['region']}:{aws.get('account_id', '')}:"
        res = [arn + "catalog"]
        for db in sorted(set(dbs)):
            res += [f"{arn}database/{db}", f"{arn}table/{db}/*", f"{arn}userDefinedFunction/{db}/*"]
        statements.append({"Effect": "Allow", "Action": ["glue:GetDatabase*", "glue:GetTable*", "glue:*Table",
                                                         "glue:GetPartition*", "glue:*Partition",
                                                         "glue:GetUserDefinedFunction*"], "Resource": res})
    if str(settings.get("session_policy_bedrock", "true")).lower() == "true":
        statements.append({"Effect": "Allow", "Action": "bedrock:InvokeModel*", "Resource": "*"})
    if not statements:
        statements.append({"Effect": "Deny", "Action": "*", "Resource": "*"})
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


def read_secret(ref):
    """A static key from its reference, {"env": NAME} or {"file": PATH}."""
    if "env" in ref:
        return os.environ[ref["env"]]
    with open(ref["file"]) as f:
        return f.read().strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--workspace")
    ap.add_argument("--runtime-template")
    ap.add_argument("argv", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
    with open(a.config) as f:
        platform = json.load(f)
    settings, aws = platform.get("settings", {}), platform["aws"]
    sas = {s["id"]: s for s in platform.get("service_accounts", [])}
    users = {u["id"]: u for u in platform.get("users", [])}
    ws = next((w for w in platform.get("workspaces", []) if w["id"] == a.workspace), None)
    rt = next((r for r in platform.get("runtime_templates", []) if r["id"] == a.runtime_template), None)

    role, policy, duration, keys = None, None, 43200, None
    sa_id = (ws or {}).get("service_account") or (rt or {}).get("service_account")
    if sa_id and "access_key_id" in sas[sa_id]:
        keys = (read_secret(sas[sa_id]["access_key_id"]), read_secret(sas[sa_id]["secret_access_key"]))
    elif sa_id:
        role, duration = sas[sa_id]["role_arn"], int(sas[sa_id].get("duration_seconds", 43200))
    elif str(settings.get("syntasa_session_policy_enabled")).lower() == "true" and not users[a.user].get("system_admin"):
        policy = policy_for(platform, users[a.user], a.workspace)
        if len(policy) <= 2048:
            role, duration = aws["session_policy_role_arn"], int(settings.get("syntasa_session_policy_duration", 43200))

    env = dict(os.environ)
    if keys:
        for k in REMOVE + ["AWS_SESSION_TOKEN", "AWS_CREDENTIAL_EXPIRATION"]:
            env.pop(k, None)
        env.update({"AWS_ACCESS_KEY_ID": keys[0], "AWS_SECRET_ACCESS_KEY": keys[1],
                    "AWS_REGION": aws["region"], "AWS_DEFAULT_REGION": aws["region"],
                    "AWS_EC2_METADATA_DISABLED": "true"})
    elif role:
        sts = boto3.client("sts", region_name=aws["region"], endpoint_url=aws.get("sts_endpoint"),
                           config=Config(retries={"max_attempts": 4, "mode": "standard"}))
        kwargs = {"RoleArn": role, "RoleSessionName": a.user, "DurationSeconds": duration}
        if policy:
            kwargs["Policy"] = policy
        c = sts.assume_role(**kwargs)["Credentials"]
        for k in REMOVE:
            env.pop(k, None)
        env.update({"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
                    "AWS_SESSION_TOKEN": c["SessionToken"], "AWS_CREDENTIAL_EXPIRATION": c["Expiration"].isoformat(),
                    "AWS_REGION": aws["region"], "AWS_DEFAULT_REGION": aws["region"],
                    "AWS_EC2_METADATA_DISABLED": "true"})
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    sys.exit(main())
