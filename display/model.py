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

import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field, replace

from appliance.clock import Clock
from appliance.errors import StoreError
from appliance.lobby_view import (
    BUSY,
    NEXT_TICKETS,
    RECENT_CALLS,
    CounterState,
    ServiceQueue,
    error_kind,
    read_lobby,
    store_problem,
)
from appliance.names import public_name
from appliance.store import Store
from appliance.verdicts import messages_for

log = logging.getLogger(__name__)

RETRY_S = 2.0           # reopen a missing/broken store this often
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


CounterRow = CounterState      # a counter's row on the screen is the read model's
ServiceWait = ServiceQueue     # ... and so is a service's waiting line


@dataclass(frozen=True)
class ScanRow:
    id: int
    verdict: str
    ticket: str | None
    message_id: str
    message_en: str
    ahead: int | None = None            # an applicant the scan put in the queue
    call_at: float | None = None        # ... and their expected call (epoch seconds)
    at: float = 0.0                     # when it was scanned (office clock)


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
    running_late_s: float | None = None   # lateness from [estimate] late_notice_minutes on

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
        return error_kind(e) == BUSY

    def _set_problem(self, problem: str | None) -> None:
        if problem != self._logged_problem:       # log changes once, not every retry
            if problem:
                log.warning("display shows no live data: %s", problem)
            else:
                log.info("display reads the store %s", self.path)
            self._logged_problem = problem

    @staticmethod
    def _describe(e: Exception) -> str:
        return store_problem(e)

    # reading ---------------------------------------------------------------------------------

    def _read(self) -> tuple[Snapshot, list[CallRow]]:
        assert self.store is not None
        baseline = self._last_call_id
        with self.store.read() as db:
            day = self.clock.lobby_day(db)
            lobby = read_lobby(db, day, self.config, self.clock.time(),
                               calls_since=baseline if baseline is not None else -1,
                               recent_calls=RECENT_CALLS, next_tickets=NEXT_TICKETS)

        calls = [CallRow(c.id, c.ticket, c.counter, c.counter_name, c.kind, c.at,
                         public_name(c.name, self.names_mode, c.salutation), c.service)
                 for c in lobby.calls]
        new_calls = [c for c in calls if baseline is not None and c.id > baseline]
        if calls:
            self._last_call_id = max(calls[-1].id, baseline or 0)
        elif baseline is None:
            self._last_call_id = 0
        calls = calls[-RECENT_CALLS:]


        latest_scan = None
        scan = lobby.latest_scan
        if scan is not None:
            shown = public_name(scan.name, self.names_mode, scan.salutation)
            try:
                msg_id, msg_en = messages_for(scan.verdict, scan.ticket, scan.detail, shown)
            except (KeyError, ValueError, TypeError):
                msg_id, msg_en = (f"Silakan ke petugas ({scan.verdict}).",
                                  f"Please see an officer ({scan.verdict}).")
            latest_scan = ScanRow(scan.id, scan.verdict, scan.ticket, msg_id, msg_en,
                                  scan.ahead, scan.call_at, scan.at)
            # A run of unreadable scans is one row whose count grows: each is a new scan.
            seen = (scan.id, scan.count)
            self.new_scan = self._last_scan_id is not None and seen > self._last_scan_id
            self._last_scan_id = seen
        elif self._last_scan_id is None:
            self._last_scan_id = (0, 0)

        status = Status(
            problem=None,
            offline_since=lobby.offline_since,
            schedule_generated_at=lobby.schedule.generated_at if lobby.schedule else None,
            max_schedule_age_s=lobby.max_schedule_age_s,
            outbox_pending=lobby.outbox_pending,
            last_error=lobby.last_error,
        )
        snapshot = Snapshot(day, lobby.office_name, lobby.announcements, tuple(calls),
                            lobby.counter_states, lobby.queues, lobby.next_tickets,
                            latest_scan, status, lobby.running_late_s)
        return snapshot, new_calls
