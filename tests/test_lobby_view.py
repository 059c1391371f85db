"""The one read model of the lobby (``appliance.lobby_view``): what the screen, ``status`` and
the heartbeat show comes from the same reads of a real store, and store errors are told
apart by SQLite's error name, not by the words of its message."""

from __future__ import annotations

import sqlite3

import pytest
from test_display_world import Office

from appliance.lobby_view import (
    BROKEN,
    BUSY,
    SCHEMA,
    error_kind,
    read_lobby,
    store_problem,
    wait_estimates,
)
from appliance.status import collect_status
from display.model import StoreView

M = 60.0


def lobby_now(office: Office, **kw):
    with office.store.read() as db:
        return read_lobby(db, office.clock.lobby_day(db), office.config, office.wall(), **kw)


def test_the_lobby_carries_calls_queues_estimates_and_the_checkin(tmp_path):
    office = Office(tmp_path)
    tickets = office.check_in(6)
    office.wall.t += 20 * M                        # 09:50: slots began at 09:00
    office.queue.call_next(2)
    office.queue.call_next(1)
    lobby = lobby_now(office)
    with office.store.read() as db:
        est = wait_estimates(db, lobby.day, office.wall(), office.config)
    assert [(c.ticket, c.counter) for c in lobby.calls] == [(tickets[0], 2), (tickets[1], 1)]
    assert [(s.id, s.ticket) for s in lobby.counter_states] == [
        (1, tickets[1]), (2, tickets[0]), (3, None)]
    assert lobby.counts.checked_in == 6 and lobby.counts.waiting == 4
    assert lobby.counts.called == 2
    by_code = {q.code: q for q in lobby.queues}
    for code, queue in by_code.items():
        assert queue.waiting == est.for_service(code).waiting
        assert queue.next_wait_s == est.for_service(code).next_wait_s
        assert queue.lateness_s == est.for_service(code).lateness_s
    # both calls came 50 minutes after the 09:00 slots: late beyond the 15-minute notice
    assert lobby.lateness_s == pytest.approx(50 * M)
    assert lobby.running_late_s == pytest.approx(50 * M)
    scan = lobby.latest_scan
    mine = est.for_ticket(tickets[5])
    assert scan.ticket == tickets[5] and scan.ahead == mine.ahead and scan.call_at == mine.call_at
    assert lobby.summary()["services"][0] == {
        "code": "A", "name": by_code["A"].name, "waiting": by_code["A"].waiting,
        "next_wait_s": round(by_code["A"].next_wait_s),
        "lateness_s": round(by_code["A"].lateness_s)}
    office.close()


def test_on_time_says_nothing_and_no_calls_means_no_lateness(tmp_path):
    office = Office(tmp_path)
    office.check_in(3)
    assert lobby_now(office).lateness_s is None
    office.wall.t -= 25 * M                        # 09:05: called 5 minutes after the slot
    office.queue.call_next(1)
    lobby = lobby_now(office)
    assert lobby.lateness_s == pytest.approx(5 * M) and lobby.running_late_s is None
    office.close()


def test_screen_and_status_show_the_same_lobby(tmp_path):
    office = Office(tmp_path)
    tickets = office.check_in(5)
    office.queue.call_next(1)
    view = office.view()
    snap, _ = view.poll()
    lobby = lobby_now(office)
    assert [(w.code, w.waiting, w.next_wait_s) for w in snap.waiting] == [
        (q.code, q.waiting, q.next_wait_s) for q in lobby.queues]
    assert snap.latest_scan.ticket == tickets[4]
    assert (snap.latest_scan.ahead, snap.latest_scan.call_at) == (
        lobby.latest_scan.ahead, lobby.latest_scan.call_at)
    view.close()
    status = collect_status(office.config)        # the real clock: another day, empty
    assert status["lobby"]["date"] == status["day"]
    assert status["lobby"]["waiting"] == status["queue"]["waiting"] == 0
    office.close()


# errors by name ----------------------------------------------------------------------------


def test_a_lock_is_busy_by_its_error_name(tmp_path):
    path = tmp_path / "x.db"
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("CREATE TABLE t (x)")
    locker.execute("BEGIN EXCLUSIVE")
    reader = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as caught:
        reader.execute("SELECT * FROM t").fetchall()
    assert error_kind(caught.value) == BUSY
    assert "locked" in store_problem(caught.value)
    locker.close()
    reader.close()


def test_a_missing_column_named_like_a_lock_is_a_migration_not_a_lock(tmp_path):
    """SQLite's message for a missing column quotes the column's name; a name with "locked"
    or "busy" in it made the screen retry silently as if another process held a lock."""
    db = sqlite3.connect(tmp_path / "x.db")
    db.execute("CREATE TABLE calls (id INTEGER PRIMARY KEY)")
    with pytest.raises(sqlite3.OperationalError) as caught:
        db.execute("SELECT locked_busy FROM calls").fetchall()
    assert error_kind(caught.value) == SCHEMA
    assert not StoreView._busy(caught.value)
    assert StoreView._describe(caught.value) == (
        "database sedang dimigrasi / database being migrated; retrying")
    db.close()


def test_a_file_that_is_no_database_is_broken(tmp_path):
    path = tmp_path / "x.db"
    path.write_bytes(b"this is not a database, it only has the name of one" * 100)
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError) as caught:
        db.execute("SELECT * FROM calls").fetchall()
    assert error_kind(caught.value) == BROKEN
    assert store_problem(caught.value).startswith("database error: ")
    db.close()
