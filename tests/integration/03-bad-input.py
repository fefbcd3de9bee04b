"""Every class of bad input gets its error code and field path, stores
nothing, and the service goes on answering."""
import zmq

from relais_harness import CTX, Bus, check, ok, pack, sample_signal, unpack

bus = Bus("bad")
bus.start("intake")
submit = bus.endpoints["intake"]["submit"]


def raw(data, frames=None):
    s = CTX.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(submit)
    s.send_multipart(frames if frames is not None else [b"", data])
    got = s.poll(5000)
    reply = unpack(s.recv_multipart()[-1]) if got else None
    s.close()
    return reply


def expect(reply, code, field=None, what=""):
    check(reply is not None, "a reply", what)
    check(reply["ok"] is False and reply["code"] == code, what, reply)
    if field is not None:
        check(reply.get("field") == field, what + " field", reply)
    check(isinstance(reply.get("message"), str) and reply["message"], what + " message", reply)


sig = sample_signal()
cases = [
    (b"\xc1", "invalid", None, "not MessagePack"),
    (b"\x92\x01", "invalid", None, "truncated"),
    (pack({"op": "submit"}) + b"\x00", "invalid", None, "trailing bytes"),
    (pack([1, 2, 3]), "invalid", None, "not a map"),
    (pack({"idem": "x", "signal": sig}), "invalid", "op", "missing op"),
    (pack({"op": 7, "idem": "x"}), "invalid", "op", "op not a string"),
    (pack({"op": "explode", "idem": "x"}), "unknown_op", "op", "unknown op"),
    (pack({"op": "submit", "signal": sig}), "invalid", "idem", "missing idem"),
    (pack({"op": "submit", "idem": "i" * 129, "signal": sig}), "too_large", "idem", "idem too long"),
    (pack({"op": "submit", "idem": "x"}), "invalid", "signal", "missing signal"),
    (pack({"op": "submit", "idem": "x", "signal": "text"}), "invalid", "signal", "signal not a map"),
    (pack({"op": "submit", "idem": "x", "signal": dict(sig, place={"arrondissement": 21, "kind": "gare"})}),
     "invalid", "signal.place.arrondissement", "arrondissement out of range"),
    (pack({"op": "submit", "idem": "x", "signal": dict(sig, place={"arrondissement": "18", "kind": "gare"})}),
     "invalid", "signal.place.arrondissement", "arrondissement wrong type"),
    (pack({"op": "submit", "idem": "x", "signal": {k: v for k, v in sig.items() if k != "persons"}}),
     "invalid", "signal.persons", "persons missing"),
    (pack({"op": "submit", "idem": "x", "signal": dict(sig, publics=["licorne"])}),
     "invalid", "signal.publics[0]", "bad enum"),
    (pack({"op": "submit", "idem": "x", "signal": dict(sig, summary="s" * 2001)}),
     "too_large", "signal.summary", "summary too long"),
    (pack({"op": "submit", "idem": "x", "signal": dict(sig, people=[{"name": "A"}] * 21)}),
     "too_large", "signal.people", "too many people"),
    (pack({"op": "submit", "idem": "x", "signal": dict(sig, source={"kind": "115", "name": "a\x1b[31mb"})}),
     "invalid", None, "escape code in text"),
    (b"\x81\xa2op\xa6submit"[:-1] + b"\xc3", "invalid", None, "bool where text"),
    (b"\xdd\xff\xff\xff\xff\x01\x02\x03", "invalid", None, "array header of 2^32-1 items"),
    (b"\xdf\x3b\x9a\xca\x00", "invalid", None, "map header of 1e9 pairs"),
    (b"\x91" * 9 + b"\x01", "too_large", None, "depth 9"),
    (pack({"op": "submit", "idem": "x", "signal": dict(sig, name=b"\xff\xfe".decode("latin-1"))})
     .replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe\xff\xfe"), "invalid", None, "bad UTF-8"),
]
for data, code, field, what in cases:
    expect(raw(data), code, field, what)

# Framing: a message with extra frames is refused, the peer still answered
expect(raw(None, frames=[b"", pack({"op": "submit"}), b"extra"]), "invalid", None, "three frames")
expect(raw(None, frames=[b"x", pack({"op": "submit"})]), "invalid", None, "a non-empty delimiter")
expect(raw(None, frames=[b"", b"", b"", b""]), "invalid", None, "four frames")
# A DEALER that sends no delimiter is answered the same way (one frame back;
# a refused op, so that nothing is stored)
s = CTX.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(submit)
s.send(pack({"op": "explode", "idem": "bad-no-delimiter"}))
check(s.poll(5000), "a reply without delimiter")
parts = s.recv_multipart()
check(len(parts) == 1 and unpack(parts[0])["code"] == "unknown_op", "answered, no delimiter back", parts)
s.close()

# Over ZMQ_MAXMSGSIZE (64 KiB) the peer is disconnected by libzmq: no reply,
# and the service is unharmed.
s = CTX.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(submit)
s.send_multipart([b"", b"\x00" * 70000])
check(not s.poll(1000), "oversized message dropped without reply")
s.close()

# 60 KiB (under the frame limit) with an oversized field -> too_large
expect(raw(pack({"op": "submit", "idem": "x", "signal": dict(sig, summary="é" * 30000)})),
       "too_large", "signal.summary", "large field")

# Nothing was stored by any of the above; the service still takes reports
check(bus.fetch_all() == [], "nothing stored")
good = bus.submit(sig, idem="after-the-storm")
check(good["ok"] and good["seq"] == 1, "still serving", good)
# The refused requests did not consume their idem: a corrected retry works
fixed = bus.submit(sig, idem="x")
check(fixed["ok"] and fixed["duplicate"] is False, "idem of a refused request is free", fixed)

# Fetch endpoint errors
fetch = bus.endpoints["intake"]["fetch"]
expect(bus.request(fetch, {"op": "fetch"}), "invalid", "from", "fetch without from")
expect(bus.request(fetch, {"op": "fetch", "from": 0}), "invalid", "from", "fetch from 0")
expect(bus.request(fetch, {"op": "nope"}), "unknown_op", "op", "fetch unknown op")
expect(bus.request(fetch, None, raw=b"\xc1"), "invalid", None, "fetch garbage")
r = bus.request(fetch, {"op": "fetch", "from": 1, "max": 1, "rid": "abc"})
check(r["ok"] and len(r["events"]) == 1 and r["rid"] == "abc" and r["last"] == 2, "fetch max and rid", r)
r = bus.request(fetch, {"op": "fetch", "from": 99})
check(r["ok"] and r["events"] == [] and r["last"] == 2, "fetch past the end", r)
check(bus.stop("intake") == 0, "clean stop", bus.log_text("intake")[-3000:])
ok("03-bad-input")
