"""Day schedules: verify a signed document exactly as the contract says, then cache it.

One verification path serves the sync service's pulls and the offline ``schedule import`` from
a USB stick. A document that fails any check raises ``ScheduleRejected`` before the database
is touched; one that passes replaces the cached day as a whole in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import date as date_cls
from datetime import datetime, timedelta

from appliance.errors import AntreanError, ScheduleRejected
from appliance.keys import SignatureError, verify_header

FORMAT = "antrean.schedule/1"
MAX_BODY_BYTES = 32 * 1024 * 1024
KEEP_DAYS = 7  # cached days older than this are pruned on the next save

BOOKING_CODE_RE = re.compile(r"^[A-Z0-9]{6,16}$")
SERVICE_CODE_RE = re.compile(r"^[A-Z]{1,3}$")
HHMM_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
SALUTATIONS = ("Bapak", "Ibu", "")
STATUSES = ("booked", "cancelled")
MAX_NAME_CHARS = 500


@dataclass(frozen=True, slots=True)
class Appointment:
    booking_code: str
    name: str
    salutation: str
    service: str
    slot_start: float  # epoch seconds
    slot_end: float
    priority: bool
    status: str
    date: str = ""


@dataclass(frozen=True)
class Schedule:
    office_id: str
    office_name: str
    date: str
    version: int
    generated_at: float
    opening_open: str
    opening_close: str
    services: list[dict]
    counters: list[dict]
    appointments: list[Appointment]
    announcements: list[str]
    keyid: str
    body_sha256: str


@dataclass(frozen=True)
class ScheduleInfo:
    """What the cache knows about one day, without its appointments."""

    date: str
    version: int
    etag: str | None
    generated_at: float
    stored_at: float
    source: str
    office_name: str
    opening_open: str
    opening_close: str
    services: list[dict] = field(default_factory=list)
    counters: list[dict] = field(default_factory=list)
    announcements: list[str] = field(default_factory=list)
    appointments: int = 0


def _instant(value, where: str) -> float:
    if not isinstance(value, str):
        raise ScheduleRejected(f"{where} is not an RFC 3339 time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleRejected(f"{where} {value!r} cannot be parsed as an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise ScheduleRejected(f"{where} {value!r} has no UTC offset")
    return parsed.timestamp()


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ScheduleRejected(message)


def _parse_appointment(item, index: int, service_codes: set[str], day: str) -> Appointment:
    where = f"appointments[{index}]"
    _require(isinstance(item, dict), f"{where} is not an object")
    code = item.get("booking_code")
    _require(isinstance(code, str) and BOOKING_CODE_RE.match(code.strip().upper()) is not None,
             f"{where}.booking_code {code!r} is not 6-16 characters of A-Z 0-9")
    name = item.get("name")
    _require(isinstance(name, str) and len(name) <= MAX_NAME_CHARS,
             f"{where}.name must be a string of at most {MAX_NAME_CHARS} characters")
    salutation = item.get("salutation", "")
    _require(salutation in SALUTATIONS, f"{where}.salutation {salutation!r} is not one of "
             "'Bapak', 'Ibu' or empty")
    service = item.get("service")
    _require(isinstance(service, str) and service in service_codes,
             f"{where}.service {service!r} is not in services")
    start = _instant(item.get("slot_start"), f"{where}.slot_start")
    end = _instant(item.get("slot_end"), f"{where}.slot_end")
    _require(end > start, f"{where} ({code}) has slot_end <= slot_start")
    priority = item.get("priority", False)
    _require(isinstance(priority, bool), f"{where}.priority must be true or false")
    status = item.get("status")
    _require(status in STATUSES, f"{where}.status {status!r} is not 'booked' or 'cancelled'")
    return Appointment(code.strip().upper(), name, salutation, service, start, end, priority,
                       status, day)


def verify_schedule(body: bytes, signature_header: str | None, config, *,
                    expect_date: str | None = None) -> Schedule:
    """Check ``body`` against every rule of central-api.md section 1; raise or return it."""
    if len(body) > MAX_BODY_BYTES:
        raise ScheduleRejected(f"the schedule is {len(body)} bytes, over the "
                               f"{MAX_BODY_BYTES} byte limit")
    try:
        keyid = verify_header(body, signature_header, config.trusted_keys)
    except (SignatureError, ValueError) as e:
        raise ScheduleRejected(f"signature refused: {e}") from None
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ScheduleRejected(f"the schedule is not UTF-8 JSON ({e})") from None
    except RecursionError:   # "[[[[..." parses until the stack runs out
        raise ScheduleRejected("the schedule's JSON nests deeper than any schedule "
                               "can") from None
    _require(isinstance(doc, dict), "the schedule is not a JSON object")
    _require(doc.get("format") == FORMAT,
             f"unknown format {doc.get('format')!r} (this software reads {FORMAT!r})")
    office = doc.get("office")
    _require(isinstance(office, dict), "office is missing")
    _require(office.get("id") == config.office.id,
             f"the schedule is for office {office.get('id')!r}, this appliance serves "
             f"{config.office.id!r}")
    day = doc.get("date")
    try:
        _require(isinstance(day, str) and date_cls.fromisoformat(day).isoformat() == day,
                 f"date {day!r} is not YYYY-MM-DD")
    except ValueError:
        raise ScheduleRejected(f"date {day!r} is not YYYY-MM-DD") from None
    if expect_date is not None:
        _require(day == expect_date, f"the schedule is for {day}, {expect_date} was asked for")
    version = doc.get("version")
    _require(isinstance(version, int) and not isinstance(version, bool) and version >= 0,
             "version must be a non-negative integer")
    generated_at = _instant(doc.get("generated_at"), "generated_at")
    hours = doc.get("opening_hours")
    _require(isinstance(hours, dict) and all(isinstance(hours.get(k), str) and
                                             HHMM_RE.match(hours[k]) for k in ("open", "close")),
             "opening_hours must have open and close as HH:MM")
    services = doc.get("services")
    _require(isinstance(services, list) and services, "services must be a non-empty list")
    codes: set[str] = set()
    for i, s in enumerate(services):
        _require(isinstance(s, dict) and isinstance(s.get("code"), str)
                 and SERVICE_CODE_RE.match(s["code"]) and isinstance(s.get("name"), str),
                 f"services[{i}] needs a code of 1-3 letters A-Z and a name")
        _require(s["code"] not in codes, f"service code {s['code']!r} appears twice")
        codes.add(s["code"])
    counters = doc.get("counters", [])
    _require(isinstance(counters, list), "counters must be a list")
    ids: set[int] = set()
    for i, c in enumerate(counters):
        ok = (isinstance(c, dict) and isinstance(c.get("id"), int) and not isinstance(c["id"], bool)
              and 1 <= c["id"] <= 999 and isinstance(c.get("name"), str)
              and isinstance(c.get("services"), list)
              and all(isinstance(x, str) and x in codes for x in c["services"]))
        _require(ok, f"counters[{i}] needs an id 1-999, a name and services from the list")
        _require(c["id"] not in ids, f"counter id {c['id']} appears twice")
        ids.add(c["id"])
    items = doc.get("appointments")
    _require(isinstance(items, list), "appointments must be a list")
    appointments = [_parse_appointment(item, i, codes, day) for i, item in enumerate(items)]
    seen: set[str] = set()
    for a in appointments:
        _require(a.booking_code not in seen, f"booking code {a.booking_code} appears twice")
        seen.add(a.booking_code)
    announcements = doc.get("announcements", [])
    _require(isinstance(announcements, list) and all(isinstance(x, str) for x in announcements),
             "announcements must be a list of strings")
    name = office.get("name", "")
    _require(isinstance(name, str), "office.name must be a string")
    return Schedule(
        office_id=office["id"], office_name=name, date=day, version=version,
        generated_at=generated_at, opening_open=hours["open"], opening_close=hours["close"],
        services=[{"code": s["code"], "name": s["name"]} for s in services],
        counters=[{"id": c["id"], "name": c["name"], "services": list(c["services"])}
                  for c in counters],
        appointments=appointments, announcements=list(announcements), keyid=keyid,
        body_sha256=hashlib.sha256(body).hexdigest())


def save_schedule(store, schedule: Schedule, *, source: str, etag: str | None) -> bool:
    """Replace the cached day with ``schedule`` atomically.

    Returns False (and writes nothing) when the cache already holds this exact document.
    An offline import older than the cached version is refused: an old USB copy must never
    resurrect cancelled bookings. The server's own answer always replaces the day (the
    contract: it is authoritative, even after a rollback on its side).
    """
    with store.write() as db:
        row = db.execute("SELECT version, body_sha256 FROM schedules WHERE date = ?",
                         (schedule.date,)).fetchone()
        if row is not None:
            if source == "import" and schedule.version < row[0]:
                raise ScheduleRejected(
                    f"the schedule for {schedule.date} is version {schedule.version}, older "
                    f"than the cached version {row[0]}; the cache was kept")
            if row[1] == schedule.body_sha256:
                if etag is not None:
                    db.execute("UPDATE schedules SET etag = ? WHERE date = ?",
                               (etag, schedule.date))
                return False
        db.execute("DELETE FROM appointments WHERE date = ?", (schedule.date,))
        db.execute(
            "INSERT INTO schedules(date, office_id, office_name, version, etag, generated_at,"
            " stored_at, source, keyid, body_sha256, opening_open, opening_close, services_json,"
            " counters_json, announcements_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(date) DO UPDATE SET office_id=excluded.office_id,"
            " office_name=excluded.office_name, version=excluded.version, etag=excluded.etag,"
            " generated_at=excluded.generated_at, stored_at=excluded.stored_at,"
            " source=excluded.source, keyid=excluded.keyid, body_sha256=excluded.body_sha256,"
            " opening_open=excluded.opening_open, opening_close=excluded.opening_close,"
            " services_json=excluded.services_json, counters_json=excluded.counters_json,"
            " announcements_json=excluded.announcements_json",
            (schedule.date, schedule.office_id, schedule.office_name, schedule.version, etag,
             schedule.generated_at, time.time(), source, schedule.keyid, schedule.body_sha256,
             schedule.opening_open, schedule.opening_close, json.dumps(schedule.services),
             json.dumps(schedule.counters), json.dumps(schedule.announcements,
                                                       ensure_ascii=False)))
        db.executemany(
            "INSERT INTO appointments(date, booking_code, name, salutation, service, slot_start,"
            " slot_end, priority, status) VALUES (?,?,?,?,?,?,?,?,?)",
            [(schedule.date, a.booking_code, a.name, a.salutation, a.service, a.slot_start,
              a.slot_end, int(a.priority), a.status) for a in schedule.appointments])
        # Prune from the earlier of the saved day and this machine's today, so a schedule
        # for a day weeks ahead never prunes today's.
        anchor = min(date_cls.fromisoformat(schedule.date), date_cls.today())
        oldest = (anchor - timedelta(days=KEEP_DAYS)).isoformat()
        db.execute("DELETE FROM appointments WHERE date < ?", (oldest,))
        db.execute("DELETE FROM schedules WHERE date < ?", (oldest,))
    return True


def schedule_info(store, day: str, *, count: bool = True) -> ScheduleInfo | None:
    """The cached day's facts; ``count=False`` skips counting its appointments (hot loops)."""
    return read_schedule_info(store.db, day, count=count)


def read_schedule_info(db, day: str, *, count: bool = True) -> ScheduleInfo | None:
    """:func:`schedule_info` on an open connection (inside the caller's read transaction)."""
    counted = "(SELECT COUNT(*) FROM appointments a WHERE a.date = s.date)" if count else "0"
    row = db.execute(
        "SELECT date, version, etag, generated_at, stored_at, source, office_name, opening_open,"
        " opening_close, services_json, counters_json, announcements_json,"
        f" {counted} FROM schedules s WHERE date = ?", (day,)).fetchone()
    if row is None:
        return None
    return ScheduleInfo(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                        json.loads(row[9]), json.loads(row[10]), json.loads(row[11]), row[12])


def is_usable(generated_at: float | None, now: float, max_age_hours: int) -> bool:
    """A day's schedule is usable while younger than ``server.max_schedule_age_hours``.

    Age counts from the server's ``generated_at`` (pass None when there is no schedule):
    a 304 confirms a schedule but does not rewrite it.
    """
    return generated_at is not None and now - generated_at <= max_age_hours * 3600


def read_signed_file(path: str) -> tuple[bytes, str]:
    """Read ``FILE`` and its signature ``FILE.sig`` for an offline import."""
    try:
        with open(path, "rb") as f:
            body = f.read(MAX_BODY_BYTES + 1)
    except FileNotFoundError:
        raise AntreanError(f"schedule file {path} does not exist") from None
    except OSError as e:
        raise AntreanError(f"cannot read schedule file {path}: {e.strerror}") from None
    try:
        with open(path + ".sig", "rb") as f:
            sig = f.read(4096).decode("ascii", "replace").strip()
    except FileNotFoundError:
        raise ScheduleRejected(f"signature file {path}.sig is missing; copy it from the "
                               "server export next to the schedule") from None
    except OSError as e:
        raise ScheduleRejected(f"cannot read signature file {path}.sig: {e.strerror}") from None
    return body, sig
