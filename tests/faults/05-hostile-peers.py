"""Hostile peers on intake's submit endpoint (RELIABILITY-TESTS T19, T21;
CI-sized).

T21: 1,000 raw TCP connections that never finish the ZMTP handshake. A
legitimate producer is served meanwhile (every report acked; its ack
latency is printed), and intake drops the half-open connections by itself
once the handshake interval (5 s) has passed: each of our sockets sees
intake close it, and intake's descriptor count comes back down while our
ends are still open.

T19: hostile frames - oversize, 100 parts, bad UTF-8, escape codes, a 2^32
array header, depth 33, trailing bytes, not msgpack - from ZeroMQ peers.
Intake never crashes; every frame that reaches it gets a clear error (no
`ok:true`, a code); oversize peers are disconnected by libzmq (their frame
never reaches intake); its memory grows by less than 10 MB; intake still
acks a valid report at the end (the memory bound is checked in the gcc
pass; ASan's quarantine holds freed memory). CI sends 10,000 frames; RELAIS_SOAK=1 sends
100,000.
"""
import os
import random
import resource
import select
import socket
import subprocess
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(__file__))
from relais_harness import Bus, Producer, binary, check, fault_row, free_port, ok, pack, sample_signal, unpack

SOAK = os.environ.get("RELAIS_SOAK") == "1"
FRAMES = 100_000 if SOAK else 10_000
HALF_OPEN = 1000

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def hostile_frames(rng):
    """(kind, frames) of one hostile message; frames: list of bytes."""
    good = {"op": "submit", "idem": "h", "signal": sample_signal()}
    kinds = [
        ("not_msgpack", [b"", b"\xc1\xc1\xc1"]),
        ("truncated", [b"", pack(good)[:-7]]),
        ("trailing", [b"", pack(good) + b"\x00\x01"]),
        ("array32_huge", [b"", b"\xdd\xff\xff\xff\xff"]),
        ("map32_huge", [b"", b"\x81\xa2op\xdf\xff\xff\xff\xff"]),
        ("depth_33", [b"", b"\x91" * 33 + b"\xc0"]),
        ("bad_utf8", [b"", pack({"op": "submit", "idem": "u",
                                 "signal": dict(good["signal"], source={"kind": "115", "name": "BADUTF8"})}
                                ).replace(b"BADUTF8", b"\xff\xfe\xfdUTF8")]),
        ("escape_codes", [b"", pack({"op": "submit", "idem": "e",
                                     "signal": dict(good["signal"], summary="\x1b[31mred\x1b[0m")})]),
        ("parts_100", [b""] + [b"x"] * 99),
        ("no_delimiter", [b"\x92\xc1"]),             # PROTOCOL: the delimiter is optional, the bytes are not
        ("unknown_op", [b"", pack({"op": "explode"})]),
        ("random_bytes", [b"", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))]),
    ]
    return kinds[rng.randrange(len(kinds))]


procs = []
try:
    bus = Bus("hostile")
    port = free_port()
    cfg = bus.config + ".tcp"
    with open(cfg, "w") as f:
        f.write("relais\n    data = var\nintake\n"
                f"    submit = \"tcp://127.0.0.1:{port}\"\n    records = \"{bus.ep('intake-records')}\"\n"
                f"    pub = \"{bus.ep('intake-pub')}\"\n    fetch = \"{bus.ep('intake-fetch')}\"\n"
                "    heartbeat = 1s\n")
    os.makedirs(os.path.join(bus.dir, "var"), exist_ok=True)
    log = open(os.path.join(bus.dir, "intake.log"), "ab")
    intake = subprocess.Popen([binary("relais-intake"), "--config", cfg], stdout=log, stderr=log)
    procs.append(intake)
    submit = f"tcp://127.0.0.1:{port}"
    Producer(submit, window=10).run([{"op": "submit", "idem": "warmup", "signal": sample_signal()}], deadline=30)
    base_fds = fds(intake.pid)
    base_rss = rss_kib(intake.pid)

    # -- T21: half-open connections -------------------------------------------
    raws = []
    for i in range(HALF_OPEN):
        s = socket.create_connection(("127.0.0.1", port))
        if i % 2:
            s.sendall(b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f")   # a greeting's first bytes, no more
        raws.append(s)
    # The peak is printed, not trusted: under ASan on a busy machine intake
    # accepts slowly and the first connections time out (5 s) before the
    # last are accepted. The proof that every connection reached intake and
    # was dropped by it is on our side: each socket sees intake close it.
    peak_fds, t_end = 0, time.time() + 4.0
    while time.time() < t_end:
        peak_fds = max(peak_fds, fds(intake.pid))
        if peak_fds >= base_fds + HALF_OPEN // 2:
            break
        time.sleep(0.05)
    lat = []
    prod = Producer(submit, window=1)
    for i in range(300):
        t0 = time.perf_counter()
        prod.run([{"op": "submit", "idem": f"legit-{i}", "signal": sample_signal()}], deadline=30)
        lat.append((time.perf_counter() - t0) * 1000)
    check(len(prod.acks) == 300 and not prod.errors, "every legitimate report acked", len(prod.acks), prod.errors)
    lat.sort()
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    poller, by_fd = select.poll(), {s.fileno(): s for s in raws}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    still_open, deadline = len(by_fd), time.time() + 60
    while still_open and time.time() < deadline:
        for fd, _ in poller.poll(200):
            try:
                data = by_fd[fd].recv(4096)
            except OSError:
                data = b""
            if not data:                 # intake closed it (data would be its greeting)
                poller.unregister(fd)
                still_open -= 1
    closed_by_intake = HALF_OPEN - still_open
    while time.time() < deadline and fds(intake.pid) > base_fds + 20:
        time.sleep(0.2)
    dropped_after = fds(intake.pid)
    check(closed_by_intake == HALF_OPEN, "intake closed every half-open connection", HALF_OPEN, closed_by_intake)
    check(peak_fds > base_fds, "the half-open connections reached intake", base_fds, peak_fds)
    check(dropped_after <= base_fds + 20, "intake dropped the half-open connections", base_fds, dropped_after)
    for s in raws:
        s.close()
    print(f"T21: {HALF_OPEN} half-open connections: intake fds {base_fds} -> {peak_fds} -> {dropped_after}; "
          f"legitimate ack p50 {p50:.2f} ms p99 {p99:.2f} ms")

    # -- T19: hostile frames --------------------------------------------------
    rng = random.Random(19)
    ctx = zmq.Context.instance()
    sent = replied = good_replies = oversize = 0
    codes = {}
    sock = None
    batch = 200
    i = 0
    while i < FRAMES:
        if sock is None:
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(submit)
        outstanding = 0
        for _ in range(min(batch, FRAMES - i)):
            i += 1
            if rng.random() < 0.02:
                # Oversize: beyond ZMQ_MAXMSGSIZE, libzmq drops the peer
                # before intake sees a byte; a fresh peer goes on
                big = ctx.socket(zmq.DEALER)
                big.setsockopt(zmq.LINGER, 0)
                big.connect(submit)
                big.send_multipart([b"", b"\x00" * 70_000])
                big.close()
                oversize += 1
                continue
            kind, frames = hostile_frames(rng)
            sock.send_multipart(frames)
            sent += 1
            outstanding += 1
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        deadline = time.time() + 10
        while outstanding and time.time() < deadline:
            if not poller.poll(500):
                continue
            parts = sock.recv_multipart()
            reply = unpack(parts[-1])
            outstanding -= 1
            replied += 1
            if reply.get("ok") is not False or not reply.get("code"):
                good_replies += 1
            codes[reply.get("code")] = codes.get(reply.get("code"), 0) + 1
        check(outstanding == 0, "every hostile frame got a reply", outstanding, i)
        check(intake.poll() is None, "intake is alive", i)
    sock.close()
    time.sleep(1)
    grown = rss_kib(intake.pid) - base_rss
    check(good_replies == 0, "no hostile frame was accepted", good_replies, codes)
    check(replied == sent, "every frame that reached intake was answered with an error", replied, sent)
    # AddressSanitizer's quarantine keeps freed memory: the bound holds for
    # the real build only (the sanitizer pass still checks everything else)
    if not os.environ.get("RELAIS_SANITIZED"):
        check(grown < 10 * 1024, "intake's memory grew by less than 10 MB", grown)
    final = Producer(submit, window=1)
    final.run([{"op": "submit", "idem": "after-the-storm", "signal": sample_signal()}], deadline=30)
    check(len(final.acks) == 1, "a valid report is still acked")
    print(f"T19: {sent} hostile frames answered ({codes}), {oversize} oversize peers dropped, "
          f"RSS +{grown} KiB")
    fault_row("hostile peers (T19, T21)", sent + oversize + HALF_OPEN,
              f"{HALF_OPEN} half-open, {sent} hostile frames, {oversize} oversize", 0, 0,
              "half-open dropped by intake", f"legit ack p99 {p99:.1f} ms; RSS +{grown // 1024} MiB")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
ok("05-hostile-peers")
