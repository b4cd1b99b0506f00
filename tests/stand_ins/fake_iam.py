#!/usr/bin/env python3
"""A stand-in IAM endpoint for the one call moto does not implement: the policy
simulator (`SimulatePrincipalPolicy`). Every other request is passed unchanged to a
real moto server (`--upstream`), so roles, policies and trust documents are moto's.

It speaks IAM's Query API wire format (form-encoded POST, XML answers in IAM's
namespace, the `ErrorResponse` envelope with Type/Code/Message and the HTTP status IAM
uses). The simulator answers as IAM does today: one `EvaluationResult` per action with
the aggregate `EvalDecision` and a `ResourceSpecificResults` entry per resource. It
decides by evaluating the role's own policies, read from moto: its inline policies and
the default version of every attached managed policy. An explicit Deny wins, then an
Allow; otherwise `implicitDeny`. `Action`/`NotAction` match case-insensitively with
IAM's `*` and `?`, `Resource`/`NotResource` case-sensitively; a statement with a
`Condition` is not applied (the probes carry no context keys) and is listed as missing
context, as IAM does. It does not check signatures.

Usage: fake_iam.py --port PORT --upstream http://127.0.0.1:MOTO_PORT

Control while running (loopback only):
  POST /_control  {"mode": "ok" | "deny_simulate" | "not_implemented"}
  GET  /_requests  every request received: action, params, time
  POST /_reset     clears the request log and sets mode "ok"

Modes: deny_simulate answers SimulatePrincipalPolicy with IAM's 403 AccessDenied;
not_implemented answers it as moto does (an error, here IAM's shape).
"""

import argparse
import fnmatch
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3

from query_protocol import QueryHandler, error_xml as query_error_xml, request_id, serve, xml_escape

NS = "https://iam.amazonaws.com/doc/2010-05-08/"


def error_xml(kind, code, message):
    return query_error_xml(NS, kind, code, message)


def as_list(v):
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


def matches(patterns, value, case_insensitive):
    for p in patterns:
        if case_insensitive:
            if fnmatch.fnmatchcase(value.lower(), p.lower()):
                return True
        elif fnmatch.fnmatchcase(value, p):
            return True
    return False


def statement_applies(st, action, resource):
    if "Action" in st:
        if not matches(as_list(st["Action"]), action, True):
            return False
    elif "NotAction" in st:
        if matches(as_list(st["NotAction"]), action, True):
            return False
    else:
        return False
    if "Resource" in st:
        return matches(as_list(st["Resource"]), resource, False)
    if "NotResource" in st:
        return not matches(as_list(st["NotResource"]), resource, False)
    return False


def evaluate(policies, action, resource):
    """IAM's order for identity policies: explicit deny, then allow, else implicit deny."""
    decision, matched, missing = "implicitDeny", [], []
    for policy_id, doc in policies:
        statements = doc.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        for st in statements:
            if not statement_applies(st, action, resource):
                continue
            if "Condition" in st:
                for keys in st["Condition"].values():
                    missing.extend(k for k in keys if k not in missing)
                continue
            if st.get("Effect") == "Deny":
                return "explicitDeny", [policy_id], missing
            if st.get("Effect") == "Allow":
                decision = "allowed"
                matched.append(policy_id)
    return decision, matched, missing


class State:
    def __init__(self, upstream):
        self.lock = threading.Lock()
        self.mode = "ok"
        self.requests = []
        self.upstream = upstream

    def control(self, cue):
        self.mode = cue.get("mode", "ok")

    def reset(self):
        self.mode, self.requests = "ok", []


def role_policies(upstream, role_arn):
    """The role's inline policies and attached managed policies, as moto holds them."""
    iam = boto3.client("iam", endpoint_url=upstream, region_name="us-east-1",
                       aws_access_key_id="fakeiam", aws_secret_access_key="fakeiam")
    name = role_arn.rsplit("/", 1)[-1]
    iam.get_role(RoleName=name)
    out = []
    for pname in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=name, PolicyName=pname)["PolicyDocument"]
        out.append((pname, json.loads(doc) if isinstance(doc, str) else doc))
    for att in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        pol = iam.get_policy(PolicyArn=att["PolicyArn"])["Policy"]
        ver = iam.get_policy_version(PolicyArn=att["PolicyArn"], VersionId=pol["DefaultVersionId"])
        doc = ver["PolicyVersion"]["Document"]
        if isinstance(doc, str):
            doc = json.loads(urllib.parse.unquote(doc))
        out.append((att["PolicyArn"], doc))
    return out


def members(params, prefix):
    out, i = [], 1
    while f"{prefix}.member.{i}" in params:
        out.append(params[f"{prefix}.member.{i}"])
        i += 1
    return out


def simulate_xml(policies, actions, resources):
    results = []
    for action in actions:
        per_resource = []
        for resource in resources or ["*"]:
            per_resource.append((resource, *evaluate(policies, action, resource)))
        order = {"explicitDeny": 0, "implicitDeny": 1, "allowed": 2}
        aggregate = min((r[1] for r in per_resource), key=lambda d: order[d])
        matched_all = sorted({m for r in per_resource for m in r[2]})
        missing_all = sorted({m for r in per_resource for m in r[3]})

        def statements(ids):
            return "".join(
                f"<member><SourcePolicyId>{xml_escape(i)}</SourcePolicyId>"
                f"<SourcePolicyType>{'IAM Policy' if i.startswith('arn:') else 'role'}</SourcePolicyType></member>"
                for i in ids)

        def names(keys):
            return "".join(f"<member>{xml_escape(k)}</member>" for k in keys)

        specific = "".join(
            f"<member><EvalResourceName>{xml_escape(res)}</EvalResourceName>"
            f"<EvalResourceDecision>{dec}</EvalResourceDecision>"
            f"<MatchedStatements>{statements(m)}</MatchedStatements>"
            f"<MissingContextValues>{names(miss)}</MissingContextValues>"
            f"<EvalDecisionDetails/></member>"
            for res, dec, m, miss in per_resource)
        results.append(
            f"<member><EvalActionName>{xml_escape(action)}</EvalActionName>"
            f"<EvalResourceName>{xml_escape(per_resource[0][0])}</EvalResourceName>"
            f"<EvalDecision>{aggregate}</EvalDecision>"
            f"<MatchedStatements>{statements(matched_all)}</MatchedStatements>"
            f"<MissingContextValues>{names(missing_all)}</MissingContextValues>"
            f"<EvalDecisionDetails/>"
            f"<ResourceSpecificResults>{specific}</ResourceSpecificResults></member>")
    return f"""<SimulatePrincipalPolicyResponse xmlns="{NS}">
  <SimulatePrincipalPolicyResult>
    <IsTruncated>false</IsTruncated>
    <EvaluationResults>{''.join(results)}</EvaluationResults>
  </SimulatePrincipalPolicyResult>
  <ResponseMetadata>
    <RequestId>{request_id()}</RequestId>
  </ResponseMetadata>
</SimulatePrincipalPolicyResponse>
"""


def make_handler(state):
    class Handler(QueryHandler):
        NS = NS

        def forward(self, raw):
            """Passes the request to moto as it came (method, path, headers, body). The
            Host header is kept: it is part of what the SDK signed."""
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("content-length", "connection")}
            req = urllib.request.Request(state.upstream + self.path, data=raw, method="POST",
                                         headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    status, body, rh = resp.status, resp.read(), resp.headers
            except urllib.error.HTTPError as e:
                status, body, rh = e.code, e.read(), e.headers
            keep = [(k, v) for k, v in rh.items()
                    if k.lower() in ("x-amzn-requestid", "x-amz-request-id")]
            return self.send_body(status, body, rh.get("Content-Type", "text/xml"), keep)

        def query(self, raw, params):
            action = params.get("Action", "")
            with state.lock:
                state.requests.append({"action": action, "params": params, "time": time.time()})
                mode = state.mode
            if action != "SimulatePrincipalPolicy":
                return self.forward(raw)
            source = params.get("PolicySourceArn", "")
            if mode == "deny_simulate":
                return self.send_body(403, error_xml(
                    "Sender", "AccessDenied",
                    f"User: arn:aws:iam::123456789012:user/auditor is not authorized to perform: "
                    f"iam:SimulatePrincipalPolicy on resource: {source} because no identity-based "
                    f"policy allows the iam:SimulatePrincipalPolicy action"))
            if mode == "not_implemented":
                return self.send_body(501, error_xml(
                    "Receiver", "NotImplemented", "The SimulatePrincipalPolicy action has not been implemented"))
            try:
                policies = role_policies(state.upstream, source)
            except Exception as e:  # the role is unknown to moto: IAM's NoSuchEntity
                name = source.rsplit("/", 1)[-1]
                code = getattr(e, "response", {}).get("Error", {}).get("Code", "NoSuchEntity")
                return self.send_body(404, error_xml(
                    "Sender", code, f"The role with name {name} cannot be found."))
            return self.send_body(200, simulate_xml(
                policies, members(params, "ActionNames"), members(params, "ResourceArns")))

    Handler.state = state
    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="the moto server's URL")
    a = ap.parse_args()
    state = State(a.upstream.rstrip("/"))
    return serve(a.port, make_handler(state), f"fake iam on 127.0.0.1:{a.port} (upstream {state.upstream})")


if __name__ == "__main__":
    sys.exit(main())
