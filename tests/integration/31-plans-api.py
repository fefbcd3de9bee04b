"""Plans over the wire, with real intake and a fake router (fake_source.py):
route.* events give the plans their actors (also when the routing comes
before plans applied the report); the `relais plan` CLI adds, updates and
closes actions, flags, notes, closes and reopens, with readable output and
--json; every refused change is a clear error that changes nothing; bad
frames never crash plans; notes and flag reasons never reach the bus."""
import json
import subprocess
import time

import zmq

from relais_harness import CTX, Bus, binary, check, now_us, ok, pack, sample_signal, unpack
from fake_source import FakeSource
from plans_util import situation_report, wait_caught_up

bus = Bus("plans-api", services=["intake", "plans"],
          extra="router\n    pub = \"{}\"\n    fetch = \"{}\"\n".format("ROUTER_PUB", "ROUTER_FETCH"))
# The router section's endpoints live in the bus folder too
cfg = open(bus.config).read().replace("ROUTER_PUB", bus.ep("router-pub")).replace("ROUTER_FETCH", bus.ep("router-fetch"))
open(bus.config, "w").write(cfg)
router = FakeSource("router", bus.ep("router-pub"), bus.ep("router-fetch"))
api = bus.endpoints["plans"]["api"]

bus.start("intake")
a = bus.submit(situation_report(1, 0))
check(a["ok"] and a["level"] == 2, "level-2 report", a)
# Routed before plans even runs: the plan opens with its actors
router.publish("route.assigned", a["id"], {"partner": "uasa", "rule": "municipal", "level": 2,
               "arrondissement": 2, "publics": ["famille"], "due": now_us(), "attempt": 1},
               corr="intake:1")
bus.start("plans")
wait_caught_up(bus, sources=("intake", "router"))


def plan_cli(*args, expect=0):
    out = subprocess.run([binary("relais"), "--config", bus.config, "plan", *args],
                         capture_output=True, text=True, env={"RELAIS_BY": "mus:alice", "PATH": "/usr/bin:/bin"})
    check(out.returncode == expect, f"relais plan {' '.join(args)} exit {expect}", out.returncode, out.stdout, out.stderr)
    return out


listing = json.loads(plan_cli("list", "--json").stdout)
check(len(listing["plans"]) == 1 and listing["plans"][0]["actors"] == ["uasa"], "plan with routed actor", listing)
pid = listing["plans"][0]["id"]

router.publish("route.assigned", a["id"], {"partner": "samu-social", "rule": "famille", "level": 2,
               "arrondissement": 2, "publics": ["famille"], "due": now_us(), "attempt": 1})
router.publish("route.acknowledged", a["id"], {"partner": "uasa", "mseq": 1, "at": now_us()})
wait_caught_up(bus, sources=("intake", "router"))

# Actions, state, flag, note through the CLI
out = plan_cli("action", pid, "--kind", "evaluation", "--owner", "maraude-emmaus", "--due", "+2h")
check("action 1 added" in out.stdout, "action added", out.stdout)
plan_cli("action", pid, "--kind", "mise_a_l_abri", "--owner", "samu-social", "--due", "+1d")
out = plan_cli("action", pid, "1", "--state", "en_cours")
check("action 1 en_cours" in out.stdout, "action en_cours", out.stdout)
out = plan_cli("action", pid, "1", "--state", "a_faire", expect=1)
check("conflict" in out.stderr and "fait, annule" in out.stderr, "refused transition names the allowed", out.stderr)
out = plan_cli("note", pid, "SECRET: la mère a rendez-vous à la PMI mardi")
plan_cli("flag", pid, "--reason", "SECRET: refus répétés, enfant malade")
out = plan_cli("review")
check(pid in out.stdout and "SECRET: refus" in out.stdout, "review shows the reason to the MUS", out.stdout)
out = plan_cli("close", pid, "refus", "--structure", "hotel-1", expect=1)
check("structure" in out.stderr, "structure only with mise_a_l_abri", out.stderr)
plan_cli("close", pid, "mise_a_l_abri", "--structure", "hotel-ibis-19")
plan_cli("close", pid, "autre", expect=1)
plan_cli("action", pid, "--kind", "soins", "--owner", "x", "--due", "+1h", expect=1)
out = plan_cli("show", pid)
for needle in ("clos (mise_a_l_abri -> hotel-ibis-19)", "uasa,samu-social,maraude-emmaus", "routed             signal=SIG-00000001 partner=uasa",
               "mus:alice", "opened", "routed", "route_acknowledged", "action_added", "closed",
               "« SECRET: la mère"):
    check(needle in out.stdout, f"timeline shows {needle}", out.stdout)
plan_cli("reopen", pid)
shown = json.loads(plan_cli("show", pid, "--json").stdout)
check(shown["plan"]["state"] == "ouvert" and shown["plan"]["outcome"] == "", "reopened", shown["plan"])
whats = [h["what"] for h in shown["history"]]
check(whats[0] == "opened" and whats[-1] == "reopened" and "flagged" in whats and "note" in whats, "history", whats)
check(all(h["by"] for h in shown["history"]), "every entry says who")
plan_cli("show", "PLAN-99999999", expect=1)
plan_cli("frobnicate", expect=2)

# Raw requests: errors per proto/plans.md, and plans survives bad frames
def raw(frames):
    s = CTX.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(api)
    s.send_multipart(frames)
    check(s.poll(5000), "plans answers", frames)
    reply = unpack(s.recv_multipart()[-1])
    s.close()
    return reply

check(raw([b"", b"\xc1"])["code"] == "invalid", "not msgpack")
check(raw([b"", pack([1, 2])])["code"] == "invalid", "not a map")
check(raw([b"", pack({"x": 1}), b"extra"])["code"] == "invalid", "three frames")
check(raw([b"", pack({"op": 7})])["field"] == "op", "op not str")
r = raw([b"", pack({"op": "plans.explode", "rid": "r1"})])
check(r["code"] == "unknown_op" and r["rid"] == "r1", "unknown op, rid echoed", r)
r = raw([b"", pack({"op": "plans.note", "id": pid, "text": "x"})])
check(r["code"] == "invalid" and r["field"] == "by", "by required", r)
r = raw([b"", pack({"op": "plans.note", "id": pid, "text": "x", "by": "a\tb"})])
check(r["code"] == "invalid" and r["field"] == "by", "by one line", r)
r = raw([b"", pack({"op": "plans.note", "id": pid, "text": "x", "by": "a\x1bb"})])
check(r["code"] == "invalid" and "field" not in r, "control characters refused at the frame", r)
r = raw([b"", pack({"op": "plans.note", "id": pid, "text": "x" * 2001, "by": "t"})])
check(r["code"] == "too_large" and r["field"] == "text", "note too long", r)
r = raw([b"", pack({"op": "plans.get", "id": pid, "rid": 42})])
check(r["ok"] and r["rid"] == 42, "rid on success", r)

# plans.open on a level-1 report
b = bus.submit(sample_signal(arr=7))
check(b["level"] == 1, "level 1", b)
wait_caught_up(bus, sources=("intake", "router"))
out = plan_cli("open", b["id"])
check("opened" in out.stdout, "plans.open", out.stdout)
plan_cli("open", b["id"], expect=1)

# No personal data on the bus
events = bus.fetch_all("plans")
types = {e["type"] for e in events}
for t in ("plan.opened", "plan.updated", "plan.action_added", "plan.action_changed",
          "plan.flagged", "plan.closed", "plan.reopened"):
    check(t in types, f"{t} published", types)
for e in events:
    check("SECRET" not in repr(e) and "Personne" not in repr(e), "no notes, reasons or names on the bus", e)
closed = [e for e in events if e["type"] == "plan.closed"][0]
check(closed["body"] == {"outcome": "mise_a_l_abri", "structure": "hotel-ibis-19",
                         "arrondissement": 2, "signals": [a["id"]]}, "plan.closed body", closed)
opened = [e for e in events if e["type"] == "plan.opened"][0]
check(opened["corr"] == "intake:1" and opened["src"] == "plans", "corr names the cause", opened)

check(bus.stop("plans") == 0, "clean stop")
router.close()
check(bus.stop("intake") == 0, "intake clean stop")
ok("31-plans-api")
