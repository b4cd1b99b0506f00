#!/usr/bin/env python3
"""A loopback STS that answers AssumeRole as fast as a Python process can, for the
launch-overhead benchmark: what is measured there must be the launcher, not the server.

It speaks the STS Query API wire format (form-encoded POST, XML AssumeRoleResponse,
HTTP/1.1 with keep-alive), like tests/stand_ins/fake_sts.py, but does no per-request
work beyond reading the request and formatting one answer: a single thread, a
selector loop, a fresh AccessKeyId per answer (a counter) and everything else
prepared at start. It does not check signatures.

It records how long it spent on each request, from the request's last byte read to
the answer written, so the benchmark can report the server's share of a launch:
GET /_stats answers {"requests": N, "service_us": [...]}.

Usage: instant_sts.py --port PORT
"""

import argparse
import json
import secrets
import selectors
import socket
import sys
import time
from datetime import datetime, timedelta, timezone

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
MAX_REQUEST = 1 << 20


class Server:
    def __init__(self, port):
        self.sel = selectors.DefaultSelector()
        self.listener = socket.create_server(("127.0.0.1", port), backlog=512)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.count = 0
        self.service_us = []
        expiration = (datetime.now(timezone.utc) + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
        secret, token = secrets.token_urlsafe(30), secrets.token_urlsafe(120)
        self.template = (
            f'<AssumeRoleResponse xmlns="{NS}"><AssumeRoleResult><Credentials>'
            "<AccessKeyId>ASIA{key}</AccessKeyId>"
            f"<SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken>"
            f"<Expiration>{expiration}</Expiration></Credentials>"
            "<AssumedRoleUser><AssumedRoleId>AROABENCH:bench</AssumedRoleId>"
            "<Arn>arn:aws:sts::123456789012:assumed-role/Bench/bench</Arn></AssumedRoleUser>"
            "</AssumeRoleResult><ResponseMetadata><RequestId>{rid}</RequestId>"
            "</ResponseMetadata></AssumeRoleResponse>"
        )

    def answer(self, path, body):
        if path == "/_stats":
            return 200, "application/json", json.dumps({"requests": self.count, "service_us": self.service_us})
        if path == "/_health":
            return 200, "text/plain", "ok"
        self.count += 1
        if b"Action=AssumeRole" not in body:
            err = (f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>InvalidAction</Code>'
                   "<Message>only AssumeRole is served here</Message></Error><RequestId>0</RequestId></ErrorResponse>")
            return 400, "text/xml", err
        n = self.count
        return 200, "text/xml", self.template.format(key=f"BENCH{n:011d}", rid=f"00000000-0000-0000-0000-{n:012d}")

    def serve(self):
        buffers = {}
        while True:
            for key, _ in self.sel.select():
                if key.data is None:
                    try:
                        conn, _ = self.listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.sel.register(conn, selectors.EVENT_READ, True)
                    buffers[conn] = b""
                    continue
                conn = key.fileobj
                try:
                    chunk = conn.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if not chunk or len(buffers[conn]) > MAX_REQUEST:
                    self.sel.unregister(conn)
                    buffers.pop(conn, None)
                    conn.close()
                    continue
                buffers[conn] += chunk
                buffers[conn] = self.handle(conn, buffers[conn])

    def handle(self, conn, buf):
        """Answers every complete request in `buf`; returns what is left."""
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                return buf
            head = buf[:head_end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(buf) < head_end + 4 + length:
                return buf
            start = time.perf_counter()
            body = buf[head_end + 4:head_end + 4 + length]
            buf = buf[head_end + 4 + length:]
            parts = head[0].split(" ")
            path = parts[1] if len(parts) > 1 else "/"
            status, ctype, text = self.answer(path, body)
            data = text.encode()
            reason = "OK" if status == 200 else "Bad Request"
            conn.setblocking(True)
            conn.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                         f"x-amzn-RequestId: bench\r\n\r\n".encode() + data)
            conn.setblocking(False)
            if path not in ("/_stats", "/_health"):
                self.service_us.append(round((time.perf_counter() - start) * 1e6, 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    server = Server(a.port)
    print(f"instant sts on 127.0.0.1:{a.port}", flush=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
