"""The simulator's Paris (relais simulate, encampment scenario: a camp
reported again and again, families, repeat persons, updates and closes)
through real intake and plans, checked against an independent model of
the placement rule of proto/plans.md §2 computed from intake's own log:
the same plans, holding the same reports; every level-2 report in exactly
one plan; no level-1 report in any."""
import subprocess
import time

from relais_harness import Bus, binary, check, ok
from plans_util import dump, wait_caught_up

COUNT = 800

bus = Bus("plans-sim", services=["intake", "plans"])
bus.start("intake")
bus.start("plans")
t0 = time.time()
run = subprocess.run([binary("relais"), "--config", bus.config, "simulate", "--scenario", "encampment",
                      "--seed", "33", "--count", str(COUNT), "--rate", "0", "--json", "-q"],
                     capture_output=True, text=True, timeout=300)
check(run.returncode == 0, "simulate acked everything", run.stdout, run.stderr)
wait_caught_up(bus)
elapsed = time.time() - t0
events = bus.fetch_all("intake")


# The model: keys -> plan; a level-2 report joins the plan of its first key
# (place, then person refs), else opens one; then all its keys lead there.
def place_key(place):
    if place.get("cell"):
        return "C:" + place["cell"]
    return f"A:{place['arrondissement']}:{place.get('kind') or 'autre'}"


index, plan_of, plans, sigs = {}, {}, [], {}
for e in events:
    body, sid = e["body"], e["key"]
    if e["type"] == "signal.created":
        sigs[sid] = {"place": body["place"], "refs": list(body["person_refs"]), "level": body["level"]}
    elif e["type"] == "signal.updated":
        s = sigs[sid]
        s["level"] = max(s["level"], body["level"])
        if "place" in body.get("changes", {}):
            s["place"] = body["changes"]["place"]
        s["refs"] = list(body["person_refs"])
        if sid in plan_of:
            for k in [place_key(s["place"])] + ["P:" + r for r in s["refs"]]:
                index[k] = plan_of[sid]
            continue
    else:
        continue
    s = sigs[sid]
    if s["level"] < 2 or sid in plan_of:
        continue
    keys = [place_key(s["place"])] + ["P:" + r for r in s["refs"]]
    found = next((index[k] for k in keys if k in index), None)
    if found is None:
        found = len(plans)
        plans.append([])
    plans[found].append(sid)
    plan_of[sid] = found
    for k in keys:
        index[k] = found

check(bus.stop("plans") == 0, "clean stop")
got = dump(bus)
level2 = [sid for sid, s in sigs.items() if s["level"] == 2]
check(len(level2) >= 100, "the scenario made level-2 reports", len(level2))
check(len(got) == len(plans), "as many plans as the model", len(got), len(plans))
got_sets = sorted(sorted(p["plan"]["signals"]) for p in got)
want_sets = sorted(sorted(p) for p in plans)
check(got_sets == want_sets, "the same reports in the same plans",
      [a for a, b in zip(got_sets, want_sets) if a != b][:2])
in_plans = [s for p in got for s in p["plan"]["signals"]]
check(len(in_plans) == len(set(in_plans)) == len(level2), "each level-2 report in exactly one plan")
check(all(p["plan"]["signal_total"] == len(p["plan"]["signals"]) for p in got), "no plan over its list cap")
check(bus.stop("intake") == 0, "intake clean stop")
print(f"figures: {len(events)} intake events, {len(level2)} level-2 reports, {len(plans)} plans, "
      f"submit+apply {elapsed:.1f} s")
ok("33-plans-simulate")
