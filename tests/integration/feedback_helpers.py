"""Helpers for the feedback system tests (70-79): a producer's follower
speaking the feed protocol (proto/feedback.md §4), waits on feedback's
state, and the statuses of a report."""
import time

import zmq

from relais_harness import CTX, pack, unpack


class Follower:
    """A producer's DEALER on feedback's feed endpoint."""

    def __init__(self, endpoint, producer, after=0, sock=None):
        self.producer = producer
        self.sock = sock or CTX.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if sock is None:
            self.sock.connect(endpoint)
        self.deliveries = []
        self.errors = []
        self.welcome = None
        self.last = after                   # the last mseq handled
        self.redelivered = 0
        self.hello()

    def hello(self):
        msg = {"op": "hello", "after": self.last}
        if self.producer is not None:
            msg["producer"] = self.producer
        self.send(msg)

    def send(self, obj):
        self.sock.send_multipart([b"", pack(obj)])

    def poll(self, timeout=0.2):
        """Read what is waiting; answer pings. Returns new deliveries."""
        got = []
        end = time.time() + timeout
        while True:
            left = max(0, end - time.time())
            if not self.sock.poll(int(left * 1000)):
                return got
            msg = unpack(self.sock.recv_multipart()[-1])
            if msg.get("op") == "deliver":
                if msg["mseq"] <= self.last:
                    self.redelivered += 1   # sent again before our ack: handled already
                    continue
                self.last = msg["mseq"]
                got.append(msg)
                self.deliveries.append(msg)
            elif msg.get("op") == "welcome":
                self.welcome = msg
            elif msg.get("op") == "ping":
                self.send({"op": "ping"})
            elif msg.get("ok") is False:
                self.errors.append(msg)
                if msg.get("code") == "conflict":
                    self.hello()            # the session was dropped while we slept

    def collect(self, pred, timeout=20, ack=True):
        """Read (acking each batch) until pred(deliveries) holds."""
        end = time.time() + timeout
        while not pred(self.deliveries) and time.time() < end:
            got = self.poll(0.2)
            if got and ack:
                self.send({"op": "ack", "upto": got[-1]["mseq"]})
        return self.deliveries

    def close(self):
        self.sock.close(0)


def statuses(deliveries, key):
    """The statuses a follower received for report key, in order."""
    return [d["body"]["status"] for d in deliveries if d["key"] == key]


def status_of(bus, key, producer=None):
    req = {"op": "feedback.status", "id": key}
    if producer:
        req["producer"] = producer
    return bus.request(bus.endpoints["feedback"]["api"], req)


def wait_status(bus, key, status, timeout=30):
    """Wait until report key's status is status; returns the reply."""
    end = time.time() + timeout
    reply = None
    while time.time() < end:
        reply = status_of(bus, key)
        if reply.get("ok") and reply["status"] == status:
            return reply
        time.sleep(0.1)
    raise TimeoutError(f"{key} never reached {status}: {reply}")
