"""Feedback: each report's status follows intake, router and plans exactly,
in every path - routed and acked, then closed by its producer; refused and
rerouted; escalated on deadline; placed in a plan and closed with an
outcome - and reaches its producer's feed, the status query and feedback's
bus (status.changed) alike, with no personal data. Producer A never
receives anything about producer B's reports, not even when it asks by
B's id (not_found, never the data)."""
import time

from relais_harness import Bus, check, ok, sample_signal
from router_helpers import Partner, router_section
from feedback_helpers import Follower, status_of, statuses, wait_status

bus = Bus("feedback-status", services=["intake", "router", "plans", "feedback"])
router_section(bus, """    partner_heartbeat = 200ms
    redeliver = 1s
    rules
        parking
            place = parking
            partners = uasa
            deadline = 1h
            fallback = mus
        gare
            place = gare
            partners = maraudes
            deadline = 1s
            fallback = mus
        niveau2
            level = 2
            partners = mus
            deadline = 1h
        niveau1
            level = 1
            place = voie_publique
            partners = cellule-{arr}
            deadline = 1h
""")
for svc in ("intake", "router", "plans", "feedback"):
    bus.start(svc)
eps = bus.endpoints
A = "115:115 de Paris"
B = "association:Aurore"
follow_a = Follower(eps["feedback"]["feed"], A)
follow_b = Follower(eps["feedback"]["feed"], B)
mus = Partner(eps["router"]["partners"], "mus")


def history(key):
    reply = status_of(bus, key)
    check(reply["ok"], "status query", key, reply)
    return [(h["status"], h.get("partner") or h.get("outcome") or h.get("plan") or "") for h in reply["history"]]


def submit(sig, idem):
    reply = bus.submit(sig, idem=idem)
    check(reply["ok"], "submitted", reply)
    return reply["id"]


def mus_delivery(key):
    end = time.time() + 20
    while time.time() < end:
        mus.poll(0.2)
        got = [d for d in mus.deliveries if d["key"] == key]
        if got:
            return got[-1]
    raise TimeoutError(f"mus never got {key}")


# 1. Routed and acknowledged, then closed by its producer
r1 = submit(sample_signal(arr=18), "fb-1")
cell = Partner(eps["router"]["partners"], "cellule-18")
got = cell.collect(1)
check(got and got[0]["key"] == r1, "cellule-18 delivery", got)
wait_status(bus, r1, "pris_en_charge")
close = bus.request(eps["intake"]["submit"], {"op": "close", "idem": "fb-1-close", "id": r1, "reason": "resolu"})
check(close["ok"], "closed", close)
wait_status(bus, r1, "clos")
check(history(r1) == [("recu", ""), ("qualifie", ""), ("oriente", "cellule-18"),
                      ("pris_en_charge", "cellule-18"), ("clos", "resolu")], "path 1", history(r1))

# 2. Refused by UASA, rerouted to the MUS, acknowledged by the MUS
r2 = submit(sample_signal(arr=12, place={"arrondissement": 12, "kind": "parking"}), "fb-2")
uasa = Partner(eps["router"]["partners"], "uasa")
got = uasa.collect(1, ack=False)
check(got and got[0]["key"] == r2, "uasa delivery", got)
uasa.send({"op": "refuse", "mseq": got[0]["mseq"], "reason": "capacite"})
d = mus_delivery(r2)
mus.send({"op": "ack", "upto": d["mseq"]})
reply = wait_status(bus, r2, "pris_en_charge")
check(history(r2) == [("recu", ""), ("qualifie", ""), ("oriente", "uasa"), ("escalade", "uasa"),
                      ("oriente", "mus"), ("pris_en_charge", "mus")], "path 2", history(r2))
esc = [h for h in reply["history"] if h["status"] == "escalade"][0]
check(esc["cause"] == "refused" and esc["fallback"] == "mus", "escalade detail", esc)
states = {p["partner"]: p["state"] for p in reply["partners"]}
check(states == {"uasa": "refused", "mus": "acknowledged"}, "partners", reply["partners"])

# 3. Nobody at the maraudes within 1 s: escalated to the MUS
r3 = submit(sample_signal(arr=10, place={"arrondissement": 10, "kind": "gare"}), "fb-3")
reply = wait_status(bus, r3, "oriente")
# The MUS inherits the 1 s deadline and has no fallback: it escalates too,
# to nobody (fallback ""): operations must act
end = time.time() + 20
while time.time() < end and len(history(r3)) < 6:
    time.sleep(0.2)
check(history(r3) == [("recu", ""), ("qualifie", ""), ("oriente", "maraudes"), ("escalade", "maraudes"),
                      ("oriente", "mus"), ("escalade", "mus")], "path 3", history(r3))
esc = [h for h in status_of(bus, r3)["history"] if h["status"] == "escalade"]
check([(h["cause"], h["fallback"]) for h in esc] == [("deadline", "mus"), ("deadline", "")], "deadline causes", esc)

# 4. A level-2 situation: a plan opens, then closes with an outcome
r4 = submit(sample_signal(arr=19, tents=5, persons=6, place={"arrondissement": 19, "kind": "talus"}), "fb-4")
reply = wait_status(bus, r4, "en_cours")
plan = reply["plan"]
check(plan.startswith("PLAN-") and reply["level"] == 2 and "campement" in reply["reasons"], "plan", reply)
res = bus.request(eps["plans"]["api"], {"op": "plans.set_state", "id": plan, "state": "clos",
                                         "outcome": "mise_a_l_abri", "by": "mus:alice"})
check(res["ok"], "plan closed", res)
reply = wait_status(bus, r4, "clos")
check(reply["outcome"] == "mise_a_l_abri" and reply["history"][-1]["plan"] == plan, "outcome", reply)
# router's and plans' events come in either order: the plan may open before
# the assignment is applied, and then the report is already beyond oriente
path4 = [s for s, _ in history(r4)]
check(path4 in (["recu", "qualifie", "oriente", "en_cours", "clos"], ["recu", "qualifie", "en_cours", "clos"]),
      "path 4", history(r4))

# 5. Producer B's report
r5 = submit(sample_signal(arr=18, source={"kind": "association", "name": "Aurore"}), "fb-5")
cell.close()                            # silent since path 1: the router dropped it
cell = Partner(eps["router"]["partners"], "cellule-18", after=1)
got = cell.collect(1)
check(got and got[0]["key"] == r5, "cellule-18 gets B's report", got)
wait_status(bus, r5, "pris_en_charge")

# The feeds: each producer gets exactly its own status changes, in order
want_a = {key: [s for s, _ in history(key)] for key in (r1, r2, r3, r4)}
total_a = sum(len(v) for v in want_a.values())
follow_a.collect(lambda d: len(d) >= total_a)
follow_b.collect(lambda d: len(d) >= 4)
time.sleep(0.5)
follow_a.poll(0.3)
follow_b.poll(0.3)
check(len(follow_a.deliveries) == total_a, "A's feed: every change once", len(follow_a.deliveries), total_a, [(d["key"], d["body"]["status"]) for d in follow_a.deliveries], want_a)
for key, want in want_a.items():
    check(statuses(follow_a.deliveries, key) == want, "A's feed for", key, statuses(follow_a.deliveries, key), want)
check([d["mseq"] for d in follow_a.deliveries] == list(range(1, total_a + 1)), "mseq 1..n")
check({d["key"] for d in follow_b.deliveries} == {r5}, "B's feed holds only B's report",
      {d["key"] for d in follow_b.deliveries})
check(all(d["body"]["producer"] == B for d in follow_b.deliveries), "B's producer")
check(r5 not in {d["key"] for d in follow_a.deliveries}, "nothing of B in A's feed")

# A asks by B's id: not_found, never the data
for key in (r5, "SIG-999999"):
    reply = status_of(bus, key, producer=A)
    check(reply.get("ok") is False and reply["code"] == "not_found" and "history" not in reply,
          "A asking by another id", key, reply)
check(status_of(bus, r5, producer=B)["ok"], "B asking by its own id")
listed = bus.request(eps["feedback"]["api"], {"op": "feedback.list", "producer": A})
check(listed["ok"] and [x["id"] for x in listed["reports"]] == sorted([r1, r2, r3, r4]), "A's list", listed)
check(listed["reports"][0]["status"] == "clos", "list status", listed["reports"][0])

# feedback's bus says the same thing, with no personal data
evs = bus.fetch_all("feedback")
check(all(e["type"] == "status.changed" for e in evs), "only status.changed")
check(len(evs) == total_a + len(follow_b.deliveries), "one event per change", len(evs))
for key, want in want_a.items():
    check([e["body"]["status"] for e in evs if e["key"] == key] == want, "bus for", key)
allowed = {"producer", "status", "at", "partner", "fallback", "cause", "outcome", "plan", "level", "reasons"}
for e in evs:
    check(set(e["body"]) <= allowed, "no other key on the bus", e["body"])
    check(e["corr"].split(":")[0] in ("intake", "router", "plans"), "corr names the cause", e)

# Bad requests get clear errors and change nothing
for req, code, field in [({"op": "feedback.status"}, "invalid", "id"),
                         ({"op": "feedback.status", "id": 7}, "invalid", "id"),
                         ({"op": "feedback.list"}, "invalid", "producer"),
                         ({"op": "feedback.list", "producer": "martien:x"}, "invalid", "producer"),
                         ({"op": "feedback.list", "producer": A, "limit": 0}, "invalid", "limit"),
                         ({"op": "explode"}, "unknown_op", "op"),
                         ({}, "invalid", "op")]:
    reply = bus.request(eps["feedback"]["api"], req)
    check(reply.get("ok") is False and reply["code"] == code and reply.get("field") == field, "error", req, reply)
reply = bus.request(eps["feedback"]["api"], None, raw=b"\xc1")
check(reply["code"] == "invalid", "not msgpack", reply)
for req, code, field in [({"op": "ack", "upto": 1}, "conflict", "op"),
                         ({"op": "hello"}, "invalid", "producer"),
                         ({"op": "hello", "producer": "115"}, "invalid", "producer"),
                         ({"op": "hello", "producer": A, "after": -1}, "invalid", "after"),
                         ({"op": "refuse", "mseq": 1}, "conflict", "op")]:
    reply = bus.request(eps["feedback"]["feed"], req)
    check(reply.get("ok") is False and reply["code"] == code and reply.get("field") == field, "feed error", req, reply)
check(bus.procs["feedback"].poll() is None, "feedback alive")
for p in (follow_a, follow_b, mus, cell, uasa):
    p.close()
ok("70-feedback-status")
