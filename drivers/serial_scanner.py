"""USB or UART barcode scanners that send each code as a line of text (pyserial).

The port is opened exclusively (no second reader steals bytes). When the device disappears
(USB unplug: reads fail, the ``/dev/serial/by-id/...`` link vanishes) the backend reports
"disconnected" once and retries opening the same path every ``retry_s`` seconds, so it is
back within 2 s of the scanner returning. Lines are framed by ``LineFramer``; a partial code
left when the device vanished is dropped.

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

import serial

from drivers.backend import PayloadCallback, ScannerBackend, StateCallback
from drivers.line_framer import DEFAULT_MAX_LENGTH, LineFramer, OverlongLine, strip_aim

log = logging.getLogger("antrean.drivers.serial")


class SerialScanner(ScannerBackend):
    kind = "serial"

    def __init__(self, port: str, baudrate: int = 9600, *, on_payload: PayloadCallback,
                 on_state: StateCallback | None = None, max_length: int = DEFAULT_MAX_LENGTH,
                 retry_s: float = 0.5, poll_s: float = 0.2):
        super().__init__(on_payload, on_state)
        self.port = port
        self.baudrate = baudrate
        self.retry_s = retry_s
        self.poll_s = poll_s
        self.framer = LineFramer(max_length)
        self.open_attempts = 0

    @classmethod
    def from_config(cls, scanner, *, on_payload, on_state=None, stdin_fd=None):
        return cls(scanner.port, scanner.baudrate, on_payload=on_payload, on_state=on_state)

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
                continue  # a read timeout is not the end of a line
            for line in self.framer.feed(data):
                if isinstance(line, OverlongLine):
                    log.warning("serial scanner %s: a line longer than %d bytes was cut "
                                "(garbage on the line?)", self.port, self.framer.max_length)
                self._emit(strip_aim(line))

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
