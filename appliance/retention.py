"""How long the store keeps what happened, so the database stops growing on the SD card.

Per-day history (scans, check-ins, calls, ticket numbering) of office days more than
``storage.retention_days`` ago, and dead-lettered events finished that long ago, are deleted.
Events not yet delivered are never deleted, nor a run of unreadable scans not yet reported;
sent events go after 30 days (``outbox.SENT_RETENTION_S``). While the clock is untrusted
(before the build date, no server time) nothing is deleted: a wrong "today" must never
decide what is old.

Deleting happens in batches of ``BATCH`` rows per table and transaction, so a long backlog
(the first prune after an upgrade) never holds the write lock for long; the scanner service
runs one step per idle tick until a step finds less than a batch, then once an hour. SQLite
reuses the freed pages, so the file stops growing at its high-water mark rather than
shrinking; ``storage_facts`` shows both for ``antrean status``.

Example (today's check-in is kept; 91 days later, with the default 90, it goes)::

    >>> from appliance.checkin import CheckinDesk
    >>> from appliance.clock import Clock
    >>> CheckinDesk(store, config, clock).scan(b"K7Q2M9XA").verdict
    'ok'
    >>> prune_step(store, config, clock)
    0
    >>> later = Clock(store, config, wall=lambda: clock.local() + 91 * 86400)
    >>> removed = BATCH
    >>> while removed >= BATCH:
    ...     removed = prune_step(store, config, later)
    >>> removed             # its scan, its check-in and the day's ticket numbering
    3
    >>> with store.read() as db:
    ...     print(storage_facts(db, str(config.storage.path), config)["oldest_day"])
    None
"""

from __future__ import annotations

import os
from datetime import date, timedelta

from appliance.outbox import SENT_RETENTION_S

BATCH = 2000
PRUNE_EVERY_S = 3600.0
DAY_TABLES = ("scans", "checkins", "calls")


def keep_from(config, clock) -> tuple[str, float] | None:
    """(first office day kept, dead events done before this local epoch go), or None."""
    if not clock.trusted:
        return None
    days = config.storage.retention_days
    first_kept = date.fromisoformat(clock.office_day()) - timedelta(days=days)
    return first_kept.isoformat(), clock.local() - days * 86400.0


def prune_step(store, config, clock, batch: int = BATCH) -> int:
    """Delete at most ``batch`` expired rows per table in one transaction; the number deleted.

    A result of ``batch`` or more means more may be left: call again.
    """
    limits = keep_from(config, clock)
    if limits is None:
        return 0
    first_day, dead_before = limits
    removed = 0
    with store.write() as db:
        for table in DAY_TABLES:
            unsettled = " AND count <= reported" if table == "scans" else ""
            removed += db.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE office_day < ?"
                f"{unsettled} LIMIT ?)", (first_day, batch)).rowcount
        removed += db.execute("DELETE FROM ticket_numbers WHERE office_day < ?",
                              (first_day,)).rowcount
        for state, before in (("dead", dead_before), ("sent", clock.local() - SENT_RETENTION_S)):
            removed += db.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE state = ? AND"
                " done_at < ? LIMIT ?)", (state, before, batch)).rowcount
    return removed


def storage_facts(db, path: str, config) -> dict:
    """The database's size on disk, the space free inside it, and what it keeps."""
    page = db.execute("PRAGMA page_size").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0] * page
    oldest = db.execute("SELECT MIN(d) FROM (SELECT MIN(office_day) AS d FROM scans UNION ALL"
                        " SELECT MIN(office_day) FROM checkins UNION ALL"
                        " SELECT MIN(office_day) FROM calls)").fetchone()[0]
    sizes = {}
    for key, suffix in (("size_bytes", ""), ("wal_bytes", "-wal")):
        try:
            sizes[key] = os.path.getsize(path + suffix)
        except OSError:
            sizes[key] = 0
    return {**sizes, "free_bytes": free, "retention_days": config.storage.retention_days,
            "oldest_day": oldest}
