"""Plans follows intake exactly once: a stream of level-2 reports (several
per situation: same cell, or the same person seen elsewhere) mixed with
level-1 noise gives exactly one plan per distinct situation; plans is
killed -9 twice during the stream, and after its restarts it holds the
same plans (relais-plans --dump) as a fresh plans that replays intake's
whole log without any kill. Its own log holds one plan.opened per plan."""
import os
import random
import shutil
import time

from relais_harness import Bus, Producer, check, ok
from plans_util import dump, noise_report, plans_status, situation_report, wait_caught_up

SITUATIONS = 150
NOISE = 200

bus = Bus("plans-stream", services=["intake", "plans"])
bus.start("intake")
bus.start("plans")

# Reports: situation i is reported 1 to 3 times; its third report sees the
# same person at another cell (attachment by person_ref, not by place).
reports = []
for i in range(SITUATIONS):
    for n in range(1 + i % 3):
        reports.append((i, situation_report(i, n, elsewhere=(n == 2))))
for j in range(NOISE):
    reports.append((None, noise_report(j)))
random.Random(30).shuffle(reports)
requests = [{"op": "submit", "idem": f"it30-{k}", "signal": sig} for k, (_, sig) in enumerate(reports)]

def wait_applied_some(bus):
    """Kill only once plans has applied part of what was sent."""
    deadline = time.time() + 20
    while time.time() < deadline:
        applied = {s["src"]: s["applied"] for s in plans_status(bus)["sources"]}
        if applied.get("intake", 0) > 0:
            return
        time.sleep(0.02)


chunks = [requests[k::4] for k in range(4)]
producer = Producer(bus.endpoints["intake"]["submit"], window=200)
for k, chunk in enumerate(chunks):
    producer.run(chunk)
    if k in (0, 2):
        wait_applied_some(bus)
        bus.kill9("plans")          # mid-stream: the next chunk flows while it is down
    if k in (1, 3):
        bus.start("plans")
check(len(producer.acks) == len(requests), "every report acked", len(producer.acks))

# Which SIG ids make each situation, from intake's acks
situation_of = {}
for k, (i, _) in enumerate(reports):
    reply = producer.acks[f"it30-{k}"]
    if i is not None:
        check(reply["level"] == 2, "situation reports are level 2", reply)
        situation_of[reply["id"]] = i
    else:
        check(reply["level"] == 1, "noise is level 1", reply)

wait_caught_up(bus)
events = bus.fetch_all("plans")
check(bus.stop("plans") == 0, "clean stop")
killed = dump(bus)

# One plan per situation, holding exactly that situation's reports
check(len(killed) == SITUATIONS, "one plan per situation", len(killed))
for entry in killed:
    plan = entry["plan"]
    sits = {situation_of.get(s) for s in plan["signals"]}
    check(len(sits) == 1 and None not in sits, "a plan holds one situation", plan["id"], sits)
    i = sits.pop()
    check(len(plan["signals"]) == 1 + i % 3, "every report of the situation attached", plan)
    check(plan["state"] == "ouvert" and plan["level"] == 2, "open level-2 plan", plan)
    check(len(plan["person_refs"]) == 1, "one person", plan)

# Exactly-once on plans' own log, through the kills
opened = [e["key"] for e in events if e["type"] == "plan.opened"]
check(len(opened) == SITUATIONS and len(set(opened)) == SITUATIONS, "one plan.opened per plan", len(opened))
check([e["seq"] for e in events] == list(range(1, len(events) + 1)), "contiguous log")
for e in events:
    check("SIAO" not in repr(e) and "Personne" not in repr(e), "no personal data on the bus", e)

# A plans that never crashed: replay intake's log from the start
shutil.rmtree(os.path.join(bus.dir, "var", "plans"))
bus.start("plans")
wait_caught_up(bus)
check(bus.stop("plans") == 0, "clean stop")
fresh = dump(bus)
check(fresh == killed, "same plans with and without kill -9",
      len(fresh), len(killed), [a for a, b in zip(fresh, killed) if a != b][:1])
check(bus.stop("intake") == 0, "intake clean stop")
ok("30-plans-stream")
