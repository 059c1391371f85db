"""Schedule verification follows the contract; a refused schedule never touches the cache."""

import json

import pytest
from conftest import KEY, OTHER_KEY, appointment, schedule_doc, sign_doc

from appliance.errors import ScheduleRejected
from appliance.keys import generate_key
from appliance.schedule import MAX_BODY_BYTES, save_schedule, schedule_info, verify_schedule

DAY = "2026-11-30"


def good_doc(**kw):
    return schedule_doc(DAY, [appointment("K7Q2M9XA", DAY), appointment("B2C3D4E5", DAY,
                                                                       status="cancelled")], **kw)


def cache_snapshot(store):
    return (store.db.execute("SELECT * FROM schedules").fetchall(),
            store.db.execute("SELECT * FROM appointments ORDER BY booking_code").fetchall())


def test_valid_schedule_is_cached(config, store):
    body, sig = sign_doc(good_doc())
    sched = verify_schedule(body, sig, config, expect_date=DAY)
    assert save_schedule(store, sched, source="import", etag=None)
    info = schedule_info(store, DAY)
    assert (info.version, info.appointments, info.source) == (1, 2, "import")
    assert info.counters[0]["name"] == "Loket 1"


def _mutations():
    def dup(d):
        d["appointments"].append(dict(d["appointments"][0]))

    def dup_case(d):
        d["appointments"].append(dict(d["appointments"][0], booking_code="k7q2m9xa"))

    def bad_time(d):
        d["appointments"][0]["slot_start"] = "30/11/2026 09:00"

    def no_offset(d):
        d["appointments"][0]["slot_start"] = "2026-11-30T09:00:00"

    def end_before(d):
        a = d["appointments"][0]
        a["slot_end"] = a["slot_start"]

    return [
        ("format", lambda d: d.update(format="antrean.schedule/2"), "format"),
        ("office", lambda d: d["office"].update(id="JKT"), "office"),
        ("date", lambda d: d.update(date="2026-12-01"), "asked for"),
        ("dup", dup, "appears twice"),
        ("dup_case", dup_case, "appears twice"),
        ("bad_time", bad_time, "cannot be parsed"),
        ("no_offset", no_offset, "no UTC offset"),
        ("end_before", end_before, "slot_end <= slot_start"),
        ("service", lambda d: d["appointments"][0].update(service="Z"), "not in services"),
        ("status", lambda d: d["appointments"][0].update(status="maybe"), "status"),
        ("code", lambda d: d["appointments"][0].update(booking_code="AB"), "booking_code"),
    ]


@pytest.mark.parametrize("name, mutate, words", _mutations(), ids=[m[0] for m in _mutations()])
def test_refused_schedule_keeps_cache(config, store, name, mutate, words):
    body, sig = sign_doc(good_doc())
    save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)
    before = cache_snapshot(store)
    doc = good_doc(version=2)
    mutate(doc)
    body, sig = sign_doc(doc)
    with pytest.raises(ScheduleRejected, match=words):
        verify_schedule(body, sig, config, expect_date=DAY)
    assert cache_snapshot(store) == before


@pytest.mark.parametrize("make_sig, words", [
    (lambda body: None, "missing"),
    (lambda body: "garbage", "form"),
    (lambda body: OTHER_KEY.sign_header(body), "does not verify"),
    (lambda body: generate_key("k1999x").sign_header(body), "not in the config"),
    (lambda body: KEY.sign_header(body + b" "), "does not verify"),
])
def test_signature_refusals(config, make_sig, words):
    body, _ = sign_doc(good_doc())
    with pytest.raises(ScheduleRejected, match=words):
        verify_schedule(body, make_sig(body), config)


def test_oversized_and_non_json_bodies(config):
    big = b" " * (MAX_BODY_BYTES + 1)
    with pytest.raises(ScheduleRejected, match="byte limit"):
        verify_schedule(big, KEY.sign_header(big), config)
    junk = b"\xff\xfe<html>"
    with pytest.raises(ScheduleRejected, match="UTF-8 JSON"):
        verify_schedule(junk, KEY.sign_header(junk), config)


def test_replace_is_whole_and_older_version_refused(config, store):
    body, sig = sign_doc(good_doc(version=3))
    save_schedule(store, verify_schedule(body, sig, config), source="pull", etag='"v3"')
    doc = schedule_doc(DAY, [appointment("NEWCODE1", DAY)], version=4)
    body, sig = sign_doc(doc)
    assert save_schedule(store, verify_schedule(body, sig, config), source="pull", etag='"v4"')
    codes = [r[0] for r in store.db.execute("SELECT booking_code FROM appointments")]
    assert codes == ["NEWCODE1"]
    body, sig = sign_doc(good_doc(version=2))
    before = cache_snapshot(store)
    with pytest.raises(ScheduleRejected, match="older than the cached"):
        save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)
    assert cache_snapshot(store) == before
    assert schedule_info(store, DAY).etag == '"v4"'


def test_twenty_thousand_appointments(config, store):
    appts = [appointment(f"C{i:07d}", DAY, f"{8 + i % 8:02d}:00") for i in range(20000)]
    body, sig = sign_doc(schedule_doc(DAY, appts))
    assert json.loads(body)["appointments"][19999]["booking_code"] == "C0019999"
    save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)
    assert schedule_info(store, DAY).appointments == 20000


def test_a_schedule_weeks_ahead_never_prunes_today(config, store):
    from datetime import date, timedelta

    today = date.today().isoformat()
    ahead = (date.today() + timedelta(days=30)).isoformat()
    for day in (today, ahead):
        body, sig = sign_doc(schedule_doc(day, [appointment("K7Q2M9XA", day)]))
        save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)
    assert schedule_info(store, today) is not None and schedule_info(store, ahead) is not None


def test_a_pulled_schedule_may_go_back_a_version(config, store):
    body, sig = sign_doc(good_doc(version=5))
    save_schedule(store, verify_schedule(body, sig, config), source="pull", etag='"v5"')
    body, sig = sign_doc(good_doc(version=4, announcements=["rolled back"]))
    assert save_schedule(store, verify_schedule(body, sig, config), source="pull", etag='"v4"')
    assert schedule_info(store, DAY).version == 4
