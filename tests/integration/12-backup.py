"""Hot backup under load, and restore (RELIABILITY-TESTS T8, CI-sized).

2,000 reports are acked; then `relais backup` runs while a producer keeps
submitting 3,000 more. The backup verifies (mdb_stat, our own checks), holds
every report acked before it started, and its log is contiguous. Restore
refuses while intake runs and refuses a backup whose key differs; once
intake is stopped it puts the backup back, keeps the old store aside, and
intake resumes from the restored log with the next sequence.
"""
import os
import shutil
import stat
import subprocess
import threading

from relais_harness import Bus, Producer, binary, check, ok, sample_signal

bus = Bus("backup")
bus.start("intake")
RELAIS = binary("relais")
ENV = dict(os.environ, RELAIS_CONFIG=bus.config)


def relais(*args):
    return subprocess.run([RELAIS, *args], capture_output=True, text=True, env=ENV, timeout=120)


prod = Producer(bus.endpoints["intake"]["submit"], window=200)
prod.run([{"op": "submit", "idem": f"a-{i}", "signal": sample_signal(arr=1 + i % 20)} for i in range(2000)])
before = {r["id"] for r in prod.acks.values()}
check(len(before) == 2000, "phase 1 acked")

load = Producer(bus.endpoints["intake"]["submit"], window=20)
t = threading.Thread(target=load.run,
                     args=([{"op": "submit", "idem": f"b-{i}", "signal": sample_signal()} for i in range(3000)],))
t.start()
out = os.path.join(bus.dir, "backups")
run = relais("backup", "--out", out)
t.join()
check(run.returncode == 0, "backup under load succeeds", run.returncode, run.stderr)
check(run.stdout.startswith("intake: log 1.."), "backup says what it holds", run.stdout)
check(len(load.acks) == 3000, "the load went on during the backup")

copy = os.path.join(out, "intake")
mdb = subprocess.run(["mdb_stat", "-a", copy], capture_output=True, text=True)
check(mdb.returncode == 0 and "log" in mdb.stdout, "mdb_stat reads the backup", mdb.stderr)
key = os.path.join(copy, "intake.key")
check(os.path.exists(key) and stat.S_IMODE(os.stat(key).st_mode) == 0o600, "key copied with mode 0600")

again = relais("backup", "--out", out)
check(again.returncode == 1 and "not empty" in again.stderr, "a non-empty backup folder is refused", again.stderr)

# Restore: refused while intake runs
run = relais("restore", "--src", "intake", copy)
check(run.returncode == 1 and "running" in run.stderr, "restore refused while intake runs", run.stderr)
check(bus.stop("intake") == 0, "intake stops")

# A backup whose key differs from the one in place is refused
tampered = os.path.join(bus.dir, "tampered")
shutil.copytree(copy, tampered)
with open(os.path.join(tampered, "intake.key"), "r+b") as f:
    f.write(b"\x00" * 8)
run = relais("restore", "--src", "intake", tampered)
check(run.returncode == 1 and "differs" in run.stderr, "a different key is refused", run.stderr)

run = relais("restore", "--src", "intake", copy)
check(run.returncode == 0, "restore succeeds", run.returncode, run.stderr)
check("kept in" in run.stdout, "the old store is kept aside", run.stdout)
data = os.path.join(bus.dir, "var")
check(any(n.startswith("intake.before-restore-") for n in os.listdir(data)), "aside folder exists")

bus.start("intake")
events = bus.fetch_all()
seqs = [e["seq"] for e in events]
check(seqs == list(range(1, len(seqs) + 1)), "restored log is contiguous from 1")
ids = {e["key"] for e in events if e["type"] == "signal.created"}
check(before <= ids, "every report acked before the backup is in it", len(before - ids))
r = bus.submit(sample_signal(arr=3), idem="after-restore")
check(r["ok"] and r["seq"] == len(seqs) + 1, "intake continues after the restored log", r, len(seqs))
dup = bus.submit(sample_signal(), idem="a-0")
check(dup["ok"] and dup["duplicate"], "idempotency keys survive the restore", dup)
check(bus.stop("intake") == 0, "clean stop")
ok("12-backup")
