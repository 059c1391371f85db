"""The one SQLite database the three services share.

WAL mode so the display and sync can read while the scanner writes; ``synchronous=FULL`` so
a commit is on the SD card before the applicant hears the beep (both asserted on every
connection that writes: ``assert_durable``); a busy timeout and short
``BEGIN IMMEDIATE`` transactions so the services never trip over each other. The schema is
migrated forward by number (``PRAGMA user_version``) in one transaction per step.

Example::

    >>> with Store(":memory:") as store:
    ...     with store.write() as db:
    ...         _ = db.execute("INSERT INTO kv(key, value, updated_at) VALUES ('x', '1', 0)")
    ...     store.get_kv("x")
    1
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from appliance.errors import StoreClosed, StoreError

log = logging.getLogger("antrean.store")

BUSY_TIMEOUT_MS = 5000
# The durability promise (a beep only after the check-in is on the card) rests on these two.
DURABLE_JOURNAL_MODE = "wal"
DURABLE_SYNCHRONOUS = 2          # FULL: the WAL is synced at every commit
SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}

# Each entry migrates from version i to i + 1. Never edit a released step; append a new one.
MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE schedules (
        date TEXT PRIMARY KEY,            -- office-local date YYYY-MM-DD
        office_id TEXT NOT NULL,
        office_name TEXT NOT NULL,
        version INTEGER NOT NULL,
        etag TEXT,                        -- from the server; NULL after an offline import
        generated_at REAL NOT NULL,       -- epoch seconds (UTC)
        stored_at REAL NOT NULL,          -- epoch seconds when this copy was committed
        source TEXT NOT NULL,             -- 'pull' | 'import'
        keyid TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        opening_open TEXT NOT NULL,       -- HH:MM office time
        opening_close TEXT NOT NULL,
        services_json TEXT NOT NULL,      -- [{"code","name"}]
        counters_json TEXT NOT NULL,      -- [{"id","name","services"}]
        announcements_json TEXT NOT NULL  -- ["..."]
    );
    CREATE TABLE appointments (
        date TEXT NOT NULL REFERENCES schedules(date) ON DELETE CASCADE,
        booking_code TEXT NOT NULL,       -- upper case
        name TEXT NOT NULL,
        salutation TEXT NOT NULL,
        service TEXT NOT NULL,
        slot_start REAL NOT NULL,         -- epoch seconds
        slot_end REAL NOT NULL,
        priority INTEGER NOT NULL,
        status TEXT NOT NULL,             -- 'booked' | 'cancelled'
        PRIMARY KEY (booking_code, date)
    ) WITHOUT ROWID;
    CREATE TABLE scans (                  -- every verdict at the reader, accepted or not
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,                 -- epoch seconds (corrected clock)
        office_day TEXT NOT NULL,
        verdict TEXT NOT NULL,
        booking_code TEXT,
        ticket TEXT,
        name TEXT,
        salutation TEXT,
        detail TEXT,                      -- the date/time a message quotes, if any
        payload_sha256 TEXT NOT NULL
    );
    CREATE INDEX scans_day ON scans(office_day);
    CREATE TABLE ticket_numbers (         -- the per-service numbering of one office day
        office_day TEXT NOT NULL,
        service TEXT NOT NULL,
        last_number INTEGER NOT NULL,
        PRIMARY KEY (office_day, service)
    ) WITHOUT ROWID;
    CREATE TABLE checkins (               -- one row per booking checked in, holding its ticket
        id INTEGER PRIMARY KEY,
        office_day TEXT NOT NULL,
        booking_code TEXT NOT NULL,
        ticket TEXT NOT NULL,
        service TEXT NOT NULL,
        name TEXT NOT NULL,
        salutation TEXT NOT NULL,
        priority INTEGER NOT NULL,
        slot_start REAL NOT NULL,
        checked_in_at REAL NOT NULL,
        offline INTEGER NOT NULL,
        origin TEXT NOT NULL,             -- 'schedule' | 'signed'
        UNIQUE (office_day, booking_code),
        UNIQUE (office_day, ticket)
    );
    CREATE TABLE calls (                  -- every call, recall and no-show, in order
        id INTEGER PRIMARY KEY,
        office_day TEXT NOT NULL,
        ticket TEXT NOT NULL,
        counter INTEGER NOT NULL,
        kind TEXT NOT NULL,               -- 'call' | 'recall' | 'no_show'
        at REAL NOT NULL,
        origin TEXT NOT NULL,             -- 'local' | 'server'
        server_id TEXT UNIQUE             -- id of a pushed call, for de-duplication
    );
    CREATE INDEX calls_day ON calls(office_day, counter);
    CREATE TABLE outbox (                 -- events for the central server
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        body TEXT NOT NULL,               -- the event as JSON
        created_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',  -- 'pending' | 'sent' | 'dead'
        attempts INTEGER NOT NULL DEFAULT 0,
        done_at REAL,
        reason TEXT
    );
    CREATE INDEX outbox_state ON outbox(state, seq);
    CREATE TABLE kv (                     -- small shared facts: clock offset, sync state, ...
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE service_health (         -- what each service last said about itself
        service TEXT PRIMARY KEY,
        pid INTEGER,
        state TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL,
        last_error TEXT,
        last_error_at REAL
    );
    """,
    # 2: runs of unreadable input coalesce into one scans row (bounded growth under a flood).
    """
    ALTER TABLE scans ADD COLUMN count INTEGER NOT NULL DEFAULT 1;    -- scans this row stands for
    ALTER TABLE scans ADD COLUMN last_at REAL;                        -- the run's latest scan
    ALTER TABLE scans ADD COLUMN reported INTEGER NOT NULL DEFAULT 1; -- of them, in outbox events
    CREATE INDEX scans_unreported ON scans(id) WHERE count > reported;
    CREATE INDEX outbox_done ON outbox(state, done_at);
    """,
    # 3: the slip printer's bookkeeping, written only by the printer service and
    # `antrean print`: one automatic slip per check-in at most, plus reprints on request.
    """
    CREATE TABLE slips (
        id INTEGER PRIMARY KEY,
        office_day TEXT NOT NULL,
        ticket TEXT NOT NULL,
        checkin_id INTEGER NOT NULL,      -- checkins.id of the check-in the slip is for
        kind TEXT NOT NULL,               -- 'checkin' (the automatic one) | 'reprint'
        requested_at REAL NOT NULL,       -- epoch seconds: the check-in, or the request
        state TEXT NOT NULL DEFAULT 'pending',
            -- 'pending' | 'printing' | 'printed' | 'expired' | 'interrupted'
        attempts INTEGER NOT NULL DEFAULT 0,
        done_at REAL,
        last_error TEXT
    );
    CREATE UNIQUE INDEX slips_one_per_checkin ON slips(checkin_id) WHERE kind = 'checkin';
    CREATE INDEX slips_state ON slips(state, id);
    """,
    # 4: several readers on one appliance: which one each scan came from (NULL: `antrean scan`
    # and scans recorded before this migration).
    """
    ALTER TABLE scans ADD COLUMN reader TEXT;
    CREATE INDEX scans_reader ON scans(reader, id);   -- each reader's latest scan (its run)
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit mid-migration)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf)
            buf = ""
    if buf.strip():
        raise StoreError("a migration ends in an incomplete statement")
    return out


def assert_durable(db: sqlite3.Connection, path: str) -> None:
    """Raise ``StoreError`` unless ``db`` is in WAL mode with ``synchronous=FULL``.

    Checked on every connection that writes, right after it is opened: with ``NORMAL`` or
    ``OFF`` a commit returns before the WAL is on the card, and a power cut could take back a
    check-in the applicant already heard accepted.
    """
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    if mode != DURABLE_JOURNAL_MODE:
        raise StoreError(f"database {path} is in journal mode {mode!r}, not WAL; the store "
                         "needs a filesystem with shared-memory support (not a network share)")
    level = db.execute("PRAGMA synchronous").fetchone()[0]
    if level != DURABLE_SYNCHRONOUS:
        name = SYNCHRONOUS_NAMES.get(level, str(level))
        raise StoreError(f"database {path} connection has synchronous={name}, not FULL: a "
                         "check-in could be acknowledged and then lost on a power cut; "
                         "this is a bug, report it")


class Store:
    """A connection to the shared database, migrated to the current schema on open.

    ``readonly=True`` opens without write access (the display); it never migrates and
    raises ``StoreError`` if the schema is not the one this code knows. ``close()`` may be
    called twice; use after close raises ``StoreClosed``.
    """

    def __init__(self, path: str, *, readonly: bool = False):
        self.path = path
        self.readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._broken: str | None = None
        self._open()

    def _open(self) -> None:
        """Connect, check the durability pragmas and (for a writer) migrate; on failure the
        store is left without a connection and ``StoreError`` says why."""
        path, readonly = self.path, self.readonly
        try:
            if readonly:
                if path != ":memory:" and not os.path.exists(path):
                    raise StoreError(f"database {path} does not exist yet; start the scanner "
                                     "or import a schedule first")
                uri = f"file:{path}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                           check_same_thread=False)
            else:
                parent = os.path.dirname(os.path.abspath(path))
                if path != ":memory:" and not os.path.isdir(parent):
                    raise StoreError(f"folder {parent} for the database does not exist; "
                                     "create it or fix storage.path")
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA foreign_keys=ON")
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                if path != ":memory:":      # nothing in memory survives anything anyway
                    assert_durable(self._db, path)
                self._migrate()
                self._match_owner()
            else:
                version = self.schema_version()
                if version != SCHEMA_VERSION:
                    raise StoreError(f"database {path} has schema version {version}, this "
                                     f"software expects {SCHEMA_VERSION}; wait for the scanner "
                                     "service to migrate it")
        except sqlite3.Error as e:
            self.close()
            raise StoreError(f"cannot open database {path}: {e}; check the path, its "
                             "permissions and free disk space") from None
        except StoreError:
            self.close()
            raise

    def _match_owner(self) -> None:
        """Give root-created -wal/-shm files to the database's owner.

        A technician running ``antrean scan`` as root must not leave files behind that the
        services (user ``antrean``) can no longer open.
        """
        if self.path == ":memory:" or os.geteuid() != 0:
            return
        st = os.stat(self.path)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                side = os.stat(self.path + suffix)
                if (side.st_uid, side.st_gid) != (st.st_uid, st.st_gid):
                    os.chown(self.path + suffix, st.st_uid, st.st_gid)

    # lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    @property
    def closed(self) -> bool:
        return self._db is None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._broken is not None:
            raise StoreError(f"database {self.path} cannot be used: {self._broken}")
        if self._db is None:
            raise StoreClosed(f"the store {self.path} was used after close()")
        return self._db

    # transactions ----------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction (``BEGIN IMMEDIATE``), committed durably on exit.

        If anything fails, the commit included (disk full, I/O error, a deferred constraint),
        nothing of the transaction is kept and the connection is left clean for the next
        write: rolled back, or reopened if it cannot be. A failed commit raises
        ``StoreError``; see :attr:`broken` for a store that could not be made clean.
        """
        if self.db.in_transaction:      # left behind by a failure elsewhere: never stay stuck
            self._abandon()
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            self._abandon()
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.Error as e:
            self._abandon()
            raise StoreError(self._not_saved(e)) from None

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot across several queries."""
        db = self.db
        db.execute("BEGIN")
        try:
            yield db
        finally:
            try:
                db.execute("COMMIT")
            except sqlite3.Error:
                self._abandon()
                raise

    def _not_saved(self, e: sqlite3.Error) -> str:
        text = str(e)
        if "full" in text:
            advice = "free space on the SD card (antrean status shows disk_free_mb)"
        else:
            advice = "check the SD card (dmesg) and the journal; scanning again is safe"
        return f"database {self.path}: the write was not saved ({text}); nothing of it was " \
               f"recorded; {advice}"

    def _abandon(self) -> None:
        """Leave a failed transaction: roll back, else reopen the connection (closing it
        rolls back); if neither works the store is :attr:`broken`. Never raises."""
        db = self._db
        if db is None or not db.in_transaction:
            return
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error as e:
            log.warning("database %s: rollback failed (%s); reopening it", self.path, e)
        if db.in_transaction:
            self.recover(force=True)

    @property
    def broken(self) -> str | None:
        """Why the store has no clean connection (a rollback and a reopen failed), or None.

        A service that depends on the store stops pinging systemd's watchdog while this is
        set, so systemd restarts it (crash-only); :meth:`recover` tries again meanwhile.
        """
        return self._broken

    def recover(self, *, force: bool = False) -> bool:
        """Reopen a broken store (or, with ``force``, any store); True if it is usable."""
        was = self._broken
        if was is None and not force:
            return True
        self.close()
        self._broken = None
        try:
            self._open()
        except StoreError as e:
            if was is None:
                log.error("database %s cannot be reopened: %s", self.path, e)
            self._broken = str(e)
            return False
        if was is not None:
            log.info("database %s reopened", self.path)
        self._broken = None
        return True

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap 'anything new?' check."""
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        db = self.db
        while True:
            db.execute("BEGIN IMMEDIATE")
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(f"database {self.path} has schema version {version}, "
                                     f"newer than this software ({SCHEMA_VERSION}); "
                                     "install the newer release")
                if version == SCHEMA_VERSION:
                    db.execute("COMMIT")
                    return
                for statement in _statements(MIGRATIONS[version]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={version + 1}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # small shared facts ----------------------------------------------------------------

    def get_kv(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_kv(self, key: str, value: Any, db: sqlite3.Connection | None = None) -> None:
        """Set a kv fact; pass ``db`` to join an open write transaction."""
        sql = ("INSERT INTO kv(key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) "
               "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")
        args = (key, json.dumps(value), time.time())
        if db is not None:
            db.execute(sql, args)
        else:
            with self.write() as w:
                w.execute(sql, args)

    def report_health(self, service: str, state: str, detail: str = "",
                      error: str | None = None, db: sqlite3.Connection | None = None) -> None:
        """Record a service's state for ``antrean status`` (call on changes, not per tick);
        pass ``db`` to join an open write transaction."""
        now = time.time()
        sql = ("INSERT INTO service_health(service, pid, state, detail, updated_at, last_error,"
               " last_error_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(service) DO UPDATE SET"
               " pid = excluded.pid, state = excluded.state, detail = excluded.detail,"
               " updated_at = excluded.updated_at,"
               " last_error = COALESCE(excluded.last_error, service_health.last_error),"
               " last_error_at = COALESCE(excluded.last_error_at, service_health.last_error_at)")
        args = (service, os.getpid(), state, detail, now, error, now if error else None)
        if db is not None:
            db.execute(sql, args)
        else:
            with self.write() as w:
                w.execute(sql, args)

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]
