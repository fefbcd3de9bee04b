#!/usr/bin/env python3
"""The HTTP gateway: every endpoint and every error status, tokens and roles,
limits (body, header, connections, idle time), forwarding to service APIs,
metrics, and a few thousand requests from a load loop without an error."""
import json
import socket
import threading
import time

import msgpack
import zmq

from gateway_client import Gateway, TOKENS
from relais_harness import CTX, check, ok, pack, sample_signal, unpack

LIMITS = """        max_body = 16K
        max_header = 4K
        max_connections = 8
        idle_timeout = 1s
        request_timeout = 2s
"""

g = Gateway("gw-http", services=["intake", "plans", "capacity"], limits=LIMITS)
bus = g.bus


def req(method, path, body=None, token=None, **kw):
    return g.request(method, path, body, token=token, **kw)


def expect(result, status, code=None, field=None, what=""):
    st, hdrs, body = result
    check(st == status, f"{what}: status {st}, expected {status}", body)
    if code:
        check(isinstance(body, dict) and body.get("ok") is False and body.get("code") == code,
              f"{what}: code", body)
        check(isinstance(body.get("message"), str) and body["message"], f"{what}: message", body)
    if field == "":
        check("field" not in body, f"{what}: no field expected", body)
    elif field is not None:
        check(body.get("field") == field, f"{what}: field {body.get('field')}, expected {field}", body)
    return hdrs, body


# -- health, console, unknown paths ------------------------------------------
_, health = expect(req("GET", "/healthz"), 200, what="healthz without a token")
check(health["ok"] is True and health["sources"] >= 1, "healthz body", health)
st, hdrs, page = req("GET", "/")
check(st == 200 and hdrs["content-type"].startswith("text/html") and "<title>" in page, "console page", st)
check("default-src 'self'" in hdrs.get("content-security-policy", ""), "console CSP", hdrs)
st, hdrs, js = req("GET", "/console.js")
check(st == 200 and "javascript" in hdrs["content-type"], "console script", st)
for path in ["/../etc/passwd", "/.hidden", "/nope.html", "/a//b.js", "/%2e%2e/x"]:
    expect(req("GET", path), 404, "not_found", what=f"static {path}")
expect(req("GET", "/v1/nothing", token="operations"), 404, "not_found", what="unknown api path")
expect(req("DELETE", "/healthz"), 405, "unknown_op", what="DELETE healthz")
expect(req("GET", "/v1/signalements", token="producer"), 405, "unknown_op", what="GET signalements")
expect(req("POST", "/v1/events", {}, token="operations"), 405, "unknown_op", what="POST events")

# -- tokens and roles --------------------------------------------------------
sig = sample_signal(arr=12)
hdrs, _ = expect(req("POST", "/v1/signalements", sig), 401, "unauthorized", "Authorization", "no token")
check("bearer" in hdrs.get("www-authenticate", "").lower(), "WWW-Authenticate", hdrs)
expect(req("POST", "/v1/signalements", sig, token="not-a-token-at-all"), 401, "unauthorized", what="bad token")
expect(req("POST", "/v1/signalements", sig, headers={"Authorization": "Basic dXNlcjpwdw=="}), 401,
       "unauthorized", what="basic auth")
expect(req("POST", "/v1/signalements", sig, token="operations"), 403, "unauthorized", what="ops may not submit")
expect(req("POST", "/v1/signalements", sig, token="partner"), 403, "unauthorized", what="partner may not submit")
for path in ["/v1/events", "/metrics", "/v1/plans", "/v1/capacity", "/v1/analytics/query"]:
    expect(req("GET", path, token="partner"), 403, "unauthorized", what=f"partner GET {path}")
    if path != "/v1/events":             # a producer streams its own reports (74-feedback-gateway)
        expect(req("GET", path, token="producer"), 403, "unauthorized", what=f"producer GET {path}")
    expect(req("GET", path), 401, "unauthorized", what=f"anonymous GET {path}")

# -- submit, idempotency, source from the token --------------------------------
body = dict(sig, source={"kind": "115", "name": "someone else", "contact": "01 02 03 04 05"})
_, ack = expect(req("POST", "/v1/signalements", body, token="producer",
                    headers={"Idempotency-Key": "form-0001"}), 200, what="submit")
check(ack["ok"] and ack["id"].startswith("SIG-") and ack["duplicate"] is False and ack["idem"] == "form-0001",
      "ack", ack)
_, again = expect(req("POST", "/v1/signalements", body, token="producer",
                      headers={"Idempotency-Key": "form-0001"}), 200, what="resubmit")
check(again["id"] == ack["id"] and again["duplicate"] is True, "same key, same id", again)
_, other = expect(req("POST", "/v1/signalements", body, token="producer2",
                      headers={"Idempotency-Key": "form-0001"}), 200, what="other producer")
check(other["id"] != ack["id"] and other["duplicate"] is False, "keys are per producer", other)
_, nokey = expect(req("POST", "/v1/signalements", sig, token="producer"), 200, what="no key")
check("idem" not in nokey, "no key, no idem echoed", nokey)
events = bus.fetch_all()
created = {e["key"]: e for e in events if e["type"] == "signal.created"}
check(created[ack["id"]]["body"]["source"] == {"kind": "mairie", "name": "Mairie du 18e"},
      "source comes from the token", created[ack["id"]]["body"]["source"])
check(created[other["id"]]["body"]["source"]["kind"] == "association", "second producer's source")
check("01 02" not in json.dumps(events), "contact never on the bus")

# -- invalid requests -----------------------------------------------------------
bad = sample_signal(arr=21)
expect(req("POST", "/v1/signalements", bad, token="producer"), 400, "invalid",
       "signal.place.arrondissement", "arrondissement 21")
expect(req("POST", "/v1/signalements", dict(sig, publics=["nobody"]), token="producer"), 400, "invalid",
       "signal.publics[0]", "bad enum")
expect(req("POST", "/v1/signalements", token="producer", raw=b"{not json"), 400, "invalid", "", "not JSON")
expect(req("POST", "/v1/signalements", token="producer", raw=b"[1,2]"), 400, "invalid", "", "array body")
expect(req("POST", "/v1/signalements", token="producer", raw=b'{"a":1,"a":2}'), 400, "invalid", "", "dup keys")
expect(req("POST", "/v1/signalements", token="producer", raw=b""), 400, "invalid", "", "empty body")
expect(req("POST", "/v1/signalements", sig, token="producer", headers={"Idempotency-Key": "k" * 97}),
       400, "invalid", "Idempotency-Key", "key too long")
expect(req("POST", "/v1/signalements", dict(sig, summary="x" * 2001), token="producer"), 413,
       "too_large", "signal.summary", "summary over its limit")
deep = {"a": 1}
for _ in range(12):
    deep = {"a": deep}
expect(req("POST", "/v1/signalements", dict(sig, extra=deep), token="producer"), 413, "too_large", "",
       "nesting over the frame limit")

# -- update and close -------------------------------------------------------------
sid = ack["id"]
_, up = expect(req("POST", f"/v1/signalements/{sid}", {"changes": {"persons": 4, "tents": 2}},
                   token="producer", headers={"Idempotency-Key": "upd-1"}), 200, what="update")
check(up["id"] == sid and up["seq"] > ack["seq"], "update ack", up)
expect(req("POST", f"/v1/signalements/{sid}", {"changes": {"source": {"kind": "115", "name": "x"}}},
           token="producer"), 400, "invalid", "changes.source", "update source")
expect(req("POST", f"/v1/signalements/{sid}", {}, token="producer"), 400, "invalid", "changes", "no changes")
expect(req("POST", f"/v1/signalements/{sid}", {"changes": {"persons": 1}, "close": "resolu"},
           token="producer"), 400, "invalid", "close", "both")
expect(req("POST", "/v1/signalements/SIG-99999999", {"changes": {"persons": 2}}, token="producer"),
       404, "not_found", "id", "update unknown")
# A producer changes only its own reports (the source on record must be its token's)
expect(req("POST", f"/v1/signalements/{sid}", {"changes": {"persons": 9}}, token="producer2"),
       403, "unauthorized", "id", "update another source's report")
expect(req("POST", f"/v1/signalements/{sid}/close", {"reason": "erreur"}, token="producer2"),
       403, "unauthorized", "id", "close another source's report")
expect(req("POST", "/v1/signalements/SIG%00x", {"close": "resolu"}, token="producer"),
       404, "not_found", what="id with an escape")
expect(req("POST", "/v1/signalements/" + "S" * 70, {"close": "resolu"}, token="producer"),
       404, "not_found", what="id too long")
expect(req("POST", f"/v1/signalements/{sid}/close", {"reason": "parti"}, token="producer"), 400,
       "invalid", "reason", "bad closure code")
_, closed = expect(req("POST", f"/v1/signalements/{sid}", {"close": "resolu"}, token="producer"),
                   200, what="close via {close}")
check(closed["id"] == sid, "close ack", closed)
expect(req("POST", f"/v1/signalements/{sid}/close", {"reason": "resolu"}, token="producer"), 409,
       "conflict", what="close twice")
expect(req("POST", f"/v1/signalements/{sid}", {"changes": {"persons": 2}}, token="producer"), 409,
       "conflict", what="update closed")
_, c2 = expect(req("POST", f"/v1/signalements/{other['id']}/close", {"reason": "doublon"},
                   token="producer2"), 200, what="close via /close")
expect(req("POST", f"/v1/signalements/{sid}/reopen", {}, token="producer"), 404, "not_found", what="bad sub-path")

# -- limits: body, header, chunked body ----------------------------------------------
expect(req("POST", "/v1/signalements", token="producer", raw=b"{" + b" " * 20000 + b"}"), 413, "too_large",
       what="body over max_body")
s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
s.sendall(b"POST /v1/signalements HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKENS["producer"].encode()
          + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"1000\r\n" + b" " * 4096 + b"\r\n") * 5)
reply = s.recv(65536).decode()
check(reply.startswith("HTTP/1.1 413"), "chunked body over max_body", reply[:80])
s.close()
expect(req("GET", "/healthz", headers={"X-Padding": "p" * 5000}), 431, "too_large", what="header over max_header")
s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
s.sendall(b"BLAH / HTTP/1.1\r\n\x01\x02\r\n\r\n")
reply = s.recv(65536).decode()
check(reply.startswith("HTTP/1.1 400") and '"invalid"' in reply, "malformed HTTP", reply[:120])
s.close()

# -- pipelining: many requests in one write, answered in order -------------------------
s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2000)
data = b""
while data.count(b"HTTP/1.1 200 OK") < 2000:
    chunk = s.recv(1 << 20)
    check(chunk, "pipelined responses", data.count(b"HTTP/1.1 200 OK"))
    data += chunk
s.close()
# A client that asks and never reads is cut off, and hurts nobody else
s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
cut = False
deadline = time.time() + 60
while time.time() < deadline and not cut:
    try:
        s.sendall(b"GET /console.js HTTP/1.1\r\nHost: x\r\n\r\n" * 200)
    except OSError:
        cut = True
check(cut, "a client that never reads is disconnected")
s.close()
expect(req("GET", "/healthz"), 200, what="healthz after a greedy client")

# -- forwarding to service APIs --------------------------------------------------------
seen = []
stop = threading.Event()


def fake_plans():
    sock = CTX.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(bus.endpoints["plans"]["api"])
    while not stop.is_set():
        if not sock.poll(50):
            continue
        ident, empty, data = sock.recv_multipart()
        request = unpack(data)
        seen.append(request)
        if request.get("id") == "PLAN-404":
            reply = {"ok": False, "rid": request["rid"], "code": "not_found", "field": "id",
                     "message": "no plan has this id"}
        else:
            reply = {"ok": True, "rid": request["rid"], "plans": [{"id": "PLAN-1", "overdue": 1}],
                     "echo": request}
        sock.send_multipart([ident, b"", pack(reply)])
    sock.close()


thread = threading.Thread(target=fake_plans, daemon=True)
thread.start()
deadline = time.time() + 10
while True:
    st, _, body = req("GET", "/v1/plans?arr=18&state=open&state=late&flag=true", token="operations")
    if st == 200 or time.time() > deadline:
        break
    time.sleep(0.1)
check(st == 200 and body["ok"] and body["plans"][0]["id"] == "PLAN-1", "plans.list forwarded", st, body)
echo = body["echo"]
check(echo["op"] == "plans.list" and echo["arr"] == 18 and echo["state"] == ["open", "late"]
      and echo["flag"] is True, "request map from the query", echo)
check("rid" not in body, "rid not shown", body)
_, one = expect(req("GET", "/v1/plans/PLAN-7", token="operations"), 200, what="plans.get")
check(one["echo"]["op"] == "plans.get" and one["echo"]["id"] == "PLAN-7", "plans.get request", one)
expect(req("GET", "/v1/plans/PLAN-404", token="operations"), 404, "not_found", "id", "service error mapped")
expect(req("GET", "/v1/plans?op=hack", token="operations"), 400, "invalid", "query", "op in query")
expect(req("GET", "/v1/plans/a/b", token="operations"), 404, "not_found", what="nested plan path")
# capacity is configured but nobody serves it: unavailable, with Retry-After
hdrs, _ = expect(req("GET", "/v1/capacity", token="operations"), 503, "unavailable", what="capacity down")
check(hdrs.get("retry-after") == "1", "Retry-After on 503", hdrs)
# analytics is not in this deployment at all
_, body = expect(req("GET", "/v1/analytics/query?metric=signals&by=arrondissement", token="operations"),
                 503, "unavailable", what="analytics absent")
check("not configured" in body["message"], "says it is not configured", body)
stop.set()
thread.join()

# -- connections and idle time ---------------------------------------------------------
idle = socket.create_connection(("127.0.0.1", g.port), timeout=30)
t0 = time.time()
check(idle.recv(100) == b"", "an idle connection is closed")
idle_s = time.time() - t0
# Never before idle_timeout (1 s); how long after depends on the machine
check(idle_s >= 0.9, "closed by idle_timeout, not before", idle_s)
print(f"idle connection closed after {idle_s:.2f} s (idle_timeout 1 s)")
slow = socket.create_connection(("127.0.0.1", g.port), timeout=5)
slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
reply = slow.recv(65536).decode()
check(reply.startswith("HTTP/1.1 408"), "a half request times out with 408", reply[:60])
slow.close()

held = [socket.create_connection(("127.0.0.1", g.port), timeout=5) for _ in range(8)]
time.sleep(0.2)
extra = socket.create_connection(("127.0.0.1", g.port), timeout=5)
reply = extra.recv(65536).decode()
check(reply.startswith("HTTP/1.1 503") and "retry-after: 1" in reply.lower(), "connection over the limit", reply[:100])
extra.close()
for h in held:
    h.close()
time.sleep(0.3)
expect(req("GET", "/healthz"), 200, what="healthz after the connection limit")

# -- metrics ------------------------------------------------------------------------------
st, hdrs, text = req("GET", "/metrics", token="operations")
check(st == 200 and hdrs["content-type"].startswith("text/plain"), "metrics", st)
for needle in ['relais_gateway_requests_total{status="200"}', 'relais_gateway_requests_total{status="401"}',
               'relais_gateway_errors_total{code="invalid"}', "relais_gateway_sse_clients 0",
               'relais_source_last_seq{src="intake"}', 'relais_source_heartbeat_age_seconds{src="intake"}',
               "relais_gateway_connections_refused_total 1"]:
    check(needle in text, f"metrics has {needle}", text)
last = int([l for l in text.splitlines() if l.startswith('relais_source_last_seq{src="intake"}')][0].split()[1])
check(last >= 5, "last seq from intake's status", last)

# -- intake down: 503 with Retry-After; back: the same key is applied once ------------------
bus.stop("intake")
hdrs, _ = expect(req("POST", "/v1/signalements", sig, token="producer", headers={"Idempotency-Key": "down-1"}),
                 503, "unavailable", what="intake down")
check(hdrs.get("retry-after") == "1", "Retry-After when intake is down", hdrs)
bus.start("intake")
deadline = time.time() + 15
while True:
    st, _, body = req("POST", "/v1/signalements", sig, token="producer", headers={"Idempotency-Key": "down-1"})
    if st == 200 or time.time() > deadline:
        break
    check(st == 503, "only 503 while intake comes back", st, body)
    time.sleep(0.2)
check(st == 200 and body["ok"], "accepted once intake is back", st, body)

# -- load: a few thousand requests on keep-alive connections ----------------------------------
N_CONN, ROUNDS = 4, 750
errors = []
acks = []


def loader(k):
    c = g.conn()
    try:
        for i in range(ROUNDS):
            if i % 3 == 0:
                st, _, body = g.request("POST", "/v1/signalements", sample_signal(arr=1 + (i % 20)),
                                        token="producer", headers={"Idempotency-Key": f"load-{k}-{i}"}, conn=c)
                if st == 200:
                    acks.append(body["id"])
            elif i % 3 == 1:
                st, _, body = g.request("GET", "/healthz", conn=c)
            else:
                st, _, body = g.request("GET", "/metrics", token="operations", conn=c)
            if st != 200:
                errors.append((st, body))
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        errors.append(repr(e))
    finally:
        c.close()


t0 = time.time()
threads = [threading.Thread(target=loader, args=(k,)) for k in range(N_CONN)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.time() - t0
total = N_CONN * ROUNDS
check(not errors, f"{len(errors)} errors in the load loop", errors[:5])
check(len(set(acks)) == N_CONN * len(range(0, ROUNDS, 3)), "every load submit acked once", len(acks))
print(f"load: {total} requests on {N_CONN} connections in {elapsed:.2f}s ({total / elapsed:.0f}/s)")
check(bus.procs["gateway"].poll() is None, "gateway alive")
check(bus.stop("gateway") == 0, "gateway stops cleanly")
ok("60-gateway-http")
