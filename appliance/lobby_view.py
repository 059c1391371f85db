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
from datetime import datetime

from appliance.queue import counters_for_day, waiting
from appliance.wait_estimate import (
    Booking,
    CounterCall,
    CounterSpec,
    EstimateSettings,
    LobbyEstimate,
    Waiting,
    estimate_lobby,
)

CALLS_SQL = (
    "SELECT k.counter, k.ticket, k.at, c.service, c.slot_start, c.checked_in_at, c.priority"
    " FROM calls k"
    " LEFT JOIN checkins c ON c.office_day = k.office_day AND c.ticket = k.ticket"
    " WHERE k.office_day = ? AND k.kind = 'call' ORDER BY k.id")
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
    calls = [CounterCall(counter, ticket, service or ticket.rstrip("0123456789"), at, slot,
                         checked_in, bool(priority))
             for counter, ticket, at, service, slot, checked_in, priority
             in db.execute(CALLS_SQL, (day,))]
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
                          services=services, opens_at=opens_at)
