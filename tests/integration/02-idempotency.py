"""The same idem twice gives one report, also across a restart; a pipelined
DEALER gets every reply matched by idem."""
from relais_harness import Bus, Producer, check, ok, sample_signal

bus = Bus("idem")
bus.start("intake")
first = bus.submit(sample_signal(arr=19), idem="same-key")
second = bus.submit(sample_signal(arr=3, persons=2), idem="same-key")      # another body
check(first["ok"] and second["ok"], "both acked", first, second)
check(second["id"] == first["id"] and second["seq"] == first["seq"], "same id and seq", first, second)
check(first["duplicate"] is False and second["duplicate"] is True, "duplicate flag", second)
check(len(bus.fetch_all()) == 1, "one report in the log")

# Within one batch: many copies of the same idem pipelined at once
p = Producer(bus.endpoints["intake"]["submit"])
reqs = [{"op": "submit", "idem": f"batch-{i % 50}", "signal": sample_signal(arr=1 + i % 20)} for i in range(100)]
p.run(reqs)
p2 = Producer(bus.endpoints["intake"]["submit"])
p2.run(reqs)                                    # all 50 again
check(all(r["duplicate"] for r in p2.acks.values()), "second pass all duplicates")
check(len(bus.fetch_all()) == 51, "51 reports in the log", len(bus.fetch_all()))

# Idempotency survives a restart
bus.stop("intake")
bus.start("intake")
third = bus.submit(sample_signal(), idem="same-key")
check(third["duplicate"] is True and third["id"] == first["id"], "duplicate after restart", third)
# Update idempotency: same idem -> same answer, one event
upd = {"op": "update", "idem": "u-1", "id": first["id"], "changes": {"persons": 3}}
a = bus.request(bus.endpoints["intake"]["submit"], upd)
b = bus.request(bus.endpoints["intake"]["submit"], upd)
check(a["ok"] and b["ok"] and b["duplicate"] and a["seq"] == b["seq"], "update retried once", a, b)
check(len(bus.fetch_all()) == 52, "one update event")
check(bus.stop("intake") == 0, "clean stop")
ok("02-idempotency")
