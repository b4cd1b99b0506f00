"""A stand-in for an AWS container-credentials endpoint (what ECS and EKS Pod Identity
serve, and what the AWS SDKs' container credential providers read through
AWS_CONTAINER_CREDENTIALS_FULL_URI), for clients under test that must fetch credentials
from one.

It speaks that protocol: GET on the path, the token in the `Authorization` header,
a JSON answer with `AccessKeyId`, `SecretAccessKey`, `Token` and `Expiration`, 401 without
the token. It serves one fixed set of credentials (the test mints them) and records
every request. It does not refresh anything.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ContainerCredentials:
    """Serves `keys` (with .access_key_id, .secret_access_key, .session_token) on
    http://127.0.0.1:PORT/credentials to requests carrying `token`; `expiration` is the
    RFC 3339 string returned. Use as a context manager."""

    PATH = "/credentials"

    def __init__(self, keys, token, expiration):
        self.requests = []
        body = json.dumps({
            "AccessKeyId": keys.access_key_id,
            "SecretAccessKey": keys.secret_access_key,
            "Token": keys.session_token,
            "Expiration": expiration,
        }).encode()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                authorized = self.headers.get("Authorization") == token
                owner.requests.append({"path": self.path, "authorized": authorized})
                if self.path != owner.PATH:
                    status, answer = 404, b'{"message": "not found"}'
                elif not authorized:
                    status, answer = 401, b'{"message": "unauthorized"}'
                else:
                    status, answer = 200, body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
