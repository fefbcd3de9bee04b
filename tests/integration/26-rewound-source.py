"""A source whose store is replaced by an older copy (an operator restored
intake from yesterday's backup, and only intake) must not make the router
skip or misread reports: intake numbers its new events with sequences the
router already applied. The router notices that intake's log ends before
its checkpoint, says so in its log and its status (`rewound`), applies
nothing more from intake - also after a restart, also once intake's
sequences pass the checkpoint again - and the other way round a router
restored from the same copy follows again."""
import os
import shutil
import time

from relais_harness import Bus, check, ok, sample_signal

bus = Bus("rewound", services=["intake", "router"])
bus.start("intake")
bus.start("router")


def submit(n, tag):
    for i in range(n):
        r = bus.submit(signal=sample_signal(arr=1 + i % 20), idem=f"{tag}-{i}")
        check(r.get("ok"), "submit", r)


def router_source():
    st = bus.request(bus.endpoints["router"]["fetch"], {"op": "status"})
    return next(s for s in st["sources"] if s["src"] == "intake")


var = os.path.join(bus.dir, "var")
submit(20, "a")
bus.wait_caught_up("router", ["intake"])
# The copy both services will be restored from: taken with both stopped
bus.stop("intake")
bus.stop("router")
shutil.copytree(os.path.join(var, "intake"), os.path.join(bus.dir, "intake-at-20"))
shutil.copytree(os.path.join(var, "router"), os.path.join(bus.dir, "router-at-20"))
bus.start("intake")
bus.start("router")
submit(30, "b")
check(bus.wait_caught_up("router", ["intake"])["intake"] == 50, "router at 50")

# Intake alone goes back to 20
bus.stop("intake")
shutil.rmtree(os.path.join(var, "intake"))
shutil.copytree(os.path.join(bus.dir, "intake-at-20"), os.path.join(var, "intake"))
bus.start("intake")
deadline = time.time() + 20
while time.time() < deadline and not router_source().get("rewound"):
    time.sleep(0.1)
src = router_source()
check(src.get("rewound") is True and src["applied"] == 50, "the router holds intake as rewound", src)
check("source rewound src=intake" in bus.log_text("router"), "and says so in its log")
# New reports take sequences 21.. and soon pass the checkpoint: none applied
submit(40, "c")
time.sleep(1.5)
src = router_source()
check(src["applied"] == 50 and src["rewound"], "nothing applied past the hold", src)
bus.stop("router")
bus.start("router")
time.sleep(1)
src = router_source()
check(src["applied"] == 50 and src["rewound"], "the hold survives a restart", src)

# The operator restores the router from the same copy: it follows again
bus.stop("router")
shutil.rmtree(os.path.join(var, "router"))
shutil.copytree(os.path.join(bus.dir, "router-at-20"), os.path.join(var, "router"))
bus.start("router")
applied = bus.wait_caught_up("router", ["intake"])
check(applied["intake"] == 60 and not router_source()["rewound"], "a router restored alike follows", applied)
bus.close()
ok("26-rewound-source")
