"""Which slips to print: one per accepted check-in, at most once, plus reprints on request.

The printer service follows check-ins from the store the way the display does, and keeps its
own small table (``slips``) so every slip has a state:

    pending -> printing -> printed
       |          |
       |          +-> pending again (the printer refused it: paper out, unplugged, ...)
       +-> expired (not printed within ``printer.max_age_minutes``: nobody waits for it now)

``printing`` is committed before the first byte goes out. A service killed while a slip is
``printing`` cannot know whether it came out; at the next start that slip becomes
``interrupted`` and is not printed again by itself (at most once), and ``antrean status``
names it so an officer can reprint it (``antrean print --ticket A012``).

The first time the printer service runs it starts after the newest existing check-in, so a
printer installed at noon does not print the morning's slips. Nothing here touches a printer.

Example::

    >>> from appliance.checkin import CheckinDesk
    >>> q = PrintQueue(store, config, clock)
    >>> q.follow_checkins()                  # the first run starts after what is there
    0
    >>> CheckinDesk(store, config, clock).scan(b"K7Q2M9XA").ticket
    'A001'
    >>> q.follow_checkins()                  # new check-ins become pending slips
    1
    >>> q.next_job().ticket
    'A001'
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from appliance.call_queue import waiting
from appliance.clock import Clock
from appliance.errors import QueueError
from appliance.names import public_name
from appliance.slip import SlipFacts

CURSOR_KEY = "printer.cursor"     # kv: the newest checkins.id the printer has taken in
STATE_KEY = "printer.state"       # kv: the printer's condition, for status and heartbeat
KEEP_DAYS = 30                    # slips' history is pruned after this many days
# Given (db, office day, ticket), the epoch second the applicant will probably be called,
# or None. The waiting-time estimate plugs in here; without one the slip leaves it out.
Estimator = Callable[[object, str, str], float | None]


@dataclass(frozen=True)
class Job:
    id: int
    office_day: str
    ticket: str
    checkin_id: int
    kind: str           # 'checkin' | 'reprint'
    requested_at: float
    attempts: int


def people_ahead(db, day: str, ticket: str, service: str) -> int:
    """Applicants of the same service waiting ahead of ``ticket`` in the call order."""
    tickets = [row[0] for row in waiting(db, day, (service,))]
    return tickets.index(ticket) if ticket in tickets else 0


class PrintQueue:
    def __init__(self, store, config, clock: Clock | None = None,
                 estimator: Estimator | None = None):
        self.store = store
        self.config = config
        self.clock = clock or Clock(store, config)
        self.estimator = estimator
        self.max_age_s = config.printer.max_age_minutes * 60.0
        self._seen: int | None = None

    # following check-ins ------------------------------------------------------------------

    def follow_checkins(self) -> int:
        """Add a pending slip for every check-in since the last call; returns how many."""
        newest = self.store.db.execute("SELECT MAX(id) FROM checkins").fetchone()[0] or 0
        if self._seen is not None and newest <= self._seen:
            return 0                      # the common case: one cheap read, no write
        with self.store.write() as db:
            cursor = self.store.get_kv(CURSOR_KEY)
            if cursor is None:            # first run: start after what is already there
                self.store.set_kv(CURSOR_KEY, newest, db=db)
                self._seen = newest
                return 0
            rows = db.execute("SELECT id, office_day, ticket, checked_in_at FROM checkins"
                              " WHERE id > ? ORDER BY id", (cursor,)).fetchall()
            added = 0
            for cid, day, ticket, at in rows:
                added += db.execute(
                    "INSERT OR IGNORE INTO slips(office_day, ticket, checkin_id, kind,"
                    " requested_at) VALUES (?,?,?, 'checkin', ?)", (day, ticket, cid, at)
                ).rowcount
            if rows:
                self.store.set_kv(CURSOR_KEY, rows[-1][0], db=db)
            self._seen = max(newest, rows[-1][0] if rows else cursor)
        return added

    def request_reprint(self, ticket: str) -> int:
        """Queue a reprint of today's ``ticket``; returns the job id."""
        ticket = ticket.strip().upper()
        with self.store.write() as db:
            day = self.clock.office_day()
            row = db.execute("SELECT id FROM checkins WHERE office_day = ? AND ticket = ?",
                             (day, ticket)).fetchone()
            if row is None:
                raise QueueError(f"ticket {ticket} is not checked in today ({day}); check the "
                                 "number on the screen or in `antrean status`")
            return db.execute(
                "INSERT INTO slips(office_day, ticket, checkin_id, kind, requested_at)"
                " VALUES (?,?,?, 'reprint', ?)", (day, ticket, row[0], self.clock.time())
            ).lastrowid

    # the printer service's steps ------------------------------------------------------------

    def recover_interrupted(self) -> list[str]:
        """At start: slips left ``printing`` by a killed service become ``interrupted``."""
        with self.store.write() as db:
            tickets = [r[0] for r in db.execute(
                "SELECT ticket FROM slips WHERE state = 'printing' ORDER BY id")]
            db.execute("UPDATE slips SET state = 'interrupted', done_at = ?, last_error ="
                       " 'the printer service stopped while printing; reprint if the applicant"
                       " has no slip' WHERE state = 'printing'", (self.clock.time(),))
        return tickets

    def expire_stale(self) -> list[str]:
        """Pending slips older than ``max_age_minutes`` are given up; returns their tickets."""
        now = self.clock.time()
        with self.store.write() as db:
            rows = db.execute("SELECT id, ticket FROM slips WHERE state = 'pending' AND"
                              " requested_at < ?", (now - self.max_age_s,)).fetchall()
            for sid, _ in rows:
                db.execute("UPDATE slips SET state = 'expired', done_at = ?, last_error ="
                           " COALESCE(last_error, 'not printed in time') WHERE id = ?",
                           (now, sid))
            # History is for today's status; a month of it is plenty.
            db.execute("DELETE FROM slips WHERE requested_at < ? AND state != 'printing'",
                       (now - KEEP_DAYS * 86400,))
        return [t for _, t in rows]

    def next_job(self) -> Job | None:
        row = self.store.db.execute(
            "SELECT id, office_day, ticket, checkin_id, kind, requested_at, attempts FROM slips"
            " WHERE state = 'pending' ORDER BY id LIMIT 1").fetchone()
        return Job(*row) if row else None

    def pending_count(self) -> int:
        return self.store.db.execute(
            "SELECT COUNT(*) FROM slips WHERE state = 'pending'").fetchone()[0]

    def start(self, job: Job) -> None:
        with self.store.write() as db:
            db.execute("UPDATE slips SET state = 'printing', attempts = attempts + 1"
                       " WHERE id = ?", (job.id,))

    def printed(self, job: Job) -> None:
        with self.store.write() as db:
            db.execute("UPDATE slips SET state = 'printed', done_at = ?, last_error = NULL"
                       " WHERE id = ?", (self.clock.time(), job.id))

    def failed(self, job: Job, error: str) -> None:
        """Back to pending: the printer refused the slip before printing it."""
        with self.store.write() as db:
            db.execute("UPDATE slips SET state = 'pending', last_error = ? WHERE id = ?",
                       (error, job.id))

    def abandon(self, job: Job, reason: str) -> None:
        """Give a slip up for good (its check-in cannot be read any more)."""
        with self.store.write() as db:
            db.execute("UPDATE slips SET state = 'expired', done_at = ?, last_error = ?"
                       " WHERE id = ?", (self.clock.time(), reason, job.id))

    def job_state(self, job_id: int) -> tuple[str, str | None]:
        row = self.store.db.execute("SELECT state, last_error FROM slips WHERE id = ?",
                                    (job_id,)).fetchone()
        if row is None:
            raise QueueError(f"print job {job_id} does not exist")
        return row[0], row[1]

    # what a slip says -----------------------------------------------------------------------

    def facts(self, job: Job) -> SlipFacts:
        """The slip's content for ``job``, read in one snapshot of the store."""
        tz = self.config.tz
        with self.store.read() as db:
            row = db.execute("SELECT ticket, service, name, salutation, checked_in_at"
                             " FROM checkins WHERE id = ?", (job.checkin_id,)).fetchone()
            if row is None:
                raise QueueError(f"check-in {job.checkin_id} of slip {job.ticket} is gone")
            ticket, service, name, salutation, at = row
            schedule = db.execute("SELECT office_name, services_json FROM schedules"
                                  " WHERE date = ?", (job.office_day,)).fetchone()
            ahead = people_ahead(db, job.office_day, ticket, service)
            estimate = self.estimator(db, job.office_day, ticket) if self.estimator else None
        services = {s["code"]: s["name"] for s in json.loads(schedule[1])} if schedule else {}
        office = (schedule[0] if schedule else "") or self.config.office.name or "Antrean"
        return SlipFacts(
            office_name=office,
            checked_in=datetime.fromtimestamp(at, tz),
            ticket=ticket,
            service_name=services.get(service, service),
            name=public_name(name, self.config.display.names, salutation),
            people_ahead=ahead,
            estimated_call=datetime.fromtimestamp(estimate, tz) if estimate else None,
            reprint=job.kind == "reprint",
        )


def printer_report(store, day: str) -> dict:
    """The printer at a glance, for ``antrean status`` and the heartbeat.

    ``state`` is what the printer service last saw (docs/printer.md lists the values),
    ``since`` when that began; the counts are today's slips by state, and ``attention``
    names slips an officer may need to reprint.
    """
    state = store.get_kv(STATE_KEY) or {"state": "unknown", "detail": "the printer service "
                                        "has not reported yet", "since": None}
    counts = dict(store.db.execute("SELECT state, COUNT(*) FROM slips WHERE office_day = ?"
                                   " GROUP BY state", (day,)).fetchall())
    attention = [{"ticket": t, "state": s, "reason": r} for t, s, r in store.db.execute(
        "SELECT ticket, state, last_error FROM slips WHERE office_day = ? AND state IN"
        " ('expired', 'interrupted') ORDER BY id DESC LIMIT 5", (day,))]
    return {**state, "pending": counts.get("pending", 0) + counts.get("printing", 0),
            "printed": counts.get("printed", 0), "expired": counts.get("expired", 0),
            "interrupted": counts.get("interrupted", 0), "attention": attention}
