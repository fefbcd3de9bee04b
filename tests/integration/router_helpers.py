"""Helpers for the router's system tests (20-29): a fake partner notifier
speaking the mailbox protocol (PROTOCOL §5, proto/router.md), and waits on
router's log."""
import time

import zmq

from relais_harness import CTX, pack, unpack


class Partner:
    """A partner's DEALER on router's partners endpoint."""

    def __init__(self, endpoint, partner, after=0):
        self.partner = partner
        self.sock = CTX.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.deliveries = []
        self.errors = []
        self.send({"op": "hello", "partner": partner, "after": after})

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
                got.append(msg)
                self.deliveries.append(msg)
            elif msg.get("op") == "ping":
                self.send({"op": "ping"})
            elif msg.get("ok") is False:
                self.errors.append(msg)

    def collect(self, n, timeout=20, ack=True):
        """Wait for n deliveries in all (acking each batch)."""
        end = time.time() + timeout
        while len(self.deliveries) < n and time.time() < end:
            got = self.poll(0.2)
            if got and ack:
                self.ack(got[-1]["mseq"])
        return self.deliveries

    def ack(self, upto):
        self.send({"op": "ack", "upto": upto})

    def close(self):
        self.sock.close(0)


def router_events(bus, types=None):
    evs = bus.fetch_all("router")
    return [e for e in evs if types is None or e["type"] in types]


def wait_events(bus, pred, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        evs = router_events(bus)
        if pred(evs):
            return evs
        time.sleep(0.2)
    return router_events(bus)


def router_section(bus, text):
    """Add keys (ZPL lines, indented 4) to the router section of the test
    deployment: the harness writes that section, and a section may be given
    only once."""
    with open(bus.config) as f:
        cfg = f.read()
    cfg = cfg.replace("\nrouter\n", "\nrouter\n" + text, 1)
    with open(bus.config, "w") as f:
        f.write(cfg)
