"""The `relais` command against a running intake: submit, tail, fetch, status.

- submit: NDJSON in, one JSON ack a line; a bad line is refused with its
  line number and nothing at all is sent;
- tail: human and --json output for a known sequence of submits; filters;
  the history/live seam (reports submitted while tail starts) has no gap and
  no duplicate; a restart of intake is survived and reported on stderr;
- fetch: a range of the log;
- status: exit 0 when up, 1 and DOWN when intake is stopped.
"""
import json
import os
import re
import subprocess
import threading
import time

from relais_harness import Bus, Producer, binary, check, ok, sample_signal

bus = Bus("cli")
bus.start("intake")
RELAIS = binary("relais")
ENV = dict(os.environ, RELAIS_CONFIG=bus.config)


def relais(*args, input=None, timeout=60):
    return subprocess.run([RELAIS, *args], input=input, capture_output=True, text=True,
                          env=ENV, timeout=timeout)


# -- submit ---------------------------------------------------------------
reports = [
    sample_signal(arr=11),
    sample_signal(arr=18, tents=5, persons=9),                      # campement: level 2
    sample_signal(arr=11, publics=["famille", "enfant"], persons=3, minors=1),  # mineurs: level 2
]
ndjson = "".join(json.dumps(r) + "\n" for r in reports)
run = relais("submit", "-", input=ndjson)
check(run.returncode == 0, "submit exits 0", run.returncode, run.stderr)
acks = [json.loads(l) for l in run.stdout.splitlines()]
check(len(acks) == 3 and all(a["ok"] for a in acks), "three acks", run.stdout)
check([a["level"] for a in acks] == [1, 2, 2], "levels", acks)
check([a["seq"] for a in acks] == [1, 2, 3], "seqs", acks)

bad = ndjson.splitlines()
bad.insert(1, '{"source": {"kind": "115"}, "place": ')
run = relais("submit", "-", input="\n".join(bad) + "\n")
check(run.returncode == 2, "bad JSON is a usage error", run.returncode, run.stderr)
check("line 2" in run.stderr, "the error names the line", run.stderr)
check(len(bus.fetch_all()) == 3, "nothing was sent")

run = relais("submit", "--idem", "cli-one", "-", input=json.dumps(sample_signal(arr=4)))
again = relais("submit", "--idem", "cli-one", "-", input=json.dumps(sample_signal(arr=4)))
a, b = json.loads(run.stdout), json.loads(again.stdout)
check(a["ok"] and b["ok"] and b["duplicate"] and a["id"] == b["id"], "--idem makes a retry harmless", a, b)

# -- tail: human and JSON -----------------------------------------------------
run = relais("tail", "--from", "1", "--count", "4")
check(run.returncode == 0, "tail --count exits 0", run.returncode, run.stderr)
lines = run.stdout.splitlines()
check(len(lines) == 4, "four lines", run.stdout)
check(re.match(r"^\d\d:\d\d:\d\d intake:1 signal\.created +arr 11 +L1 +homme_isole +persons 1 +SIG-\d+$",
               lines[0]), "human line", lines[0])
check(re.search(r"intake:2 signal\.created +arr 18 +L2 \[campement\]", lines[1])
      and "tents 5" in lines[1], "level-2 line with reasons and counts", lines[1])
check("\x1b[" not in run.stdout, "no colours when stdout is not a terminal")

run = relais("tail", "--last", "2", "--count", "2", "--json")
evs = [json.loads(l) for l in run.stdout.splitlines()]
check([e["seq"] for e in evs] == [3, 4] and all(e["src"] == "intake" for e in evs), "--last 2 --json", evs)
check(evs[0]["topic"] == "signal.created" and evs[0]["key"] == acks[2]["id"], "json keys", evs[0])
check(evs[0]["body"]["place"]["arrondissement"] == 11 and evs[0]["body"]["level"] == 2, "json body", evs[0])

# -- filters --------------------------------------------------------------------
def seqs(args):
    r = relais("tail", "--from", "1", "--timeout", "1", "--json", *args)
    check(r.returncode == 0, "tail filter run", args, r.stderr)
    return [json.loads(l)["seq"] for l in r.stdout.splitlines()]

check(seqs(["--arr", "11"]) == [1, 3], "--arr", seqs(["--arr", "11"]))
check(seqs(["--level", "2"]) == [2, 3], "--level")
check(seqs(["--topic", "signal.closed"]) == [], "--topic")
check(seqs(["--src", "intake", "--topic", "signal."]) == [1, 2, 3, 4], "--src and --topic")
run = relais("tail", "--level", "3")
check(run.returncode == 2, "bad flag is a usage error", run.returncode)

# -- fetch ------------------------------------------------------------------------
run = relais("fetch", "--from", "2", "--to", "3", "--json")
check([json.loads(l)["seq"] for l in run.stdout.splitlines()] == [2, 3], "fetch range", run.stdout)

# -- the seam: reports submitted while tail starts -------------------------------
total = 4 + 600
tail = subprocess.Popen([RELAIS, "tail", "--from", "1", "--json", "--count", str(total), "--timeout", "60"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
prod = Producer(bus.endpoints["intake"]["submit"], window=50)
prod.run([{"op": "submit", "idem": f"seam-{i}", "signal": sample_signal(arr=1 + i % 20)} for i in range(600)])
out, err = tail.communicate(timeout=90)
got = [json.loads(l)["seq"] for l in out.splitlines()]
check(got == list(range(1, total + 1)), "seam: every event once, in order",
      len(got), len(set(got)), got[:3], got[-3:], err[-500:])

# -- a restart of intake is survived -------------------------------------------------
tail = subprocess.Popen([RELAIS, "tail", "--json", "--count", "20", "--timeout", "60"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
time.sleep(1.0)
prod.run([{"op": "submit", "idem": f"before-{i}", "signal": sample_signal()} for i in range(10)])
bus.kill9("intake")
time.sleep(4)                       # longer than 3 heartbeats: tail calls it silent
bus.start("intake")
prod.run([{"op": "submit", "idem": f"after-{i}", "signal": sample_signal()} for i in range(10)])
out, err = tail.communicate(timeout=90)
got = [json.loads(l)["seq"] for l in out.splitlines()]
check(got == list(range(total + 1, total + 21)), "tail across a restart: no gap, no duplicate", got, err)
check("silent" in err, "tail says the source went silent", err)

# -- status -----------------------------------------------------------------------------
run = relais("status")
check(run.returncode == 0 and re.search(r"intake +up +%d" % (total + 20), run.stdout), "status up", run.stdout)
run = relais("status", "--json")
st = json.loads(run.stdout)
check(st["ok"] and st["services"][0]["name"] == "intake" and st["services"][0]["state"] == "up", "status json", st)
check(bus.stop("intake") == 0, "intake stops")
run = relais("status", "--timeout", "1s")
check(run.returncode == 1 and "DOWN" in run.stdout.upper(), "status of a stopped service", run.returncode, run.stdout)
ok("11-cli")
