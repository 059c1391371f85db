"""Sync benchmark against the reference server on loopback.

Prints medians and p99 for: pull + verify + commit of a 20,000-appointment schedule (target
under 1 s on a 2-core box), an unchanged pull (one 304 round trip, no database write), the
upload of 10,000 queued events (events per second), the latency of a pushed call until
it is in the store, and the push stream's framing of 256 KiB of comment lines (and of 1 MiB:
the ratio shows the framing is linear, 4x the bytes for about 4x the time).

    .venv/bin/python bench/sync.py [--runs 7] [--appointments 20000] [--events 10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from appliance.config import load_config  # noqa: E402
from appliance.outbox import counts, record_event  # noqa: E402
from appliance.store import Store  # noqa: E402
from bench.stats import percentile, result  # noqa: E402
from devtools.devserver import DevServer  # noqa: E402
from sync.service import SyncService  # noqa: E402
from sync.sse import SseParser  # noqa: E402

TOKEN = "bench-token"


def report(name: str, seconds: list[float], unit: float = 1000, suffix: str = "ms") -> None:
    print(f"{name:<44} median {statistics.median(seconds) * unit:8.1f} {suffix}   "
          f"p99 {percentile(seconds, 99) * unit:8.1f} {suffix}   (n={len(seconds)})")


def make_config(folder: Path, server: DevServer) -> object:
    (folder / "token").write_text(TOKEN)
    path = folder / "antrean.toml"
    path.write_text(
        '[office]\nid = "TRK"\ntimezone = "Asia/Makassar"\n'
        f'[storage]\npath = "{folder / "antrean.db"}"\n'
        f'[trust]\nkeys = {{ {server.key.keyid} = "{server.key.public_b64}" }}\n'
        f'[server]\nurl = "{server.url}"\ndevice_id = "bench-1"\n'
        f'token_file = "{folder / "token"}"\n')
    return load_config(path)


def bench_pull(server: DevServer, config, runs: int) -> None:
    svc = SyncService(config, use_stream=False)
    day = svc.clock.office_day()
    full, unchanged = [], []
    for _i in range(runs):
        server.admin("POST", "/_admin/schedule", {"appointments": args.appointments,
                                                  "push": False})
        requests.get(f"{server.url}/offices/TRK/schedule", params={"date": day}, timeout=30,
                     headers={"Authorization": f"Bearer {TOKEN}"})   # server caches its body
        t = time.perf_counter()
        outcome = svc.pull_day(day)
        full.append(time.perf_counter() - t)
        assert outcome[0] == "stored", outcome
        before = svc.store.db.total_changes
        t = time.perf_counter()
        outcome = svc.pull_day(day)
        unchanged.append(time.perf_counter() - t)
        assert outcome[0] == "unchanged" and svc.store.db.total_changes == before
    report(f"pull+verify+commit {args.appointments} appts", full)
    report("unchanged pull (304, no db write)", unchanged)
    result(f"pull + verify + commit a {args.appointments}-appointment schedule",
           statistics.median(full) * 1000, "ms", target=1000, p99=percentile(full, 99) * 1000)
    result("unchanged pull (304, no database write)", statistics.median(unchanged) * 1000,
           "ms", p99=percentile(unchanged, 99) * 1000)
    print(f"{'':<44} ratio full/304: {statistics.median(full) / statistics.median(unchanged):.0f}x")
    svc.close()


def bench_upload(config, n: int) -> None:
    store = Store(config.storage.path)
    now = time.time()
    with store.write() as db:
        for i in range(n):
            record_event(db, "call", {"ticket": f"A{i % 1000:03d}", "counter": 1}, now)
    svc = SyncService(config, use_stream=False)
    t = time.perf_counter()
    outcome = svc.upload_round()
    took = time.perf_counter() - t
    assert outcome[0] == "done" and counts(store)["pending"] == 0
    print(f"{'upload ' + str(n) + ' events (batches of 100)':<44} {took:8.2f} s   "
          f"{n / took:8.0f} events/s")
    result(f"upload {n} queued events", n / took, "events/s", lower_is_better=False)
    svc.close()
    store.close()


def bench_push(server: DevServer, config, runs: int) -> None:
    svc = SyncService(config)
    thread = threading.Thread(target=svc.run_forever)
    thread.start()
    look = Store(config.storage.path)
    try:
        while server.admin("GET", "/_admin/state")["streams"] < 1:
            time.sleep(0.01)
        latencies = []
        for i in range(runs):
            t = time.perf_counter()
            sid = server.admin("POST", "/_admin/push", {"event": "call", "data": {
                "ticket": f"B{i:03d}", "counter": 1}})["data"]["id"]
            while not look.db.execute("SELECT 1 FROM calls WHERE server_id = ?",
                                      (sid,)).fetchone():
                time.sleep(0.001)
            latencies.append(time.perf_counter() - t)
        report("pushed call -> in the store", latencies)
        result("pushed call to stored call", statistics.median(latencies) * 1000, "ms",
               p99=percentile(latencies, 99) * 1000)
    finally:
        svc.request_stop()
        thread.join(10)
        svc.close()
        look.close()


def bench_sse_framing(runs: int) -> None:
    """Comment lines (``:`` and a newline, the worst case) fed in 64 KiB reads."""
    medians = {}
    for size in (256 * 1024, 1024 * 1024):
        data = b":\n" * (size // 2)
        reads = [data[i:i + 65536] for i in range(0, len(data), 65536)]
        took = []
        for _i in range(runs):
            parser = SseParser()
            t = time.perf_counter()
            lines = sum(len(parser.feed(chunk)) for chunk in reads)
            took.append(time.perf_counter() - t)
            assert lines == size // 2
        medians[size] = statistics.median(took)
        report(f"frame {size // 1024} KiB of comment lines", took)
    result("push stream: frame 256 KiB of comment lines", medians[256 * 1024] * 1000, "ms",
           target=100)
    ratio = medians[1024 * 1024] / medians[256 * 1024]
    print(f"{'':<44} ratio 1 MiB/256 KiB: {ratio:.1f}x (linear: 4x)")
    result("push stream framing: time for 1 MiB / time for 256 KiB", ratio, "x", target=6,
           note="linear framing gives about 4x; the old parser gave about 16x")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--appointments", type=int, default=20_000)
    p.add_argument("--events", type=int, default=10_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, DevServer(
            state_dir=str(Path(tmp) / "central"), token=TOKEN) as central:
        cfg = make_config(Path(tmp), central)
        bench_pull(central, cfg, args.runs)
        bench_upload(cfg, args.events)
        bench_push(central, cfg, 20)
    bench_sse_framing(args.runs)
