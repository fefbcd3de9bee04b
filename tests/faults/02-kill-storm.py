"""kill -9 storm across the bus (RELIABILITY-TESTS T1; issue: faults).

Four producers submit reports that they retry until acked, with stable idem
keys, while a random process of the bus - intake, router, plans, analytics,
feedback, a partner's notifier or the producer's - is killed with -9 every 0.5 to 2 s and restarted.
At the end:
- intake's log holds every acked report exactly once, contiguous;
- the router assigned every report, and no report twice to one partner;
- every notifier wrote each of its deliveries exactly once;
- plans, killed and restarted, holds the same plans as a fresh plans that
  replays the logs from sequence 1;
- analytics holds the same aggregates as a rebuild from the logs;
- feedback, killed and restarted, gives every report the same status as a
  fresh feedback replaying the logs, and the producer's webhook end
  (relais-notify --producer, killed too) wrote each status change of its
  feed exactly once.
It prints one row of figures. CI: 4 x 2,500 reports; RELAIS_SOAK=1: 4 x 25,000.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time

from relais_harness import Bus, Producer, binary, check, fault_row, ok, sample_signal

SOAK = os.environ.get("RELAIS_SOAK") == "1"
PER_PRODUCER = 25000 if SOAK else 2500
PARTNERS = ["mus", "uasa", "samu_social", "maraudes", "sdppe", "drihl"]
SERVICES = ["intake", "router", "plans", "analytics", "feedback"]
PRODUCER = "115:115 de Paris"           # sample_signal's source: every report's producer

bus = Bus("storm", services=SERVICES)
for svc in SERVICES:
    bus.start(svc)
notify_procs = {}


def start_notifier(p):
    log = open(os.path.join(bus.dir, f"notify-{p}.log"), "ab")
    notify_procs[p] = subprocess.Popen(
        [binary("relais-notify"), "--config", bus.config, "--partner", p,
         "--sink", f"file:{os.path.join(bus.dir, 'partner-' + p + '.ndjson')}"],
        stdout=log, stderr=log)


for p in PARTNERS:
    start_notifier(p)


def start_follower():
    log = open(os.path.join(bus.dir, "notify-producer.log"), "ab")
    notify_procs["producer"] = subprocess.Popen(
        [binary("relais-notify"), "--config", bus.config, "--producer", PRODUCER,
         "--sink", f"file:{os.path.join(bus.dir, 'producer.ndjson')}"],
        stdout=log, stderr=log)


start_follower()

rnd = random.Random(20261123)


def report(k, i):
    r = rnd.random()
    extra = {}
    if r < 0.15:
        extra = {"publics": ["famille", "enfant"], "persons": 4, "minors": 2}
    elif r < 0.25:
        extra = {"tents": 5, "persons": 7, "place": {"arrondissement": 1 + i % 20, "kind": "talus"}}
    elif r < 0.35:
        extra = {"place": {"arrondissement": 1 + i % 20, "kind": "domaine_municipal"}}
    return {"op": "submit", "idem": f"storm-{k}-{i}", "signal": sample_signal(arr=1 + (i * 7 + k) % 20, **extra)}


batches = [[report(k, i) for i in range(PER_PRODUCER)] for k in range(4)]
producers = [Producer(bus.endpoints["intake"]["submit"], window=100, timeout=2.0) for _ in range(4)]
done = threading.Event()
kills = {name: 0 for name in SERVICES + ["notify"]}


def storm():
    victims = []
    while not done.is_set():
        time.sleep(rnd.uniform(0.5, 2.0))
        if done.is_set():
            break
        if not victims:                 # every kind in turn, in a random order
            victims = SERVICES + ["notify"]
            rnd.shuffle(victims)
        victim = victims.pop()
        if victim == "notify":
            p = rnd.choice(PARTNERS + ["producer"])
            notify_procs[p].kill()
            notify_procs[p].wait()
            start_follower() if p == "producer" else start_notifier(p)
        else:
            bus.kill9(victim)
            bus.start(victim)
        kills[victim if victim != "notify" else "notify"] += 1


killer = threading.Thread(target=storm)
killer.start()
start = time.time()
RATE = 250                              # per producer, per second


def feed(producer, batch):
    """Paced, so that the storm hits a bus in motion."""
    for i in range(0, len(batch), 50):
        t0 = time.time()
        producer.run(batch[i:i + 50], deadline=1200)
        time.sleep(max(0.0, 50 / RATE - (time.time() - t0)))


threads = [threading.Thread(target=feed, args=(p, b)) for p, b in zip(producers, batches)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.time() - start
time.sleep(3)                           # and while downstream catches up
deadline = time.time() + 60             # every kind gets its kill, even on a fast machine
while time.time() < deadline and not all(n > 0 for n in kills.values()):
    time.sleep(0.5)
done.set()
killer.join()
for name in SERVICES:
    if bus.procs.get(name) is None or bus.procs[name].poll() is not None:
        bus.start(name)
check(all(n > 0 for n in kills.values()), "every kind of process was killed", kills)
total = 4 * PER_PRODUCER
acked = {}
for p in producers:
    check(not p.errors, "no error replies", list(p.errors.items())[:3])
    acked.update({idem: r["id"] for idem, r in p.acks.items()})
check(len(acked) == total, "every report acked", len(acked))

# 1. intake: exactly once, contiguous
t0 = time.time()
intake_log = bus.fetch_all("intake")
check([e["seq"] for e in intake_log] == list(range(1, len(intake_log) + 1)), "intake log contiguous")
created = [e["key"] for e in intake_log if e["type"] == "signal.created"]
check(len(created) == len(set(created)) == total and set(created) == set(acked.values()),
      "every acked report in intake's log exactly once", len(created), len(set(created)))

# 2. router: every report assigned, never twice to one partner
bus.wait_caught_up("router", ["intake"])
routed = [e for e in bus.fetch_all("router") if e["type"] == "route.assigned"]
pairs = [(e["key"], e["body"]["partner"]) for e in routed]
check(len(pairs) == len(set(pairs)), "no report assigned twice to a partner", len(pairs) - len(set(pairs)))
check({k for k, _ in pairs} == set(created), "every report routed", len(set(created) - {k for k, _ in pairs}))

# 3. notifiers: each delivery once
expected = {p: sum(1 for _, q in pairs if q == p) for p in PARTNERS}
deadline = time.time() + 120
def written(p):
    path = os.path.join(bus.dir, f"partner-{p}.ndjson")
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []
while time.time() < deadline and any(len(written(p)) < expected[p] for p in PARTNERS):
    time.sleep(0.5)
for p in PARTNERS:
    got = written(p)
    keys = [d["key"] for d in got]
    check(len(keys) == len(set(keys)) == expected[p], f"{p}: every delivery exactly once",
          len(keys), len(set(keys)), expected[p])
recovered = time.time() - t0

# 4. feedback: every status change reached the producer's end once, and
#    the killed feedback equals a fresh replay
bus.wait_caught_up("feedback", ["intake", "router", "plans"])
changes = [e for e in bus.fetch_all("feedback") if e["type"] == "status.changed"]
deadline = time.time() + 120
def followed():
    path = os.path.join(bus.dir, "producer.ndjson")
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []
while time.time() < deadline and len(followed()) < len(changes):
    time.sleep(0.5)
got = followed()
mseqs = [d["mseq"] for d in got]
check(mseqs == list(range(1, len(changes) + 1)), "the producer got every status change once, in order",
      len(mseqs), len(set(mseqs)), len(changes))
check({d["key"] for d in got} == set(created), "about every report", len({d["key"] for d in got}))


def statuses():
    out, after = {}, ""
    while True:
        req = {"op": "feedback.list", "producer": PRODUCER, "limit": 1000}
        if after:
            req["after"] = after
        r = bus.request(bus.endpoints["feedback"]["api"], req, timeout=30)
        check(r.get("ok"), "feedback.list", r)
        for rep in r["reports"]:
            out[rep["id"]] = (rep["status"], rep["outcome"])
        if not r["more"]:
            return out
        after = r["reports"][-1]["id"]


survived = statuses()
check(set(survived) == set(created), "feedback knows every report", len(survived))
check(bus.stop("feedback") == 0, "feedback stops")
store = os.path.join(bus.dir, "var", "feedback")
shutil.move(store, store + ".stormed")
bus.start("feedback")
bus.wait_caught_up("feedback", ["intake", "router", "plans"])
fresh = statuses()
differ = [k for k in survived if survived[k] != fresh.get(k)]
check(not differ, "feedback after the storm equals a fresh replay", len(differ),
      [(k, survived[k], fresh.get(k)) for k in differ[:3]])

# 5. analytics: live equals rebuild. Before plans is replayed below: a
#    source whose log is replaced under its subscribers (a store restored
#    from an older copy) leaves them ahead of it.
bus.wait_caught_up("plans", ["intake", "router"])
bus.wait_caught_up("analytics", ["intake", "router", "plans"])
check(bus.stop("analytics") == 0, "analytics stops")


def analytics(*args):
    return subprocess.run([binary("relais-analytics"), "--config", bus.config, *args],
                          capture_output=True, text=True, timeout=600)


live = analytics("--dump")
rebuilt_dir = os.path.join(bus.dir, "rebuilt")
r = analytics("--rebuild", "--store", rebuilt_dir)
check(r.returncode == 0, "rebuild", r.stderr[-1000:])
rebuilt = analytics("--dump", "--store", rebuilt_dir)
check(live.stdout and live.stdout == rebuilt.stdout, "analytics equals a rebuild",
      len(live.stdout.splitlines()), len(rebuilt.stdout.splitlines()))

# 6. plans: the killed one equals a fresh replay. The notifiers stop first:
#    an ack they still send would reach the router's log between the two
#    dumps, and the fresh replay would hold one entry more than the first.
for p in notify_procs.values():
    p.terminate()
    p.wait()
bus.wait_caught_up("plans", ["intake", "router"])
check(bus.stop("plans") == 0, "plans stops")


def plans_dump():
    """Whole plans, history included: plans keeps a route event that comes
    ahead of its report and replays it, and orders history by event time,
    so the order in which the two sources' events arrived does not show."""
    out = subprocess.run([binary("relais-plans"), "--config", bus.config, "--dump"],
                         capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


survived = plans_dump()
store = os.path.join(bus.dir, "var", "plans")
shutil.move(store, store + ".stormed")
bus.start("plans")
bus.wait_caught_up("plans", ["intake", "router"])
check(bus.stop("plans") == 0, "fresh plans stops")
fresh = plans_dump()
check(survived and survived == fresh, "plans after the storm equal a fresh replay",
      len(survived), len(fresh), [(a, b) for a, b in zip(survived, fresh) if a != b][:1])
fault_row("kill -9 storm (T1)", total, f"{sum(kills.values())} kills -9 {kills}", 0, 0,
          f"downstream complete {recovered:.1f} s after the feed", "plans and feedback = replay, analytics = rebuild")
ok("02-kill-storm")
