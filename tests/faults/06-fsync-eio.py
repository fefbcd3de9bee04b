"""fdatasync fails with EIO under intake (RELIABILITY-TESTS T4).

Intake runs under strace, which makes its 25th fdatasync/fsync return EIO
while producers submit. After such an error the kernel may already have
dropped the dirty pages (the "fsyncgate" lesson), so nothing of that
transaction may be acknowledged and the process must not go on as if the
disk were fine: intake exits at once; restarted (without the fault) it
recovers from what was committed, producers resend, and at the end every
acknowledged report - including each one acked before the error - is in
the log exactly once.
"""
import os
import re
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from relais_harness import Bus, Producer, check, fault_row, ok, sample_signal

if not shutil.which("strace"):
    print("06-fsync-eio: needs strace (deploy/install-deps.sh --test); skipped")
    sys.exit(77)

N = 600
bus = Bus("eio", services=["intake"])
trace = os.path.join(bus.dir, "strace.log")
prefix = ["strace", "-f", "-qq", "-tt", "-o", trace, "-e", "trace=fdatasync,fsync",
          "-e", "inject=fdatasync,fsync:error=EIO:when=25"]
intake = bus.start("intake", prefix=prefix)

prod = Producer(bus.endpoints["intake"]["submit"], window=4, timeout=1.0)
reqs = [{"op": "submit", "idem": f"eio-{i}", "signal": sample_signal(arr=1 + i % 20)} for i in range(N)]
done = threading.Event()


def feed():
    prod.run(reqs, deadline=300)
    done.set()


feeder = threading.Thread(target=feed)
feeder.start()
deadline = time.time() + 120
while time.time() < deadline and intake.poll() is None:
    time.sleep(0.01)
exited_at = time.time()
check(intake.poll() is not None, "intake stopped after the EIO")
check(intake.returncode != 0, "with a failure status", intake.returncode)
acked_before = dict(prod.acks)
text = open(trace).read()
check("(INJECTED)" in text, "the EIO was injected", text[-800:])
log = bus.log_text("intake")
check("EIO" in log or "Input/output error" in log or "fatal" in log.lower(), "intake said why", log[-1500:])
# Recovery: restart without the fault; the producer resends what is unacked
bus.procs.pop("intake", None)
restart = time.time()
bus.start("intake")
feeder.join()
recovered = time.time() - restart
check(done.is_set() and len(prod.acks) == N and not prod.errors, "every report acked in the end",
      len(prod.acks), prod.errors)
events = [e for e in bus.fetch_all() if e["type"] == "signal.created"]
ids = [e["key"] for e in events]
check(len(ids) == len(set(ids)) == N, "each report once in the log", len(ids), len(set(ids)))
lost = [i for i, r in acked_before.items() if r["id"] not in set(ids)]
check(not lost, "every report acked before the error survived", lost[:5])
acked_ids = {r["id"] for r in prod.acks.values()}
check(acked_ids == set(ids), "acks and log agree")
injected = re.search(r"^\S+ (\d\d:\d\d:\d\d\.\d+) .*INJECTED", text, re.M)
print(f"EIO at {injected.group(1) if injected else '?'}; intake exited; "
      f"{len(acked_before)} acked before it, {N} acked in the end, recovered in {recovered:.1f} s")
fault_row("fdatasync EIO (T4)", N, "1 injected EIO", 0, 0, f"{recovered:.1f} s to all acked after restart",
          f"{len(acked_before)} acked before the error, all kept")
bus.close()
ok("06-fsync-eio")
