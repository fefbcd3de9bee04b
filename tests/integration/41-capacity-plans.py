"""capacity follows plans (a fake plans publisher: PUB + fetch + $hb) exactly
once and matches each plan.closed {outcome: mise_a_l_abri, structure} with
that structure's entry whose ref is the plan id. Mismatches are published
once as capacity.mismatch {plan, structure, reason}: unknown_structure,
other_structure, outside_window, no_entry (the match window ran out). Events dropped on PUB
are fetched; a kill -9 of capacity while plans publishes loses and repeats
nothing; other outcomes and other plan events are ignored."""
import time

from fake_source_capacity import FakeSource
from relais_harness import Bus, check, now_us, ok

# The window is long enough that the entries sent in time always are, under
# any load; the late cases use facts dated an hour back instead of waiting.
EXTRA = "    match_window = 10m\n    tick = 200ms\n"
HOUR = 3_600_000_000
bus = Bus("cap-plans", services=["plans", "capacity"], extra=EXTRA)
plans = FakeSource("plans", bus.endpoints["plans"]["pub"], bus.endpoints["plans"]["fetch"])
bus.start("capacity")
api = bus.endpoints["capacity"]["api"]


def req(obj):
    reply = bus.request(api, obj)
    check(reply.get("ok"), "request accepted", obj, reply)
    return reply


def closed(plan, structure, outcome="mise_a_l_abri", drop=False, ts=None):
    body = {"outcome": outcome, "arrondissement": 19, "signals": ["SIG-1"]}
    if structure:
        body["structure"] = structure
    return plans.publish("plan.closed", plan, body, drop=drop, ts=ts)


def mismatches():
    return [(e["body"]["plan"], e["body"]["structure"], e["body"]["reason"])
            for e in bus.fetch_all("capacity") if e["type"] == "capacity.mismatch"]


def applied():
    status = bus.request(bus.endpoints["capacity"]["fetch"], {"op": "status"})
    for src in status.get("sources", []):
        if src.get("src") == "plans":
            return src.get("applied", 0)
    return 0


def wait(cond, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    check(False, "waited for " + what, mismatches(), bus.log_text("capacity")[-1500:])


for sid, arr in (("hotel-a", 19), ("hotel-b", 20)):
    req({"op": "capacity.declare", "id": sid, "kind": "hotel", "arrondissement": arr, "places": 30,
         "idem": "decl-" + sid})

# Entry first, then the close: matched (no mismatch)
req({"op": "capacity.entry", "id": "hotel-a", "count": 3, "from": "plan", "ref": "PLAN-1", "idem": "e1"})
closed("PLAN-1", "hotel-a")
# No such structure
closed("PLAN-2", "hotel-zz")
# Not a shelter outcome, no structure named, another event type: ignored
closed("PLAN-3", "hotel-zz", outcome="orientation")
closed("PLAN-4", None)
plans.publish("plan.opened", "PLAN-5", {"signal": "SIG-9", "arrondissement": 19, "level": 2,
                                        "actors": ["mus"], "reasons": ["campement"]})
# Dropped on PUB: only the heartbeat tells; capacity must fetch them
closed("PLAN-6", "hotel-b", drop=True)          # then its entry lands elsewhere
closed("PLAN-7", "hotel-a", drop=True)          # then its entry comes in time
wait(lambda: applied() >= 7, "the dropped events fetched")
req({"op": "capacity.entry", "id": "hotel-a", "count": 2, "from": "plan", "ref": "PLAN-6", "idem": "e6"})
req({"op": "capacity.entry", "id": "hotel-a", "count": 1, "from": "plan", "ref": "PLAN-7", "idem": "e7"})

# An entry two hours before its plan's close: outside the window
req({"op": "capacity.entry", "id": "hotel-b", "count": 1, "from": "plan", "ref": "PLAN-10",
     "at": now_us() - 2 * HOUR, "idem": "e10"})
closed("PLAN-10", "hotel-b")
# kill -9 while plans goes on; PLAN-8 closed an hour ago and never saw its
# entry: its window has run out when capacity learns of it
bus.kill9("capacity")
closed("PLAN-8", "hotel-b", ts=now_us() - HOUR)
closed("PLAN-9", "hotel-zz")
bus.start("capacity")
wait(lambda: applied() >= 10, "capacity caught up after the restart")
wait(lambda: ("PLAN-8", "hotel-b", "no_entry") in mismatches(), "the PLAN-8 window to run out")
time.sleep(0.5)                                 # any repeat would show now

got = mismatches()
expected = [("PLAN-2", "hotel-zz", "unknown_structure"), ("PLAN-6", "hotel-b", "other_structure"),
            ("PLAN-9", "hotel-zz", "unknown_structure"), ("PLAN-8", "hotel-b", "no_entry"),
            ("PLAN-10", "hotel-b", "outside_window")]
check(sorted(got) == sorted(expected), "each mismatch exactly once", got)
check(plans.fetches >= 1, "capacity fetched what PUB dropped", plans.fetches)
check(bus.stop("capacity") == 0, "clean stop")
plans.close()
print(f"mismatches={got} fetches={plans.fetches}")
ok("41-capacity-plans")
