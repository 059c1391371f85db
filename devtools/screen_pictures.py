"""The call screen's pictures in docs/, rendered by ``antrean display --snapshot``.

A morning at the example office (2026-11-30, running late): 40 bookings for two services from
08:30, four counters calling since 08:45, and at 10:40 the office clock of every process (the
store's server time, as the sync service records it) so the pictures never depend on the day
they are made. Each size is rendered twice: the waiting panel with its estimates and the
lateness notice, and the check-in panel right after one more applicant scanned.

    python -m devtools.screen_pictures docs/
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.call_queue import CallQueue
from appliance.checkin import CheckinDesk
from appliance.clock import Clock, record_server_date
from appliance.config import load_config
from appliance.keys import generate_key
from appliance.schedule import save_schedule, verify_schedule
from appliance.store import Store
from devtools.lobby import antrean_argv

DAY = "2026-11-30"
TZ = ZoneInfo("Asia/Makassar")
NOW = datetime(2026, 11, 30, 10, 40, tzinfo=TZ)
SIZES = ((1920, 1080), (1280, 720), (1080, 1920))
SERVICES = [{"code": "A", "name": "Paspor Baru"}, {"code": "B", "name": "Penggantian Paspor"}]
COUNTERS = [{"id": 1, "name": "Loket 1", "services": ["A", "B"]},
            {"id": 2, "name": "Loket 2", "services": ["A"]},
            {"id": 3, "name": "Loket 3", "services": ["B"]},
            {"id": 4, "name": "Loket 4", "services": ["A", "B"]}]
NAMES = ["Andi Saputra", "Siti Rahmawati", "Budi Santoso", "Dewi Lestari", "Eko Prasetyo",
         "Fitri Handayani", "Gilang Ramadhan", "Hana Pertiwi", "Indra Gunawan", "Joko Widodo"]


def _at(minutes: float) -> datetime:
    """Minutes after 08:00 on the pictured day."""
    return datetime(2026, 11, 30, 8, 0, tzinfo=TZ) + timedelta(minutes=minutes)


def _bookings() -> list[dict]:
    out = []
    for i in range(40):
        start = _at(30 + 5 * i)            # a slot every five minutes from 08:30
        out.append({"booking_code": f"PIC{i:05d}", "name": NAMES[i % len(NAMES)],
                    "salutation": "Ibu" if i % 2 else "Bapak", "service": "AB"[i % 3 == 2],
                    "slot_start": start.isoformat(),
                    "slot_end": (start + timedelta(minutes=30)).isoformat(),
                    "priority": False, "status": "booked"})
    return out


def build_office(folder: Path) -> tuple[Path, list[str]]:
    """The config and store of the pictured morning; returns the config path and the booking
    codes that have not checked in yet."""
    key = generate_key("k2026a")
    config_path = folder / "antrean.toml"
    config_path.write_text(
        '[office]\nid = "TRK"\ntimezone = "Asia/Makassar"\n'
        f'[storage]\npath = "{folder / "antrean.db"}"\n'
        f'[trust]\nkeys = {{ k2026a = "{key.public_b64}" }}\n'
        '[display]\nsound = "off"\nhealth_file = ""\n')
    config = load_config(config_path)
    bookings = _bookings()
    doc = {"format": "antrean.schedule/1",
           "office": {"id": "TRK", "name": "Kantor Imigrasi Kelas II TPI Tarakan",
                      "timezone": "Asia/Makassar"},
           "date": DAY, "version": 1, "generated_at": "2026-11-30T00:30:00Z",
           "opening_hours": {"open": "08:00", "close": "16:00"}, "services": SERVICES,
           "counters": COUNTERS, "appointments": bookings,
           "announcements": ["Harap siapkan dokumen asli Anda.",
                             "Please have your original documents ready."]}
    body = json.dumps(doc).encode()
    wall = [_at(0).timestamp()]
    with Store(config.storage.path) as store:
        save_schedule(store, verify_schedule(body, key.sign_header(body), config),
                      source="import", etag=None)
        clock = Clock(store, config, wall=lambda: wall[0])
        desk, queue = CheckinDesk(store, config, clock), CallQueue(store, config, clock)
        # Applicants come 20 minutes before their slot; each counter calls every 24 minutes
        # from 08:45, so by 10:40 ten wait and the lobby runs behind its slots.
        events = [(datetime.fromisoformat(b["slot_start"]) - timedelta(minutes=20),
                   "scan", b["booking_code"]) for b in bookings[:30]]
        events += [(_at(45 + 24 * n + 6 * (c - 1)), "call", c)
                   for n in range(6) for c in (1, 2, 3, 4)]
        for when, kind, what in sorted(events, key=lambda e: (e[0], e[1] != "call")):
            if when > NOW - timedelta(minutes=1):
                continue
            wall[0] = when.timestamp()
            if kind == "scan":
                desk.scan(what)
            else:
                queue.call_next(what)
        record_server_date(store, NOW.timestamp(), NOW.timestamp(), True)
        done = {r[0] for r in store.db.execute("SELECT booking_code FROM checkins")}
    return config_path, [b["booking_code"] for b in bookings if b["booking_code"] not in done]


def snapshot(config_path: Path, out: Path, size: tuple[int, int]) -> None:
    proc = subprocess.run(antrean_argv("--config", str(config_path), "display", "--snapshot",
                                       str(out), "--size", f"{size[0]}x{size[1]}"),
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"snapshot {out} failed: {proc.stderr.strip()[-400:]}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    docs = Path(args[0] if args else "docs")
    with tempfile.TemporaryDirectory() as tmp:
        config_path, later = build_office(Path(tmp))
        for w, h in SIZES:
            name = "screen.png" if (w, h) == SIZES[0] else f"screen-{w}x{h}.png"
            snapshot(config_path, docs / name, (w, h))
        config = load_config(config_path)
        with Store(config.storage.path) as store:       # one more applicant scans at 10:40
            CheckinDesk(store, config, Clock(store, config)).scan(later[0])
        for w, h in SIZES:
            snapshot(config_path, docs / f"screen-checkin-{w}x{h}.png", (w, h))
    print(f"wrote the screen's pictures to {docs}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
