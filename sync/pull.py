"""Schedule pulls: which days are wanted, one conditional GET per day, the freshness alert.

Today's schedule is always wanted, tomorrow's once today's office hours are over. Each pull
is a conditional ``GET /v1/schedules/{office}/{day}`` (``ETag``), verified against the
trusted keys before it replaces the cached copy (``appliance.schedule``); a push for a day
pulls that day at once. Nothing here ever deletes a cached schedule: a refused or missing
answer is a fault, and the lobby keeps working from the cache.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from appliance.errors import ScheduleRejected
from appliance.reactor import Timer
from appliance.schedule import is_usable, save_schedule, schedule_info, verify_schedule
from sync.backoff import Backoff
from sync.client import BodyTooLarge, ServerUnreachable, TokenUnavailable
from sync.contact import SyncPart

log = logging.getLogger("antrean.sync")

STREAM_PULL_S = 900.0          # with a live stream, still pull now and then (belt and braces)
AGE_CHECK_EVERY_S = 30.0


class SchedulePuller(SyncPart):
    """The schedule side of one sync service; ``timer`` is when the next round is due."""

    def __init__(self, *parts, backoff: Backoff, **kw):
        super().__init__(*parts, **kw)
        self.backoff = backoff
        self.poll_s = float(self.config.server.poll_seconds)
        self.stream_up = False            # with a live stream, pulls are belt and braces
        self.timer = Timer(self.poll_s, None, 0.0)
        self.age_timer = Timer(AGE_CHECK_EVERY_S, None, 0.0)
        self.pull_now: set[str] = set()   # days a push said changed
        self._closed_days: set[str] = set()

    def wanted_days(self) -> list[str]:
        """Today's schedule, and tomorrow's once today's office hours are over."""
        now = self.clock.now()
        today = now.date().isoformat()
        info = schedule_info(self.store, today, count=False)
        closing = info.opening_close if info is not None else "16:00"
        days = [today]
        if now.strftime("%H:%M") >= closing:
            days.append((now.date() + timedelta(days=1)).isoformat())
        return days

    def pull_day(self, day: str) -> tuple[str, float | None]:
        """Pull one day; returns (outcome, retry_after) with outcome one of
        stored, unchanged, closed, refused, retry, unauthorized, failed."""
        info = schedule_info(self.store, day)
        office = self.config.office.id
        try:
            ans = self.client.get_schedule(office, day, info.etag if info else None)
        except TokenUnavailable as e:
            self.contact.unauthorized(str(e))
            return "unauthorized", None
        except ServerUnreachable as e:
            self.contact.unreachable(str(e))
            return "retry", None
        except BodyTooLarge as e:
            self.contact.ok()
            self.faults.set(f"schedule {day}", f"schedule for {day} refused: {e}; "
                            "keeping the cached copy")
            return "refused", None
        status = ans.status
        if status in (200, 304) or (status == 404 and ans.is_json()):
            self.faults.clear("endpoint GET schedule", "the schedule endpoint answers again")
        if status == 304:
            self.contact.ok()
            self.server_clock.note_date(ans)
            self.faults.clear(f"schedule {day}")
            return "unchanged", None
        if status == 200:
            self.contact.ok()
            try:
                sched = verify_schedule(ans.body, ans.header("X-Antrean-Signature"),
                                        self.config, expect_date=day)
                self.server_clock.note_date(ans)
                stored = save_schedule(self.store, sched, source="pull",
                                       etag=ans.header("ETag"))
            except ScheduleRejected as e:
                self.faults.set(f"schedule {day}", f"schedule for {day} refused: {e}; "
                                "keeping the cached copy")
                return "refused", None
            self.faults.clear(f"schedule {day}", f"schedule for {day} accepted again")
            self._closed_days.discard(day)
            if stored:
                log.info("schedule for %s version %d stored (%d appointments)", day,
                         sched.version, len(sched.appointments))
            return "stored", None
        if status == 404 and ans.is_json():   # the contract's answer: no schedule that day
            self.contact.ok()
            self.faults.clear(f"schedule {day}")
            if day not in self._closed_days:
                self._closed_days.add(day)
                log.info("no schedule for %s: the server says the office is closed", day)
            return "closed", None
        if status == 401:
            self.contact.unauthorized()
            return "unauthorized", None
        if ans.wrong_endpoint:    # incl. a 404 that is an HTML or text page, not the contract's
            self.contact.misrouted("GET schedule", status, "keeping the cached schedules")
            return "failed", None
        if ans.retryable:
            self.contact.unreachable(f"GET schedule {day} answered HTTP {status}")
            return "retry", ans.retry_after()
        self.contact.ok()
        self.faults.set(f"schedule {day}", f"GET schedule for {day} answered HTTP {status}; "
                        "keeping the cached copy")
        return "failed", None

    def pull_round(self, days: list[str] | None = None) -> bool:
        """Pull each wanted day (or ``days``); True when none was refused or left to retry.

        When an answer's ``Date`` corrects the clock so that the wanted days change (an
        RTC-less boot: the first answer moves the lobby from 1970 to today), the corrected
        days are pulled in the same round.
        """
        follow = days is None
        days = days or self.wanted_days()
        ok, delay, done, stop = True, self.poll_s, set(), False
        while not stop:
            for day in days:
                if day in done:
                    continue
                done.add(day)
                self.keep_alive()
                outcome, retry_after = self.pull_day(day)
                if outcome in ("stored", "unchanged", "closed"):
                    continue
                ok = False
                if outcome == "retry":
                    delay = self.backoff.failed(retry_after)
                    stop = True
                    break
                if outcome == "unauthorized":
                    stop = True
                    break
            now_wanted = self.wanted_days() if follow else days
            if stop or set(now_wanted) <= done:
                break
            log.info("the central server's time changed the office day to %s; pulling its "
                     "schedule in the same round", now_wanted[0])
            days = now_wanted
        if ok:
            self.backoff.succeeded()
            if self.stream_up:
                delay = STREAM_PULL_S
        if days == self.wanted_days():  # a push for one day must not clear another's alert
            self.faults.clear_prefix("schedule ", {f"schedule {d}" for d in days})
        self.timer.after(delay)
        self.check_schedule_age()
        return ok

    def check_schedule_age(self) -> None:
        today = self.clock.office_day()
        info = schedule_info(self.store, today)
        max_h = self.config.server.max_schedule_age_hours
        if info is None:
            self.faults.set("schedule age", f"no schedule for today ({today}): plain booking "
                            "codes get no_schedule, signed tickets still work")
        elif not is_usable(info.generated_at, self.clock.time(), max_h):
            hours = (self.clock.time() - info.generated_at) / 3600
            self.faults.set("schedule age", f"today's schedule is {hours:.0f} h old (limit "
                            f"{max_h} h): plain booking codes get no_schedule")
        else:
            self.faults.clear("schedule age", f"today's schedule ({today}) is current")
        self.age_timer.after(AGE_CHECK_EVERY_S)
