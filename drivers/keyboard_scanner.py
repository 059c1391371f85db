"""USB "keyboard wedge" barcode scanners and numeric keypads, through evdev (optional extra).

The cheapest scanners pretend to be a keyboard and type each code followed by Enter. The
device is grabbed, so those keystrokes never reach a console login. The same backend serves
a USB numeric keypad (or full keyboard) on which a front-desk officer types a booking code:
Enter ends it, Backspace works, and a half-typed code is dropped after ``keypad_timeout_s``
without a key. Key presses become text in ``KeyTranslator`` (US layout, Shift and Caps Lock);
the text is framed into lines by the shared ``LineFramer``.

``evdev`` is imported only when this backend starts: ``pip install antrean[keyboard]``.

``KeyboardScanner("/dev/input/by-id/usb-SCANNER-event-kbd", on_payload=...)`` reads a real
device. What it does with each key event, on events made by hand::

    >>> from collections import namedtuple
    >>> Key = namedtuple("Key", "type code value")      # the fields of an evdev.InputEvent
    >>> reader = KeyLineReader(timeout_s=20)
    >>> for code in (79, 80, 81, KEY_BACKSPACE, 81, KEY_KPENTER):   # keypad 1 2 3 <- 3 Enter
    ...     lines = reader.feed(Key(EV_KEY, code, KEY_DOWN), now=0.0)
    >>> lines
    [b'123']
"""

from __future__ import annotations

import errno
import select
import time

from drivers.backend import PayloadCallback, ScannerBackend, StateCallback
from drivers.errors import BackendUnavailable
from drivers.line_framer import DEFAULT_MAX_LENGTH, LineFramer, strip_aim

EV_KEY = 1
KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2

# Linux input key codes (linux/input-event-codes.h) -> (plain, shifted) characters.
_ROWS = {
    2: "1!", 3: "2@", 4: "3#", 5: "4$", 6: "5%", 7: "6^", 8: "7&", 9: "8*", 10: "9(", 11: "0)",
    12: "-_", 13: "=+", 26: "[{", 27: "]}", 39: ";:", 40: "'\"", 41: "`~", 43: "\\|",
    51: ",<", 52: ".>", 53: "/?", 57: "  ",
}
_LETTERS = {
    16: "q", 17: "w", 18: "e", 19: "r", 20: "t", 21: "y", 22: "u", 23: "i", 24: "o", 25: "p",
    30: "a", 31: "s", 32: "d", 33: "f", 34: "g", 35: "h", 36: "j", 37: "k", 38: "l",
    44: "z", 45: "x", 46: "c", 47: "v", 48: "b", 49: "n", 50: "m",
}
# Keypad keys type the same with or without Shift (Num Lock is assumed on).
_KEYPAD = {
    71: "7", 72: "8", 73: "9", 74: "-", 75: "4", 76: "5", 77: "6", 78: "+", 79: "1", 80: "2",
    81: "3", 82: "0", 83: ".", 98: "/", 55: "*", 121: ",",
}
KEY_ENTER, KEY_KPENTER, KEY_TAB, KEY_BACKSPACE = 28, 96, 15, 14
KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_CAPSLOCK = 42, 54, 58
KEY_ESC = 1


class KeyTranslator:
    """Key events to bytes: characters, ``\\n`` for Enter, ``\\t`` for Tab, ``\\b`` for Backspace.

    ``feed(event)`` takes any object with ``type``, ``code`` and ``value`` (an
    ``evdev.InputEvent``) and returns the bytes it typed (usually one or none).
    """

    def __init__(self):
        self.shift = 0
        self.caps = False

    def feed(self, event) -> bytes:
        if event.type != EV_KEY:
            return b""
        code, value = event.code, event.value
        if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            if value == KEY_DOWN:
                self.shift += 1
            elif value == KEY_UP:
                self.shift = max(0, self.shift - 1)
            return b""
        if value not in (KEY_DOWN, KEY_REPEAT):
            return b""
        if code == KEY_CAPSLOCK:
            if value == KEY_DOWN:
                self.caps = not self.caps
            return b""
        if code in (KEY_ENTER, KEY_KPENTER):
            return b"\n"
        if code == KEY_TAB:
            return b"\t"
        if code == KEY_BACKSPACE:
            return b"\b"
        if code == KEY_ESC:
            return b"\x1b"
        shifted = self.shift > 0
        if code in _LETTERS:
            ch = _LETTERS[code]
            return (ch.upper() if shifted != self.caps else ch).encode()
        if code in _ROWS:
            return _ROWS[code][1 if shifted else 0].encode()
        if code in _KEYPAD:
            return _KEYPAD[code].encode()
        return b""


class KeyLineReader:
    """Key events to complete codes: ``KeyTranslator`` plus ``LineFramer`` with a timeout.

    Backspace deletes the last typed character, Escape drops the whole half-typed code, and a
    code left half-typed for ``timeout_s`` is dropped when the next key arrives or on
    ``expire(now)``.
    """

    def __init__(self, timeout_s: float = 20.0, max_length: int = DEFAULT_MAX_LENGTH):
        self.keys = KeyTranslator()
        self.framer = LineFramer(max_length, stale_after=timeout_s)

    def feed(self, event, now: float) -> list[bytes]:
        typed = self.keys.feed(event)
        if not typed:
            return []
        if typed == b"\b":
            self.framer.expire(now)
            self.framer.backspace()
            self.framer.feed(b"", now)
            return []
        if typed == b"\x1b":
            self.framer.reset()
            return []
        return [strip_aim(line) for line in self.framer.feed(typed, now)]

    def expire(self, now: float) -> bool:
        return self.framer.expire(now)

    @property
    def partial(self) -> bytes:
        return self.framer.partial


def _import_evdev():
    try:
        import evdev
    except ImportError as e:
        raise BackendUnavailable(f"the keyboard scanner needs evdev ({e}); install it with "
                                 "`pip install antrean[keyboard]` or pick another "
                                 "scanner.kind") from None
    return evdev


class KeyboardScanner(ScannerBackend):
    kind = "keyboard"

    def __init__(self, device: str, *, on_payload: PayloadCallback,
                 on_state: StateCallback | None = None, timeout_s: float = 20.0,
                 grab: bool = True, retry_s: float = 0.5, poll_s: float = 0.2,
                 max_length: int = DEFAULT_MAX_LENGTH):
        super().__init__(on_payload, on_state)
        self.evdev = _import_evdev()
        self.device_path = device
        self.grab = grab
        self.retry_s = retry_s
        self.poll_s = poll_s
        self.reader = KeyLineReader(timeout_s, max_length)

    @classmethod
    def from_config(cls, scanner, *, on_payload, on_state=None, stdin_fd=None):
        return cls(scanner.device, on_payload=on_payload, on_state=on_state,
                   timeout_s=scanner.keypad_timeout_s)

    def _open(self):
        if not self.device_path:
            self._set_state(False, "keyboard scanner: scanner.device is empty; set it to the "
                                   "/dev/input/by-id/...-event-kbd path of the scanner")
            return None
        try:
            dev = self.evdev.InputDevice(self.device_path)
        except OSError as e:
            self._set_state(False, f"keyboard scanner {self.device_path} cannot be opened "
                                   f"({e.strerror}); check the cable and scanner.device; "
                                   "retrying")
            return None
        if self.grab:
            try:
                dev.grab()
            except OSError as e:
                dev.close()
                self._set_state(False, f"keyboard scanner {self.device_path} is grabbed by "
                                       f"another program ({e.strerror}); retrying")
                return None
        return dev

    def _describe(self, handle) -> str:
        return f"keyboard scanner {handle.name!r} on {self.device_path}"

    def _forget_partial(self) -> None:
        self.reader.framer.reset()

    def _read_until_gone(self, dev) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([dev.fd], [], [], self.poll_s)
                events = list(dev.read()) if ready else []
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    continue
                self._set_state(False, f"keyboard scanner {self.device_path} went away "
                                       f"({e.strerror}); waiting for it to come back")
                return
            now = time.monotonic()
            if not events:
                self.reader.expire(now)
                continue
            for event in events:
                for line in self.reader.feed(event, now):
                    self._emit(line)
