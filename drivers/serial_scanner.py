"""USB or UART barcode scanners that send each code as a line of text (pyserial).

The port is opened exclusively (no second reader steals bytes). When the device disappears
(USB unplug: reads fail, the ``/dev/serial/by-id/...`` link vanishes) the backend reports
"disconnected" once and retries opening the same path every ``retry_s`` seconds, so it is
back within 2 s of the scanner returning. Lines are framed by ``LineFramer``; a partial code
left when the device vanished is dropped, and so is a partial line followed by silence
(``partial_timeout_s``, 0.5 s by default): a scanner sends a whole code in one burst, so bytes
that wait longer for their line end are noise (a bumped cable, a scanner waking up), and
without this the next good scan would be glued to them and read as garbage.

Example (a pseudo-terminal stands in for ``/dev/serial/by-id/usb-SCANNER-if00``)::

    >>> import os, queue, tty
    >>> scanner_side, appliance_side = os.openpty()
    >>> tty.setraw(appliance_side)
    >>> codes, states = queue.Queue(), queue.Queue()
    >>> with SerialScanner(os.ttyname(appliance_side), 9600, on_payload=codes.put,
    ...                    on_state=lambda *state: states.put(state)):
    ...     states.get(timeout=5)                       # opened (bytes before that are flushed)
    ...     _ = os.write(scanner_side, b"]Q1K7Q2M9XA\\r\\n")
    ...     codes.get(timeout=5)
    (True, 'serial scanner on /dev/pts/...')
    b'K7Q2M9XA'
    >>> os.close(scanner_side); os.close(appliance_side)
"""

from __future__ import annotations

import logging
import time

import serial

from drivers.backend import PayloadCallback, ScannerBackend, StateCallback
from drivers.line_framer import DEFAULT_MAX_LENGTH, LineFramer, OverlongLine, strip_aim

log = logging.getLogger("antrean.drivers.serial")


class SerialScanner(ScannerBackend):
    kind = "serial"

    def __init__(self, port: str, baudrate: int = 9600, *, on_payload: PayloadCallback,
                 on_state: StateCallback | None = None, max_length: int = DEFAULT_MAX_LENGTH,
                 retry_s: float = 0.5, poll_s: float = 0.2, partial_timeout_s: float = 0.5):
        super().__init__(on_payload, on_state)
        self.port = port
        self.baudrate = baudrate
        self.retry_s = retry_s
        # Reads wake up at least this often, so a stale partial line is dropped promptly.
        self.poll_s = min(poll_s, partial_timeout_s)
        self.framer = LineFramer(max_length, stale_after=partial_timeout_s)
        self.open_attempts = 0

    @classmethod
    def from_config(cls, scanner, *, on_payload, on_state=None, stdin_fd=None):
        return cls(scanner.port, scanner.baudrate, on_payload=on_payload, on_state=on_state,
                   partial_timeout_s=scanner.serial_timeout_s)

    def _open(self) -> serial.Serial | None:
        self.open_attempts += 1
        try:
            return serial.Serial(self.port, self.baudrate, timeout=self.poll_s, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as e:
            self._set_state(False, f"serial scanner {self.port} cannot be opened ({_short(e)});"
                                   " check the cable and scanner.port; retrying")
            return None

    def _describe(self, handle) -> str:
        return f"serial scanner on {self.port}"

    def _forget_partial(self) -> None:
        self.framer.reset()

    def _read_until_gone(self, ser: serial.Serial) -> None:
        while not self._stop.is_set():
            try:
                data = ser.read(max(1, min(ser.in_waiting, 65536)))
            except (serial.SerialException, OSError, TypeError) as e:
                # TypeError: pyserial reading from an fd that close() has just released.
                if not self._stop.is_set():
                    self._set_state(False, f"serial scanner {self.port} went away "
                                           f"({_short(e)}); waiting for it to come back")
                return
            if not data:
                # A read timeout is not the end of a line, but a long silence ends a partial one.
                self._expire(time.monotonic())
                continue
            lines = self.framer.feed(data, time.monotonic())
            for line in lines:
                if isinstance(line, OverlongLine):
                    log.warning("serial scanner %s: a line longer than %d bytes was cut "
                                "(garbage on the line?)", self.port, self.framer.max_length)
                self._emit(strip_aim(line))
            if lines:
                # Waiting for the service to take the lines (back-pressure) is not silence.
                self.framer.touch(time.monotonic())

    def _expire(self, now: float) -> None:
        stray = len(self.framer.partial)
        if self.framer.expire(now):
            log.debug("serial scanner %s: dropped %d stray bytes that never got a line end",
                      self.port, stray)

    def _wake(self) -> None:
        ser = self._handle
        if ser is not None:
            try:
                ser.cancel_read()
            except (serial.SerialException, OSError, AttributeError):
                pass


def _short(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:160]
