"""The one-command demo launcher (deploy/demo.sh) starts and stops cleanly.

Runs the launcher twice on a temporary deployment (ipc:// endpoints, data in
a temp folder), without a terminal: once ending by its own --seconds, once
with a Ctrl-C delivered to its whole process group as a terminal would.
Each time: events were shown, it exits 0, every process it started is gone
and its pid file removed; the second run picks up the data of the first.
"""
import os
import re
import signal
import subprocess
import time

from relais_harness import BIN, SRC, Bus, check, ok

bus = Bus("demo")          # only for its temp folder and ipc endpoints
demo = os.path.join(SRC, "deploy", "demo.sh")
env = dict(os.environ, RELAIS_BIN_DIR=BIN)
env.pop("RELAIS_CONFIG", None)


def started_pids(stderr):
    return [int(p) for p in re.findall(r"\(pid (\d+)", stderr)]


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def events_in(stdout):
    return [l for l in stdout.splitlines() if re.search(r"intake:\d+ signal\.", l)]


# 1. Ends by itself after --seconds
run = subprocess.run([demo, "--no-build", "--config", bus.config, "--seconds", "4", "--rate", "20"],
                     capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
check(run.returncode == 0, "demo exits 0", run.returncode, run.stderr[-2000:])
first = events_in(run.stdout)
check(len(first) >= 5, "live events shown", run.stdout[-2000:], run.stderr[-2000:])
pids = started_pids(run.stderr)
check(len(pids) == 2, "intake and the simulator were started", run.stderr)
check(all(gone(p) for p in pids), "no process left behind", pids)
data = os.path.join(bus.dir, "var")
check(not os.path.exists(os.path.join(data, "demo.pids")), "pid file removed")
check(os.path.getsize(os.path.join(data, "logs", "intake.log")) > 0, "intake logs to its file")
check("\x1b[" not in run.stdout, "no colours without a terminal")

# 2. Ctrl-C to the process group, as a terminal sends it
proc = subprocess.Popen([demo, "--no-build", "--config", bus.config, "--rate", "20"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                        start_new_session=True, stdin=subprocess.DEVNULL)
time.sleep(4)
os.killpg(proc.pid, signal.SIGINT)
out, err = proc.communicate(timeout=60)
check(proc.returncode == 0, "Ctrl-C ends the demo with 0", proc.returncode, err[-2000:])
pids = started_pids(err)
check(len(pids) == 2 and all(gone(p) for p in pids), "no process left after Ctrl-C", pids, err)
second = events_in(out)
check(second, "events shown before Ctrl-C", out[-2000:])
# --last 10 replays history: the second run continues the first run's log
seqs = [int(re.search(r"intake:(\d+)", l).group(1)) for l in second]
check(max(seqs) > len(first), "the data of the first run were kept", seqs[:5], len(first))
check("stopped; data and logs kept" in err, "says where the data are", err[-500:])
ok("10-demo")
