#!/usr/bin/env python3
"""A stand-in STS server for what no real server does on cue: throttle above a rate,
delay, hang, reset connections, answer 500/503, send malformed XML, or return the
MaxSessionDuration / role-chaining / PackedPolicyTooLarge errors.

It speaks the real STS Query API wire format (form-encoded POST, XML answers, the
`ErrorResponse` envelope with Type/Code/Message and the HTTP status AWS uses), so the
AWS SDK under test parses its answers exactly as it would parse AWS's. It does not
check signatures: identity and trust are moto's and radosgw's job in other tests.

Usage: fake_sts.py --port PORT [--mode MODE] [--count N] [--delay S] [--rate R] [--lifetime S]

With --lifetime S (or "lifetime" in /_control) credentials expire S seconds after they
are issued whatever DurationSeconds asked for (STS itself never goes below 900 seconds):
refresh timing can then be watched in seconds instead of hours.

With --relay URL every STS request is passed on, byte for byte with its headers (Host
and the SigV4 signature included), to a real STS such as radosgw's, and its answer sent
back; with --lifetime the Expiration in a successful answer is rewritten to S seconds
from now. The credentials are the real server's (radosgw enforces them), while clients
see them expire in seconds; radosgw itself would honour them for its minimum of 900 s.

Control while running (loopback only):
  POST /_control  {"mode": "...", "count": N, "delay": S, "rate": R, "policies": [ARN, ...],
                   "lifetime": S}
  GET  /_requests  every request received: action, params (Policy and PolicyArns.member.N.arn
                   included), time
  POST /_reset     clears the request log, sets mode "ok" and forgets the policy list

Managed session policies: once `policies` lists the ARNs IAM holds, an AssumeRole whose
PolicyArns names any other ARN is rejected as STS rejects it (400, Sender,
MalformedPolicyDocument, "Policy ARN does not exist or is not attachable."); without a
list every ARN is accepted, as moto does.

Modes: ok, delay (answer after S seconds), hang (never answer), reset (close the
connection without answering), 500, 503, throttle (400 Throttling), malformed (200 with
broken XML), max_duration, chaining, packed (PackedPolicyTooLarge), and rate (answer
Throttling when more than R requests arrived in the last second). With count N the mode
applies to the next N AssumeRole requests, then the server answers normally.
"""

import argparse
import http.client
import re
import secrets
import socket
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from query_protocol import QueryHandler, error_xml as query_error_xml, request_id, serve

NS = "https://sts.amazonaws.com/doc/2011-06-15/"

ERRORS = {
    "throttle": (400, "Sender", "Throttling", "Rate exceeded"),
    "rate": (400, "Sender", "Throttling", "Rate exceeded"),
    "500": (500, "Receiver", "InternalFailure", "We encountered an internal error. Please try again."),
    "503": (503, "Receiver", "ServiceUnavailable", "Service is unavailable. Please try again."),
    "max_duration": (400, "Sender", "ValidationError",
                     "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."),
    "chaining": (400, "Sender", "ValidationError",
                 "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."),
    "packed": (400, "Sender", "PackedPolicyTooLarge",
               "Packed policy consumes 112% of allotted space, please use smaller policy for your session."),
}


class State:
    def __init__(self, mode, count, delay, rate):
        self.lock = threading.Lock()
        self.mode = mode
        self.count = count
        self.delay = delay
        self.rate = rate
        self.requests = []
        self.recent = []
        # ARNs of the managed policies "IAM" holds; None accepts any.
        self.policies = None
        # Seconds issued credentials live; None: DurationSeconds.
        self.lifetime = None
        # A real STS to pass requests on to (host:port); None: answer here.
        self.relay = None

    def control(self, cue):
        self.mode = cue.get("mode", "ok")
        self.count = cue.get("count")
        self.delay = float(cue.get("delay", self.delay))
        self.rate = float(cue.get("rate", self.rate))
        if "policies" in cue:
            self.policies = cue["policies"]
        if "lifetime" in cue:
            self.lifetime = cue["lifetime"]

    def reset(self):
        self.mode, self.count, self.requests, self.recent = "ok", None, [], []
        self.policies = None

    def take_mode(self):
        """The mode for this AssumeRole, consuming one from `count`."""
        with self.lock:
            now = time.monotonic()
            self.recent = [t for t in self.recent if now - t < 1.0]
            self.recent.append(now)
            mode = self.mode
            if mode == "rate":
                return "rate" if len(self.recent) > self.rate else "ok"
            if self.count is not None:
                if self.count <= 0:
                    return "ok"
                self.count -= 1
            return mode


def assume_role_xml(params, lifetime=None):
    role_arn = params.get("RoleArn", "")
    session = params.get("RoleSessionName", "session")
    duration = int(params.get("DurationSeconds", "3600"))
    if lifetime is not None:
        duration = lifetime
    expiration = (datetime.now(timezone.utc) + timedelta(seconds=duration)).strftime("%Y-%m-%dT%H:%M:%SZ")
    role_name = role_arn.rsplit("/", 1)[-1]
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    key = "ASIA" + secrets.token_hex(8).upper()
    return f"""<AssumeRoleResponse xmlns="{NS}">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>{key}</AccessKeyId>
      <SecretAccessKey>{secrets.token_urlsafe(30)}</SecretAccessKey>
      <SessionToken>{secrets.token_urlsafe(120)}</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROA{secrets.token_hex(8).upper()}:{session}</AssumedRoleId>
      <Arn>arn:aws:sts::{account}:assumed-role/{role_name}/{session}</Arn>
    </AssumedRoleUser>
    <PackedPolicySize>{min(99, len(params.get("Policy", "")) // 25)}</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>{request_id()}</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>
"""


def policy_arns(params):
    """The PolicyArns of an AssumeRole, in order (`PolicyArns.member.N.arn`, N from 1)."""
    arns = []
    n = 1
    while f"PolicyArns.member.{n}.arn" in params:
        arns.append(params[f"PolicyArns.member.{n}.arn"])
        n += 1
    return arns


def error_xml(kind, code, message):
    return query_error_xml(NS, kind, code, message)


def make_handler(state):
    class Handler(QueryHandler):
        NS = NS

        def relay(self, raw):
            conn = http.client.HTTPConnection(state.relay, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
            conn.request("POST", self.path, body=raw, headers=headers)
            r = conn.getresponse()
            body = r.read().decode()
            with state.lock:
                lifetime = state.lifetime
                state.requests.append({"action": "relayed", "status": r.status, "time": time.time()})
            if r.status == 200 and lifetime is not None:
                exp = (datetime.now(timezone.utc) + timedelta(seconds=lifetime)).strftime("%Y-%m-%dT%H:%M:%SZ")
                body = re.sub(r"<Expiration>[^<]*</Expiration>", f"<Expiration>{exp}</Expiration>", body)
            return self.send_body(r.status, body, r.getheader("Content-Type", "text/xml"))

        def query(self, raw, params):
            if state.relay:
                return self.relay(raw)
            action = params.get("Action", "")
            mode = state.take_mode() if action == "AssumeRole" else "ok"
            with state.lock:
                state.requests.append({"action": action, "params": params, "mode": mode, "time": time.time(),
                                       "authorization": self.headers.get("Authorization", "")[:40]})
            if action == "GetCallerIdentity":
                body = f"""<GetCallerIdentityResponse xmlns="{NS}"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/launcher</Arn><UserId>AIDA0000</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id()}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"""
                return self.send_body(200, body)
            if action != "AssumeRole":
                return self.send_body(400, error_xml("Sender", "InvalidAction", f"Could not find operation {action}"))

            if mode == "delay":
                time.sleep(state.delay)
            elif mode == "hang":
                time.sleep(3600)
                return None
            elif mode == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
                self.close_connection = True
                return None
            elif mode == "malformed":
                return self.send_body(200, f"<AssumeRoleResponse xmlns=\"{NS}\"><AssumeRoleResult><Credentials><AccessKeyId>")
            elif mode in ERRORS:
                status, kind, code, message = ERRORS[mode]
                return self.send_body(status, error_xml(kind, code, message))
            with state.lock:
                known = state.policies
                lifetime = state.lifetime
            missing = [arn for arn in policy_arns(params) if known is not None and arn not in known]
            if missing:
                return self.send_body(400, error_xml(
                    "Sender", "MalformedPolicyDocument", f"Policy {missing[0]} does not exist or is not attachable."))
            return self.send_body(200, assume_role_xml(params, lifetime))

    Handler.state = state
    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--count", type=int)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--lifetime", type=int)
    ap.add_argument("--relay", help="host:port of a real STS to pass requests on to")
    a = ap.parse_args()
    state = State(a.mode, a.count, a.delay, a.rate)
    state.lifetime = a.lifetime
    state.relay = a.relay
    return serve(a.port, make_handler(state), f"fake sts on 127.0.0.1:{a.port}")


if __name__ == "__main__":
    sys.exit(main())
