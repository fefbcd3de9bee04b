#!/usr/bin/python3
"""Router benchmark: reports/s from intake through router to N partner
notifiers (file sinks, fsync'd), acknowledged end to end.

    RELAIS_BIN_DIR=build /usr/bin/python3 tests/bench/router_bench.py [--reports 5000] [--partners 1 10]

Each report is level 1 and goes to exactly one partner (rules by
arrondissement), so N partners share the stream. The clock runs from the
first submit until every mailbox reports every delivery acked. It prints
figures; nothing asserts on time."""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from relais_harness import Bus, Producer, binary, sample_signal  # noqa: E402
from router_helpers import router_section  # noqa: E402


def run(reports, n):
    bus = Bus(f"rbench{n}", services=["intake", "router"])
    rules = "    partner_heartbeat = 500ms\n    window = 256\n    rules\n"
    for k in range(n):
        arrs = " ".join(str(a) for a in range(1, 21) if (a - 1) % n == k)
        if not arrs:
            continue
        rules += f"        r{k}\n            arrondissements = \"{arrs}\"\n            partners = p{k}\n"
    router_section(bus, rules)
    bus.start("intake")
    bus.start("router")
    partners = [f"p{k}" for k in range(min(n, 20))]
    notes = []
    for p in partners:
        log = open(os.path.join(bus.dir, f"notify-{p}.log"), "ab")
        notes.append(subprocess.Popen([binary("relais-notify"), "--config", bus.config, "--partner", p,
                                       "--sink", f"file:{os.path.join(bus.dir, p + '.ndjson')}"],
                                      stdout=log, stderr=log))
    time.sleep(1.0)
    api = bus.endpoints["router"]["api"]
    reqs = [{"op": "submit", "idem": f"b-{i}", "signal": sample_signal(arr=1 + i % 20)} for i in range(reports)]
    t0 = time.time()
    Producer(bus.endpoints["intake"]["submit"], window=1000).run(reqs)
    t_intake = time.time() - t0
    while True:
        boxes = bus.request(api, {"op": "router.mailbox"}, timeout=30)["partners"]
        if sum(b["acked"] for b in boxes) >= reports:
            break
        time.sleep(0.05)
    total = time.time() - t0
    for p in notes:
        p.terminate()
        p.wait(10)
    bus.stop("router")
    bus.stop("intake")
    bus.close()
    print(f"partners={n:3d} reports={reports} intake_acked={reports / t_intake:8.0f}/s "
          f"end_to_end_acked={reports / total:8.0f}/s ({total:.2f} s)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=int, default=5000)
    ap.add_argument("--partners", type=int, nargs="+", default=[1, 10])
    a = ap.parse_args()
    for n in a.partners:
        run(a.reports, n)
