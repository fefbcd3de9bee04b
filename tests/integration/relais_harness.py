"""Harness for Relais system tests: a deployment in a temporary folder.

A Bus writes a deployment file whose endpoints are ipc:// sockets inside the
folder, starts services as real processes (the binaries of the build tree),
and offers the clients the tests need: a pipelined producer, a subscriber,
fetch. Processes are ended by PID, never by name.
"""
import atexit
import json
import os
import shutil
import socket
import signal
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

BIN = os.environ.get("RELAIS_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
SRC = os.environ.get("RELAIS_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
CTX = zmq.Context.instance()


def binary(name):
    """A program of the build tree: services/<svc>/relais-<svc>, the CLI, tools."""
    subs = [os.path.join("services", d) for d in sorted(os.listdir(os.path.join(BIN, "services")))
            if os.path.isdir(os.path.join(BIN, "services", d))]
    for sub in subs + ["tests", "."]:
        path = os.path.join(BIN, sub, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(name)


# The endpoints each service binds (keys of its section in the deployment
# file). A test deployment gives every service all of them on ipc://; a
# service that is not started simply leaves them unbound.
SERVICE_ENDPOINTS = {
    "intake": ["submit", "pub", "fetch", "records"],
    "router": ["pub", "fetch", "partners", "api"],
    "plans": ["pub", "fetch", "api"],
    "capacity": ["pub", "fetch", "api"],
    "analytics": ["pub", "fetch", "api"],
    "feedback": ["pub", "fetch", "feed", "api"],
}


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now_us():
    return int(time.time() * 1_000_000)


def sample_signal(arr=18, **changes):
    """A valid signalement (DOMAIN.md), level 1 unless changes say otherwise."""
    sig = {
        "source": {"kind": "115", "name": "115 de Paris"},
        "observed_at": now_us() - 3_600_000_000,
        "place": {"arrondissement": arr, "kind": "voie_publique"},
        "persons": 1,
        "publics": ["homme_isole"],
        "needs": ["mise_a_l_abri"],
        "urgency": "jour",
    }
    sig.update(changes)
    return sig


class Bus:
    """A one-machine deployment in a temporary folder."""

    def __init__(self, name="bus", extra="", services=None):
        base = os.environ.get("RELAIS_TEST_TMP") or tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=f"relais-{name}-", dir=base)
        self.sock = os.path.join(self.dir, "sock")
        os.makedirs(self.sock, mode=0o700)
        self.procs = {}
        self.logs = {}
        self.services = services or ["intake"]
        self.endpoints = {svc: {k: self.ep(f"{svc}-{k}") for k in SERVICE_ENDPOINTS[svc]}
                          for svc in self.services}
        self.config = os.path.join(self.dir, "relais.cfg")
        with open(self.config, "w") as f:
            f.write("#   Test deployment\nrelais\n    data = var\n")
            for svc, eps in self.endpoints.items():
                f.write(f"{svc}\n")
                for k, v in eps.items():
                    f.write(f"    {k} = \"{v}\"\n")
                f.write("    heartbeat = 200ms\n")
            f.write(extra)
        atexit.register(self.close)

    def ep(self, name):
        return f"ipc://{self.sock}/{name}"

    # -- processes ---------------------------------------------------------
    def start(self, svc, *args, wait=True, env=None, prefix=None):
        """Start relais-<svc> on this deployment; prefix: a command to run
        it under (valgrind ...)."""
        log = open(os.path.join(self.dir, f"{svc}.log"), "ab")
        self.logs[svc] = log
        e = dict(os.environ)
        e.setdefault("RELAIS_LOG_LEVEL", "info")
        if env:
            e.update(env)
        proc = subprocess.Popen([*(prefix or []), binary(f"relais-{svc}"), "--config", self.config, *args],
                                stdout=log, stderr=log, env=e)
        self.procs[svc] = proc
        if wait:
            self.wait_ready(svc)
        return proc

    def wait_ready(self, svc, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.procs[svc].poll() is not None:
                raise RuntimeError(f"{svc} exited with {self.procs[svc].returncode}: "
                                   + self.log_text(svc)[-2000:])
            try:
                reply = self.request(self.endpoints[svc]["fetch"], {"op": "status"}, timeout=0.5)
                if reply.get("ok"):
                    return reply
            except TimeoutError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{svc} not ready: " + self.log_text(svc)[-2000:])

    def kill9(self, svc):
        proc = self.procs.pop(svc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self, svc, timeout=20):
        """Graceful stop; returns the exit code."""
        proc = self.procs.pop(svc)
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def log_text(self, svc):
        try:
            with open(os.path.join(self.dir, f"{svc}.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self):
        for svc, proc in list(self.procs.items()):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.procs.clear()
        for log in self.logs.values():
            log.close()
        if os.environ.get("RELAIS_KEEP_TMP") is None and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients -------------------------------------------------------------
    def request(self, endpoint, obj, timeout=5.0, raw=None):
        """One request on a fresh DEALER (REQ framing); returns the reply map."""
        s = CTX.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        try:
            s.send_multipart([b"", raw if raw is not None else pack(obj)])
            if not s.poll(int(timeout * 1000)):
                raise TimeoutError(endpoint)
            frames = s.recv_multipart()
            return unpack(frames[-1])
        finally:
            s.close()

    def submit(self, signal=None, idem=None, **kw):
        req = {"op": "submit", "idem": idem or f"t-{now_us()}", "signal": signal or sample_signal()}
        req.update(kw)
        return self.request(self.endpoints["intake"]["submit"], req)

    def fetch_all(self, svc="intake", start=1):
        """Every event of a source's log, from start, through fetch."""
        events = []
        frm = start
        while True:
            reply = self.request(self.endpoints[svc]["fetch"], {"op": "fetch", "from": frm})
            assert reply["ok"], reply
            events.extend(unpack_events(reply["events"]))
            if not reply["events"] or events[-1]["seq"] >= reply["last"]:
                return events
            frm = events[-1]["seq"] + 1

    def wait_caught_up(self, svc, sources, timeout=120):
        """Wait until svc has applied, from every source, what that source
        last published; returns {source: applied}."""
        deadline = time.time() + timeout
        applied, lasts = {}, {}
        while time.time() < deadline:
            try:
                lasts = {s: self.request(self.endpoints[s]["fetch"], {"op": "status"}, timeout=2)["last"]
                         for s in sources}
                st = self.request(self.endpoints[svc]["fetch"], {"op": "status"}, timeout=2)
                applied = {x["src"]: x["applied"] for x in st.get("sources", [])}
                if all(applied.get(s) == lasts[s] for s in sources):
                    return applied
            except TimeoutError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{svc} never caught up: applied {applied}, sources at {lasts}")

    def subscriber(self, svc="intake"):
        s = CTX.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SUBSCRIBE, b"")
        s.connect(self.endpoints[svc]["pub"])
        return s


def unpack_events(events):
    # Events inside a fetch reply are maps already decoded by msgpack
    return list(events)


class Producer:
    """A pipelined DEALER producer that retries every request until acked.

    Requests carry stable idem keys; a request unanswered within `timeout`
    is sent again with the same bytes, whatever happened to the server.
    """

    def __init__(self, endpoint, window=500, timeout=2.0):
        self.endpoint = endpoint
        self.window = window
        self.timeout = timeout
        self.sock = None
        self.acks = {}           # idem -> reply
        self.errors = {}         # idem -> error reply (final)
        self.resends = 0
        self.reconnect()

    def reconnect(self):
        if self.sock is not None:
            self.sock.close(0)
        self.sock = CTX.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 100000)
        self.sock.setsockopt(zmq.RCVHWM, 100000)
        self.sock.connect(self.endpoint)

    def run(self, requests, deadline=600):
        """requests: list of dicts with an idem. Returns when all are answered."""
        pending = {}             # idem -> (bytes, sent_at)
        queue = list(requests)
        queue.reverse()
        end = time.time() + deadline
        while (queue or pending) and time.time() < end:
            while queue and len(pending) < self.window:
                req = queue.pop()
                data = pack(req)
                pending[req["idem"]] = [data, time.time()]
                self.sock.send_multipart([b"", data])
            if self.sock.poll(50):
                while True:
                    try:
                        frames = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    reply = unpack(frames[-1])
                    idem = reply.get("idem")
                    if idem not in pending:
                        continue
                    if reply.get("ok"):
                        self.acks[idem] = reply
                        del pending[idem]
                    elif reply.get("code") == "unavailable":
                        pending[idem][1] = 0          # resend on the next sweep
                    else:
                        self.errors[idem] = reply
                        del pending[idem]
            now = time.time()
            stale = [i for i, p in pending.items() if now - p[1] > self.timeout]
            if stale:
                # The server may be gone: a fresh connection drops whatever
                # the old pipe still held, then everything unacked goes again.
                self.reconnect()
                for idem in list(pending):
                    pending[idem][1] = now
                    self.sock.send_multipart([b"", pending[idem][0]])
                    self.resends += 1
        if pending:
            raise TimeoutError(f"{len(pending)} requests never acked")


def load_cert(path):
    """(public, secret or None) Z85 keys of a czmq certificate file."""
    import re
    text = open(path).read()
    pub = re.search(r'public-key = "(.+?)"', text).group(1).encode()
    sec = re.search(r'secret-key = "(.+?)"', text)
    return pub, (sec.group(1).encode() if sec else None)


def curve_socket(kind, endpoint, cert=None, server_cert=None):
    """A client socket; with cert (path of NAME.cert), a CURVE client of the
    server whose public certificate is server_cert."""
    s = CTX.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    if cert:
        pub, sec = load_cert(cert + "_secret")
        s.curve_publickey, s.curve_secretkey = pub, sec
        s.curve_serverkey = load_cert(server_cert)[0]
    if kind == zmq.SUB:
        s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(endpoint)
    return s


def fault_row(test, events, faults, lost, doubled, recovery, notes=""):
    """One row of the fault suite's table (tests/faults/table.py prints it)."""
    row = f"| {test} | {events} | {faults} | {lost} | {doubled} | {recovery} | {notes} |"
    print(row)
    path = os.environ.get("RELAIS_FAULT_TABLE")
    if path:
        with open(path, "a") as f:
            f.write(row + "\n")


def check(cond, message, *details):
    if not cond:
        print("FAIL:", message, *details, file=sys.stderr)
        sys.exit(1)


def ok(name):
    print(f"{name}: OK")
