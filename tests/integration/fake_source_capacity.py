"""A tiny fake publishing service for capacity's system tests: PUB +
fetch ROUTER + $hb heartbeats per proto/README §3-4, with an in-memory log.

FakeSource("plans", pub_ep, fetch_ep) binds both endpoints and runs a
thread. publish(type, key, body, drop=False, ts=None) appends an envelope to the log
(seq contiguous from 1) and sends it on PUB unless drop is true - a dropped
event is only announced by the next heartbeat, and the subscriber must
fetch it. close() stops the thread and the sockets.
"""
import threading
import time

import zmq

from relais_harness import CTX, now_us, pack, unpack


class FakeSource:
    def __init__(self, name, pub_ep, fetch_ep, heartbeat=0.2):
        self.name = name
        self.log = []                    # envelopes, seq = index + 1
        self.lock = threading.Lock()
        self.outbox = []                 # (topic, envelope) to send on PUB
        self.heartbeat = heartbeat
        self.fetches = 0
        self.stop = threading.Event()
        self.pub = CTX.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(pub_ep)
        self.fetch = CTX.socket(zmq.ROUTER)
        self.fetch.setsockopt(zmq.LINGER, 0)
        self.fetch.bind(fetch_ep)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def publish(self, type_, key, body, drop=False, ts=None):
        with self.lock:
            env = {"v": 1, "src": self.name, "seq": len(self.log) + 1, "ts": ts or now_us(),
                   "type": type_, "key": key, "body": body}
            self.log.append(env)
            if not drop:
                self.outbox.append((type_, env))
            return env["seq"]

    def _hb(self):
        with self.lock:
            last = len(self.log)
        self.pub.send_multipart([b"$hb", pack({"v": 1, "src": self.name, "seq": last,
                                               "ts": now_us()})])

    def _serve(self, frames):
        ident, data = frames[0], frames[-1]
        try:
            req = unpack(data)
        except Exception:
            req = None
        if not isinstance(req, dict) or req.get("op") not in ("fetch", "status"):
            reply = {"ok": False, "code": "unknown_op", "field": "op", "message": "fetch or status"}
        elif req["op"] == "status":
            with self.lock:
                reply = {"ok": True, "src": self.name, "last": len(self.log)}
        else:
            self.fetches += 1
            frm = req.get("from", 0)
            count = min(int(req.get("max", 1000)), 1000)
            with self.lock:
                events = self.log[frm - 1:frm - 1 + count] if frm >= 1 else []
                reply = {"ok": True, "first": 1 if self.log else 0, "last": len(self.log),
                         "events": events}
        if "rid" in (req or {}):
            reply["rid"] = req["rid"]
        self.fetch.send_multipart([ident, b"", pack(reply)])

    def _run(self):
        self._hb()
        next_hb = time.time() + self.heartbeat
        poller = zmq.Poller()
        poller.register(self.fetch, zmq.POLLIN)
        while not self.stop.is_set():
            with self.lock:
                out, self.outbox = self.outbox, []
            for topic, env in out:
                self.pub.send_multipart([topic.encode(), pack(env)])
            if dict(poller.poll(20)).get(self.fetch):
                while True:
                    try:
                        self._serve(self.fetch.recv_multipart(zmq.NOBLOCK))
                    except zmq.Again:
                        break
            if time.time() >= next_hb:
                self._hb()
                next_hb = time.time() + self.heartbeat

    def close(self):
        self.stop.set()
        self.thread.join()
        self.pub.close()
        self.fetch.close()
