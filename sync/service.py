"""``antrean sync``: schedules in, events out, pushes and heartbeats, whatever the network does.

The main thread owns the store: it pulls schedules, drains the outbox, sends heartbeats and
acts on pushes. The push stream lives in its own thread with its own HTTP session (a session
is not shared between threads; the TLS policy and its contexts are, ``sync.tls``) and hands
what it hears to the main thread through a queue, so no SQLite connection is shared between
threads.

The jobs are parts of their own: ``sync.stream`` (the push stream and its SSE framing),
``sync.pull`` (schedule pulls), ``sync.upload`` (the outbox), ``sync.push`` (applying
pushes), ``sync.heartbeat``, ``sync.server_clock`` (the clock from ``Date``) and
``sync.contact`` (how the server is doing). This module is the loop that schedules them,
on ``appliance.reactor``.

Nothing here can stop a check-in: the lobby works from the cache, events wait in the
outbox, and every fault becomes a visible state (logged once, shown in ``antrean status``).

Example::

    $ antrean --config /etc/antrean/antrean.toml sync --once   # exit 0 if pull and upload worked
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable

from appliance.call_queue import CallQueue
from appliance.clock import Clock, NtpState, system_clock_synced
from appliance.outbox import counts, pending_batch
from appliance.reactor import Reactor
from appliance.store import Store
from sync.backoff import Backoff
from sync.client import CentralClient, request_deadline
from sync.contact import Contact
from sync.fault_board import FaultBoard
from sync.heartbeat import Heartbeat
from sync.pull import SchedulePuller
from sync.push import PushHandler
from sync.server_clock import ServerClock
from sync.sse import SseEvent
from sync.stream import STREAM_SILENCE_S, PushStream, resume_point
from sync.tls import CertificatePolicy
from sync.upload import Uploader

__all__ = ["PushStream", "SyncService", "run"]

log = logging.getLogger("antrean.sync")

LOOP_TICK_S = 0.5
INTERNAL_RETRY_S = 5.0         # first wait after a round failed for a reason nobody foresaw


class SyncService:
    """The sync loop for one appliance. Knobs beyond the config exist for tests.

    ``clock_synced`` answers whether NTP has set the system clock (asked at most once a
    minute); the clock records and the TLS policy (``sync.tls``) both follow it.
    """

    def __init__(self, config, *, store: Store | None = None, use_stream: bool = True,
                 backoff_base_s: float = 1.0, backoff_cap_s: float = 300.0,
                 stream_silence_s: float = STREAM_SILENCE_S,
                 clock_synced: Callable[[], bool] = system_clock_synced):
        self.config = config
        self.store = store if store is not None else Store(config.storage.path)
        self.clock = Clock(self.store, config, refresh_s=0.0)
        self.reactor = Reactor()
        self.notify = self.reactor.notify
        self.stop_event = self.reactor.stop_event
        self.faults = FaultBoard(self.store)
        half = self.reactor.watchdog_s
        deadline, misfit = request_deadline(config, 2 * half if half else None)
        if misfit:   # degraded, visibly, instead of being killed by the watchdog in a loop
            self.faults.set("config", misfit, logging.ERROR)
        self.contact = Contact(config, self.store, self.faults)
        self.server_clock = ServerClock(self.store, self.faults, NtpState(clock_synced))
        # One TLS policy for the main client and the push stream's: they decide alike.
        self.tls = CertificatePolicy(self.server_clock.synced, self.server_clock.server_time)
        self.client = CentralClient(config, deadline_s=deadline, tls=self.tls)
        self.queue = CallQueue(self.store, config, self.clock)
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.use_stream = use_stream
        self.stream_silence_s = stream_silence_s
        self._backoff_args = (backoff_base_s, backoff_cap_s)
        self.stream: PushStream | None = None
        self.poll_s = float(config.server.poll_seconds)
        parts = (config, self.store, self.clock, self.client, self.faults, self.contact,
                 self.server_clock)
        self.puller = SchedulePuller(*parts, backoff=Backoff(*self._backoff_args),
                                     keep_alive=self.keep_alive)
        self.uploader = Uploader(*parts, backoff=Backoff(*self._backoff_args),
                                 keep_alive=self.keep_alive)
        self.beat = Heartbeat(*parts, keep_alive=self.keep_alive)
        self.pushes = PushHandler(self.store, self.clock, self.queue, self.faults, self.puller)
        self._wanted: list[str] = []
        self._status_text = ""
        self._tick_timer = self.reactor.every(0.0, self._guarded_tick)
        self.internal_backoff = Backoff(INTERNAL_RETRY_S, backoff_cap_s)
        self._internal_problem: str | None = None
        self.reactor.on_stop(lambda: self.inbox.put(("stop",)))

    # the parts, as the service's own (the CLI, tests and benchmarks use these) ----------

    def wanted_days(self) -> list[str]:
        """Today's schedule, and tomorrow's once today's office hours are over."""
        return self.puller.wanted_days()

    def pull_day(self, day: str) -> tuple[str, float | None]:
        return self.puller.pull_day(day)

    def pull_round(self, days: list[str] | None = None) -> bool:
        return self.puller.pull_round(days)

    def check_schedule_age(self) -> None:
        self.puller.check_schedule_age()

    def upload_round(self, max_batches: int | None = None) -> tuple[str, float | None]:
        return self.uploader.upload_round(max_batches)

    def heartbeat_doc(self) -> dict:
        return self.beat.heartbeat_doc()

    def heartbeat(self) -> bool:
        return self.beat.send()

    def handle(self, item: tuple) -> None:
        self.pushes.handle(item)

    def on_push(self, event: SseEvent) -> None:
        self.pushes.on_push(event)

    @property
    def stream_up(self) -> bool:
        return self.puller.stream_up

    @property
    def pull_backoff(self) -> Backoff:
        return self.puller.backoff

    @property
    def upload_backoff(self) -> Backoff:
        return self.uploader.backoff

    @property
    def _next_pull(self) -> float:
        return self.puller.timer.due

    @property
    def _next_upload(self) -> float:
        return self.uploader.timer.due

    @property
    def _clock_kv(self) -> dict | None:
        return self.server_clock.recorded

    @_clock_kv.setter
    def _clock_kv(self, value: dict | None) -> None:
        self.server_clock.recorded = value

    # loops -----------------------------------------------------------------------------

    def learn_time(self) -> None:
        """With no server time known this boot, send the heartbeat first: its 204 carries a
        ``Date`` that counts, so the days to pull are chosen on a corrected clock (an
        RTC-less Pi boots in 1970; a 404 for that day's schedule is no answer to learn from)."""
        if self.clock.server_time() is None and self.beat.timer.is_due():
            self.heartbeat()
            self.beat.timer.after(self.config.server.heartbeat_seconds)

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
        self.reactor.request_stop()

    def run_forever(self) -> int:
        self.faults.report()
        now = time.monotonic()
        for timer in (self.puller.timer, self.uploader.timer, self.beat.timer,
                      self.puller.age_timer):
            timer.at(now)
        if self.use_stream:
            self.stream = PushStream(self.config, self.inbox, resume_point(self.store),
                                     self.stop_event,
                                     silence_s=self.stream_silence_s,
                                     backoff=Backoff(*self._backoff_args), tls=self.tls)
            self.stream.start()
        self.reactor.ready("sync running")
        log.info("sync service started for %s (device %s)", self.config.server.url,
                 self.config.server.device_id)
        try:
            while not self.reactor.stopped:
                self.reactor.run_timers()
                now = time.monotonic()
                self.keep_alive()
                wait = min(LOOP_TICK_S, max(0.0, min(self.puller.timer.due,
                                                     self.beat.timer.due) - now))
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
            self.reactor.stopping()
            self.stop_event.set()
            if self.stream is not None:
                self.stream.interrupt()
                self.stream.join(2.0)
            self.client.close()
        return 0

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
            self._tick_timer.after(self.internal_backoff.failed())
            return
        if self._internal_problem is not None:
            self._internal_problem = None
            self.internal_backoff.succeeded()
            self.faults.clear("internal", "sync rounds work again")

    def keep_alive(self) -> None:
        """Ping systemd's watchdog when due; also called between requests of a long round,
        so a slow server makes sync degraded, not killed."""
        self.reactor.keep_alive()

    def _tick(self) -> None:
        """What runs when: learn the time, pull (when due, when the wanted days change,
        when a push named a day), upload (when due and something is pending), the
        heartbeat, the schedule's age, and the status line."""
        self.learn_time()
        now = time.monotonic()
        if self.wanted_days() != self._wanted or self.puller.timer.is_due(now):
            self.pull_round()
            self._wanted = self.wanted_days()
        if self.puller.pull_now:
            days, self.puller.pull_now = sorted(self.puller.pull_now), set()
            self.pull_round(days)
        if self.uploader.timer.is_due(now) and pending_batch(self.store, 1):
            outcome, retry_after = self.upload_round(max_batches=10)
            if outcome == "retry":
                self.uploader.timer.at(now + self.upload_backoff.failed(retry_after))
            elif outcome in ("unauthorized", "misrouted"):
                self.uploader.timer.at(now + self.poll_s)
        if self.beat.timer.is_due(now):
            self.heartbeat()
            self.beat.timer.at(now + self.config.server.heartbeat_seconds)
        if self.puller.age_timer.is_due(now):
            self.check_schedule_age()
        text = "; ".join(self.faults.active.values()) or "in sync"
        if text != self._status_text:
            self._status_text = text
            self.reactor.status(text)

    def close(self) -> None:
        self.client.close()
        self.store.close()


def run(config, once: bool = False) -> int:
    """``antrean sync [--once]``."""
    service = SyncService(config)
    try:
        if once:
            return service.run_once()
        service.reactor.stop_on_signals()
        return service.run_forever()
    finally:
        service.close()
