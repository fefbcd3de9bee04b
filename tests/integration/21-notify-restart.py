"""Notifier: a partner's relais-notify killed -9 mid-stream and restarted
receives every unacked delivery and nothing it had acked (file sink: each
mseq exactly once, in order); the exec sink retries a failing command and
acks only after exit 0; the stdout sink writes NDJSON."""
import json
import os
import subprocess
import time

from relais_harness import Bus, Producer, binary, check, ok, sample_signal
from router_helpers import router_section

bus = Bus("notify", services=["intake", "router"])
router_section(bus, "    partner_heartbeat = 200ms\n    redeliver = 2s\n")
bus.start("intake")
bus.start("router")
eps = bus.endpoints


def notifier(partner, sink, tag):
    log = open(os.path.join(bus.dir, f"notify-{tag}.log"), "ab")
    return subprocess.Popen([binary("relais-notify"), "--config", bus.config, "--partner", partner,
                             "--sink", sink], stdout=log, stderr=log)


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def mailbox(partner):
    return bus.request(eps["router"]["api"], {"op": "router.mailbox", "partner": partner})["partners"][0]


def burst(tag, n, **sig):
    p = Producer(eps["intake"]["submit"], window=200)
    p.run([{"op": "submit", "idem": f"{tag}-{i}",
            "signal": sample_signal(arr=1 + i % 20, **sig)} for i in range(n)])
    return len(p.acks)


municipal = {"place": {"arrondissement": 7, "kind": "domaine_municipal"}}
out = os.path.join(bus.dir, "uasa.ndjson")
n = burst("a", 400, **municipal)
note = notifier("uasa", f"file:{out}", "uasa")
deadline = time.time() + 30
while len(lines(out)) < 60 and time.time() < deadline:
    time.sleep(0.01)
note.kill()                    # kill -9 mid-stream
note.wait()
before = len(lines(out))
check(0 < before < n, "killed mid-stream", before)
n += burst("b", 200, **municipal)
note = notifier("uasa", f"file:{out}", "uasa")
deadline = time.time() + 60
while mailbox("uasa")["acked"] < n and time.time() < deadline:
    time.sleep(0.2)
got = [d["mseq"] for d in lines(out)]
check(got == list(range(1, n + 1)), "every mseq once, in order", len(got), n,
      [m for m in set(got) if got.count(m) > 1][:5])
box = mailbox("uasa")
check(box["acked"] == n and box["last"] == n and box["open"] == 0, "all acked", box)
d = lines(out)[0]
check(d["partner"] == "uasa" and d["key"].startswith("SIG-") and "signal" in d["body"] and "op" not in d,
      "delivery line", d)
# The router killed -9 under a running notifier: the notifier notices the
# silence, reconnects, says hello, and gets the rest - each once
bus.kill9("router")
n += burst("r", 150, **municipal)
bus.start("router")
deadline = time.time() + 60
while mailbox("uasa")["acked"] < n and time.time() < deadline:
    time.sleep(0.2)
got = [d["mseq"] for d in lines(out)]
check(got == list(range(1, n + 1)), "after a router kill -9: every mseq once", len(got), n)
check(note.poll() is None, "the notifier rode it out")
note.terminate()
check(note.wait(10) == 0, "notifier clean exit")
# Restart once more with nothing new: nothing is written again
note = notifier("uasa", f"file:{out}", "uasa")
time.sleep(1.5)
note.terminate()
note.wait(10)
check(len(lines(out)) == n, "restart repeats nothing", len(lines(out)), n)

# exec sink: the command fails once, then succeeds; acked only after success
flag = os.path.join(bus.dir, "flag")
execout = os.path.join(bus.dir, "exec.ndjson")
cmd = f"if [ -f {flag} ]; then cat >> {execout}; else touch {flag}; exit 3; fi"
m = burst("c", 5, place={"arrondissement": 9, "kind": "voie_publique"}, tents=1)   # maraudes + drihl
note = notifier("maraudes", f"exec:{cmd}", "maraudes")
deadline = time.time() + 30
while mailbox("maraudes")["acked"] < m and time.time() < deadline:
    time.sleep(0.2)
check(os.path.exists(flag), "the command failed once")
got = [d["mseq"] for d in lines(execout)]
check(got == list(range(1, m + 1)), "exec sink got each once after a retry", got)
check(mailbox("maraudes")["acked"] == m, "exec acked", mailbox("maraudes"))
note.terminate()
note.wait(10)

# stdout sink
proc = subprocess.Popen([binary("relais-notify"), "--config", bus.config, "--partner", "drihl",
                         "--sink", "stdout"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
deadline = time.time() + 30
while mailbox("drihl")["acked"] < m and time.time() < deadline:
    time.sleep(0.2)
proc.terminate()
outtext, _ = proc.communicate(timeout=10)
got = [json.loads(line)["mseq"] for line in outtext.decode().splitlines()]
check(got == list(range(1, m + 1)), "stdout NDJSON", got)

# A state file beyond the mailbox (the router's store was replaced): the
# notifier must not skip the mailbox's deliveries, nor ack them unseen
m2 = m + burst("e", 1, place={"arrondissement": 9, "kind": "voie_publique"}, tents=1)
state = os.path.join(bus.dir, "var", "notify-drihl.state")
check(open(state).read().strip() == str(m), "the notifier's state file", state)
with open(state, "w") as f:
    f.write("999\n")
proc = subprocess.Popen([binary("relais-notify"), "--config", bus.config, "--partner", "drihl",
                         "--sink", "stdout"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
deadline = time.time() + 30
while mailbox("drihl")["acked"] < m2 and time.time() < deadline:
    time.sleep(0.2)
proc.terminate()
outtext, _ = proc.communicate(timeout=10)
got = [json.loads(line)["mseq"] for line in outtext.decode().splitlines()]
check(got == [m2], "state ahead of the mailbox: delivery not skipped", got, m2)

# A bad sink spec and an unknown partner are refused at start
bad = subprocess.run([binary("relais-notify"), "--config", bus.config, "--partner", "drihl",
                      "--sink", "carrier-pigeon"], capture_output=True)
check(bad.returncode != 0 and b"sink" in bad.stderr, "bad sink refused", bad.stderr)
bad = subprocess.run([binary("relais-notify"), "--config", bus.config, "--partner", "nobody",
                      "--sink", "stdout"], capture_output=True, timeout=20)
check(bad.returncode != 0 and b"unauthorized" in bad.stderr, "unknown partner refused", bad.stderr)
check(bus.stop("router") == 0, "router clean stop")
ok("21-notify-restart")
