#!/usr/bin/env python3
"""The gateway and feedback: GET /v1/signalements/{id} gives a report's
status and history to operations and to the producer token that sent it,
404 not_found to any other producer (never the data); GET /v1/events for a
producer token (mine=1) streams the status changes of its own reports
only - history, then live - and nothing else of the bus."""
import time

from gateway_client import Gateway, SSE
from relais_harness import check, ok, sample_signal

g = Gateway("gw-feedback", services=["intake", "feedback"])
bus = g.bus
bus.start("feedback")
ME = "mairie:Mairie du 18e"
OTHER = "association:Association X"


def submit(token, key, arr=18):
    deadline = time.time() + 15
    while True:
        st, _, body = g.request("POST", "/v1/signalements", sample_signal(arr=arr), token=token,
                                headers={"Idempotency-Key": key})
        if st != 503 or time.time() > deadline:
            break
        time.sleep(0.1)
    check(st == 200, "submit", st, body)
    return body["id"]


def wait_qualified(key):
    end = time.time() + 20
    while time.time() < end:
        st, _, body = g.request("GET", f"/v1/signalements/{key}", token="operations")
        if st == 200 and body["status"] == "qualifie":
            return body
        time.sleep(0.1)
    raise TimeoutError(key)


mine = submit("producer", "fb-1")
theirs = submit("producer2", "fb-2")
wait_qualified(mine)
wait_qualified(theirs)

# The producer that sent it sees the status and its history
st, _, body = g.request("GET", f"/v1/signalements/{mine}", token="producer")
check(st == 200 and body["ok"] and body["id"] == mine and body["producer"] == ME, "own report", st, body)
check([h["status"] for h in body["history"]] == ["recu", "qualifie"] and "rid" not in body, "history", body)
# Another producer: 404, exactly like an id that names nothing
st, _, body = g.request("GET", f"/v1/signalements/{theirs}", token="producer")
check(st == 404 and body["code"] == "not_found" and "history" not in body and OTHER not in str(body),
      "another producer's report", st, body)
st, _, body = g.request("GET", "/v1/signalements/SIG-99999999", token="producer")
check(st == 404 and body["code"] == "not_found", "unknown id", st, body)
# Operations see any report; partners nothing; no token 401
st, _, body = g.request("GET", f"/v1/signalements/{theirs}", token="operations")
check(st == 200 and body["producer"] == OTHER, "operations", st, body)
st, _, body = g.request("GET", f"/v1/signalements/{mine}", token="partner")
check(st == 403 and body["code"] == "unauthorized", "partner", st, body)
st, hdrs, body = g.request("GET", f"/v1/signalements/{mine}")
check(st == 401 and "www-authenticate" in hdrs, "no token", st, body)
st, _, body = g.request("GET", f"/v1/signalements/{mine}?x=1", token="producer")
check(st == 400 and body["field"] == "query", "no query here", st, body)
st, _, body = g.request("GET", f"/v1/signalements/{mine}/close", token="producer")
check(st == 405, "GET on /close", st, body)
st, _, body = g.request("DELETE", f"/v1/signalements/{mine}", token="producer")
check(st == 405, "DELETE", st, body)

# The producer's stream: its own status changes, history then live
s = SSE(g.port, "/v1/events?mine=1&last=1000", token="producer")
check(s.status == 200, "producer SSE", s.status)
got = s.events(2, timeout=20)
check([(e["key"], e["body"]["status"]) for _, e in got] == [(mine, "recu"), (mine, "qualifie")],
      "history of own changes", got)
check(all(e["src"] == "feedback" and e["type"] == "status.changed" for _, e in got), "only feedback's", got)
later = submit("producer", "fb-3")
submit("producer2", "fb-4")
got = s.events(2, timeout=20)
check([(e["key"], e["body"]["status"]) for _, e in got] == [(later, "recu"), (later, "qualifie")],
      "live own changes", got)
check(s.quiet(1.5), "nothing of the other producer, nothing of intake")
last_id = s.last_id
s.close()
# Resume: nothing twice, the other producer's changes never
newer = submit("producer", "fb-5")
s = SSE(g.port, "/v1/events?mine=1", token="producer", last_id=last_id)
got = s.events(2, timeout=20)
check([(e["key"], e["body"]["status"]) for _, e in got] == [(newer, "recu"), (newer, "qualifie")],
      "resumed", got)
check(s.quiet(1.0), "nothing more")
s.close()
# Without mine=1 a producer's stream is filtered the same way
s = SSE(g.port, "/v1/events?last=1000", token="producer2")
got = s.events(4, timeout=20)
check({e["body"]["producer"] for _, e in got} == {OTHER} and len({e["key"] for _, e in got}) == 2,
      "producer2's own", got)
check(s.quiet(1.0), "only its own")
s.close()
# Operations: mine is not theirs; their stream is the whole bus as before
st, _, body = g.request("GET", "/v1/events?mine=1", token="operations")
check(st == 400 and body["field"] == "mine", "mine for operations", st, body)
st, _, body = g.request("GET", "/v1/events?mine=2", token="producer")
check(st == 400 and body["field"] == "mine", "mine=2", st, body)
s = SSE(g.port, "/v1/events?last=1000&src=feedback", token="operations")
got = s.events(10, timeout=20)
check({e["body"]["producer"] for _, e in got} == {ME, OTHER}, "operations see every producer", got)
s.close()
check(bus.procs["gateway"].poll() is None and bus.procs["feedback"].poll() is None, "alive")
ok("74-feedback-gateway")
