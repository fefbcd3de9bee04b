#!/usr/bin/python3
"""peers.py - Relais intake beside Redis Streams, NATS JetStream and Mosquitto.

One command: installs the peers from Debian (deploy/install-deps.sh --bench),
builds relais-peerbench if needed, then for each round and each system in
alternation starts the server on loopback with a non-default port and a fresh
temporary data folder, runs relais-peerbench (the same 300-byte MessagePack
workload for all), and stops that server by its pid. It prints one table of
medians with a "Relais / best peer" column, and each system's durability at
its settings. See BENCHMARKS.md.

    tests/bench/peers.py [--rounds N] [--quick] [--only relais,redis,...]
                         [--dir DIR] [--json FILE] [--page N] [--replay-window N]
    cmake --build build --target bench-peers          (the same, from CMake)

Only the servers this script started are stopped, by pid (also on Ctrl-C or
an error: atexit and signal handlers). The Debian system services are never
used: install-deps.sh --bench keeps apt from starting them.
"""

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEMS = ["relais", "redis", "nats", "mosquitto"]
PORTS = {"redis": 16379, "nats": 14222, "mosquitto": 11883, "relais": 17101}

#   What is on disk when the producer gets its ack, at the settings used here
DURABILITY = {
    "relais": "fsync'd: the write's record in the store's write-ahead log is fdatasync'd before the ack (LMDB commits at checkpoints)",
    "redis": "fsync'd: appendfsync always, the AOF is fsync'd before the reply (one fsync per event-loop turn)",
    "nats": "written to the OS, NOT fsync'd: JetStream 2.9 file store syncs every 2 min by default",
    "mosquitto": "in memory only: persistence writes a snapshot at autosave_interval (1800 s) and at exit",
}

#   (key, label, better): better is "high" or "low"
ROWS = [
    ("tput_1", "durable acks/s, 1 in flight", "high"),
    ("tput_100", "durable acks/s, 100 in flight", "high"),
    ("tput_1000", "durable acks/s, 1000 in flight", "high"),
    ("ack_p50_ms", "lone ack latency p50 (ms)", "low"),
    ("ack_p99_ms", "lone ack latency p99 (ms)", "low"),
    ("ack_p999_ms", "lone ack latency p99.9 (ms)", "low"),
    ("e2e1_p50_ms", "end to end, 1 subscriber, p50 (ms)", "low"),
    ("e2e1_p99_ms", "end to end, 1 subscriber, p99 (ms)", "low"),
    ("e2e3_p50_ms", "end to end, 3 subscribers, p50 (ms)", "low"),
    ("e2e3_p99_ms", "end to end, 3 subscribers, p99 (ms)", "low"),
    ("replay_rate", "replay, events/s", "high"),
]

PROFILES = {
    #            count1 count100 count1000 e2e_rate e2e_count rounds
    "full":  dict(count1=2000, count100=20000, count1000=100000, e2e_rate=1000, e2e_count=3000, rounds=3),
    "quick": dict(count1=300, count100=3000, count1000=10000, e2e_rate=1000, e2e_count=500, rounds=1),
    "smoke": dict(count1=20, count100=200, count1000=1000, e2e_rate=500, e2e_count=50, rounds=1),
}

_started = {}       # pid -> (name, Popen)


def log(text):
    print(text, file=sys.stderr, flush=True)


#   The signal each server takes as "shut down cleanly" (nats-server exits 1 on
#   SIGTERM, 0 on SIGINT)
STOP_SIGNAL = {"nats": signal.SIGINT}


def stop(pid):
    """Stops one server we started, by pid; SIGKILL after 20 s."""
    entry = _started.pop(pid, None)
    if entry is None:
        return None
    name, proc = entry
    if proc.poll() is None:
        proc.send_signal(STOP_SIGNAL.get(name, signal.SIGTERM))
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            log(f"peers: {name} (pid {pid}) ignored SIGTERM; SIGKILL")
            proc.kill()
            proc.wait()
    return proc.returncode


def stop_all():
    for pid in list(_started):
        stop(pid)


def on_signal(signum, frame):
    stop_all()
    sys.exit(128 + signum)


def start(name, argv, folder):
    out = open(os.path.join(folder, name + ".out"), "wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=folder)
    out.close()
    _started[proc.pid] = (name, proc)
    return proc


def wait_port(proc, name, port, folder, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited at start ({proc.returncode}); see "
                               f"{os.path.join(folder, name + '.out')}: {tail(folder, name)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} in {timeout:.0f} s")


def tail(folder, name):
    try:
        with open(os.path.join(folder, name + ".out"), "rb") as f:
            return f.read()[-600:].decode("utf-8", "replace")
    except OSError:
        return ""


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def intake_config(folder, port, who):
    """Writes folder/relais.cfg for intake alone on 127.0.0.1:port..port+3
    (CURVE off, as the demo) with its data in folder/var; returns (config
    path, endpoints). Also used by intake_cpu.py."""
    var = os.path.join(folder, "var")
    os.mkdir(var, 0o700)
    ep = {k: f"tcp://127.0.0.1:{port + i}" for i, k in enumerate(["submit", "pub", "fetch", "records"])}
    config = os.path.join(folder, "relais.cfg")
    with open(config, "w") as f:
        f.write(f"#   {who}: intake alone, CURVE off (as the demo), tcp on loopback\n"
                f"relais\n    data = \"{var}\"\nintake\n"
                + "".join(f"    {k} = \"{v}\"\n" for k, v in ep.items())
                + f"    heartbeat = 1s\n    person_key_file = \"{var}/intake.key\"\n")
    return config, ep


def start_server(system, folder, args):
    """Starts one server in folder; returns (proc, peerbench endpoint args)."""
    port = PORTS[system]
    ports = [port + i for i in range(4)] if system == "relais" else [port]
    for p in ports:
        if not port_free(p):
            raise RuntimeError(f"127.0.0.1:{p} is in use: is another {system} running? "
                               "(peers.py never stops a server it did not start)")
    if system == "relais":
        config, ep = intake_config(folder, port, "peers.py")
        proc = start("relais", [args.intake, "--config", config], folder)
        wait_port(proc, "relais", ports[2], folder)
        return proc, ["--endpoint", ep["submit"], "--pub", ep["pub"], "--fetch", ep["fetch"]]
    if system == "redis":
        config = os.path.join(folder, "redis.conf")
        with open(config, "w") as f:
            f.write(f"port {port}\nbind 127.0.0.1\nprotected-mode yes\ndir {folder}\n"
                    "daemonize no\nappendonly yes\nappendfsync always\nsave \"\"\n"
                    f"logfile {folder}/redis.log\n")
        proc = start("redis", ["redis-server", config], folder)
    elif system == "nats":
        proc = start("nats", ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port),
                              "-sd", os.path.join(folder, "jetstream")], folder)
    else:
        config = os.path.join(folder, "mosquitto.conf")
        with open(config, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {folder}/\n"
                    "max_queued_messages 100000\nset_tcp_nodelay true\n"
                    f"log_dest file {folder}/mosquitto.log\n")
        if os.geteuid() == 0:
            # mosquitto started as root drops to the user "mosquitto": give it the folder
            try:
                shutil.chown(folder, user="mosquitto")
            except (LookupError, OSError):
                pass
        proc = start("mosquitto", ["mosquitto", "-c", config], folder)
    wait_port(proc, system, port, folder)
    return proc, ["--endpoint", f"127.0.0.1:{port}"]


def versions(systems, intake):
    found = {}
    commands = {"redis": ["redis-server", "--version"], "nats": ["nats-server", "--version"],
                "mosquitto": ["mosquitto", "-h"]}
    for s in systems:
        if s == "relais":
            found[s] = "relais-intake " + intake
            continue
        try:
            out = subprocess.run(commands[s], capture_output=True, text=True, timeout=10)
            text = (out.stdout or out.stderr).strip().splitlines()
            found[s] = text[0] if text else "?"
        except (OSError, subprocess.TimeoutExpired):
            found[s] = "not found"
    return found


def filesystem(path):
    best, kind = "", "?"
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                mount = left.split()[4]
                if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                    best, kind = mount, right.split()[0]
    except OSError:
        pass
    return kind


def fmt(value, key):
    if value is None:
        return "n/a"
    if key.startswith("tput") or key == "replay_rate":
        return f"{value:,.0f}"
    return f"{value:.3f}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def table(results, systems, rounds):
    out = []
    peers = [s for s in systems if s != "relais"]
    width = 38
    head = f"{'':{width}}" + "".join(f"{s:>13}" for s in systems)
    same = "relais" in systems and "redis" in systems
    if "relais" in systems and peers:
        head += f"{'best peer':>14}{'Relais/best':>13}"
    if same:
        head += f"{'Relais/redis':>14}"
    out.append(head)
    for key, label, better in ROWS:
        med = {s: median([r.get(key) for r in results[s]]) for s in systems}
        line = f"{label:{width}}" + "".join(f"{fmt(med[s], key):>13}" for s in systems)
        if "relais" in systems and peers:
            cands = [(med[p], p) for p in peers if med[p] is not None]
            if cands:
                value, best = (max if better == "high" else min)(cands)
                ratio = (med["relais"] / value) if med["relais"] is not None and value else None
                line += f"{best:>14}" + (f"{ratio:>13.2f}" if ratio is not None else f"{'n/a':>13}")
            else:
                line += f"{'n/a':>14}{'n/a':>13}"
        if same:
            ratio = (med["relais"] / med["redis"]) if med["relais"] is not None and med["redis"] else None
            line += f"{ratio:>14.2f}" if ratio is not None else f"{'n/a':>14}"
        if "relais" in systems and peers:
            line += "  (higher is better)" if better == "high" else "  (lower is better)"
        out.append(line)
    out.append("")
    out.append(f"medians of {rounds} round{'s' if rounds > 1 else ''}; "
               "n/a: not offered by the system, or failed (see errors)")
    if same:
        out.append("Relais/redis: against the one peer that also fsyncs before its ack "
                   "(see durability below)")
    if rounds > 1:
        # The noise: how far apart the rounds were (max / min of each figure)
        out.append("")
        out.append(f"{'spread across rounds (max / min)':{width}}"
                   + "".join(f"{s:>13}" for s in systems))
        for key, label, better in ROWS:
            cells = []
            for s in systems:
                values = [r.get(key) for r in results[s] if r.get(key) is not None]
                cells.append(f"x{max(values) / min(values):.2f}" if values and min(values) > 0 else "n/a")
            out.append(f"{label:{width}}" + "".join(f"{c:>13}" for c in cells))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--quick", action="store_true", help="small counts, 1 round (CI-friendly)")
    ap.add_argument("--smoke", action="store_true", help="tiny counts: only proves the program works")
    ap.add_argument("--only", default=",".join(SYSTEMS), help="comma-separated systems")
    ap.add_argument("--peerbench", default="", help="path of relais-peerbench")
    ap.add_argument("--intake", default="", help="path of relais-intake")
    ap.add_argument("--source-dir", default=SOURCE)
    ap.add_argument("--build-dir", default=os.path.join(SOURCE, "build"))
    ap.add_argument("--no-install", action="store_true", help="do not run install-deps.sh --bench")
    ap.add_argument("--dir", default=os.environ.get("TMPDIR", "/var/tmp"),
                    help="parent of the temporary data folders (must be a disk, not tmpfs)")
    ap.add_argument("--page", type=int, default=2000,
                    help="replay: events per request, Relais's fetch max and Redis's "
                         "XRANGE COUNT alike (1..10000, default 2000)")
    ap.add_argument("--replay-window", type=int, default=2,
                    help="replay: Relais fetches in flight (1..8, default 2)")
    ap.add_argument("--json", help="also write every round's figures to this file")
    args = ap.parse_args()

    systems = [s for s in args.only.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s!r} (one of {', '.join(SYSTEMS)})")
    profile = dict(PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"])
    rounds = args.rounds or profile.pop("rounds")
    profile.pop("rounds", None)
    if rounds < 1:
        ap.error("--rounds must be at least 1")
    if not 1 <= args.page <= 10000:
        ap.error("--page must be 1..10000 (the fetch protocol's max)")
    if not 1 <= args.replay_window <= 8:
        ap.error("--replay-window must be 1..8")

    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if not args.no_install:
        script = os.path.join(args.source_dir, "deploy", "install-deps.sh")
        if subprocess.run(["bash", script, "--bench"], stdout=sys.stderr).returncode != 0:
            log("peers: deploy/install-deps.sh --bench failed")
            return 1
    peerbench = args.peerbench
    intake = os.path.abspath(args.intake or os.path.join(args.build_dir, "services", "intake",
                                                          "relais-intake"))
    if not peerbench or not os.access(peerbench, os.X_OK):
        if args.smoke:
            log("peers: relais-peerbench is not built (hiredis, libnats or libmosquitto missing "
                "at configure time): skipped")
            return 77
        log("peers: building relais-peerbench in " + args.build_dir)
        # The build talks on stderr: stdout is the table
        if subprocess.run(["cmake", "-S", args.source_dir, "-B", args.build_dir],
                          stdout=sys.stderr).returncode \
           or subprocess.run(["cmake", "--build", args.build_dir, "-j2", "--target",
                              "relais-peerbench", "relais-intake"], stdout=sys.stderr).returncode:
            log("peers: could not build relais-peerbench")
            return 1
        peerbench = os.path.join(args.build_dir, "tests", "bench", "relais-peerbench")
    peerbench = os.path.abspath(peerbench)
    args.intake = intake
    missing = [s for s in systems if s != "relais" and not shutil.which(
        {"redis": "redis-server", "nats": "nats-server", "mosquitto": "mosquitto"}[s])]
    if missing or ("relais" in systems and not os.access(intake, os.X_OK)):
        log(f"peers: missing servers: {', '.join(missing) or 'relais-intake at ' + intake}")
        return 77 if args.smoke else 1

    base = os.path.abspath(args.dir)
    fs = filesystem(base)
    results = {s: [] for s in systems}
    errors = []
    counts = ["--count1", str(profile["count1"]), "--count100", str(profile["count100"]),
              "--count1000", str(profile["count1000"]), "--e2e-rate", str(profile["e2e_rate"]),
              "--e2e-count", str(profile["e2e_count"]),
              "--page", str(args.page), "--replay-window", str(args.replay_window)]
    for rnd in range(rounds):
        # Alternate: each round starts with the next system
        order = systems[rnd % len(systems):] + systems[:rnd % len(systems)]
        for system in order:
            folder = tempfile.mkdtemp(prefix=f"peers-{system}-", dir=base)
            proc = None
            try:
                proc, endpoint = start_server(system, folder, args)
                log(f"peers: round {rnd + 1}/{rounds}: {system} (pid {proc.pid}) ...")
                run = subprocess.run([peerbench, "--system", system, "--run", str(rnd + 1)]
                                     + endpoint + counts, capture_output=True, text=True,
                                     timeout=1200)
                figures = json.loads(run.stdout.strip().splitlines()[-1]) if run.stdout.strip() else {}
                if run.returncode or figures.get("error"):
                    errors.append(f"round {rnd + 1} {system}: "
                                  f"{figures.get('error') or run.stderr.strip() or 'exit ' + str(run.returncode)}")
                figures["round"] = rnd + 1
                results[system].append(figures)
            except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
                errors.append(f"round {rnd + 1} {system}: {e}")
            finally:
                code = stop(proc.pid) if proc else None
                if proc and code not in (0, None):
                    errors.append(f"round {rnd + 1} {system}: the server exited with {code}: "
                                  + tail(folder, system)[-200:])
                shutil.rmtree(folder, ignore_errors=True)

    print(f"peers.py - {profile['count1']:,} / {profile['count100']:,} / {profile['count1000']:,} "
          f"events with 1 / 100 / 1000 in flight; end to end paced at {profile['e2e_rate']:,}/s "
          f"x {profile['e2e_count']:,} events; 300-byte MessagePack events")
    print(f"replay: pages of {args.page:,} events for Relais (fetch max, {args.replay_window} "
          f"in flight) and Redis (XRANGE COUNT, one at a time)")
    print(f"machine: {os.cpu_count()} CPUs, data folders in {base} ({fs})"
          + ("  WARNING: in memory, fsync costs nothing" if fs in ("tmpfs", "ramfs") else ""))
    for s, v in versions(systems, intake).items():
        print(f"  {s:10} {v}")
    print()
    print(table(results, systems, rounds))
    print()
    print("durability when the producer gets its ack:")
    for s in systems:
        print(f"  {s:10} {DURABILITY[s]}")
    if errors:
        print()
        print("errors:")
        for e in errors:
            print("  " + e)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"profile": profile, "rounds": rounds, "results": results,
                       "errors": errors}, f, indent=1)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
