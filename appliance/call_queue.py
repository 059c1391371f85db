"""The queue of one office day: who is waiting, who a counter calls next, recalls, no-shows.

Queue tickets are numbered per service per office day at check-in (``A001``...``A999``, then
``A1000``); numbering restarts each day and history is kept. A counter calls the next waiting
applicant among the services it serves: priority lane first, then earlier ``slot_start``, then
earlier check-in. Every call, recall and no-show is stored with its outbox event in one
transaction; calls pushed by the officers' software are stored without an event (the server
made them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from appliance.clock import Clock
from appliance.errors import QueueError
from appliance.outbox import record_event

MAX_COUNTER = 999


@dataclass(frozen=True)
class Call:
    ticket: str
    counter: int
    counter_name: str
    kind: str  # 'call' | 'recall' | 'no_show'
    at: float
    name: str
    salutation: str
    service: str

    def as_json(self) -> dict:
        return {"ticket": self.ticket, "counter": self.counter, "kind": self.kind}


@dataclass(frozen=True)
class Counter:
    id: int
    name: str
    services: tuple[str, ...] | None  # None: every service


@dataclass(frozen=True)
class QueueCounts:
    checked_in: int
    waiting: int
    called: int


# Waiting: checked in today and not yet called (a recall or no-show needs a call first).
WAITING_SQL = (
    "SELECT c.ticket, c.service, c.name, c.salutation, c.priority, c.slot_start,"
    " c.checked_in_at FROM checkins c WHERE c.office_day = ? {services} AND NOT EXISTS"
    " (SELECT 1 FROM calls k WHERE k.office_day = c.office_day AND k.ticket = c.ticket"
    " AND k.kind = 'call') ORDER BY c.priority DESC, c.slot_start, c.checked_in_at, c.id"
)


def call_order_key(priority: bool, slot_start: float, checked_in_at: float
                   ) -> tuple[int, float, float]:
    """WAITING_SQL's order in Python, for models of the queue that sort what is not stored
    yet (``sorted`` is stable, so rows already in SQL order keep their ``id`` tie-break)."""
    return (0 if priority else 1, slot_start, checked_in_at)


def counters_for_day(db, day: str) -> dict[int, Counter]:
    """The day's counters from its schedule; empty when no schedule is cached."""
    row = db.execute("SELECT counters_json FROM schedules WHERE date = ?", (day,)).fetchone()
    if row is None:
        return {}
    return {c["id"]: Counter(c["id"], c["name"], tuple(c["services"]))
            for c in json.loads(row[0])}


def waiting(db, day: str, services: tuple[str, ...] | None = None, limit: int = -1) -> list:
    """Waiting applicants of ``day`` in call order (rows of WAITING_SQL's columns)."""
    args: list = [day]
    clause = ""
    if services is not None:
        clause = f"AND c.service IN ({','.join('?' * len(services))})"
        args.extend(services)
    return db.execute(WAITING_SQL.format(services=clause) + " LIMIT ?",
                      (*args, limit)).fetchall()


def queue_counts(db, day: str, waiting_now: int | None = None) -> QueueCounts:
    """Checked in, waiting and called today; ``waiting_now`` when the caller counted it."""
    checked_in = db.execute("SELECT COUNT(*) FROM checkins WHERE office_day = ?",
                            (day,)).fetchone()[0]
    called = db.execute("SELECT COUNT(DISTINCT ticket) FROM calls WHERE office_day = ? AND "
                        "kind = 'call'", (day,)).fetchone()[0]
    return QueueCounts(checked_in, len(waiting(db, day)) if waiting_now is None else waiting_now,
                       called)


class CallQueue:
    """Counter actions on today's queue.

    Example::

        >>> from appliance.checkin import CheckinDesk
        >>> _ = CheckinDesk(store, config, clock).scan(b"K7Q2M9XA")     # checks in as A001
        >>> q = CallQueue(store, config, clock)
        >>> call = q.call_next(1)
        >>> call.ticket, call.counter_name
        ('A001', 'Loket 1')
        >>> q.call_next(1) is None          # nobody else is waiting
        True
    """

    def __init__(self, store, config, clock: Clock | None = None):
        self.store = store
        self.config = config
        self.clock = clock or Clock(store, config)

    def _counter(self, db, day: str, counter: int) -> Counter:
        if not 1 <= counter <= MAX_COUNTER:
            raise QueueError(f"counter {counter} is out of range 1-{MAX_COUNTER}")
        known = counters_for_day(db, day)
        if not known:  # no schedule (signed tickets only): any counter serves every service
            return Counter(counter, f"Loket {counter}", None)
        if counter not in known:
            ids = ", ".join(str(i) for i in sorted(known))
            raise QueueError(f"counter {counter} is not in today's schedule (counters: {ids})")
        return known[counter]

    def _current(self, db, day: str, counter: int):
        """The counter's current call: its latest call, unless marked no-show since."""
        row = db.execute(
            "SELECT k.ticket, k.id FROM calls k WHERE k.office_day = ? AND k.counter = ? AND"
            " k.kind = 'call' ORDER BY k.id DESC LIMIT 1", (day, counter)).fetchone()
        if row is None:
            return None
        gone = db.execute(
            "SELECT 1 FROM calls WHERE office_day = ? AND counter = ? AND ticket = ? AND"
            " kind = 'no_show' AND id > ?", (day, counter, row[0], row[1])).fetchone()
        return None if gone else row[0]

    def _applicant(self, db, day: str, ticket: str) -> tuple[str, str, str]:
        row = db.execute("SELECT name, salutation, service FROM checkins WHERE office_day = ?"
                         " AND ticket = ?", (day, ticket)).fetchone()
        return row if row else ("", "", ticket.rstrip("0123456789"))

    def _record(self, db, day: str, counter: Counter, ticket: str, kind: str) -> Call:
        at = self.clock.time()
        db.execute("INSERT INTO calls(office_day, ticket, counter, kind, at, origin)"
                   " VALUES (?,?,?,?,?, 'local')", (day, ticket, counter.id, kind, at))
        record_event(db, kind, {"ticket": ticket, "counter": counter.id}, at)
        name, salutation, service = self._applicant(db, day, ticket)
        return Call(ticket, counter.id, counter.name, kind, at, name, salutation, service)

    def call_next(self, counter: int) -> Call | None:
        """Call the next applicant to ``counter``; None (nothing changes) if nobody waits."""
        with self.store.write() as db:
            day = self.clock.lobby_day(db)
            c = self._counter(db, day, counter)
            rows = waiting(db, day, c.services, limit=1)
            if not rows:
                return None
            return self._record(db, day, c, rows[0][0], "call")

    def recall(self, counter: int) -> Call:
        """Call the counter's current ticket again (screen and voice repeat it)."""
        return self._act_on_current(counter, "recall")

    def no_show(self, counter: int) -> Call:
        """The called applicant did not come; the counter then has no current call."""
        return self._act_on_current(counter, "no_show")

    def _act_on_current(self, counter: int, kind: str) -> Call:
        with self.store.write() as db:
            day = self.clock.lobby_day(db)
            c = self._counter(db, day, counter)
            ticket = self._current(db, day, counter)
            if ticket is None:
                raise QueueError(f"counter {counter} has no current call; "
                                 f"use `antrean call --counter {counter}` first")
            return self._record(db, day, c, ticket, kind)

    def record_server_call(self, server_id: str, ticket: str, counter: int, at: float) -> bool:
        """Store a call pushed by the officers' software; False if already stored."""
        with self.store.write() as db:
            day = self.clock.office_day(at)
            cur = db.execute(
                "INSERT INTO calls(office_day, ticket, counter, kind, at, origin, server_id)"
                " VALUES (?,?,?, 'call', ?, 'server', ?) ON CONFLICT(server_id) DO NOTHING",
                (day, ticket, counter, at, server_id))
            return cur.rowcount == 1
