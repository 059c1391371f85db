"""Queue numbering, call order, counters' services, recall and no-show, day rollover."""

import json

import pytest
from conftest import appointment, office_time, schedule_doc, sign_doc

from appliance.call_queue import CallQueue, queue_counts
from appliance.checkin import CheckinDesk
from appliance.clock import Clock
from appliance.errors import QueueError
from appliance.schedule import save_schedule, verify_schedule

DAY, NEXT = "2026-11-30", "2026-12-01"


class Wall:
    def __init__(self, day, hhmm):
        self.set(day, hhmm)

    def set(self, day, hhmm):
        self.t = office_time(day, hhmm).timestamp()

    def __call__(self):
        return self.t


@pytest.fixture
def office(config, store):
    appts = [
        appointment("LATESLOT", DAY, "10:00"),
        appointment("EARLYSLT", DAY, "09:00"),
        appointment("PRIORITY", DAY, "10:30", priority=True, name="Siti Rahmawati",
                    salutation="Ibu"),
        appointment("SERVICEB", DAY, "09:00", service="B"),
        appointment("SAMESLOT", DAY, "09:00"),
    ]
    for day, items in ((DAY, appts), (NEXT, [appointment("NEXTDAY1", NEXT, "09:00")])):
        body, sig = sign_doc(schedule_doc(day, items))
        save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)
    wall = Wall(DAY, "09:30")
    clock = Clock(store, config, wall=wall)
    return CheckinDesk(store, config, clock), CallQueue(store, config, clock), wall


def test_numbering_per_service_and_call_order(office, store):
    desk, queue, wall = office
    tickets = {code: desk.scan(code).ticket for code in
               ("LATESLOT", "SERVICEB", "EARLYSLT", "PRIORITY", "SAMESLOT")}
    assert tickets == {"LATESLOT": "A001", "SERVICEB": "B001", "EARLYSLT": "A002",
                       "PRIORITY": "A003", "SAMESLOT": "A004"}
    # Counter 2 serves only B.
    assert queue.call_next(2).ticket == "B001"
    assert queue.call_next(2) is None
    # Counter 1: priority lane, then earlier slot, then earlier check-in.
    order = [queue.call_next(1).ticket for _ in range(4)]
    assert order == ["A003", "A002", "A004", "A001"]
    assert queue.call_next(1) is None
    counts = queue_counts(store.db, DAY)
    assert (counts.checked_in, counts.waiting, counts.called) == (5, 0, 5)


def test_recall_no_show_and_events(office, store):
    desk, queue, wall = office
    desk.scan("PRIORITY")
    with pytest.raises(QueueError, match="no current call"):
        queue.recall(1)
    call = queue.call_next(1)
    assert (call.ticket, call.name, call.salutation, call.counter_name) == (
        "A001", "Siti Rahmawati", "Ibu", "Loket 1")
    assert queue.recall(1).kind == "recall"
    assert queue.no_show(1).ticket == "A001"
    with pytest.raises(QueueError, match="no current call"):
        queue.no_show(1)
    with pytest.raises(QueueError, match="not in today's schedule"):
        queue.call_next(9)
    events = [json.loads(b) for (b,) in store.db.execute("SELECT body FROM outbox ORDER BY seq")]
    assert [e["type"] for e in events] == ["checkin", "call", "recall", "no_show"]
    assert all(e["ticket"] == "A001" and e["counter"] == 1 for e in events[1:])


def test_numbering_restarts_each_day_and_history_stays(office, store):
    desk, queue, wall = office
    assert desk.scan("EARLYSLT").ticket == "A001"
    queue.call_next(1)
    wall.set(NEXT, "09:00")
    assert desk.scan("NEXTDAY1").ticket == "A001"
    assert queue.call_next(1).ticket == "A001"
    days = store.db.execute("SELECT office_day, ticket FROM checkins ORDER BY id").fetchall()
    assert days == [(DAY, "A001"), (NEXT, "A001")]


def test_server_calls_are_deduplicated(office, store):
    desk, queue, wall = office
    desk.scan("EARLYSLT")
    assert queue.record_server_call("srv-1", "A001", 2, wall())
    assert not queue.record_server_call("srv-1", "A001", 2, wall())
    assert queue.call_next(1) is None  # already called by the officers' software
    assert store.db.execute("SELECT COUNT(*) FROM outbox WHERE type='call'").fetchone()[0] == 0


def test_ticket_numbers_past_999(office, store):
    desk, queue, wall = office
    store.db.execute("INSERT INTO ticket_numbers VALUES (?, 'A', 999)", (DAY,))
    assert desk.scan("EARLYSLT").ticket == "A1000"
