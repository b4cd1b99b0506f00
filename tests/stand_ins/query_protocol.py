"""What the stand-ins for AWS Query API services (tests/stand_ins/fake_sts.py,
fake_iam.py) share: the form-encoded request, the XML `ErrorResponse` envelope with
Type/Code/Message, request ids, and an HTTP handler with the control endpoints every
stand-in has (`GET /_requests`, `GET /_health`).

A handler class built on `QueryHandler` sets `NS` (the service's XML namespace) and
`state` (an object with `lock`, `requests`, `control(cue)` for `POST /_control` and
`reset()` for `POST /_reset`, both called holding `lock`), and answers the service's
requests in `query(raw, params)`.
"""

import json
import secrets
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def request_id():
    return f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}"


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def error_xml(ns, kind, code, message):
    """The service's error answer: `ErrorResponse` in its namespace, as AWS sends it."""
    return f"""<ErrorResponse xmlns="{ns}">
  <Error>
    <Type>{kind}</Type>
    <Code>{code}</Code>
    <Message>{xml_escape(message)}</Message>
  </Error>
  <RequestId>{request_id()}</RequestId>
</ErrorResponse>
"""


def form_params(raw):
    """The parameters of a form-encoded Query API request (first value of each)."""
    return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode(), keep_blank_values=True).items()}


class QueryHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    NS = ""
    state = None

    def log_message(self, fmt, *args):  # quiet: tests read /_requests instead
        pass

    def error_xml(self, kind, code, message):
        return error_xml(self.NS, kind, code, message)

    def send_body(self, status, body, content_type="text/xml", headers=()):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        if not any(k.lower() == "x-amzn-requestid" for k, _ in headers):
            self.send_header("x-amzn-RequestId", request_id())
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        if self.path == "/_requests":
            with self.state.lock:
                body = json.dumps(self.state.requests)
            return self.send_body(200, body, "application/json")
        if self.path == "/_health":
            return self.send_body(200, "ok", "text/plain")
        return self.send_body(404, self.error_xml("Sender", "InvalidAction", "GET is not supported"))

    def do_POST(self):
        raw = self.read_body()
        if self.path in ("/_control", "/_reset"):
            cue = json.loads(raw or b"{}")
            with self.state.lock:
                if self.path == "/_control":
                    self.state.control(cue)
                else:
                    self.state.reset()
            return self.send_body(200, "{}", "application/json")
        return self.query(raw, form_params(raw))


def serve(port, handler, banner):
    """Serves `handler` on 127.0.0.1:PORT until interrupted (a stand-in run as a program)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.request_queue_size = 512
    print(banner, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
