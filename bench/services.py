"""Start-to-ready time and resident memory of each service, as systemd would see them.

Start-to-ready: from spawning ``antrean <service>`` to its ``READY=1`` on the notify socket,
several cold starts each. Memory: the whole lobby (reference server, scanner on a pty, sync,
headless display) runs under a steady load of scans and calls for ``--minutes`` (10 for the
report); RSS and PSS of each service are sampled throughout and reported at the end, with the
growth from the first minute to the last.

Run: ``.venv/bin/python bench/services.py [--minutes 10] [--starts 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import psutil  # noqa: E402

from bench.stats import percentile, result  # noqa: E402
from devtools.lobby import (  # noqa: E402
    COUNTER_PINS,
    applicant_payload,
    start_lobby,
)

SERVICES = ("scanner", "sync", "display")


def memory(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB."""
    p = psutil.Process(pid)
    full = p.memory_full_info()
    return full.rss / 1e6, getattr(full, "pss", full.rss) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lobby = start_lobby(Path(tmp) / "lobby", echo=None, sound="chime")
        try:
            sup = lobby.sup
            ready = {s: [] for s in SERVICES}
            for _ in range(args.starts):
                for name in SERVICES:
                    sup.restart(name)
                    ready[name].append(sup.wait_ready(name, timeout=60) * 1000)
            for name in SERVICES:
                med = statistics.median(ready[name])
                print(f"{name}: start to READY=1 median {med:.0f} ms, "
                      f"max {max(ready[name]):.0f} ms over {args.starts} starts")
                result(f"{name}: start to ready", med, "ms", target=1500,
                       p99=percentile(ready[name], 99))

            samples = {s: [] for s in SERVICES}
            started = time.monotonic()
            tick = 0
            next_sample = started
            while time.monotonic() - started < args.minutes * 60:
                tick += 1
                lobby.scan(applicant_payload(lobby, time.time())[0])
                if tick % 5 == 0:
                    lobby.press(COUNTER_PINS[tick % 3])
                if time.monotonic() >= next_sample:
                    for name in SERVICES:
                        samples[name].append((time.monotonic() - started,
                                              *memory(sup.children[name].pid)))
                    next_sample += 10
                time.sleep(1.0)
            for name in SERVICES:
                rows = samples[name]
                first = [r for r in rows if r[0] < 60] or rows[:1]
                rss_end, pss_end = rows[-1][1], rows[-1][2]
                growth = rss_end - statistics.mean(r[1] for r in first)
                print(f"{name}: after {args.minutes:g} min RSS {rss_end:.1f} MB, "
                      f"PSS {pss_end:.1f} MB, growth since the first minute {growth:+.1f} MB")
                result(f"{name}: resident memory after {args.minutes:g} min (RSS)", rss_end,
                       "MB", target=60)
                result(f"{name}: proportional memory after {args.minutes:g} min (PSS)",
                       pss_end, "MB", target=60)
        finally:
            lobby.sup.close()
            lobby.scanner_pty.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
