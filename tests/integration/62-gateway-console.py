#!/usr/bin/env python3
"""The operations console in Debian's headless Chromium, driven through the
DevTools protocol over a pipe (--remote-debugging-pipe: no npm, no network):
a report submitted during the test shows in the live stream within 2 s; the
plans panel highlights an overdue action, the capacity panel draws gauges,
the trends panel says plainly that analytics is not configured. The page is
saved as a screenshot (build/Testing/gateway-console.png)."""
import base64
import fcntl
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import zmq

from gateway_client import Gateway, TOKENS
from relais_harness import BIN, CTX, check, ok, pack, sample_signal, unpack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    print("FAIL: chromium is missing: run deploy/install-deps.sh --test", file=sys.stderr)
    sys.exit(1)

g = Gateway("gw-console", services=["intake", "plans", "capacity"])
bus = g.bus
now_us = int(time.time() * 1e6)
stop = threading.Event()


def fake_api(svc, answer):
    sock = CTX.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(bus.endpoints[svc]["api"])
    while not stop.is_set():
        if sock.poll(50):
            ident, _, data = sock.recv_multipart()
            request = unpack(data)
            reply = dict(answer, ok=True, rid=request.get("rid"))
            sock.send_multipart([ident, b"", pack(reply)])
    sock.close()


PLANS = {"plans": [{"id": "PLAN-00000007", "arrondissement": 18, "state": "ouvert", "actions": [
    {"action": 1, "kind": "evaluation_sociale", "owner": "uasa", "due": now_us - 3600_000_000, "state": "ouverte"},
    {"action": 2, "kind": "mise_a_l_abri", "owner": "samu-social", "due": now_us + 86400_000_000, "state": "ouverte"},
]}]}
CAPACITY = {"structures": [
    {"id": "hotel-ibis-19", "kind": "hotel_familles", "places": 120, "occupied": 104, "reserved": 6,
     "forecast": {"slope_per_day": -3, "days_to_full": 3}},
    {"id": "chu-pajol", "kind": "chu", "places": 80, "occupied": 41, "reserved": 0},
    {"id": "lima", "kind": "lima", "places": 200, "occupied": 199, "reserved": 1},
]}
threads = [threading.Thread(target=fake_api, args=a, daemon=True)
           for a in (("plans", PLANS), ("capacity", CAPACITY))]
for t in threads:
    t.start()


class Chromium:
    """Headless Chromium, DevTools protocol on fds 3 (commands) and 4 (replies)."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="relais-chromium-", dir=bus.dir)
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        # Out of the way of 3 and 4 before the child's dup2
        cmd_r2 = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        res_w2 = fcntl.fcntl(res_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_r)
        os.close(res_w)
        log = os.open(os.path.join(bus.dir, "chromium.log"), os.O_WRONLY | os.O_CREAT, 0o600)
        args = [CHROMIUM, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={self.profile}", "--window-size=1400,1100",
                "about:blank"]
        self.pid = os.posix_spawn(CHROMIUM, args, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, cmd_r2, 3), (os.POSIX_SPAWN_DUP2, res_w2, 4),
            (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2)])
        os.close(cmd_r2)
        os.close(res_w2)
        os.close(log)
        self.w = cmd_w
        self.r = res_r
        self.buf = b""
        self.next_id = 0
        self.session = None

    def call(self, method, params=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            if time.time() > deadline:
                raise TimeoutError(method)
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise ConnectionError("chromium went away")
            self.buf += chunk

    def eval(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    def wait(self, expression, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.05)
        return None

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it is going away anyway
            pass
        for _ in range(100):
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.w)
        os.close(self.r)


# Two reports before the page opens: history
for i in range(2):
    st, _, body = g.request("POST", "/v1/signalements", sample_signal(arr=10 + i), token="producer",
                            headers={"Idempotency-Key": f"before-{i}"})
    check(st == 200, "submit before", st, body)

browser = Chromium()
try:
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    browser.session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": 1400, "height": 1100, "deviceScaleFactor": 1, "mobile": False})
    browser.call("Page.enable")
    browser.call("Page.navigate", {"url": f"http://127.0.0.1:{g.port}/#token={TOKENS['operations']}"})
    live = browser.wait("document.querySelector('#conn') && document.querySelector('#conn').textContent === 'en direct'", 20)
    check(live, "the console connects to the stream", browser.eval("document.body.innerText.slice(0, 500)"))
    check(browser.wait("document.querySelectorAll('#events tbody tr').length >= 2", 10),
          "history shows in the stream")
    check(browser.eval("location.hash") == "", "the token is taken out of the address bar")

    # A report submitted now shows in the console; the delay is printed
    signal = sample_signal(arr=13, persons=5, minors=2, publics=["famille", "enfant"], tents=3)
    t0 = time.time()
    st, _, ack = g.request("POST", "/v1/signalements", signal, token="producer",
                           headers={"Idempotency-Key": "during-1"})
    check(st == 200, "submit during", st, ack)
    sid = ack["id"]
    shown = browser.wait(f"Array.from(document.querySelectorAll('#events tbody tr'))"
                         f".some(tr => tr.textContent.includes('{sid}'))", 10)
    elapsed = time.time() - t0
    print(f"console: {sid} shown {elapsed * 1000:.0f} ms after the POST")
    check(shown, "the new report shows in the console")
    row = browser.eval(f"(() => {{ const tr = Array.from(document.querySelectorAll('#events tbody tr'))"
                       f".find(tr => tr.textContent.includes('{sid}')); return tr.className + '|' + tr.textContent; }})()")
    check("level2" in row and "famille" in row and "13" in row, "row carries level colour and publics", row)

    # Panels
    check(browser.wait("document.querySelectorAll('#plans .overdue').length === 1", 10),
          "the overdue action is highlighted", browser.eval("document.querySelector('#plans').innerText"))
    check(browser.wait("document.querySelectorAll('#capacity .gauge').length === 3", 10),
          "one gauge per structure kind", browser.eval("document.querySelector('#capacity').innerText"))
    check("saturation dans 3 j" in browser.eval("document.querySelector('#capacity').innerText"), "forecast shown")
    check(browser.wait("document.querySelector('#trends .unavailable') !== null", 10),
          "trends say analytics is not configured", browser.eval("document.querySelector('#trends').innerText"))
    check("not configured" in browser.eval("document.querySelector('#trends').innerText"),
          "and why", browser.eval("document.querySelector('#trends').innerText"))

    # A filter: only arrondissement 13
    browser.eval("document.querySelector('#arr').value = '13'; "
                 "document.querySelector('#filters').requestSubmit(); true")
    check(browser.wait("(() => { const rows = document.querySelectorAll('#events tbody tr'); "
                       "return rows.length === 1 && rows[0].textContent.includes('" + sid + "'); })()", 10),
          "the arrondissement filter", browser.eval("document.querySelector('#events').innerText"))
    browser.eval("document.querySelector('#arr').value = ''; "
                 "document.querySelector('#filters').requestSubmit(); true")
    browser.wait("document.querySelectorAll('#events tbody tr').length >= 3", 10)

    shot = browser.call("Page.captureScreenshot", {"format": "png"})["data"]
    out_dir = os.path.join(BIN, "Testing")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "gateway-console.png")
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot))
    check(os.path.getsize(path) > 10000, "screenshot saved", path)
    print(f"screenshot: {path}")
finally:
    browser.close()
    stop.set()
check(bus.stop("gateway") == 0, "gateway stops cleanly")
ok("62-gateway-console")
