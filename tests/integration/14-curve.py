"""CURVE identities and roles (RELIABILITY-TESTS T15, T16; issue: security).

With security/curve on, intake admits a connection only with a certificate
of the roster, and only on the endpoints its role may use. Counted: every
attempt with no certificate, an unknown key, or the wrong role - none may
submit, subscribe or fetch. A producer's source is its certificate's,
whatever its report claims. A readable secret or an empty roster keeps
intake from starting.
"""
import json
import os
import re
import shutil
import stat
import subprocess
import time

import zmq

from relais_harness import Bus, binary, check, curve_socket, ok, pack, unpack, sample_signal

SECURITY = "security\n    curve = true\n    certs = certs\n"
bus = Bus("curve", extra=SECURITY)
RELAIS = binary("relais")
data = os.path.join(bus.dir, "var")
certs = os.path.join(data, "certs")
ENV = dict(os.environ, RELAIS_CONFIG=bus.config)


def relais(*args, who="ops", timeout=60):
    return subprocess.run([RELAIS, "--as", who, *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def keygen(name, *args, folder=None):
    extra = ["--dir", folder] if folder else []
    r = relais("keygen", name, *args, *extra)
    check(r.returncode == 0, "keygen", name, r.stderr)


keygen("intake", "--role", "service")
keygen("ops", "--role", "operations")
keygen("cellule-18", "--role", "producer", "--source", "cellule:Cellule 18e")
keygen("uasa", "--role", "partner", "--partner", "uasa")
elsewhere = os.path.join(bus.dir, "elsewhere")
keygen("stranger", "--role", "producer", folder=elsewhere)
r = relais("keygen", "ops", "--role", "operations")
check(r.returncode == 1 and "never overwritten" in r.stderr, "keygen never overwrites", r.stderr)
r = relais("keygen", "bad", "--role", "king")
check(r.returncode == 1, "keygen refuses an unknown role")
check(stat.S_IMODE(os.stat(os.path.join(certs, "ops.cert_secret")).st_mode) == 0o600, "secret is 0600")


SERVER_CERT = os.path.join(certs, "intake.cert")


def client(kind, endpoint, cert=None):
    return curve_socket(kind, endpoint, cert, SERVER_CERT)


def answered(endpoint, cert, req, wait_ms=400):
    s = client(zmq.DEALER, endpoint, cert)
    try:
        s.send_multipart([b"", pack(req)], zmq.NOBLOCK)
    except zmq.Again:
        s.close()
        return False
    got = s.poll(wait_ms)
    reply = unpack(s.recv_multipart()[-1]) if got else None
    s.close()
    return reply


def heard(endpoint, cert, wait_ms=800):
    s = client(zmq.SUB, endpoint, cert)
    got = s.poll(wait_ms)
    s.close()
    return bool(got)


bus.start("intake", wait=False)
deadline = time.time() + 20
while relais("status", "--timeout", "300ms").returncode != 0:
    check(time.time() < deadline and bus.procs["intake"].poll() is None, "intake up with CURVE",
          bus.log_text("intake")[-2000:])
    time.sleep(0.1)

eps = bus.endpoints["intake"]
# The admitted ones work
sig = sample_signal(arr=18, source={"kind": "115", "name": "115 de Paris"})
run = subprocess.run([RELAIS, "--as", "cellule-18", "submit", "--idem", "c18-1", "-"],
                     input=json.dumps(sig), capture_output=True, text=True, env=ENV, timeout=30)
ack = json.loads(run.stdout)
check(ack["ok"], "a producer with its certificate submits", run.stdout, run.stderr)
ev = json.loads(relais("fetch", "--from", "1", "--json").stdout.splitlines()[-1])
check(ev["body"]["source"] == {"kind": "cellule", "name": "Cellule 18e"},
      "the source is the certificate's, not the report's", ev["body"]["source"])
rec = answered(eps["records"], os.path.join(certs, "ops.cert"), {"op": "signal.get", "id": ack["id"]}, 3000)
check(rec and rec["ok"], "operations read a full record", rec)
check(f"record_read id={ack['id']} peer=ops" in bus.log_text("intake"), "the read is logged with who")
check(heard(eps["pub"], os.path.join(certs, "ops.cert")), "operations hear the bus")

# Idempotency is per producer: another producer's identical idem is its own
keygen("cellule-11", "--role", "producer", "--source", "cellule:Cellule 11e")
# (the roster is read at start: restart to admit the new certificate)
check(bus.stop("intake") == 0, "restart for the new certificate")
bus.start("intake", wait=False)
while relais("status", "--timeout", "300ms").returncode != 0:
    time.sleep(0.1)
run = subprocess.run([RELAIS, "--as", "cellule-11", "submit", "--idem", "c18-1", "-"],
                     input=json.dumps(sample_signal(arr=11)), capture_output=True, text=True, env=ENV)
other = json.loads(run.stdout)
check(other["ok"] and not other["duplicate"] and other["id"] != ack["id"], "idem scoped per producer", other)

# Refused: count every attempt, none may succeed
submit = {"op": "submit", "idem": "x", "signal": sample_signal()}
attempts = successes = curve_attempts = 0
cases = [
    ("no certificate, submit", lambda: answered(eps["submit"], None, submit), False),
    ("no certificate, fetch", lambda: answered(eps["fetch"], None, {"op": "status"}), False),
    ("no certificate, subscribe", lambda: heard(eps["pub"], None), False),
    ("unknown key, submit", lambda: answered(eps["submit"], os.path.join(elsewhere, "stranger.cert"), submit), True),
    ("partner, submit", lambda: answered(eps["submit"], os.path.join(certs, "uasa.cert"), submit), True),
    ("producer, subscribe", lambda: heard(eps["pub"], os.path.join(certs, "cellule-18.cert")), True),
    ("producer, fetch", lambda: answered(eps["fetch"], os.path.join(certs, "cellule-18.cert"), {"op": "fetch", "from": 1}), True),
    ("producer, records", lambda: answered(eps["records"], os.path.join(certs, "cellule-18.cert"), {"op": "signal.get", "id": ack["id"]}), True),
    ("partner, records", lambda: answered(eps["records"], os.path.join(certs, "uasa.cert"), {"op": "signal.get", "id": ack["id"]}), True),
]
for name, attempt, curve in cases:
    for _ in range(5):
        attempts += 1
        curve_attempts += curve
        if attempt():
            successes += 1
            print("ADMITTED:", name)
check(successes == 0, "no refused identity got through", successes, attempts)
time.sleep(0.5)
refused = bus.log_text("intake").count("connection refused")
check(refused >= curve_attempts, "every CURVE attempt refused by the handler is logged", refused, curve_attempts)
print(f"attempts={attempts} (CURVE {curve_attempts}) successes={successes} refusals logged={refused}")
run = relais("fetch", "--from", "1", "--json")
check(len(run.stdout.splitlines()) == 2, "nothing else was stored", run.stdout)
check(bus.stop("intake") == 0, "intake stops")

# T16: refuses to start without a trustworthy roster
secret = os.path.join(certs, "uasa.cert_secret")
os.chmod(secret, 0o644)
bus.start("intake", wait=False)
rc = bus.procs["intake"].wait(20)
check(rc != 0 and "can be read by others" in bus.log_text("intake"), "a readable secret refuses start", rc)
bus.procs.pop("intake")
os.chmod(secret, 0o600)
shutil.move(certs, certs + ".away")
os.makedirs(certs)
bus.start("intake", wait=False)
rc = bus.procs["intake"].wait(20)
check(rc != 0 and "no certificate" in bus.log_text("intake"), "an empty roster refuses start", rc)
bus.procs.pop("intake")
ok("14-curve")
