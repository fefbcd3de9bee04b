#!/usr/bin/python3
"""Idle memory of every bus service, each started from the build tree.

    RELAIS_BIN_DIR=build /usr/bin/python3 tests/bench/idle_rss.py [--settle 2]

Starts intake, router, plans, capacity and analytics on one test deployment
(ipc:// in a temporary folder), waits until each answers status, lets them
idle for --settle seconds, then prints each one's VmRSS from
/proc/PID/status, split into RssAnon (heap, stacks: what the process
itself holds) and RssFile (mapped libraries and the LMDB map's touched
pages, shared with the page cache). The goal of issue #11 is VmRSS below
10 MiB per idle service. It prints figures; nothing asserts on them."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../integration"))
from relais_harness import Bus  # noqa: E402

SERVICES = ["intake", "router", "plans", "capacity", "analytics"]


def status_kib(pid):
    """VmRSS, RssAnon, RssFile and Threads of a process, in KiB (Threads: a count)."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
                fields[key] = int(value.split()[0])
    return fields


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before measuring")
    args = parser.parse_args()
    bus = Bus("idle-rss", services=SERVICES)
    for svc in SERVICES:
        bus.start(svc)
    time.sleep(args.settle)
    print(f"{'service':<10} {'VmRSS MiB':>10} {'RssAnon':>8} {'RssFile':>8} {'threads':>8}  goal < 10 MiB")
    for svc in SERVICES:
        s = status_kib(bus.procs[svc].pid)
        rss = s.get("VmRSS", 0) / 1024
        print(f"{svc:<10} {rss:>10.1f} {s.get('RssAnon', 0) / 1024:>8.1f} "
              f"{s.get('RssFile', 0) / 1024:>8.1f} {s.get('Threads', 0):>8}  "
              f"{'met' if rss < 10 else 'NOT met'}")
    for svc in SERVICES:
        bus.stop(svc)
    bus.close()


if __name__ == "__main__":
    main()
