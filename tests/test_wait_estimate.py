"""Waiting-time estimates: hand-made days with known answers, properties over random lobbies,
and the same model read from a real store."""

import math
from dataclasses import replace

import pytest
from conftest import appointment, schedule_doc, sign_doc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_queue import Wall

from appliance.call_queue import CallQueue, call_order_key, waiting
from appliance.checkin import CheckinDesk
from appliance.clock import Clock
from appliance.lobby_view import wait_estimates
from appliance.schedule import save_schedule, verify_schedule
from appliance.wait_estimate import (
    QUARTER_S,
    Booking,
    CounterCall,
    CounterSpec,
    EstimateSettings,
    PastDay,
    UsualAbsences,
    Waiting,
    busy_intervals,
    counter_outlook,
    estimate_lobby,
    lateness,
    paces,
    robust_mean,
    usual_absences,
)

M = 60.0
T0 = 1_796_000_000.0          # some morning; the model only sees differences
BOTH = CounterSpec(1, ("A", "B"))
ONLY_A = CounterSpec(2, ("A",))
S = EstimateSettings(default_minutes=10.0, minutes={"B": 8.0})


def wait(ticket, service="A", *, slot=0.0, came=-30.0, priority=False):
    """An applicant waiting since ``came`` minutes (relative to T0) for a slot at ``slot``."""
    return Waiting(ticket, service, priority, T0 + slot * M, T0 + came * M)


def call(counter, ticket, at, service="A", *, slot=None, came=None):
    return CounterCall(counter, ticket, service, T0 + at * M,
                       None if slot is None else T0 + slot * M,
                       None if came is None else T0 + came * M)


def minutes(est):
    return {a.ticket: round(a.wait_s / M, 2) for a in est.applicants}


def in_order(rows):
    return sorted(rows, key=lambda w: call_order_key(w.priority, w.slot_start, w.checked_in_at))


def steady_calls(counter, start, count, every, service="A"):
    """A counter calling every ``every`` minutes, each applicant there since long before."""
    return [call(counter, f"{service}{counter}{i:02d}", start + i * every, service,
                 slot=start - 30, came=start - 30) for i in range(count)]


# Hand-made days ----------------------------------------------------------------------------

def test_cold_start_uses_configured_minutes_and_shares_counters():
    rows = [wait("A001", slot=-30), wait("B001", "B", slot=-25), wait("A002", slot=-20),
            wait("A003", slot=-10)]
    est = estimate_lobby(rows, [], [BOTH, ONLY_A], T0, S, opens_at=T0 - 60 * M)
    # Both counters start now: 1 takes A001, 2 takes A002; at +10 counter 1 takes B001
    # (before A003 in call order) and counter 2 A003.
    assert minutes(est) == {"A001": 0, "B001": 10, "A002": 0, "A003": 10}
    assert [a.ahead for a in est.applicants] == [0, 0, 1, 2]
    # Someone arriving now on time: after B001 (8 min) counter 1 is free at +18.
    assert round(est.for_service("A").next_wait_s / M) == 18
    assert round(est.for_service("B").next_wait_s / M) == 18
    assert est.for_service("A").waiting == 3 and est.for_service("B").waiting == 1
    assert est.open_counters == (1, 2)


def test_nobody_is_called_before_opening():
    rows = [wait("A001", slot=30, came=-10), wait("A002", slot=30, came=-5)]
    est = estimate_lobby(rows, [], [BOTH], T0, S, opens_at=T0 + 30 * M)
    assert minutes(est) == {"A001": 30, "A002": 40}


def test_pace_is_learnt_from_busy_intervals_and_pulled_to_the_default_while_few():
    calls = steady_calls(1, -60, 11, 6)                     # ten 6-minute intervals
    intervals = busy_intervals(calls, [], {1: BOTH}, S)
    assert [round(i.seconds / M) for i in intervals] == [6] * 10
    pace = paces(intervals, ["A"], S)
    assert pace.service_s["A"] == pytest.approx((10 * 6 * M + 2 * 10 * M) / 12)
    few = paces(intervals[:1], ["A"], S)
    assert few.service_s["A"] == pytest.approx((6 * M + 2 * 10 * M) / 3)


def test_an_idle_counter_is_not_slow():
    # A quiet morning: each applicant arrives just before being called, 40 minutes apart.
    calls = [call(1, f"A00{i}", -200 + 40 * i, slot=-200 + 40 * i, came=-201 + 40 * i)
             for i in range(5)]
    assert busy_intervals(calls, [], {1: BOTH}, S) == []
    rows = [wait("A010", came=-1), wait("A011", came=-0.5)]
    est = estimate_lobby(rows, calls, [BOTH], T0, S)
    # Counter 1 called at -40, has finished, and calls the next one at once: the second
    # waits one default service time, not 40 minutes.
    assert minutes(est) == {"A010": 0, "A011": 10}


def test_breaks_and_outliers_do_not_count_as_service_time():
    calls = steady_calls(1, -120, 6, 6)                     # -120 ... -90, every 6 min
    calls.append(call(1, "A150", -50, slot=-90, came=-90))  # 40-minute gap: a break
    calls += [call(1, f"A2{i:02d}", -50 + 6 * (i + 1), slot=-90, came=-90) for i in range(4)]
    calls.append(call(1, "A300", -26 + 25, slot=-90, came=-90))  # after a 25-minute case
    intervals = busy_intervals(calls, [], {1: BOTH}, S)
    assert max(i.seconds for i in intervals) == 25 * M      # the break is gone
    assert robust_mean([i.seconds for i in intervals]) == pytest.approx(6 * M)


def test_an_away_counter_leaves_the_work_to_the_others_and_is_expected_back():
    # Counters 1 and 2 (both A) called every 10 min since -120; counter 2 stopped at -60.
    calls = steady_calls(1, -120, 13, 10) + steady_calls(2, -120, 7, 10)
    rows = [wait(f"A9{i:02d}", slot=-90, came=-90 + i / 10) for i in range(20)]
    est = estimate_lobby(rows, calls, [CounterSpec(1, ("A",)), ONLY_A], T0, S)
    assert est.open_counters == (1,)
    # Counter 1 (just called) alone every 10 minutes, until counter 2 is expected back: an
    # absence no past day explains counts three times as long again as it has lasted (60).
    assert [a.wait_s / M for a in est.applicants] == pytest.approx(
        [10 * (k + 1) for k in range(18)] + [180, 190])


def test_a_counter_serving_several_services_calls_in_queue_order():
    early_as = [wait("A001", slot=-60), wait("A002", slot=-50), wait("A003", slot=-40)]
    b = wait("B001", "B", slot=-30)
    est = estimate_lobby(in_order([*early_as, b]), [], [BOTH, ONLY_A], T0, S)
    # Counter 2 serves only A: B001 waits for counter 1's third turn, after A001 and A003.
    assert minutes(est)["B001"] == 20
    late_as = [wait("A001", slot=60), wait("A002", slot=60), wait("A003", slot=60)]
    est = estimate_lobby(in_order([*late_as, b]), [], [BOTH, ONLY_A], T0, S)
    assert minutes(est)["B001"] == 0      # first in call order: counter 1 takes it now


def test_priority_lane_goes_first():
    rows = in_order([wait("A001", slot=-60), wait("A002", slot=-50),
                     wait("A003", slot=30, came=-1, priority=True)])
    est = estimate_lobby(rows, [], [CounterSpec(1, ("A",))], T0, S)
    assert [a.ticket for a in est.applicants] == ["A003", "A001", "A002"]
    assert minutes(est) == {"A003": 0, "A001": 10, "A002": 20}


def chance(still, show=0.9):
    """The chance a booking not here yet still comes: 90 % come at all, and ``still`` of
    them after now (before a day teaches better: arrivals even over the check-in window)."""
    return show * still / (1 - show + show * still)


def test_bookings_still_to_come_with_earlier_slots_or_priority_go_ahead():
    ahead = [wait(f"A00{i}", slot=-30, came=-20) for i in range(1, 6)]
    rows = [*ahead, wait("A009", slot=60, came=-5)]     # came an hour early for its slot
    one = [CounterSpec(1, ("A",))]
    calls = [call(1, "A000", -1, slot=-30, came=-40)]  # busy with someone until +9

    def a009(*bookings):
        est = estimate_lobby(rows, calls, one, T0, S, bookings=bookings)
        return est.for_ticket("A009").wait_s / M

    assert a009() == pytest.approx(59)
    # Check-in windows open an hour before the slot and close 30 minutes after its end.
    # Slot at +30: window -30 ... +90, three quarters left, expected halfway (+45), while
    # A009 still waits: it goes first, for its chance to come times 10 minutes.
    assert a009(Booking("A", False, T0 + 30 * M, T0 + 60 * M, False)) == pytest.approx(
        59 + 10 * chance(0.75))
    assert a009(Booking("A", False, T0 + 90 * M, T0 + 120 * M, False)) == pytest.approx(59)
    assert a009(Booking("A", True, T0 + 240 * M, T0 + 270 * M, False)) == pytest.approx(59)
    assert a009(Booking("A", True, T0 + 5 * M, T0 + 35 * M, False)) == pytest.approx(
        59 + 10 * chance(65 / 120))
    assert a009(Booking("A", False, T0 - 40 * M, T0 - 10 * M, True)) == pytest.approx(59)
    # Once slots have closed, the day's own show rate and earliness take over.
    done = [Booking("A", False, T0 - 900 * M, T0 - 870 * M, i < 20) for i in range(40)]
    came = [call(1, f"D{i:03d}", -800 + 31 * i, slot=-900, came=-900 - i) for i in range(20)]
    est = estimate_lobby(rows, calls + came, one, T0, S, bookings=[
        *done, Booking("A", False, T0 + 30 * M, T0 + 60 * M, False)])
    show = (20 + 10 * 0.9) / (40 + 10)           # half came; the prior counts as ten
    # They came 0-19 minutes before their slot: expected at +30 - 10, certain to be after now.
    assert est.for_ticket("A009").wait_s / M == pytest.approx(59 + 10 * chance(1.0, show))


def test_lateness_is_the_recent_median_delay_and_zero_when_on_time():
    calls = [call(1, "A001", -50, slot=-70), call(1, "A002", -30, slot=-40),
             call(1, "A003", -10, slot=-40),                 # 20, 10, 30 min late
             call(2, "A000", -90, slot=-200),                # outside the last hour
             CounterCall(2, "A004", "A", T0 - 5 * M, T0 + 100 * M, T0 - 6 * M, True),
             call(1, "B001", -20, "B", slot=-10),            # called early: on time
             call(3, "C001", -5, "C")]                       # pushed call: no slot known
    late = lateness(calls, T0, S)
    assert late == {"A": 20 * M, "B": 0.0}
    est = estimate_lobby([], calls, [BOTH], T0, S, services=["A", "B", "C"])
    assert [(s.service, s.lateness_s) for s in est.services] == [
        ("A", 20 * M), ("B", 0.0), ("C", None)]


def test_a_service_no_counter_lists_still_gets_an_estimate():
    rows = [wait("C001", "C"), wait("C002", "C")]
    est = estimate_lobby(rows, [], [ONLY_A], T0, S)
    assert minutes(est) == {"C001": 0, "C002": 10}
    assert est.open_counters == (2,)


def test_an_idle_counter_is_learnt_to_take_a_moment_to_notice_newcomers():
    # Every call on a quiet day came 2 minutes after its applicant checked in.
    calls = [call(1, f"A00{i}", -200 + 30 * i, slot=-200 + 30 * i, came=-202 + 30 * i)
             for i in range(6)]
    est = estimate_lobby([wait("A010", came=0)], calls, [CounterSpec(1, ("A",))], T0, S)
    assert est.applicants[0].wait_s == pytest.approx(5 * 2 * M / 7)   # shrunk towards 0


def test_no_counters_known_at_all():
    est = estimate_lobby([wait("A001"), wait("A002")], [], [], T0, S)
    assert minutes(est) == {"A001": 0, "A002": 10}
    assert est.open_counters == (1,)
    assert estimate_lobby([], [], [], T0, S).applicants == ()


# Usual absences, learnt from past days -------------------------------------------------------

MIDNIGHT = T0 - 11 * 3600           # T0 is 11:00 in these days


def past_day(days_ago, calls_at, *, came=-60, service="A", counter=1):
    """A past day whose counter called at ``calls_at`` (minutes from 11:00), everyone there
    since ``came``."""
    shift = days_ago * 86400
    return PastDay(MIDNIGHT - shift, tuple(
        CounterCall(counter, f"{service}{i:03d}", service, T0 - shift + at * M,
                    T0 - shift + came * M, T0 - shift + came * M)
        for i, at in enumerate(calls_at)))


LUNCH_DAY = [*range(-60, 51, 10), *range(105, 180, 10)]  # 10:00-11:50, lunch, 12:45-13:55


def test_a_usual_lunch_is_learnt_per_quarter_hour():
    usual = usual_absences([past_day(1, LUNCH_DAY), past_day(2, LUNCH_DAY)], {1: BOTH}, S)
    quarter = {round((MIDNIGHT + q * QUARTER_S - T0) / M): share
               for q, share in enumerate(usual.share[1]) if share}
    # Away from the end of the 11:50 service (12:00) until the 12:45 call, both days.
    assert list(quarter) == [60, 75, 90]
    assert all(share > 0.8 for share in quarter.values())
    assert usual.away_until(1, MIDNIGHT, T0 + 65 * M) == T0 + 105 * M
    assert usual.away_until(1, MIDNIGHT, T0 + 30 * M) == T0 + 30 * M
    assert usual.away_until(2, MIDNIGHT, T0 + 65 * M) == T0 + 65 * M


def test_the_usual_start_of_each_counter_is_learnt():
    # Counter 1 usually starts at 10:05 (with people waiting since 09:50); counter 2 began at
    # 10:30 on a day nobody came before 10:29, which says nothing about when it starts.
    days = [past_day(d, [-55, -45, -35], came=-70) for d in (1, 2, 3)]
    days.append(PastDay(MIDNIGHT - 4 * 86400, (
        CounterCall(2, "A900", "A", T0 - 4 * 86400 - 30 * M, None, T0 - 4 * 86400 - 31 * M),)))
    usual = usual_absences(days, {1: BOTH, 2: BOTH}, S)
    assert usual.first_call == {1: T0 - 55 * M - MIDNIGHT}
    rows = [wait("A001", slot=-60, came=-75), wait("A002", slot=-60, came=-70)]
    est = estimate_lobby(rows, [], [BOTH, CounterSpec(2, ("A", "B"))], T0 - 70 * M, S,
                         opens_at=T0 - 60 * M, usual=usual, midnight=MIDNIGHT)
    assert minutes(est) == {"A001": 10, "A002": 15}     # counter 2 at 10:00, counter 1 10:05


def test_idle_time_on_past_days_is_not_an_absence():
    # The same gap with nobody waiting (each applicant came just before being called).
    quiet = PastDay(MIDNIGHT - 86400, tuple(
        CounterCall(1, f"A{i:03d}", "A", T0 - 86400 + at * M, None, T0 - 86400 + (at - 1) * M)
        for i, at in enumerate(LUNCH_DAY)))
    usual = usual_absences([quiet], {1: BOTH}, S)
    assert max(usual.share[1]) < 0.2     # only the minute a newcomer waited to be noticed
    assert usual.away_until(1, MIDNIGHT, T0 + 65 * M) == T0 + 65 * M


def test_the_usual_lunch_is_waited_out_and_an_unusual_absence_counted_longer():
    usual = usual_absences([past_day(1, LUNCH_DAY), past_day(2, LUNCH_DAY)], {1: BOTH}, S)
    one = [CounterSpec(1, ("A",))]
    calls = [call(1, "A000", 30, slot=-30, came=-40)]              # 11:30
    rows = [wait(f"A00{i}", slot=0, came=25) for i in (1, 2, 3)]
    now = T0 + 35 * M

    def waits(usual=usual, calls=calls, now=now):
        est = estimate_lobby(rows, calls, one, now, S, usual=usual, midnight=MIDNIGHT)
        return [round(a.wait_s / M, 2) for a in est.applicants]

    assert waits(UsualAbsences()) == [5, 15, 25]
    assert waits() == [5, 15, 70]          # the third would be called at 12:00: after lunch
    # At 12:30 the counter has not called since 11:50: away, and usually so until 12:45.
    lunch = [call(1, "A000", 50, slot=-30, came=-40)]
    assert waits(calls=lunch, now=T0 + 90 * M)[0] == pytest.approx(15)
    # Silent since 09:50 with people waiting since 10:00 is not usual at 10:30: expected back
    # after three times the 30 minutes ...
    rows[:] = [wait(f"A00{i}", slot=-60, came=-60) for i in (1, 2, 3)]
    silent = [call(1, "A000", -70, slot=-90, came=-90)]
    outlook = counter_outlook(silent, rows, {1: one[0]}, T0 - 30 * M, S, paces([], "A", S),
                              usual=usual, midnight=MIDNIGHT)
    assert not outlook[1].open and outlook[1].free_at == T0 + 60 * M
    # Still away at 12:10, in its usual lunch: but it left long before lunch, so not that.
    outlook = counter_outlook(silent, rows, {1: one[0]}, T0 + 70 * M, S, paces([], "A", S),
                              usual=usual, midnight=MIDNIGHT)
    assert outlook[1].free_at == T0 + 70 * M + 3 * 130 * M
    # ... and the only counter of a service is expected back within idle_minutes.
    assert waits(calls=silent, now=T0 - 30 * M)[0] == pytest.approx(30)


# Properties over random lobbies --------------------------------------------------------------

CODES = ("A", "B", "C")
minutes_st = st.floats(min_value=-300, max_value=0, allow_nan=False)


@st.composite
def lobbies(draw):
    counters = []
    for cid in range(1, draw(st.integers(1, 4)) + 1):
        served = draw(st.one_of(st.none(), st.lists(st.sampled_from(CODES), min_size=1,
                                                      max_size=3, unique=True)))
        counters.append(CounterSpec(cid, None if served is None else tuple(served)))
    rows = []
    for i in range(draw(st.integers(0, 12))):
        came = draw(minutes_st)
        rows.append(wait(f"W{i:03d}", draw(st.sampled_from(CODES)),
                         slot=draw(st.floats(-300, 200)), came=came,
                         priority=draw(st.booleans())))
    calls = []
    for i in range(draw(st.integers(0, 20))):
        spec = draw(st.sampled_from(counters))
        service = draw(st.sampled_from(spec.services or CODES))
        at = draw(minutes_st)
        came = at - draw(st.floats(0, 120))
        calls.append(call(spec.id, f"K{i:03d}", at, service,
                          slot=draw(st.floats(-400, 100)), came=came))
    bookings = [Booking(draw(st.sampled_from(CODES)), draw(st.booleans()),
                        T0 + (slot := draw(st.floats(-200, 300))) * M, T0 + (slot + 30) * M,
                        draw(st.booleans())) for _ in range(draw(st.integers(0, 8)))]
    default = draw(st.floats(1, 25))
    idle = draw(st.floats(default + 1, 90))
    conf = EstimateSettings(default_minutes=default, idle_minutes=idle,
                            minutes={"B": draw(st.floats(0.5, idle - 0.5))})
    opens = draw(st.one_of(st.none(), st.floats(-120, 60)))
    opens_at = None if opens is None else T0 + opens * M
    usual = UsualAbsences({spec.id: tuple(draw(st.lists(st.sampled_from((0.0, 0.3, 0.9)),
                                                         min_size=96, max_size=96)))
                           for spec in counters if draw(st.booleans())})
    return in_order(rows), calls, counters, bookings, conf, opens_at, usual


def bound(rows, bookings, conf, opens_at, now, usual):
    """No wait is longer than: until opening, a counter's return and its pickup, then every
    waiting and expected applicant ahead at the longest possible service time; counters
    usually away may add the rest of the day."""
    idle = conf.idle_minutes * M
    habits = max(0.0, MIDNIGHT + 86400 - now) if usual.share else 0.0
    return (max(0.0, (opens_at or now) - now) + habits + 2 * idle
            + (len(rows) + len(bookings) + 1) * idle)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lobbies(), st.floats(0, 600))
def test_properties(lobby, later_minutes):
    rows, calls, counters, bookings, conf, opens_at, usual = lobby
    limit = bound(rows, bookings, conf, opens_at, T0, usual)

    def estimate(now):
        return estimate_lobby(rows, calls, counters, now, conf, bookings=bookings,
                              services=CODES, opens_at=opens_at, usual=usual,
                              midnight=MIDNIGHT)

    est = estimate(T0)
    assert [a.ticket for a in est.applicants] == [w.ticket for w in rows]
    for a in est.applicants:
        assert math.isfinite(a.wait_s) and 0 <= a.wait_s <= limit
        assert a.call_at == pytest.approx(T0 + a.wait_s)
    for s in est.services:
        assert math.isfinite(s.next_wait_s) and 0 <= s.next_wait_s <= limit
        assert s.lateness_s is None or s.lateness_s >= 0
    # Monotone in queue position: within a service nobody is expected before those ahead.
    for code in CODES:
        mine = [a for a in est.applicants if a.service == code]
        assert [a.ahead for a in mine] == list(range(len(mine)))
        assert all(x.call_at <= y.call_at for x, y in zip(mine, mine[1:], strict=False))
    # Bounded when nothing moves: the same rows hours later still give bounded waits, and
    # once every booking's window has closed the estimate no longer changes with time.
    later = T0 + later_minutes * M
    assert all(a.wait_s <= bound(rows, bookings, conf, opens_at, later, usual)
               for a in estimate(later).applicants)
    day, two_days = (estimate(T0 + h * 3600) for h in (24, 48))
    assert [a.wait_s for a in day.applicants] == pytest.approx(
        [a.wait_s for a in two_days.applicants])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(1, 3), st.sampled_from(CODES),
                                   st.floats(-180, 300), st.floats(0, 120), st.booleans()),
                         max_size=25), max_size=4))
def test_usual_absences_from_any_past_days(days):
    past = [PastDay(MIDNIGHT - (d + 1) * 86400, tuple(
        CounterCall(cid, f"{service}{i:03d}", service, T0 - (d + 1) * 86400 + at * M, None,
                    None if pushed else T0 - (d + 1) * 86400 + (at - waited) * M)
        for i, (cid, service, at, waited, pushed) in enumerate(calls)))
        for d, calls in enumerate(days)]
    usual = usual_absences(past, {1: BOTH, 2: ONLY_A}, S)
    for shares in usual.share.values():
        assert len(shares) == 96 and all(0 <= x < 1 for x in shares)
    assert all(0 <= t < 86400 for t in usual.first_call.values())
    for cid in (1, 2, 3):
        back = usual.away_until(cid, MIDNIGHT, T0)
        assert T0 <= back <= MIDNIGHT + 86400


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.integers(0, 5)), max_size=12))
def test_call_order_key_matches_the_queue_sql(store_rows):
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, priority, slot_start, checked_in_at)")
    db.executemany("INSERT INTO c(priority, slot_start, checked_in_at) VALUES (?,?,?)",
                   [(int(p), s, c) for p, s, c in store_rows])
    sql = [r[0] for r in db.execute(
        "SELECT id FROM c ORDER BY priority DESC, slot_start, checked_in_at, id")]
    rows = db.execute("SELECT id, priority, slot_start, checked_in_at FROM c ORDER BY id")
    python = [r[0] for r in sorted(rows, key=lambda r: call_order_key(bool(r[1]), r[2], r[3]))]
    assert python == sql


# From the store --------------------------------------------------------------------------------

DAY = "2026-11-30"


def test_estimates_read_from_a_real_store(config, store):
    appts = [appointment("EARLY001", DAY, "09:00"), appointment("EARLY002", DAY, "09:00"),
             appointment("LATER001", DAY, "10:00"),
             appointment("BSERVICE", DAY, "09:00", service="B"),
             appointment("PRIORITY", DAY, "10:00", priority=True),
             appointment("NOTYET01", DAY, "08:45")]
    body, sig = sign_doc(schedule_doc(DAY, appts))
    save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)
    wall = Wall(DAY, "09:05")
    clock = Clock(store, config, wall=wall)
    desk, queue = CheckinDesk(store, config, clock), CallQueue(store, config, clock)
    for code in ("LATER001", "EARLY001", "BSERVICE", "EARLY002", "PRIORITY"):
        assert desk.scan(code).accepted
    with store.read() as db:
        est = wait_estimates(db, DAY, wall(), config)
        order = [row[0] for row in waiting(db, DAY)]
    assert [a.ticket for a in est.applicants] == order == ["A004", "A002", "B001", "A003",
                                                           "A001"]
    assert [a.ahead for a in est.applicants] == [0, 1, 0, 2, 3]
    # Opened at 08:00, nobody called yet: counters 1 (A, B) and 2 (B) start now at the
    # configured 10 minutes. NOTYET01 (08:45) has not come: its window closes at 09:45, so
    # it is expected at 09:25 if at all, and then goes before A003 and A001.
    waits = {a.ticket: round(a.wait_s / M, 3) for a in est.applicants}
    late = 10 * chance(40 / 120)
    assert waits == pytest.approx({"A004": 0, "A002": 10, "B001": 0, "A003": 20 + late,
                                   "A001": 30 + late})
    assert est.open_counters == (1, 2)
    wall.set(DAY, "09:10")
    assert queue.call_next(1).ticket == "A004"
    wall.set(DAY, "09:17")
    assert queue.call_next(1).ticket == "A002"
    with store.read() as db:
        est = wait_estimates(db, DAY, wall(), config)
    assert [a.ticket for a in est.applicants] == ["B001", "A003", "A001"]
    assert est.for_service("A").waiting == 2
    # A002 was called 17 minutes after its slot start; the priority lane does not count.
    assert est.for_service("A").lateness_s == pytest.approx(17 * M)
    assert est.for_service("B").lateness_s is None


def test_usual_absences_are_learnt_from_past_days_in_the_store(config, store):
    today, past = "2026-12-03", ("2026-12-01", "2026-12-02")
    wall = Wall(today, "11:20")
    clock = Clock(store, config, wall=wall)
    desk, queue = CheckinDesk(store, config, clock), CallQueue(store, config, clock)

    def open_day(day, codes, hhmm):
        doc = schedule_doc(day, [appointment(c, day, hhmm) for c in codes])
        save_schedule(store, verify_schedule(*sign_doc(doc), config), source="import",
                      etag=None)

    open_day(today, ["TODAY000", "TODAY001", "TODAY002", "TODAY003"], "11:00")
    assert desk.scan("TODAY000").ticket == "A001"
    wall.set(today, "11:25")
    assert [desk.scan(f"TODAY00{i}").ticket for i in (1, 2, 3)] == ["A002", "A003", "A004"]
    wall.set(today, "11:30")
    queue.call_next(1)
    wall.set(today, "11:35")

    def waits():
        with store.read() as db:
            est = wait_estimates(db, today, wall(), config)
        return [round(a.wait_s / M) for a in est.applicants]

    assert waits() == [5, 15, 25]
    # The two days before, counter 1 went to lunch after the 11:50 call and was back at 12:45
    # while people waited.
    for day in past:
        codes = [f"P{day[-1]}{i:06d}" for i in range(16)]
        open_day(day, codes, "10:00")
        wall.set(day, "10:00")
        for code in codes:
            assert desk.scan(code).accepted
        for hhmm in [f"{h}:{m}0" for h in (10, 11) for m in range(6)] + [
                "12:45", "12:55", "13:05", "13:15"]:
            wall.set(day, hhmm)
            assert queue.call_next(1) is not None
    wall.set(today, "11:35")
    assert waits() == [5, 15, 70]       # the third would be called at 12:00: after lunch
    with store.read() as db:
        est = wait_estimates(db, today, wall(), config,
                             replace(EstimateSettings.from_config(config), history_days=0))
    assert [round(a.wait_s / M) for a in est.applicants] == [5, 15, 25]
