"""What the lobby looks like now, read from the store for the screen, status, heartbeat and
slip printer: the rows the pure models need, read together, handed to them.

Example::

    >>> with store.read() as db:                                       # doctest: +SKIP
    ...     est = wait_estimates(db, "2026-11-30", time.time(), config)
    >>> est.for_ticket("A012").wait_s                                  # doctest: +SKIP
    840.0
"""

from __future__ import annotations

import json
from datetime import date, datetime

from appliance.queue import counters_for_day, waiting
from appliance.wait_estimate import (
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
                   settings: EstimateSettings | None = None) -> LobbyEstimate:
    """Expected calls of everyone waiting on ``day`` at ``now``, and per service.

    Call inside one read transaction (``store.read()``) so the rows agree with each other;
    ``settings`` default to the config's ``[estimate]`` section. The model is
    :func:`appliance.wait_estimate.estimate_lobby`.
    """
    settings = settings or EstimateSettings.from_config(config)
    lined_up = [Waiting(ticket, service, bool(priority), slot, at)
                for ticket, service, _name, _sal, priority, slot, at in waiting(db, day)]
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
