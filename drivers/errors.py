"""Errors the hardware backends raise on purpose.

Each subclasses both the appliance's ``AntreanError`` (one clear line for a person) and the
builtin it resembles, the way gpiozero's exceptions do.
"""

from appliance.errors import AntreanError


class DriverError(AntreanError, RuntimeError):
    """A scanner, decoder or GPIO backend cannot do what it was asked."""


class DriverClosed(DriverError):
    """A backend was used after ``close()``."""


class BackendUnavailable(DriverError, ImportError):
    """An optional backend's library (picamera2, evdev) is not installed."""


class BadFrame(DriverError, ValueError):
    """A frame handed to the decoder is not a 2-D uint8 grayscale array."""
