"""No personal data on the bus, nor in the logs (DOMAIN.md; T25, CI-sized).

A simulated day (2,000 requests: submits, updates, closes) goes through
intake. The simulator lists every personal string it generated (names,
phones, contacts, addresses, summaries, SIAO ids, escalation reasons). None
may appear in any event on the bus - live (SUB) or from the log (fetch) - nor
in intake's log file; the full records keep them (the data is there, just
not broadcast). Core dumps are off for the services (RLIMIT_CORE = 0).
"""
import json
import os
import resource
import subprocess
import threading

import msgpack
import zmq

from relais_harness import CTX, Bus, binary, check, ok

# Allow core dumps in the environment: intake must turn them off itself
resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)) \
    if os.geteuid() == 0 else None
bus = Bus("privacy")
bus.start("intake")
eps = bus.endpoints["intake"]
personal_out = os.path.join(bus.dir, "personal.ndjson")

live = []
stop = threading.Event()


def listen():
    s = CTX.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.setsockopt(zmq.RCVHWM, 0)
    s.connect(eps["pub"])
    while not stop.is_set():
        if s.poll(100):
            live.append(b"".join(s.recv_multipart()))
    s.close(0)


t = threading.Thread(target=listen)
t.start()
run = subprocess.run([binary("relais"), "--config", bus.config, "simulate", "--seed", "7",
                      "--count", "2000", "--rate", "0", "--personal-out", personal_out, "--json", "-q"],
                     capture_output=True, text=True, timeout=600)
check(run.returncode == 0, "simulate ran", run.stderr[-1000:])
summary = json.loads(run.stdout)
stop.set()
t.join()

personal = [json.loads(l) for l in open(personal_out) if l.strip()]
# Short strings (a sex letter, "F") would match anything: the canaries are
# the strings of 6 bytes or more
canaries = sorted({p for p in personal if len(p.encode()) >= 6})
check(len(canaries) > 500, "the simulator produced personal data", len(canaries))

logged = bus.fetch_all()
blob = b"\n".join(live) + b"\n" + b"\n".join(msgpack.packb(e, use_bin_type=True) for e in logged)
hits = [c for c in canaries if c.encode() in blob]
check(not hits, "no personal string on the bus", hits[:5])
check(len(logged) >= 2000 and len(live) >= 2000, "the bus carried the day", len(logged), len(live))
check(any(e["type"] == "signal.updated" for e in logged) and any(e["type"] == "signal.closed" for e in logged),
      "updates and closes were covered")

# The data is kept where it is needed: intake's full records hold it
with_people = [e for e in logged if e["type"] == "signal.created" and e["body"].get("person_refs")]
rec = bus.request(eps["records"], {"op": "signal.get", "id": with_people[0]["key"]})
check(rec["ok"] and rec["record"]["signal"].get("people"), "the full record keeps the people", rec)

with open(f"/proc/{bus.procs['intake'].pid}/limits") as f:
    core = [l for l in f if l.startswith("Max core file size")][0].split()
check(core[4] == "0", "intake runs with core dumps off", core)
check(bus.stop("intake") == 0, "clean stop")
text = bus.log_text("intake")
leaks = [c for c in canaries if c in text]
check(not leaks, "no personal string in intake's log", leaks[:5])
print(f"events={len(logged)} live={len(live)} canaries={len(canaries)} hits=0 acked={summary.get('acked')}")
ok("15-privacy")
