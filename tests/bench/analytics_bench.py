"""Analytics benchmark: prints figures, asserts nothing about time.

  /usr/bin/python3 tests/bench/analytics_bench.py [--events N] [--queries Q]

with RELAIS_BIN_DIR pointing at the build tree (default ../../build).
1. live: intake takes N simulated requests (`relais simulate --rate 0`)
   while analytics follows; events/s = N / (time until analytics applied
   the last one, from the first submit);
2. rebuild: `relais-analytics --rebuild` of those N events into a fresh
   store (fetch from sequence 1), wall time and events/s;
3. queries: Q analytics.query requests, one at a time (reports by
   arrondissement per day over a week, level-2 share by public, ack delay
   percentiles, unmet demand, trends), latency p50 / p99 / max.
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from relais_harness import CTX, Bus, binary, pack, unpack  # noqa: E402

import zmq  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--events", type=int, default=100000)
parser.add_argument("--queries", type=int, default=2000)
args = parser.parse_args()

bus = Bus("abench", services=["intake", "analytics"])
bus.start("intake")
bus.start("analytics")


def applied():
    st = bus.request(bus.endpoints["analytics"]["fetch"], {"op": "status"})
    return st["sources"][0]["applied"]


t0 = time.time()
sim = subprocess.run([binary("relais"), "--config", bus.config, "simulate", "--seed", "5",
                      "--count", str(args.events), "--rate", "0", "--window", "512",
                      "--start", "2026-11-16T06:00:00Z"], capture_output=True, text=True)
t_sim = time.time() - t0
last = bus.request(bus.endpoints["intake"]["fetch"], {"op": "status"})["last"]
while applied() < last:
    time.sleep(0.05)
t_live = time.time() - t0
print(f"live:     {last} events applied in {t_live:.2f} s from the first submit "
      f"({last / t_live:.0f} events/s; intake alone took {t_sim:.2f} s)")

bus.stop("analytics")
fresh = os.path.join(bus.dir, "rebuilt")
t0 = time.time()
r = subprocess.run([binary("relais-analytics"), "--config", bus.config, "--rebuild", "--store", fresh],
                   capture_output=True, text=True)
t_rebuild = time.time() - t0
print(f"rebuild:  {r.stdout.strip()}  (process wall time {t_rebuild:.2f} s)")
live = subprocess.run([binary("relais-analytics"), "--config", bus.config, "--dump"],
                      capture_output=True, text=True).stdout
rebuilt = subprocess.run([binary("relais-analytics"), "--config", bus.config, "--dump", "--store", fresh],
                         capture_output=True, text=True).stdout
print(f"          dump lines {len(live.splitlines())}, rebuild equals live: {live == rebuilt}")

bus.start("analytics")
sock = CTX.socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 0)
sock.connect(bus.endpoints["analytics"]["api"])
requests = [
    {"op": "analytics.query", "indicator": "reports", "group_by": "arrondissement", "period": "2026-W47"},
    {"op": "analytics.query", "indicator": "level2_share", "group_by": "public", "period": "2026-W47",
     "granularity": "total"},
    {"op": "analytics.query", "indicator": "ack_delay", "group_by": "level", "period": "2026-11"},
    {"op": "analytics.query", "indicator": "unmet_demand", "period": "2026-11", "granularity": "week"},
    {"op": "analytics.trends", "period": "2026-W47"},
]
lat = []
for i in range(args.queries):
    req = requests[i % len(requests)]
    t = time.perf_counter()
    sock.send_multipart([b"", pack(req)])
    reply = unpack(sock.recv_multipart()[-1])
    lat.append(time.perf_counter() - t)
    assert reply["ok"], reply
lat.sort()
print(f"queries:  {len(lat)} requests, p50 {lat[len(lat) // 2] * 1000:.2f} ms, "
      f"p99 {lat[int(len(lat) * 0.99)] * 1000:.2f} ms, max {lat[-1] * 1000:.2f} ms")
sock.close()
bus.stop("analytics")
bus.stop("intake")
