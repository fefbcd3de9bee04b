"""Partition (RELIABILITY-TESTS T9, CI-sized): intake on host A, a
subscriber on host B, in two network namespaces joined by a veth pair.

Producers submit steadily (over ipc://, from outside both hosts) while the
link to B is cut for a while, then healed. The subscriber must notice the
silence (3 heartbeat intervals), and once the link is back catch up from
its checkpoint: every event applied exactly once, in order. The test prints
the figures (events, cut, detection, catch-up) as one table row.
CI cuts for 15 s at 100 events/s; RELAIS_SOAK=1 cuts for 60 s.
"""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from netns import Hosts, available
from relais_harness import Bus, Producer, binary, check, fault_row, ok, sample_signal

if not available():
    print("01-partition: needs root and network namespaces; skipped")
    sys.exit(77)

SOAK = os.environ.get("RELAIS_SOAK") == "1"
CUT_S = 60 if SOAK else 15
RATE = 100
hosts = Hosts("part")
procs = []
try:
    bus = Bus("partition")
    pub = f"tcp://{hosts.ip_a}:7101"
    fetch = f"tcp://{hosts.ip_a}:7102"
    cfg = bus.config + ".hosts"
    with open(cfg, "w") as f:
        f.write("relais\n    data = var\nintake\n"
                f"    submit = \"{bus.ep('intake-submit')}\"\n    records = \"{bus.ep('intake-records')}\"\n"
                f"    pub = \"{pub}\"\n    fetch = \"{fetch}\"\n    heartbeat = 1s\n")
    os.makedirs(os.path.join(bus.dir, "var"), exist_ok=True)
    log = open(os.path.join(bus.dir, "intake.log"), "ab")
    intake = subprocess.Popen(hosts.run_in("a", [binary("relais-intake"), "--config", cfg]),
                              stdout=log, stderr=log)
    procs.append(intake)
    prod = Producer(bus.endpoints["intake"]["submit"], window=50)
    prod.run([{"op": "submit", "idem": "warmup", "signal": sample_signal()}], deadline=30)

    subdir = os.path.join(bus.dir, "sub")
    sublog_path = os.path.join(bus.dir, "sub.log")
    sublog = open(sublog_path, "ab")
    sub = subprocess.Popen(hosts.run_in("b", [binary("relais-testsub"), "--dir", subdir, "--src", "intake",
                                              "--pub", pub, "--fetch", fetch]),
                           stdout=sublog, stderr=sublog, env=dict(os.environ, RELAIS_LOG_LEVEL="info"))
    procs.append(sub)

    def dump():
        out = subprocess.run([binary("relais-testsub"), "--dir", subdir, "--src", "intake", "--dump"],
                             capture_output=True, check=True)
        return json.loads(out.stdout)

    total = RATE * (CUT_S + 10)
    sent = []

    def feed():
        p = Producer(bus.endpoints["intake"]["submit"], window=20)
        for i in range(total):
            t0 = time.time()
            p.run([{"op": "submit", "idem": f"p-{i}", "signal": sample_signal(arr=1 + i % 20)}], deadline=120)
            sent.append(i)
            time.sleep(max(0.0, 1.0 / RATE - (time.time() - t0)))

    feeder = threading.Thread(target=feed)
    feeder.start()
    time.sleep(4)
    cut_at = time.time()
    hosts.cut()
    time.sleep(CUT_S)
    before = dump()["checkpoint"]
    at_heal = 1 + len(sent)             # warmup + every report acked so far
    hosts.heal()
    healed_at = time.time()
    while time.time() < healed_at + 120 and dump()["checkpoint"] < at_heal:
        time.sleep(0.1)
    caught_up = time.time() - healed_at
    check(before < at_heal - RATE, "the cut really held the subscriber back", before, at_heal)
    feeder.join()
    last = 1 + total
    deadline = time.time() + 120
    while time.time() < deadline and dump()["checkpoint"] < last:
        time.sleep(0.2)
    d = dump()
    check(d["checkpoint"] == last, "the subscriber caught up", d, last)
    check(d["distinct"] == last and d["total"] == last and d["max_count"] == 1,
          "every event applied exactly once", d)
    check(d["order_errors"] == 0, "in order", d)
    text = open(sublog_path, encoding="utf-8", errors="replace").read()
    check("silent" in text, "the silence was noticed", text[-1500:])
    fault_row("partition (T9)", last, f"link cut {CUT_S} s", 0, 0,
              f"{caught_up:.1f} s after the heal", f"{at_heal - before} events behind at the heal")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    hosts.close()
ok("01-partition")
