"""Webhook sink: a local HTTP server on 127.0.0.1. While it answers 500,
then while it answers too late (past --timeout), nothing is acknowledged
and the notifier keeps retrying; once it answers 2xx every delivery is
POSTed successfully once and acknowledged."""
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from relais_harness import Bus, Producer, binary, check, ok, sample_signal
from router_helpers import router_events, router_section

state = {"mode": "error", "errors": 0, "slow": 0, "ok": [], "bad": 0}
lock = threading.Lock()


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            mode = state["mode"]
        if mode == "error":
            with lock:
                state["errors"] += 1
            self.send_response(500)
            self.end_headers()
            return
        if mode == "slow":
            with lock:
                state["slow"] += 1
            time.sleep(2.5)            # past the notifier's 1 s timeout
            try:
                self.send_response(200)
                self.end_headers()
            except OSError:
                pass
            return
        d = json.loads(body)
        if self.headers.get("Content-Type") != "application/json" or d.get("partner") != "samu_social":
            with lock:
                state["bad"] += 1
        with lock:
            state["ok"].append((d["mseq"], time.time()))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/relais"

bus = Bus("webhook", services=["intake", "router"])
router_section(bus, "    partner_heartbeat = 200ms\n")
bus.start("intake")
bus.start("router")
eps = bus.endpoints


def mailbox():
    return bus.request(eps["router"]["api"], {"op": "router.mailbox", "partner": "samu_social"})["partners"][0]


m = 6
p = Producer(eps["intake"]["submit"])
p.run([{"op": "submit", "idem": f"w-{i}",
        "signal": sample_signal(arr=10, persons=3, publics=["famille"], needs=["mise_a_l_abri"])}
       for i in range(m)])
log = open(os.path.join(bus.dir, "notify.log"), "ab")
note = subprocess.Popen([binary("relais-notify"), "--config", bus.config, "--partner", "samu_social",
                         "--timeout", "1s", "--sink", f"webhook:{url}"], stdout=log, stderr=log)
time.sleep(2.5)
check(state["errors"] >= 2, "500 retried", state)
check(mailbox()["acked"] == 0, "nothing acked on 500", mailbox())
with lock:
    state["mode"] = "slow"
deadline = time.time() + 15
while state["slow"] < 2 and time.time() < deadline:
    time.sleep(0.1)
check(state["slow"] >= 2, "timeout retried", state)
check(mailbox()["acked"] == 0, "nothing acked on timeout", mailbox())
with lock:
    state["mode"] = "ok"
deadline = time.time() + 30
while mailbox()["acked"] < m and time.time() < deadline:
    time.sleep(0.2)
check(mailbox()["acked"] == m, "all acked after 2xx", mailbox())
mseqs = [x[0] for x in state["ok"]]
check(sorted(set(mseqs)) == list(range(1, m + 1)), "every delivery posted", mseqs)
check(len(mseqs) == m, "each posted successfully once", mseqs)
check(state["bad"] == 0, "JSON body with the partner", state)
acks = {e["body"]["mseq"]: e["ts"] for e in router_events(bus, ["route.acknowledged"])
        if e["body"]["partner"] == "samu_social"}
for mseq, at in state["ok"]:
    check(acks[mseq] >= int(at * 1e6) - 1000, "acknowledged after the 2xx", mseq)
note.terminate()
check(note.wait(10) == 0, "notifier clean exit")
server.shutdown()
ok("24-webhook")
