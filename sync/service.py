"""``antrean sync``: schedules in, events out, pushes and heartbeats, whatever the network does.

The main thread owns the store: it pulls schedules, drains the outbox, sends heartbeats and
acts on pushes. The push stream lives in its own thread with its own HTTP session and hands
what it hears to the main thread through a queue, so no SQLite connection is shared between
threads. Nothing here can stop a check-in: the lobby works from the cache, events wait in the
outbox, and every fault becomes a visible state (logged once, shown in ``antrean status``).

Example::

    $ antrean --config /etc/antrean/antrean.toml sync --once   # exit 0 if pull and upload worked
"""

from __future__ import annotations

import json
import logging
import queue
import re
import signal
import threading
import time
from datetime import date as Date
from datetime import datetime, timedelta

import requests

from appliance import BUILD_DATE, __version__
from appliance.clock import (
    MAX_SKEW_S,
    Clock,
    boot_id,
    boottime,
    record_server_date,
    system_clock_synced,
)
from appliance.display_health import heartbeat_display
from appliance.errors import ScheduleRejected
from appliance.lobby_view import read_lobby
from appliance.notify import SdNotify
from appliance.outbox import counts, mark_dead, mark_sent, note_attempt, pending_batch
from appliance.queue import Queue
from appliance.readers import heartbeat_scanner
from appliance.schedule import is_usable, save_schedule, schedule_info, verify_schedule
from appliance.store import Store
from sync.backoff import Backoff
from sync.client import (
    BodyTooLarge,
    CentralClient,
    ServerUnreachable,
    TokenUnavailable,
    request_deadline,
    stream_chunks,
)
from sync.fault_board import FaultBoard
from sync.server_time import ServerTimeFilter
from sync.sse import SseEvent, SseParser, valid_event_id

log = logging.getLogger("antrean.sync")

BATCH_SIZE = 100
STREAM_SILENCE_S = 45.0        # the server comments every 15 s; three missed means dead
STREAM_PULL_S = 900.0          # with a live stream, still pull now and then (belt and braces)
LAST_OK_EVERY_S = 60.0         # sync.last_ok is rewritten at most this often
CLOCK_RECORD_DRIFT_S = 2.0     # re-record the clock offset when it moves more than this
CLOCK_RECORD_EVERY_S = 3600.0
AGE_CHECK_EVERY_S = 30.0
LOOP_TICK_S = 0.5
INTERNAL_RETRY_S = 5.0         # first wait after a round failed for a reason nobody foresaw
TICKET_RE = re.compile(r"^[A-Z]{1,3}[0-9]{3,6}$")
_BUILD_EPOCH = datetime.fromisoformat(BUILD_DATE + "T00:00:00+00:00").timestamp()


def _epoch(text) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None or not 2000 <= when.year <= 2100:  # a sane instant, or none
        return None
    return when.timestamp()


class PushStream(threading.Thread):
    """Holds the push stream open and forwards what it hears; never touches the store.

    Nothing may end this thread but ``stop``: whatever goes wrong (a bug, a bizarre answer,
    an exhausted backoff) becomes a stream-down message for the main thread, a wait and a
    new connection. Problems are logged once each, not once per retry.
    """

    def __init__(self, config, inbox: queue.SimpleQueue, last_id: str | None,
                 stop: threading.Event, *, silence_s: float, backoff: Backoff):
        super().__init__(name="sync-stream", daemon=True)
        self.config = config
        self.inbox = inbox
        self.last_id = last_id if valid_event_id(last_id) else None
        self.stop_event = stop
        self.silence_s = silence_s
        self.backoff = backoff
        self._guard = None                     # unblocks the open stream's read (interrupt)
        self._problem: str | None = None      # the unexpected error last logged
        self._bad_id_logged = False

    def run(self) -> None:
        client: CentralClient | None = None
        try:
            while not self.stop_event.is_set():
                try:
                    if client is None:
                        client = CentralClient(self.config)
                    delay = self._hold(client)
                except BaseException as e:  # noqa: BLE001 - pushes must never end for good
                    delay = self._unexpected(e)
                self.stop_event.wait(delay)
        finally:
            if client is not None:
                client.close()

    def _unexpected(self, e: BaseException) -> float:
        """Report an error no branch expected (once per distinct problem); the wait."""
        problem = f"{type(e).__name__}: {e}"[:300]
        if problem != self._problem:
            self._problem = problem
            log.error("push stream: unexpected error (%s); reconnecting with backoff",
                      problem, exc_info=e)
        if self.stop_event.is_set():
            return 0.0
        self.inbox.put(("stream", False, f"the stream broke ({type(e).__name__})"))
        try:
            return self.backoff.failed()
        except Exception:  # noqa: BLE001 - even a broken backoff must not end pushes
            return float(self.config.server.poll_seconds)

    def _bad_id(self, value: str) -> None:
        if not self._bad_id_logged:
            self._bad_id_logged = True
            log.warning("push stream: ignored an event id that is not a valid header value "
                        "(%d characters, starting %r); keeping the last good resume point",
                        len(value), value[:20])

    def _hold(self, client: CentralClient) -> float:
        """One connection; returns how long to wait before the next."""
        try:
            resp, self._guard = client.open_stream(self.last_id, self.silence_s)
        except TokenUnavailable as e:
            self.inbox.put(("stream", False, str(e)))
            return float(self.config.server.poll_seconds)
        except ServerUnreachable as e:
            self.inbox.put(("stream", False, str(e)))
            return self.backoff.failed()
        try:
            if self.stop_event.is_set():    # stopped while connecting: interrupt() missed it
                return 0.0
            kind = resp.headers.get("Content-Type", "")
            if resp.status_code == 401:
                self.inbox.put(("stream", False, "the server refused the device token (401)"))
                return float(self.config.server.poll_seconds)
            if resp.status_code != 200 or not kind.startswith("text/event-stream"):
                self.inbox.put(("stream", False, f"the stream answered HTTP {resp.status_code}"
                                f" ({kind or 'no content type'})"))
                return self.backoff.failed()
            self.inbox.put(("stream", True, ""))
            self._problem = None
            parser = SseParser(self.last_id, on_bad_id=self._bad_id)
            for chunk in stream_chunks(resp):
                for event in parser.feed(chunk):
                    self.backoff.succeeded()
                    if event is not None:
                        if event.id:
                            self.last_id = event.id
                        self.inbox.put(("push", event))
            reason = "the server ended the stream"
        except Exception as e:
            if self.stop_event.is_set():    # interrupt() closed the response under us
                return 0.0
            if not isinstance(e, (requests.RequestException, ServerUnreachable, OSError)):
                return self._unexpected(e)
            reason = f"the stream broke ({type(e).__name__})"
        finally:
            self._guard = None
            resp.close()
        if self.stop_event.is_set():
            return 0.0
        self.inbox.put(("stream", False, reason))
        return self.backoff.failed()

    def interrupt(self) -> None:
        """Unblock the stream's read from another thread (on stop).

        Closing the response would wait for the read to finish (they share a lock), up to a
        keepalive later; shutting the socket down makes the blocked read return at once.
        """
        guard = self._guard
        if guard is not None:
            guard.shutdown()


class SyncService:
    """The sync loop for one appliance. Knobs beyond the config exist for tests."""

    def __init__(self, config, *, store: Store | None = None, use_stream: bool = True,
                 backoff_base_s: float = 1.0, backoff_cap_s: float = 300.0,
                 stream_silence_s: float = STREAM_SILENCE_S):
        self.config = config
        self.store = store if store is not None else Store(config.storage.path)
        self.clock = Clock(self.store, config, refresh_s=0.0)
        self.notify = SdNotify()
        self.faults = FaultBoard(self.store)
        half = self.notify.watchdog_interval()
        deadline, misfit = request_deadline(config, 2 * half if half else None)
        if misfit:   # degraded, visibly, instead of being killed by the watchdog in a loop
            self.faults.set("config", misfit, logging.ERROR)
        self.client = CentralClient(config, deadline_s=deadline)
        self.time_filter = ServerTimeFilter(_BUILD_EPOCH)
        self.queue = Queue(self.store, config, self.clock)
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.stop_event = threading.Event()
        self.use_stream = use_stream
        self.stream_silence_s = stream_silence_s
        self._backoff_args = (backoff_base_s, backoff_cap_s)
        self.pull_backoff = Backoff(*self._backoff_args)
        self.upload_backoff = Backoff(*self._backoff_args)
        self.stream: PushStream | None = None
        self.stream_up = False
        self.poll_s = float(config.server.poll_seconds)
        self.started = time.monotonic()
        self._offline_since = self.store.get_kv("sync.offline_since")
        self._last_ok_written = 0.0
        self._clock_kv = self.store.get_kv("clock")
        self._synced: tuple[float, bool] | None = None
        self._wanted: list[str] = []
        self._pull_now: set[str] = set()
        self._closed_days: set[str] = set()
        self._status_text = ""
        self._watchdog_s: float | None = None
        self._next_watchdog = 0.0
        self._next_pull = self._next_upload = self._next_heartbeat = 0.0
        self._next_age_check = 0.0
        self._next_tick = 0.0
        self.internal_backoff = Backoff(INTERNAL_RETRY_S, backoff_cap_s)
        self._internal_problem: str | None = None

    # clock -----------------------------------------------------------------------------

    def _clock_synced(self) -> bool:
        now = time.monotonic()
        if self._synced is None or now - self._synced[0] > 60:
            self._synced = (now, system_clock_synced())
        return self._synced[1]

    def _note_date(self, ans) -> None:
        """Track the offset to the ``Date`` of an answer judged genuine (a 2xx or 304 of the
        central server whose body was usable); 1 s resolution, so +0.5 s on average.
        ``ServerTimeFilter`` refuses times before the build date and unconfirmed jumps."""
        if ans.date is None or not self.time_filter.accept(ans.date, boottime(),
                                                           self._clock_kv, boot_id()):
            return
        server_epoch, sent_at, received_at = ans.date, ans.sent_at, ans.received_at
        offset = server_epoch + 0.5 - (sent_at + received_at) / 2
        synced = self._clock_synced()
        prev = self._clock_kv
        if (prev is None or prev.get("boot_id") != boot_id()
                or abs(prev.get("offset_s", 0) - offset) > CLOCK_RECORD_DRIFT_S
                or prev.get("synced") != synced
                or received_at - prev.get("measured_at", 0) > CLOCK_RECORD_EVERY_S):
            record_server_date(self.store, server_epoch + 0.5, (sent_at + received_at) / 2,
                               synced)
            self._clock_kv = self.store.get_kv("clock")
        if abs(offset) > MAX_SKEW_S or received_at < _BUILD_EPOCH:
            self.faults.set("clock", f"the system clock is off by {offset:+.0f} s from the "
                            "central server; decisions use the server's time")
        else:
            self.faults.clear("clock", "the system clock agrees with the central server")

    # contact bookkeeping ---------------------------------------------------------------

    def _contact_ok(self) -> None:
        self.faults.clear("server", "central server reachable again")
        self.faults.clear("token", "the central server accepts the device token again")
        now = time.time()
        if self._offline_since is not None:
            self._offline_since = None
            self.store.set_kv("sync.offline_since", None)
        if now - self._last_ok_written >= LAST_OK_EVERY_S:
            self.store.set_kv("sync.last_ok", now)
            self._last_ok_written = now

    def _went_offline(self) -> None:
        if self._offline_since is None:
            self._offline_since = time.time()
            self.store.set_kv("sync.offline_since", self._offline_since)

    def _unreachable(self, why: str) -> None:
        self._went_offline()
        self.faults.set("server", f"central server unusable: {why}; the lobby works from "
                        "the cache and events wait in the outbox")

    def _misrouted(self, what: str, status: int, meanwhile: str) -> None:
        """A 404/405/410/413 where the contract has an endpoint: ``server.url`` (or a proxy)
        is wrong. Nothing is the data's fault: keep it all, alert, retry at the poll
        interval."""
        self._went_offline()
        self.faults.set(f"endpoint {what}", f"the central server answered HTTP {status} to "
                        f"{what}: technician, server.url ({self.config.server.url}) in "
                        f"{self.config.path} may point to the wrong place, or a proxy refuses "
                        f"the request; {meanwhile}", logging.ERROR)

    def _unauthorized(self, why: str | None = None) -> None:
        """A refused (401) or unreadable token: keep everything, alert, retry at the normal
        interval so a replaced token file is picked up."""
        self._went_offline()
        self.faults.set("token", why or "the central server refused the device token (401); "
                        "technician: install a new device token in "
                        f"{self.config.server.token_file} (nothing is deleted meanwhile)",
                        logging.ERROR)

    # schedules -------------------------------------------------------------------------

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
            self._unauthorized(str(e))
            return "unauthorized", None
        except ServerUnreachable as e:
            self._unreachable(str(e))
            return "retry", None
        except BodyTooLarge as e:
            self._contact_ok()
            self.faults.set(f"schedule {day}", f"schedule for {day} refused: {e}; "
                            "keeping the cached copy")
            return "refused", None
        status = ans.status
        if status in (200, 304) or (status == 404 and ans.is_json()):
            self.faults.clear("endpoint GET schedule", "the schedule endpoint answers again")
        if status == 304:
            self._contact_ok()
            self._note_date(ans)
            self.faults.clear(f"schedule {day}")
            return "unchanged", None
        if status == 200:
            self._contact_ok()
            try:
                sched = verify_schedule(ans.body, ans.header("X-Antrean-Signature"),
                                        self.config, expect_date=day)
                self._note_date(ans)
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
            self._contact_ok()
            self.faults.clear(f"schedule {day}")
            if day not in self._closed_days:
                self._closed_days.add(day)
                log.info("no schedule for %s: the server says the office is closed", day)
            return "closed", None
        if status == 401:
            self._unauthorized()
            return "unauthorized", None
        if ans.wrong_endpoint:    # incl. a 404 that is an HTML or text page, not the contract's
            self._misrouted("GET schedule", status, "keeping the cached schedules")
            return "failed", None
        if ans.retryable:
            self._unreachable(f"GET schedule {day} answered HTTP {status}")
            return "retry", ans.retry_after()
        self._contact_ok()
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
                    delay = self.pull_backoff.failed(retry_after)
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
            self.pull_backoff.succeeded()
            if self.stream_up:
                delay = STREAM_PULL_S
        if days == self.wanted_days():  # a push for one day must not clear another's alert
            self.faults.clear_prefix("schedule ", {f"schedule {d}" for d in days})
        self._next_pull = time.monotonic() + delay
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
        self._next_age_check = time.monotonic() + AGE_CHECK_EVERY_S

    # events ----------------------------------------------------------------------------

    def upload_round(self, max_batches: int | None = None) -> tuple[str, float | None]:
        """Send pending events oldest first; returns (outcome, retry_after) where outcome is
        done (nothing pending), more (stopped at max_batches), retry, unauthorized or
        misrouted (the endpoint is not there: 404/405/410/413; nothing dead-lettered)."""
        batches = 0
        while True:
            self.keep_alive()
            batch = pending_batch(self.store, BATCH_SIZE)
            if not batch:
                self.upload_backoff.succeeded()
                return "done", None
            if max_batches is not None and batches >= max_batches:
                return "more", None
            batches += 1
            ids = [e.id for e in batch]
            note_attempt(self.store, ids)
            try:
                ans = self.client.post_events([e.body for e in batch])
            except TokenUnavailable as e:
                self._unauthorized(str(e))
                return "unauthorized", None
            except (ServerUnreachable, BodyTooLarge) as e:
                self._unreachable(str(e))
                return "retry", None
            if ans.status == 401:
                self._unauthorized()
                return "unauthorized", None
            if ans.status == 200:
                left = self._apply_results(ids, ans)
                if left is not None:
                    self._unreachable(left)
                    return "retry", None
                continue
            if ans.wrong_endpoint:
                self._misrouted("POST events", ans.status, "every event stays pending (none "
                                "is dead-lettered) and is sent once that is fixed")
                return "misrouted", None
            if ans.retryable or not 400 <= ans.status < 500:
                self._unreachable(f"POST events answered HTTP {ans.status}")
                return "retry", ans.retry_after()
            self._contact_ok()
            doc = ans.json()
            text = doc.get("error") if isinstance(doc, dict) else None
            reason = f"HTTP {ans.status}: {text or 'the server refused the whole batch'}"
            mark_dead(self.store, dict.fromkeys(ids, reason[:500]))
            log.warning("%d events dead-lettered: %s", len(ids), reason)

    def _apply_results(self, ids: list[str], ans) -> str | None:
        """Mark what the server settled; returns why the rest must be retried, or None."""
        doc = ans.json()
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, list):
            return "POST events answered 200 without a readable result list"
        self._contact_ok()
        self._note_date(ans)
        self.faults.clear("endpoint POST events", "the events endpoint answers again")
        wanted = set(ids)
        sent, dead = [], {}
        for r in results:
            if not isinstance(r, dict) or r.get("id") not in wanted:
                continue
            if r.get("status") in ("accepted", "duplicate"):
                sent.append(r["id"])
            elif r.get("status") == "rejected":
                dead[r["id"]] = str(r.get("reason") or "rejected by the server")[:500]
        dead = {k: v for k, v in dead.items() if k not in sent}
        if sent:
            mark_sent(self.store, sent)
        if dead:
            mark_dead(self.store, dead)
            first = next(iter(dead.items()))
            log.warning("%d events rejected by the server and dead-lettered (e.g. %s: %s)",
                        len(dead), *first)
        missing = wanted - set(sent) - set(dead)
        if missing:
            return f"POST events answered without a result for {len(missing)} events"
        return None

    # heartbeat -------------------------------------------------------------------------

    def heartbeat_doc(self) -> dict:
        with self.store.read() as db:
            today = self.clock.lobby_day(db)
            lobby = read_lobby(db, today, self.config, self.clock.time(), recent_calls=0,
                               next_tickets=0)
        info = lobby.schedule
        clock = self.store.get_kv("clock") or {}
        try:
            uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
        except (AttributeError, OSError):
            uptime = time.monotonic() - self.started
        return {
            "version": __version__,
            "uptime_s": int(uptime),
            "schedule": {"date": today, "version": info.version if info else None,
                         "age_s": int(lobby.schedule_age_s()) if info else None},
            "outbox": counts(self.store),
            "scanner": heartbeat_scanner(self.config, self.store),
            "display": heartbeat_display(self.config.display.health_file),
            "clock": {"synced": bool(clock.get("synced", False)),
                      "offset_s": round(float(clock.get("offset_s", 0.0)), 3)},
            "lobby": lobby.summary(),
        }

    def heartbeat(self) -> bool:
        self.keep_alive()
        try:
            ans = self.client.heartbeat(self.heartbeat_doc())
        except TokenUnavailable as e:
            self._unauthorized(str(e))
            return False
        except (ServerUnreachable, BodyTooLarge) as e:
            self._unreachable(str(e))
            return False
        if ans.status in (200, 204):
            self._contact_ok()
            self._note_date(ans)
            self.faults.clear("heartbeat")
            self.faults.clear("endpoint POST heartbeat", "the heartbeat endpoint answers again")
            return True
        if ans.status == 401:
            self._unauthorized()
        elif ans.wrong_endpoint:
            self._misrouted("POST heartbeat", ans.status, "the server does not hear from "
                            "this appliance")
        elif ans.retryable:
            self._unreachable(f"POST heartbeat answered HTTP {ans.status}")
        else:
            self._contact_ok()
            self.faults.set("heartbeat", f"POST heartbeat answered HTTP {ans.status}")
        return False

    # pushes ----------------------------------------------------------------------------

    def handle(self, item: tuple) -> None:
        """Act on one message from the stream thread (main thread only)."""
        if item[0] == "stream":
            self._stream_state(item[1], item[2])
        elif item[0] == "push":
            self.on_push(item[1])

    def _stream_state(self, up: bool, why: str) -> None:
        if up == self.stream_up:
            return
        self.stream_up = up
        if up:
            self.faults.clear("stream", "push stream connected")
            self._next_pull = time.monotonic()   # catch up on anything missed meanwhile
        else:
            self.faults.set("stream", f"push stream down ({why}); polling the schedule every "
                            f"{self.poll_s:g} s", logging.INFO)
            self._next_pull = min(self._next_pull, time.monotonic() + self.poll_s)

    def on_push(self, event: SseEvent) -> None:
        if not event.data:
            if event.id:
                self.store.set_kv("sync.stream_last_id", event.id)
            return
        try:
            data = json.loads(event.data)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            log.warning("ignored a %r push whose data is not a JSON object", event.event)
        elif event.event == "schedule":
            self._push_schedule(data)
        elif event.event == "call":
            self._push_call(data)
        elif event.event == "announcements":
            items = data.get("items")
            if isinstance(items, list) and all(isinstance(x, str) for x in items):
                self.store.set_kv("announcements", {"items": items, "at": time.time()})
                log.info("announcements replaced by the server (%d items)", len(items))
            else:
                log.warning("ignored an announcements push without a list of texts")
        else:
            log.debug("ignored unknown push event %r", event.event)
        if event.id:
            self.store.set_kv("sync.stream_last_id", event.id)

    def _push_schedule(self, data: dict) -> None:
        day = data.get("date")
        try:
            valid = Date.fromisoformat(day).isoformat() == day  # YYYY-MM-DD only
        except (TypeError, ValueError):
            valid = False
        if not valid:
            log.warning("ignored a schedule push without a valid date")
            return
        self._pull_now.add(day)

    def _push_call(self, data: dict) -> None:
        sid, ticket, counter = data.get("id"), data.get("ticket"), data.get("counter")
        if not (isinstance(sid, str) and sid and isinstance(ticket, str)
                and TICKET_RE.match(ticket) and isinstance(counter, int)
                and not isinstance(counter, bool) and 1 <= counter <= 999):
            log.warning("ignored a call push without a valid id, ticket and counter")
            return
        at = _epoch(data.get("at"))
        if self.queue.record_server_call(sid, ticket, counter, at if at else self.clock.time()):
            log.info("call %s to counter %d (from the officers' software)", ticket, counter)

    # loops -----------------------------------------------------------------------------

    def learn_time(self) -> None:
        """With no server time known this boot, send the heartbeat first: its 204 carries a
        ``Date`` that counts, so the days to pull are chosen on a corrected clock (an
        RTC-less Pi boots in 1970; a 404 for that day's schedule is no answer to learn from)."""
        if self.clock.server_time() is None and time.monotonic() >= self._next_heartbeat:
            self.heartbeat()
            self._next_heartbeat = time.monotonic() + self.config.server.heartbeat_seconds

    def run_once(self) -> int:
        """One pull round and one upload round; 0 only if both fully succeeded."""
        self.faults.report()
        self.learn_time()
        pulled = self.pull_round()
        uploaded, _ = self.upload_round()
        left = counts(self.store)
        log.info("sync --once: schedule %s, upload %s (%d pending, %d dead)",
                 "ok" if pulled else "FAILED", "ok" if uploaded == "done" else "FAILED",
                 left["pending"], left["dead"])
        return 0 if pulled and uploaded == "done" else 1

    def request_stop(self, *_args) -> None:
        self.stop_event.set()
        self.inbox.put(("stop",))

    def run_forever(self) -> int:
        self.faults.report()
        now = time.monotonic()
        self._next_pull = now
        self._next_upload = now
        self._next_heartbeat = now
        self._next_age_check = now
        self._watchdog_s = self.notify.watchdog_interval()
        self._next_watchdog = now
        if self.use_stream:
            self.stream = PushStream(self.config, self.inbox, self._resume_point(),
                                     self.stop_event,
                                     silence_s=self.stream_silence_s,
                                     backoff=Backoff(*self._backoff_args))
            self.stream.start()
        self.notify.ready("sync running")
        log.info("sync service started for %s (device %s)", self.config.server.url,
                 self.config.server.device_id)
        try:
            while not self.stop_event.is_set():
                if time.monotonic() >= self._next_tick:
                    self._guarded_tick()
                now = time.monotonic()
                self.keep_alive()
                wait = min(LOOP_TICK_S, max(0.0, min(self._next_pull, self._next_heartbeat)
                                            - now))
                try:
                    item = self.inbox.get(timeout=wait)
                except queue.Empty:
                    continue
                while True:
                    if item[0] == "stop":
                        break
                    try:
                        self.handle(item)
                    except Exception:  # noqa: BLE001 - one odd push must not stop sync
                        log.exception("sync: handling %s failed; carrying on", item[0])
                    try:
                        item = self.inbox.get_nowait()
                    except queue.Empty:
                        break
        finally:
            self.notify.stopping()
            self.stop_event.set()
            if self.stream is not None:
                self.stream.interrupt()
                self.stream.join(2.0)
            self.client.close()
        return 0

    def _resume_point(self) -> str | None:
        """The saved ``Last-Event-ID``, or None; a saved id that is no valid header value
        (from an older version, or a hostile server) is dropped instead of breaking every
        reconnect."""
        saved = self.store.get_kv("sync.stream_last_id")
        if saved is None or valid_event_id(saved):
            return saved
        log.warning("dropped the saved push stream resume point: not a valid header value; "
                    "the stream starts from now and a schedule pull catches up")
        self.store.set_kv("sync.stream_last_id", None)
        return None

    def _guarded_tick(self) -> None:
        """One tick; a failure nobody foresaw is a visible fault retried with backoff (the
        loop keeps pinging the watchdog meanwhile), logged once per distinct error."""
        try:
            self._tick()
        except Exception as e:  # noqa: BLE001 - degrade visibly, never crash-loop
            problem = f"{type(e).__name__}: {e}"[:300]
            if problem != self._internal_problem:
                self._internal_problem = problem
                log.exception("sync: a round failed unexpectedly; retrying with backoff")
            self.faults.set("internal", f"a sync round failed unexpectedly "
                            f"({type(e).__name__}); retrying with backoff; see the log")
            self._next_tick = time.monotonic() + self.internal_backoff.failed()
            return
        if self._internal_problem is not None:
            self._internal_problem = None
            self.internal_backoff.succeeded()
            self.faults.clear("internal", "sync rounds work again")

    def keep_alive(self) -> None:
        """Ping systemd's watchdog when due; also called between requests of a long round,
        so a slow server makes sync degraded, not killed."""
        if self._watchdog_s and time.monotonic() >= self._next_watchdog:
            self.notify.watchdog()
            self._next_watchdog = time.monotonic() + self._watchdog_s

    def _tick(self) -> None:
        self.learn_time()
        now = time.monotonic()
        if self.wanted_days() != self._wanted or now >= self._next_pull:
            self.pull_round()
            self._wanted = self.wanted_days()
        if self._pull_now:
            days, self._pull_now = sorted(self._pull_now), set()
            self.pull_round(days)
        if now >= self._next_upload and pending_batch(self.store, 1):
            outcome, retry_after = self.upload_round(max_batches=10)
            if outcome == "retry":
                self._next_upload = now + self.upload_backoff.failed(retry_after)
            elif outcome in ("unauthorized", "misrouted"):
                self._next_upload = now + self.poll_s
        if now >= self._next_heartbeat:
            self.heartbeat()
            self._next_heartbeat = now + self.config.server.heartbeat_seconds
        if now >= self._next_age_check:
            self.check_schedule_age()
        text = "; ".join(self.faults.active.values()) or "in sync"
        if text != self._status_text:
            self._status_text = text
            self.notify.status(text)

    def close(self) -> None:
        self.client.close()
        self.store.close()


def run(config, once: bool = False) -> int:
    """``antrean sync [--once]``."""
    service = SyncService(config)
    try:
        if once:
            return service.run_once()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, service.request_stop)
            signal.signal(signal.SIGINT, service.request_stop)
        return service.run_forever()
    finally:
        service.close()
