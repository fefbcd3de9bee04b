"""Router: reports of each kind reach exactly the right partners (default
rules of DOMAIN.md), each assignment is announced once on router's log,
a partner receives only its own mailbox, and an unknown partner is refused."""
import time

from relais_harness import Bus, check, ok, sample_signal
from router_helpers import Partner, router_events, wait_events

bus = Bus("routing", services=["intake", "router"])
bus.start("intake")
bus.start("router")

# report kind -> the partners it must reach, exactly
cases = [
    ("level1", sample_signal(arr=11), {"cellule-11"}),
    ("municipal", sample_signal(arr=4, place={"arrondissement": 4, "kind": "domaine_municipal"}),
     {"uasa", "mus"}),
    ("vulnerable", sample_signal(arr=5, publics=["homme_isole", "grande_vulnerabilite"]), {"uasa", "mus"}),
    ("minors", sample_signal(arr=19, persons=3, publics=["famille", "enfant"], minors=2, needs=["soins"]),
     {"sdppe", "mus"}),
    ("pregnant", sample_signal(arr=13, publics=["femme_enceinte"], pregnant=1, needs=["soins"]), {"sdppe", "mus"}),
    ("camp-small", sample_signal(arr=10, tents=2, needs=["hygiene"]), {"maraudes", "drihl", "cellule-10"}),
    ("camp-big", sample_signal(arr=10, tents=6, persons=9, needs=["hygiene"]), {"maraudes", "drihl", "mus"}),
    ("family-shelter", sample_signal(arr=20, persons=3, publics=["famille"], needs=["mise_a_l_abri"]),
     {"samu_social", "cellule-20"}),
    ("family-care", sample_signal(arr=20, persons=3, publics=["famille"], needs=["soins"]), {"cellule-20"}),
]
ids = {}
for name, sig, _ in cases:
    r = bus.submit(sig, idem=f"route-{name}")
    check(r.get("ok"), "submit", name, r)
    ids[name] = r["id"]
total = sum(len(want) for _, _, want in cases)
evs = wait_events(bus, lambda e: len([x for x in e if x["type"] == "route.assigned"]) >= total)
assigned = [e for e in evs if e["type"] == "route.assigned"]
check(len(assigned) == total, "one route.assigned per partner", len(assigned), total)
for name, _, want in cases:
    got = [e["body"]["partner"] for e in assigned if e["key"] == ids[name]]
    check(sorted(got) == sorted(want), "partners of", name, got, want)
for e in assigned:
    b = e["body"]
    check(e["src"] == "router" and e["corr"].startswith("intake:"), "envelope", e)
    check(b["attempt"] == 1 and b["due"] > 0 and b["rule"] and b["level"] in (1, 2), "body", b)
    check(set(b) <= {"partner", "rule", "level", "arrondissement", "publics", "due", "attempt", "fallback"},
          "no personal data in route.assigned", b)

# An update that makes a level-1 report an encampment adds the new partners
# only; nobody gets the report twice.
r = bus.request(bus.endpoints["intake"]["submit"],
                {"op": "update", "idem": "upd-1", "id": ids["level1"], "changes": {"tents": 5}})
check(r.get("ok") and r["level"] == 2, "update", r)
evs = wait_events(bus, lambda e: len([x for x in e if x["type"] == "route.assigned"]) >= total + 3)
got = sorted(e["body"]["partner"] for e in evs if e["type"] == "route.assigned" and e["key"] == ids["level1"])
check(got == sorted(["cellule-11", "maraudes", "drihl", "mus"]), "update adds partners once", got)
time.sleep(0.5)
check(len(router_events(bus, ["route.assigned"])) == total + 3, "no double assignment after update")

# Mailboxes: each partner receives its own deliveries, with the full record
eps = bus.endpoints["router"]
sdppe = Partner(eps["partners"], "sdppe")
uasa = Partner(eps["partners"], "uasa")
got_s = sdppe.collect(2)
got_u = uasa.collect(2)
check(sorted(d["key"] for d in got_s) == sorted([ids["minors"], ids["pregnant"]]), "sdppe mailbox", got_s)
check(sorted(d["key"] for d in got_u) == sorted([ids["municipal"], ids["vulnerable"]]), "uasa mailbox", got_u)
for d in got_s:
    check(d["body"]["id"] == d["key"] and "signal" in d["body"] and d["body"]["signal"]["place"], "body", d)
    check(d["due"] > 0 and d["type"] == "assignment", "delivery fields", d)
# Nothing of another partner's mailbox, even after more time
sdppe.poll(1.0)
uasa.poll(0.5)
check(len(sdppe.deliveries) == 2 and len(uasa.deliveries) == 2, "no foreign deliveries",
      sdppe.deliveries, uasa.deliveries)
acks = wait_events(bus, lambda e: len([x for x in e if x["type"] == "route.acknowledged"]) >= 4)
acked = sorted((e["body"]["partner"], e["key"]) for e in acks if e["type"] == "route.acknowledged")
check(len(acked) == 4, "four acknowledgements", acked)

# Unknown partner: unauthorized, nothing delivered
stranger = Partner(eps["partners"], "inconnu")
stranger.poll(0.5)
check(stranger.errors and stranger.errors[0]["code"] == "unauthorized" and not stranger.deliveries,
      "unknown partner refused", stranger.errors)
# Ack before hello: conflict
raw = Partner.__new__(Partner)
raw.sock = None
import zmq
from relais_harness import CTX, pack, unpack
s = CTX.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(eps["partners"])
s.send_multipart([b"", pack({"op": "ack", "upto": 99})])
check(s.poll(3000), "reply to ack without hello")
rep = unpack(s.recv_multipart()[-1])
check(rep["ok"] is False and rep["code"] == "conflict", "ack without hello", rep)
s.close(0)

# API: mailbox status and explain
box = bus.request(eps["api"], {"op": "router.mailbox", "partner": "sdppe"})
check(box["ok"] and box["partners"][0]["acked"] == 2 and box["partners"][0]["open"] == 0, "mailbox status", box)
bad = bus.request(eps["api"], {"op": "router.mailbox", "partner": "nobody"})
check(bad["ok"] is False and bad["code"] == "not_found", "mailbox unknown partner", bad)
ex = bus.request(eps["api"], {"op": "router.explain", "signal": {
    "place": {"arrondissement": 3, "kind": "voie_publique"}, "level": 2, "reasons": ["campement"],
    "tents": 4, "publics": ["homme_isole"], "needs": []}})
check(ex["ok"] and sorted(p["partner"] for p in ex["partners"]) == ["drihl", "maraudes", "mus"], "explain", ex)
check(any(r["rule"] == "niveau1" and not r["holds"] and "level" in r["why"] for r in ex["rules"]), "why", ex)
bad = bus.request(eps["api"], {"op": "router.explain", "signal": {"place": {"arrondissement": 33}}})
check(bad["ok"] is False and bad["code"] == "invalid" and bad["field"] == "signal", "explain invalid", bad)
# The CLI explains locally, from the same deployment file
import json
import os
import subprocess
from relais_harness import binary
path = os.path.join(bus.dir, "report.json")
with open(path, "w") as f:
    json.dump(sample_signal(arr=19, persons=3, publics=["famille", "enfant"], minors=2), f)
out = subprocess.run([binary("relais"), "--config", bus.config, "route", "--json", "--hour", "10",
                      "--explain", path], capture_output=True, check=True)
ex = json.loads(out.stdout)
check(ex["level"] == 2 and ex["reasons"] == ["mineurs"], "cli qualifies", ex)
check([p["partner"] for p in ex["partners"]] == ["sdppe", "samu_social", "mus"], "cli partners", ex)
check(any(r["rule"] == "uasa" and not r["holds"] and r["why"].startswith("reasons:") for r in ex["rules"]),
      "cli why", ex)
out = subprocess.run([binary("relais"), "--config", bus.config, "route", "--explain", path],
                     capture_output=True, check=True)
check(b"partners: sdppe samu_social mus" in out.stdout, "cli text", out.stdout)
check(bus.stop("router") == 0, "router clean stop")
check(bus.stop("intake") == 0, "intake clean stop")
ok("20-routing")
