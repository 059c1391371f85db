"""Shared test fixtures: a signing key, a config file, signed schedule documents.

Everything is real: real Ed25519 keys, real TOML files, real SQLite files in tmp dirs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
sys.path.insert(0, str(Path(__file__).parent))

from appliance.config import load_config  # noqa: E402
from appliance.keys import generate_key  # noqa: E402

TZ = ZoneInfo("Asia/Makassar")
KEY = generate_key("k2026a")
OTHER_KEY = generate_key("k2026a")  # same id, different key: a forgery


def office_time(day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=TZ)


def appointment(code: str, day: str, start: str = "09:00", minutes: int = 30, *,
                name: str = "Andi Saputra", salutation: str = "Bapak", service: str = "A",
                priority: bool = False, status: str = "booked") -> dict:
    begin = office_time(day, start)
    return {"booking_code": code, "name": name, "salutation": salutation, "service": service,
            "slot_start": begin.isoformat(),
            "slot_end": (begin + timedelta(minutes=minutes)).isoformat(),
            "priority": priority, "status": status}


def schedule_doc(day: str, appointments: list[dict], *, version: int = 1, office: str = "TRK",
                 generated_at: datetime | None = None, counters: list[dict] | None = None,
                 announcements: list[str] | None = None) -> dict:
    # Made a few minutes ago by default: a fixed hour before the day would make the
    # schedule stale (server.max_schedule_age_hours) late in the evening, and the verdicts
    # of a test would depend on the hour it runs at.
    gen = generated_at or datetime.now(ZoneInfo("UTC")) - timedelta(minutes=5)
    return {
        "format": "antrean.schedule/1",
        "office": {"id": office, "name": "Kantor Imigrasi Kelas II TPI Tarakan",
                   "timezone": "Asia/Makassar"},
        "date": day, "version": version,
        "generated_at": gen.astimezone(ZoneInfo("UTC")).isoformat().replace("+00:00", "Z"),
        "opening_hours": {"open": "08:00", "close": "16:00"},
        "services": [{"code": "A", "name": "Paspor Baru"},
                     {"code": "B", "name": "Penggantian Paspor"}],
        "counters": counters if counters is not None else [
            {"id": 1, "name": "Loket 1", "services": ["A", "B"]},
            {"id": 2, "name": "Loket 2", "services": ["B"]}],
        "appointments": appointments,
        "announcements": announcements if announcements is not None else [
            "Harap siapkan dokumen asli Anda."],
    }


def sign_doc(doc: dict, key=KEY) -> tuple[bytes, str]:
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    return body, key.sign_header(body)


def write_config(path: Path, db: Path, extra: str = "") -> Path:
    path.write_text(
        "[office]\nid = \"TRK\"\ntimezone = \"Asia/Makassar\"\n"
        f"[storage]\npath = \"{db}\"\n"
        f"[trust]\nkeys = {{ k2026a = \"{KEY.public_b64}\" }}\n" + extra)
    return path


@pytest.fixture
def config_path(tmp_path) -> Path:
    return write_config(tmp_path / "antrean.toml", tmp_path / "antrean.db")


@pytest.fixture
def config(config_path):
    return load_config(config_path)


@pytest.fixture
def store(config):
    from appliance.store import Store

    with Store(config.storage.path) as s:
        yield s


def handler_returns_holding(lock, request_stop, timeout: float = 30.0) -> bool:
    """Run the SIGTERM handler ``request_stop`` while ``lock`` is held by the same thread;
    True if it returned.

    A Python signal handler runs in the main thread between two bytecodes: also inside a
    wait (``Event.wait``, ``Queue.get``) while that holds its own non-reentrant lock, the
    state this recreates. A handler that takes the lock there waits forever."""
    handled = threading.Event()

    def signal_arrives_inside_the_wait():
        with lock:
            request_stop(signal.SIGTERM, None)
        handled.set()

    threading.Thread(target=signal_arrives_inside_the_wait, daemon=True).start()
    return handled.wait(timeout)


def stops_after_sigterm_inside_a_wait(service, lock, timeout: float = 30.0) -> None:
    """Run ``service``'s SIGTERM handler while holding ``lock``, then its loop; both must end."""
    assert handler_returns_holding(lock, service.request_stop, timeout), \
        "the SIGTERM handler waited forever for the wait's lock"
    runner = threading.Thread(target=service.run, daemon=True)
    runner.start()
    runner.join(timeout)
    assert not runner.is_alive(), "the service did not stop after SIGTERM"
