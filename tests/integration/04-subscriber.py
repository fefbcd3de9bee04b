"""A subscriber that misses events - a tiny high-water mark with a slow
apply, then stopped (SIGSTOP), killed -9 and restarted - still ends with
every event applied exactly once, in order."""
import json
import os
import signal
import subprocess
import time

from relais_harness import Bus, Producer, binary, check, ok, sample_signal

bus = Bus("sub")
bus.start("intake")
eps = bus.endpoints["intake"]
subdir = os.path.join(bus.dir, "testsub")


def start_sub(*extra):
    log = open(os.path.join(bus.dir, "testsub.log"), "ab")
    return subprocess.Popen([binary("relais-testsub"), "--dir", subdir, "--src", "intake",
                             "--pub", eps["pub"], "--fetch", eps["fetch"], *extra],
                            stdout=log, stderr=log)


def dump():
    out = subprocess.run([binary("relais-testsub"), "--dir", subdir, "--src", "intake", "--dump"],
                         capture_output=True, check=True)
    return json.loads(out.stdout)


def wait_applied(n, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = dump()
        if d["checkpoint"] >= n:
            return d
        time.sleep(0.2)
    return dump()


def burst(tag, n):
    p = Producer(eps["submit"], window=1000)
    p.run([{"op": "submit", "idem": f"{tag}-{i}", "signal": sample_signal(arr=1 + i % 20)} for i in range(n)])
    return len(p.acks)


# 1. Slow subscriber with a high-water mark of 1: most live events are
#    dropped by PUB/SUB; gaps are fetched from the log.
sub = start_sub("--hwm", "1", "--delay-us", "200")
time.sleep(0.5)
total = burst("a", 3000)
d = wait_applied(total)
check(d["checkpoint"] == total and d["distinct"] == total and d["max_count"] == 1, "slow sub exactly once", d)
check(d["order_errors"] == 0 and d["first"] == 1 and d["last"] == total, "slow sub in order", d)
log = open(os.path.join(bus.dir, "testsub.log")).read()
check("catching up" in log, "the subscriber had to fetch", log[-1000:])

# 2. Stopped while events flow, then continued: the silent gap is repaired
os.kill(sub.pid, signal.SIGSTOP)
total += burst("b", 2000)
os.kill(sub.pid, signal.SIGCONT)
d = wait_applied(total)
check(d["checkpoint"] == total and d["distinct"] == total and d["max_count"] == 1, "after SIGSTOP", d)

# 3. Killed -9 mid-stream, events published while it is down, restarted
sub.kill()
sub.wait()
total += burst("c", 2000)
sub = start_sub()
d = wait_applied(total)
check(d["checkpoint"] == total and d["distinct"] == total and d["max_count"] == 1, "after kill -9", d)
check(d["order_errors"] == 0, "in order", d)

# 4. A tail with no new event: only the heartbeat tells the subscriber that
#    it missed the last event (published while it was stopped)
sub.send_signal(signal.SIGTERM)
check(sub.wait(10) == 0, "testsub clean exit")
total += burst("d", 1)
sub = start_sub()
d = wait_applied(total, timeout=10)
check(d["checkpoint"] == total and d["max_count"] == 1, "tail repaired", d)
sub.send_signal(signal.SIGTERM)
check(sub.wait(10) == 0, "testsub clean exit")
check(bus.stop("intake") == 0, "clean stop")
ok("04-subscriber")
