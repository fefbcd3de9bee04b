"""Analytics trends and exports on a synthetic series with known changes.

Reports are submitted to intake with chosen observation days:
  2026-W47 (16-22 Nov 2026): arr 18: 10 a day, arr 19: 3 a day, arr 5: 3 in all
  2026-W46:                  arr 18: 4 a day,  arr 19: 3 a day (femme_isolee)
  2025-W47 (17-23 Nov 2025): arr 18: 20 a day
so this week has 94 reports, 49 the week before (+45) and 140 a year
earlier (-46). analytics.trends must say so, with the arrondissements and
publics that moved most; analytics.export must hide the 3 reports of the
5th arrondissement ("<5") and give the rest exactly."""
import datetime
import time

from relais_harness import Bus, Producer, check, ok, sample_signal

bus = Bus("atrends", services=["intake", "analytics"])
bus.start("intake")
bus.start("analytics")
api = bus.endpoints["analytics"]["api"]


def at(day, hour=9):
    d = datetime.datetime.fromisoformat(day).replace(hour=hour, tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1_000_000)


def days(first, count):
    d0 = datetime.date.fromisoformat(first)
    return [(d0 + datetime.timedelta(days=i)).isoformat() for i in range(count)]


reqs = []


def add(day, arr, n, publics=("homme_isole",)):
    for i in range(n):
        sig = sample_signal(arr=arr, observed_at=at(day, 8 + i % 12), publics=list(publics))
        reqs.append({"op": "submit", "idem": f"tr-{day}-{arr}-{len(reqs)}", "signal": sig})


for d in days("2026-11-16", 7):
    add(d, 18, 10)
    add(d, 19, 3)
add("2026-11-18", 5, 3)
for d in days("2026-11-09", 7):
    add(d, 18, 4)
    add(d, 19, 3, publics=("femme_isolee",))
for d in days("2025-11-17", 7):
    add(d, 18, 20)
p = Producer(bus.endpoints["intake"]["submit"])
p.run(reqs)
check(len(p.acks) == len(reqs), "all acked", len(p.acks), p.errors)
last = bus.request(bus.endpoints["intake"]["fetch"], {"op": "status"})["last"]
for _ in range(300):
    st = bus.request(bus.endpoints["analytics"]["fetch"], {"op": "status"})
    if st["sources"][0]["applied"] == last:
        break
    time.sleep(0.1)
check(st["sources"][0]["applied"] == last, "caught up", st)

t = bus.request(api, {"op": "analytics.trends", "period": "2026-W47", "rid": "x"})
check(t["ok"] and t["rid"] == "x", "trends", t)
check(t["current"] == {"from": "2026-11-16", "to": "2026-11-22", "value": 94.0}, "current", t["current"])
prev = t["previous"]
check(prev["from"] == "2026-11-09" and prev["to"] == "2026-11-15" and prev["value"] == 49
      and prev["change"] == 45 and prev["sign"] == "+" and prev["change_pct"] == 91.8, "previous", prev)
year = t["year_ago"]
check(year["from"] == "2025-11-17" and year["to"] == "2025-11-23" and year["value"] == 140
      and year["change"] == -46 and year["sign"] == "-" and year["change_pct"] == -32.9, "year ago", year)
arr = t["movers"]["arrondissement"]
check([m["group"] for m in arr] == ["18", "5", "19"], "arrondissements that moved most", arr)
check(arr[0] == {"group": "18", "value": 70.0, "previous": 28.0, "change": 42.0, "sign": "+"}, "18e", arr[0])
check(arr[2]["change"] == 0 and arr[2]["sign"] == "=", "19e did not move", arr[2])
pubs = {m["group"]: m for m in t["movers"]["public"]}
check(pubs["homme_isole"]["change"] == 66 and pubs["femme_isolee"]["change"] == -21
      and pubs["femme_isolee"]["sign"] == "-", "publics that moved most", pubs)

# A month, and the month before (whole months)
m = bus.request(api, {"op": "analytics.trends", "period": "2026-11", "top": 1})
check(m["current"]["value"] == 143 and m["previous"]["from"] == "2026-10-01"
      and m["previous"]["to"] == "2026-10-31" and m["year_ago"]["from"] == "2025-11-01"
      and m["year_ago"]["value"] == 140 and len(m["movers"]["arrondissement"]) == 1, "month", m)

# Weeks add up to the month; days to the week
w = bus.request(api, {"op": "analytics.query", "indicator": "reports", "period": "2026-11", "granularity": "week"})
check({r["period"]: r["value"] for r in w["rows"]} == {"2026-W46": 49, "2026-W47": 94}, "weeks", w["rows"])
d = bus.request(api, {"op": "analytics.query", "indicator": "reports", "period": "2026-W47", "group_by": "arrondissement"})
check(sum(r["value"] for r in d["rows"]) == 94 and len(d["rows"]) == 15, "days", d["rows"])

# Export: the 5th arrondissement's 3 reports are suppressed, the rest exact
e = bus.request(api, {"op": "analytics.export", "indicator": "reports", "period": "2026-W47",
                      "group_by": "arrondissement", "granularity": "total"})
check(e["ok"] and e["suppressed"] == 1, "export", e)
lines = e["csv"].splitlines()
check(lines == ["period,group,value", "total,5,<5", "total,18,70", "total,19,21"], "csv", lines)
q = bus.request(api, {"op": "analytics.query", "indicator": "reports", "period": "2026-W47",
                      "group_by": "arrondissement", "granularity": "total", "suppress": True})
hidden = [r for r in q["rows"] if r.get("suppressed")]
check(len(hidden) == 1 and hidden[0]["group"] == "5" and hidden[0]["value"] is None, "suppressed query", q)
raw = bus.request(api, {"op": "analytics.query", "indicator": "reports", "period": "2026-W47",
                        "group_by": "arrondissement", "granularity": "total"})
check({r["group"]: r["value"] for r in raw["rows"]} == {"5": 3, "18": 70, "19": 21}, "internal query is exact", raw)

check(bus.stop("analytics") == 0, "clean stop")
check(bus.stop("intake") == 0, "clean stop")
ok("51-analytics-trends")
