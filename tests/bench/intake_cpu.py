#!/usr/bin/python3
"""Intake's cost per acked submit, under a tool: the profiling loop of issue #11.

    tests/bench/intake_cpu.py --intake build/services/intake/relais-intake \\
        --peerbench build/tests/bench/relais-peerbench --tool callgrind --count 20000
    tests/bench/intake_cpu.py ... --tool perf-stat --count 110000 --base 10000
    tests/bench/intake_cpu.py ... --tool perf-record --count 200000

Starts one relais-intake of its own (tcp on 127.0.0.1, a free port; CURVE off;
a fresh data folder under --dir) under the tool, drives it with
relais-peerbench (--count submits at 1,000 in flight; its other phases at
their smallest), then stops that intake by its pid (never by name: other
intakes may run on the machine) and prints one JSON line:
- callgrind: instructions of the whole process (all threads, start-up and
  the bench's replay of the events included), and of the receive-to-reply
  path (relais_poller.c's s_drain, inclusive), each also per submit; the
  output file is kept (callgrind_annotate it);
- perf-stat: the process's task-clock (CPU ms); with --base N, a second run
  of N submits is subtracted, so start-up and stop cancel out;
- perf-record: a call-graph profile (perf report --no-children -i FILE).
Nothing asserts on a figure."""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import intake_config  # noqa: E402  (one intake config for both benchmarks)


def free_port_block(n=4):
    """A first port p with p..p+n-1 free on 127.0.0.1."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port + n >= 65535:
            continue
        ok = True
        for p in range(port, port + n):
            t = socket.socket()
            try:
                t.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return port
    raise RuntimeError("no block of free ports")


def run_once(args, count, out_file):
    port = free_port_block()
    folder = tempfile.mkdtemp(prefix="intake-cpu-", dir=args.dir)
    config, ep = intake_config(folder, port, "intake_cpu.py")
    argv = [os.path.abspath(args.intake), "--config", config]
    wrapped = False                     # perf runs intake as its child
    if args.tool == "callgrind":
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"] + argv
    elif args.tool == "perf-stat":
        argv = ["perf", "stat", "-x", ",", "-o", out_file, "-e", "task-clock"] + argv
        wrapped = True
    elif args.tool == "perf-record":
        argv = ["perf", "record", "-F", "2000", "-g", "-o", out_file] + argv
        wrapped = True
    log = open(os.path.join(folder, "intake.log"), "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("intake exited at start: " + open(log.name).read()[-300:])
            try:
                socket.create_connection(("127.0.0.1", port + 2), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        run = subprocess.run([args.peerbench, "--system", "relais", "--endpoint", ep["submit"],
                              "--pub", ep["pub"], "--fetch", ep["fetch"], "--count1", "1",
                              "--count100", "1", "--count1000", str(count), "--e2e-count", "1",
                              "--e2e-rate", "1000", "--run", "1"],
                             capture_output=True, text=True, timeout=1800)
    finally:
        # Stop the intake we started, by its pid (under perf: perf's child)
        target = proc.pid
        if wrapped and proc.poll() is None:
            kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
            target = int(kids[0]) if kids else proc.pid
        if proc.poll() is None:
            os.kill(target, signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
    lines = run.stdout.strip().splitlines()
    figures = json.loads(lines[-1]) if lines else {}
    if run.returncode or figures.get("error"):
        raise RuntimeError("peerbench: " + (figures.get("error") or run.stderr.strip()))
    return figures


def callgrind_totals(path):
    """Whole-process Ir, and s_drain's inclusive Ir, from a callgrind file."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", path],
                         capture_output=True, text=True).stdout
    total = drain = None
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(.*\)\s+(.*)", line)
        if not m:
            continue
        value = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line and total is None:
            total = value
        elif re.search(r"relais_poller\.c:s_drain[ .]", m.group(2)) and drain is None:
            drain = value
    return total, drain


def task_ms(path):
    for line in open(path):
        parts = line.split(",")
        if len(parts) > 2 and parts[2].startswith("task-clock"):
            return float(parts[0])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--intake", required=True, help="relais-intake binary")
    ap.add_argument("--peerbench", required=True, help="relais-peerbench binary")
    ap.add_argument("--tool", choices=["none", "callgrind", "perf-stat", "perf-record"], default="none")
    ap.add_argument("--count", type=int, default=100000, help="submits at 1,000 in flight")
    ap.add_argument("--base", type=int, default=0, help="perf-stat: subtract a run of this many submits")
    ap.add_argument("--out", default="", help="the tool's output file (default: in the current folder)")
    ap.add_argument("--dir", default=os.environ.get("TMPDIR", "/var/tmp"),
                    help="parent of the temporary data folder (a disk, not tmpfs)")
    args = ap.parse_args()
    out_file = os.path.abspath(args.out or {"callgrind": "callgrind.intake.out",
                                            "perf-stat": "perf-stat.intake.txt",
                                            "perf-record": "perf.intake.data"}.get(args.tool, "none"))
    try:
        figures = run_once(args, args.count, out_file)
        result = {"intake": args.intake, "tool": args.tool, "submits": args.count,
                  "acks_per_s": figures.get("tput_1000")}
        if args.tool == "callgrind":
            total, drain = callgrind_totals(out_file)
            result.update(instructions=total, per_submit=round(total / args.count) if total else None,
                          drain_instructions=drain,
                          drain_per_submit=round(drain / args.count) if drain else None,
                          file=out_file)
        elif args.tool == "perf-stat":
            ms = task_ms(out_file)
            result["task_ms"] = ms
            if args.base:
                run_once(args, args.base, out_file + ".base")
                base_ms = task_ms(out_file + ".base")
                result["base_task_ms"] = base_ms
                result["cpu_us_per_submit"] = round((ms - base_ms) * 1000 / (args.count - args.base), 2)
        elif args.tool == "perf-record":
            result["file"] = out_file
        print(json.dumps(result))
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        print(json.dumps({"intake": args.intake, "error": str(e)}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
