"""With CURVE on, the whole bus runs on certificates, and a partner opens
only the mailbox of its own certificate (issue: security).

intake and router, each with its service certificate; a producer submits;
the router (a 'service') reads the full record from intake (audited). The
UASA notifier's certificate may open UASA's mailbox and receives UASA's
delivery; the same certificate saying hello as 'maraudes' is refused with
'unauthorized', and so is a producer's certificate on the partners'
endpoint (at the handshake). The router's own events stay readable by
operations only.
"""
import json
import os
import subprocess
import time

import zmq

from relais_harness import Bus, binary, check, curve_socket, ok, pack, unpack, sample_signal

bus = Bus("curve-partners", services=["intake", "router"],
          extra="security\n    curve = true\n    certs = certs\n")
RELAIS = binary("relais")
data = os.path.join(bus.dir, "var")
certs = os.path.join(data, "certs")
ENV = dict(os.environ, RELAIS_CONFIG=bus.config)


def relais(*args, who="ops"):
    return subprocess.run([RELAIS, "--as", who, *args], capture_output=True, text=True, env=ENV, timeout=60)


for args in (["intake", "--role", "service"], ["router", "--role", "service"], ["ops", "--role", "operations"],
             ["cellule-4", "--role", "producer", "--source", "cellule:Cellule 4e"],
             ["uasa", "--role", "partner", "--partner", "uasa"],
             ["maraudes", "--role", "partner", "--partner", "maraudes"]):
    check(relais("keygen", *args).returncode == 0, "keygen", args)

for svc in ("intake", "router"):
    bus.start(svc, wait=False)
    deadline = time.time() + 20
    while relais("status", "--src", svc, "--timeout", "300ms").returncode != 0:
        check(time.time() < deadline and bus.procs[svc].poll() is None, f"{svc} up with CURVE",
              bus.log_text(svc)[-1500:])
        time.sleep(0.1)

eps = bus.endpoints
intake_cert = os.path.join(certs, "intake.cert")
router_cert = os.path.join(certs, "router.cert")
prod = curve_socket(zmq.DEALER, eps["intake"]["submit"], os.path.join(certs, "cellule-4.cert"), intake_cert)
sig = sample_signal(arr=4, place={"arrondissement": 4, "kind": "domaine_municipal"},
                    people=[{"name": "Canary Partner", "birth_year": 1970}])
prod.send_multipart([b"", pack({"op": "submit", "idem": "p-1", "signal": sig})])
check(prod.poll(5000), "submit answered")
ack = unpack(prod.recv_multipart()[-1])
check(ack["ok"], "producer submits", ack)
prod.close()


def hello(cert, partner, wait_ms=3000):
    s = curve_socket(zmq.DEALER, eps["router"]["partners"], cert, router_cert)
    s.send_multipart([b"", pack({"op": "hello", "partner": partner, "after": 0})])
    got = []
    end = time.time() + wait_ms / 1000
    while time.time() < end:
        if s.poll(200):
            msg = unpack(s.recv_multipart()[-1])
            got.append(msg)
            if msg.get("op") == "deliver" or msg.get("ok") is False:
                break
    s.close()
    return got


# UASA's certificate, its own mailbox: the delivery, with what UASA needs
got = hello(os.path.join(certs, "uasa.cert"), "uasa", 10000)
deliveries = [m for m in got if m.get("op") == "deliver"]
check(deliveries and deliveries[0]["key"] == ack["id"], "UASA gets its delivery", got)
check("Canary Partner" in json.dumps(deliveries[0]["body"]), "the delivery carries what UASA needs to act")
# The same certificate claiming the maraudes' mailbox
got = hello(os.path.join(certs, "uasa.cert"), "maraudes")
check(got and got[0].get("ok") is False and got[0]["code"] == "unauthorized", "UASA cannot open maraudes", got)
check(not [m for m in got if m.get("op") == "deliver"], "and receives nothing of it")
check("hello refused partner=maraudes certificate=uasa" in bus.log_text("router"), "the refusal is logged")
# A producer's certificate is refused at the handshake on the partners' endpoint
check(hello(os.path.join(certs, "cellule-4.cert"), "uasa", 1500) == [], "a producer cannot reach mailboxes")
# The router read the full record as a service, and that read is audited
audit = open(os.path.join(data, "intake-audit.log")).read()
check(f'"who":"router","role":"service","action":"record_read","key":"{ack["id"]}"' in audit,
      "the router's read of personal data is audited", audit[-500:])
# Route events are on the bus for operations, not for partners
ops = curve_socket(zmq.DEALER, eps["router"]["fetch"], os.path.join(certs, "ops.cert"), router_cert)
ops.send_multipart([b"", pack({"op": "fetch", "from": 1})])
check(ops.poll(3000) and unpack(ops.recv_multipart()[-1])["ok"], "operations fetch the router's log")
ops.close()
part = curve_socket(zmq.DEALER, eps["router"]["fetch"], os.path.join(certs, "uasa.cert"), router_cert)
part.send_multipart([b"", pack({"op": "fetch", "from": 1})])
check(not part.poll(1500), "a partner cannot fetch the router's log")
part.close()
for svc in ("router", "intake"):
    check(bus.stop(svc) == 0, f"{svc} stops")
ok("17-curve-partners")
