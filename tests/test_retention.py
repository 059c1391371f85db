"""History past ``storage.retention_days`` is pruned; recent and undelivered data is kept;
``antrean status`` says how big the store is and what it keeps."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta

from conftest import TZ, office_time
from test_checkin import Ticking, signed_barcode
from test_cli import antrean

from appliance.call_queue import CallQueue
from appliance.checkin import CheckinDesk
from appliance.clock import Clock
from appliance.outbox import mark_dead, mark_sent
from appliance.retention import keep_from, prune_step
from appliance.scanner_service import ScannerService
from appliance.store import Store

TODAY = date(2027, 6, 30)       # every day below is after the build date: a trusted clock
AGES = (120, 91, 90, 1, 0)      # days before TODAY with history; 90 is the default retention


def day_ago(n: int, today: date = TODAY) -> str:
    return (today - timedelta(days=n)).isoformat()


def live_a_day(store, config, wall: Ticking, day: str) -> None:
    """A check-in, an unreadable scan and a call on ``day``, through the real paths."""
    wall.t = office_time(day, "09:10").timestamp()
    clock = Clock(store, config, wall=wall)
    desk = CheckinDesk(store, config, clock)
    code = "S" + day.replace("-", "")
    assert desk.scan(signed_barcode(code=code, day=day)).verdict == "ok"
    assert desk.scan(b"\x00").verdict == "unreadable"
    assert CallQueue(store, config, clock).call_next(1).ticket == "B001"


def checkin_event(store, day: str) -> str:
    for eid, body in store.db.execute("SELECT id, body FROM outbox WHERE type = 'checkin'"):
        if json.loads(body)["booking_code"] == "S" + day.replace("-", ""):
            return eid
    raise AssertionError(f"no check-in event of {day}")


def days_in(store, table: str) -> set[str]:
    return {r[0] for r in store.db.execute(f"SELECT DISTINCT office_day FROM {table}")}


def prune_all(store, config, clock, batch: int) -> int:
    total = 0
    while True:
        removed = prune_step(store, config, clock, batch=batch)
        total += removed
        if removed < batch:
            return total


def test_old_history_and_dead_events_are_pruned_recent_and_undelivered_kept(config, store):
    wall = Ticking()
    for age in AGES:
        live_a_day(store, config, wall, day_ago(age))
    # A run of unreadable scans 120 days ago that was never reported: kept until it is.
    wall.t = office_time(day_ago(120), "12:00").timestamp()
    old_desk = CheckinDesk(store, config, Clock(store, config, wall=wall))
    old_desk.scan(b"\x00")
    old_desk.scan(b"\x00")
    now = office_time(day_ago(0), "09:30").timestamp()
    wall.t = now
    dead_old = checkin_event(store, day_ago(120))
    dead_new = checkin_event(store, day_ago(1))
    sent_old = checkin_event(store, day_ago(91))
    mark_dead(store, {dead_old: "rejected", dead_new: "rejected"})
    mark_sent(store, [sent_old])
    with store.write() as db:            # when they were settled
        db.execute("UPDATE outbox SET done_at = ? WHERE id = ?", (now - 100 * 86400, dead_old))
        db.execute("UPDATE outbox SET done_at = ? WHERE id = ?", (now - 10 * 86400, dead_new))
        db.execute("UPDATE outbox SET done_at = ? WHERE id = ?", (now - 40 * 86400, sent_old))
    pending_before = store.db.execute(
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]

    clock = Clock(store, config, wall=wall)
    assert keep_from(config, clock)[0] == day_ago(90)
    removed = prune_all(store, config, clock, batch=2)      # small batches: several steps

    kept = {day_ago(a) for a in (90, 1, 0)}
    assert days_in(store, "checkins") == days_in(store, "calls") == kept
    assert days_in(store, "ticket_numbers") == kept
    assert days_in(store, "scans") == kept | {day_ago(120)}
    assert store.db.execute("SELECT count, reported FROM scans WHERE office_day = ?",
                            (day_ago(120),)).fetchall() == [(2, 1)]
    outbox = dict(store.db.execute("SELECT id, state FROM outbox"))
    assert dead_old not in outbox and sent_old not in outbox and outbox[dead_new] == "dead"
    assert sum(1 for s in outbox.values() if s == "pending") == pending_before
    # 2 old days x (2 scans + check-in + call + ticket number) + the two settled events
    assert removed == 2 * 5 + 2
    assert prune_step(store, config, clock) == 0           # nothing left to do


def test_nothing_is_pruned_on_an_untrusted_clock(config, store):
    wall = Ticking()
    live_a_day(store, config, wall, day_ago(400))
    wall.t = 86400.0 * 3                                   # 1970: a Pi without its RTC
    clock = Clock(store, config, wall=wall)
    assert not clock.trusted and keep_from(config, clock) is None
    assert prune_step(store, config, clock) == 0
    assert days_in(store, "scans") == {day_ago(400)}


def test_the_scanner_service_prunes_by_itself_and_status_says_so(config_path, config):
    today = datetime.now(TZ).date()
    wall = Ticking()
    with Store(config.storage.path) as store:
        for age in (200, 0):
            live_a_day(store, config, wall, day_ago(age, today))
    service = ScannerService(config)         # the default retention: 90 days
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        deadline = threading.Event()
        for _ in range(1000):
            with Store(config.storage.path, readonly=True) as store:
                if days_in(store, "scans") == {day_ago(0, today)}:
                    break
            deadline.wait(0.02)
        else:
            raise AssertionError("the service did not prune the old day")
    finally:
        service.request_stop()
        thread.join(20)
    data = json.loads(antrean("--config", config_path, "status", "--json").stdout)
    facts = data["store"]
    assert facts["retention_days"] == 90 and facts["oldest_day"] == day_ago(0, today)
    assert facts["size_bytes"] > 0 and facts["free_bytes"] >= 0
    human = antrean("--config", config_path, "status").stdout
    assert "history kept 90 days" in human and f"oldest {day_ago(0, today)}" in human
