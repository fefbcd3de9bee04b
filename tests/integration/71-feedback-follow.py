"""Feedback: `relais follow` is a durable feed. A producer's follower killed
(-9) and restarted gets every status change it missed, once; feedback
itself killed (-9) while reports flow loses and doubles nothing. The
follower of producer B never prints A's reports. `relais status --report`
shows a report's timeline at a glance, and only to its producer when
asked for one."""
import atexit
import json
import os
import select
import signal
import subprocess
import time

from relais_harness import Bus, binary, check, ok, sample_signal
from router_helpers import Partner

bus = Bus("feedback-follow", services=["intake", "router", "feedback"])
for svc in ("intake", "router", "feedback"):
    bus.start(svc)
eps = bus.endpoints
A = "115:115 de Paris"
B = "association:Aurore"
out = os.path.join(bus.dir, "follow-a.ndjson")
state = os.path.join(bus.dir, "follow-a.state")


children = []


@atexit.register
def end_children():
    # A failed check exits early: end the followers this test started
    for p in children:
        if p.poll() is None:
            p.kill()
            p.wait()


def follow(producer, *args):
    log = open(os.path.join(bus.dir, "follow.log"), "ab")
    children.append(subprocess.Popen([binary("relais"), "--config", bus.config, "follow", "--producer", producer, *args],
                            stdout=subprocess.PIPE if "--out" not in args else log, stderr=log))
    return children[-1]


def lines():
    if not os.path.exists(out):
        return []
    with open(out) as f:
        return [json.loads(x) for x in f.read().splitlines() if x.strip()]


def wait_lines(n, timeout=60):
    end = time.time() + timeout
    while time.time() < end and len(lines()) < n:
        time.sleep(0.1)
    return lines()


def expected(producer):
    """Status changes of producer's reports, in feedback's order."""
    evs = bus.fetch_all("feedback")
    return [(e["key"], e["body"]["status"]) for e in evs if e["body"]["producer"] == producer]


def submit_many(n, tag, source=None):
    for i in range(n):
        sig = sample_signal(arr=1 + i % 20)
        if source:
            sig["source"] = source
        r = bus.submit(sig, idem=f"{tag}-{i}")
        check(r["ok"], "submitted", r)


# A's follower starts; 10 reports (recu, qualifie, oriente each)
a = follow(A, "--out", out, "--state", state)
b = follow(B, "--json", "--state", os.path.join(bus.dir, "follow-b.state"))
submit_many(10, "a1")
wait_lines(10)
a.send_signal(signal.SIGKILL)               # in the middle of its stream, maybe
a.wait()
first = len(lines())
check(first >= 10, "some lines before the kill", first)
# More happens while A's follower is down, and feedback itself dies once
submit_many(10, "a2")
cell = [Partner(eps["router"]["partners"], f"cellule-{k}") for k in (1, 2, 3)]
bus.kill9("feedback")
submit_many(5, "a3")
submit_many(3, "b1", source={"kind": "association", "name": "Aurore"})
for p in cell:
    p.collect(1)
bus.start("feedback")
bus.wait_caught_up("feedback", ["intake", "router"])
want = expected(A)
check(len(want) >= 75, "every change of A's 25 reports on feedback's log", len(want))
a = follow(A, "--out", out, "--state", state)
got = wait_lines(len(want))
time.sleep(1.0)                              # anything more would be a duplicate
a.send_signal(signal.SIGTERM)
check(a.wait(20) == 0, "follow stops on SIGTERM")
got = lines()
check([x["mseq"] for x in got] == list(range(1, len(want) + 1)), "mseq 1..n, no gap, no duplicate",
      [x["mseq"] for x in got][:5], len(got), len(want))
check([(x["key"], x["body"]["status"]) for x in got] == want, "the same changes in the same order")
check(all(x["producer"] == A and x["body"]["producer"] == A for x in got), "only A's")
# feedback's restart repeated nothing: one event per change per report
per = {}
for key, status in want:
    per.setdefault(key, []).append(status)
for key, sts in per.items():
    check(sts[:3] == ["recu", "qualifie", "oriente"] and len(sts) == len(set(sts)), "once each", key, sts)

# B's follower printed B's 3 reports only and none of A's
want_b = expected(B)
check(len(want_b) >= 9 and len({k for k, _ in want_b}) == 3, "B's changes", want_b)
end = time.time() + 20
raw = b""
while time.time() < end and raw.count(b"\n") < len(want_b):
    r, _, _ = select.select([b.stdout], [], [], 0.2)
    if r:
        raw += os.read(b.stdout.fileno(), 65536)
b_lines = [json.loads(x) for x in raw.decode().splitlines()]
b.send_signal(signal.SIGTERM)
b.wait(20)
check([(x["key"], x["body"]["status"]) for x in b_lines] == want_b, "B's follower: B's changes", b_lines)
check(not {x["key"] for x in b_lines} & {k for k, _ in want}, "no report of A in B's feed")

# A person's view: human lines (a feed has one ack level, like a partner's
# mailbox: this follower starts after what B's acked), then one report's timeline
submit_many(1, "b2", source={"kind": "association", "name": "Aurore"})
human = subprocess.run([binary("relais"), "--config", bus.config, "follow", "--producer", B,
                        "--state", os.path.join(bus.dir, "human.state"), "--count", "3"],
                       capture_output=True, text=True, timeout=30)
check(human.returncode == 0 and len(human.stdout.splitlines()) == 3, "follow --count 3", human.stdout, human.stderr)
check("recu" in human.stdout.splitlines()[0] and "qualifie" in human.stdout, "human lines", human.stdout)
key = want_b[0][0]
st = subprocess.run([binary("relais"), "--config", bus.config, "status", "--report", key],
                    capture_output=True, text=True, timeout=30)
check(st.returncode == 0 and key in st.stdout and "oriente" in st.stdout and "cellule-" in st.stdout,
      "status --report", st.stdout, st.stderr)
st = subprocess.run([binary("relais"), "--config", bus.config, "status", "--report", key, "--producer", A],
                    capture_output=True, text=True, timeout=30)
check(st.returncode == 1 and "not_found" in st.stderr and "oriente" not in st.stdout, "another producer's id",
      st.stdout, st.stderr)
st = subprocess.run([binary("relais"), "--config", bus.config, "status", "--report", key, "--json"],
                    capture_output=True, text=True, timeout=30)
check(st.returncode == 0 and json.loads(st.stdout)["producer"] == B, "status --report --json", st.stdout)
# Operations watching the bus see each report's status in `relais tail`
tail = subprocess.run([binary("relais"), "--config", bus.config, "tail", "--src", "feedback",
                       "--from", "1", "--count", "2"], capture_output=True, text=True, timeout=30)
check(tail.returncode == 0 and "status.changed" in tail.stdout and "status recu" in tail.stdout,
      "relais tail shows the status", tail.stdout, tail.stderr)
bad = subprocess.run([binary("relais"), "--config", bus.config, "follow", "--producer", "martien"],
                     capture_output=True, text=True, timeout=30)
check(bad.returncode == 2, "bad producer is a usage error", bad.returncode)
for p in cell:
    p.close()
ok("71-feedback-follow")
