"""Audited access to personal data (RELIABILITY-TESTS T24, CI-sized).

With CURVE on, operations and the router read full records with a stated
purpose: every read is in intake's audit log before the data is sent (who,
role, what, when, why), the HMAC chain verifies, and `relais audit` filters
it. A changed line breaks the chain at that line and intake then refuses to
append (it will not start); a torn last line (a crash mid-write) is removed
and the chain goes on.
"""
import os
import shutil
import subprocess
import time

import zmq

from relais_harness import Bus, binary, check, curve_socket, ok, pack, unpack, sample_signal

bus = Bus("audit", extra="security\n    curve = true\n    certs = certs\n")
RELAIS = binary("relais")
data = os.path.join(bus.dir, "var")
certs = os.path.join(data, "certs")
ENV = dict(os.environ, RELAIS_CONFIG=bus.config)


def relais(*args, who="ops"):
    return subprocess.run([RELAIS, "--as", who, *args], capture_output=True, text=True, env=ENV, timeout=60)


for name, role in (("intake", "service"), ("ops", "operations"), ("router", "service"),
                   ("cellule-18", "producer")):
    check(relais("keygen", name, "--role", role).returncode == 0, "keygen", name)


def start():
    bus.start("intake", wait=False)
    deadline = time.time() + 20
    while relais("status", "--timeout", "300ms").returncode != 0:
        check(time.time() < deadline and bus.procs["intake"].poll() is None, "intake up",
              bus.log_text("intake")[-1500:])
        time.sleep(0.1)


start()
eps = bus.endpoints["intake"]
server = os.path.join(certs, "intake.cert")
prod = curve_socket(zmq.DEALER, eps["submit"], os.path.join(certs, "cellule-18.cert"), server)
ids = []
for i in range(20):
    prod.send_multipart([b"", pack({"op": "submit", "idem": f"a-{i}", "signal": sample_signal(arr=1 + i)})])
    check(prod.poll(5000), "submit answered")
    ids.append(unpack(prod.recv_multipart()[-1])["id"])
prod.close()


def reads(who, purpose, count):
    s = curve_socket(zmq.DEALER, eps["records"], os.path.join(certs, f"{who}.cert"), server)
    for i in range(count):
        s.send_multipart([b"", pack({"op": "signal.get", "id": ids[i % len(ids)], "purpose": purpose})])
        check(s.poll(5000), "read answered")
        r = unpack(s.recv_multipart()[-1])
        check(r["ok"], "read served", r)
    s.close()


reads("ops", "coordination", 200)
reads("router", "routing", 100)
audit_file = os.path.join(data, "intake-audit.log")
lines = open(audit_file).read().splitlines()
check(len(lines) == 300, "every read audited", len(lines))
check('"who":"ops","role":"operations","action":"record_read"' in lines[0]
      and '"purpose":"coordination"' in lines[0], "who, role, what, why", lines[0])
run = relais("audit", "--verify")
check(run.returncode == 0 and "intact, 300 entries" in run.stdout, "the chain verifies", run.stdout, run.stderr)
run = relais("audit", "--who", "router", "--last", "3")
got = run.stdout.splitlines()
check(len(got) == 3 and all('"who":"router"' in l for l in got) and '"n":300' in got[-1], "filters", got)
run = relais("audit", "--key", ids[0])
check(len(run.stdout.splitlines()) == 15, "by id", len(run.stdout.splitlines()))   # 10 + 5 reads of ids[0]

check(bus.stop("intake") == 0, "stop")
# Tampering: one character of line 150 changed
original = open(audit_file).read()
tampered = original.splitlines(keepends=True)
tampered[149] = tampered[149].replace('"purpose":"coordination"', '"purpose":"coordinatioN"', 1) \
    if "coordination" in tampered[149] else tampered[149].replace("routing", "routinG", 1)
open(audit_file, "w").write("".join(tampered))
run = relais("audit", "--verify")
check(run.returncode == 1 and "BROKEN at line 150" in run.stdout, "tampering detected at its line", run.stdout)
bus.start("intake", wait=False)
rc = bus.procs["intake"].wait(20)
check(rc != 0 and "refusing to append" in bus.log_text("intake"), "intake will not append to a broken chain")
bus.procs.pop("intake")

# A torn last line (crash mid-write) is removed; the chain goes on
open(audit_file, "w").write(original + '{"n":301,"ts":1,"who":"ops","ro')
start()
reads("ops", "coordination", 1)
run = relais("audit", "--verify")
check(run.returncode == 0 and "intact, 301 entries" in run.stdout, "torn tail dropped, chain continues", run.stdout)
check("torn last line" in bus.log_text("intake"), "and said so")
check(bus.stop("intake") == 0, "clean stop")
ok("16-audit")
