"""Retention (T23): personal fields are removed once a report is past the
policy - by `relais purge` on demand, and by each service's own daily job -
and the bytes leave data.mdb.

Time comes from the services' injectable clock (RELAIS_FAKE_TIME_US): two
reports are filed 100 days ago and routed to a partner who acks them; one
is closed. Back at today's date, `relais purge --dry-run` lists what the
policy covers (intake: the closed one, past 90 days; router: both acked
deliveries, past 30 days) and changes nothing; `relais purge` removes it.
The open report stays in intake until it is 730 days without change:
intake restarted 700 days later, with its job every second, purges it by
itself. Then no canary is left in any file of the deployment."""
import json
import os
import subprocess
import time

from relais_harness import Bus, binary, check, now_us, ok, sample_signal
from router_helpers import Partner, wait_events

DAY = 86_400_000_000
bus = Bus("purge", services=["intake", "router"])
eps = bus.endpoints
RELAIS = binary("relais")
with open(bus.config) as f:
    cfg = f.read()
with open(bus.config, "w") as f:
    f.write(cfg.replace("relais\n    data = var\n", "relais\n    data = var\n    services = \"intake router\"\n", 1))


def section(svc, text):
    with open(bus.config) as f:
        cfg = f.read()
    with open(bus.config, "w") as f:
        f.write(cfg.replace(f"\n{svc}\n", f"\n{svc}\n{text}", 1))


def relais(*args):
    return subprocess.run([RELAIS, "--config", bus.config, *args], capture_output=True, text=True,
                          timeout=120)


def hits(strings, only=None):
    found = []
    for root, _, names in os.walk(bus.dir):
        for n in names:
            path = os.path.join(root, n)
            if root.startswith(bus.sock) or (only and only not in path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            found += [(os.path.relpath(path, bus.dir), s) for s in strings if s.encode() in data]
    return found


OLD = "Purgatoire Ancien-Ferme"
OPEN = "Ouvert Toujours-Present"
past = now_us() - 100 * DAY
env = {"RELAIS_FAKE_TIME_US": str(past), "TZ": "UTC"}

# 1. 100 days ago: two reports, routed and acked; the first is closed
bus.start("intake", env=env)
bus.start("router", env=env)
x = bus.submit(sample_signal(arr=11, observed_at=past - 3_600_000_000, people=[{"name": OLD}],
                             summary=OLD), idem="x")
y = bus.submit(sample_signal(arr=11, observed_at=past - 3_600_000_000, people=[{"name": OPEN}],
                             summary=OPEN), idem="y")
check(x["ok"] and y["ok"], "submits", x, y)
wait_events(bus, lambda e: len([v for v in e if v["type"] == "route.assigned"]) >= 2)
p = Partner(eps["router"]["partners"], "cellule-11")
check(len(p.collect(2)) == 2, "both delivered and acked")
p.close()
closed = bus.request(eps["intake"]["submit"], {"op": "close", "idem": "x-close", "id": x["id"],
                                                "reason": "resolu"})
check(closed["ok"], "close", closed)
time.sleep(0.5)
for svc in ("intake", "router"):
    check(bus.stop(svc) == 0, "stop", svc)
events_before = None

# 2. Today: the on-demand purge
bus.start("intake")
bus.start("router")
events_before = bus.fetch_all()
run = relais("purge", "--dry-run", "--json")
check(run.returncode == 0, "purge --dry-run", run.stderr)
dry = {r["service"]: r for r in map(json.loads, run.stdout.splitlines())}
check(dry["intake"]["reports"] == [x["id"]] and dry["intake"]["dry_run"], "intake: the closed report", dry)
check(sorted(dry["router"]["reports"]) == sorted([x["id"], y["id"]]) and dry["router"]["deliveries"] == 2,
      "router: both acked deliveries", dry)
rec = bus.request(eps["intake"]["records"], {"op": "signal.get", "id": x["id"]})["record"]
check(rec["signal"]["people"][0]["name"] == OLD, "the dry run changed nothing")

run = relais("purge", "--reason", "retention-test")
check(run.returncode == 0, "purge", run.stdout, run.stderr)
check(f"intake   purge: 1 report [{x['id']}], 1 people removed, store compacted" in run.stdout,
      "intake says what it purged", run.stdout)
check("router   purge: 2 reports (2 deliveries)" in run.stdout, "router too", run.stdout)
rx = bus.request(eps["intake"]["records"], {"op": "signal.get", "id": x["id"]})["record"]
check(rx["signal"].get("people", []) == [] and "summary" not in rx["signal"]
      and rx["person_refs"] and rx["state"] == "clos", "X anonymised, its ref kept", rx)
ry = bus.request(eps["intake"]["records"], {"op": "signal.get", "id": y["id"]})["record"]
check(ry["signal"]["people"][0]["name"] == OPEN, "Y, open and 100 days old, is kept", ry)
again = relais("purge", "--json")
check(all(json.loads(line)["count"] == 0 for line in again.stdout.splitlines()), "a second purge finds nothing",
      again.stdout)
check(bus.fetch_all()[:len(events_before)] == events_before, "the event log is unchanged")
check(bus.stop("router") == 0, "router stop")
check(not hits([OLD, OPEN], only="router"), "router's files hold neither", hits([OLD, OPEN], only="router"))
check(not hits([OLD], only="intake"), "intake's files no longer hold X", hits([OLD], only="intake"))
check(hits([OPEN], only="var/intake"), "intake's store still holds Y")

# 3. 700 days later, intake's own job (every second here) purges Y
check(bus.stop("intake") == 0, "intake stop")
section("intake", "    retention\n        every = 1s\n")
bus.start("intake", env={"RELAIS_FAKE_TIME_US": str(now_us() + 700 * DAY), "TZ": "UTC"})
deadline = time.time() + 30
while time.time() < deadline:
    ry = bus.request(eps["intake"]["records"], {"op": "signal.get", "id": y["id"]})["record"]
    if ry.get("scrubbed_at"):
        break
    time.sleep(0.2)
check(ry.get("scrubbed_at") and ry["signal"].get("people", []) == [], "the daily job purged Y", ry)
check(bus.stop("intake") == 0, "intake stop")
found = hits([OLD, OPEN])
check(not found, "0 canary hits in any file", found)
text = open(os.path.join(bus.dir, "var", "intake-audit.log")).read()
check('"who":"retention-job"' in text and f'"action":"purge_report","key":"{y["id"]}"' in text,
      "the job's purge is audited", text[-500:])
check(relais("audit", "--src", "intake", "--verify").returncode == 0, "audit chain intact")
print("purge: on demand 1+2, by the job 1; hits=0")
ok("19-purge")
