"""With CURVE on, "its own" is decided by the certificate: a producer's
certificate opens only its own source's feed and reads only its own
reports on feedback's api, whatever it asks (another producer's id is
not_found, never the data); a partner's certificate is refused on the feed
at the handshake; operations read any report. `relais follow --as` a
producer prints only that producer's changes."""
import os
import subprocess
import time

import zmq

from relais_harness import Bus, binary, check, curve_socket, ok, pack, unpack, sample_signal

bus = Bus("feedback-curve", services=["intake", "feedback"],
          extra="security\n    curve = true\n    certs = certs\n")
RELAIS = binary("relais")
certs = os.path.join(bus.dir, "var", "certs")
ENV = dict(os.environ, RELAIS_CONFIG=bus.config)
A = "cellule:Cellule 4e"
B = "association:Aurore"


def relais(*args, who="ops", timeout=60):
    return subprocess.run([RELAIS, "--as", who, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


for args in (["intake", "--role", "service"], ["feedback", "--role", "service"], ["ops", "--role", "operations"],
             ["cellule-4", "--role", "producer", "--source", A],
             ["aurore", "--role", "producer", "--source", B],
             ["uasa", "--role", "partner", "--partner", "uasa"]):
    check(relais("keygen", *args).returncode == 0, "keygen", args)

for svc in ("intake", "feedback"):
    bus.start(svc, wait=False)
    deadline = time.time() + 20
    while relais("status", "--src", svc, "--timeout", "300ms").returncode != 0:
        check(time.time() < deadline and bus.procs[svc].poll() is None, f"{svc} up with CURVE",
              bus.log_text(svc)[-1500:])
        time.sleep(0.1)

eps = bus.endpoints
intake_cert = os.path.join(certs, "intake.cert")
fb_cert = os.path.join(certs, "feedback.cert")


def cert(name):
    return os.path.join(certs, f"{name}.cert")


def submit(who, idem):
    s = curve_socket(zmq.DEALER, eps["intake"]["submit"], cert(who), intake_cert)
    # intake records the certificate's source, whatever the report says
    s.send_multipart([b"", pack({"op": "submit", "idem": idem, "signal": sample_signal(arr=4)})])
    check(s.poll(5000), "submit answered")
    ack = unpack(s.recv_multipart()[-1])
    s.close()
    check(ack["ok"], "submitted", ack)
    return ack["id"]


def request(who, endpoint, obj, wait_ms=5000):
    s = curve_socket(zmq.DEALER, endpoint, cert(who), fb_cert)
    s.send_multipart([b"", pack(obj)])
    reply = unpack(s.recv_multipart()[-1]) if s.poll(wait_ms) else None
    s.close()
    return reply


ra = submit("cellule-4", "a-1")
rb = submit("aurore", "b-1")
end = time.time() + 20
while time.time() < end:
    st = request("ops", eps["feedback"]["api"], {"op": "feedback.status", "id": rb})
    if st and st.get("ok") and st["status"] == "qualifie":
        break
    time.sleep(0.1)
check(st["ok"] and st["producer"] == B, "operations read any report", st)

# A's certificate on the api: its own report, never B's, whatever it asks
own = request("cellule-4", eps["feedback"]["api"], {"op": "feedback.status", "id": ra})
check(own["ok"] and own["producer"] == A and own["history"], "A reads its own report", own)
for req in ({"op": "feedback.status", "id": rb}, {"op": "feedback.status", "id": rb, "producer": B}):
    other = request("cellule-4", eps["feedback"]["api"], req)
    check(other["ok"] is False and other["code"] == "not_found" and "history" not in other,
          "A asking by B's id", req, other)
listed = request("cellule-4", eps["feedback"]["api"], {"op": "feedback.list", "producer": B})
check(listed["ok"] and listed["producer"] == A and [x["id"] for x in listed["reports"]] == [ra],
      "A's list whatever it asks", listed)

# A's certificate on the feed, asking for B's: it gets its own feed
s = curve_socket(zmq.DEALER, eps["feedback"]["feed"], cert("cellule-4"), fb_cert)
s.send_multipart([b"", pack({"op": "hello", "producer": B, "after": 0})])
got = []
end = time.time() + 5
while time.time() < end and len([m for m in got if m.get("op") == "deliver"]) < 2:
    if s.poll(200):
        got.append(unpack(s.recv_multipart()[-1]))
s.close()
welcome = [m for m in got if m.get("op") == "welcome"]
deliveries = [m for m in got if m.get("op") == "deliver"]
check(welcome and welcome[0]["producer"] == A, "the certificate's feed", welcome)
check([d["key"] for d in deliveries] == [ra, ra] and all(d["body"]["producer"] == A for d in deliveries),
      "only A's changes", deliveries)

# A partner's certificate is refused at the handshake: no answer at all
check(request("uasa", eps["feedback"]["feed"], {"op": "hello", "producer": A}, 1500) is None,
      "partner refused on the feed")
check(request("uasa", eps["feedback"]["api"], {"op": "feedback.status", "id": ra}, 1500) is None,
      "partner refused on the api")

# relais follow as B's certificate, asking for A's: prints B's only
out = relais("follow", "--producer", A, "--json", "--count", "2", "--idle", "5s",
             "--state", os.path.join(bus.dir, "b.state"), who="aurore", timeout=30)
lines = [__import__("json").loads(x) for x in out.stdout.splitlines()]
check(out.returncode == 0 and [x["key"] for x in lines] == [rb, rb], "follow --as aurore", out.stdout, out.stderr)
st = relais("status", "--report", ra, who="aurore")
check(st.returncode == 1 and "not_found" in st.stderr, "status --report of A's id as B", st.stdout, st.stderr)
ok("72-feedback-curve")
