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
import json
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


def request_id():
    return f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}"


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
    return f"""<ErrorResponse xmlns="{NS}">
  <Error>
    <Type>{kind}</Type>
    <Code>{code}</Code>
    <Message>{message}</Message>
  </Error>
  <RequestId>{request_id()}</RequestId>
</ErrorResponse>
"""


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: tests read /_requests instead
            pass

        def send_body(self, status, body, content_type="text/xml"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", request_id())
            self.end_headers()
            self.wfile.write(data)

        def read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self):
            if self.path == "/_requests":
                with state.lock:
                    body = json.dumps(state.requests)
                return self.send_body(200, body, "application/json")
            if self.path == "/_health":
                return self.send_body(200, "ok", "text/plain")
            return self.send_body(404, error_xml("Sender", "InvalidAction", "GET is not supported"))

        def do_POST(self):
            raw = self.read_body()
            if self.path == "/_control":
                cue = json.loads(raw or b"{}")
                with state.lock:
                    state.mode = cue.get("mode", "ok")
                    state.count = cue.get("count")
                    state.delay = float(cue.get("delay", state.delay))
                    state.rate = float(cue.get("rate", state.rate))
                    if "policies" in cue:
                        state.policies = cue["policies"]
                    if "lifetime" in cue:
                        state.lifetime = cue["lifetime"]
                return self.send_body(200, "{}", "application/json")
            if self.path == "/_reset":
                with state.lock:
                    state.mode, state.count, state.requests, state.recent = "ok", None, [], []
                    state.policies = None
                return self.send_body(200, "{}", "application/json")

            params = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode(), keep_blank_values=True).items()}
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

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--count", type=int)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--lifetime", type=int)
    a = ap.parse_args()
    state = State(a.mode, a.count, a.delay, a.rate)
    state.lifetime = a.lifetime
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(state))
    server.daemon_threads = True
    server.request_queue_size = 512
    print(f"fake sts on 127.0.0.1:{a.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
