"""Right to erasure (T22): `relais erase --person REF` removes one person's
personal data from intake's records and router's partner mailboxes, and
the bytes leave every data.mdb, every log, the audit files and the next
backup - while counts stay (person_refs, level, publics, arrondissement,
the event logs, analytics' totals).

Three reports: A names the canary person and a witness, B the canary
alone, C a control person. A and B are routed to partners (one acks, one
does not). After the erase: 0 hits of any canary string in any file of
the deployment nor in a fresh `relais backup`; the witness and the control
person are still in intake's store (the grep can see what is there)."""
import os
import subprocess
import time

from relais_harness import Bus, binary, check, now_us, ok, sample_signal
from router_helpers import Partner, wait_events

bus = Bus("erase", services=["intake", "router", "plans", "capacity", "analytics"])
with open(bus.config) as f:
    cfg = f.read()
with open(bus.config, "w") as f:
    f.write(cfg.replace("relais\n    data = var\n",
                        "relais\n    data = var\n    services = \"intake router analytics\"\n", 1))

for svc in ("intake", "router", "analytics"):
    bus.start(svc)
eps = bus.endpoints
RELAIS = binary("relais")


def relais(*args):
    return subprocess.run([RELAIS, "--config", bus.config, *args], capture_output=True, text=True,
                          timeout=120)


CANARY_NAME = "Zorglub Canarivore"
CANARY_PHONE = "06 12 98 76 54"
CANARY_SIAO = "SIAO-CANARY-7731"
CANARY_CONTACT = "Canari-rappel-0611"
CANARY_SUMMARY = "Zorglub dort sous le pont Canarivore"
CANARY_ADDRESS = "12 rue du Canari Perdu"
CANARIES = [CANARY_NAME, CANARY_PHONE, CANARY_SIAO, CANARY_CONTACT, CANARY_SUMMARY, CANARY_ADDRESS]
WITNESS = "Bertrand Temoin-Gardé"
CONTROL = "Claudine Controle-Reste"

canary = {"name": CANARY_NAME, "phone": CANARY_PHONE, "siao_id": CANARY_SIAO, "birth_year": 1981}
witness = {"name": WITNESS, "birth_year": 1990}
control = {"name": CONTROL, "birth_year": 1975}
src = {"kind": "115", "name": "115 de Paris", "contact": CANARY_CONTACT}

a = bus.submit(sample_signal(arr=19, persons=3, publics=["famille", "enfant"], minors=1,
                             needs=["soins"], source=src, summary=CANARY_SUMMARY,
                             place={"arrondissement": 19, "kind": "voie_publique",
                                    "address": CANARY_ADDRESS, "lat": 48.88, "lon": 2.38},
                             people=[canary, witness], escalate=True,
                             escalate_reason="Canarivore en danger"), idem="a")
b = bus.submit(sample_signal(arr=11, people=[canary]), idem="b")
c = bus.submit(sample_signal(arr=11, people=[control], summary="rien a signaler"), idem="c")
check(a["ok"] and b["ok"] and c["ok"], "submits", a, b, c)
CANARIES.append("Canarivore en danger")
# Enough ordinary reports for analytics' counts to clear its suppression,
# and a simulated day so that the stores have a realistic size
for i in range(12):
    check(bus.submit(sample_signal(arr=11 + i % 2), idem=f"plain-{i}")["ok"], "plain submit")
BULK = 2000
sim = relais("simulate", "--seed", "5", "--count", str(BULK), "--rate", "0", "-q")
check(sim.returncode == 0, "simulate", sim.stderr[-500:])

created = {e["key"]: e for e in bus.fetch_all() if e["type"] == "signal.created"}
ref_a = created[a["id"]]["body"]["person_refs"]
ref_b = created[b["id"]]["body"]["person_refs"]
check(len(ref_a) == 2 and len(ref_b) == 1 and ref_b[0] in ref_a, "one ref per person", ref_a, ref_b)
REF = ref_b[0]

# Routing: A goes to sdppe and mus, B to cellule-11. mus and cellule-11 ack,
# sdppe keeps its delivery open.
wait_events(bus, lambda e: len([x for x in e if x["type"] == "route.assigned"
                                and x["key"] in (a["id"], b["id"])]) >= 3)
parts = {p: Partner(eps["router"]["partners"], p) for p in ("mus", "sdppe", "cellule-11")}
for name, p in parts.items():
    got = p.collect(1, ack=name != "sdppe")
    check(got, "delivered to", name)
names = [x["name"] for p in parts.values() for d in p.deliveries
         for x in d.get("body", {}).get("signal", {}).get("people", [])]
check(CANARY_NAME in names, "the mailboxes carried the canary's record", names)
time.sleep(0.5)                 # acks committed


def files():
    for root, _, names in os.walk(bus.dir):
        if root.startswith(bus.sock):
            continue
        for n in names:
            yield os.path.join(root, n)


def hits(paths, strings):
    found = []
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        found += [(os.path.relpath(path, bus.dir), s) for s in strings if s.encode() in data]
    return found


def analytics_rows():
    deadline = time.time() + 30
    while time.time() < deadline:
        st = bus.request(eps["analytics"]["fetch"], {"op": "status"})
        applied = {s["src"]: s["applied"] for s in st["sources"]}
        last = bus.request(eps["intake"]["fetch"], {"op": "status"})["last"]
        if applied.get("intake") == last:
            break
        time.sleep(0.2)
    q = bus.request(eps["analytics"]["api"], {"op": "analytics.query", "indicator": "reports",
                                              "group_by": "arrondissement"})
    check(q.get("ok"), "analytics query", q)
    return q["rows"]


check(hits(files(), [CANARY_NAME]), "before: the canary is on disk (the grep sees it)")
events_before = bus.fetch_all()
rows_before = analytics_rows()
check(sum(r["value"] or 0 for r in rows_before) >= 10, "analytics counts the reports", rows_before)

# Bad requests change nothing
for req, field in [({"op": "intake.erase", "reason": "x"}, "person"),
                   ({"op": "intake.erase", "person": "P-short", "reason": "x"}, "person"),
                   ({"op": "intake.erase", "person": REF}, "reason"),
                   ({"op": "intake.erase", "person": REF, "reason": "free text, with spaces"}, "reason"),
                   ({"op": "intake.erase", "person": REF, "reason": "x", "dry_run": 1}, "dry_run")]:
    r = bus.request(eps["intake"]["records"], req)
    check(not r["ok"] and r["code"] == "invalid" and r["field"] == field, "refused", req, r)
r = bus.request(eps["router"]["api"], {"op": "router.erase", "person": "nope", "reason": "x"})
check(not r["ok"] and r["field"] == "person", "router refuses a bad ref", r)

# Dry run: lists, changes nothing
run = relais("erase", "--person", REF, "--reason", "art17-test-0001", "--dry-run", "--json")
check(run.returncode == 0, "erase --dry-run", run.stderr)
replies = {r["service"]: r for r in map(__import__("json").loads, run.stdout.splitlines())}
check(sorted(replies["intake"]["reports"]) == sorted([a["id"], b["id"]]), "intake preview", replies)
check(sorted(replies["router"]["reports"]) == sorted([a["id"], b["id"]])
      and replies["router"]["deliveries"] == 3, "router preview", replies)
rec = bus.request(eps["intake"]["records"], {"op": "signal.get", "id": b["id"]})
check(rec["record"]["signal"]["people"][0]["name"] == CANARY_NAME, "dry run changed nothing")

def mdb_sizes():
    return {os.path.relpath(p, bus.dir): os.path.getsize(p) for p in files() if p.endswith("data.mdb")}


sizes_before = mdb_sizes()
t0 = time.time()
run = relais("erase", "--person", REF, "--reason", "art17-test-0001")
took = time.time() - t0
sizes_after = mdb_sizes()
check(run.returncode == 0, "erase", run.stdout, run.stderr)
check("intake   erase " + REF + ": 2 reports" in run.stdout and "3 people removed" not in run.stdout
      and "2 people removed, store compacted" in run.stdout, "intake says what it removed", run.stdout)
check("router   erase " + REF + ": 2 reports (3 deliveries)" in run.stdout, "router too", run.stdout)
check(not any(s in run.stdout + run.stderr for s in CANARIES), "the CLI prints no data")

# The records: personal fields gone, counts kept
ra = bus.request(eps["intake"]["records"], {"op": "signal.get", "id": a["id"]})["record"]
check([p["name"] for p in ra["signal"]["people"]] == [WITNESS], "A keeps the witness only", ra)
check(ra["person_refs"] == ref_a and ra["level"] == 2 and ra["scrubbed_at"] > 0, "A keeps refs, level", ra)
s = ra["signal"]
check(s["place"]["arrondissement"] == 19 and s["persons"] == 3 and s["minors"] == 1
      and sorted(s["publics"]) == ["enfant", "famille"], "A keeps its counts", s)
check("contact" not in s["source"] and "summary" not in s and "address" not in s["place"]
      and "lat" not in s["place"] and s["escalate_reason"] == "efface", "A's free text gone", s)
rb = bus.request(eps["intake"]["records"], {"op": "signal.get", "id": b["id"]})["record"]
check(rb["signal"].get("people", []) == [] and rb["person_refs"] == ref_b, "B: no people, ref kept", rb)
rc = bus.request(eps["intake"]["records"], {"op": "signal.get", "id": c["id"]})["record"]
check(rc["signal"]["people"][0]["name"] == CONTROL and "scrubbed_at" not in rc, "C untouched", rc)

# The open delivery is redelivered without the data
parts["sdppe"].close()
again = Partner(eps["router"]["partners"], "sdppe")
got = again.collect(1, ack=True)
check(got and all(CANARY_NAME not in str(d) for d in got) and got[0]["body"].get("scrubbed_at"),
      "sdppe's open delivery is scrubbed", got)
for p in list(parts.values()) + [again]:
    p.close()

# Events and analytics: unchanged
check(bus.fetch_all()[:len(events_before)] == events_before, "the event log is unchanged")
check(analytics_rows() == rows_before, "analytics totals unchanged", rows_before)

# Every file of the deployment: stores, logs, audit files
for svc in ("intake", "router", "analytics"):
    check(bus.stop(svc) == 0, "clean stop", svc)
found = hits(files(), CANARIES)
check(not found, "0 canary hits in data.mdb, logs and audit", found)
check(hits(files(), [CONTROL, WITNESS]), "the other people are still there")
mdbs = [p for p in files() if p.endswith("data.mdb")]
check(len(mdbs) >= 3, "greped every store", mdbs)

# The audit: who, the ref, the reason and the report ids; the chain holds
audit = relais("audit", "--src", "intake", "--verify")
check(audit.returncode == 0, "intake audit chain verifies", audit.stdout, audit.stderr)
text = open(os.path.join(bus.dir, "var", "intake-audit.log")).read()
check(f'"action":"erase","key":"{REF}","purpose":"art17-test-0001"' in text
      and f'"action":"erase_report","key":"{a["id"]}"' in text, "intake audit records the erase", text[-600:])
raudit = relais("audit", "--src", "router", "--verify")
check(raudit.returncode == 0, "router audit chain verifies", raudit.stdout, raudit.stderr)

# A backup taken now holds none of it
out = os.path.join(bus.dir, "backup")
run = relais("backup", "--out", out)
check(run.returncode == 0, "backup", run.stderr)
bfiles = [os.path.join(r, n) for r, _, ns in os.walk(out) for n in ns]
check(any(p.endswith("data.mdb") for p in bfiles), "backup has stores", bfiles)
check(not hits(bfiles, CANARIES), "0 canary hits in the backup", hits(bfiles, CANARIES))
reports = len([e for e in events_before if e["type"] == "signal.created"])
print(f"erase of 1 person among {reports} reports took {took:.2f}s (both services, compaction included); "
      f"data.mdb bytes before {sizes_before} after {sizes_after}; files greped={len(list(files()))} "
      f"backup files={len(bfiles)} hits=0")
ok("18-erase")
