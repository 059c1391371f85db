"""`antrean scanner`: the reader service.

One main thread owns the store. Driver threads (the scanner backend, gpiozero's button
callbacks) only put items on a bounded inbox; the main thread takes them one at a time:

- ``("scan", payload, reader)``: the check-in path (``CheckinDesk.scan``, which records the
  reader's name), then LED/buzzer feedback once the transaction is durable;
- ``("next", counter)`` / ``("recall", counter)``: a counter button, through ``CallQueue``;
- ``("state", reader, connected, detail)``: a reader appeared or went away: logged once,
  written to kv ``scanner.readers`` / ``scanner.connected`` and ``service_health``.

Several readers (``[[scanner]]``, ``appliance.readers``) feed the one inbox; one reader that
is unplugged or cannot be opened is a degraded state of that reader only, and the service is
ready and checks in from the others.

The bounded inbox is the back-pressure: under a flood the reader thread waits, so memory stays
bounded and every complete line is still judged. Once a second the loop also does the store's
housekeeping: it reports runs of unreadable scans that have ended
(``CheckinDesk.settle_unreadable``) and deletes history past ``storage.retention_days``
(``appliance.retention``, one small batch at a time). A missing scanner is a degraded, visible
state that the backend keeps retrying, never a crash. SIGTERM stops the loop cleanly; readiness
and watchdog pings go to systemd through ``SdNotify`` (a no-op outside systemd).

Example::

    $ antrean --config /etc/antrean/antrean.toml scanner
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time

from appliance.call_queue import CallQueue
from appliance.checkin import CheckinDesk
from appliance.errors import AntreanError
from appliance.notify import SdNotify
from appliance.reactor import Problems, Reactor
from appliance.readers import ReaderSet
from appliance.retention import BATCH, PRUNE_EVERY_S, prune_step
from appliance.store import Store

log = logging.getLogger("antrean.scanner")

INBOX_SIZE = 256
IDLE_TICK_S = 1.0
HOUSEKEEPING_S = 1.0
ACCEPTED = ("ok", "already_checked_in")
SERVICE = "scanner"


class ScannerService:
    """The loop behind ``antrean scanner``; see the module docstring."""

    def __init__(self, config, *, stop: threading.Event | None = None,
                 stdin_fd: int | None = None, pin_factory=None, notify: SdNotify | None = None):
        self.config = config
        self.reactor = Reactor(notify=notify, stop=stop)
        self.stop = self.reactor.stop_event
        self.notify = self.reactor.notify
        self.inbox: queue.Queue = queue.Queue(maxsize=INBOX_SIZE)
        self._pin_factory = pin_factory
        self.store = Store(config.storage.path)
        self.desk = CheckinDesk(self.store, config)
        self.queue = CallQueue(self.store, config)
        self.readers = ReaderSet(config.readers, self.on_payload, self.on_state,
                                 stdin_fd=stdin_fd)
        self.gpio = None
        self.panel = None
        self.scans = 0
        self._health: tuple[str, str] | None = None
        self._problems = Problems(log)
        self._scanner_detail = ""
        self._next_prune = 0.0
        self._pruned = 0
        self._housekeeping_error: str | None = None
        # What runs when: the inbox as it comes, housekeeping once a second, the watchdog
        # at its pace unless the store is beyond repair.
        self.reactor.hold_watchdog_while(lambda: not self._store_usable())
        self._housekeeping = self.reactor.every(HOUSEKEEPING_S, self.housekeeping)

    # callbacks from driver threads: hand over only --------------------------------------

    def _put(self, item: tuple) -> None:
        """Blocking hand-over with back-pressure; gives up only when the service stops."""
        while not self.stop.is_set():
            try:
                self.inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def on_payload(self, payload: bytes, reader: str | None = None) -> None:
        self._put(("scan", payload, reader))

    def on_state(self, reader: str, connected: bool, detail: str) -> None:
        self._put(("state", reader, connected, detail))

    @property
    def backend(self):
        """The first reader's backend (None when it could not be built or none is set)."""
        first = next(iter(self.readers), None)
        return first.backend if first is not None else None

    def request_stop(self, *_signal) -> None:
        self.reactor.request_stop()

    # health ------------------------------------------------------------------------------

    def _set_problem(self, key: str, text: str | None) -> None:
        """Track a degraded condition; log it once when it starts and once when it ends."""
        if text is None:
            self._problems.clear(key, f"{key}: recovered")
        else:
            self._problems.set(key, text)
        self._report()

    def _report(self, error: str | None = None) -> None:
        state = "degraded" if self._problems.active else "running"
        detail = self._problems.summary() or self._scanner_detail
        if (state, detail) == self._health and error is None:
            return
        self._health = (state, detail)    # once per change, even while the store fails
        try:
            self.store.report_health(SERVICE, state, detail, error)
        except (AntreanError, sqlite3.Error) as e:
            log.debug("health not recorded: %s", e)
        self.notify.status(f"{state}: {detail}" if detail else state)

    def _store_usable(self) -> bool:
        """False while the store has no clean connection even after a reopen.

        Then the watchdog is not pinged, so systemd restarts the service (crash-only); a
        failed write that was rolled back is not such a case: a full disk is not fixed by a
        restart, and the next scan works as soon as there is space again.
        """
        if self.store.broken is None or self.store.recover():
            if "database" in self._problems:
                self._set_problem("database", None)
            return True
        self._set_problem("database", f"{self.store.broken}; watchdog pings stopped, so "
                                      "systemd restarts the scanner service")
        return False

    def _save_readers(self) -> None:
        try:
            self.readers.save(self.store)
        except (AntreanError, sqlite3.Error) as e:
            log.debug("reader states not recorded: %s", e)

    # the items ---------------------------------------------------------------------------

    def handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "scan":
            self.handle_scan(*item[1:])
        elif kind in ("next", "recall"):
            self.handle_button(kind, item[1])
        elif kind == "state":
            self.handle_state(*item[1:])

    def handle_scan(self, payload: bytes, reader: str | None = None) -> None:
        try:
            result = self.desk.scan(payload, reader)
        except Exception as e:  # noqa: BLE001 - one bad scan must never stop the reader
            # Nothing was committed: the applicant hears the error pattern and scans again.
            if not isinstance(e, AntreanError | sqlite3.Error | OSError):
                log.exception("check-in failed on an unexpected error")
            text = f"check-in failed, the scan was not recorded: {e}"
            self._feedback("error")
            self._set_problem("store", text)
            self._report(error=text)
            return
        self.scans += 1
        if "store" in self._problems:
            self._set_problem("store", None)
        level = logging.DEBUG if result.verdict == "unreadable" else logging.INFO
        log.log(level, "scan at %s: %s%s%s", reader, result.verdict,
                f" {result.booking_code}" if result.booking_code else "",
                f" -> {result.ticket}" if result.ticket else "")
        self._feedback("accepted" if result.verdict in ACCEPTED else "rejected")

    def handle_button(self, action: str, counter: int) -> None:
        try:
            if action == "next":
                call = self.queue.call_next(counter)
            else:
                call = self.queue.recall(counter)
        except AntreanError as e:
            log.warning("counter %d %s button: %s", counter, action, e)
            return
        except sqlite3.Error as e:
            log.error("counter %d %s button: the call was not recorded: %s", counter, action, e)
            return
        if call is None:
            log.info("counter %d: nobody is waiting", counter)
        else:
            log.info("counter %d: %s %s", counter, call.kind, call.ticket)

    def handle_state(self, reader: str, connected: bool, detail: str) -> None:
        self.readers.set_state(reader, connected, detail)
        self._scanner_detail = "; ".join(f"{r.name}: {r.detail}" for r in self.readers)
        if connected:
            log.info("reader %s connected: %s", reader, detail)
        else:
            log.warning("reader %s disconnected: %s", reader, detail)
        self._set_problem(f"reader {reader}", None if connected else f"reader {reader}: {detail}")
        self._save_readers()

    def housekeeping(self) -> None:
        """Report ended runs of unreadable scans; delete expired history, a batch at a time."""
        now = time.monotonic()
        try:
            self.desk.settle_unreadable()
            if now >= self._next_prune:
                removed = prune_step(self.store, self.config, self.desk.clock)
                self._pruned += removed
                if removed < BATCH:         # else more is left: the next step at the next tick
                    if self._pruned:
                        log.info("deleted %d rows older than %d days (storage.retention_days)",
                                 self._pruned, self.config.storage.retention_days)
                    self._pruned = 0
                    self._next_prune = now + PRUNE_EVERY_S
        except (AntreanError, sqlite3.Error) as e:
            if str(e) != self._housekeeping_error:          # once per distinct fault
                log.warning("store housekeeping postponed: %s", e)
            self._housekeeping_error = str(e)
            self._housekeeping.after(60.0, now)
        else:
            self._housekeeping_error = None

    def _feedback(self, pattern: str) -> None:
        if self.gpio is None:
            return
        try:
            self.gpio.show(pattern)
        except Exception as e:  # noqa: BLE001 - a dead LED must not stop check-ins
            self._set_problem("gpio", f"GPIO feedback failed: {e}")

    # lifecycle ---------------------------------------------------------------------------

    def _start_parts(self) -> None:
        self._save_readers()
        if self.config.gpio.enabled:
            try:
                from drivers.gpio import Gpio

                self.gpio = Gpio.from_config(self.config.gpio, self.inbox,
                                             pin_factory=self._pin_factory)
                if self.config.gpio.mock_panel:
                    from gpiozero import Device

                    from drivers.button_panel import MockButtonPanel

                    self.panel = MockButtonPanel(self.config.gpio.mock_panel,
                                                 self._pin_factory or Device.pin_factory)
            except Exception as e:  # noqa: BLE001 - gpiozero raises many kinds off a Pi
                self._set_problem("gpio", f"GPIO unavailable ({type(e).__name__}: {e}); "
                                          "check [gpio] pins or set gpio.enabled = false")
        self.readers.start()
        for reader in self.readers:
            if reader.backend is None:          # not even built: no state will ever come
                self._set_problem(f"reader {reader.name}", f"reader {reader.name}: "
                                                           f"{reader.detail}")
        self._save_readers()
        if not self.readers:
            self._scanner_detail = "no scanner configured (scanner.kind = none)"
        self._report()

    def _finished(self) -> bool:
        return self.readers.finished and self.inbox.empty()

    def run(self) -> int:
        with self.reactor.signals():
            try:
                self._start_parts()
                names = ", ".join(f"{r.name} ({r.kind})" for r in self.readers) or "none"
                self.reactor.ready(f"readers: {names}")
                log.info("scanner service ready (readers: %s)", names)
                tick = self.reactor.tick_s(IDLE_TICK_S)
                while not self.reactor.stopped:   # within a tick of SIGTERM
                    try:
                        item = self.inbox.get(timeout=tick)
                    except queue.Empty:
                        item = None
                    self.reactor.keep_alive()
                    if item is not None:
                        self.handle(item)
                    self.reactor.run_timers()
                    if self._finished():
                        log.info("scanner input ended; stopping")
                        break
                return 0
            finally:
                self.close()

    def close(self) -> None:
        self.stop.set()
        self.reactor.stopping()
        self.readers.close()
        if self.panel is not None:
            self.panel.close()
        if self.gpio is not None:
            self.gpio.close()
        try:
            self.desk.settle_unreadable(force=True)
            self.readers.save(self.store)
            self.store.report_health(SERVICE, "stopped", "")
        except (AntreanError, sqlite3.Error):
            pass
        self.store.close()
        log.info("scanner service stopped after %d scans", self.scans)


def run(config, **kwargs) -> int:
    """Run the scanner service until SIGTERM (or the end of stdin/frames); the exit code."""
    return ScannerService(config, **kwargs).run()
