"""Degraded link (RELIABILITY-TESTS T9, latency and loss): a subscriber
reaches intake's pub and fetch endpoints through a TCP relay that adds
latency with jitter, stalls the link for a while now and then (a burst of
loss that TCP would retransmit) and resets every connection at random (the
bytes in flight are lost; ZeroMQ reconnects) or turns one into a black
hole (open, silent: only the ZMTP heartbeats notice). Producers submit steadily
meanwhile. Once the link is healthy again the subscriber must hold every
event exactly once, in order.

Why a relay and not `tc netem`: the kernels this runs on (CI containers)
ship without the sch_netem module, so `tc qdisc add ... netem` fails with
"Specified qdisc kind is unknown". The relay degrades the same two things
the subscriber depends on - the order and the timing of bytes on its TCP
connections - from user space; the hard cut is fault-01-partition's.
CI degrades for 15 s at 100 events/s; RELAIS_SOAK=1 for 60 s.
"""
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from relais_harness import Bus, Producer, binary, check, fault_row, free_port, ok, sample_signal

SOAK = os.environ.get("RELAIS_SOAK") == "1"
DEGRADED_S = int(os.environ.get("RELAIS_DEGRADED_S", 60 if SOAK else 15))
RATE = 100
LATENCY_S = (0.020, 0.080)      # per chunk, each direction
STALL_P, STALL_S = 0.15, (0.5, 2.0)
RESET_P = 0.15                  # per second
HOLE_P = 0.05


class Relay:
    """A TCP relay 127.0.0.1:listen -> 127.0.0.1:target that degrades the
    link while `degraded` is set. Chunks keep their order: each direction
    is one thread. Faults: latency with jitter on every chunk; stalls (no
    byte moves for a while, then all of them do); resets (both ends closed,
    the bytes in flight lost); black holes (a connection that stays open
    but never carries a byte again, like a TCP connection whose peer
    vanished behind a NAT - only a heartbeat can tell)."""

    def __init__(self, listen, target):
        self.target = target
        self.degraded = threading.Event()
        self.stalled_until = 0.0
        self.resets = self.stalls = self.holes = 0
        self.lock = threading.Lock()
        self.pairs = []
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", listen))
        self.server.listen(16)
        self.closed = False
        threading.Thread(target=self.accept, daemon=True).start()
        threading.Thread(target=self.chaos, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                a, _ = self.server.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                a.close()
                continue
            pair = {"socks": (a, b), "hole": False}
            with self.lock:
                self.pairs.append(pair)
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self.pump, args=(src, dst, pair), daemon=True).start()

    def pump(self, src, dst, pair):
        # Only this thread reads src and closes it; others only shut down
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if pair["hole"]:
                continue
            if self.degraded.is_set():
                time.sleep(random.uniform(*LATENCY_S))
                while time.time() < self.stalled_until:
                    time.sleep(0.01)
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        src.close()
        with self.lock:
            if pair in self.pairs:
                self.pairs.remove(pair)

    def chaos(self):
        while not self.closed:
            time.sleep(1.0)
            if not self.degraded.is_set():
                continue
            if random.random() < STALL_P:
                self.stalled_until = time.time() + random.uniform(*STALL_S)
                self.stalls += 1
            with self.lock:
                live = [p for p in self.pairs if not p["hole"]]
            if live and random.random() < HOLE_P:
                random.choice(live)["hole"] = True
                self.holes += 1
            elif live and random.random() < RESET_P:
                for s in random.choice(live)["socks"]:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                self.resets += 1

    def hole_all(self):
        with self.lock:
            for p in self.pairs:
                if not p["hole"]:
                    p["hole"] = True
                    self.holes += 1

    def close(self):
        self.closed = True
        self.server.close()


random.seed(int(os.environ.get("RELAIS_FAULT_SEED", "4")))
procs = []
relays = []
try:
    bus = Bus("degraded")
    ports = {k: free_port() for k in ("pub", "fetch", "relay_pub", "relay_fetch")}
    cfg = bus.config + ".tcp"
    with open(cfg, "w") as f:
        f.write("relais\n    data = var\nintake\n"
                f"    submit = \"{bus.ep('intake-submit')}\"\n    records = \"{bus.ep('intake-records')}\"\n"
                f"    pub = \"tcp://127.0.0.1:{ports['pub']}\"\n"
                f"    fetch = \"tcp://127.0.0.1:{ports['fetch']}\"\n    heartbeat = 1s\n")
    os.makedirs(os.path.join(bus.dir, "var"), exist_ok=True)
    log = open(os.path.join(bus.dir, "intake.log"), "ab")
    intake = subprocess.Popen([binary("relais-intake"), "--config", cfg], stdout=log, stderr=log)
    procs.append(intake)
    prod = Producer(bus.endpoints["intake"]["submit"], window=50)
    prod.run([{"op": "submit", "idem": "warmup", "signal": sample_signal()}], deadline=30)

    relays = [Relay(ports["relay_pub"], ports["pub"]), Relay(ports["relay_fetch"], ports["fetch"])]
    subdir = os.path.join(bus.dir, "sub")
    sublog_path = os.path.join(bus.dir, "sub.log")
    sublog = open(sublog_path, "ab")
    sub = subprocess.Popen([binary("relais-testsub"), "--dir", subdir, "--src", "intake",
                            "--pub", f"tcp://127.0.0.1:{ports['relay_pub']}",
                            "--fetch", f"tcp://127.0.0.1:{ports['relay_fetch']}"],
                           stdout=sublog, stderr=sublog, env=dict(os.environ, RELAIS_LOG_LEVEL="info"))
    procs.append(sub)

    def dump():
        out = subprocess.run([binary("relais-testsub"), "--dir", subdir, "--src", "intake", "--dump"],
                             capture_output=True, check=True)
        return json.loads(out.stdout)

    total = RATE * (DEGRADED_S + 8)
    sent = []

    def feed():
        p = Producer(bus.endpoints["intake"]["submit"], window=20)
        for i in range(total):
            t0 = time.time()
            p.run([{"op": "submit", "idem": f"d-{i}", "signal": sample_signal(arr=1 + i % 20)}], deadline=120)
            sent.append(i)
            time.sleep(max(0.0, 1.0 / RATE - (time.time() - t0)))

    feeder = threading.Thread(target=feed)
    feeder.start()
    time.sleep(3)
    for r in relays:
        r.degraded.set()
    # One black hole for sure on each path: the live one first
    time.sleep(2)
    relays[0].hole_all()
    time.sleep(3)
    relays[1].hole_all()
    time.sleep(DEGRADED_S - 5)
    for r in relays:
        r.degraded.clear()
    healed_at = time.time()
    at_heal = 1 + len(sent)
    while time.time() < healed_at + 120 and dump()["checkpoint"] < at_heal:
        time.sleep(0.1)
    caught_up = time.time() - healed_at
    feeder.join()
    last = 1 + total
    deadline = time.time() + 120
    while time.time() < deadline and dump()["checkpoint"] < last:
        time.sleep(0.2)
    d = dump()
    resets = sum(r.resets for r in relays)
    stalls = sum(r.stalls for r in relays)
    holes = sum(r.holes for r in relays)
    check(resets + stalls + holes > 0, "the link was really degraded", resets, stalls, holes)
    if d["checkpoint"] != last:
        print(open(sublog_path, errors="replace").read()[-3000:], file=sys.stderr)
    check(sub.poll() is None, "the subscriber is alive", sub.returncode)
    check(d["checkpoint"] == last, "the subscriber caught up", d, last)
    check(d["distinct"] == last and d["total"] == last and d["max_count"] == 1,
          "every event applied exactly once", d)
    check(d["order_errors"] == 0, "in order", d)
    fault_row("degraded link (T9)", last,
              f"{DEGRADED_S} s of 20-80 ms latency, {stalls} stalls, {resets} resets, {holes} dead connections", 0, 0,
              f"{caught_up:.1f} s after the heal", "user-space relay: no sch_netem in this kernel")
finally:
    for r in relays:
        r.close()
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
ok("04-degraded-link")
