"""A day of simulated capacity traffic (relais capacity simulate --dry-run:
declarations, entries, exits, reservations confirmed or cancelled, morning
counts), sent by a producer that retries with the same idem until acked.
Run A goes undisturbed; run B kill -9s capacity twice in the middle, with
ops in flight (once right after a first reply: some ops committed whose
acks are lost; once at once), restarts it, and the producer retries. Both end in the identical state (relais-capacity --dump) and
the identical event log: every op applied exactly once, in order."""
import os
import json
import subprocess

import zmq

from relais_harness import CTX, Bus, Producer, binary, check, ok, pack, now_us

DAY = 86_400_000_000
SEED = int(os.environ.get("RELAIS_CAPACITY_SEED", "11"))
start = (now_us() - DAY) // 3_600_000_000 * 3_600_000_000
feed = subprocess.run([binary("relais"), "capacity", "simulate", "--dry-run", "--declare",
                       "--seed", str(SEED), "--days", "1", "--start", str(start)],
                      check=True, capture_output=True, text=True).stdout
again = subprocess.run([binary("relais"), "capacity", "simulate", "--dry-run", "--declare",
                        "--seed", str(SEED), "--days", "1", "--start", str(start)],
                       check=True, capture_output=True, text=True).stdout
check(feed == again, "the same seed gives the same feed")
requests = [json.loads(line) for line in feed.splitlines() if line.strip()]
check(len(requests) > 200, "a day of traffic", len(requests))
check(len({r["idem"] for r in requests}) == len(requests), "one idem per request")
kinds = {r["op"] for r in requests}
for op in ("capacity.declare", "capacity.entry", "capacity.exit", "capacity.reserve",
           "capacity.reservation", "capacity.update"):
    check(op in kinds, "the feed holds " + op)

# The forecast period is long so that no daily forecast falls inside a run
EXTRA = "    forecast\n        every = 3650d\n"


def in_flight_kill(bus, chunk, wait_first):
    """Send chunk all at once on a raw DEALER, kill -9 capacity as soon as
    the first reply came (some ops committed, others not, acks lost), or at
    once; restart it. Returns how many replies arrived before the kill."""
    s = CTX.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(bus.endpoints["capacity"]["api"])
    for r in chunk:
        s.send_multipart([b"", pack(r)])
    got = 0
    if wait_first:
        check(s.poll(10000), "a first reply before the kill")
        got = 1
    bus.kill9("capacity")
    while s.poll(0):
        s.recv_multipart()
        got += 1
    s.close()
    bus.start("capacity")
    return got


def run(name, kills):
    bus = Bus(name, services=["capacity"], extra=EXTRA)
    bus.start("capacity")
    p = Producer(bus.endpoints["capacity"]["api"], window=8, timeout=1.0)
    third = len(requests) // 3
    if kills:
        p.run(requests[:third], deadline=300)
        early = in_flight_kill(bus, requests[third:third + 60], True)
        p.run(requests[third:2 * third], deadline=300)
        in_flight_kill(bus, requests[2 * third:2 * third + 60], False)
        p.run(requests[2 * third:], deadline=300)
        check(early >= 1, "replies before the first kill", early)
    else:
        p.run(requests, deadline=300)
    check(not p.errors, name + ": no refusals", list(p.errors.items())[:3])
    missing = [r["idem"] for r in requests if r["idem"] not in p.acks]
    check(not missing, name + ": every op acked", len(p.acks), missing[:3], bus.log_text("capacity")[-1500:])
    events = bus.fetch_all("capacity")
    if not kills:
        # The operator's table and its JSON twin
        table = subprocess.run([binary("relais"), "--config", bus.config, "capacity", "list"],
                               check=True, capture_output=True, text=True).stdout
        rows = table.splitlines()[1:]
        check(len(rows) == 7 and all(r.split()[0] in table for r in rows), "one row a structure", table)
        check(all(any(a in r for a in "\u2191\u2193\u2192") for r in rows), "a trend arrow a row", table)
        listed = json.loads(subprocess.run([binary("relais"), "--config", bus.config, "capacity",
                                            "list", "--json"], check=True, capture_output=True,
                                           text=True).stdout)
        for st in listed["structures"]:
            check(st["free"] == st["places"] - st["occupied"] - st["reserved"], "free adds up", st)
            check(f"{st['id']} " in table and f" {st['free']} " in table, "the table shows it", st)
    check(bus.stop("capacity") == 0, name + ": clean stop")
    dump = subprocess.run([binary("relais-capacity"), "--config", bus.config, "--dump"],
                          check=True, capture_output=True, text=True).stdout
    dups = sum(1 for r in p.acks.values() if r.get("duplicate"))
    return dump, events, kills, p.resends, dups


dump_a, events_a, _, _, _ = run("cap-day-a", 0)
dump_b, events_b, kills, resends, dups = run("cap-day-b", 2)
check(dups >= 1, "ops committed before a kill were retried and answered as duplicates", dups)

seqs = [e["seq"] for e in events_b]
check(seqs == list(range(1, len(events_b) + 1)), "contiguous sequences from 1")
strip = lambda events: [(e["seq"], e["type"], e["key"], e["ts"], e["body"]) for e in events]
check(strip(events_a) == strip(events_b), "identical event logs",
      len(events_a), len(events_b))
check(dump_a == dump_b, "identical final state (--dump)",
      "\n".join(l for l in dump_a.splitlines() if l not in dump_b.splitlines())[:800])

types = {}
for e in events_a:
    types[e["type"]] = types.get(e["type"], 0) + 1
for t in ("capacity.declared", "capacity.entry", "capacity.exit", "capacity.reserved",
          "capacity.updated", "capacity.alert"):
    check(types.get(t, 0) > 0, "the day published " + t, types)
held = [l for l in dump_a.splitlines() if '"state":"held"' in l]
check(not held, "every reservation of the day was settled", held[:2])
# No personal data: every body key is one the contract names
allowed = {"kind", "arrondissement", "places", "households", "publics", "operator", "occupied",
           "reserved", "free", "cause", "reason", "reservation", "state", "count", "from", "ref",
           "to", "scope", "rule", "threshold", "value"}
for e in events_a:
    check(set(e["body"]) <= allowed, "only contract keys in bodies", e["type"], e["body"])
print(f"requests={len(requests)} events={len(events_a)} kills={kills} resends={resends} "
      f"duplicates={dups} types={types}")
ok("40-capacity-day")
