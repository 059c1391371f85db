"""Waiting-time estimates and lateness: pure functions over the day's rows, no store.

An applicant who travelled four hours wants to know when they will be called. The estimate
replays the near future of the real queue: every counter, when it becomes free, calls the
first applicant present (in the queue's own order: priority lane, slot, check-in) among the
services it serves, and is busy for as long as that counter has lately taken per applicant of
that service. One model covers what a per-service division cannot: counters serving several
services share their capacity, the priority lane and earlier slots go first, a slow or absent
counter counts for what it is, and bookings that have not checked in yet but will go ahead
when they come (an earlier slot, the priority lane) are expected with their chance to come.

Service times are learnt from the time between a counter's consecutive calls today, only
from intervals during which somebody it could have called waited the whole time (a counter
with nobody to call is idle, not slow) and no longer than ``idle_minutes`` (a break); an
interval far above the typical one (an errand) is left out of the mean. Few observations are
pulled towards the configured minutes, which are all there is at the start of the day.

A counter that leaves people waiting much longer than its service time is away. When it is
usually away then (lunch, prayers: learnt per quarter hour from the past days in the store) it
is expected back when it usually is, and a usual absence still ahead is waited out in the
replay too; an absence no past day explains may be the end of its day, so it is expected back
only after three times as long again as it has lasted. A service whose counters are all away
gets them back within ``idle_minutes`` (or their usual return), so a lobby in which nothing
moves keeps a bounded estimate. Measured against simulated days in ``bench/wait_estimate.py``.

Example::

    >>> s = EstimateSettings(default_minutes=10.0)
    >>> w = [Waiting("A001", "A", False, 0.0, 0.0), Waiting("A002", "A", False, 0.0, 1.0)]
    >>> est = estimate_lobby(w, [], [CounterSpec(1, None)], now=60.0, settings=s)
    >>> [round(a.wait_s / 60) for a in est.applicants]
    [0, 10]
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from appliance.call_queue import call_order_key

MIN_DURATION_S = 30.0      # nobody is served faster than this, whatever the data says
PRIOR_WEIGHT = 2.0         # the default minutes count as this many observed intervals
OUTLIER_FACTOR = 3.0       # an interval this many times the median is not a service time
CLOSED_AFTER = 2.5         # silent this many service times while people wait: closed
OVERRUN_SHARE = 0.25       # an overrunning service is expected to need this share more
SHOW_PRIOR = 0.9           # share of bookings that come, until the day has shown its own
SHOW_PRIOR_WEIGHT = 10.0   # ... counted as this many settled bookings
MIN_OFFSETS = 15           # check-ins of settled slots before their earliness is trusted
QUARTER_S = 900.0          # usual absences are learnt per quarter hour of the day
USUALLY_AWAY = 0.5         # ... and usual when a counter was away this share of it
FIRST_CALL_WAIT_S = 300.0  # a first call counts as the start when people waited this long
UNUSUAL_AWAY = 3.0         # an unexplained absence: back after this many times its length
STAND_IN_COUNTER = 0       # stands for "whoever serves it" when no counter lists a service


@dataclass(frozen=True)
class EstimateSettings:
    """The ``[estimate]`` config section as plain values (see docs/config.md)."""

    default_minutes: float = 10.0
    minutes: Mapping[str, float] = field(default_factory=dict)
    recent_calls: int = 10
    idle_minutes: float = 30.0
    lateness_window_minutes: float = 60.0
    late_notice_minutes: float = 15.0
    history_days: int = 10
    early_checkin_minutes: float = 60.0    # [checkin]: when bookings may check in
    late_checkin_minutes: float = 30.0

    @classmethod
    def from_config(cls, config) -> EstimateSettings:
        est = config.estimate
        return cls(default_minutes=float(est.default_minutes), minutes=dict(est.minutes),
                   recent_calls=est.recent_calls, idle_minutes=float(est.idle_minutes),
                   lateness_window_minutes=float(est.lateness_window_minutes),
                   late_notice_minutes=float(est.late_notice_minutes),
                   history_days=est.history_days,
                   early_checkin_minutes=float(config.checkin.early_minutes),
                   late_checkin_minutes=float(config.checkin.late_minutes))

    def default_s(self, service: str) -> float:
        return 60.0 * float(self.minutes.get(service, self.default_minutes))


@dataclass(frozen=True)
class Waiting:
    """A checked-in applicant not yet called; a sequence of these is in call order."""

    ticket: str
    service: str
    priority: bool
    slot_start: float
    checked_in_at: float


@dataclass(frozen=True)
class CounterCall:
    """One call (not a recall or no-show) today. ``slot_start`` and ``checked_in_at`` are
    None for a ticket the appliance never checked in (a call pushed by the server)."""

    counter: int
    ticket: str
    service: str
    at: float
    slot_start: float | None = None
    checked_in_at: float | None = None
    priority: bool = False


@dataclass(frozen=True)
class CounterSpec:
    id: int
    services: tuple[str, ...] | None  # None: every service

    def serves(self, service: str) -> bool:
        return self.services is None or service in self.services


@dataclass(frozen=True)
class ApplicantEstimate:
    ticket: str
    service: str
    ahead: int          # waiting applicants of the same service before this one
    wait_s: float       # from now until the expected call, never negative
    call_at: float


@dataclass(frozen=True)
class ServiceEstimate:
    service: str
    waiting: int
    next_wait_s: float          # for someone joining the end of this service's queue now
    lateness_s: float | None    # median call time minus slot start lately; None: no calls


@dataclass(frozen=True)
class LobbyEstimate:
    at: float
    applicants: tuple[ApplicantEstimate, ...]     # in call order
    services: tuple[ServiceEstimate, ...]
    open_counters: tuple[int, ...]

    def for_ticket(self, ticket: str) -> ApplicantEstimate | None:
        for a in self.applicants:
            if a.ticket == ticket:
                return a
        return None

    def for_service(self, service: str) -> ServiceEstimate | None:
        for s in self.services:
            if s.service == service:
                return s
        return None


# Service times ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """The time a counter spent between one call and its next, charged to the first call's
    service."""

    counter: int
    service: str
    start: float
    seconds: float


def _waiting_spans(calls: Sequence[CounterCall], waiting: Sequence[Waiting]
                   ) -> dict[str, list[tuple[float, float]]]:
    """Per service, the (checked in, first called) span of every applicant seen today."""
    first: dict[str, CounterCall] = {}
    for c in calls:
        if c.checked_in_at is not None and (c.ticket not in first or c.at < first[c.ticket].at):
            first[c.ticket] = c
    spans: dict[str, list[tuple[float, float]]] = {}
    for c in first.values():
        spans.setdefault(c.service, []).append((c.checked_in_at, c.at))
    for w in waiting:
        spans.setdefault(w.service, []).append((w.checked_in_at, float("inf")))
    return spans


class _Presence:
    """When somebody a counter could call was waiting, from the (check-in, call) spans of
    the services it serves; answers in logarithmic time for the day's many intervals."""

    def __init__(self, spans: Iterable[tuple[float, float]]):
        ordered = sorted(spans)
        self.starts = [lo for lo, _ in ordered]
        self.reach = list(itertools.accumulate((hi for _, hi in ordered), max))

    def _reach(self, count: int) -> float:
        return self.reach[count - 1] if count else float("-inf")

    def covers(self, start: float, end: float) -> bool:
        """Whether somebody was waiting at every moment of [start, end)."""
        reach = self._reach(bisect.bisect_right(self.starts, start))
        if reach <= start:
            return False
        while reach < end:
            further = self._reach(bisect.bisect_right(self.starts, reach))
            if further <= reach:
                return False
            reach = further
        return True

    def waiting_at(self, t: float) -> bool:
        """Whether somebody who came before ``t`` was still waiting at ``t``."""
        return self._reach(bisect.bisect_left(self.starts, t)) > t


def _presence(spans: Mapping[str, list[tuple[float, float]]], spec: CounterSpec) -> _Presence:
    return _Presence(s for service, items in spans.items() if spec.serves(service)
                     for s in items)


def _by_counter(calls: Sequence[CounterCall]) -> dict[int, list[CounterCall]]:
    out: dict[int, list[CounterCall]] = {}
    for c in sorted(calls, key=lambda c: c.at):
        out.setdefault(c.counter, []).append(c)
    return out


def busy_intervals(calls: Sequence[CounterCall], waiting: Sequence[Waiting],
                   counters: Mapping[int, CounterSpec], settings: EstimateSettings
                   ) -> list[Interval]:
    """The day's intervals between consecutive calls at a counter that measure its service.

    Kept only if someone the counter could have called waited through the whole interval
    (otherwise it includes idle time) and it is not longer than ``idle_minutes`` (a break).
    Oldest first.
    """
    spans = _waiting_spans(calls, waiting)
    idle_s = settings.idle_minutes * 60.0
    out: list[Interval] = []
    for cid, seq in _by_counter(calls).items():
        present = _presence(spans, counters.get(cid, CounterSpec(cid, None)))
        for a, b in zip(seq, seq[1:], strict=False):
            seconds = b.at - a.at
            if seconds <= idle_s and present.covers(a.at, b.at):
                out.append(Interval(cid, a.service, a.at, seconds))
    out.sort(key=lambda i: i.start)
    return out


def robust_mean(values: Sequence[float]) -> float:
    """The mean of ``values`` without those far above their median (an errand, a phone call).

    A mean, not a median: a queue's wait is a sum of many service times, and service times
    are skewed, so the median would promise too little over a long queue.
    """
    typical = statistics.median(values)
    return statistics.fmean(v for v in values if v <= OUTLIER_FACTOR * typical)


def _shrunk(observed: list[float], prior: float) -> float:
    """The robust mean of ``observed`` pulled towards ``prior`` while there are few."""
    if not observed:
        return prior
    n = len(observed)
    return (n * robust_mean(observed) + PRIOR_WEIGHT * prior) / (n + PRIOR_WEIGHT)


@dataclass(frozen=True)
class Paces:
    """Typical seconds per applicant of each service, and each counter's speed factor."""

    service_s: Mapping[str, float]
    counter_factor: Mapping[int, float]
    settings: EstimateSettings

    def seconds(self, counter: int, service: str) -> float:
        base = self.service_s.get(service) or self.settings.default_s(service)
        value = base * self.counter_factor.get(counter, 1.0)
        return min(max(value, MIN_DURATION_S), self.settings.idle_minutes * 60.0)

    def remaining(self, counter: int, service: str, elapsed: float) -> float:
        """How much longer a service that has lasted ``elapsed`` seconds should take: the
        expected time left, or a share of the expected time when it is overrunning."""
        expected = self.seconds(counter, service)
        return max(expected - elapsed, OVERRUN_SHARE * expected)


def paces(intervals: Sequence[Interval], services: Iterable[str],
          settings: EstimateSettings) -> Paces:
    """Robust service times from the latest ``recent_calls`` busy intervals of each service
    (any counter) and of each counter (any service), shrunk towards the defaults."""
    recent = settings.recent_calls
    per_service: dict[str, list[float]] = {}
    for i in intervals:
        per_service.setdefault(i.service, []).append(i.seconds)
    service_s = {s: _shrunk(per_service.get(s, [])[-recent:], settings.default_s(s))
                 for s in set(services) | set(per_service)}
    ratios: dict[int, list[float]] = {}
    for i in intervals:
        ratios.setdefault(i.counter, []).append(i.seconds / service_s[i.service])
    factor = {c: _shrunk(r[-recent:], 1.0) for c, r in ratios.items()}
    return Paces(service_s, factor, settings)


# Usual absences, from past days -------------------------------------------------------------

@dataclass(frozen=True)
class PastDay:
    """An earlier office day: its midnight (office time, epoch seconds) and its calls."""

    midnight: float
    calls: tuple[CounterCall, ...]


def _union(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _clip(pieces: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    return [(max(a, lo), min(b, hi)) for a, b in pieces if b > lo and a < hi]


def _spread(pieces: Iterable[tuple[float, float]], midnight: float, into: list[float]) -> None:
    """Add the seconds of ``pieces`` to the quarter hours of the day they fall in."""
    for a, b in pieces:
        while a < b:
            q = int((a - midnight) // QUARTER_S)
            end = min(b, midnight + (q + 1) * QUARTER_S)
            if 0 <= q < len(into):
                into[q] += end - a
            a = end


@dataclass(frozen=True)
class UsualAbsences:
    """Per counter, the share of each quarter hour of the day it was away on past days while
    people it serves waited (lunch, prayers, a counter that closes early), and when it
    usually makes its first call (seconds after midnight)."""

    share: Mapping[int, Sequence[float]] = field(default_factory=dict)
    first_call: Mapping[int, float] = field(default_factory=dict)

    def starts(self, counter: int, midnight: float, start: float) -> float:
        """When a counter that has not called yet today is expected to: not before ``start``
        (now, or the opening), nor before the time of day it usually begins."""
        usual = self.first_call.get(counter)
        return start if usual is None else max(start, midnight + usual)

    def absence(self, counter: int, midnight: float, t: float) -> tuple[float, float] | None:
        """The usual absence around ``t`` as (start, end); None if the counter is usually
        there then, or usually stays away until the end of the day (then nobody knows)."""
        shares = self.share.get(counter)
        q = int((t - midnight) // QUARTER_S)
        if shares is None or not 0 <= q < len(shares) or shares[q] < USUALLY_AWAY:
            return None
        first, last = q, q
        while first > 0 and shares[first - 1] >= USUALLY_AWAY:
            first -= 1
        while last < len(shares) and shares[last] >= USUALLY_AWAY:
            last += 1
        if last == len(shares):
            return None
        return midnight + first * QUARTER_S, midnight + last * QUARTER_S

    def away_until(self, counter: int, midnight: float, t: float) -> float:
        """When the counter's usual absence around ``t`` ends; ``t`` if there is none."""
        run = self.absence(counter, midnight, t)
        return t if run is None else run[1]


def usual_absences(past: Sequence[PastDay], counters: Mapping[int, CounterSpec],
                   settings: EstimateSettings) -> UsualAbsences:
    """When each counter is usually away, from earlier days' calls.

    On each day a counter worked, it counts as away from the end of its expected service
    time until its next call whenever that gap was longer than CLOSED_AFTER service times,
    and after its last call, but only while people it serves were waiting; that time over
    all waiting time, per quarter hour of the day, is the share. Its usual start is the
    median time of its first call, on days people were already waiting for it.
    """
    quarters = int(24 * 3600 // QUARTER_S)
    away: dict[int, list[float]] = {}
    seen: dict[int, list[float]] = {}
    first: dict[int, list[float]] = {}
    for day in past:
        if not day.calls:
            continue
        spans = _waiting_spans(day.calls, ())
        specs = dict(counters)
        for c in day.calls:
            specs.setdefault(c.counter, CounterSpec(c.counter, None))
        pace = paces(busy_intervals(day.calls, (), specs, settings), spans, settings)
        opened = min(c.at for c in day.calls)
        for cid, seq in _by_counter(day.calls).items():
            if _presence(spans, specs[cid]).waiting_at(seq[0].at - FIRST_CALL_WAIT_S):
                first.setdefault(cid, []).append(seq[0].at - day.midnight)   # not idle
            waited = _union(s for svc, items in spans.items() if specs[cid].serves(svc)
                            for s in items)
            waited = _clip(waited, opened, waited[-1][1]) if waited else []
            if not waited:
                continue
            gaps = [(a.at + pace.seconds(cid, a.service), b.at)
                    for a, b in zip(seq, seq[1:], strict=False)
                    if b.at - a.at > CLOSED_AFTER * pace.seconds(cid, a.service)]
            gaps.append((seq[-1].at + pace.seconds(cid, seq[-1].service), waited[-1][1]))
            if seq[0].at - opened > settings.idle_minutes * 60.0:
                gaps.append((opened, seq[0].at))
            _spread(waited, day.midnight, seen.setdefault(cid, [0.0] * quarters))
            for lo, hi in gaps:
                _spread(_clip(waited, lo, hi), day.midnight,
                        away.setdefault(cid, [0.0] * quarters))
    return UsualAbsences({cid: tuple(a / (seen[cid][q] + QUARTER_S / 3)
                                     for q, a in enumerate(shares))
                          for cid, shares in away.items()},
                         {cid: statistics.median(times) for cid, times in first.items()})


# Counters ---------------------------------------------------------------------------------

def pickup_delays(calls: Sequence[CounterCall], waiting: Sequence[Waiting],
                  counters: Mapping[int, CounterSpec], paces: Paces) -> list[float]:
    """How long idle counters took to call someone who arrived: one sample per recent call
    to an applicant who came after the counter should have finished its previous one, when
    nobody else it serves was waiting."""
    spans = _waiting_spans(calls, waiting)
    out: list[float] = []
    for cid, seq in _by_counter(calls).items():
        present = _presence(spans, counters.get(cid, CounterSpec(cid, None)))
        pairs = list(zip(seq, seq[1:], strict=False))[-paces.settings.recent_calls:]
        for prev, call in pairs:
            came = call.checked_in_at
            if came is None or came < prev.at + paces.seconds(cid, prev.service):
                continue
            if not present.waiting_at(came):
                out.append(call.at - came)
    return out


def _free_at(last: CounterCall, paces: Paces, waiting_since: float | None, now: float,
             start: float, pickup: float) -> float:
    """When an open counter is expected to call next.

    ``expected`` is how long its current applicant should take, ``waiting_since`` the
    check-in of the longest-waiting applicant it could call. If that applicant came after
    the counter should have finished, the counter is idle and calls them after its usual
    ``pickup`` delay; if they were already waiting, a counter past its expected time is
    overrunning and needs a bit more.
    """
    finish = last.at + paces.seconds(last.counter, last.service)
    if waiting_since is None or waiting_since >= finish:
        return max(start, finish, (now if waiting_since is None else waiting_since) + pickup)
    return max(start, now + paces.remaining(last.counter, last.service, now - last.at))


@dataclass(frozen=True)
class CounterOutlook:
    """When a counter is expected to call next, and whether it is serving now."""

    counter: int
    open: bool
    free_at: float


def counter_outlook(calls: Sequence[CounterCall], waiting: Sequence[Waiting],
                    counters: Mapping[int, CounterSpec], now: float, settings: EstimateSettings,
                    paces: Paces, opens_at: float | None = None,
                    usual: UsualAbsences = UsualAbsences(), midnight: float = 0.0
                    ) -> dict[int, CounterOutlook]:
    """Every known counter: open (and when it calls next) or away (and when it is back).

    A counter is away (a break, or gone for the day) once people it could call have waited
    without it calling anyone for CLOSED_AFTER times what its current applicant should take,
    or ``idle_minutes`` if that is shorter. If it is usually away now, and left about when it
    usually does, it is back when it usually is; otherwise nobody can tell a break from the
    end of its day, and it is expected back after UNUSUAL_AWAY times as long as it has been
    away (at least ``idle_minutes``): a counter closed since morning barely counts. A counter
    that has not called yet today is expected at the opening, or when it usually starts.
    """
    start = now if opens_at is None else max(now, opens_at)
    idle_s = settings.idle_minutes * 60.0
    pickup = min(_shrunk(pickup_delays(calls, waiting, counters, paces), 0.0), idle_s)
    latest: dict[int, CounterCall] = {}
    for c in calls:
        if c.counter not in latest or c.at >= latest[c.counter].at:
            latest[c.counter] = c
    if not latest:
        return {cid: CounterOutlook(cid, True, usual.starts(cid, midnight, start))
                for cid in counters}
    day_start = opens_at if opens_at is not None else min(c.at for c in latest.values())
    out = {}
    for cid, spec in counters.items():
        last = latest.get(cid)
        pending = [w.checked_in_at for w in waiting if spec.serves(w.service)]
        expected = paces.seconds(cid, last.service) if last is not None else None
        silent_since = max(last.at if last else day_start, min(pending, default=now))
        patience = idle_s if expected is None else min(idle_s, CLOSED_AFTER * expected)
        away = now - silent_since
        if pending and away > patience:
            run = usual.absence(cid, midnight, now)
            if run is not None and silent_since + (expected or 0.0) >= run[0] - QUARTER_S:
                back = run[1]                # its usual pause, begun about when it usually does
            else:
                back = now + UNUSUAL_AWAY * max(away, idle_s)
            out[cid] = CounterOutlook(cid, False, back)
        elif last is None:
            out[cid] = CounterOutlook(cid, True, usual.starts(cid, midnight, start))
        else:
            waiting_since = min(pending, default=None)
            out[cid] = CounterOutlook(
                cid, True, _free_at(last, paces, waiting_since, now, start, pickup))
    return out


# Who else will come ------------------------------------------------------------------------

@dataclass(frozen=True)
class Booking:
    """One booked appointment of the day, and whether it has checked in yet."""

    service: str
    priority: bool
    slot_start: float
    slot_end: float
    checked_in: bool


@dataclass(frozen=True)
class Expected:
    """A booking that may still check in: when, and how likely (its expected share of a
    counter's time)."""

    service: str
    priority: bool
    slot_start: float
    at: float
    weight: float


def expected_arrivals(bookings: Sequence[Booking], checked_in: Sequence[tuple[float, float]],
                      now: float, settings: EstimateSettings) -> list[Expected]:
    """Bookings not checked in whose window is still open, with their chance to come.

    Someone with an earlier slot or in the priority lane who checks in later still goes
    first, so they belong in the forecast. ``checked_in`` holds (slot start, check-in time)
    of today's check-ins. How many come and how early is learnt from slots whose check-in
    window has closed; before there are enough, SHOW_PRIOR and arrivals spread evenly over
    the check-in window stand in.
    """
    late_s = settings.late_checkin_minutes * 60.0
    early_s = settings.early_checkin_minutes * 60.0
    settled = [b for b in bookings if b.slot_end + late_s < now]
    shown = sum(b.checked_in for b in settled)
    show = (shown + SHOW_PRIOR_WEIGHT * SHOW_PRIOR) / (len(settled) + SHOW_PRIOR_WEIGHT)
    settled_starts = {b.slot_start for b in settled}
    offsets = sorted(at - start for start, at in checked_in if start in settled_starts)
    learnt = len(offsets) >= MIN_OFFSETS
    out = []
    for b in bookings:
        if b.checked_in or b.slot_end + late_s < now:
            continue
        late = now - b.slot_start          # how far into their own window they already are
        if learnt:
            later = offsets[bisect.bisect_right(offsets, late):]
            still = len(later) / len(offsets)
            at = b.slot_start + later[len(later) // 2] if later else now
        else:                   # as if arrivals spread evenly over the check-in window
            opens, closes = b.slot_start - early_s, b.slot_end + late_s
            still = min(1.0, (closes - now) / (closes - opens))
            at = (max(now, opens) + closes) / 2
        weight = show * still / (1.0 - show + show * still) if still > 0 else 0.0
        if weight > 0:
            out.append(Expected(b.service, b.priority, b.slot_start, max(now, at), weight))
    return out


# The estimate -----------------------------------------------------------------------------

@dataclass(order=True)
class _Item:
    rank: tuple
    service: str = field(compare=False)
    weight: float = field(compare=False)
    at: float = field(compare=False)
    slot: int = field(compare=False)       # index into the call times; -1: expected only


def _project(items: list[_Item], free: dict[int, float], specs: Mapping[int, CounterSpec],
             paces: Paces, slots: int, usual: UsualAbsences = UsualAbsences(),
             midnight: float = 0.0) -> list[float]:
    """Replay the queue: each counter, when free, calls the first applicant present (in call
    order) among the services it serves, and is busy for that applicant's weight times its
    pace; with nobody present it waits for the next expected arrival. Returns the call time
    of every item with a slot (inf: no counter ever serves it)."""
    present: dict[str, list[_Item]] = {}
    coming: dict[str, list[_Item]] = {}
    for item in sorted(items, key=lambda i: i.at, reverse=True):
        coming.setdefault(item.service, []).append(item)   # latest first: pop() is next
        present.setdefault(item.service, [])
    served = {cid: [s for s in coming if specs[cid].serves(s)] for cid in free}
    call_at = [float("inf")] * slots
    # Stop once everyone with a slot that some counter serves has been called.
    reachable = {s for cid in free for s in served[cid]}
    left = sum(1 for item in items if item.slot >= 0 and item.service in reachable)
    heap = [(t, cid) for cid, t in free.items()]
    heapq.heapify(heap)
    while heap and left:
        t, cid = heapq.heappop(heap)
        back = usual.away_until(cid, midnight, t)
        if back > t:
            heapq.heappush(heap, (back, cid))
            continue
        best = None
        next_arrival = float("inf")
        for s in served[cid]:
            queue, later = present[s], coming[s]
            while later and later[-1].at <= t:
                heapq.heappush(queue, later.pop())
            if queue and (best is None or queue[0] < best):
                best = queue[0]
            if later:
                next_arrival = min(next_arrival, later[-1].at)
        if best is None:
            if next_arrival < float("inf"):
                heapq.heappush(heap, (next_arrival, cid))
            continue
        heapq.heappop(present[best.service])
        if best.slot >= 0:
            call_at[best.slot] = t
            left -= 1
        heapq.heappush(heap, (t + best.weight * paces.seconds(cid, best.service), cid))
    return call_at


def lateness(calls: Sequence[CounterCall], now: float, settings: EstimateSettings
             ) -> dict[str, float | None]:
    """Per service, how far behind their slot start people are being called right now.

    The median of (call time - slot start) over the calls of the last
    ``lateness_window_minutes``; 0 when that is not positive (on time or ahead), None for a
    service with no such calls. The priority lane is called whatever its slot, and tickets
    the appliance never checked in have no slot: their calls do not count.
    """
    since = now - settings.lateness_window_minutes * 60.0
    delays: dict[str, list[float]] = {}
    for c in calls:
        if c.slot_start is not None and not c.priority and since <= c.at <= now:
            delays.setdefault(c.service, []).append(c.at - c.slot_start)
    return {s: max(0.0, statistics.median(d)) for s, d in delays.items()}


def estimate_lobby(waiting: Sequence[Waiting], calls: Sequence[CounterCall],
                   counters: Sequence[CounterSpec], now: float, settings: EstimateSettings,
                   *, bookings: Sequence[Booking] = (), services: Sequence[str] = (),
                   opens_at: float | None = None, usual: UsualAbsences = UsualAbsences(),
                   midnight: float = 0.0) -> LobbyEstimate:
    """Every waiting applicant's expected call, and per service its queue and lateness.

    ``waiting`` is in call order (as ``appliance.call_queue.waiting`` returns it), ``calls`` are
    today's calls, ``counters`` the schedule's (empty: counters are known only from their
    calls, and with none yet one counter serving everything is assumed), ``bookings`` the
    day's booked appointments, ``services`` the schedule's service codes and ``opens_at`` its
    opening time: nobody is called before it. A service's ``next_wait_s`` is for someone
    arriving now for a slot starting now, outside the priority lane.
    """
    specs = {c.id: c for c in counters}
    for c in calls:
        specs.setdefault(c.counter, CounterSpec(c.counter, None))
    if not specs:
        specs[1] = CounterSpec(1, None)
    codes = list(dict.fromkeys([*services, *(w.service for w in waiting),
                                *(b.service for b in bookings)]))
    intervals = busy_intervals(calls, waiting, specs, settings)
    pace = paces(intervals, codes, settings)
    # A service no counter lists (only the officers' software calls it) gets a counter of
    # its own, so that an estimate always exists.
    orphans = tuple(code for code in codes if not any(c.serves(code) for c in specs.values()))
    if orphans:
        specs[STAND_IN_COUNTER] = CounterSpec(STAND_IN_COUNTER, orphans)
    outlook = counter_outlook(calls, waiting, specs, now, settings, pace, opens_at, usual,
                              midnight)
    free = {cid: o.free_at for cid, o in outlook.items()}
    # A service whose counters are all away still gets served: they are expected back within
    # ``idle_minutes`` or at the end of their usual absence, so that a lobby where nothing
    # moves keeps a bounded estimate.
    for code in codes:
        serving = [cid for cid in outlook if specs[cid].serves(code)]
        if not any(outlook[cid].open for cid in serving):
            for cid in serving:
                back = max(now + settings.idle_minutes * 60.0,
                           usual.away_until(cid, midnight, now))
                free[cid] = min(free[cid], back)

    items = [_Item((call_order_key(w.priority, w.slot_start, w.checked_in_at), 0, i),
                   w.service, 1.0, now, i) for i, w in enumerate(waiting)]
    checked = [(w.slot_start, w.checked_in_at) for w in waiting]
    checked += [(c.slot_start, c.checked_in_at) for c in calls if c.checked_in_at is not None]
    for j, e in enumerate(expected_arrivals(bookings, checked, now, settings)):
        items.append(_Item((call_order_key(e.priority, e.slot_start, e.at), 1, j),
                           e.service, e.weight, e.at, -1))
    for j, code in enumerate(codes):   # the on-time newcomer: takes no counter time
        items.append(_Item((call_order_key(False, now, now), 2, j), code, 0.0, now,
                           len(waiting) + j))
    call_at = _project(items, free, specs, pace, len(waiting) + len(codes), usual, midnight)

    seen: dict[str, int] = {}
    applicants = []
    for w, at in zip(waiting, call_at, strict=False):
        ahead = seen.get(w.service, 0)
        seen[w.service] = ahead + 1
        applicants.append(ApplicantEstimate(w.ticket, w.service, ahead, max(0.0, at - now), at))
    late = lateness(calls, now, settings)
    per_service = tuple(
        ServiceEstimate(code, seen.get(code, 0), max(0.0, call_at[len(waiting) + j] - now),
                        late.get(code))
        for j, code in enumerate(codes))
    return LobbyEstimate(now, tuple(applicants), per_service,
                         tuple(sorted(cid for cid, o in outlook.items()
                                      if o.open and cid != STAND_IN_COUNTER)))
