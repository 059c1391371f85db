"""LEDs, buzzer and counter buttons on the Pi's GPIO header (gpiozero).

Feedback patterns an applicant can tell apart without reading the screen:

- accepted: green LED on for a second, one short beep;
- rejected: red LED blinks three times, two longer beeps;
- error (the appliance itself failed): red LED flickers fast, one long beep.

Counter buttons never act themselves: a press puts ``("next", counter)`` or
``("recall", counter)`` on the queue the service handed over, and the service's main thread
makes the call. ``gpio.next_pins[i]`` is counter ``i + 1``. Tests use gpiozero's
``MockFactory`` (``GPIOZERO_PIN_FACTORY=mock``).

Example::

    >>> from gpiozero.pins.mock import MockFactory
    >>> pins = MockFactory()
    >>> actions = queue.Queue()
    >>> with Gpio(actions, next_pins=[5], pin_factory=pins) as gpio:
    ...     gpio.accepted()                 # green LED for a second, one short beep
    ...     pins.pin(5).drive_low()         # counter 1's "next" button pressed
    ...     actions.get(timeout=5)
    ('next', 1)
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

from drivers.errors import DriverClosed

log = logging.getLogger("antrean.drivers.gpio")


@dataclass(frozen=True)
class Blink:
    """One output's part of a pattern: ``n`` times on for ``on_s``, off for ``off_s``."""

    on_s: float
    off_s: float
    n: int


@dataclass(frozen=True)
class Pattern:
    green: Blink | None
    red: Blink | None
    buzzer: Blink | None


PATTERNS = {
    "accepted": Pattern(green=Blink(1.0, 0.0, 1), red=None, buzzer=Blink(0.08, 0.0, 1)),
    "rejected": Pattern(green=None, red=Blink(0.25, 0.2, 3), buzzer=Blink(0.25, 0.15, 2)),
    "error": Pattern(green=None, red=Blink(0.06, 0.06, 8), buzzer=Blink(1.0, 0.0, 1)),
}


class Gpio:
    """Feedback outputs and counter buttons; ``close()`` may be called twice."""

    def __init__(self, actions: queue.Queue, *, green_led: int = 17, red_led: int = 27,
                 buzzer: int = 22, next_pins: list[int] | tuple = (),
                 recall_pins: list[int] | tuple = (), bounce_ms: int = 50,
                 patterns: dict[str, Pattern] | None = None, pin_factory=None):
        from gpiozero import LED, Button, Buzzer

        self.actions = actions
        self.patterns = dict(PATTERNS if patterns is None else patterns)
        self._lock = threading.Lock()
        self._devices: list = []
        self._closed = False
        bounce = bounce_ms / 1000 if bounce_ms > 0 else None
        try:
            self.green = self._own(LED(green_led, pin_factory=pin_factory))
            self.red = self._own(LED(red_led, pin_factory=pin_factory))
            self.buzzer = self._own(Buzzer(buzzer, pin_factory=pin_factory))
            self.buttons: dict[tuple[str, int], Button] = {}
            for action, pins in (("next", next_pins), ("recall", recall_pins)):
                for i, pin in enumerate(pins):
                    button = self._own(Button(pin, pull_up=True, bounce_time=bounce,
                                              pin_factory=pin_factory))
                    button.when_pressed = self._press_handler(action, i + 1)
                    self.buttons[(action, i + 1)] = button
        except Exception:
            self.close()
            raise

    @classmethod
    def from_config(cls, section, actions: queue.Queue, **kwargs) -> Gpio:
        """Build from the config's ``[gpio]`` section."""
        return cls(actions, green_led=section.green_led, red_led=section.red_led,
                   buzzer=section.buzzer, next_pins=section.next_pins,
                   recall_pins=section.recall_pins, bounce_ms=section.bounce_ms, **kwargs)

    def _own(self, device):
        self._devices.append(device)
        return device

    def _press_handler(self, action: str, counter: int):
        def pressed() -> None:
            # Runs in a gpiozero thread: hand over, never block long, never touch the store.
            try:
                self.actions.put((action, counter), timeout=1.0)
            except queue.Full:
                log.warning("counter %d %s button press dropped: the service is busy",
                            counter, action)
        return pressed

    # feedback --------------------------------------------------------------------------

    def accepted(self) -> None:
        self.show("accepted")

    def rejected(self) -> None:
        self.show("rejected")

    def error(self) -> None:
        self.show("error")

    def show(self, name: str) -> None:
        """Play pattern ``name`` in the background, cutting short any pattern still running."""
        pattern = self.patterns[name]
        with self._lock:
            if self._closed:
                raise DriverClosed("GPIO feedback was used after close()")
            for device, blink in ((self.green, pattern.green), (self.red, pattern.red),
                                  (self.buzzer, pattern.buzzer)):
                if blink is None:
                    device.off()
                else:
                    device.blink(on_time=blink.on_s, off_time=blink.off_s, n=blink.n,
                                 background=True)

    # lifecycle -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for device in reversed(self._devices):
            try:
                device.close()
            except Exception:  # noqa: BLE001 - closing must never raise
                pass
        self._devices.clear()

    def __enter__(self) -> Gpio:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
