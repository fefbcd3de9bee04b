"""Helpers for the gateway's system tests (60-69): a deployment with intake
and relais-gateway on 127.0.0.1 (an ephemeral port picked here), an HTTP
client on the standard library, and a Server-Sent Events reader."""
import http.client
import json
import os
import socket
import time

from relais_harness import Bus, SRC, free_port

TOKENS = {
    "producer": "prod-5f1d8a0c2b7e4d9fa6c3",
    "producer2": "prod2-0a9b8c7d6e5f4a3b2c1d",
    "operations": "ops-9e8d7c6b5a4f3e2d1c0b",
    "partner": "partner-1a2b3c4d5e6f7a8b9c0d",
}


def gateway_section(port, limits="", sse=""):
    return f"""gateway
    listen = "127.0.0.1:{port}"
    heartbeat = 200ms
    static = "{os.path.join(SRC, 'services/gateway/console')}"
    limits
{limits or '        max_body = 16K'}
    sse
{sse or '        ring = 4096'}
    tokens
        mairie-18
            token = "{TOKENS['producer']}"
            role = producer
            kind = mairie
            name = "Mairie du 18e"
        asso-x
            token = "{TOKENS['producer2']}"
            role = producer
            kind = association
            name = "Association X"
        mus
            token = "{TOKENS['operations']}"
            role = operations
        uasa
            token = "{TOKENS['partner']}"
            role = partner
"""


class Gateway:
    """intake + gateway in a temporary deployment."""

    def __init__(self, name, services=None, limits="", sse="", extra=""):
        self.port = free_port()
        self.bus = Bus(name, services=services or ["intake"],
                       extra=gateway_section(self.port, limits, sse) + extra)
        self.bus.start("intake")
        self.start()

    def start(self):
        self.bus.start("gateway", wait=False)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.bus.procs["gateway"].poll() is not None:
                raise RuntimeError("gateway exited: " + self.bus.log_text("gateway")[-2000:])
            try:
                status, _, body = self.request("GET", "/healthz")
                if status == 200 and body.get("ok") and body.get("following", 0) >= 1:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError("gateway not ready: " + self.bus.log_text("gateway")[-2000:])

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, token=None, headers=None, conn=None, raw=None):
        """One request; returns (status, headers dict (lower-case), parsed JSON or text)."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {TOKENS.get(token, token)}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        own = conn is None
        c = conn or self.conn()
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            if hdrs.get("content-type", "").startswith("application/json"):
                return r.status, hdrs, json.loads(text)
            return r.status, hdrs, text.decode("utf-8", "replace")
        finally:
            if own:
                c.close()


class SSE:
    """A Server-Sent Events reader on a raw socket (so a test can cut it)."""

    def __init__(self, port, path="/v1/events", token="operations", last_id=None, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        if token:
            head += f"Authorization: Bearer {TOKENS.get(token, token)}\r\n"
        if last_id:
            head += f"Last-Event-ID: {last_id}\r\n"
        self.sock.sendall((head + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the headers")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        self.last_id = None

    def events(self, count, timeout=10):
        """Read count events; returns a list of (id, data dict)."""
        out = []
        deadline = time.time() + timeout
        while len(out) < count:
            while b"\n\n" in self.buf and len(out) < count:
                block, self.buf = self.buf.split(b"\n\n", 1)
                ev_id, data = None, []
                for line in block.decode().split("\n"):
                    if line.startswith("id: "):
                        ev_id = line[4:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                if data:
                    out.append((ev_id, json.loads("\n".join(data))))
                    self.last_id = ev_id
            if len(out) >= count:
                break
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError(f"{len(out)} of {count} events")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"stream closed after {len(out)} events")
            self.buf += chunk
        return out

    def quiet(self, seconds):
        """True when no event arrives within seconds (comments are fine)."""
        try:
            ev = self.events(1, timeout=seconds)
            return not ev
        except TimeoutError:
            return True

    def close(self):
        self.sock.close()
