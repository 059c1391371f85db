"""The call screen's memory per video driver and framebuffer: ``python bench/display_memory.py``.

The real ``antrean display`` process (1920x1080, voice announcements on SDL's dummy audio
driver) runs on each video driver available here: ``dummy`` and ``x11`` on an in-memory X
server (Xvfb, when installed), each with SDL's software window framebuffer and with the GL
texture framebuffer (``display.framebuffer``). While a call is committed every 2 s (the screen
flashes, the voice is built and played), its proportional set size (PSS, from
``/proc/PID/smaps_rollup``: shared libraries counted by share, as the Pi's memory sees them)
is sampled every 0.25 s; the median and p99 are reported per combination, with the ratio
accelerated / software per driver. Target: under 60 MB PSS on every driver the appliance uses.
``kmsdrm`` (the Pi) needs a KMS device and is measured in the booted VM.

Run: ``.venv/bin/python bench/display_memory.py [--seconds 20]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import TZ, appointment, schedule_doc, sign_doc, write_config  # noqa: E402

from appliance.call_queue import CallQueue  # noqa: E402
from appliance.checkin import CheckinDesk  # noqa: E402
from appliance.config import load_config  # noqa: E402
from appliance.schedule import save_schedule, verify_schedule  # noqa: E402
from appliance.store import Store  # noqa: E402
from bench.stats import percentile, result  # noqa: E402
from devtools.supervisor import Supervisor  # noqa: E402
from display.service import choose_framebuffer  # noqa: E402

FRAMEBUFFERS = ("software", "accelerated")
TARGET_MB = 60.0
CALL_EVERY_S = 2.0


def pss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss line for process {pid}")


def lobby_of_today(folder: Path, framebuffer: str) -> tuple:
    """A config, today's signed schedule and 40 applicants checked in (real clock)."""
    folder.mkdir(parents=True)
    config = load_config(write_config(
        folder / "antrean.toml", folder / "antrean.db",
        f'[display]\nframebuffer = "{framebuffer}"\nsound = "voice"\n'
        'health_file = "display.json"\n'))
    now = datetime.now(TZ)
    day = now.date().isoformat()
    start = max(now - timedelta(minutes=5), now.replace(hour=0, minute=0)).strftime("%H:%M")
    codes = [f"MEM{i:05d}" for i in range(40)]
    names = ["Andi Saputra", "Siti Rahmawati", "Budi Santoso", "Dewi Lestari"]
    doc = schedule_doc(day, [appointment(c, day, start, minutes=120, name=names[i % 4],
                                         salutation=("Bapak", "Ibu")[i % 2])
                             for i, c in enumerate(codes)])
    store = Store(config.storage.path)
    save_schedule(store, verify_schedule(*sign_doc(doc), config), source="import", etag=None)
    desk = CheckinDesk(store, config)
    for code in codes:
        desk.scan(code)
    return config, store


def measure(driver: str, framebuffer: str, seconds: float, interval: float,
            workdir: Path) -> list[float]:
    config, store = lobby_of_today(workdir / f"{driver}-{framebuffer}", framebuffer)
    queue = CallQueue(store, config)
    env = {"SDL_VIDEODRIVER": driver, "SDL_AUDIODRIVER": "dummy",
           "CACHE_DIRECTORY": str(workdir / "voice-cache")}
    samples: list[float] = []
    with Supervisor(workdir / f"run-{driver}-{framebuffer}", echo=None) as sup:
        if driver == "x11":
            env["DISPLAY"] = sup.start_virtual_x()
        sup.start("display", [sys.executable, "-m", "appliance.cli", "--config", config.path,
                              "display", "--size", "1920x1080"], env=env)
        sup.wait_ready("display", timeout=60)
        pid = sup.children["display"].pid
        stop = threading.Event()
        counter = [0]

        def officers() -> None:
            while not stop.wait(CALL_EVERY_S):
                counter[0] += 1
                if counter[0] % 3:
                    queue.call_next(1)
                else:
                    queue.recall(1)

        queue.call_next(1)
        worker = threading.Thread(target=officers, daemon=True)
        worker.start()
        time.sleep(3.0)                         # warm up: fonts, first voice clips
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            samples.append(pss_mb(pid))
            time.sleep(interval)
        stop.set()
        worker.join(5)
    store.close()
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--interval", type=float, default=0.25)
    args = ap.parse_args()
    os.environ.pop("SDL_FRAMEBUFFER_ACCELERATION", None)
    drivers = ["dummy"] + (["x11"] if shutil.which("Xvfb") else [])
    if "x11" not in drivers:
        print("Xvfb is not installed: x11 not measured (apt-get install xvfb)")
    print(f"display PSS over {args.seconds:g} s per combination, a call every "
          f"{CALL_EVERY_S:g} s, 1920x1080, voice on (MB):")
    medians: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for driver in drivers:
            for fb in FRAMEBUFFERS:
                samples = measure(driver, fb, args.seconds, args.interval, Path(tmp))
                med, p99 = statistics.median(samples), percentile(samples, 99)
                medians[driver, fb] = med
                auto = choose_framebuffer("auto", driver, environ={}) == fb
                print(f"  {driver:6} {fb:12} median {med:6.1f}  p99 {p99:6.1f}  max "
                      f"{max(samples):6.1f}  (n={len(samples)}){'  <- auto' if auto else ''}")
                result(f"display PSS, {driver}, {fb} framebuffer", med, "MB",
                       target=TARGET_MB if auto else None, p99=p99,
                       note="the appliance's choice" if auto else "")
    for driver in drivers:
        ratio = medians[driver, "accelerated"] / medians[driver, "software"]
        print(f"  {driver:6} accelerated / software: {ratio:.2f}x")
        result(f"display PSS accelerated / software, {driver}", ratio, "x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
