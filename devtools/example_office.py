"""The office the docstring examples run in, under ``pytest --doctest-modules``.

A pytest plugin (entry point ``pytest11`` of antrean-devtools, so it is active wherever the
development tools are installed). Every docstring example in appliance/, drivers/, display/,
sync/ and devtools/ gets these names, made fresh for it, all real:

- ``config``: the config of office ``TRK`` (Asia/Makassar), its database in a temporary folder;
- ``store``: that database, open, with the signed schedule of 2026-11-30 imported: booking
  ``K7Q2M9XA`` (Bapak Andi Saputra, service A, 09:00-09:30) and ``B3C4D5E6`` (Ibu Siti
  Rahmawati, service B, 09:30-10:00), counters Loket 1 (A, B) and Loket 2 (B);
- ``clock``: the office clock stopped at 2026-11-30 09:05 local time, so no example depends on
  today's date.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from _pytest.doctest import DoctestItem

from appliance.clock import Clock
from appliance.config import load_config
from appliance.keys import generate_key
from appliance.schedule import save_schedule, verify_schedule
from appliance.store import Store

DAY = "2026-11-30"
TIMEZONE = ZoneInfo("Asia/Makassar")
NOW = datetime(2026, 11, 30, 9, 5, tzinfo=TIMEZONE).timestamp()
BOOKINGS = [("K7Q2M9XA", "Andi Saputra", "Bapak", "A", "09:00", "09:30"),
            ("B3C4D5E6", "Siti Rahmawati", "Ibu", "B", "09:30", "10:00")]


def _slot(hhmm: str) -> str:
    return datetime.fromisoformat(f"{DAY}T{hhmm}:00").replace(tzinfo=TIMEZONE).isoformat()


def schedule_document() -> dict:
    """The example day, as the central server would send it (central-api.md section 1)."""
    return {
        "format": "antrean.schedule/1",
        "office": {"id": "TRK", "name": "Kantor Imigrasi Kelas II TPI Tarakan",
                   "timezone": "Asia/Makassar"},
        "date": DAY, "version": 1, "generated_at": "2026-11-29T16:00:00Z",
        "opening_hours": {"open": "08:00", "close": "16:00"},
        "services": [{"code": "A", "name": "Paspor Baru"},
                     {"code": "B", "name": "Penggantian Paspor"}],
        "counters": [{"id": 1, "name": "Loket 1", "services": ["A", "B"]},
                     {"id": 2, "name": "Loket 2", "services": ["B"]}],
        "appointments": [
            {"booking_code": code, "name": name, "salutation": salutation, "service": service,
             "slot_start": _slot(start), "slot_end": _slot(end), "priority": False,
             "status": "booked"}
            for code, name, salutation, service, start, end in BOOKINGS],
        "announcements": ["Harap siapkan dokumen asli Anda."],
    }


@contextlib.contextmanager
def example_office(folder: Path) -> Iterator[dict]:
    """``config``, ``store`` and ``clock`` of the example office, in ``folder``."""
    key = generate_key("k2026a")
    path = folder / "antrean.toml"
    path.write_text('[office]\nid = "TRK"\ntimezone = "Asia/Makassar"\n'
                    '[storage]\npath = "antrean.db"\n'
                    f'[trust]\nkeys = {{ k2026a = "{key.public_b64}" }}\n')
    config = load_config(path)
    body = json.dumps(schedule_document()).encode()
    with Store(config.storage.path) as store:
        save_schedule(store, verify_schedule(body, key.sign_header(body), config),
                      source="import", etag=None)
        yield {"config": config, "store": store,
               "clock": Clock(store, config, wall=lambda: NOW)}


@pytest.fixture(autouse=True)
def _example_office_names(request):
    """Give each docstring example the example office; other tests are left alone."""
    if not isinstance(request.node, DoctestItem):
        yield
        return
    with example_office(request.getfixturevalue("tmp_path")) as names:
        request.getfixturevalue("doctest_namespace").update(names)
        yield
