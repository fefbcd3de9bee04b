"""Router killed -9 (twice) during a stream of 2,400 reports: after restart
every report is routed exactly once - every expected (report, partner)
assignment is in router's log, none twice - and every delivery gets its
record (no pending body left)."""
import threading
import time

from relais_harness import Bus, Producer, check, ok, sample_signal
from router_helpers import router_events

N = 2400
bus = Bus("rkill", services=["intake", "router"])
bus.start("intake")
bus.start("router")
eps = bus.endpoints


def report(i):
    if i % 10 == 0:
        return sample_signal(arr=1 + i % 20, place={"arrondissement": 1 + i % 20, "kind": "domaine_municipal"})
    return sample_signal(arr=1 + i % 20)


def expected(i):
    return {"uasa", "mus"} if i % 10 == 0 else {f"cellule-{1 + i % 20}"}


producer = Producer(eps["intake"]["submit"], window=200)
reqs = [{"op": "submit", "idem": f"k-{i}", "signal": report(i)} for i in range(N)]


def stream():
    # a steady stream (about 4 s), so that the kills land while it flows
    for k in range(0, N, 100):
        producer.run(reqs[k:k + 100])
        time.sleep(0.15)


thread = threading.Thread(target=stream)
thread.start()
killed_at = []
for target in (400, 1900):   # router log sequences (about 2,640 in all)
    # kill once the router has routed part of the stream, while it flows
    while thread.is_alive():
        status = bus.request(eps["router"]["fetch"], {"op": "status"})
        if status.get("last", 0) >= target:
            break
        time.sleep(0.02)
    killed_at.append((status.get("last"), len(producer.acks)))
    bus.kill9("router")
    time.sleep(0.3)
    bus.start("router")
thread.join()
check(len(producer.acks) == N, "all submitted", len(producer.acks))
print("killed at (router last, intake acks):", killed_at)
ids = {producer.acks[f"k-{i}"]["id"]: i for i in range(N)}
total = sum(len(expected(i)) for i in range(N))

deadline = time.time() + 120
while time.time() < deadline:
    evs = router_events(bus, ["route.assigned"])
    if len(evs) >= total:
        break
    time.sleep(0.5)
time.sleep(0.5)
evs = router_events(bus, ["route.assigned"])
pairs = [(e["key"], e["body"]["partner"]) for e in evs]
check(len(pairs) == len(set(pairs)), "no double assignment",
      [p for p in set(pairs) if pairs.count(p) > 1][:5])
got = {}
for key, partner in pairs:
    got.setdefault(key, set()).add(partner)
missing = [k for k, i in ids.items() if got.get(k) != expected(i)]
check(not missing, "every report routed to exactly its partners", len(missing), missing[:5])
check(len(pairs) == total, "assignment count", len(pairs), total)
seqs = [e["seq"] for e in router_events(bus)]
check(seqs == list(range(1, len(seqs) + 1)), "router log contiguous")

# Every delivery eventually has its record
deadline = time.time() + 60
while time.time() < deadline:
    boxes = bus.request(eps["router"]["api"], {"op": "router.mailbox"})["partners"]
    if all(b["pending_body"] == 0 for b in boxes):
        break
    time.sleep(0.5)
check(all(b["pending_body"] == 0 for b in boxes), "records fetched", boxes)
check(sum(b["last"] for b in boxes) == total, "mailbox sizes", sum(b["last"] for b in boxes), total)
check("ready" in bus.log_text("router"), "router restarted")
check(bus.stop("router") == 0, "router clean stop")
ok("23-router-kill9")
