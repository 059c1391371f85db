"""`antrean scanner`: the reader service.

One main thread owns the store. Driver threads (the scanner backend, gpiozero's button
callbacks) only put items on a bounded inbox; the main thread takes them one at a time:

- ``("scan", payload)``: the check-in path (``CheckinDesk.scan``), then LED/buzzer feedback
  once the transaction is durable;
- ``("next", counter)`` / ``("recall", counter)``: a counter button, through ``Queue``;
- ``("state", connected, detail)``: the scanner appeared or went away: logged once, written to
  kv ``scanner.connected`` and ``service_health``.

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
import signal
import sqlite3
import threading
import time

from appliance.backends import NO_SCANNER, SCANNERS
from appliance.checkin import CheckinDesk
from appliance.errors import AntreanError
from appliance.notify import SdNotify
from appliance.queue import Queue
from appliance.retention import BATCH, PRUNE_EVERY_S, prune_step
from appliance.store import Store

log = logging.getLogger("antrean.scanner")

INBOX_SIZE = 256
IDLE_TICK_S = 1.0
HOUSEKEEPING_S = 1.0
ACCEPTED = ("ok", "already_checked_in")
SERVICE = "scanner"


def build_backend(config, on_payload, on_state, *, stdin_fd: int | None = None):
    """The scanner backend ``scanner.kind`` names (``appliance.backends.SCANNERS``), or None
    for ``none``.

    Raises ``AntreanError`` (e.g. ``BackendUnavailable``) when it cannot even be built.
    """
    if config.scanner.kind == NO_SCANNER:
        return None
    return SCANNERS.build(config.scanner.kind, config.scanner, on_payload=on_payload,
                          on_state=on_state, stdin_fd=stdin_fd)


class ScannerService:
    """The loop behind ``antrean scanner``; see the module docstring."""

    def __init__(self, config, *, stop: threading.Event | None = None,
                 stdin_fd: int | None = None, pin_factory=None, notify: SdNotify | None = None):
        self.config = config
        self.stop = stop or threading.Event()
        self.inbox: queue.Queue = queue.Queue(maxsize=INBOX_SIZE)
        self.notify = notify or SdNotify()
        self._stdin_fd = stdin_fd
        self._pin_factory = pin_factory
        self.store = Store(config.storage.path)
        self.desk = CheckinDesk(self.store, config)
        self.queue = Queue(self.store, config)
        self.backend = None
        self.gpio = None
        self.panel = None
        self.scans = 0
        self._health: tuple[str, str] | None = None
        self._problems: dict[str, str] = {}
        self._scanner_detail = ""
        self._next_housekeeping = 0.0
        self._next_prune = 0.0
        self._pruned = 0
        self._housekeeping_error: str | None = None
        self._stop_requested = False

    # callbacks from driver threads: hand over only --------------------------------------

    def _put(self, item: tuple) -> None:
        """Blocking hand-over with back-pressure; gives up only when the service stops."""
        while not self.stop.is_set():
            try:
                self.inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def on_payload(self, payload: bytes) -> None:
        self._put(("scan", payload))

    def on_state(self, connected: bool, detail: str) -> None:
        self._put(("state", connected, detail))

    def request_stop(self, *_signal) -> None:
        """Stop within one tick. This is also the SIGTERM/SIGINT handler, so it only sets a
        flag: a handler runs in the main thread between two bytecodes, also inside
        ``inbox.get()`` while that holds the queue's own lock, and putting on the queue (or
        setting ``stop``) there would wait for that lock forever."""
        self._stop_requested = True

    # health ------------------------------------------------------------------------------

    def _set_problem(self, key: str, text: str | None) -> None:
        """Track a degraded condition; log it once when it starts and once when it ends."""
        old = self._problems.get(key)
        if text is None:
            if old is not None:
                del self._problems[key]
                log.info("%s: recovered", key)
        elif old != text:
            self._problems[key] = text
            if old is None:
                log.error("%s", text)
        self._report()

    def _report(self, error: str | None = None) -> None:
        state = "degraded" if self._problems else "running"
        detail = "; ".join(self._problems.values()) or self._scanner_detail
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

    def _set_connected(self, connected: bool) -> None:
        try:
            self.store.set_kv("scanner.connected", connected)
        except (AntreanError, sqlite3.Error) as e:
            log.debug("scanner.connected not recorded: %s", e)

    # the items ---------------------------------------------------------------------------

    def handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "scan":
            self.handle_scan(item[1])
        elif kind in ("next", "recall"):
            self.handle_button(kind, item[1])
        elif kind == "state":
            self.handle_state(item[1], item[2])

    def handle_scan(self, payload: bytes) -> None:
        try:
            result = self.desk.scan(payload)
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
        log.log(level, "scan: %s%s%s", result.verdict,
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

    def handle_state(self, connected: bool, detail: str) -> None:
        self._scanner_detail = detail
        if connected:
            log.info("scanner connected: %s", detail)
            self._set_problem("scanner", None)
        else:
            log.warning("scanner disconnected: %s", detail)
            self._set_problem("scanner", f"scanner: {detail}")
        self._set_connected(connected)

    def housekeeping(self) -> None:
        """Report ended runs of unreadable scans; delete expired history, a batch at a time."""
        now = time.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_S
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
            self._next_housekeeping = now + 60.0
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
        self._set_connected(False)
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
        try:
            self.backend = build_backend(self.config, self.on_payload, self.on_state,
                                         stdin_fd=self._stdin_fd)
        except AntreanError as e:
            self._set_problem("scanner", f"scanner: {e}")
        if self.backend is not None:
            self.backend.start()
        elif "scanner" not in self._problems:
            self._scanner_detail = "no scanner configured (scanner.kind = none)"
        self._report()

    def _finished(self) -> bool:
        return bool(self.backend is not None and self.backend.finished and self.inbox.empty())

    def run(self) -> int:
        installed = self._install_signals()
        try:
            self._start_parts()
            self.notify.ready(f"scanner {self.config.scanner.kind}")
            log.info("scanner service ready (scanner.kind = %s)", self.config.scanner.kind)
            ping_every = self.notify.watchdog_interval()
            tick = min(IDLE_TICK_S, ping_every) if ping_every else IDLE_TICK_S
            next_ping = time.monotonic()
            while not (self.stop.is_set() or self._stop_requested):
                try:
                    item = self.inbox.get(timeout=tick)
                except queue.Empty:
                    item = None
                if ping_every and time.monotonic() >= next_ping:
                    if self._store_usable():
                        self.notify.watchdog()
                    next_ping = time.monotonic() + ping_every
                if item is not None:
                    self.handle(item)
                self.housekeeping()
                if self._finished():
                    log.info("scanner input ended; stopping")
                    break
            return 0
        finally:
            self.close()
            for sig, handler in installed:
                signal.signal(sig, handler)

    def _install_signals(self) -> list:
        if threading.current_thread() is not threading.main_thread():
            return []
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            installed.append((sig, signal.signal(sig, self.request_stop)))
        return installed

    def close(self) -> None:
        self.stop.set()
        self.notify.stopping()
        if self.backend is not None:
            self.backend.close()
        if self.panel is not None:
            self.panel.close()
        if self.gpio is not None:
            self.gpio.close()
        try:
            self.desk.settle_unreadable(force=True)
            self._set_connected(False)
            self.store.report_health(SERVICE, "stopped", "")
        except (AntreanError, sqlite3.Error):
            pass
        self.store.close()
        log.info("scanner service stopped after %d scans", self.scans)


def run(config, **kwargs) -> int:
    """Run the scanner service until SIGTERM (or the end of stdin/frames); the exit code."""
    return ScannerService(config, **kwargs).run()
