"""Analytics end to end: intake fed by `relais simulate`, and stand-ins for
router, plans and capacity (relais-testpub, the real publisher) built from
intake's own log, all followed by relais-analytics, which is killed -9 in
the middle of the stream and restarted.

Checks: the aggregates equal a recomputation from the sources' logs; a
rebuild from sequence 1 into a fresh store gives exactly the live state
(--dump, line by line); the API's errors; `relais stats`; and `relais
report` writes an HTML page that parses, where every chart has data, and
whose CSVs add up to the aggregates."""
import csv
import html.parser
import json
import os
import struct
import subprocess
import time

from relais_harness import Bus, binary, check, ok, pack

SOURCES = ["intake", "router", "plans", "capacity"]
bus = Bus("analytics", services=["intake", "router", "plans", "capacity", "analytics"])
api = bus.endpoints["analytics"]["api"]


def relais(*args, timeout=120):
    return subprocess.run([binary("relais"), "--config", bus.config, *args],
                          capture_output=True, text=True, timeout=timeout)


def simulate(seed, count, start):
    return ["simulate", "--seed", str(seed), "--count", str(count), "--rate", "0",
            "--start", start]


def query(**kw):
    reply = bus.request(api, {"op": "analytics.query", **kw})
    check(reply.get("ok"), "query", kw, reply)
    return reply


def total(rows):
    return {r["group"]: r["value"] for r in rows}


def wait_caught_up(timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        lasts = {}
        for s in SOURCES:
            try:
                lasts[s] = bus.request(bus.endpoints[s]["fetch"], {"op": "status"}, timeout=2)["last"]
            except TimeoutError:
                lasts[s] = None
        try:
            st = bus.request(bus.endpoints["analytics"]["fetch"], {"op": "status"}, timeout=2)
        except TimeoutError:
            time.sleep(0.2)
            continue
        applied = {s["src"]: s["applied"] for s in st["sources"]}
        if all(lasts[s] and applied.get(s) == lasts[s] for s in SOURCES):
            return applied
        time.sleep(0.2)
    check(False, "analytics never caught up", lasts, applied)


# 1. intake and analytics; a first day of reports
bus.start("intake")
bus.start("analytics")
r = relais(*simulate(11, 500, "2026-11-17T07:00:00Z"))
check(r.returncode == 0, "simulate 1", r.stdout, r.stderr)

# 2. Stand-ins for router, plans and capacity, built from intake's log so far
created = [e for e in bus.fetch_all("intake") if e["type"] == "signal.created"]
partners = ["uasa", "samu_social", "maraude_coord", "sdppe"]
streams = {"router": [], "plans": [], "capacity": []}
first_ack = {}
for i, e in enumerate(created):
    b, key = e["body"], e["key"]
    p = partners[i % 4]
    rec = b["received_at"]
    streams["router"].append({"type": "route.assigned", "key": key, "ts": rec + 1_000_000,
                              "body": {"partner": p, "rule": "r1", "level": b["level"],
                                       "arrondissement": b["place"]["arrondissement"],
                                       "publics": b["publics"], "due": rec + 600_000_000, "attempt": 1}})
    if i % 5 == 4:
        streams["router"].append({"type": "route.refused", "key": key, "ts": rec + 2_000_000,
                                  "body": {"partner": p, "mseq": i, "reason": "capacite"}})
    else:
        at = rec + (i * 37 % 3600 + 30) * 1_000_000
        first_ack[key] = at
        streams["router"].append({"type": "route.acknowledged", "key": key, "ts": at,
                                  "body": {"partner": p, "mseq": i, "at": at}})
    if b["level"] == 2 and i % 3 == 0:
        plan = f"PLAN-{i}"
        streams["plans"].append({"type": "plan.opened", "key": plan, "ts": rec + 5_000_000,
                                 "body": {"signal": key, "arrondissement": b["place"]["arrondissement"],
                                          "level": 2, "actors": ["mus"], "reasons": b["reasons"]}})
        streams["plans"].append({"type": "plan.closed", "key": plan, "ts": rec + (i % 50 + 1) * 3_600_000_000,
                                 "body": {"outcome": "mise_a_l_abri" if i % 2 == 0 else "orientation",
                                          "arrondissement": b["place"]["arrondissement"], "signals": [key]}})
day0 = 1794873600_000000          # 2026-11-17T00:00:00Z
for s in range(6):
    kind = ["hotel", "chu", "sas"][s % 3]
    streams["capacity"].append({"type": "capacity.declared", "key": f"st-{s}", "ts": day0 + 3600_000000,
                                "body": {"kind": kind, "arrondissement": s + 1, "places": 40, "households": 10,
                                         "publics": ["famille"], "operator": "op"}})
    for d in range(5):
        streams["capacity"].append({"type": "capacity.updated", "key": f"st-{s}",
                                    "ts": day0 + d * 86400_000000 + 7200_000000,
                                    "body": {"kind": kind, "places": 40, "occupied": 30 + (s + d) % 9,
                                             "reserved": 0, "free": 10 - (s + d) % 9, "cause": "occupancy"}})
pubs = {}
for src, events in streams.items():
    path = os.path.join(bus.dir, f"{src}.events")
    with open(path, "wb") as f:
        for ev in events:
            data = pack(ev)
            f.write(struct.pack(">I", len(data)) + data)
    log = open(os.path.join(bus.dir, f"{src}.log"), "ab")
    pubs[src] = subprocess.Popen([binary("relais-testpub"), "--dir", os.path.join(bus.dir, f"{src}-store"),
                                  "--src", src, "--pub", bus.endpoints[src]["pub"],
                                  "--fetch", bus.endpoints[src]["fetch"], "--events", path,
                                  "--batch", "20", "--delay-ms", "30"], stdout=log, stderr=log)
    bus.procs[f"testpub-{src}"] = pubs[src]         # killed by the harness if a check fails

# 3. A second day of reports while the stand-ins stream; analytics is
#    killed -9 in the middle, then restarted
sim = subprocess.Popen([binary("relais"), "--config", bus.config, *simulate(12, 600, "2026-11-19T07:00:00Z")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
time.sleep(0.4)
bus.kill9("analytics")
out, err = sim.communicate(timeout=120)
check(sim.returncode == 0, "simulate 2", out, err)
time.sleep(0.5)
bus.start("analytics")
# The stand-ins stream in batches: analytics can catch up with what they
# have published so far before they are done, so wait for their whole streams
deadline = time.time() + 60
while time.time() < deadline:
    lasts = {src: bus.request(bus.endpoints[src]["fetch"], {"op": "status"}, timeout=2)["last"]
             for src in streams}
    if all(lasts[src] >= len(events) for src, events in streams.items()):
        break
    time.sleep(0.1)
check(all(lasts[src] >= len(events) for src, events in streams.items()), "the stand-ins published all",
      lasts, {src: len(events) for src, events in streams.items()})
applied = wait_caught_up()
check(all(applied[s] > 0 for s in SOURCES), "every source applied", applied)
check("caught up" in bus.log_text("analytics"), "analytics fetched what it missed")

# 4. The aggregates against a recomputation from the logs
intake_events = bus.fetch_all("intake")
reports = {}
for e in intake_events:
    if e["type"] == "signal.created":
        reports[e["key"]] = {"arr": e["body"]["place"]["arrondissement"], "level": e["body"]["level"],
                             "persons": e["body"]["persons"], "publics": e["body"]["publics"]}
    elif e["type"] == "signal.updated":
        rep = reports[e["key"]]
        rep["level"] = max(rep["level"], e["body"]["level"])
        for k in ("persons", "publics"):
            if k in e["body"]:
                rep[k] = e["body"][k]
        if "place" in e["body"]:
            rep["arr"] = e["body"]["place"]["arrondissement"]
week = {"period": "2026-W47", "granularity": "total"}
by_arr = total(query(indicator="reports", group_by="arrondissement", **week)["rows"])
for a in range(1, 21):
    want = sum(1 for r in reports.values() if r["arr"] == a)
    check(by_arr.get(str(a), 0) == want, f"reports in arrondissement {a}", by_arr.get(str(a)), want)
by_level = total(query(indicator="reports", group_by="level", **week)["rows"])
for lv in (1, 2):
    check(by_level.get(str(lv), 0) == sum(1 for r in reports.values() if r["level"] == lv), "level", lv, by_level)
persons = total(query(indicator="persons", **week)["rows"])
check(persons.get("all") == sum(r["persons"] for r in reports.values()), "persons", persons)
fam = total(query(indicator="reports", group_by="public", filters={"public": "famille"}, **week)["rows"])
check(fam.get("famille", 0) == sum(1 for r in reports.values() if "famille" in r["publics"]), "families", fam)
l2_18 = total(query(indicator="reports", filters={"arrondissement": 18, "level": 2}, **week)["rows"])
check(l2_18.get("all", 0) == sum(1 for r in reports.values() if r["arr"] == 18 and r["level"] == 2), "filters")
acks = query(indicator="ack_delay", **week)["rows"]
check(acks and acks[0]["count"] == len(first_ack), "ack delays", acks, len(first_ack))
check(acks[0]["p50"] > 0 and acks[0]["p90"] >= acks[0]["p50"], "percentiles", acks)
refused = total(query(indicator="refusals", group_by="partner", **{"from": "2026-11-01", "to": "2026-12-31",
                                                                  "granularity": "total"})["rows"])
check(sum(refused.values()) == sum(1 for e in streams["router"] if e["type"] == "route.refused"), "refusals", refused)
free = total(query(indicator="capacity_free", group_by="kind", **week)["rows"])
check(free.get("hotel") == sum(10 - (s + 4) % 9 for s in (0, 3)), "capacity gauge: last value", free)
unmet = query(indicator="unmet_demand", period="2026-W47")["rows"]
check(len(unmet) == 7, "unmet demand per day", unmet)
indicators = bus.request(api, {"op": "analytics.indicators"})
check(indicators["ok"] and len(indicators["indicators"]) > 30, "indicators", indicators)
trends = bus.request(api, {"op": "analytics.trends", "period": "2026-W47"})
check(trends["ok"] and trends["current"]["value"] == len(reports) and trends["previous"]["sign"] == "+",
      "trends", trends)

# 5. Bad requests: a clear error, and the service goes on
for req, code, field in [({"op": "analytics.explode"}, "unknown_op", "op"),
                         ({"op": "analytics.query", "indicator": "nope"}, "invalid", "indicator"),
                         ({"op": "analytics.query", "group_by": "partner"}, "invalid", "group_by"),
                         ({"op": "analytics.query", "period": "2026-W99"}, "invalid", "period"),
                         ({"op": "analytics.query", "from": "2026-11-20", "to": "2026-11-01"}, "invalid", "to"),
                         ({"op": "analytics.query", "filters": {"owner": "x"}}, "invalid", "filters"),
                         ({"op": "analytics.trends"}, "invalid", "period")]:
    reply = bus.request(api, dict(req, rid=7))
    check(not reply["ok"] and reply["code"] == code and reply.get("field") == field and reply["rid"] == 7,
          "error", req, reply)
reply = bus.request(api, None, raw=b"\xc1")
check(not reply["ok"] and reply["code"] == "invalid", "not msgpack", reply)

# 6. relais stats
r = relais("stats", "--by", "arrondissement", "--period", "2026-W47", "--json", "--api", api)
check(r.returncode == 0, "stats", r.stderr)
check(total(json.loads(r.stdout)["rows"]) == by_arr, "stats --json equals the query")
r = relais("stats", "--by", "level", "--period", "2026-W47", "--api", api)
check(r.returncode == 0 and "total" in r.stdout, "stats table", r.stdout, r.stderr)

# 7. relais report: the page parses, every chart has data, CSVs add up
outdir = os.path.join(bus.dir, "report")
r = relais("report", "--period", "2026-W47", "--out", outdir, "--api", api)
check(r.returncode == 0, "report", r.stdout, r.stderr)


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.charts, self.current, self.stack = {}, None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "chart" in (a.get("class") or ""):
            self.current = a["id"]
            self.charts[self.current] = []
        if tag == "rect" and a.get("class") == "bar" and self.current:
            self.charts[self.current].append(float(a["data-value"]))


page = Page()
with open(os.path.join(outdir, "index.html"), encoding="utf-8") as f:
    page.feed(f.read())
page.close()
check(set(page.charts) == {"days", "arrondissements", "publics", "delays", "capacity"}, "charts", page.charts.keys())
for name, values in page.charts.items():
    check(any(v > 0 for v in values), f"chart {name} has data", values)


def read_csv(name):
    with open(os.path.join(outdir, name), newline="") as f:
        return list(csv.DictReader(f))


def add(rows, col):
    shown = sum(int(r[col]) for r in rows if not r[col].startswith("<"))
    hidden = sum(1 for r in rows if r[col].startswith("<"))
    return shown, hidden


n = len(reports)
for name, col in [("reports_by_day_level.csv", "reports"), ("arrondissements.csv", "reports")]:
    shown, hidden = add(read_csv(name), col)
    check(shown <= n <= shown + 4 * hidden, f"{name} adds up", shown, hidden, n)
shown, hidden = add(read_csv("arrondissements.csv"), "reports")
check(shown == sum(v for k, v in by_arr.items() if v >= 5), "arrondissements.csv = aggregates over 4")
pubs_csv = {r["public"]: r["reports"] for r in read_csv("publics.csv")}
by_public = total(query(indicator="reports", group_by="public", **week)["rows"])
check(all(pubs_csv[p] == (str(v) if v >= 5 else "<5") for p, v in by_public.items()), "publics.csv", pubs_csv)
cap = {r["kind"]: r for r in read_csv("capacity.csv")}
check(int(cap["hotel"]["free"]) == free["hotel"], "capacity.csv", cap)
check(sum(int(r["count"]) for r in read_csv("delays.csv") if r["delay"] == "acknowledgement"
          and not r["count"].startswith("<")) <= len(first_ack), "delays.csv")

# 8. Rebuild from sequence 1 equals the live state, line by line
check(bus.stop("analytics") == 0, "analytics clean stop")
live = subprocess.run([binary("relais-analytics"), "--config", bus.config, "--dump"],
                      capture_output=True, text=True, check=True).stdout
fresh = os.path.join(bus.dir, "rebuilt")
r = subprocess.run([binary("relais-analytics"), "--config", bus.config, "--rebuild", "--store", fresh],
                   capture_output=True, text=True, timeout=120)
check(r.returncode == 0 and "rebuild events=" in r.stdout, "rebuild", r.stdout, r.stderr[-2000:])
rebuilt = subprocess.run([binary("relais-analytics"), "--config", bus.config, "--dump", "--store", fresh],
                         capture_output=True, text=True, check=True).stdout
check(len(live.splitlines()) > 1000, "a substantial dump", len(live.splitlines()))
if live != rebuilt:
    a, b = live.splitlines(), rebuilt.splitlines()
    diff = [(x, y) for x, y in zip(a, b) if x != y][:5]
    check(False, "rebuild equals live", len(a), len(b), diff)
r = subprocess.run([binary("relais-analytics"), "--config", bus.config, "--rebuild", "--store", fresh],
                   capture_output=True, text=True, timeout=60)
check(r.returncode != 0, "a rebuild refuses a store that is not fresh")

for src, p in pubs.items():
    bus.procs.pop(f"testpub-{src}")
    p.terminate()
    check(p.wait(10) == 0, "testpub clean exit")
check(bus.stop("intake") == 0, "intake clean stop")
ok("50-analytics")
