"""What plans' system tests (30-39) share: level-2 situations, waiting
until plans has applied what its sources published, and --dump."""
import json
import subprocess
import time

from relais_harness import binary, now_us, sample_signal


def cell_latlon(row, col):
    """The centre of grid cell C<row>-<col> (proto/README.md §8.1)."""
    return 48.80 + (row + 0.5) * 0.00225, 2.22 + (col + 0.5) * 0.0034


def situation_report(i, n, elsewhere=False):
    """Report n on situation i: a family with a child (level 2: mineurs) at
    the situation's own cell, with one identified person; `elsewhere` puts
    the same person at a cell of its own (attachment by person_ref)."""
    row, col = (1 + i // 70, 1 + i % 70) if not elsewhere else (40 + n, 1 + i % 70)
    lat, lon = cell_latlon(row, col)
    return sample_signal(
        arr=1 + i % 20, persons=3, minors=1, publics=["famille", "enfant"],
        place={"arrondissement": 1 + i % 20, "kind": "voie_publique", "lat": lat, "lon": lon},
        people=[{"name": f"Personne {i}", "siao_id": f"SIAO-{i:06d}"}])


def noise_report(j):
    """A level-1 report: no position, no person, nothing that makes level 2."""
    return sample_signal(arr=1 + j % 20)


def plans_status(bus):
    return bus.request(bus.endpoints["plans"]["fetch"], {"op": "status"})


def wait_caught_up(bus, sources=("intake",), timeout=60):
    """Until plans has applied every event its sources hold."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        want = {}
        for src in sources:
            fetch = bus.endpoints[src]["fetch"] if src in bus.endpoints else bus.ep(f"{src}-fetch")
            want[src] = bus.request(fetch, {"op": "status"})["last"]
        try:
            st = plans_status(bus)
        except TimeoutError:
            time.sleep(0.2)
            continue
        applied = {s["src"]: s["applied"] for s in st.get("sources", [])}
        if all(applied.get(s, -1) >= want[s] for s in sources):
            return st
        time.sleep(0.1)
    raise TimeoutError(f"plans not caught up: {plans_status(bus)}")


def dump(bus):
    """relais-plans --dump: one JSON object per plan."""
    out = subprocess.run([binary("relais-plans"), "--config", bus.config, "--dump"],
                         capture_output=True, check=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines()]
