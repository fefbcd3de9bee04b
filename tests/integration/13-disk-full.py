"""Disk full (RELIABILITY-TESTS T5, CI-sized): intake's data folder on a
small tmpfs that a filler file nearly fills.

Producers keep submitting large reports: once the disk is full they get
'unavailable' (retry later), never an ack for what was not stored; intake
neither crashes nor corrupts its store. When the filler is removed, the same
retried requests are acked. At the end every acked report is in the log
exactly once, the log is contiguous, and the store verifies.
Needs root (mount); exits 77 (skipped) otherwise.
"""
import os
import subprocess
import sys
import time

from relais_harness import Bus, binary, check, fault_row, ok, pack, unpack, sample_signal, CTX
import zmq

if os.geteuid() != 0:
    print("13-disk-full: needs root to mount a tmpfs; skipped")
    sys.exit(77)

bus = Bus("diskfull", extra="")
data = os.path.join(bus.dir, "var")
os.makedirs(data)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", data], check=True)
try:
    # The map starts small so that it also grows under load; the write-ahead
    # log is small too, so that checkpoints (where LMDB meets the full disk)
    # come often
    with open(bus.config, "a") as f:
        f.write("    store\n        map_size = 1M\n        wal_size = 256K\n")
    filler = os.path.join(data, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * (4 * 1024 * 1024))
    bus.start("intake")

    sock = CTX.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(bus.endpoints["intake"]["submit"])

    def request(req, timeout=10):
        sock.send_multipart([b"", pack(req)])
        check(sock.poll(timeout * 1000), "intake answers", req["idem"], bus.log_text("intake")[-1500:])
        return unpack(sock.recv_multipart()[-1])

    acked, unavailable, i = {}, 0, 0
    # Each report carries ~1.9 KB of personal text that stays in intake's store
    big = sample_signal(summary="x" * 1900)
    while i < 5000:
        r = request({"op": "submit", "idem": f"df-{i}", "signal": big})
        if r["ok"]:
            acked[r["idem"]] = r["id"]
            i += 1
            continue
        check(r["code"] == "unavailable", "a full disk gives 'unavailable'", r)
        unavailable += 1
        break
    check(unavailable == 1, "the disk filled up", len(acked))
    check(bus.procs["intake"].poll() is None, "intake still runs on a full disk")
    # The same request keeps failing cleanly while the disk stays full
    for _ in range(3):
        r = request({"op": "submit", "idem": f"df-{i}", "signal": big})
        check(not r["ok"] and r["code"] == "unavailable", "still unavailable", r)
    full_at = len(acked)

    os.remove(filler)
    start = time.time()
    while True:
        r = request({"op": "submit", "idem": f"df-{i}", "signal": big})
        if r["ok"]:
            break
        check(time.time() - start < 30, "resumes once space is freed", r)
        time.sleep(0.1)
    acked[r["idem"]] = r["id"]
    for j in range(i + 1, i + 50):
        r = request({"op": "submit", "idem": f"df-{j}", "signal": big})
        check(r["ok"], "submits go on after recovery", r)
        acked[r["idem"]] = r["id"]
    fault_row("disk full (T5)", len(acked), "store on a full 6 MiB tmpfs", 0, 0,
              f"{time.time() - start:.2f} s after space was freed", f"{full_at} acked before full")

    events = bus.fetch_all()
    seqs = [e["seq"] for e in events]
    check(seqs == list(range(1, len(seqs) + 1)), "contiguous log")
    created = [e["key"] for e in events if e["type"] == "signal.created"]
    check(len(created) == len(set(created)) == len(acked), "each acked report exactly once",
          len(created), len(acked))
    check(set(created) == set(acked.values()), "exactly the acked reports")
    sock.close()
    check(bus.stop("intake") == 0, "clean stop")
    verify = subprocess.run([binary("relais"), "--config", bus.config, "backup", "--out",
                             os.path.join(bus.dir, "verify")], capture_output=True, text=True)
    check(verify.returncode == 0, "the store verifies after the ordeal", verify.stderr)
finally:
    for p in list(bus.procs.values()):
        p.kill()
        p.wait()
    bus.procs.clear()
    subprocess.run(["umount", "-l", data])
ok("13-disk-full")
