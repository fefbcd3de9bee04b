"""The services under valgrind's memcheck, with traffic (issue: faults).

intake, router, plans, capacity and analytics each run under valgrind while
a few hundred reports are submitted, updated and closed, routed to a partner
that acknowledges, planned and counted; full records are read, logs fetched.
Then each stops with SIGTERM and must report no error and no definitely lost
block (--error-exitcode: any error makes the exit code 99).
Skipped (77) in the sanitizer pass, where valgrind cannot run.
"""
import os
import re
import sys
import time

from relais_harness import Bus, Producer, check, fault_row, ok, sample_signal
from router_helpers import Partner

if os.environ.get("RELAIS_SANITIZED"):
    print("03-valgrind: the sanitizer build cannot run under valgrind; skipped")
    sys.exit(77)

SERVICES = ["intake", "router", "plans", "capacity", "analytics"]
bus = Bus("valgrind", services=SERVICES)
VALGRIND = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--error-exitcode=99", "--track-fds=no", "--num-callers=20"]
for svc in SERVICES:
    bus.start(svc, prefix=VALGRIND)

N = 300
reqs = [{"op": "submit", "idem": f"vg-{i}",
         "signal": sample_signal(arr=1 + i % 20, **({"tents": 5, "persons": 6} if i % 3 == 0 else {}))}
        for i in range(N)]
prod = Producer(bus.endpoints["intake"]["submit"], window=50, timeout=30)
prod.run(reqs, deadline=600)
ids = [r["id"] for r in prod.acks.values()]
prod.run([{"op": "update", "idem": f"vgu-{i}", "id": ids[i], "changes": {"persons": 2}} for i in range(0, N, 10)])
prod.run([{"op": "close", "idem": f"vgc-{i}", "id": ids[i], "reason": "resolu"} for i in range(1, N, 10)])
for i in range(20):
    r = bus.request(bus.endpoints["intake"]["records"], {"op": "signal.get", "id": ids[i], "purpose": "test"}, timeout=30)
    check(r["ok"], "record read", r)
partner = Partner(bus.endpoints["router"]["partners"], "mus")
partner.collect(N // 3, timeout=120)
check(len(partner.deliveries) >= N // 3, "the MUS received its deliveries", len(partner.deliveries))
partner.close()
r = bus.request(bus.endpoints["capacity"]["api"], {"op": "capacity.declare", "id": "chu-vg-19", "kind": "chu",
                                                     "arrondissement": 19, "places": 40, "by": "test"}, timeout=30)
r = bus.request(bus.endpoints["capacity"]["api"], {"op": "capacity.list"}, timeout=30)
check(r["ok"], "capacity answers", r)
for svc in ("router", "plans", "analytics"):
    bus.wait_caught_up(svc, ["intake"] + (["router"] if svc != "router" else []), timeout=300)
r = bus.request(bus.endpoints["analytics"]["api"], {"op": "analytics.indicators"}, timeout=30)
check(r["ok"], "analytics answers", r)
bus.fetch_all("intake")

summary = []
for svc in reversed(SERVICES):
    rc = bus.stop(svc, timeout=120)
    log = bus.log_text(svc)
    lost = re.search(r"definitely lost: ([\d,]+) bytes", log)
    errors = re.search(r"ERROR SUMMARY: (\d+) errors", log)
    summary.append(f"{svc}: exit {rc}, definitely lost {lost.group(1) if lost else '0'} bytes, "
                   f"{errors.group(1) if errors else '?'} errors")
    check(rc == 0, f"{svc} is clean under valgrind", log[-3000:])
    check(errors and errors.group(1) == "0", f"{svc}: valgrind found errors", log[-3000:])
print("\n".join(summary))
fault_row("valgrind memcheck", N, "5 services under memcheck", 0, 0, "-", "0 errors, 0 bytes definitely lost")
ok("03-valgrind")
