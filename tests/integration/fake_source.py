"""A tiny publishing service for plans' system tests: PUB + fetch + $hb as
proto/README.md §3-4 state them, so a test can play router's route.* events
without the router.

    src = FakeSource("router", bus.ep("router-pub"), bus.ep("router-fetch"))
    src.publish("route.assigned", "SIG-00000001", {"partner": "uasa", ...})
    src.close()

One background thread owns both sockets (ZeroMQ sockets are not thread
safe): it serves fetch and status, sends a heartbeat every 200 ms, and
publishes what publish() queued. Every event goes to the log first, so a
subscriber that missed it fetches it.
"""
import queue
import threading
import time

import zmq

from relais_harness import CTX, now_us, pack, unpack


class FakeSource:
    def __init__(self, name, pub_ep, fetch_ep, heartbeat=0.2):
        self.name = name
        self.log = []                 # envelopes (dicts); seq = index + 1
        self.queue = queue.Queue()
        self.heartbeat = heartbeat
        self.stopping = False
        self.pub = CTX.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(pub_ep)
        self.router = CTX.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(fetch_ep)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def publish(self, type_, key, body, corr=None):
        """Append an event to the log and publish it; returns its seq."""
        done = queue.Queue()
        self.queue.put((type_, key, body, corr, done))
        return done.get(timeout=5)

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.pub.close(0)
        self.router.close(0)

    # -- the thread --------------------------------------------------------
    def _hb(self):
        env = {"v": 1, "src": self.name, "seq": len(self.log), "ts": now_us()}
        self.pub.send_multipart([b"$hb", pack(env)])

    def _serve(self, frames):
        ident, data = frames[0], frames[-1]
        try:
            req = unpack(data)
        except Exception:
            req = None
        if not isinstance(req, dict):
            reply = {"ok": False, "code": "invalid", "message": "request must be a map"}
        elif req.get("op") == "status":
            reply = {"ok": True, "src": self.name, "last": len(self.log), "ts": now_us(),
                     "published": len(self.log), "fetches": 0, "sources": []}
        elif req.get("op") == "fetch" and isinstance(req.get("from"), int) and req["from"] >= 1:
            count = min(int(req.get("max", 1000)), 1000)
            start = req["from"] - 1
            reply = {"ok": True, "first": 1 if self.log else 0, "last": len(self.log),
                     "events": self.log[start:start + count]}
        else:
            reply = {"ok": False, "code": "unknown_op", "field": "op",
                     "message": "this endpoint serves fetch and status"}
        if "rid" in (req or {}):
            reply["rid"] = req["rid"]
        self.router.send_multipart([ident, b"", pack(reply)])

    def _run(self):
        self._hb()
        last_hb = time.time()
        while not self.stopping:
            if self.router.poll(20):
                while True:
                    try:
                        frames = self.router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._serve(frames)
            while True:
                try:
                    type_, key, body, corr, done = self.queue.get_nowait()
                except queue.Empty:
                    break
                env = {"v": 1, "src": self.name, "seq": len(self.log) + 1, "ts": now_us(),
                       "type": type_, "key": key, "body": body}
                if corr:
                    env["corr"] = corr
                self.log.append(env)
                self.pub.send_multipart([type_.encode(), pack(env)])
                done.put(env["seq"])
            if time.time() - last_hb >= self.heartbeat:
                self._hb()
                last_hb = time.time()
