#!/usr/bin/python3
"""Write the normative test vectors of the Relais wire contract, version 1.

For each case NAME this writes, next to this script:
  NAME.msgpack  the exact bytes of one data frame;
  NAME.json     a readable twin: {"description", "kind", "expect", and either
                "value" (the message rendered as JSON) or "hex" (the bytes,
                when they are not a JSON-representable MessagePack object)}.

"expect" is "ok" or {"code": <wire error code>, "field": <path, "" for none>}.
"kind" is "request" (an op on a ROUTER endpoint), "envelope" (an event frame,
topic in "topic") or "heartbeat" (a "$hb" frame).

Run with /usr/bin/python3 from anywhere; it rewrites every file and removes
stale ones. The output is deterministic: rerunning gives identical bytes, so
`git diff proto/vectors` after a run shows every change to the contract.
"""
import json
import os
import re
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))

T = 1736935200000000            # 2025-01-15T10:00:00Z, in microseconds
FUTURE = 4102444800000000       # 2100-01-01T00:00:00Z

def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)

def minimal_signal(**changes):
    sig = {
        "source": {"kind": "115", "name": "115 de Paris"},
        "observed_at": T,
        "place": {"arrondissement": 18, "kind": "voie_publique"},
        "persons": 1,
        "publics": ["homme_isole"],
    }
    sig.update(changes)
    return sig

def full_signal():
    return {
        "source": {"kind": "maraude", "name": "Maraude Nord",
                   "contact": "+33 1 00 00 00 00"},
        "observed_at": T,
        "place": {"arrondissement": 19, "kind": "talus",
                  "address": "talus du périphérique, porte de la Villette",
                  "lat": 48.8989, "lon": 2.3856},
        "persons": 2,
        "publics": ["couple", "femme_enceinte", "grande_vulnerabilite"],
        "minors": 0,
        "pregnant": 1,
        "tents": 1,
        "needs": ["mise_a_l_abri", "soins"],
        "urgency": "immediate",
        "sensitive": False,
        "escalate": True,
        "escalate_reason": "troisième signalement sans solution",
        "summary": "Couple sous une tente.\nLa femme est enceinte de 7 mois.",
        "people": [
            {"name": "Personne A", "birth_year": 1994, "sex": "F",
             "phone": "+33 (0)6 00-00.00.00", "siao_id": "SIAO-75-000123"},
            {"name": "Personne B", "birth_year": 1990, "sex": "M"},
        ],
    }

def submit(signal, idem="prod-1:0001", **extra):
    msg = {"op": "submit", "idem": idem, "signal": signal}
    msg.update(extra)
    return msg

def err(code, field=""):
    return {"code": code, "field": field}

CASES = []

def case(name, description, expect, value=None, raw=None, kind="request", **more):
    """value: a Python object packed with msgpack; raw: exact bytes."""
    CASES.append((name, description, expect, value, raw, kind, more))

# --- valid messages -------------------------------------------------------
case("submit_minimal", "submit with only the required signal fields", "ok",
     submit(minimal_signal()))
case("submit_full", "submit with every field, two identified people", "ok",
     submit(full_signal(), idem="prod-1:0002", rid=42))
case("update_valid", "update: new facts on a report", "ok",
     {"op": "update", "idem": "prod-1:0003", "id": "SIG-00000001",
      "changes": {"persons": 5, "tents": 4, "urgency": "immediate",
                  "place": {"arrondissement": 19, "kind": "talus"}}})
case("close_valid", "close with a closure reason code", "ok",
     {"op": "close", "idem": "prod-1:0004", "id": "SIG-00000001",
      "reason": "pris_en_charge"})
case("fetch_valid", "fetch from sequence 1, at most 100 events, with a rid", "ok",
     {"op": "fetch", "from": 1, "max": 100, "rid": 7})
case("submit_geo_integers", "lat/lon may be integers (here out of range)",
     err("invalid", "signal.place.lat"),
     submit(minimal_signal(place={"arrondissement": 1, "kind": "gare",
                                  "lat": 48, "lon": 2})))
case("submit_unknown_keys", "unknown keys are ignored, at every level", "ok",
     submit(minimal_signal(colour="blue", place={"arrondissement": 4,
            "kind": "metro", "line": 1}), trace="abc"))
case("submit_summary_newlines", "summary may hold newlines and tabs", "ok",
     submit(minimal_signal(summary="ligne 1\n\tligne 2\r\n")))

body = {
    "source": {"kind": "115", "name": "115 de Paris"},
    "observed_at": T,
    "place": {"arrondissement": 19, "kind": "talus", "cell": "C43-48"},
    "persons": 2, "publics": ["couple", "femme_enceinte"], "minors": 0,
    "pregnant": 1, "tents": 1, "needs": ["mise_a_l_abri"],
    "urgency": "immediate", "sensitive": False, "escalate": False,
    "level": 2, "reasons": ["grossesse"],
    "person_refs": ["P-ABCDEFGHIJKLMNOPQRST"], "received_at": T + 1000,
}
case("envelope_signal_created", "signal.created event envelope (topic signal.created)",
     "ok", {"v": 1, "src": "intake", "seq": 1, "ts": T + 1000,
            "type": "signal.created", "key": "SIG-00000001", "body": body},
     kind="envelope", topic="signal.created")
case("envelope_signal_closed", "signal.closed event envelope with corr", "ok",
     {"v": 1, "src": "intake", "seq": 3, "ts": T + 3000, "type": "signal.closed",
      "key": "SIG-00000001", "corr": "prod-1:0004",
      "body": {"reason": "pris_en_charge"}},
     kind="envelope", topic="signal.closed")
case("heartbeat", "heartbeat on topic $hb: last published seq", "ok",
     {"v": 1, "src": "intake", "seq": 42, "ts": T}, kind="heartbeat", topic="$hb")
case("envelope_missing_body", "an event envelope must have a body map",
     err("invalid", "body"),
     {"v": 1, "src": "intake", "seq": 1, "ts": T, "type": "signal.created",
      "key": "SIG-00000001"}, kind="envelope", topic="signal.created")
case("envelope_version_2", "envelope version 2 is not version 1",
     err("invalid", "v"),
     {"v": 2, "src": "intake", "seq": 1, "ts": T, "type": "signal.created",
      "key": "SIG-00000001", "body": {}}, kind="envelope", topic="signal.created")

# --- not MessagePack, or not a map ----------------------------------------
case("not_msgpack", "0xc1 is never used in MessagePack", err("invalid"), raw=b"\xc1")
good = pack(submit(minimal_signal()))
case("truncated", "a valid submit cut in the middle", err("invalid"), raw=good[:40])
case("trailing_bytes", "one object followed by a stray byte", err("invalid"),
     raw=pack({"op": "fetch", "from": 1}) + b"\x00")
case("not_a_map", "a request must be a map", err("invalid"), [1, 2, 3])
case("depth_8", "a fetch whose unknown key nests 7 arrays: an integer at depth 8 is accepted",
     "ok", {"op": "fetch", "from": 1, "x": [[[[[[[1]]]]]]]})
case("depth_9_in_request", "the same with 8 arrays: an integer at depth 9",
     err("too_large"), {"op": "fetch", "from": 1, "x": [[[[[[[[1]]]]]]]]})
case("depth_9", "nine nested arrays around an integer: deeper than 8",
     err("too_large"), raw=b"\x91" * 9 + b"\x01")
case("array32_huge", "array header claiming 2^32-1 items, 3 bytes of data",
     err("invalid"), raw=b"\xdd\xff\xff\xff\xff\x01\x02\x03")
case("map32_huge", "map header claiming 1e9 pairs", err("invalid"),
     raw=b"\xdf\x3b\x9a\xca\x00")
case("message_70000", "a 70,000-byte message is over 65,536 bytes",
     err("too_large"),
     submit(minimal_signal(), padding="x" * (70000 - len(good) - 13)))
bad_utf8 = pack(submit(minimal_signal(source={"kind": "115", "name": "AB\u00e9\u00e9"})))
bad_utf8 = bad_utf8.replace("AB\u00e9\u00e9".encode(), b"AB\xff\xfe\xc0\xaf")
case("bad_utf8_source_name", "source.name holds bytes that are not UTF-8 (refused by the decoder)",
     err("invalid"), raw=bad_utf8)
case("esc_source_name", "source.name holds ESC (terminal escape, refused by the decoder)",
     err("invalid"),
     submit(minimal_signal(source={"kind": "115", "name": "a\x1b[31mb"})))
case("c1_source_name", "source.name holds U+009B (C1 CSI, refused by the decoder)",
     err("invalid"),
     submit(minimal_signal(source={"kind": "115", "name": "a\u009b31mb"})))

# --- op level --------------------------------------------------------------
case("missing_op", "no op", err("invalid", "op"),
     {"idem": "x", "signal": minimal_signal()})
case("op_not_str", "op must be a string", err("invalid", "op"), {"op": 7, "idem": "x"})
case("unknown_op", "op explode is served nowhere", err("unknown_op", "op"),
     {"op": "explode", "idem": "x"})
case("missing_idem", "submit without idem", err("invalid", "idem"),
     {"op": "submit", "signal": minimal_signal()})
case("empty_idem", "idem must not be empty", err("invalid", "idem"),
     submit(minimal_signal(), idem=""))
case("idem_129", "idem of 129 bytes", err("too_large", "idem"),
     submit(minimal_signal(), idem="i" * 129))
case("idem_128", "idem of exactly 128 bytes is accepted", "ok",
     submit(minimal_signal(), idem="i" * 128))
case("missing_signal", "submit without signal", err("invalid", "signal"),
     {"op": "submit", "idem": "x"})
case("signal_not_map", "signal must be a map", err("invalid", "signal"),
     {"op": "submit", "idem": "x", "signal": "text"})
case("update_source", "an update may not change the source",
     err("invalid", "changes.source"),
     {"op": "update", "idem": "u1", "id": "SIG-00000001",
      "changes": {"source": {"kind": "115", "name": "x"}}})
case("update_empty_changes", "an update must change something",
     err("invalid", "changes"),
     {"op": "update", "idem": "u2", "id": "SIG-00000001", "changes": {}})
case("update_bad_field", "changes are validated like a submit",
     err("invalid", "changes.place.arrondissement"),
     {"op": "update", "idem": "u3", "id": "SIG-00000001",
      "changes": {"place": {"arrondissement": 0, "kind": "gare"}}})
case("close_bad_reason", "close reason must be a closure code",
     err("invalid", "reason"),
     {"op": "close", "idem": "c1", "id": "SIG-00000001", "reason": "fini"})
case("fetch_missing_from", "fetch needs from", err("invalid", "from"), {"op": "fetch"})
case("fetch_from_0", "sequences start at 1", err("invalid", "from"),
     {"op": "fetch", "from": 0})

# --- signal fields ---------------------------------------------------------
def bad(name, description, code, field, **changes):
    case(name, description, err(code, field), submit(minimal_signal(**changes)))

bad("missing_source", "source is required", "invalid", "signal.source",
    source=None)
bad("source_kind_bad", "source.kind outside its enum", "invalid", "signal.source.kind",
    source={"kind": "presse", "name": "x"})
bad("source_name_empty", "source.name must not be empty", "invalid", "signal.source.name",
    source={"kind": "115", "name": ""})
bad("source_name_newline", "source.name is one line", "invalid", "signal.source.name",
    source={"kind": "115", "name": "a\nb"})
bad("source_contact_129", "source.contact over 128 bytes", "too_large",
    "signal.source.contact", source={"kind": "115", "name": "x", "contact": "1" * 129})
bad("observed_at_future", "observed_at in 2100", "invalid", "signal.observed_at",
    observed_at=FUTURE)
bad("observed_at_1999", "observed_at before 2000", "invalid", "signal.observed_at",
    observed_at=946684799999999)
bad("observed_at_negative", "observed_at negative", "invalid", "signal.observed_at",
    observed_at=-1)
bad("arrondissement_0", "arrondissement 0", "invalid", "signal.place.arrondissement",
    place={"arrondissement": 0, "kind": "gare"})
bad("arrondissement_21", "arrondissement 21", "invalid", "signal.place.arrondissement",
    place={"arrondissement": 21, "kind": "gare"})
bad("arrondissement_str", "arrondissement as a string", "invalid",
    "signal.place.arrondissement", place={"arrondissement": "18", "kind": "gare"})
bad("arrondissement_negative", "arrondissement -1", "invalid",
    "signal.place.arrondissement", place={"arrondissement": -1, "kind": "gare"})
bad("place_kind_missing", "place.kind is required", "invalid", "signal.place.kind",
    place={"arrondissement": 3})
bad("address_257", "address over 256 bytes", "too_large", "signal.place.address",
    place={"arrondissement": 3, "kind": "gare", "address": "a" * 257})
bad("lat_out_of_range", "lat south of Paris", "invalid", "signal.place.lat",
    place={"arrondissement": 13, "kind": "gare", "lat": 48.70, "lon": 2.35})
bad("lon_out_of_range", "lon east of Paris", "invalid", "signal.place.lon",
    place={"arrondissement": 12, "kind": "bois", "lat": 48.83, "lon": 2.49})
bad("lat_without_lon", "lat without lon", "invalid", "signal.place.lon",
    place={"arrondissement": 13, "kind": "gare", "lat": 48.83})
bad("lon_without_lat", "lon without lat", "invalid", "signal.place.lat",
    place={"arrondissement": 13, "kind": "gare", "lon": 2.35})
bad("persons_0", "persons 0", "invalid", "signal.persons", persons=0)
bad("persons_10001", "persons over 10000", "invalid", "signal.persons", persons=10001)
bad("persons_missing", "persons is required", "invalid", "signal.persons", persons=None)
bad("minors_over_persons", "minors > persons", "invalid", "signal.minors",
    persons=2, minors=3)
bad("pregnant_over_persons", "pregnant > persons", "invalid", "signal.pregnant",
    persons=1, pregnant=2)
bad("publics_bad_enum", "second public is not a known name", "invalid",
    "signal.publics[1]", publics=["famille", "licorne"])
bad("publics_duplicate", "a public listed twice", "invalid", "signal.publics[1]",
    publics=["famille", "famille"])
bad("publics_empty", "publics needs at least one entry", "invalid", "signal.publics",
    publics=[])
bad("publics_13", "publics over 12 entries", "too_large", "signal.publics",
    publics=["famille"] * 13)
bad("needs_duplicate", "a need listed twice", "invalid", "signal.needs[1]",
    needs=["soins", "soins"])
bad("tents_10001", "tents over 10000", "invalid", "signal.tents", tents=10001)
bad("urgency_bad", "urgency outside its enum", "invalid", "signal.urgency",
    urgency="hier")
bad("sensitive_int", "sensitive must be a bool", "invalid", "signal.sensitive",
    sensitive=1)
bad("escalate_without_reason", "escalate true needs escalate_reason", "invalid",
    "signal.escalate_reason", escalate=True)
bad("summary_2001", "summary over 2000 bytes", "too_large", "signal.summary",
    summary="s" * 2001)
bad("summary_esc", "summary may hold newlines but not ESC (refused by the decoder)",
    "invalid", "", summary="ok\n\x1b[2J")
bad("summary_tab_ok_name_tab", "tabs are fine in summary, not in source.name", "invalid",
    "signal.source.name", summary="a\tb", source={"kind": "115", "name": "a\tb"})
bad("people_21", "21 people", "too_large", "signal.people",
    people=[{"name": "A"}] * 21)
bad("people_not_map", "people entries are maps", "invalid", "signal.people[0]",
    people=["A"])
bad("people_bad_phone", "phone with letters", "invalid", "signal.people[0].phone",
    people=[{"name": "A", "phone": "06 CALL ME"}])
bad("people_missing_name", "a person needs a name", "invalid", "signal.people[1].name",
    people=[{"name": "A"}, {"sex": "F"}])
bad("people_bad_sex", "sex is F, M or X", "invalid", "signal.people[0].sex",
    people=[{"name": "A", "sex": "Z"}])
bad("people_birth_1800", "birth_year before 1900", "invalid",
    "signal.people[0].birth_year", people=[{"name": "A", "birth_year": 1800}])
bad("people_siao_65", "siao_id over 64 bytes", "too_large", "signal.people[0].siao_id",
    people=[{"name": "A", "siao_id": "9" * 65}])


def render(obj):
    """JSON twin of a decoded object; None when JSON cannot hold it."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [render(x) for x in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise ValueError
        return {k: render(v) for k, v in obj.items()}
    raise ValueError


def main():
    written = set()
    for name, description, expect, value, raw, kind, more in CASES:
        if raw is None:
            if isinstance(value, dict) and "signal" in value and isinstance(value["signal"], dict):
                # None in minimal_signal() means "leave the key out"
                value["signal"] = {k: v for k, v in value["signal"].items() if v is not None}
            raw = pack(value)
        twin = {"description": description, "kind": kind, "expect": expect}
        twin.update(more)
        try:
            twin["value"] = render(msgpack.unpackb(raw, raw=False, strict_map_key=True))
        except Exception:
            twin["hex"] = raw.hex()
        with open(os.path.join(HERE, name + ".msgpack"), "wb") as f:
            f.write(raw)
        text = json.dumps(twin, ensure_ascii=False, indent=1)
        # C1 controls stay escaped: the twin must be safe to cat in a terminal
        text = re.sub("[\u007f-\u009f]", lambda m: "\\u%04x" % ord(m.group()), text)
        with open(os.path.join(HERE, name + ".json"), "w", encoding="utf-8") as f:
            f.write(text + "\n")
        if name == "message_70000":
            assert len(raw) == 70000, len(raw)
        written.add(name)
    for entry in os.listdir(HERE):
        stem, ext = os.path.splitext(entry)
        if ext in (".msgpack", ".json") and stem not in written:
            os.remove(os.path.join(HERE, entry))
    print(f"{len(written)} vectors written to {HERE}", file=sys.stderr)


if __name__ == "__main__":
    main()
