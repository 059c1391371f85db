"""Call screen cost and latency: ``python bench/display.py [--frames N] [--trials N]``.

1. CPU ms per frame at 1920x1080 (``time.process_time``): the naive renderer (everything
   re-rendered without caches and the whole screen flipped each frame) against the real one
   (cached text, changed widgets only, ``display.update(rects)``), idle (scrolling ticker) and
   during a call (flashing box).
2. The idle screen in the real loop capped at 30 fps: share of one core over a few seconds.
3. Commit-to-screen latency: a writer process commits calls through ``CallQueue``; the render loop
   notes when the frame showing each call has been handed to the display.

Runs headless (SDL dummy drivers) in a temporary folder; prints medians, p99 and ratios.
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

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pygame  # noqa: E402
from test_display_world import Mono, Office  # noqa: E402

from bench.stats import percentile, result  # noqa: E402
from display.screen import Screen  # noqa: E402
from display.service import render_step  # noqa: E402

LONG_NEWS = ["Harap siapkan dokumen asli Anda: KTP, Kartu Keluarga dan akta kelahiran.",
             "Dilarang merokok di ruang tunggu.", "Terima kasih atas kesabaran Anda."]

WRITER = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
import time
from test_display_world import Wall
from appliance.clock import Clock
from appliance.config import load_config
from appliance.store import Store
from appliance.call_queue import CallQueue
config = load_config({config!r})
store = Store(config.storage.path)
queue = CallQueue(store, config, Clock(store, config, wall=Wall()))
import random
for line in sys.stdin:
    counter = int(line)
    time.sleep(random.uniform(0.0, 0.1))    # commit at any point of the renderer's frame
    queue.recall(counter)
    print(time.time(), flush=True)
"""


def report(label, samples_ms):
    print(f"  {label:<34} median {statistics.median(samples_ms):7.3f} ms"
          f"   p99 {percentile(samples_ms, 99):7.3f} ms", flush=True)


def frame_costs(office, naive: bool, frames: int, during_call: bool) -> list[float]:
    surface = pygame.display.set_mode((1920, 1080))
    mono = Mono()
    view = office.view(mono)
    screen = Screen(surface, office.config, wall=office.wall, naive=naive)
    render_step(view, screen, mono.t)
    if during_call:
        office.queue.recall(1)
    costs = []
    for _ in range(frames):
        mono.t += 1 / 30
        start = time.process_time()
        render_step(view, screen, mono.t)   # naive: frame() returns the whole screen
        costs.append((time.process_time() - start) * 1000)
        if during_call and mono.t - screen.moment_start > 4.0:   # stay within the flash
            office.queue.recall(1)
    view.close()
    return costs


def idle_share(office, seconds: float) -> float:
    surface = pygame.display.set_mode((1920, 1080))
    view = office.view(time.monotonic)
    screen = Screen(surface, office.config, wall=office.wall)
    clock = pygame.time.Clock()
    for _ in range(10):                       # warm the caches
        render_step(view, screen, time.monotonic())
        clock.tick(30)
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.monotonic() - wall0 < seconds:
        render_step(view, screen, time.monotonic())
        clock.tick(30)
    view.close()
    return (time.process_time() - cpu0) / (time.monotonic() - wall0) * 100


def latency(office, trials: int) -> list[float]:
    surface = pygame.display.set_mode((1920, 1080))
    view = office.view(time.monotonic)
    screen = Screen(surface, office.config, wall=office.wall)
    clock = pygame.time.Clock()
    code = WRITER.format(root=str(ROOT), tests=str(ROOT / "tests"), config=office.config.path)
    writer = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    view.poll()                         # the baseline: calls before this are history
    results = []
    try:
        for trial in range(trials):
            counter = trial % 3 + 1
            writer.stdin.write(f"{counter}\n")
            writer.stdin.flush()
            give_up = time.monotonic() + 5
            while True:                     # the service's loop, unchanged
                if time.monotonic() > give_up:
                    raise SystemExit(f"call {trial} never reached the screen: "
                                     f"{view.snapshot.status}")
                now = time.monotonic()
                snap, new = view.poll()
                screen.feed(snap, new, now)
                dirty = screen.frame(now)
                if dirty:
                    pygame.display.update(dirty)
                if new:                     # this frame drew the call's counter row
                    on_screen = time.time()
                    break
                clock.tick(30)
            line = writer.stdout.readline()
            if not line:
                raise SystemExit("the writer process died; see its error above")
            results.append((on_screen - float(line)) * 1000)
            clock.tick(30)
    finally:
        writer.stdin.close()
        writer.wait(timeout=10)
    view.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    pygame.display.init()
    pygame.font.init()
    with tempfile.TemporaryDirectory() as tmp:
        office = Office(Path(tmp), counters=8, announcements=LONG_NEWS)
        office.check_in(12)
        for counter in (1, 2, 3):
            office.queue.call_next(counter)
        print("CPU per frame at 1920x1080 (process time):")
        results = {}
        for label, naive, call in (("naive, idle", True, False), ("real, idle", False, False),
                                   ("naive, during a call", True, True),
                                   ("real, during a call", False, True)):
            results[label] = frame_costs(office, naive, args.frames, call)
            report(label, results[label])
        for state in ("idle", "during a call"):
            naive = statistics.median(results[f"naive, {state}"])
            real = statistics.median(results[f"real, {state}"])
            print(f"  naive / real, {state:<14}        {naive / real:6.1f}x")
            result(f"CPU per frame 1920x1080, {state}, real renderer", real, "ms",
                   p99=percentile(results[f"real, {state}"], 99))
            result(f"CPU per frame 1920x1080, {state}, naive full redraw", naive, "ms",
                   p99=percentile(results[f"naive, {state}"], 99))
            result(f"naive / real CPU per frame, {state}", naive / real, "x", target=5,
                   lower_is_better=False)
        share = idle_share(office, args.idle_seconds)
        print(f"Idle real loop at 30 fps: {share:.2f} % of one core "
              f"(target < 2 %) over {args.idle_seconds:.0f} s")
        result("idle screen at 30 fps, share of one core", share, "%", target=2)
        lat = latency(office, args.trials)
        print(f"Commit-to-screen latency over {len(lat)} calls: median "
              f"{statistics.median(lat):.1f} ms, p99 {percentile(lat, 99):.1f} ms, "
              f"max {max(lat):.1f} ms"
              " (target < 100 ms)")
        result("commit to screen", statistics.median(lat), "ms", target=100,
               p99=percentile(lat, 99))
        office.close()
    pygame.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
