"""A stand-in for an AWS container-credentials endpoint (what ECS and EKS Pod Identity
serve, and what the AWS SDKs' container credential providers read through
AWS_CONTAINER_CREDENTIALS_FULL_URI), for clients under test that must fetch credentials
from one.

It speaks that protocol: GET on the path, the token in the `Authorization` header,
a JSON answer with `AccessKeyId`, `SecretAccessKey`, `Token` and `Expiration`, 401 without
a token it knows. Every request is recorded (path, whether it was authorized, which token,
the key id served, when), so tests can count fetches.

Two ways to serve:
- fixed: one set of credentials the test minted, with the `Expiration` it gives;
- minting: `mint()` is called for every authorized fetch and returns fresh credentials and
  their expiry (e.g. a radosgw AssumeRole with a short DurationSeconds), so a client that
  refreshes gets new credentials each time, as from a broker that re-minted them.

Optionally over HTTPS (`tls=(certfile, keyfile)`), as executors on other hosts reach the
broker; more than one token may be accepted (a session's and an application's).
"""

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ContainerCredentials:
    """Serves credentials on http(s)://127.0.0.1:PORT/credentials to requests carrying one
    of the accepted tokens. Use as a context manager.

    `keys` (with .access_key_id, .secret_access_key, .session_token) and `expiration`
    (RFC 3339 text) serve fixed credentials; `mint`, a callable returning (keys,
    expiration), mints for every fetch instead. `token` is the accepted token, or a list
    of them; `tls` a (certificate file, key file) pair to serve HTTPS."""

    PATH = "/credentials"

    def __init__(self, keys=None, token=None, expiration=None, mint=None, tls=None):
        if (keys is None) == (mint is None):
            raise ValueError("give either keys and expiration, or mint")
        self.requests = []
        self.served = []  # (time, key id, expiration) of every answer with credentials
        tokens = [token] if isinstance(token, str) else list(token or [])
        lock = threading.Lock()
        owner = self

        def credentials():
            k, exp = mint() if mint else (keys, expiration)
            return k, exp, json.dumps({
                "AccessKeyId": k.access_key_id,
                "SecretAccessKey": k.secret_access_key,
                "Token": k.session_token,
                "Expiration": exp,
            }).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                given = self.headers.get("Authorization")
                authorized = given in tokens
                entry = {"path": self.path, "authorized": authorized,
                         "token": tokens.index(given) if authorized else None,
                         "time": time.time(), "key_id": None}
                if self.path != owner.PATH:
                    status, answer = 404, b'{"message": "not found"}'
                elif not authorized:
                    status, answer = 401, b'{"message": "unauthorized"}'
                else:
                    try:
                        k, exp, answer = credentials()
                        status = 200
                        entry["key_id"] = k.access_key_id
                        with lock:
                            owner.served.append((entry["time"], k.access_key_id, exp))
                    except Exception as e:  # a failed mint is the endpoint's 500
                        status, answer = 500, json.dumps({"message": str(e)[:200]}).encode()
                with lock:
                    owner.requests.append(entry)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.port = self.server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}{self.PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fetches(self, token_index=None):
        """Authorized fetches on the credentials path (of one token, if given)."""
        return [r for r in list(self.requests)
                if r["authorized"] and r["path"] == self.PATH
                and (token_index is None or r["token"] == token_index)]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
