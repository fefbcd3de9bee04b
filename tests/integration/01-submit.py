"""Submit -> ack after commit -> the same event on a SUB, heartbeats, fetch,
the full record for authorised services, update and close."""
import time

from relais_harness import Bus, check, ok, sample_signal, unpack, now_us

bus = Bus("submit")
bus.start("intake")
sub = bus.subscriber()
time.sleep(0.3)                                     # let the SUB join

# A heartbeat arrives at once and then every interval (200 ms here)
hb = []
deadline = time.time() + 3
while len(hb) < 3 and time.time() < deadline:
    if sub.poll(500):
        topic, env = sub.recv_multipart()
        if topic == b"$hb":
            hb.append(unpack(env))
check(len(hb) >= 3, "heartbeats arrive", hb)
check(hb[-1]["src"] == "intake" and hb[-1]["seq"] == 0 and hb[-1]["v"] == 1, "heartbeat envelope", hb[-1])

signal = sample_signal(
    arr=18,
    source={"kind": "115", "name": "115 de Paris", "contact": "01 99 00 11 22"},
    place={"arrondissement": 18, "kind": "voie_publique", "address": "12 rue Marx Dormoy",
           "lat": 48.8901, "lon": 2.3597},
    persons=4, publics=["famille", "enfant"], minors=2,
    summary="Famille avec deux enfants, sous le porche.",
    people=[{"name": "Amina Canary", "birth_year": 1990, "sex": "F", "phone": "06 11 22 33 44"}],
)
reply = bus.submit(signal, idem="first-report")
check(reply["ok"] is True, "submit acked", reply)
check(reply["id"].startswith("SIG-") and reply["seq"] == 1 and reply["duplicate"] is False, "ack fields", reply)
check(reply["level"] == 2 and reply["idem"] == "first-report", "minors make level 2", reply)

event = None
deadline = time.time() + 3
while event is None and time.time() < deadline:
    if sub.poll(500):
        topic, env = sub.recv_multipart()
        if topic != b"$hb":
            event = (topic, unpack(env), env)
check(event is not None, "event published")
topic, env, raw = event
check(topic == b"signal.created", "topic", topic)
check(env["seq"] == reply["seq"] and env["key"] == reply["id"] and env["src"] == "intake", "envelope", env)
body = env["body"]
check(body["level"] == 2 and "mineurs" in body["reasons"], "reasons", body)
check(body["place"]["arrondissement"] == 18 and body["place"].get("cell", "").startswith("C"), "coarse place", body)
check(len(body["person_refs"]) == 1 and body["person_refs"][0].startswith("P-"), "person_refs", body)
for secret in (b"Amina", b"Canary", b"06 11", b"01 99", b"Marx Dormoy", b"porche", b"48.89"):
    check(secret not in raw, "no personal data on the bus", secret)
for key in ("summary", "people", "contact", "address", "lat", "lon"):
    check(key not in body and key not in body["place"] and key not in body["source"], "personal key absent", key)

# The log holds the very bytes that were published
events = bus.fetch_all()
check(len(events) == 1 and events[0] == env, "fetch returns the published event", events)

# The full record, for authorised services only, on the records endpoint
rec = bus.request(bus.endpoints["intake"]["records"], {"op": "signal.get", "id": reply["id"], "rid": 7})
check(rec["ok"] and rec["rid"] == 7, "record read", rec)
record = rec["record"]
check(record["signal"]["people"][0]["name"] == "Amina Canary", "full record keeps people", record)
check(record["state"] == "ouvert" and record["level"] == 2, "record state", record)
missing = bus.request(bus.endpoints["intake"]["records"], {"op": "signal.get", "id": "SIG-99999999"})
check(missing["ok"] is False and missing["code"] == "not_found" and missing["field"] == "id", "record not_found", missing)

# Update: new facts; level never goes down; the changed fields are named
submit = bus.endpoints["intake"]["submit"]
upd = bus.request(submit, {"op": "update", "idem": "upd-1", "id": reply["id"], "changes": {"tents": 5, "persons": 6}})
check(upd["ok"] and upd["seq"] == 2 and upd["id"] == reply["id"] and upd["level"] == 2, "update acked", upd)
events = bus.fetch_all()
check(events[1]["type"] == "signal.updated" and events[1]["body"]["tents"] == 5, "signal.updated", events[1])
check(sorted(events[1]["body"]["changed"]) == ["persons", "tents"], "changed fields", events[1]["body"])
check("campement" in events[1]["body"]["reasons"], "campement after update", events[1]["body"])
bad = bus.request(submit, {"op": "update", "idem": "upd-2", "id": reply["id"], "changes": {"minors": 9}})
check(bad["ok"] is False and bad["code"] == "invalid" and bad["field"].startswith("changes.minors"), "minors > persons refused", bad)
gone = bus.request(submit, {"op": "update", "idem": "upd-3", "id": "SIG-77777777", "changes": {"tents": 1}})
check(gone["ok"] is False and gone["code"] == "not_found", "update of unknown id", gone)

# Close, then every change is a conflict
cl = bus.request(submit, {"op": "close", "idem": "close-1", "id": reply["id"], "reason": "pris_en_charge"})
check(cl["ok"] and cl["seq"] == 3, "close acked", cl)
again = bus.request(submit, {"op": "close", "idem": "close-2", "id": reply["id"], "reason": "resolu"})
check(again["ok"] is False and again["code"] == "conflict", "second close conflicts", again)
late = bus.request(submit, {"op": "update", "idem": "upd-4", "id": reply["id"], "changes": {"tents": 1}})
check(late["ok"] is False and late["code"] == "conflict", "update after close conflicts", late)
events = bus.fetch_all()
check([e["type"] for e in events] == ["signal.created", "signal.updated", "signal.closed"], "log", events)
check(events[2]["body"]["reason"] == "pris_en_charge", "close reason", events[2])
check(bus.fetch_all(start=3)[0]["seq"] == 3, "fetch from the middle")

# A REQ client works too (one request at a time)
import zmq
from relais_harness import CTX, pack
req = CTX.socket(zmq.REQ)
req.setsockopt(zmq.LINGER, 0)
req.connect(submit)
req.send(pack({"op": "submit", "idem": "req-client", "signal": sample_signal(arr=11)}))
check(req.poll(5000), "REQ reply")
r = unpack(req.recv())
check(r["ok"] and r["level"] == 1 and r["seq"] == 4, "REQ client acked, level 1", r)
req.close()

check(bus.stop("intake") == 0, "graceful stop exits 0", bus.log_text("intake")[-2000:])
ok("01-submit")
