"""plans.erase and plans.purge with CURVE on: only the operations role may
scrub plans' notes; the gateway, which reaches plans' api for the other
ops, gets `unauthorized` and changes nothing; the audit names the
certificate that asked (proto/privacy.md §3, §6)."""
import os
import subprocess
import time

import zmq

from relais_harness import Bus, binary, check, curve_socket, ok, pack, unpack
from plans_util import situation_report

bus = Bus("plans-erase-curve", services=["intake", "plans"],
          extra="security\n    curve = true\n    certs = certs\n")
with open(bus.config) as f:
    cfg = f.read()
with open(bus.config, "w") as f:
    f.write(cfg.replace("relais\n    data = var\n", "relais\n    data = var\n    services = \"intake plans\"\n", 1))
RELAIS = binary("relais")
certs = os.path.join(bus.dir, "var", "certs")
ENV = dict(os.environ, RELAIS_CONFIG=bus.config)


def relais(*args, who="ops"):
    return subprocess.run([RELAIS, "--as", who, *args], capture_output=True, text=True, env=ENV, timeout=60)


for args in (["intake", "--role", "service"], ["plans", "--role", "service"],
             ["ops", "--role", "operations"], ["gw", "--role", "gateway"]):
    check(relais("keygen", *args).returncode == 0, "keygen", args)
for svc in ("intake", "plans"):
    bus.start(svc, wait=False)
    deadline = time.time() + 20
    while relais("status", "--src", svc, "--timeout", "300ms").returncode != 0:
        check(time.time() < deadline and bus.procs[svc].poll() is None, f"{svc} up with CURVE",
              bus.log_text(svc)[-1500:])
        time.sleep(0.1)

plans_cert = os.path.join(certs, "plans.cert")


def ask(who, req):
    s = curve_socket(zmq.DEALER, bus.endpoints["plans"]["api"], os.path.join(certs, f"{who}.cert"), plans_cert)
    s.send_multipart([b"", pack(req)])
    check(s.poll(5000), "plans answered", who, req)
    reply = unpack(s.recv_multipart()[-1])
    s.close()
    return reply


# A plan with a note, written by the gateway (its role may write notes)
intake_cert = os.path.join(certs, "intake.cert")
sub = curve_socket(zmq.DEALER, bus.endpoints["intake"]["submit"], os.path.join(certs, "ops.cert"), intake_cert)
sub.send_multipart([b"", pack({"op": "submit", "idem": "c-1", "signal": situation_report(7, 0)})])
check(sub.poll(5000) and unpack(sub.recv_multipart()[-1])["ok"], "submit")
sub.close()
deadline = time.time() + 20
plans = []
while not plans and time.time() < deadline:
    plans = ask("ops", {"op": "plans.list"})["plans"]
    time.sleep(0.1)
check(len(plans) == 1, "the plan opened", plans)
pid = plans[0]["id"]
check(ask("gw", {"op": "plans.note", "id": pid, "text": "Note-Curve: a garder"})["ok"], "the gateway writes a note")

for req in ({"op": "plans.erase", "person": "P-" + "b" * 20, "reason": "art17-x"},
            {"op": "plans.purge"}):
    r = ask("gw", req)
    check(not r["ok"] and r["code"] == "unauthorized" and r["field"] == "op", "the gateway may not scrub", req, r)
run = relais("purge", who="gw")
check(run.returncode == 1 and "unauthorized" in run.stderr, "relais purge as the gateway fails", run.stdout, run.stderr)
r = ask("ops", {"op": "plans.purge", "dry_run": True})
check(r["ok"] and r["count"] == 0 and r["dry_run"], "operations may", r)
run = relais("erase", "--person", "P-" + "c" * 20, "--reason", "art17-curve")
check(run.returncode == 0 and "plans    erase P-" in run.stdout, "relais erase as operations", run.stdout, run.stderr)
got = ask("ops", {"op": "plans.get", "id": pid})
check([h["text"] for h in got["history"] if h["what"] == "note"] == ["Note-Curve: a garder"], "nothing changed", got)
for svc in ("plans", "intake"):
    check(bus.stop(svc) == 0, f"{svc} stops")
text = open(os.path.join(bus.dir, "var", "plans-audit.log")).read()
check('"who":"ops","role":"operations","action":"erase"' in text and '"who":"gw"' not in text,
      "the audit names the operations certificate, and no refused request", text)
ok("35-plans-erase-curve")
