"""The outbox: every fact the central server must hear about, queued durably.

Events are written in the same transaction as the fact they report (a check-in, a rejected
scan, a call), so neither exists without the other. The sync service drains the queue oldest
first; the server de-duplicates on the event id, so sending twice after a crash is harmless.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from appliance.errors import OutboxError

# Crockford's base32, as in ULIDs: ids sort by creation time and stay readable in logs.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SENT_RETENTION_S = 30 * 86400


def new_event_id(at: float | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, 26 characters."""
    ms = int((time.time() if at is None else at) * 1000) & ((1 << 48) - 1)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def utc_instant(epoch: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-30T00:01:02.123Z``."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@dataclass(frozen=True)
class OutboxEvent:
    seq: int
    id: str
    type: str
    body: dict


def record_event(db, type: str, fields: dict, at: float) -> str:
    """Queue one event inside the caller's open write transaction; returns its id."""
    event_id = new_event_id(at)
    body = {"id": event_id, "type": type, "at": utc_instant(at), **fields}
    db.execute("INSERT INTO outbox(id, type, body, created_at) VALUES (?, ?, ?, ?)",
               (event_id, type, json.dumps(body, ensure_ascii=False, separators=(",", ":")), at))
    return event_id


def pending_batch(store, limit: int = 100) -> list[OutboxEvent]:
    rows = store.db.execute(
        "SELECT seq, id, type, body FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT ?",
        (limit,)).fetchall()
    return [OutboxEvent(seq, eid, etype, json.loads(body)) for seq, eid, etype, body in rows]


def mark_sent(store, ids) -> None:
    """Accepted or duplicate at the server: done. Old sent rows are pruned here too."""
    now = time.time()
    with store.write() as db:
        db.executemany("UPDATE outbox SET state = 'sent', done_at = ? WHERE id = ?",
                       [(now, i) for i in ids])
        db.execute("DELETE FROM outbox WHERE state = 'sent' AND done_at < ?",
                   (now - SENT_RETENTION_S,))


def mark_dead(store, reasons: dict[str, str]) -> None:
    """Rejected by the server: kept for technicians, never retried."""
    now = time.time()
    with store.write() as db:
        db.executemany("UPDATE outbox SET state = 'dead', done_at = ?, reason = ? WHERE id = ?",
                       [(now, reason, i) for i, reason in reasons.items()])


def requeue_dead(store, ids: list[str] | None = None) -> list[str]:
    """Make dead events pending again, after a technician fixed what refused them.

    ``ids`` None means every dead event. All or nothing: an id that is not a dead event
    raises ``OutboxError`` naming it and changes nothing. The server de-duplicates on the
    event id, so an event it did store before is answered ``duplicate``, never counted twice.
    Returns the ids requeued.
    """
    with store.write() as db:
        if ids is None:
            chosen = [r[0] for r in db.execute(
                "SELECT id FROM outbox WHERE state = 'dead' ORDER BY seq")]
        else:
            wanted = list(dict.fromkeys(ids))
            dead = set()
            for start in range(0, len(wanted), 500):   # SQLite's bound-parameter limit
                part = wanted[start:start + 500]
                dead.update(r[0] for r in db.execute(
                    "SELECT id FROM outbox WHERE state = 'dead' AND id IN "
                    f"({','.join('?' * len(part))})", part))
            missing = [i for i in wanted if i not in dead]
            if missing:
                raise OutboxError(f"no dead event with id {missing[0]!r}"
                                  + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                     else "")
                                  + "; `antrean status` lists dead events; nothing was requeued")
            chosen = wanted
        db.executemany("UPDATE outbox SET state = 'pending', done_at = NULL, reason = NULL "
                       "WHERE id = ?", [(i,) for i in chosen])
    return chosen


def note_attempt(store, ids) -> None:
    with store.write() as db:
        db.executemany("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?",
                       [(i,) for i in ids])


def counts(store) -> dict[str, int]:
    rows = dict(store.db.execute(
        "SELECT state, COUNT(*) FROM outbox WHERE state IN ('pending', 'dead') GROUP BY state"
    ).fetchall())
    return {"pending": rows.get("pending", 0), "dead": rows.get("dead", 0)}
