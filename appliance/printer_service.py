"""`antrean printer`: the slip printer service.

It follows accepted check-ins from the store the way the display does (one cheap
``PRAGMA data_version`` per tick; the scanner never waits for paper), turns each into a slip
(``appliance.slip``) and prints it on the printer ``[printer]`` names
(``drivers.printer``). Its bookkeeping is ``appliance.print_queue``: every slip is printed at
most once unless reprinted, and a slip the printer refuses stays pending and is tried again.

Faults are states, not crashes: paper out, cover open, offline, unplugged or silent printers
are logged once when they begin and once when they end, written to ``service_health`` and
kv ``printer.state`` (``antrean status``, the heartbeat), and retried every
``printer.retry_seconds``. While idle the printer is asked for its status every
``printer.check_seconds``, so an empty roll shows before the next applicant arrives. No
write transaction is ever open while the printer is being talked to.

Example::

    $ antrean --config /etc/antrean/antrean.toml printer
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from appliance.clock import Clock
from appliance.errors import AntreanError, QueueError
from appliance.lobby_view import call_time_estimator
from appliance.notify import SdNotify
from appliance.print_queue import STATE_KEY, PrintQueue
from appliance.reactor import Reactor
from appliance.slip import compose_slip
from appliance.store import Store

log = logging.getLogger("antrean.printer")

SERVICE = "printer"
TICK_S = 0.2            # how often the store is polled for new check-ins
EXPIRE_EVERY_S = 10.0


class PrinterService:
    """The loop behind ``antrean printer``; see the module docstring."""

    def __init__(self, config, *, stop: threading.Event | None = None,
                 notify: SdNotify | None = None, printer=None, estimator=None):
        self.config = config
        self.reactor = Reactor(notify=notify, stop=stop)
        self.stop = self.reactor.stop_event
        self.notify = self.reactor.notify
        self.store = Store(config.storage.path)
        clock = Clock(self.store, config)
        # The slip's "perkiraan dipanggil" comes from the estimate the screen shows.
        self.queue = PrintQueue(self.store, config, clock, estimator=estimator
                                or call_time_estimator(config, clock))
        if printer is None and config.printer.kind != "none":
            from drivers.printer.thermal import printer_from_config

            printer = printer_from_config(config.printer)
        self.printer = printer
        self.state: tuple[str, str] | None = None
        self.printed = 0
        self._next_try = 0.0
        self._next_check = 0.0
        self._next_expire = 0.0
        self._version: int | None = None

    # state, reported on changes only ---------------------------------------------------

    def set_state(self, code: str, detail: str) -> None:
        if (code, detail) == self.state:
            return
        problem = code not in ("ok", "paper_low", "none")
        was = self.state[0] if self.state else None
        if problem and was != code:
            log.error("printer: %s", detail)
        elif not problem and was not in (None, "ok", "paper_low", "none"):
            log.info("printer: recovered (%s)", detail)
        elif code == "paper_low" and was != code:
            log.warning("printer: %s", detail)
        self.state = (code, detail)
        kind = self.config.printer.kind
        try:
            with self.store.write() as db:     # one commit: status never sees half a change
                self.store.set_kv(STATE_KEY, {"state": code, "detail": detail, "kind": kind,
                                              "since": time.time()}, db=db)
                self.store.report_health(SERVICE, "degraded" if problem else "running", detail,
                                         error=detail if problem else None, db=db)
        except (AntreanError, sqlite3.Error) as e:
            log.debug("printer state not recorded: %s", e)
        self.notify.status(f"{code}: {detail}")

    def _from_status(self, status) -> None:
        detail = f"{self.printer.name}: {status.describe()}"
        if status.problem:
            self.set_state(status.problem, detail)
        elif status.paper_low:
            self.set_state("paper_low", detail)
        else:
            self.set_state("ok", detail)

    # the steps -------------------------------------------------------------------------

    def check_printer(self, now: float) -> bool:
        """Ask the printer how it is; True if it can print."""
        from drivers.printer.errors import PrinterError

        try:
            status = self.printer.check()
        except PrinterError as e:
            self.set_state(e.code, str(e))
            self._next_try = self._next_check = now + self.config.printer.retry_seconds
            return False
        self._from_status(status)
        wait = self.config.printer.check_seconds if status.ready else \
            self.config.printer.retry_seconds
        self._next_check = now + wait
        if not status.ready:
            self._next_try = now + self.config.printer.retry_seconds
        return status.ready

    def print_next(self, now: float) -> bool:
        """Print the oldest pending slip; True if one was printed."""
        from drivers.printer.errors import PrinterError

        job = self.queue.next_job()
        if job is None:
            return False
        try:
            facts = self.queue.facts(job)
        except QueueError as e:
            log.error("slip %s: %s; given up", job.ticket, e)
            self.queue.abandon(job, str(e))
            return True
        data = self.printer.render(compose_slip(facts))
        self.reactor.ping()  # a print is bounded well inside one watchdog period
        self.queue.start(job)
        try:
            status = self.printer.print_bytes(data)
        except PrinterError as e:
            self.queue.failed(job, str(e))
            self.set_state(e.code, str(e))
            self._next_try = self._next_check = now + self.config.printer.retry_seconds
            return False
        self.queue.printed(job)
        self.printed += 1
        log.info("printed the %s slip of %s (attempt %d)",
                 "reprinted" if job.kind == "reprint" else "check-in", job.ticket,
                 job.attempts + 1)
        self._from_status(status)
        self._next_check = now + self.config.printer.check_seconds
        if not status.ready:
            self._next_try = now + self.config.printer.retry_seconds
        return True

    def tick(self) -> None:
        """One round: take in new check-ins, give up stale slips, print or check."""
        now = time.monotonic()
        version = self.store.data_version()
        if version != self._version:
            self._version = version
            self.queue.follow_checkins()
        if now >= self._next_expire:
            self._next_expire = now + EXPIRE_EVERY_S
            for ticket in self.queue.expire_stale():
                log.warning("slip of %s not printed within %d minutes: given up (reprint "
                            "with `antrean print --ticket %s`)", ticket,
                            self.config.printer.max_age_minutes, ticket)
        if now < self._next_try:
            return
        problem = self.state is None or self.state[0] not in ("ok", "paper_low")
        if self.queue.next_job() is not None:
            # After a fault, ask first: retrying costs no store write until it can print.
            if problem and not self.check_printer(now):
                return
            while not self.reactor.stopped and self.print_next(time.monotonic()):
                pass
        elif now >= self._next_check:
            self.check_printer(now)

    # lifecycle -------------------------------------------------------------------------

    def request_stop(self, *_signal) -> None:
        self.reactor.request_stop()

    def run(self) -> int:
        with self.reactor.signals():
            try:
                return self._run()
            finally:
                self.close()

    def _run(self) -> int:
        if self.printer is None:
            self.set_state("none", "no printer configured (printer.kind = none)")
            self.reactor.ready("no printer configured")
            log.info("printer service idle: printer.kind = none")
        else:
            for ticket in self.queue.recover_interrupted():
                log.warning("the slip of %s was being printed when the service stopped; it is "
                            "not printed again by itself (`antrean print --ticket %s`)",
                            ticket, ticket)
            if self.printer.logo_problem:
                log.warning("%s", self.printer.logo_problem)
            self.queue.follow_checkins()
            self.reactor.ready(self.printer.describe())
            log.info("printer service ready: %s", self.printer.describe())
        while not self.reactor.stopped:
            if self.printer is not None:
                try:
                    self.tick()
                except (AntreanError, sqlite3.Error) as e:
                    # The store is busy or broken: say so, keep the loop alive, try again.
                    log.error("printer service: %s", e)
                    self._next_try = time.monotonic() + self.config.printer.retry_seconds
            self.reactor.keep_alive()
            self.reactor.wait(TICK_S if self.printer is not None else 1.0)
        return 0

    def close(self) -> None:
        self.stop.set()
        self.reactor.stopping()
        try:
            self.store.report_health(SERVICE, "stopped", "")
        except (AntreanError, sqlite3.Error):
            pass
        self.store.close()
        log.info("printer service stopped after %d slips", self.printed)


def run(config, **kwargs) -> int:
    """Run the printer service until SIGTERM; the exit code."""
    return PrinterService(config, **kwargs).run()
