"""A virtual counter-button panel for gpiozero's ``MockFactory``, driven through a FIFO.

The demo and the soak test run the scanner service as a real process, with mock GPIO pins.
To press its counter buttons from outside, the service opens a named pipe (``gpio.mock_panel``)
and this panel turns each line into a real pin change on the mock pins: ``press 5`` pulls
BCM 5 low for ``hold_s`` and releases it, exactly as a finger on a pull-up button would, so
the press goes through gpiozero's own edge detection and the service's normal button path.
It refuses to run on real pins: it is a test and demo double, never a backdoor.

Example::

    $ mkfifo /tmp/panel && echo "press 5" > /tmp/panel
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time

from drivers.errors import DriverError

log = logging.getLogger("antrean.drivers.button_panel")

MAX_LINE = 64


class MockButtonPanel:
    """Reads ``press PIN`` lines from a FIFO and clicks the mock pin. ``close()`` is idempotent."""

    def __init__(self, path: str, pin_factory, *, hold_s: float = 0.08):
        from gpiozero.pins.mock import MockFactory

        if not isinstance(pin_factory, MockFactory):
            raise DriverError(f"gpio.mock_panel is set but the pin factory is "
                              f"{type(pin_factory).__name__}; the panel only drives mock pins "
                              "(GPIOZERO_PIN_FACTORY=mock); remove gpio.mock_panel")
        if not os.path.exists(path):
            os.mkfifo(path, 0o600)
        elif not stat.S_ISFIFO(os.stat(path).st_mode):
            raise DriverError(f"gpio.mock_panel {path} exists and is not a FIFO; remove it")
        self.path = path
        self._factory = pin_factory
        self._hold_s = hold_s
        # O_RDWR keeps the pipe open between writers, so a closed writer is not an EOF.
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mock-button-panel", daemon=True)
        self._thread.start()

    def press(self, pin: int) -> None:
        mock = self._factory.pin(pin)
        mock.drive_low()
        time.sleep(self._hold_s)
        mock.drive_high()

    def _run(self) -> None:
        import selectors

        buffer = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._fd, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not sel.select(timeout=0.2):
                    continue
                try:
                    chunk = os.read(self._fd, 4096)
                except BlockingIOError:
                    continue
                except OSError:
                    return
                buffer = (buffer + chunk)[-4 * MAX_LINE:]
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._handle(line.decode("ascii", "replace").split())

    def _handle(self, words: list[str]) -> None:
        if len(words) == 2 and words[0] == "press" and words[1].isdigit():
            pin = int(words[1])
            if 0 <= pin <= 27:
                self.press(pin)
                return
        log.warning("mock button panel: ignored %r (expected 'press PIN')", " ".join(words))

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=2)
        try:
            os.close(self._fd)
        except OSError:
            pass
