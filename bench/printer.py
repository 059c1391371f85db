"""Does the slip printer slow check-ins down? And how soon is a slip on paper?

The real check-in path (``CheckinDesk.scan``, committed with ``synchronous=FULL``) is timed in
three conditions: no printer service; the printer service (a real ``antrean printer``
process) printing every slip to a network printer double on loopback; and the same service
retrying a printer that is out of paper (status requests every second). Then, one scan at a
time, the time from the committed check-in to the slip's cut arriving at the printer.

    .venv/bin/python bench/printer.py [--scans 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.checkin import CheckinDesk  # noqa: E402
from appliance.config import load_config  # noqa: E402
from appliance.store import Store  # noqa: E402
from bench.scan_latency import setup  # noqa: E402
from bench.stats import percentile, result  # noqa: E402
from devtools.printer_doubles import NetworkPrinterDouble  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def timed_scans(desk: CheckinDesk, codes: list[str], gap_s: float = 0.01) -> list[float]:
    lat = []
    for code in codes:
        t0 = time.perf_counter()
        verdict = desk.scan(code.encode()).verdict
        lat.append((time.perf_counter() - t0) * 1000)
        assert verdict == "ok", verdict
        time.sleep(gap_s)  # applicants arrive; the printer gets its turns at the lock
    return lat


def start_printer(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "appliance.cli", "--config",
                             str(config_path), "printer"], cwd=REPO,
                            stderr=subprocess.DEVNULL, env=dict(os.environ))


def wait(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the printer service did not catch up")
        time.sleep(0.01)


def report(label: str, lat: list[float]) -> tuple[float, float]:
    med, p99 = statistics.median(lat), percentile(lat, 99)
    print(f"{label}: n={len(lat)} median {med:.2f} ms, p99 {p99:.2f} ms, max {max(lat):.2f} ms")
    return med, p99


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=int, default=300)
    args = ap.parse_args()
    n = args.scans
    sequential = max(20, n // 3)
    with tempfile.TemporaryDirectory() as tmp, NetworkPrinterDouble() as double:
        folder = Path(tmp)
        config, _, codes = setup(folder, 3 * n + sequential)
        cfg_path = Path(config.path)
        cfg_path.write_text(cfg_path.read_text().replace('kind = "serial"', 'kind = "none"')
                            + f'[printer]\nkind = "network"\nhost = "127.0.0.1"\n'
                              f"port = {double.port}\nretry_seconds = 1\ncheck_seconds = 5\n")
        config = load_config(cfg_path)
        store = Store(config.storage.path)
        desk = CheckinDesk(store, config)
        none = report("check-in, no printer service", timed_scans(desk, codes[:n]))

        proc = start_printer(cfg_path)
        try:
            wait(lambda: double.connections > 0)            # it has checked the printer
            printing = report("check-in, printer service printing every slip",
                              timed_scans(desk, codes[n:2 * n]))
            wait(lambda: len(double.receipts) == n, timeout=120)
            double.paper_out = True
            wait(lambda: store.get_kv("printer.state", {}).get("state") == "paper_out")
            stuck = report("check-in, printer service retrying a printer out of paper",
                           timed_scans(desk, codes[2 * n:3 * n]))
            store.db.execute("UPDATE slips SET state = 'expired' WHERE state = 'pending'")
            double.paper_out = False
            wait(lambda: store.get_kv("printer.state", {}).get("state") == "ok")
            to_paper = []
            for code in codes[3 * n:]:
                before = len(double.receipts)
                desk.scan(code.encode())
                t0 = time.perf_counter()
                wait(lambda b=before: len(double.receipts) > b)
                to_paper.append((time.perf_counter() - t0) * 1000)
            paper = report("committed check-in to the slip's cut at the printer", to_paper)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            store.close()
    result("check-in p99, no printer service", none[1], "ms", p99=none[1])
    result("check-in p99 while the printer service prints", printing[1], "ms",
           target=15, p99=printing[1])
    result("check-in p99 while the printer service retries (paper out)", stuck[1], "ms",
           target=15, p99=stuck[1])
    result("committed check-in to slip on paper (network printer double)", paper[0], "ms",
           p99=paper[1])
    print(f"p99 ratio printing / no printer: {printing[1] / none[1]:.2f}; "
          f"paper out / no printer: {stuck[1] / none[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
