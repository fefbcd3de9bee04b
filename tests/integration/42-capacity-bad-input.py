"""Bad input on capacity's api endpoint gets the §6 error (code, field,
message), changes nothing (same state, same log), and never stops the
service: not msgpack, not a map, wrong framing, an over-size frame, deep
nesting, unknown ops, wrong types, out-of-range values, personal-looking
ids, and every refused change of occupancy."""
import zmq

from relais_harness import CTX, Bus, check, ok, pack, unpack

bus = Bus("cap-bad", services=["capacity"])
bus.start("capacity")
api = bus.endpoints["capacity"]["api"]
r = bus.request(api, {"op": "capacity.declare", "id": "chu-1", "kind": "chu", "arrondissement": 13,
                      "places": 10})
check(r["ok"], "declared", r)
r = bus.request(api, {"op": "capacity.entry", "id": "chu-1", "count": 10, "from": "115"})
check(r["ok"] and r["free"] == 0, "full", r)
before = bus.fetch_all("capacity")


def expect(obj, code, field=None, raw=None):
    reply = bus.request(api, obj, raw=raw)
    check(reply.get("ok") is False and reply.get("code") == code, "error code", obj, reply)
    if field is None:
        check("field" not in reply, "no field", obj, reply)
    else:
        check(reply.get("field") == field, "error field", obj, reply)
    check(isinstance(reply.get("message"), str) and reply["message"], "a message", reply)
    return reply


expect(None, "invalid", raw=b"\xc1")
expect(None, "invalid", raw=pack([1, 2]))
# Over 64 KiB: libzmq drops the frame (ZMQ_MAXMSGSIZE) and the peer, no reply
try:
    bus.request(api, None, raw=pack({"op": "capacity.list", "pad": "x" * 70000}), timeout=1.0)
    check(False, "an over-size frame gets no reply")
except TimeoutError:
    pass
check(bus.request(api, {"op": "capacity.list"})["ok"], "still serving after an over-size frame")
expect(None, "too_large", raw=pack({"op": [[[[[[[[[1]]]]]]]]]}))
expect({"op": "capacity.explode"}, "unknown_op", "op")
expect({"op": 7}, "invalid", "op")
expect({"op": "capacity.entry", "id": "chu-1", "count": 1, "from": "115"}, "conflict", "count")
expect({"op": "capacity.reserve", "id": "chu-1", "places": 1}, "conflict", "places")
expect({"op": "capacity.exit", "id": "chu-1", "count": 11, "to": "rue"}, "conflict", "count")
expect({"op": "capacity.update", "id": "chu-1", "occupied": 11, "previous": 10}, "conflict", "occupied")
expect({"op": "capacity.update", "id": "chu-1", "occupied": 5, "previous": 9}, "conflict", "previous")
expect({"op": "capacity.correct", "id": "chu-1", "places": 9, "reason": "fermeture"}, "conflict", "places")
expect({"op": "capacity.entry", "id": "Jean Dupont", "count": 1, "from": "115"}, "invalid", "id")
expect({"op": "capacity.entry", "id": "x" * 64, "count": 1, "from": "115"}, "too_large", "id")
expect({"op": "capacity.entry", "id": "chu-2", "count": 1, "from": "115"}, "not_found", "id")
expect({"op": "capacity.exit", "id": "chu-1", "count": -1, "to": "rue"}, "invalid", "count")
expect({"op": "capacity.exit", "id": "chu-1", "count": 1.5, "to": "rue"}, "invalid", "count")
expect({"op": "capacity.exit", "id": "chu-1", "count": 1, "to": "ailleurs"}, "invalid", "to")
expect({"op": "capacity.reservation", "reservation": "R-1", "action": "confirm"}, "not_found", "reservation")
expect({"op": "capacity.declare", "id": "h", "kind": "hotel", "arrondissement": 22, "places": 1},
       "invalid", "arrondissement")
reply = expect({"op": "capacity.entry", "id": "chu-1", "count": 1, "from": "115", "idem": "k1",
                "rid": 42}, "conflict", "count")
check(reply.get("idem") == "k1" and reply.get("rid") == 42, "idem and rid echoed", reply)

# A request with a third frame
s = CTX.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(api)
s.send_multipart([b"", pack({"op": "capacity.list"}), b"extra"])
check(s.poll(5000), "an answer to a three-frame request")
reply = unpack(s.recv_multipart()[-1])
check(reply.get("code") == "invalid" and "field" not in reply, "framing refused", reply)
s.close()

after = bus.fetch_all("capacity")
check(after == before, "nothing changed: same log", len(before), len(after))
r = bus.request(api, {"op": "capacity.get", "id": "chu-1"})
check(r["ok"] and r["structure"]["occupied"] == 10 and r["structure"]["reserved"] == 0, "same state", r)
check(bus.stop("capacity") == 0, "clean stop after all that")
ok("42-capacity-bad-input")
