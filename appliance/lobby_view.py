"""The lobby as the screen, ``status``, the heartbeat and the slip printer see it: one read
API over the store, so they all show the same facts.

:func:`read_lobby` reads, in the caller's read transaction, the day's calls per counter, who
waits per service with the waiting-time estimates and the lateness against the schedule, the
latest scan (the check-in panel), the schedule's freshness and the sync facts. Nothing here
writes. Store errors are classified by SQLite's error name (:func:`store_problem`), never by
their message text, which SQLite does not promise to keep.

Example (the example office at 09:05, Bapak Andi checked in for service A)::

    >>> from appliance.checkin import CheckinDesk
    >>> CheckinDesk(store, config, clock).scan(b"K7Q2M9XA").ticket
    'A001'
    >>> with store.read() as db:
    ...     est = wait_estimates(db, clock.office_day(), clock.time(), config)
    >>> mine = est.for_ticket("A001")
    >>> mine.ahead, mine.wait_s             # nobody ahead and Loket 1 is free
    (0, 0.0)
    >>> est.for_service("A").next_wait_s    # whoever joins service A now waits for A001
    600.0
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime

from appliance.call_queue import Call, Counter, QueueCounts, counters_for_day, queue_counts, waiting
from appliance.schedule import ScheduleInfo, is_usable, read_schedule_info
from appliance.wait_estimate import (
    ApplicantEstimate,
    Booking,
    CounterCall,
    CounterSpec,
    EstimateSettings,
    LobbyEstimate,
    PastDay,
    UsualAbsences,
    Waiting,
    estimate_lobby,
    usual_absences,
)

log = logging.getLogger(__name__)

CALLS_SQL = (
    "SELECT k.counter, k.ticket, k.at, c.service, c.slot_start, c.checked_in_at, c.priority"
    " FROM calls k"
    " LEFT JOIN checkins c ON c.office_day = k.office_day AND c.ticket = k.ticket"
    " WHERE k.office_day = ? AND k.kind = 'call' ORDER BY k.id")
PAST_DAYS_SQL = ("SELECT DISTINCT office_day FROM calls WHERE office_day < ?"
                 " ORDER BY office_day DESC LIMIT ?")
BOOKINGS_SQL = (
    "SELECT a.service, a.priority, a.slot_start, a.slot_end, EXISTS (SELECT 1 FROM checkins c"
    " WHERE c.office_day = ?1 AND c.booking_code = a.booking_code) FROM appointments a"
    " WHERE a.date = ?1 AND a.status = 'booked'")


def wait_estimates(db, day: str, now: float, config,
                   settings: EstimateSettings | None = None, *,
                   lined_up: list | None = None) -> LobbyEstimate:
    """Expected calls of everyone waiting on ``day`` at ``now``, and per service.

    Call inside one read transaction (``store.read()``) so the rows agree with each other;
    ``settings`` default to the config's ``[estimate]`` section; ``lined_up`` are the
    day's ``appliance.call_queue.waiting`` rows when the caller has read them already. The model
    is :func:`appliance.wait_estimate.estimate_lobby`.
    """
    settings = settings or EstimateSettings.from_config(config)
    rows = waiting(db, day) if lined_up is None else lined_up
    lined_up = [Waiting(ticket, service, bool(priority), slot, at)
                for ticket, service, _name, _sal, priority, slot, at in rows]
    calls = _calls(db, day)
    bookings = [Booking(service, bool(priority), start, end, bool(done))
                for service, priority, start, end, done in db.execute(BOOKINGS_SQL, (day,))]
    row = db.execute("SELECT services_json, opening_open FROM schedules WHERE date = ?",
                     (day,)).fetchone()
    services: list[str] = []
    opens_at = None
    if row is not None:
        services = [s["code"] for s in json.loads(row[0])]
        opens_at = datetime.fromisoformat(f"{day}T{row[1]}").replace(
            tzinfo=config.tz).timestamp()
    counters = [CounterSpec(c.id, c.services) for c in counters_for_day(db, day).values()]
    return estimate_lobby(lined_up, calls, counters, now, settings, bookings=bookings,
                          services=services, opens_at=opens_at,
                          usual=usual_absences_before(db, day, counters, settings, config.tz),
                          midnight=_midnight(day, config.tz))


_usual_cache: dict[tuple, UsualAbsences] = {}


def usual_absences_before(db, day: str, counters: list[CounterSpec],
                          settings: EstimateSettings, tz) -> UsualAbsences:
    """The counters' usual absences from the ``history_days`` office days before ``day``.

    Those days do not change while ``day`` runs, so the result is kept until their calls do
    (one count per read instead of re-reading a week of calls for every estimate).
    """
    days = [d for (d,) in db.execute(PAST_DAYS_SQL, (day, settings.history_days))]
    marks = ",".join("?" * len(days))
    size = db.execute(f"SELECT COUNT(*), MAX(id) FROM calls WHERE office_day IN ({marks})",
                      days).fetchone()
    path = db.execute("PRAGMA database_list").fetchone()[2]
    key = (path, tuple(days), tuple(size), tuple(counters), repr(settings))
    if key not in _usual_cache:
        past = [PastDay(_midnight(d, tz), tuple(_calls(db, d))) for d in days]
        _usual_cache.clear()
        _usual_cache[key] = usual_absences(past, {c.id: c for c in counters}, settings)
    return _usual_cache[key]


def _midnight(day: str, tz) -> float:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), tz).timestamp()


def _calls(db, day: str) -> list[CounterCall]:
    return [CounterCall(counter, ticket, service or ticket.rstrip("0123456789"), at, slot,
                        checked_in, bool(priority))
            for counter, ticket, at, service, slot, checked_in, priority
            in db.execute(CALLS_SQL, (day,))]


# Store errors, by SQLite's error name --------------------------------------------------------

BUSY = "busy"           # another connection holds a lock: try again shortly
SCHEMA = "schema"       # a table or column the code reads is missing: mid-migration
BROKEN = "broken"       # anything else: corrupt, not a database, I/O


def error_kind(e: BaseException) -> str:
    """:data:`BUSY`, :data:`SCHEMA` or :data:`BROKEN` for an error raised by SQLite.

    By ``sqlite3.Error.sqlite_errorname`` (Python 3.11+): ``SQLITE_BUSY``/``SQLITE_LOCKED``
    and their extended forms are a lock; plain ``SQLITE_ERROR`` from this module's fixed SQL
    can only be a missing table or column. Errors without a name (raised by Python, not
    SQLite) are broken.
    """
    name = getattr(e, "sqlite_errorname", None) or ""
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return BUSY
    if name in ("SQLITE_ERROR", "SQLITE_SCHEMA"):
        return SCHEMA
    return BROKEN


def store_problem(e: BaseException) -> str:
    """One line for a technician (screen corner, status) saying what is wrong with the store."""
    kind = error_kind(e) if isinstance(e, sqlite3.Error) else BROKEN
    if kind == BUSY:
        return "database terkunci / database locked; retrying"
    if kind == SCHEMA:
        return "database sedang dimigrasi / database being migrated; retrying"
    return f"database error: {e}"


# The read model ---------------------------------------------------------------------------

RECENT_CALLS = 30       # calls kept in a lobby read (the screen shows far fewer)
NEXT_TICKETS = 6

RECENT_CALLS_SQL = (
    "SELECT k.id, k.ticket, k.counter, k.kind, k.at, c.name, c.salutation, c.service"
    " FROM calls k LEFT JOIN checkins c ON c.office_day = k.office_day AND c.ticket = k.ticket"
    " WHERE k.office_day = ? AND (k.id > ? OR k.id IN"
    " (SELECT id FROM calls WHERE office_day = ? ORDER BY id DESC LIMIT ?)) ORDER BY k.id")
LAST_PER_COUNTER_SQL = ("SELECT counter, ticket, kind, MAX(id) FROM calls WHERE office_day = ?"
                        " GROUP BY counter")
LATEST_SCAN_SQL = ("SELECT id, verdict, ticket, name, salutation, detail, count, at FROM scans"
                   " WHERE office_day = ? ORDER BY id DESC LIMIT 1")
SYNC_KV_SQL = ("SELECT key, value FROM kv WHERE key IN ('announcements', 'sync.offline_since',"
               " 'sync.last_error')")


@dataclass(frozen=True)
class LobbyCall(Call):
    """A call, recall or no-show of the day (the applicant's stored, private name) and its
    row id, which orders calls committed together."""

    id: int = 0


@dataclass(frozen=True)
class CounterState:
    id: int
    name: str
    ticket: str | None  # last ticket called here, None before the first call
    kind: str | None
    call_id: int


@dataclass(frozen=True)
class ServiceQueue:
    """One service: how many wait, the wait for someone arriving now, and its lateness."""

    code: str
    name: str
    waiting: int
    next_wait_s: float | None = None    # None: no estimate
    lateness_s: float | None = None     # None: no calls to judge by lately


@dataclass(frozen=True)
class LatestScan:
    """The newest scan of the day (what the check-in panel shows), with the estimate of an
    applicant it put in the queue: people ahead and the expected call, when known."""

    id: int
    verdict: str
    ticket: str | None
    name: str
    salutation: str
    detail: str | None
    count: int
    at: float = 0.0
    ahead: int | None = None
    call_at: float | None = None


@dataclass(frozen=True)
class Lobby:
    """The lobby of one office day at ``now``, read in one transaction."""

    day: str
    now: float
    schedule: ScheduleInfo | None
    office_name: str                        # the schedule's, else the config's
    services: dict[str, str]                # code -> name, in the schedule's order
    announcements: tuple[str, ...]          # pushed ones replace the schedule's
    counters: dict[int, Counter]
    calls: tuple[LobbyCall, ...]            # the recent ones and any newer than asked, by id
    counter_states: tuple[CounterState, ...]  # newest call first, never called last
    queues: tuple[ServiceQueue, ...]        # the schedule's services first
    next_tickets: tuple[str, ...]
    counts: QueueCounts
    latest_scan: LatestScan | None
    offline_since: float | None
    last_error: str | None
    outbox_pending: int
    estimate: LobbyEstimate | None
    late_notice_s: float
    max_schedule_age_s: float

    @property
    def lateness_s(self) -> float | None:
        """The lobby's lateness: the latest-running service's, or None without calls."""
        late = [q.lateness_s for q in self.queues if q.lateness_s is not None]
        return max(late) if late else None

    @property
    def running_late_s(self) -> float | None:
        """The lateness when it reaches ``[estimate] late_notice_minutes``, else None (the
        screen says nothing while the lobby is on time)."""
        late = self.lateness_s
        return late if late is not None and late >= self.late_notice_s else None

    def schedule_age_s(self) -> float | None:
        return None if self.schedule is None else self.now - self.schedule.generated_at

    def schedule_usable(self) -> bool:
        generated = None if self.schedule is None else self.schedule.generated_at
        return is_usable(generated, self.now, self.max_schedule_age_s / 3600.0)

    def summary(self) -> dict:
        """The estimates and lateness per service as plain JSON (heartbeat and ``status``)."""
        return {
            "date": self.day,
            "waiting": self.counts.waiting,
            "lateness_s": _rounded(self.lateness_s),
            "running_late": self.running_late_s is not None,
            "open_counters": list(self.estimate.open_counters) if self.estimate else [],
            "services": [{"code": q.code, "name": q.name, "waiting": q.waiting,
                          "next_wait_s": _rounded(q.next_wait_s),
                          "lateness_s": _rounded(q.lateness_s)} for q in self.queues],
        }


def read_lobby(db, day: str, config, now: float, *, calls_since: int | None = None,
               recent_calls: int = RECENT_CALLS, next_tickets: int = NEXT_TICKETS,
               estimates: bool = True, appointments: bool = False) -> Lobby:
    """Everything the lobby shows on ``day`` at ``now`` (office-clock epoch seconds).

    Call inside one read transaction (``store.read()``; ``day`` from ``Clock.lobby_day``).
    ``calls`` holds the latest ``recent_calls`` and every call with an id above
    ``calls_since`` (None: only the latest). ``estimates=False`` skips the waiting-time model
    (its fields are None); ``appointments=True`` counts the schedule's appointments. A failing
    estimate is logged and left out: the rest of the lobby is still true.
    """
    info = read_schedule_info(db, day, count=appointments)
    counters = counters_for_day(db, day)
    rows = db.execute(RECENT_CALLS_SQL, (day, calls_since, day, recent_calls)).fetchall()
    last_per_counter = db.execute(LAST_PER_COUNTER_SQL, (day,)).fetchall()
    lined_up = waiting(db, day)
    scan = db.execute(LATEST_SCAN_SQL, (day,)).fetchone()
    kv = dict(db.execute(SYNC_KV_SQL).fetchall())
    pending = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
    counts = queue_counts(db, day, len(lined_up))
    settings = EstimateSettings.from_config(config)
    estimate = None
    if estimates:
        try:
            estimate = wait_estimates(db, day, now, config, settings, lined_up=lined_up)
        except (ArithmeticError, ValueError, KeyError, TypeError) as e:
            log.warning("no waiting-time estimate for %s: %s", day, e)

    services = {s["code"]: s["name"] for s in info.services} if info else {}
    announcements = tuple(info.announcements) if info else ()
    pushed = json.loads(kv["announcements"]) if "announcements" in kv else None
    if isinstance(pushed, dict) and isinstance(pushed.get("items"), list):
        announcements = tuple(str(a) for a in pushed["items"])

    def counter_name(cid: int) -> str:
        return counters[cid].name if cid in counters else f"Loket {cid}"

    calls = tuple(LobbyCall(ticket, counter, counter_name(counter), kind, at, name or "",
                            salutation or "", service or ticket.rstrip("0123456789"), id=cid)
                  for cid, ticket, counter, kind, at, name, salutation, service in rows)
    states = [CounterState(cid, counter_name(cid), t, k, i)
              for cid, t, k, i in last_per_counter]
    states.sort(key=lambda r: -r.call_id)
    states += [CounterState(cid, c.name, None, None, 0)
               for cid, c in sorted(counters.items()) if cid not in {s.id for s in states}]

    per_service: dict[str, int] = {}
    for row in lined_up:
        per_service[row[1]] = per_service.get(row[1], 0) + 1
    codes = list(services) + sorted(c for c in per_service if c not in services)
    queues = []
    for code in codes:
        est = estimate.for_service(code) if estimate else None
        queues.append(ServiceQueue(code, services.get(code, code), per_service.get(code, 0),
                                   est.next_wait_s if est else None,
                                   est.lateness_s if est else None))

    latest = None
    if scan is not None:
        sid, verdict, ticket, name, salutation, detail, count, at = scan
        mine = estimate.for_ticket(ticket) if estimate and ticket else None
        latest = LatestScan(sid, verdict, ticket, name or "", salutation or "", detail, count,
                            at, mine.ahead if mine else None, mine.call_at if mine else None)

    return Lobby(
        day=day, now=now, schedule=info,
        office_name=(info.office_name if info else "") or config.office.name,
        services=services, announcements=announcements, counters=counters, calls=calls,
        counter_states=tuple(states), queues=tuple(queues),
        next_tickets=tuple(r[0] for r in lined_up[:next_tickets]),
        counts=counts, latest_scan=latest,
        offline_since=_number(kv.get("sync.offline_since")),
        last_error=json.loads(kv["sync.last_error"]) if "sync.last_error" in kv else None,
        outbox_pending=pending, estimate=estimate,
        late_notice_s=settings.late_notice_minutes * 60.0,
        max_schedule_age_s=config.server.max_schedule_age_hours * 3600.0)


def call_time_estimator(config, clock):
    """An ``appliance.print_queue.Estimator``: the expected call of a ticket, from the same
    model the screen shows, at the office clock's now; None once it was called."""
    def estimate(db, day: str, ticket: str) -> float | None:
        mine: ApplicantEstimate | None = wait_estimates(db, day, clock.time(),
                                                        config).for_ticket(ticket)
        return mine.call_at if mine is not None else None
    return estimate


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    value = json.loads(raw)
    return float(value) if isinstance(value, int | float) else None


def _rounded(seconds: float | None) -> int | None:
    return None if seconds is None or seconds == float("inf") else round(seconds)
