"""The decision at the reader: one scan in, exactly one verdict out, durably recorded.

``CheckinDesk.scan`` is the only check-in path: the scanner service, ``antrean scan`` and the
demo all go through it. The decision is made inside the write transaction that records it, so
two processes can never hand out two tickets for one booking, and the scan, the check-in and
the outbox event commit together (``synchronous=FULL``) before anyone hears a beep.

Verdict precedence and windows follow central-api.md section 3; "today" is the lobby's day
(``Clock.lobby_day``): the office's date from the (possibly server-corrected) clock, or on an
untrusted clock the day the store has evidence of.

Unreadable input comes in floods (a noisy cable, a scanner pointed at a poster), so a *run* of
unreadable scans (each within ``RUN_GAP_S`` of the last, for at most ``RUN_SPAN_S``) is one
``scans`` row with a ``count``: its first scan is reported at once by a ``scan_rejected`` event
as before, and the rest by one more event with ``count`` when the run ends: at the next scan
of any kind, or through ``settle_unreadable`` once the run has gone quiet (the scanner service
calls it on idle ticks). Every unreadable scan is still decided and committed before its
feedback, like any other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date as date_cls
from datetime import datetime, timedelta

from appliance.barcode import PlainCode, SignedBarcode, Unreadable, parse_payload
from appliance.clock import Clock
from appliance.names import public_name
from appliance.outbox import record_event
from appliance.schedule import is_usable
from appliance.verdicts import OK, VERDICTS, messages_for

__all__ = ["OK", "VERDICTS", "CheckinDesk", "ScanResult", "messages_for"]

OFFLINE_AFTER_S = 300  # no server contact for this long: check-ins are flagged offline
RUN_GAP_S = 10.0       # unreadable scans this close together are one run
RUN_SPAN_S = 300.0     # a run is closed (and reported) at least this often in an endless flood


@dataclass(frozen=True)
class ScanResult:
    verdict: str
    ticket: str | None
    booking_code: str | None
    name: str
    salutation: str
    message_id: str
    message_en: str
    detail: str | None
    at: float

    @property
    def accepted(self) -> bool:
        return self.verdict == OK

    def as_json(self) -> dict:
        return {"verdict": self.verdict, "ticket": self.ticket,
                "booking_code": self.booking_code, "message_id": self.message_id,
                "message_en": self.message_en, "detail": self.detail}


@dataclass(frozen=True)
class _Booking:
    """One appointment as the decision needs it, from the cache or a signed ticket."""

    code: str
    day: str
    name: str
    salutation: str
    service: str
    slot_start: float
    slot_end: float
    priority: bool
    cancelled: bool
    origin: str


def _report_runs(db) -> int:
    """One ``scan_rejected`` event with ``count`` for the unreported rest of each run."""
    rows = db.execute("SELECT id, count - reported, COALESCE(last_at, at), payload_sha256,"
                      " reader FROM scans WHERE count > reported ORDER BY id").fetchall()
    for rid, rest, last, sha, reader in rows:
        record_event(db, "scan_rejected", {"reason": "unreadable", "booking_code": None,
                                           "payload_sha256": sha, "count": rest,
                                           **_from(reader)}, last)
        db.execute("UPDATE scans SET reported = count WHERE id = ?", (rid,))
    return len(rows)


def _from(reader: str | None) -> dict:
    """The optional ``reader`` field of an event: absent for ``antrean scan``."""
    return {"reader": reader} if reader else {}


def _payload_sha256(payload: bytes | str) -> str:
    raw = payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()


class CheckinDesk:
    """Decides and records scans.

    Example::

        >>> desk = CheckinDesk(store, config, clock)
        >>> result = desk.scan(b"]Q1K7Q2M9XA\\r\\n")
        >>> result.verdict, result.ticket
        ('ok', 'A001')
        >>> desk.scan(b"K7Q2M9XA").verdict
        'already_checked_in'
    """

    def __init__(self, store, config, clock: Clock | None = None):
        self.store = store
        self.config = config
        self.clock = clock or Clock(store, config)
        self.tz = config.tz
        self._trusted = config.trusted_keys
        self._early = timedelta(minutes=config.checkin.early_minutes).total_seconds()
        self._late = timedelta(minutes=config.checkin.late_minutes).total_seconds()

    def _hhmm(self, epoch: float) -> str:
        return datetime.fromtimestamp(epoch, self.tz).strftime("%H:%M")

    def _cached_booking(self, db, code: str, today: str) -> _Booking | None:
        rows = db.execute(
            "SELECT date, name, salutation, service, slot_start, slot_end, priority, status"
            " FROM appointments WHERE booking_code = ?", (code,)).fetchall()
        if not rows:
            return None
        # Today's entry wins; else the nearest future day; else the latest past one.
        rows.sort(key=lambda r: (r[0] != today, r[0] < today, abs(
            (date_cls.fromisoformat(r[0]) - date_cls.fromisoformat(today)).days)))
        _, name, sal, service, start, end, prio, status = rows[0]
        return _Booking(code, self._date_of(start), name, sal, service, start, end,
                        bool(prio), status == "cancelled", "schedule")

    def _date_of(self, epoch: float) -> str:
        """The office-local date of an instant: the appointment's day is its slot's day."""
        return datetime.fromtimestamp(epoch, self.tz).date().isoformat()

    def _decide(self, db, parsed, at: float):
        """Return (verdict, booking or None, code or None, detail, today).

        "today" is the lobby's day (``Clock.lobby_day``). An untrusted clock (before the build
        date, no server time this boot) cannot say what day it is: then bookings are judged
        on their own day, the check-in is filed under ``Clock.admission_day`` and no window
        or ``wrong_day`` applies, so nobody is turned away for a dead RTC battery.
        """
        trusted = self.clock.trusted
        today = self.clock.lobby_day(db)
        if isinstance(parsed, Unreadable):
            return "unreadable", None, None, None, today
        code = parsed.booking_code
        if isinstance(parsed, SignedBarcode):
            if not parsed.signature_ok:
                return "bad_signature", None, code, None, today
            if parsed.office_id != self.config.office.id:
                return "wrong_office", None, code, None, today
        booking = self._cached_booking(db, code, today)
        if booking is None and not trusted and isinstance(parsed, PlainCode):
            return "no_schedule", None, code, None, today
        if booking is None and isinstance(parsed, SignedBarcode):
            booking = _Booking(code, self._date_of(parsed.slot_start), parsed.name, "",
                               parsed.service, parsed.slot_start, parsed.slot_end,
                               parsed.priority, False, "signed")
        if booking is None:
            row = db.execute("SELECT generated_at FROM schedules WHERE date = ?",
                             (today,)).fetchone()
            usable = is_usable(row and row[0], at, self.config.server.max_schedule_age_hours)
            return ("unknown" if usable else "no_schedule"), None, code, None, today
        if not trusted:
            today = self.clock.admission_day(db, booking.day)
        if booking.cancelled:
            return "cancelled", booking, code, None, today
        row = db.execute("SELECT ticket FROM checkins WHERE office_day = ? AND booking_code = ?",
                         (today, code)).fetchone()
        if row is not None:
            return "already_checked_in", booking, code, row[0], today
        if not trusted:
            return OK, booking, code, None, today
        if booking.day != today:
            return "wrong_day", booking, code, booking.day, today
        if at < booking.slot_start - self._early:
            return "too_early", booking, code, self._hhmm(booking.slot_start - self._early), today
        if at > booking.slot_end + self._late:
            return "too_late", booking, code, self._hhmm(booking.slot_end + self._late), today
        return OK, booking, code, None, today

    def _is_offline(self, db) -> bool:
        """No server contact for a while. ``sync.last_ok`` is on the local clock, as here."""
        row = db.execute("SELECT value FROM kv WHERE key = 'sync.last_ok'").fetchone()
        try:
            return row is None or self.clock.local() - float(row[0]) > OFFLINE_AFTER_S
        except ValueError:
            return True

    def scan(self, payload: bytes | str, reader: str | None = None) -> ScanResult:
        """Decide one payload and commit the outcome; returns only after the commit.

        ``reader`` is the name of the reader it came from (``[[scanner]] name``): kept in
        the scan record and its event, so the office sees which door or desk it was."""
        parsed = parse_payload(payload, self._trusted)
        sha = _payload_sha256(payload)
        at = self.clock.time()
        ticket = None
        with self.store.write() as db:
            verdict, booking, code, detail, today = self._decide(db, parsed, at)
            run = self._open_run(db, today, at, reader) if verdict == "unreadable" else None
            if run is not None:
                db.execute("UPDATE scans SET count = count + 1, last_at = ?, payload_sha256 = ?"
                           " WHERE id = ?", (at, sha, run))
                message_id, message_en = messages_for(verdict)
                return ScanResult(verdict, None, None, "", "", message_id, message_en, None, at)
            _report_runs(db)
            if verdict == "already_checked_in":
                ticket, detail = detail, None
            if verdict == OK:
                number = db.execute(
                    "INSERT INTO ticket_numbers(office_day, service, last_number) VALUES (?,?,1)"
                    " ON CONFLICT(office_day, service) DO UPDATE SET"
                    " last_number = last_number + 1 RETURNING last_number",
                    (today, booking.service)).fetchone()[0]
                ticket = f"{booking.service}{number:03d}"
                offline = self._is_offline(db)
                db.execute(
                    "INSERT INTO checkins(office_day, booking_code, ticket, service, name,"
                    " salutation, priority, slot_start, checked_in_at, offline, origin)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (today, code, ticket, booking.service, booking.name, booking.salutation,
                     int(booking.priority), booking.slot_start, at, int(offline),
                     booking.origin))
                self.clock.pin_lobby_day(db, today)
                record_event(db, "checkin", {"booking_code": code, "ticket": ticket,
                                             "service": booking.service, "offline": offline,
                                             **_from(reader)}, at)
            else:
                record_event(db, "scan_rejected", {"reason": verdict, "booking_code": code,
                                                   "payload_sha256": sha, **_from(reader)}, at)
            name = booking.name if booking else ""
            salutation = booking.salutation if booking else ""
            db.execute(
                "INSERT INTO scans(at, office_day, verdict, booking_code, ticket, name,"
                " salutation, detail, payload_sha256, reader) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (at, today, verdict, code, ticket, name, salutation, detail, sha, reader))
        shown = public_name(name, self.config.display.names, salutation)
        message_id, message_en = messages_for(verdict, ticket, detail, shown)
        return ScanResult(verdict, ticket, code, name, salutation, message_id, message_en,
                          detail, at)

    @staticmethod
    def _open_run(db, today: str, at: float, reader: str | None) -> int | None:
        """The row of the run of unreadable scans this one continues, if any: a run is one
        reader's latest scans (a noisy cable at the door is not the desk's keypad, and two
        noisy readers still make one row each)."""
        row = db.execute("SELECT id, verdict, office_day, at, COALESCE(last_at, at) FROM scans"
                         " WHERE reader IS ? ORDER BY id DESC LIMIT 1", (reader,)).fetchone()
        if row is None:
            return None
        rid, verdict, day, first, last = row
        if (verdict == "unreadable" and day == today and 0 <= at - last <= RUN_GAP_S
                and at - first <= RUN_SPAN_S):
            return rid
        return None

    def settle_unreadable(self, *, force: bool = False) -> int:
        """Report runs of unreadable scans that have ended; returns the events recorded.

        A run ends after ``RUN_GAP_S`` without unreadable input or ``RUN_SPAN_S`` after it
        began; ``force`` reports what is unreported now (at shutdown). Writes only when
        something is due, so it can be called on every idle tick.
        """
        row = self.store.db.execute(
            "SELECT at, COALESCE(last_at, at) FROM scans WHERE count > reported"
            " ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return 0
        now = self.clock.time()
        if not force and 0 <= now - row[1] <= RUN_GAP_S and now - row[0] <= RUN_SPAN_S:
            return 0
        with self.store.write() as db:
            return _report_runs(db)
