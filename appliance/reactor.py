"""One service loop for every service: timers, the watchdog, stopping, problems.

Each service (scanner, display, sync, printer) runs one main thread that waits for work,
does what is due and keeps systemd's watchdog fed. The parts they share live here, in the
spirit of Klipper's single reactor, so a service reads as a declaration of what runs when:

- ``Reactor.every(interval, action)``: a periodic timer; an action may move its own next
  time (``Timer.at``, ``Timer.after``), e.g. to back off after a failure;
- the lifecycle: ``ready`` (``READY=1``), ``keep_alive`` (``WATCHDOG=1`` at half of
  ``WATCHDOG_USEC``, ``appliance.notify``), ``stopping`` (``STOPPING=1``);
- ``hold_watchdog_while(condition)``: while a declared-fatal condition holds (the scanner's
  store has no clean connection even after a reopen), the watchdog is not pinged, so
  systemd restarts the service (crash-only); everything else is a degraded state, never a
  restart;
- stopping: SIGTERM (and SIGINT) through ``signals()`` call ``request_stop``, which only
  sets a flag and calls the wakers registered with ``on_stop`` (these must be reentrant,
  e.g. ``queue.SimpleQueue.put``). A signal handler runs in the main thread between two
  bytecodes, also inside ``Event.wait`` or ``Queue.get`` while they hold their own lock, so
  setting an event or putting on a ``queue.Queue`` there can wait for that lock forever.
  The loop itself turns the flag into the stop event when it asks ``stopped`` (at least
  once a tick), and every other thread waiting on the event then wakes;
- ``Problems``: degraded conditions by name, logged once when they begin and once when
  they end, and reported (``service_health``, ``STATUS=``) only when the summary changed.

Example::

    >>> reactor = Reactor()
    >>> seen = []
    >>> beat = reactor.every(60.0, lambda: seen.append("beat"))
    >>> reactor.run_timers(now=0.0); reactor.run_timers(now=30.0); seen
    ['beat']
    >>> beat.at(0.0); reactor.run_timers(now=30.0); seen
    ['beat', 'beat']
    >>> problems = Problems()
    >>> problems.set("scanner", "scanner: unplugged"), problems.set("scanner", "scanner: unplugged")
    (True, False)
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable

from appliance.notify import SdNotify

log = logging.getLogger("antrean.reactor")


class Timer:
    """One periodic action; ``due`` is a ``time.monotonic()`` instant."""

    def __init__(self, interval: float, action: Callable[[], object] | None, due: float):
        self.interval = interval
        self.action = action
        self.due = due

    def is_due(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.due

    def at(self, when: float) -> None:
        self.due = when

    def after(self, delay: float, now: float | None = None) -> None:
        self.due = (time.monotonic() if now is None else now) + delay

    def fire(self, now: float) -> None:
        """Run the action; the next time is one interval on unless the action moved it."""
        self.due = now + self.interval
        if self.action is not None:
            self.action()


class Reactor:
    """Timers, the watchdog, the stop event; see the module docstring."""

    def __init__(self, *, notify: SdNotify | None = None,
                 stop: threading.Event | None = None):
        self.notify = notify or SdNotify()
        self.stop_event = stop or threading.Event()
        self.watchdog_s = self.notify.watchdog_interval()
        self._next_ping = 0.0
        self._timers: list[Timer] = []
        self._holds: list[Callable[[], bool]] = []
        self._wakers: list[Callable[[], None]] = []
        self._stop_requested = False

    # timers ----------------------------------------------------------------------------

    def every(self, interval: float, action: Callable[[], object] | None = None, *,
              first: float | None = None) -> Timer:
        """A timer running ``action`` every ``interval`` seconds, first at ``first``
        (a monotonic instant; default: at once). Timers run in the order declared."""
        timer = Timer(interval, action, 0.0 if first is None else first)
        self._timers.append(timer)
        return timer

    def run_timers(self, now: float | None = None) -> None:
        """Run every timer that is due, in the order they were declared."""
        for timer in self._timers:
            at = time.monotonic() if now is None else now
            if timer.action is not None and at >= timer.due:
                timer.fire(at)

    def tick_s(self, idle_s: float) -> float:
        """How long a loop may block: ``idle_s``, shorter when the watchdog wants pings
        more often."""
        return min(idle_s, self.watchdog_s) if self.watchdog_s else idle_s

    # lifecycle -------------------------------------------------------------------------

    def ready(self, status: str = "") -> None:
        """``READY=1``; the first watchdog ping is due at once."""
        self.notify.ready(status)

    def hold_watchdog_while(self, condition: Callable[[], bool]) -> None:
        """While ``condition()`` is true the watchdog is not pinged (a declared-fatal
        state: systemd restarts the service). Asked only when a ping is due."""
        self._holds.append(condition)

    def keep_alive(self, now: float | None = None) -> None:
        """Ping the watchdog when due (and no fatal condition holds); cheap to call often,
        also between the steps of a long round."""
        if not self.watchdog_s:
            return
        if (time.monotonic() if now is None else now) < self._next_ping:
            return
        if not any(hold() for hold in self._holds):
            self.notify.watchdog()
        self._next_ping = (time.monotonic() if now is None else now) + self.watchdog_s

    def ping(self) -> None:
        """Ping now, whatever the pacing (before a step bounded inside one period)."""
        self.notify.watchdog()

    def status(self, text: str) -> None:
        self.notify.status(text)

    def stopping(self) -> None:
        self.notify.stopping()

    # stopping --------------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """Whether the service should stop. Ask it from the loop (never from a signal
        handler): a requested stop becomes the stop event here."""
        if self._stop_requested and not self.stop_event.is_set():
            self.stop_event.set()
        return self.stop_event.is_set()

    def on_stop(self, waker: Callable[[], None]) -> None:
        """Call ``waker`` when a stop is requested, to wake a loop blocked on its inbox.
        It runs inside signal handlers, so it must be reentrant (``SimpleQueue.put``);
        a loop on a ``queue.Queue`` or an event relies on its tick instead."""
        self._wakers.append(waker)

    def request_stop(self, *_signal) -> None:
        """Ask the loop to stop (the SIGTERM/SIGINT handler): a flag and the wakers only."""
        self._stop_requested = True
        for waker in self._wakers:
            waker()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds or until a stop is requested."""
        return self.stop_event.wait(timeout)

    def stop_on_signals(self, which=(signal.SIGTERM, signal.SIGINT)) -> list:
        """Route ``which`` to ``request_stop``; returns the handlers replaced. Main thread
        only: elsewhere (a service in a test's thread) nothing is installed."""
        if threading.current_thread() is not threading.main_thread():
            return []
        return [(sig, signal.signal(sig, self.request_stop)) for sig in which]

    @contextlib.contextmanager
    def signals(self, which=(signal.SIGTERM, signal.SIGINT)):
        """``stop_on_signals`` while the block runs; the old handlers come back after."""
        installed = self.stop_on_signals(which)
        try:
            yield
        finally:
            for sig, handler in installed:
                signal.signal(sig, handler)


class Problems:
    """Degraded conditions by name, each logged once when it begins and once when it ends.

    ``active`` maps names to their current text; the service writes the summary where it
    belongs (``service_health``, ``STATUS=``) after a change. ``log_changes`` also logs a
    condition whose text changed while it lasted (a new reason), not only its beginning.
    """

    def __init__(self, logger: logging.Logger = log, *, log_changes: bool = False):
        self.active: dict[str, str] = {}
        self._log = logger
        self._log_changes = log_changes

    def __contains__(self, name: str) -> bool:
        return name in self.active

    def set(self, name: str, text: str, level: int = logging.ERROR) -> bool:
        """Mark ``name`` degraded with ``text``; True if that is news (begun or changed)."""
        old = self.active.get(name)
        if old == text:
            return False
        self.active[name] = text
        if old is None or self._log_changes:
            self._log.log(level, "%s", text)
        return True

    def clear(self, name: str, recovered: str | None = None) -> bool:
        """``name`` is fine again; True if it was degraded."""
        if name not in self.active:
            return False
        del self.active[name]
        if recovered:
            self._log.info("%s", recovered)
        return True

    def summary(self, names=None) -> str:
        names = self.active if names is None else names
        return "; ".join(self.active[n] for n in names)
