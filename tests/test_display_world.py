"""A real office for the display tests: signed schedule, check-ins and calls through the
lead's ``CheckinDesk`` and ``CallQueue`` on a real SQLite file, plus the screen on the dummy driver.
Also the tests of the read-only store view itself."""

from __future__ import annotations

import sqlite3

import pygame
import pytest
from conftest import appointment, office_time, schedule_doc, sign_doc, write_config

from appliance.call_queue import CallQueue
from appliance.checkin import CheckinDesk
from appliance.clock import Clock
from appliance.config import load_config
from appliance.schedule import save_schedule, verify_schedule
from appliance.store import Store
from display.model import StoreView

DAY = "2026-11-30"
NAMES = ["Andi Saputra", "Siti Rahmawati", "Budi Santoso", "Dewi Lestari", "Eko Prasetyo",
         "Fitri Handayani", "Gilang Ramadhan", "Hana Pertiwi", "Indra Gunawan", "Joko Widodo",
         "Kartika Sari", "Lukman Hakim"]


class Wall:
    """The office's wall clock, set by the test (the system clock is not the office's)."""

    def __init__(self, hhmm: str = "09:30"):
        self.t = office_time(DAY, hhmm).timestamp()

    def __call__(self) -> float:
        return self.t


class Mono:
    """Monotonic seconds the test advances by hand: screen moments without sleeping."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Office:
    def __init__(self, tmp_path, *, counters: int = 3, names=None, extra: str = "",
                 announcements=None):
        self.db_path = tmp_path / "antrean.db"
        self.config = load_config(write_config(tmp_path / "antrean.toml", self.db_path,
                                               extra))
        self.store = Store(str(self.db_path))
        self.wall = Wall()
        names = names if names is not None else NAMES
        appts = [appointment(f"BOOK{i:04d}", DAY, "09:00", name=name,
                             salutation="Ibu" if i % 2 else "Bapak", service="AB"[i % 4 == 3])
                 for i, name in enumerate(names)]
        doc = schedule_doc(DAY, appts, announcements=announcements, counters=[
            {"id": c, "name": f"Loket {c}", "services": ["A", "B"]}
            for c in range(1, counters + 1)])
        body, sig = sign_doc(doc)
        save_schedule(self.store, verify_schedule(body, sig, self.config), source="import",
                      etag=None)
        self.clock = Clock(self.store, self.config, wall=self.wall)
        self.desk = CheckinDesk(self.store, self.config, self.clock)
        self.queue = CallQueue(self.store, self.config, self.clock)
        self.codes = [a["booking_code"] for a in appts]

    def check_in(self, n: int) -> list[str]:
        return [self.desk.scan(code).ticket for code in self.codes[:n]]

    def view(self, mono=None) -> StoreView:
        return StoreView(self.config, wall=self.wall, monotonic=mono or Mono())

    def close(self):
        self.store.close()


@pytest.fixture
def office(tmp_path):
    o = Office(tmp_path)
    yield o
    o.close()


@pytest.fixture
def video():
    pygame.display.init()
    pygame.font.init()
    yield
    pygame.display.quit()


# the read-only view --------------------------------------------------------------------


def test_view_reads_calls_counters_waiting_and_scan(office):
    tickets = office.check_in(5)
    view = office.view()
    snap, new = view.poll()
    assert snap.problem is None and new == []
    assert snap.office_name == "Kantor Imigrasi Kelas II TPI Tarakan"
    assert snap.announcements == ("Harap siapkan dokumen asli Anda.",)
    assert sum(w.waiting for w in snap.waiting) == 5
    assert snap.next_tickets[0] == tickets[0]
    assert snap.latest_scan.verdict == "ok"
    assert snap.latest_scan.message_id == (
        f"Selamat datang, Bapak Eko P. Nomor antrean Anda {tickets[4]}.")

    office.queue.call_next(2)
    office.queue.call_next(1)
    office.queue.recall(2)
    snap, new = view.poll()
    assert [(c.kind, c.counter) for c in new] == [("call", 2), ("call", 1), ("recall", 2)]
    assert new[0].name == "Bapak Andi S." and new[0].counter_name == "Loket 2"
    # newest on top; counter 3 never called comes last with no ticket
    assert [(r.id, r.ticket) for r in snap.counters] == [(2, new[0].ticket),
                                                         (1, new[1].ticket), (3, None)]
    assert sum(w.waiting for w in snap.waiting) == 3
    # nothing committed: nothing new, and the same snapshot object
    again, new = view.poll()
    assert again is snap and new == []
    view.close()


def test_each_unreadable_scan_of_a_run_shows_the_panel_again(office):
    """A run of unreadable scans is one row with a growing count: every scan is still new."""
    view = office.view()
    view.poll()
    for n in range(1, 4):
        office.wall.t += 1.0
        assert office.desk.scan(b"\x00garbage").verdict == "unreadable"
        snap, _ = view.poll()
        assert view.new_scan, f"scan {n} of the run not shown"
        assert snap.latest_scan.verdict == "unreadable"
    assert office.store.db.execute("SELECT COUNT(*), SUM(count) FROM scans").fetchone() == (1, 3)
    view.close()


def test_view_never_writes(office):
    office.check_in(2)
    office.queue.call_next(1)
    view = office.view()
    view.poll()
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        view.store.db.execute("INSERT INTO kv(key, value, updated_at) VALUES ('x', '1', 0)")
    view.close()


def test_push_announcements_override_schedule(office):
    view = office.view()
    office.store.set_kv("announcements", {"items": ["Loket 3 tutup sementara."], "at": 1})
    snap, _ = view.poll()
    assert snap.announcements == ("Loket 3 tutup sementara.",)
    view.close()


def test_missing_store_reports_and_reconnects(tmp_path):
    db = tmp_path / "later.db"
    config = load_config(write_config(tmp_path / "a.toml", db))
    mono = Mono()
    view = StoreView(config, wall=Wall(), monotonic=mono)
    snap, _ = view.poll()
    assert "does not exist" in snap.problem
    Store(str(db)).close()
    snap, _ = view.poll()                      # retries only after RETRY_S
    assert snap.problem is not None
    mono.t += 5
    snap, _ = view.poll()
    assert snap.problem is None
    view.close()


def test_mid_migration_store_reports(tmp_path):
    db = tmp_path / "old.db"
    raw = sqlite3.connect(db)
    raw.execute("CREATE TABLE calls (id INTEGER PRIMARY KEY)")
    raw.execute("PRAGMA user_version=0")
    raw.commit()
    raw.close()
    config = load_config(write_config(tmp_path / "a.toml", db))
    view = StoreView(config, wall=Wall(), monotonic=Mono())
    snap, _ = view.poll()
    assert "schema version 0" in snap.problem
    view.close()


def test_locked_store_reports_then_recovers(office):
    """Another process holds the database exclusively (a technician's sqlite3 shell, a
    migration): the screen says so and picks up again once the lock is gone."""
    office.check_in(1)
    office.store.close()
    locker = sqlite3.connect(office.db_path, isolation_level=None)
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute("INSERT INTO kv(key, value, updated_at) VALUES ('lock', '1', 0)")
    locker.execute("COMMIT")                   # exclusive mode keeps the lock after commit
    mono = Mono()
    view = office.view(mono)
    snap, _ = view.poll()
    assert "locked" in snap.problem
    locker.close()
    mono.t += 10
    snap, _ = view.poll()
    assert snap.problem is None and snap.next_tickets
    view.close()
