"""Escalation: an assignment nobody acknowledges before its deadline goes to
the rule's fallback with route.escalated (cause deadline) - exactly once,
even across a router kill -9 before and after the due date; a refusal
reroutes to the fallback (route.refused, route.escalated cause refused).
The fallback's own assignment has no fallback: past its deadline it raises
route.escalated with an empty fallback, once, and goes nowhere else."""
import time

from relais_harness import Bus, check, ok, sample_signal
from router_helpers import Partner, router_events, router_section, wait_events

bus = Bus("escalation", services=["intake", "router"])
router_section(bus, """    partner_heartbeat = 200ms
    redeliver = 1s
    rules
        municipal
            place = domaine_municipal
            partners = uasa
            deadline = 1s
            fallback = mus
        camp
            tents_min = 1
            partners = maraudes
            deadline = 1h
            fallback = drihl
""")
bus.start("intake")
bus.start("router")
eps = bus.endpoints
live = bus.subscriber("router")            # route.escalated must also come on PUB
time.sleep(0.3)
municipal = sample_signal(arr=4, place={"arrondissement": 4, "kind": "domaine_municipal"})


def of(evs, key, typ):
    return [e for e in evs if e["key"] == key and e["type"] == typ]


# 1. Nobody at UASA: past 1 s the report goes to the MUS
a = bus.submit(municipal, idem="esc-a")["id"]
evs = wait_events(bus, lambda e: len(of(e, a, "route.assigned")) >= 2)
esc = of(evs, a, "route.escalated")
check(len(esc) == 1, "one escalation", esc)
b = esc[0]["body"]
check(b == {"partner": "uasa", "fallback": "mus", "cause": "deadline", "mseq": 1}, "escalated body", b)
assigned = of(evs, a, "route.assigned")
check([x["body"]["partner"] for x in assigned] == ["uasa", "mus"], "fallback assigned", assigned)
check(assigned[1]["body"]["attempt"] == 2 and assigned[1]["corr"] == assigned[0]["corr"], "attempt 2", assigned)
seen = []
end = time.time() + 5
while time.time() < end and not any(t == b"route.escalated" for t, _ in seen):
    if live.poll(200):
        seen.append(tuple(live.recv_multipart()[:2]))
check(any(t == b"route.escalated" for t, _ in seen), "route.escalated on the bus", [t for t, _ in seen])
# The MUS takes it from its own mailbox
mus = Partner(eps["router"]["partners"], "mus")
got = mus.collect(1)
check(len(got) == 1 and got[0]["key"] == a and got[0]["type"] == "reroute", "mus delivery", got)
mus.close()

# 2. kill -9 before the due date, restart after it: escalated exactly once
c = bus.submit(municipal, idem="esc-c")["id"]
wait_events(bus, lambda e: len(of(e, c, "route.assigned")) >= 1)
bus.kill9("router")
time.sleep(1.5)
bus.start("router")
evs = wait_events(bus, lambda e: len(of(e, c, "route.escalated")) >= 1)
check(len(of(evs, c, "route.escalated")) == 1, "escalated after restart", of(evs, c, "route.escalated"))
# and a restart after the escalation does not escalate again
bus.kill9("router")
bus.start("router")
time.sleep(2)
evs = router_events(bus)
mus_deadlines = 0
for key in (a, c):
    esc = of(evs, key, "route.escalated")
    handed = [e for e in esc if e["body"]["fallback"]]
    check(len(handed) == 1 and handed[0]["body"]["partner"] == "uasa", "handed to the fallback once", key,
          [(e["seq"], e["type"], e["body"]) for e in evs if e["key"] == key])
    # The fallback (MUS) has no fallback: when it does not acknowledge in
    # time either, the bus says so once, and nobody else gets the report
    last = [e for e in esc if not e["body"]["fallback"]]
    check(len(last) <= 1 and all(e["body"]["partner"] == "mus" for e in last), "the MUS's own deadline once",
          key, last)
    check(len(esc) == len(handed) + len(last), "no other escalation", key)
    mus_deadlines += len(last)
    check(len(of(evs, key, "route.assigned")) == 2, "fallback assigned once", key)
check(mus_deadlines >= 1, "the MUS's overdue assignment reached the bus")

# 3. A late acknowledgement of the escalated delivery is still recorded
uasa = Partner(eps["router"]["partners"], "uasa")
got = uasa.collect(2)
check(sorted(d["key"] for d in got) == sorted([a, c]), "uasa still gets its mailbox", got)
evs = wait_events(bus, lambda e: len([x for x in e if x["type"] == "route.acknowledged"
                                      and x["body"]["partner"] == "uasa"]) >= 2)
check(len(of(evs, a, "route.escalated")) == 1, "ack after escalation changes nothing else")

# 4. Refusal: maraudes refuses, drihl (the fallback) gets the report
d = bus.submit(sample_signal(arr=12, tents=2), idem="esc-d")["id"]
mar = Partner(eps["router"]["partners"], "maraudes")
got = mar.collect(1, ack=False)
check(len(got) == 1 and got[0]["key"] == d, "maraudes delivery", got)
mseq = got[0]["mseq"]
mar.send({"op": "refuse", "mseq": mseq, "reason": "pas_envie"})
mar.poll(1.0)
check(mar.errors and mar.errors[-1]["code"] == "invalid" and mar.errors[-1]["field"] == "reason",
      "bad reason refused", mar.errors)
mar.send({"op": "refuse", "mseq": mseq, "reason": "capacite"})
evs = wait_events(bus, lambda e: len(of(e, d, "route.assigned")) >= 2)
ref = of(evs, d, "route.refused")
check(len(ref) == 1 and ref[0]["body"] == {"partner": "maraudes", "mseq": mseq, "reason": "capacite"},
      "route.refused", ref)
esc = of(evs, d, "route.escalated")
check(len(esc) == 1 and esc[0]["body"]["cause"] == "refused" and esc[0]["body"]["fallback"] == "drihl",
      "route.escalated refused", esc)
check([x["body"]["partner"] for x in of(evs, d, "route.assigned")] == ["maraudes", "drihl"], "rerouted")
mar.send({"op": "refuse", "mseq": mseq, "reason": "capacite"})
mar.poll(1.0)
check(mar.errors[-1]["code"] == "conflict", "second refusal: conflict", mar.errors)
# a refused delivery is not delivered again, even after a new hello
mar.close()
mar = Partner(eps["router"]["partners"], "maraudes")
mar.poll(1.0)
check(not mar.deliveries, "refused delivery not redelivered", mar.deliveries)
dr = Partner(eps["router"]["partners"], "drihl")
got = dr.collect(1)
check(len(got) == 1 and got[0]["key"] == d, "drihl gets it", got)

# 5. Redelivery after a timeout: an unacked delivery comes again; a partner
#    that stops answering pings is dropped after 3 intervals
e = bus.submit(sample_signal(arr=3, tents=1), idem="esc-e")["id"]
mar = Partner(eps["router"]["partners"], "maraudes")
first = mar.collect(1, ack=False)
check(len(first) == 1 and first[0]["key"] == e, "delivered", first)
mar.collect(2, timeout=10, ack=False)
check(len(mar.deliveries) >= 2 and mar.deliveries[1]["mseq"] == first[0]["mseq"],
      "redelivered after the timeout", mar.deliveries)
mar.ack(first[0]["mseq"])
mar.poll(0.5)


def connected(partner):
    return bus.request(eps["router"]["api"], {"op": "router.mailbox", "partner": partner})["partners"][0]["connected"]


check(connected("maraudes"), "session open while it answers pings")
time.sleep(1.5)                            # silent: no poll, no pong
check(not connected("maraudes"), "silent partner dropped after 3 intervals")
check(bus.stop("router") == 0, "router clean stop")
ok("22-escalation")
