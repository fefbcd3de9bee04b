"""Erasure and retention reach plans (issue #9, proto/privacy.md): the free
text operators type into plans - note texts and flag reasons - is removed
by `relais erase --person REF` from every plan whose person_refs hold the
person, and by `relais purge` / plans' own daily job from plans closed for
plans/retention/closed; the plans and their history entries stay (kind,
time, author), the bytes leave data.mdb, the logs and the audit file.

Four level-2 situations, each with its own person: A (the canary person,
a note and a flag naming them), B (a control person, a note), D (a note,
closed 100 days ago) and E (a note, open). Plans runs on a clock set 100
days back (RELAIS_FAKE_TIME_US) while the operators write, then at today's
date: the erase scrubs A only, the purge D only; E, closed afterwards, is
scrubbed by the job of a plans started 100 days later."""
import json
import os
import subprocess
import time

from relais_harness import Bus, binary, check, now_us, ok
from plans_util import situation_report, wait_caught_up

DAY = 86_400_000_000
bus = Bus("plans-erase", services=["intake", "plans"])
eps = bus.endpoints
api = eps["plans"]["api"]
RELAIS = binary("relais")
with open(bus.config) as f:
    cfg = f.read()
with open(bus.config, "w") as f:
    f.write(cfg.replace("relais\n    data = var\n", "relais\n    data = var\n    services = \"intake plans\"\n", 1))


def section(svc, text):
    with open(bus.config) as f:
        cfg = f.read()
    with open(bus.config, "w") as f:
        f.write(cfg.replace(f"\n{svc}\n", f"\n{svc}\n{text}", 1))


def relais(*args):
    return subprocess.run([RELAIS, "--config", bus.config, *args], capture_output=True, text=True,
                          timeout=120)


def files():
    for root, _, names in os.walk(bus.dir):
        if root.startswith(bus.sock):
            continue
        for n in names:
            yield os.path.join(root, n)


def hits(strings, only=None):
    found = []
    for path in files():
        if only and only not in os.path.relpath(path, bus.dir):
            continue
        with open(path, "rb") as f:
            data = f.read()
        found += [(os.path.relpath(path, bus.dir), s) for s in strings if s.encode() in data]
    return found


CANARY_NAME = "Zorglub Canarivore-Plans"
NOTE_CANARY = "Note-Canari: Zorglub dort chez sa soeur rue du Canari"
FLAG_CANARY = "Flag-Canari: menaces contre Zorglub"
CONTROL_NOTE = "Note-Controle: famille suivie par la PMI"
OLD_NOTE = "Note-Ancienne: plan clos depuis longtemps"
OPEN_NOTE = "Note-Ouverte: plan toujours actif"


def report(i, name):
    sig = situation_report(i, 0)
    sig["people"] = [{"name": name}]
    return sig


# 1. 100 days ago for plans: four situations, the operators' words
past = now_us() - 100 * DAY
bus.start("intake")
bus.start("plans", env={"RELAIS_FAKE_TIME_US": str(past), "TZ": "UTC"})
subs = {k: bus.submit(report(i, name), idem=k)
        for k, i, name in (("a", 3, CANARY_NAME), ("b", 4, "Claudine Controle"),
                           ("d", 5, "Denise Ancienne"), ("e", 6, "Etienne Ouvert"))}
check(all(s["ok"] and s["level"] == 2 for s in subs.values()), "four level-2 reports", subs)
wait_caught_up(bus)
created = {e["key"]: e for e in bus.fetch_all() if e["type"] == "signal.created"}
REF = created[subs["a"]["id"]]["body"]["person_refs"][0]
plans = bus.request(api, {"op": "plans.list"})["plans"]
check(len(plans) == 4, "one plan per situation", plans)
pid = {}
for p in plans:
    got = bus.request(api, {"op": "plans.get", "id": p["id"]})["plan"]
    for k, s in subs.items():
        if s["id"] in got["signals"]:
            pid[k] = p["id"]
check(len(pid) == 4, "each report has its plan", pid)


def op(**req):
    r = bus.request(api, {"by": "mus:alice", **req})
    check(r.get("ok"), "op", req.get("op"), r)
    return r


op(op="plans.note", id=pid["a"], text=NOTE_CANARY)
op(op="plans.flag", id=pid["a"], flagged=True, reason=FLAG_CANARY)
op(op="plans.note", id=pid["a"], text=NOTE_CANARY + " (bis)")
op(op="plans.note", id=pid["b"], text=CONTROL_NOTE)
op(op="plans.note", id=pid["d"], text=OLD_NOTE)
op(op="plans.set_state", id=pid["d"], state="clos", outcome="orientation")
op(op="plans.note", id=pid["e"], text=OPEN_NOTE)
check(bus.stop("plans") == 0, "plans stop")
check(hits([NOTE_CANARY, FLAG_CANARY], only="var/plans"), "before: the canary is in plans' store")

# 2. Today
bus.start("plans")


def get(key):
    return bus.request(api, {"op": "plans.get", "id": pid[key]})


before = {k: get(k) for k in pid}
check(before["a"]["plan"]["flag_reason"] == FLAG_CANARY, "A is flagged with the reason", before["a"]["plan"])

# Bad requests: clear errors, nothing changes
for req, code, field in [({"op": "plans.erase", "reason": "x"}, "invalid", "person"),
                         ({"op": "plans.erase", "person": "P-short", "reason": "x"}, "invalid", "person"),
                         ({"op": "plans.erase", "person": 42, "reason": "x"}, "invalid", "person"),
                         ({"op": "plans.erase", "person": REF}, "invalid", "reason"),
                         ({"op": "plans.erase", "person": REF, "reason": "free text, with spaces"}, "invalid", "reason"),
                         ({"op": "plans.erase", "person": REF, "reason": "x", "dry_run": 1}, "invalid", "dry_run"),
                         ({"op": "plans.purge", "reason": ""}, "invalid", "reason"),
                         ({"op": "plans.purge", "dry_run": "yes"}, "invalid", "dry_run")]:
    r = bus.request(api, req)
    check(not r["ok"] and r["code"] == code and r["field"] == field and r.get("message"), "refused", req, r)
check(get("a") == before["a"], "the refused requests changed nothing")

# Dry run: lists, changes nothing
run = relais("erase", "--person", REF, "--reason", "art17-test-0009", "--dry-run", "--json")
check(run.returncode == 0, "erase --dry-run", run.stdout, run.stderr)
dry = {r["service"]: r for r in map(json.loads, run.stdout.splitlines())}
check(dry["plans"]["plans"] == [pid["a"]] and dry["plans"]["count"] == 1 and dry["plans"]["dry_run"]
      and dry["plans"]["texts_removed"] == 0 and not dry["plans"]["compacted"], "plans preview", dry)
check(get("a") == before["a"], "the dry run changed nothing")

# The erase
t0 = time.time()
run = relais("erase", "--person", REF, "--reason", "art17-test-0009")
took = time.time() - t0
check(run.returncode == 0, "erase", run.stdout, run.stderr)
check(f"plans    erase {REF}: 1 plan [{pid['a']}], 4 texts removed, store compacted" in run.stdout,
      "plans says what it removed (2 notes, the flag entry, the flag reason)", run.stdout)
check("intake   erase " + REF + ": 1 report" in run.stdout, "intake erased first", run.stdout)
after = get("a")
pa, pb = after["plan"], before["a"]["plan"]
check(pa["flagged"] and pa["flag_reason"] == "", "A stays flagged, without the words", pa)
check({k: v for k, v in pa.items() if k != "flag_reason"} == {k: v for k, v in pb.items() if k != "flag_reason"},
      "A's plan is otherwise unchanged")
strip = [{k: v for k, v in h.items() if k != "text"} for h in before["a"]["history"]]
check(after["history"] == strip and len(after["history"]) == pb["history"], "the history entries stay, without text",
      after["history"])
check([h["what"] for h in after["history"]].count("note") == 2, "both notes are still in the story")
for k in ("b", "d", "e"):
    check(get(k) == before[k], f"plan {k.upper()} untouched")
again = bus.request(api, {"op": "plans.erase", "person": REF, "reason": "art17-test-0009"})
check(again["ok"] and again["count"] == 1 and again["texts_removed"] == 0 and not again["compacted"],
      "erasing again is harmless", again)
nobody = bus.request(api, {"op": "plans.erase", "person": "P-" + "a" * 20, "reason": "x", "rid": 7})
check(nobody["ok"] and nobody["count"] == 0 and nobody["plans"] == [] and nobody["rid"] == 7
      and nobody["service"] == "plans" and nobody["person"] == "P-" + "a" * 20, "nobody named: count 0", nobody)

# The purge: D (closed 100 days ago) only
run = relais("purge", "--dry-run", "--json")
check(run.returncode == 0, "purge --dry-run", run.stderr)
dry = {r["service"]: r for r in map(json.loads, run.stdout.splitlines())}
check(dry["plans"]["plans"] == [pid["d"]] and dry["plans"]["dry_run"], "purge preview: D", dry)
check(get("d") == before["d"], "the dry run changed nothing")
run = relais("purge", "--reason", "retention-test")
check(run.returncode == 0, "purge", run.stdout, run.stderr)
check(f"plans    purge: 1 plan [{pid['d']}], 1 texts removed, store compacted" in run.stdout,
      "plans says what it purged", run.stdout)
hd = get("d")["history"]
check(len(hd) == len(before["d"]["history"]) and all("text" not in h for h in hd)
      and [h["what"] for h in hd] == [h["what"] for h in before["d"]["history"]], "D's story stays, its text goes", hd)
check(get("e") == before["e"] and get("b") == before["b"], "open plans keep their notes")
again = relais("purge", "--json")
check(again.returncode == 0 and json.loads(again.stdout.splitlines()[-1])["count"] == 0,
      "a second purge finds nothing", again.stdout)

# 3. E, closed now, is scrubbed by the job of a plans 100 days later
op(op="plans.set_state", id=pid["e"], state="clos", outcome="refus")
check(bus.stop("plans") == 0, "plans stop")
section("plans", "    retention\n        every = 1s\n")
bus.start("plans", env={"RELAIS_FAKE_TIME_US": str(now_us() + 100 * DAY), "TZ": "UTC"})
deadline = time.time() + 20
while time.time() < deadline:
    he = get("e")["history"]
    if all("text" not in h for h in he):
        break
    time.sleep(0.2)
check(all("text" not in h for h in he) and len(he) == len(before["e"]["history"]) + 1, "the job purged E", he)
check([h for h in get("b")["history"] if h["what"] == "note"]
      == [h for h in before["b"]["history"] if h["what"] == "note"], "B, open, keeps its note")

# Every file: stores, logs, audit files
for svc in ("plans", "intake"):
    check(bus.stop(svc) == 0, "clean stop", svc)
found = hits([CANARY_NAME, NOTE_CANARY, FLAG_CANARY, OLD_NOTE, OPEN_NOTE])
check(not found, "0 canary hits in data.mdb, logs and audit", found)
check(hits([CONTROL_NOTE], only="var/plans"), "the control note is still in plans' store")
check(any(p.endswith("data.mdb") and "plans" in p for p in files()), "greped plans' store")

audit = relais("audit", "--src", "plans", "--verify")
check(audit.returncode == 0, "plans audit chain verifies", audit.stdout, audit.stderr)
text = open(os.path.join(bus.dir, "var", "plans-audit.log")).read()
check(f'"action":"erase","key":"{REF}","purpose":"art17-test-0009"' in text
      and f'"action":"erase_plan","key":"{pid["a"]}"' in text
      and f'"action":"purge_plan","key":"{pid["d"]}","purpose":"retention-test"' in text
      and '"who":"retention-job"' in text and f'"action":"purge_plan","key":"{pid["e"]}"' in text,
      "the audit records the erase, the purge and the job", text[-800:])
shown = relais("audit", "--src", "plans")
check(shown.returncode == 0 and pid["a"] in shown.stdout, "relais audit --src plans reads it", shown.stdout, shown.stderr)
print(f"plans erase: 1 plan, 4 texts (relais erase, intake and plans, compactions included: {took:.2f}s); "
      "purge: 1 plan; job: 1 plan; hits=0")
ok("34-plans-erase")
