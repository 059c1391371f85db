"""What the call screen shows, read from the shared store without ever writing to it.

``StoreView.poll()`` is called every frame. It costs one ``PRAGMA data_version`` while nothing
changed; after another process commits it re-reads everything in one read transaction and
returns a fresh immutable ``Snapshot`` plus the calls that are new since the last poll, in id
order, so the screen can give each its own moment. A missing, locked, foreign or half-migrated
database is not an error here: the snapshot says what is wrong (``problem``) and the view
tries again every few seconds.

Example::

    >>> view = StoreView(config)
    >>> snap, new_calls = view.poll()
    >>> snap.problem is None, new_calls
    (True, [])
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field, replace

from appliance.clock import Clock
from appliance.errors import StoreError
from appliance.names import public_name
from appliance.queue import counters_for_day, waiting
from appliance.store import Store
from appliance.verdicts import messages_for

log = logging.getLogger(__name__)

RETRY_S = 2.0           # reopen a missing/broken store this often
RECENT_CALLS = 30       # calls kept in the snapshot (the screen shows far fewer)
NEXT_TICKETS = 6
READ_BUSY_MS = 20       # never stall a frame for long on a lock: show the old state instead
LOCKED_PROBLEM_S = 1.0  # a lock held longer than this is shown in the status corner
REFRESH_S = 5.0         # re-read even without commits: the office day and the clock move


@dataclass(frozen=True)
class CallRow:
    id: int
    ticket: str
    counter: int
    counter_name: str
    kind: str           # 'call' | 'recall' | 'no_show'
    at: float
    name: str           # public form: salutation + name per display.names, or ''
    service: str


@dataclass(frozen=True)
class CounterRow:
    id: int
    name: str
    ticket: str | None  # last ticket called here, None before the first call
    kind: str | None
    call_id: int


@dataclass(frozen=True)
class ServiceWait:
    code: str
    name: str
    waiting: int


@dataclass(frozen=True)
class ScanRow:
    id: int
    verdict: str
    ticket: str | None
    message_id: str
    message_en: str


@dataclass(frozen=True)
class Status:
    """Facts for technicians, shown small in a corner."""

    problem: str | None = None          # store missing/locked/migrating
    offline_since: float | None = None
    schedule_generated_at: float | None = None
    max_schedule_age_s: float = 24 * 3600
    outbox_pending: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    office_day: str = ""
    office_name: str = ""
    announcements: tuple[str, ...] = ()
    calls: tuple[CallRow, ...] = ()         # newest last, only kinds call/recall/no_show
    counters: tuple[CounterRow, ...] = ()   # newest call first, counters never called last
    waiting: tuple[ServiceWait, ...] = ()
    next_tickets: tuple[str, ...] = ()
    latest_scan: ScanRow | None = None
    status: Status = field(default_factory=Status)

    @property
    def problem(self) -> str | None:
        return self.status.problem

    @property
    def newest_call(self) -> CallRow | None:
        for call in reversed(self.calls):
            if call.kind != "no_show":
                return call
        return None


class StoreView:
    """A read-only view of the store for the display; reconnects by itself.

    The first successful read sets the baseline: calls and scans that existed before the
    screen started are shown but never announced.
    """

    def __init__(self, config, *, path: str | None = None, wall=time.time,
                 monotonic=time.monotonic):
        self.config = config
        self.path = path or config.storage.path
        self.names_mode = config.display.names
        self._wall = wall
        self._monotonic = monotonic
        self.store: Store | None = None
        self.clock = Clock(None, config, wall=wall)
        self.snapshot = Snapshot(office_name=config.office.name,
                                 status=Status(problem="memulai / starting"))
        self._version: int | None = None
        self._next_open = 0.0
        self._read_at = float("-inf")
        self._last_call_id: int | None = None
        self._last_scan_id: tuple[int, int] | None = None      # (row id, its count)
        self.new_scan = False
        self._busy_since: float | None = None
        self._logged_problem: str | None = None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def now(self) -> float:
        """Epoch seconds of the office clock (server-corrected when the Pi's clock is off)."""
        return self.clock.time()

    # polling -----------------------------------------------------------------------------

    def poll(self) -> tuple[Snapshot, list[CallRow]]:
        """The current snapshot and the calls committed since the last poll (oldest first)."""
        self.new_scan = False
        mono = self._monotonic()
        if self.store is None:
            if mono < self._next_open:
                return self.snapshot, []
            if not self._open(mono):
                return self.snapshot, []
        try:
            version = self.store.data_version()
            # On an untrusted clock the lobby's day moves only with the store (or the refresh).
            day = self.clock.office_day() if self.clock.trusted else self.snapshot.office_day
            if (version == self._version and day == self.snapshot.office_day
                    and mono - self._read_at < REFRESH_S):
                return self.snapshot, []
            snapshot, new_calls = self._read()
        except sqlite3.OperationalError as e:
            if not self._busy(e):
                self._fail(mono, self._describe(e))
                return self.snapshot, []
            # A writer checkpointing or recovering the WAL: keep the connection and the last
            # picture, try again next frame, and only call it a problem if it lasts.
            if self._busy_since is None:
                self._busy_since = mono
            elif mono - self._busy_since > LOCKED_PROBLEM_S:
                self._set_status_problem(self._describe(e))
            return self.snapshot, []
        except (sqlite3.Error, StoreError, ValueError, KeyError, TypeError) as e:
            self._fail(mono, self._describe(e))
            return self.snapshot, []
        self._busy_since = None
        self._version = version
        self._read_at = mono
        self.snapshot = snapshot
        self._set_problem(None)
        return snapshot, new_calls

    def _open(self, mono: float) -> bool:
        try:
            self._probe()
            self.store = Store(self.path, readonly=True)
            self.store.db.execute(f"PRAGMA busy_timeout={READ_BUSY_MS}")
        except StoreError as e:
            self._fail(mono, str(e))
            return False
        self.clock = Clock(self.store, self.config, wall=self._wall)
        self._version = None
        return True

    def _probe(self) -> None:
        """Fail fast on a locked file: ``Store()`` waits out its 5 s busy timeout, which
        would freeze the screen; this check waits ``READ_BUSY_MS`` at most."""
        if not os.path.exists(self.path):
            return                          # Store() says it is missing, in its words
        try:
            raw = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                  timeout=READ_BUSY_MS / 1000)
            try:
                raw.execute("PRAGMA user_version").fetchone()
            finally:
                raw.close()
        except sqlite3.Error as e:
            raise StoreError(self._describe(e)) from None

    def _fail(self, mono: float, problem: str) -> None:
        self.close()
        self._version = None
        self._busy_since = None
        self._next_open = mono + RETRY_S
        self._set_status_problem(problem)

    def _set_status_problem(self, problem: str) -> None:
        self.snapshot = replace(self.snapshot,
                                status=replace(self.snapshot.status, problem=problem))
        self._set_problem(problem)

    @staticmethod
    def _busy(e: sqlite3.OperationalError) -> bool:
        return "locked" in str(e) or "busy" in str(e)

    def _set_problem(self, problem: str | None) -> None:
        if problem != self._logged_problem:       # log changes once, not every retry
            if problem:
                log.warning("display shows no live data: %s", problem)
            else:
                log.info("display reads the store %s", self.path)
            self._logged_problem = problem

    @staticmethod
    def _describe(e: Exception) -> str:
        text = str(e)
        if "locked" in text or "busy" in text:
            return "database terkunci / database locked; retrying"
        if "no such table" in text or "no such column" in text:
            return "database sedang dimigrasi / database being migrated; retrying"
        return f"database error: {text}"

    # reading ---------------------------------------------------------------------------------

    def _read(self) -> tuple[Snapshot, list[CallRow]]:
        assert self.store is not None
        with self.store.read() as db:
            day = self.clock.lobby_day(db)
            schedule = db.execute(
                "SELECT office_name, generated_at, services_json, announcements_json"
                " FROM schedules WHERE date = ?", (day,)).fetchone()
            counters = counters_for_day(db, day)
            baseline = self._last_call_id
            since = baseline if baseline is not None else -1
            rows = db.execute(
                "SELECT k.id, k.ticket, k.counter, k.kind, k.at, c.name, c.salutation,"
                " c.service FROM calls k LEFT JOIN checkins c ON c.office_day = k.office_day"
                " AND c.ticket = k.ticket WHERE k.office_day = ? AND (k.id > ? OR k.id IN"
                " (SELECT id FROM calls WHERE office_day = ? ORDER BY id DESC LIMIT ?))"
                " ORDER BY k.id", (day, since, day, RECENT_CALLS)).fetchall()
            last_per_counter = db.execute(
                "SELECT counter, ticket, kind, MAX(id) FROM calls WHERE office_day = ?"
                " GROUP BY counter", (day,)).fetchall()
            lined_up = waiting(db, day)
            scan = db.execute(
                "SELECT id, verdict, ticket, name, salutation, detail, count FROM scans"
                " WHERE office_day = ? ORDER BY id DESC LIMIT 1", (day,)).fetchone()
            kv = dict(db.execute(
                "SELECT key, value FROM kv WHERE key IN ('announcements', 'sync.offline_since',"
                " 'sync.last_error')").fetchall())
            pending = db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]

        services = {s["code"]: s["name"] for s in json.loads(schedule[2])} if schedule else {}
        announcements = tuple(json.loads(schedule[3])) if schedule else ()
        pushed = json.loads(kv["announcements"]) if "announcements" in kv else None
        if isinstance(pushed, dict) and isinstance(pushed.get("items"), list):
            announcements = tuple(str(a) for a in pushed["items"])

        def counter_name(cid: int) -> str:
            return counters[cid].name if cid in counters else f"Loket {cid}"

        calls = []
        for cid, ticket, counter, kind, at, name, salutation, service in rows:
            shown = public_name(name or "", self.names_mode, salutation or "")
            calls.append(CallRow(cid, ticket, counter, counter_name(counter), kind, at, shown,
                                 service or ticket.rstrip("0123456789")))
        new_calls = [c for c in calls if baseline is not None and c.id > baseline]
        if calls:
            self._last_call_id = max(calls[-1].id, baseline or 0)
        elif baseline is None:
            self._last_call_id = 0
        calls = calls[-RECENT_CALLS:]

        called = {cid: (ticket, kind, call_id) for cid, ticket, kind, call_id in last_per_counter}
        rows_out = [CounterRow(cid, counter_name(cid), t, k, i)
                    for cid, (t, k, i) in called.items()]
        rows_out.sort(key=lambda r: -r.call_id)
        rows_out += [CounterRow(cid, c.name, None, None, 0)
                     for cid, c in sorted(counters.items()) if cid not in called]

        per_service: dict[str, int] = {}
        for row in lined_up:
            per_service[row[1]] = per_service.get(row[1], 0) + 1
        codes = list(services) + sorted(c for c in per_service if c not in services)
        waits = tuple(ServiceWait(c, services.get(c, c), per_service.get(c, 0)) for c in codes)

        latest_scan = None
        if scan is not None:
            sid, verdict, ticket, name, salutation, detail, count = scan
            shown = public_name(name or "", self.names_mode, salutation or "")
            try:
                msg_id, msg_en = messages_for(verdict, ticket, detail, shown)
            except (KeyError, ValueError, TypeError):
                msg_id, msg_en = (f"Silakan ke petugas ({verdict}).",
                                  f"Please see an officer ({verdict}).")
            latest_scan = ScanRow(sid, verdict, ticket, msg_id, msg_en)
            # A run of unreadable scans is one row whose count grows: each is a new scan.
            seen = (sid, count)
            self.new_scan = self._last_scan_id is not None and seen > self._last_scan_id
            self._last_scan_id = seen
        elif self._last_scan_id is None:
            self._last_scan_id = (0, 0)

        status = Status(
            problem=None,
            offline_since=_number(kv.get("sync.offline_since")),
            schedule_generated_at=schedule[1] if schedule else None,
            max_schedule_age_s=self.config.server.max_schedule_age_hours * 3600.0,
            outbox_pending=pending,
            last_error=json.loads(kv["sync.last_error"]) if "sync.last_error" in kv else None,
        )
        office = (schedule[0] if schedule else "") or self.config.office.name
        snapshot = Snapshot(day, office, announcements, tuple(calls), tuple(rows_out), waits,
                            tuple(r[0] for r in lined_up[:NEXT_TICKETS]), latest_scan, status)
        return snapshot, new_calls


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    value = json.loads(raw)
    return float(value) if isinstance(value, int | float) else None
