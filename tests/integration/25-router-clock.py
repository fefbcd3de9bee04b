"""Router time comes from the injectable clock (RELAIS_FAKE_TIME_US): an
hour-range rule holds at the router's (fake) local hour and not outside
it, and due dates are computed from that clock."""
import calendar
import time

from relais_harness import Bus, check, ok, sample_signal
from router_helpers import router_section, wait_events

day = time.gmtime()
night = calendar.timegm((day.tm_year, day.tm_mon, day.tm_mday, 3, 30, 0)) * 1_000_000


def routed(fake_us):
    bus = Bus("clock", services=["intake", "router"])
    router_section(bus, """    rules
        nuit
            hours = 22-6
            partners = veille-nuit
            deadline = 1h
        tout
            partners = mus
""")
    env = {"RELAIS_FAKE_TIME_US": str(fake_us), "TZ": "UTC"}
    bus.start("intake")
    bus.start("router", env=env)
    sig = sample_signal(arr=2)
    sig["observed_at"] = int(time.time() * 1e6) - 60_000_000
    r = bus.submit(sig)
    check(r.get("ok"), "submit", r)
    evs = wait_events(bus, lambda e: any(x["body"]["partner"] == "mus" for x in e if x["type"] == "route.assigned"))
    bus.stop("router")
    bus.stop("intake")
    bus.close()
    return [e for e in evs if e["type"] == "route.assigned"]


at_night = routed(night)
check(sorted(e["body"]["partner"] for e in at_night) == ["mus", "veille-nuit"], "03:30: night rule holds",
      at_night)
for e in at_night:
    check(e["ts"] - night < 600_000_000, "event time from the fake clock", e["ts"], night)
nuit = [e for e in at_night if e["body"]["partner"] == "veille-nuit"][0]
check(abs(nuit["body"]["due"] - (nuit["ts"] + 3600_000_000)) < 5_000_000, "due = routing time + 1h", nuit)
at_noon = routed(night + 9 * 3600_000_000)
check([e["body"]["partner"] for e in at_noon] == ["mus"], "12:30: night rule does not hold", at_noon)
ok("25-router-clock")
