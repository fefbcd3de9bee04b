"""Deadlines through the real relais-plans, time driven by
RELAIS_FAKE_TIME_US (the injectable clock): an action due at T raises
exactly one plan.action_overdue after T - also when plans is killed -9
and restarted before T (the persisted due date survives), and when it was
down at T and restarts after it (raised at once, once); a quiet plan
raises plan.stale once per quiet period, across restarts too."""
import re
import time

from relais_harness import Bus, check, now_us, ok
from plans_util import plans_status, situation_report, wait_caught_up

DAY = 86_400_000_000

bus = Bus("plans-deadline", services=["intake", "plans"])
cfg = open(bus.config).read()
cfg = re.sub(r"^plans$", "plans\n    overdue_check = 300ms\n    stale_after = 2d", cfg, flags=re.M)
open(bus.config, "w").write(cfg)
api = bus.endpoints["plans"]["api"]

F0 = now_us()


def start_plans(at_us):
    bus.start("plans", env={"RELAIS_FAKE_TIME_US": str(at_us)})


def overdue(action=None):
    return [e for e in bus.fetch_all("plans") if e["type"] == "plan.action_overdue"
            and (action is None or e["body"]["action"] == action)]


def stale():
    return [e for e in bus.fetch_all("plans") if e["type"] == "plan.stale"]


def wait_for(what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if what():
            return
        time.sleep(0.1)
    check(False, "timed out waiting", what)


bus.start("intake")
start_plans(F0)
sig = bus.submit(situation_report(3, 0))
wait_caught_up(bus)
pid = bus.request(api, {"op": "plans.list"})["plans"][0]["id"]

plans_now = plans_status(bus)["ts"]                # plans' (fake) clock
due_a = F0 + 3 * DAY
due_b = plans_now + 2_500_000
for due in (due_a, due_b):
    r = bus.request(api, {"op": "plans.action_add", "id": pid, "kind": "mise_a_l_abri",
                          "owner": "samu-social", "due": due, "by": "mus:test"})
    check(r["ok"], "action added", r)

# Restart before T (B falls due while the new process runs)
bus.kill9("plans")
start_plans(plans_now + 1_000_000)
wait_for(lambda: overdue(2))
time.sleep(1.0)                                     # several more checks
check(len(overdue(2)) == 1 and len(overdue(1)) == 0, "B once, A not yet", overdue())
check(overdue(2)[0]["body"] == {"action": 2, "owner": "samu-social", "due": due_b}, "overdue body", overdue(2))
check(not stale(), "not stale yet")

# Down at T: A fell due while plans was down; raised at restart, once
bus.kill9("plans")
start_plans(F0 + 5 * DAY)
wait_for(lambda: overdue(1))
wait_for(lambda: stale())
time.sleep(1.0)
check(len(overdue(1)) == 1 and len(overdue(2)) == 1, "A once after the restart", overdue())
check(len(stale()) == 1, "stale once", stale())

# Restarted again later: nothing is raised twice
bus.kill9("plans")
start_plans(F0 + 6 * DAY)
wait_caught_up(bus)
time.sleep(1.5)
check(len(overdue(1)) == 1 and len(overdue(2)) == 1, "no second overdue", overdue())
check(len(stale()) == 1, "no second stale in the same quiet period", stale())
shown = bus.request(api, {"op": "plans.get", "id": pid})
check(all(a["overdue"] for a in shown["plan"]["actions"]), "both marked overdue", shown["plan"]["actions"])
check(shown["overdue"] == 2, "both still pending and late", shown)

# Activity, then another quiet period: one more plan.stale
r = bus.request(api, {"op": "plans.note", "id": pid, "text": "appel", "by": "mus:test"})
check(r["ok"], "note", r)
check(bus.stop("plans") == 0, "clean stop")
start_plans(F0 + 9 * DAY)
wait_for(lambda: len(stale()) == 2)
check(bus.stop("plans") == 0, "clean stop")
check(bus.stop("intake") == 0, "intake clean stop")
ok("32-plans-deadline")
