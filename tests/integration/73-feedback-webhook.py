"""A producer's webhook: relais-notify --producer POSTs each status change
of that producer's reports (and of no other producer's) to a local HTTP
server on 127.0.0.1. While the server answers 500 nothing is acknowledged
and the notifier retries; killed (-9) and restarted, it POSTs what it
missed; at the end every change was POSTed successfully, in order, once."""
import atexit
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from relais_harness import Bus, binary, check, ok, sample_signal

state = {"mode": "error", "errors": 0, "ok": [], "bad": 0}
lock = threading.Lock()


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            mode = state["mode"]
            if mode == "error":
                state["errors"] += 1
        if mode == "error":
            self.send_response(500)
            self.end_headers()
            return
        d = json.loads(body)
        with lock:
            if self.headers.get("Content-Type") != "application/json" or d.get("producer") != A:
                state["bad"] += 1
            state["ok"].append(d)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


A = "115:115 de Paris"
server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/relais"

bus = Bus("feedback-webhook", services=["intake", "feedback"])
bus.start("intake")
bus.start("feedback")
state_file = os.path.join(bus.dir, "hook.state")


children = []


@atexit.register
def end_children():
    # A failed check exits early: end the notifiers this test started
    for p in children:
        if p.poll() is None:
            p.kill()
            p.wait()


def notifier():
    log = open(os.path.join(bus.dir, "notify.log"), "ab")
    children.append(subprocess.Popen([binary("relais-notify"), "--config", bus.config, "--producer", A,
                             "--state", state_file, "--timeout", "2s", "--sink", f"webhook:{url}"],
                            stdout=log, stderr=log))
    return children[-1]


def submit(n, tag, source=None):
    for i in range(n):
        sig = sample_signal(arr=1 + i % 20)
        if source:
            sig["source"] = source
        check(bus.submit(sig, idem=f"{tag}-{i}")["ok"], "submitted")


hook = notifier()
submit(3, "a1")
submit(2, "b1", source={"kind": "association", "name": "Aurore"})
end = time.time() + 20
while time.time() < end and state["errors"] < 3:
    time.sleep(0.1)
check(state["errors"] >= 3 and not state["ok"], "retried while failing, nothing acked", state["errors"])
with lock:
    state["mode"] = "ok"
end = time.time() + 20
while time.time() < end and len(state["ok"]) < 6:
    time.sleep(0.1)
time.sleep(1.0)                              # its state written (the at-least-once window is
hook.kill()                                  # proto/router.md §6's): -9, then more happens
hook.wait()
submit(3, "a2")
hook = notifier()


def expected():
    evs = bus.fetch_all("feedback")
    return [(e["key"], e["body"]["status"]) for e in evs if e["body"]["producer"] == A]


end = time.time() + 30
while time.time() < end and len(state["ok"]) < len(expected()):
    time.sleep(0.1)
time.sleep(1.0)                              # anything more would be a duplicate
hook.terminate()
check(hook.wait(20) == 0, "notifier stops cleanly")
want = expected()
check(len(want) == 12, "A's 6 reports: recu and qualifie each", want)
got = [(d["key"], d["body"]["status"]) for d in state["ok"]]
check(got == want, "every change of A POSTed once, in order", got, want)
check([d["mseq"] for d in state["ok"]] == list(range(1, 13)), "mseq 1..12")
check(state["bad"] == 0, "json, producer A only", state["bad"])
ok("73-feedback-webhook")
