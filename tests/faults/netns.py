"""Two test hosts on one machine: network namespaces joined by a veth pair.

Addresses are link-local ones the test assigns itself inside its own
namespaces (169.254.<n>.1 and .2); nothing leaves the machine. Names carry
the test's PID so that parallel runs do not collide. Everything is removed
by close(), also after a failure.
"""
import os
import subprocess


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


class Hosts:
    def __init__(self, tag):
        n = os.getpid() % 200 + 20
        self.a, self.b = f"relais-{tag}-a{os.getpid()}", f"relais-{tag}-b{os.getpid()}"
        self.va, self.vb = f"rla{os.getpid() % 100000}", f"rlb{os.getpid() % 100000}"
        self.ip_a, self.ip_b = f"169.254.{n}.1", f"169.254.{n}.2"
        sh("ip", "netns", "add", self.a)
        sh("ip", "netns", "add", self.b)
        sh("ip", "link", "add", self.va, "type", "veth", "peer", "name", self.vb)
        sh("ip", "link", "set", self.va, "netns", self.a)
        sh("ip", "link", "set", self.vb, "netns", self.b)
        for ns, dev, ip in ((self.a, self.va, self.ip_a), (self.b, self.vb, self.ip_b)):
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def run_in(self, ns, argv):
        """argv prefixed to run inside namespace ns ('a' or 'b')."""
        return ["ip", "netns", "exec", self.a if ns == "a" else self.b, *argv]

    def cut(self):
        sh("ip", "netns", "exec", self.b, "ip", "link", "set", self.vb, "down")

    def heal(self):
        sh("ip", "netns", "exec", self.b, "ip", "link", "set", self.vb, "up")

    def close(self):
        for ns in (self.a, self.b):
            sh("ip", "netns", "del", ns, check=False)


def available():
    if os.geteuid() != 0:
        return False
    probe = f"relais-probe{os.getpid()}"
    ok = sh("ip", "netns", "add", probe, check=False).returncode == 0
    sh("ip", "netns", "del", probe, check=False)
    return ok
