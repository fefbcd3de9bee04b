"""kill -9 of intake in the middle of a pipelined stream of 20,000 submits
from a producer that retries until acked; restart. Every acked report is in
the log exactly once and the log's sequences are contiguous."""
import os
import random
import threading
import time

from relais_harness import Bus, Producer, check, ok, sample_signal

N = int(os.environ.get("RELAIS_KILL9_COUNT", "20000"))
bus = Bus("kill9")
bus.start("intake")
eps = bus.endpoints["intake"]
requests = [{"op": "submit", "idem": f"k9-{i}", "signal": sample_signal(arr=1 + i % 20, persons=1 + i % 7)}
            for i in range(N)]

kills = []
stop = threading.Event()


def killer():
    """Kill when a quarter, half and three quarters of the reports are
    acked: by progress, not by the clock, so the kills land mid-stream
    however fast intake is."""
    rnd = random.Random(42)
    for fraction in (0.25, 0.5, 0.75):
        while not stop.is_set() and len(p.acks) < N * fraction:
            time.sleep(0.001)
        if stop.is_set():
            break
        time.sleep(rnd.uniform(0, 0.01))
        bus.kill9("intake")
        kills.append(len(p.acks))
        time.sleep(0.2)
        bus.start("intake")


p = Producer(eps["submit"], window=2000, timeout=1.5)
t = threading.Thread(target=killer)
t.start()
try:
    p.run(requests, deadline=600)
finally:
    stop.set()
    t.join()
check(len(kills) == 3 and all(0 < k < N for k in kills), "intake was killed 3 times mid-stream", kills)
check(not p.errors, "no error replies", list(p.errors.items())[:3])
check(len(p.acks) == N, "every report acked", len(p.acks))

events = bus.fetch_all()
seqs = [e["seq"] for e in events]
check(seqs == list(range(1, len(events) + 1)), "contiguous sequences from 1")
created = [e["key"] for e in events if e["type"] == "signal.created"]
check(len(created) == len(set(created)), "no report created twice")
check(len(created) == N, "one report per idem", len(created), N)
acked_ids = {r["id"] for r in p.acks.values()}
check(acked_ids == set(created), "every acked id is in the log, and only those")
dups = sum(1 for r in p.acks.values() if r["duplicate"])
print(f"kills={len(kills)} acked={len(p.acks)} resends={p.resends} duplicates={dups} log={len(events)}")
check(bus.stop("intake") == 0, "clean stop")
ok("05-kill9")
