"""The lifecycle every scanner backend shares: a reader thread, callbacks, clean close.

A backend reads its device in its own thread and hands results to two callbacks:
``on_payload(bytes)`` for each complete code and ``on_state(connected, detail)`` when the
device appears or goes away (only on a change, so the service logs each state once).
The callbacks may block (the service applies back-pressure that way); they must never
touch the store themselves. ``close()`` may be called twice; ``start()`` after close raises
``DriverClosed``.

Example (the stdin backend on an input that has already ended)::

    >>> import os
    >>> from drivers.stdin_scanner import StdinScanner
    >>> read_end, write_end = os.pipe()
    >>> os.close(write_end)
    >>> with StdinScanner(on_payload=print, fd=read_end) as b:   # starts the thread
    ...     pass
    >>> b.close()                                                # a second close is fine
    >>> b.start()
    Traceback (most recent call last):
    drivers.errors.DriverClosed: the stdin scanner was started after close()
    >>> os.close(read_end)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from drivers.errors import DriverClosed

log = logging.getLogger("antrean.drivers")

PayloadCallback = Callable[[bytes], None]
StateCallback = Callable[[bool, str], None]


class ScannerBackend:
    """Base of the serial, camera, keyboard and stdin backends."""

    kind = "base"
    retry_s = 0.5

    def __init__(self, on_payload: PayloadCallback, on_state: StateCallback | None = None):
        self._on_payload = on_payload
        self._on_state = on_state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._connected: bool | None = None
        self._handle = None
        self.detail = ""
        self.finished = False
        # The reader's name on an appliance with several ([[scanner]] name): in the thread's
        # name and the driver's own log lines, so two serial readers are told apart.
        self.reader_name = self.kind

    @classmethod
    def from_config(cls, scanner, *, on_payload: PayloadCallback,
                    on_state: StateCallback | None = None, stdin_fd: int | None = None):
        """This backend as the ``[scanner]`` config section describes it.

        The registry (``appliance.backends.SCANNERS``) calls it for the configured
        ``scanner.kind``; ``stdin_fd`` stands in for standard input (only ``stdin`` reads it).
        """
        raise NotImplementedError

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> ScannerBackend:
        if self._closed:
            raise DriverClosed(f"the {self.kind} scanner was started after close()")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run_guarded, daemon=True,
                                            name=f"scanner-{self.reader_name}")
            self._thread.start()
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=3.0)
        self._release()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return bool(self._connected)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # for subclasses --------------------------------------------------------------------

    def _run(self) -> None:
        """Open the device, read until it goes away, retry; for devices that come and go."""
        while not self._stop.is_set():
            handle = self._open()
            if handle is None:
                if self._wait(self.retry_s):
                    return
                continue
            self._handle = handle
            self._set_state(True, self._describe(handle))
            try:
                self._read_until_gone(handle)
            finally:
                self._handle = None
                self._forget_partial()
                try:
                    handle.close()
                except OSError:
                    pass

    def _open(self):
        """The open device, or None after reporting why not (``_set_state(False, ...)``)."""
        raise NotImplementedError

    def _describe(self, handle) -> str:
        return f"{self.kind} scanner connected"

    def _read_until_gone(self, handle) -> None:
        raise NotImplementedError

    def _forget_partial(self) -> None:
        """Drop a half-read code when the device goes away."""

    def _wake(self) -> None:
        """Interrupt a blocking read so close() is prompt (override if needed)."""

    def _release(self) -> None:
        """Free device handles after the thread ended (override if needed)."""

    def _emit(self, payload: bytes) -> None:
        if payload and not self._stop.is_set():
            self._on_payload(payload)

    def _set_state(self, connected: bool, detail: str) -> None:
        """Report a state; the callback fires only when ``connected`` actually changes."""
        self.detail = detail
        if connected == self._connected:
            return
        self._connected = connected
        if self._on_state is not None:
            self._on_state(connected, detail)

    def _wait(self, seconds: float) -> bool:
        """Sleep unless closed; True if the backend is closing."""
        return self._stop.wait(seconds)

    def _run_guarded(self) -> None:
        # Crash-only: an unexpected error in a driver becomes a visible state and a retry,
        # never a dead reader thread that nobody notices.
        while not self._stop.is_set():
            try:
                self._run()
                return
            except Exception as e:  # noqa: BLE001 - any driver fault must stay visible
                log.exception("%s scanner %s: unexpected error", self.kind, self.reader_name)
                self._set_state(False, f"{self.kind} scanner failed: {e}")
                if self._wait(max(self.retry_s, 1.0)):
                    return
