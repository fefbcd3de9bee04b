#!/usr/bin/env python3
"""GET /v1/events: history then live with no gap and no duplicate, while
reports keep arriving; resume with Last-Event-ID after a disconnect and
after a restart of the gateway; filters; bad parameters. The ring of recent
events is kept tiny (16) so that history and resumes go through the
source's log, the path a client that was away for long takes."""
import json
import subprocess
import threading
import time

from gateway_client import Gateway, SSE
from relais_harness import binary, check, ok, sample_signal

g = Gateway("gw-sse", sse="        ring = 16\n        keepalive = 1s\n")
bus = g.bus


def submit(n, arr=None, tag="s"):
    ids = []
    c = g.conn()
    for i in range(n):
        deadline = time.time() + 15
        while True:
            # 503 + Retry-After while intake (re)connects: retry, same key
            st, _, body = g.request("POST", "/v1/signalements", sample_signal(arr=arr or 1 + i % 20),
                                    token="producer", headers={"Idempotency-Key": f"{tag}-{i}"}, conn=c)
            if st != 503 or time.time() > deadline:
                break
            time.sleep(0.1)
        check(st == 200 and not body["duplicate"], "submit", st, body)
        ids.append(body)
    c.close()
    return ids


def seqs(events):
    return [int(e["seq"]) for _, e in events]


def contiguous(values, first, last, what):
    check(values == list(range(first, last + 1)), f"{what}: expected {first}..{last}",
          values[:5], "...", values[-5:], len(values))


# -- history, then live, with reports arriving during the seam ----------------------
submit(30, tag="h")
done = threading.Event()


def producer():
    submit(120, tag="seam")
    done.set()


thread = threading.Thread(target=producer)
thread.start()
s = SSE(g.port, "/v1/events?last=1000")
check(s.status == 200 and s.headers["content-type"].startswith("text/event-stream"), "SSE headers", s.headers)
got = s.events(150, timeout=30)
thread.join()
contiguous(seqs(got), 1, 150, "history then live")
ev_id, first = got[0]
check(ev_id == "intake:1" and first["topic"] == "signal.created" and first["src"] == "intake", "id and data", got[0])
check("contact" not in str(got), "public view only")
check(s.quiet(1.5), "no duplicate after the seam")

# -- `relais tail` shares the seam (relais_follow): the same sequence ----------
tail = subprocess.run([binary("relais"), "--config", bus.config, "tail", "--from", "1", "--count", "150",
                       "--json", "--timeout", "20"], capture_output=True, text=True, timeout=60)
check(tail.returncode == 0, "relais tail --from 1", tail.stderr)
lines = [json.loads(l) for l in tail.stdout.splitlines()]
contiguous([e["seq"] for e in lines], 1, 150, "relais tail --from 1")
check([e["key"] for e in lines] == [e["key"] for _, e in got], "tail and SSE agree")
tail = subprocess.run([binary("relais"), "--config", bus.config, "tail", "--last", "3", "--count", "3",
                       "--json", "--timeout", "20"], capture_output=True, text=True, timeout=60)
contiguous([json.loads(l)["seq"] for l in tail.stdout.splitlines()], 148, 150, "relais tail --last 3")
live_tail = subprocess.Popen([binary("relais"), "--config", bus.config, "tail", "--count", "4", "--json",
                              "--timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

# -- live only: the next events and nothing older ------------------------------------
live = SSE(g.port, "/v1/events")
time.sleep(0.3)
submit(5, tag="live")
got = live.events(5)
contiguous(seqs(got), 151, 155, "live")
live.close()

# -- resume after a disconnect: no gap, no duplicate -------------------------------------
a = SSE(g.port, "/v1/events?last=1000")
part = a.events(40)
contiguous(seqs(part), 1, 40, "first part")
resume = a.last_id
a.close()
submit(60, tag="away")                  # 156..215 while the client is away
# the live `relais tail` started before the live SSE: 4 events in order, none older
out, err = live_tail.communicate(timeout=40)
check(live_tail.returncode == 0, "relais tail live", err)
tail_seqs = [json.loads(l)["seq"] for l in out.splitlines()]
check(len(tail_seqs) == 4 and tail_seqs == list(range(tail_seqs[0], tail_seqs[0] + 4))
      and tail_seqs[0] >= 151, "relais tail live: in order, no history", tail_seqs)
b = SSE(g.port, "/v1/events", last_id=resume)
rest = b.events(215 - 40)
contiguous(seqs(rest), 41, 215, "resumed")
check(b.quiet(1.0), "nothing more after resume")
resume = b.last_id
b.close()

# -- resume across a restart of the gateway ------------------------------------------------
check(bus.stop("gateway") == 0, "gateway stops cleanly")
g.start()
submit(10, tag="restart")               # 216..225
c = SSE(g.port, "/v1/events", last_id=resume)
contiguous(seqs(c.events(10)), 216, 225, "resumed after a gateway restart")
c.close()

# -- a restart of intake: the stream goes on without a gap -----------------------------------
d = SSE(g.port, "/v1/events")
time.sleep(0.3)
bus.stop("intake")
bus.start("intake")
submit(5, tag="after-intake")          # 226..230
contiguous(seqs(d.events(5, timeout=20)), 226, 230, "after intake restarted")
d.close()

# -- filters --------------------------------------------------------------------------------
submit(4, arr=7, tag="arr7")           # 231..234
arr7 = SSE(g.port, "/v1/events?last=1000&arr=7")
got = arr7.events(4 + 12, timeout=20)   # arr 7 came every 20th report of the loops, plus these 4
check(all(e["body"]["place"]["arrondissement"] == 7 for _, e in got), "arr filter", got[:2])
check(seqs(got)[-4:] == [231, 232, 233, 234], "arr filter keeps order", seqs(got)[-6:])
arr7.close()
# 503 while the gateway's link to intake's records endpoint comes back after
# the restart above: retry, as a client must (Retry-After)
deadline = time.time() + 15
while True:
    st, _, body = g.request("POST", "/v1/signalements/" + "SIG-00000001", {"close": "resolu"}, token="producer")
    if st != 503 or time.time() > deadline:
        break
    time.sleep(0.1)
check(st == 200, "close for the topic filter", body)
closed = SSE(g.port, "/v1/events?last=1000&topic=signal.closed")
got = closed.events(1)
check(got[0][1]["type"] == "signal.closed" and got[0][1]["key"] == "SIG-00000001", "topic filter", got)
check(closed.quiet(1.0), "only closures")
closed.close()
lvl = SSE(g.port, "/v1/events?last=5&level=1&src=intake")
check(lvl.quiet(1.0), "no level-1 report: mairie producers' reports are level 2")
lvl.close()
router = SSE(g.port, "/v1/events?last=1000&src=router")
check(router.quiet(1.0), "src filter: nothing from router")
router.close()

# -- bad parameters --------------------------------------------------------------------------
for q, field in [("arr=21", "arr"), ("level=3", "level"), ("last=0", "last"), ("color=red", "query"),
                 ("topic=%zz", "query")]:
    st, _, body = g.request("GET", "/v1/events?" + q, token="operations")
    check(st == 400 and body["code"] == "invalid" and body["field"] == field, f"bad {q}", st, body)
for bad in ["intake", "intake:", "intake:x", ":5", "intake:5;router:2"]:
    st, _, body = g.request("GET", "/v1/events", token="operations", headers={"Last-Event-ID": bad})
    check(st == 400 and body["field"] == "Last-Event-ID", f"bad Last-Event-ID {bad!r}", st, body)

# -- metrics count the open streams, keep-alive comments keep them open ------------------------
e = SSE(g.port, "/v1/events")
time.sleep(0.3)
st, _, text = g.request("GET", "/metrics", token="operations")
check("relais_gateway_sse_clients 1" in text, "one SSE client", text[-600:])
e.sock.settimeout(5)
data = e.sock.recv(4096)
check(b": keepalive" in data, "keep-alive comment on an idle stream", data)
# Stopping with streams open (one live, one reading history) ends them cleanly
h = SSE(g.port, "/v1/events?last=1000")
check(bus.stop("gateway") == 0, "gateway stops cleanly with open streams")
e.sock.settimeout(5)
rest = b""
while True:
    chunk = e.sock.recv(65536)
    if not chunk:
        break
    rest += chunk
check(b"data:" not in rest, "nothing after the keep-alive on the live stream", rest[:200])
e.close()
h.close()
ok("61-gateway-sse")
