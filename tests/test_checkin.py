"""Every verdict of the contract, its precedence and windows, in the office time zone."""

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from conftest import KEY, OTHER_KEY, appointment, office_time, schedule_doc, sign_doc
from fuzz_targets import FUZZ_EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.barcode import PlainCode, SignedBarcode, Unreadable, parse_payload, sign_barcode
from appliance.checkin import VERDICTS, CheckinDesk
from appliance.clock import Clock, record_server_date
from appliance.schedule import save_schedule, verify_schedule

DAY = "2026-11-30"


def signed_barcode(code="SIGNED01", day=DAY, start="09:00", office="TRK", key=KEY, name="Siti"):
    begin = office_time(day, start)
    return sign_barcode(key, code, office, begin.isoformat(),
                       (begin + timedelta(minutes=30)).isoformat(), "B", name, True)


def load(config, store, doc):
    body, sig = sign_doc(doc)
    save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)


@pytest.fixture
def desk_at(config, store):
    """A desk whose clock reads office time ``hhmm`` on ``day``."""
    load(config, store, schedule_doc(DAY, [
        appointment("K7Q2M9XA", DAY, "09:00"),
        appointment("CANCEL01", DAY, "09:00", status="cancelled"),
        appointment("TOMORROW", "2026-12-01", "09:00"),
    ]))
    load(config, store, schedule_doc("2026-12-01", [appointment("TOMORROW", "2026-12-01")]))

    def make(hhmm="09:10", day=DAY):
        t = office_time(day, hhmm).timestamp()
        return CheckinDesk(store, config, Clock(store, config, wall=lambda: t))
    return make


def test_ok_then_already_checked_in(desk_at, store):
    desk = desk_at()
    first = desk.scan(b"]Q1k7q2m9xa\r\n")
    assert (first.verdict, first.ticket, first.booking_code) == ("ok", "A001", "K7Q2M9XA")
    assert "Nomor antrean Anda A001" in first.message_id and "Bapak Andi S." in first.message_id
    again = desk.scan("K7Q2M9XA\t")
    assert (again.verdict, again.ticket) == ("already_checked_in", "A001")
    assert "A001" in again.message_id and "A001" in again.message_en
    events = [json.loads(b)["type"] for (b,) in store.db.execute("SELECT body FROM outbox")]
    assert events == ["checkin", "scan_rejected"]
    assert store.db.execute("SELECT COUNT(*) FROM scans").fetchone()[0] == 2


@pytest.mark.parametrize("payload, verdict", [
    (b"", "unreadable"), (b"abc", "unreadable"), (b"\x00\x01K7Q2M9XA", "unreadable"),
    ("K7Q2M9XA\u202e".encode(), "unreadable"), (b"X" * 5000, "unreadable"),
    (b"ZZZZ9999", "unknown"), (b"CANCEL01", "cancelled"),
])
def test_simple_verdicts(desk_at, payload, verdict):
    assert desk_at().scan(payload).verdict == verdict


def test_windows_are_inclusive_and_messages_say_when(desk_at):
    assert desk_at("08:00").scan("K7Q2M9XA").verdict == "ok"  # slot 09:00 - 60 min
    r = desk_at("07:59").scan("TOMORROW")
    assert r.verdict == "wrong_day" and r.detail == "2026-12-01"
    assert "Selasa, 1 Desember 2026" in r.message_id and "December" in r.message_en
    early = desk_at("07:59", "2026-12-01").scan("TOMORROW")
    assert (early.verdict, early.detail) == ("too_early", "08:00")
    assert "08:00" in early.message_id and "08:00" in early.message_en
    assert desk_at("10:00", "2026-12-01").scan("TOMORROW").verdict == "ok"  # end 09:30 + 30


def test_too_late(desk_at):
    r = desk_at("10:01").scan("K7Q2M9XA")
    assert (r.verdict, r.detail) == ("too_late", "10:00")


def test_office_day_differs_from_utc_day(config, store):
    """At 07:30 in Tarakan it is still the previous day in UTC."""
    load(config, store, schedule_doc(DAY, [appointment("EARLYBRD", DAY, "08:00")]))
    t = office_time(DAY, "07:30")
    assert t.astimezone(__import__("zoneinfo").ZoneInfo("UTC")).date().isoformat() == "2026-11-29"
    desk = CheckinDesk(store, config, Clock(store, config, wall=lambda: t.timestamp()))
    r = desk.scan("EARLYBRD")
    assert r.verdict == "ok"
    assert store.db.execute("SELECT office_day FROM checkins").fetchone()[0] == DAY


def test_signed_tickets(desk_at, config, store):
    desk = desk_at("09:00")
    r = desk.scan(signed_barcode())
    assert (r.verdict, r.ticket) == ("ok", "B001")  # not in the cache: the ticket decides
    assert desk.scan(signed_barcode(key=OTHER_KEY)).verdict == "bad_signature"
    assert desk.scan(signed_barcode(office="JKT")).verdict == "wrong_office"
    assert desk.scan(signed_barcode("CANCEL01")).verdict == "cancelled"  # the cache wins
    assert desk.scan(signed_barcode("OTHERDAY", day="2026-12-03")).verdict == "wrong_day"
    tampered = signed_barcode("TAMPER01")
    head, kid, payload, sig = tampered.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["b"] = "TAMPER02"
    p2 = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    assert desk.scan(f"{head}.{kid}.{p2}.{sig}").verdict == "bad_signature"
    assert desk.scan("AT1.k2026a.!!.??").verdict == "unreadable"


def test_deeply_nested_signed_payload_is_unreadable(desk_at):
    """JSON nesting deep enough to blow Python's recursion limit, still under 2048 chars."""
    payload = base64.urlsafe_b64encode(b"[" * 1400).rstrip(b"=").decode()
    r = desk_at().scan(f"AT1.k2026a.{payload}.AAAA")
    assert r.verdict == "unreadable"


def test_precedence_bad_signature_before_wrong_office(desk_at):
    assert desk_at().scan(signed_barcode(office="JKT", key=OTHER_KEY)).verdict == "bad_signature"


def test_no_schedule_for_plain_codes_only(config, store):
    t = office_time(DAY, "09:00").timestamp()
    desk = CheckinDesk(store, config, Clock(store, config, wall=lambda: t))
    assert desk.scan("K7Q2M9XA").verdict == "no_schedule"
    assert desk.scan(signed_barcode()).verdict == "ok"
    # A stale schedule still admits the codes it knows; unknown codes get no_schedule.
    stale = office_time(DAY, "00:00") - timedelta(hours=40)
    load(config, store, schedule_doc(DAY, [appointment("K7Q2M9XA", DAY)], generated_at=stale))
    assert desk.scan("K7Q2M9XA").verdict == "ok"
    assert desk.scan("UNKNOWN9").verdict == "no_schedule"


def test_clock_far_behind_uses_server_time(config, store):
    load(config, store, schedule_doc(DAY, [appointment("K7Q2M9XA", DAY)]))
    real = office_time(DAY, "09:00").timestamp()
    wrong = [real - 86400 * 400]  # booted in the past, before the build date
    boot = [100.0]
    clock = Clock(store, config, wall=lambda: wrong[0], boot=lambda: boot[0], refresh_s=0)
    record_server_date(store, real, wrong[0], synced=False, boot_seconds=boot[0])
    desk = CheckinDesk(store, config, clock)
    assert clock.corrected and clock.office_day() == DAY
    assert desk.scan("K7Q2M9XA").verdict == "ok"
    # The wall clock jumps again (a bad NTP step) 10 minutes later: the anchor still holds.
    boot[0] += 600
    wrong[0] = real - 86400 * 30
    assert clock.corrected and abs(clock.time() - (real + 600)) < 1e-6
    # A correct wall clock within 5 minutes of the server is used as it is.
    wrong[0] = real + 600 + 120
    assert not clock.corrected and clock.time() == wrong[0]


def test_untrusted_clock_never_turns_applicants_away(config, store):
    load(config, store, schedule_doc(DAY, [appointment("K7Q2M9XA", DAY, "15:00")]))
    # A later day is cached too: it must not become "today" for today's applicants.
    load(config, store, schedule_doc("2026-12-02", [appointment("LATERDAY", "2026-12-02")]))
    wrong = office_time("2025-01-01", "08:00").timestamp()  # before the build date
    desk = CheckinDesk(store, config, Clock(store, config, wall=lambda: wrong))
    assert not desk.clock.trusted
    r = desk.scan("K7Q2M9XA")
    assert r.verdict == "ok"
    assert store.db.execute("SELECT office_day FROM checkins").fetchone()[0] == DAY
    assert desk.scan("NOWHERE1").verdict == "no_schedule"


def scans_recorded(store) -> int:
    """Scans the ``scans`` table stands for (a run of unreadable scans is one row)."""
    return store.db.execute("SELECT COALESCE(SUM(count), 0) FROM scans").fetchone()[0]


def scans_reported(store) -> int:
    """Scans the outbox events stand for (``count`` absent means one)."""
    bodies = [json.loads(b) for (b,) in store.db.execute("SELECT body FROM outbox")]
    return sum(e.get("count", 1) for e in bodies if e["type"] in ("checkin", "scan_rejected"))


class Ticking:
    """A wall clock the test moves forward."""

    def __init__(self, day=DAY, hhmm="09:10"):
        self.t = office_time(day, hhmm).timestamp()

    def __call__(self) -> float:
        return self.t


def test_a_flood_of_unreadable_scans_is_one_row_and_two_events(desk_at, config, store):
    """1,000 garbage lines once made 1,000 fsync'd rows and 1,000 events, kept forever."""
    wall = Ticking()
    desk = CheckinDesk(store, config, Clock(store, config, wall=wall))
    for i in range(1000):
        wall.t += 0.01
        assert desk.scan(b"\x1b[2J garbage %d" % i).verdict == "unreadable"
    assert store.db.execute("SELECT verdict, count, reported FROM scans").fetchall() == [
        ("unreadable", 1000, 1)]
    assert scans_reported(store) == 1               # the first at once; the run goes on
    assert desk.settle_unreadable() == 0            # not quiet yet: nothing written
    wall.t += 10.5
    assert desk.settle_unreadable() == 1
    events = [json.loads(b) for (b,) in store.db.execute("SELECT body FROM outbox ORDER BY seq")]
    assert [(e["reason"], e.get("count")) for e in events] == [("unreadable", None),
                                                              ("unreadable", 999)]
    last = b"\x1b[2J garbage 999"
    assert events[1]["payload_sha256"] == hashlib.sha256(last).hexdigest()
    assert desk.settle_unreadable(force=True) == 0  # reported once only
    desk.scan(b"more garbage")                      # after the gap: a new run
    assert [r[0] for r in store.db.execute("SELECT count FROM scans ORDER BY id")] == [1000, 1]
    assert scans_recorded(store) == scans_reported(store) == 1001


def test_a_run_ends_at_another_verdict_and_is_reported_every_span(desk_at, config, store):
    wall = Ticking()
    desk = CheckinDesk(store, config, Clock(store, config, wall=wall))
    for _ in range(3):
        desk.scan(b"\x00")
    assert desk.scan(b"K7Q2M9XA").verdict == "ok"   # the run's rest is reported with it
    types = [(json.loads(b)["type"], json.loads(b).get("count"))
             for (b,) in store.db.execute("SELECT body FROM outbox ORDER BY seq")]
    assert types == [("scan_rejected", None), ("scan_rejected", 2), ("checkin", None)]
    for _ in range(700):                             # an endless flood, one line a second
        wall.t += 1.0
        desk.scan(b"\x00")
    rows = store.db.execute("SELECT count FROM scans WHERE verdict = 'unreadable'").fetchall()
    assert len(rows) == 1 + 3 and sum(r[0] for r in rows) == 703   # 300 s spans
    desk.settle_unreadable(force=True)
    assert scans_recorded(store) == scans_reported(store) == 704


def test_every_verdict_has_two_languages():
    from appliance.checkin import messages_for

    for v in VERDICTS:
        detail = {"wrong_day": DAY, "too_early": "08:00", "too_late": "10:00"}.get(v)
        mid, men = messages_for(v, "A001", detail, "Bapak Andi S.")
        indonesian = {"Selamat", "Anda", "Silakan", "Kode", "Tiket", "Jadwal", "Terlalu",
                      "Waktu", "Booking", "sudah", "tidak"}
        english = {"Welcome", "You", "Your", "Please", "This", "The", "Too", "Today's",
                   "Booking"}
        assert set(mid.replace(".", " ").split()) & indonesian, (v, mid)
        assert set(men.replace(".", " ").split()) & english, (v, men)
        assert mid != men


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.binary(max_size=300))
def test_parser_never_raises_on_bytes(data):
    assert isinstance(parse_payload(data, {"k2026a": KEY.public_raw}),
                      PlainCode | SignedBarcode | Unreadable)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.text(max_size=300))
def test_parser_never_raises_on_text(text):
    parse_payload(text, {"k2026a": KEY.public_raw})
    parse_payload("AT1.k2026a." + text, {"k2026a": KEY.public_raw})


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=64))
def test_random_scans_always_recorded_and_reported(desk_at, store, data):
    desk = desk_at()
    before = scans_recorded(store)
    r = desk.scan(data)
    assert r.verdict in VERDICTS
    assert scans_recorded(store) == before + 1
    desk.settle_unreadable(force=True)
    assert scans_reported(store) == before + 1
