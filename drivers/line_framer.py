"""Turn a byte stream from a reader into complete lines, with bounded memory.

Barcode scanners end a code with CR, LF, CRLF or TAB. A line is complete only when its
terminator arrives; a read timeout never completes a line (a scanner on a slow UART may
pause mid-code), but with ``stale_after`` a partial line that stays silent that long is
dropped (the serial and keypad backends: noise must not glue onto the next code). Empty
lines are skipped, so CRLF never yields a second, empty line. A line longer than
``max_length`` keeps only its first ``max_length`` bytes: the framer discards the rest until
the next terminator, resynchronises, and returns the kept part as an ``OverlongLine`` so
that garbage still gets its (``unreadable``) verdict. 1 MiB of garbage
costs at most ``max_length`` bytes. ``max_length`` (4096) is above the longest payload the
check-in accepts (2048 characters), so a truncated line can never pass as a ticket.

The serial, keyboard-wedge and stdin backends all use this one class.

Example::

    >>> f = LineFramer(max_length=16)
    >>> f.feed(b"K7Q2M9XA\\r\\nABC")
    [b'K7Q2M9XA']
    >>> f.feed(b"DEF\\t")
    [b'ABCDEF']
"""

from __future__ import annotations

import re

TERMINATORS = b"\r\n\t"
DEFAULT_MAX_LENGTH = 4096
# An AIM symbology identifier: ']' + symbology letter + modifier character (e.g. ]Q1, ]C0).
_AIM_RE = re.compile(rb"^\][A-Za-z][0-9A-Za-z]")


class OverlongLine(bytes):
    """The first ``max_length`` bytes of a line that was longer; the rest was discarded."""


def strip_aim(line: bytes) -> bytes:
    """Remove a leading AIM symbology identifier (``]Q1``, ``]C0``, ...), if any."""
    if isinstance(line, OverlongLine):
        return line
    return _AIM_RE.sub(b"", line, count=1)


class LineFramer:
    """Split bytes into complete lines; bounded, resynchronising, never blocking."""

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH, *,
                 stale_after: float | None = None):
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        self.max_length = max_length
        self.stale_after = stale_after
        self._buf = bytearray()
        self._discarding = False
        self._last_at: float | None = None
        self.dropped_long = 0
        self.dropped_stale = 0

    @property
    def partial(self) -> bytes:
        """The bytes of the line not yet terminated (at most ``max_length``)."""
        return bytes(self._buf)

    @property
    def discarding(self) -> bool:
        """True while skipping the rest of an over-long line."""
        return self._discarding

    def feed(self, data: bytes, now: float | None = None) -> list[bytes]:
        """Add ``data``; return the lines it completed (without terminators)."""
        if now is not None:
            self.expire(now)
            self._last_at = now
        lines: list[bytes] = []
        start = 0
        n = len(data)
        ends = _terminators(data)
        while start < n:
            end = next(ends, -1)
            chunk = data[start:n if end < 0 else end]
            if not self._discarding:
                room = self.max_length - len(self._buf)
                if len(chunk) > room:
                    self._buf += chunk[:room]
                    self._discarding = True
                    self.dropped_long += 1
                else:
                    self._buf += chunk
            if end < 0:
                break
            if self._discarding:
                self._discarding = False
                lines.append(OverlongLine(self._buf))
                self._buf.clear()
            elif self._buf:
                lines.append(bytes(self._buf))
                self._buf.clear()
            start = end + 1
        return lines

    def backspace(self) -> None:
        """Delete the last byte of the partial line (a keypad's Backspace key)."""
        if self._buf and not self._discarding:
            del self._buf[-1]

    def touch(self, now: float) -> None:
        """Restart the silence clock: the caller was busy, not the device quiet."""
        if self._last_at is not None:
            self._last_at = now

    def expire(self, now: float) -> bool:
        """Drop a partial line idle for longer than ``stale_after``; True if one was dropped."""
        if (self.stale_after is not None and self._last_at is not None
                and (self._buf or self._discarding) and now - self._last_at > self.stale_after):
            self.reset()
            self.dropped_stale += 1
            return True
        return False

    def reset(self) -> None:
        """Forget any partial line (the device went away)."""
        self._buf.clear()
        self._discarding = False


def _terminators(data: bytes):
    """The positions of every CR, LF and TAB in ``data``, in order.

    Each kind is searched forward from its own last hit, so a feed costs at most one pass
    over ``data`` per kind: searching all three afresh for each line would rescan to the end
    for every kind a flood lacks (a million LF-ended lines and no TAB: quadratic)."""
    upcoming = {t: data.find(t) for t in TERMINATORS}
    while True:
        found = [i for i in upcoming.values() if i >= 0]
        if not found:
            return
        i = min(found)
        yield i
        for t, at in upcoming.items():
            if at == i:
                upcoming[t] = data.find(t, i + 1)
