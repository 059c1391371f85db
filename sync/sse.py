"""The push stream's wire format (``text/event-stream``), parsed as the bytes arrive.

Three promises the sync service depends on:

- an event is handed over as soon as its blank line arrives, never held until more bytes or
  the end of the connection come (the caller feeds each read as it returns);
- framing is linear in the bytes received: each byte is scanned and copied a bounded number
  of times however the lines fall across reads (256 KiB of comment lines is one pass, not
  one copy of the rest of the buffer per line);
- an ``id`` is kept only when it can go back to the server as a ``Last-Event-ID`` header
  (see :func:`valid_event_id`); any other id is ignored, like the SSE spec ignores an id
  holding NUL, so a hostile or broken id can never make the next reconnect fail.

Example::

    >>> p = SseParser()
    >>> p.feed(b"id: 7\\nevent: call\\ndata: {}\\n")
    []
    >>> p.feed(b"\\n")
    [SseEvent(id='7', event='call', data='{}')]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sync.client import ServerUnreachable

MAX_LINE = 1024 * 1024        # one line, and one event's data, at most 1 MiB
MAX_EVENT_ID = 256            # a resume point is a short token, not a document


def _edge_ok(c: str) -> bool:
    return "!" <= c <= "~" or "\xa1" <= c <= "\xff"


def _inner_ok(c: str) -> bool:
    return " " <= c <= "~" or "\xa0" <= c <= "\xff"


def valid_event_id(value) -> bool:
    """Whether ``value`` can be sent back as a ``Last-Event-ID`` header value.

    1 to 256 printable ASCII or Latin-1 characters, blanks allowed only inside: what HTTP
    (RFC 9110 field-value) and ``requests``/``http.client`` accept, so a saved id can never
    make the request itself fail.
    """
    if not isinstance(value, str) or not 0 < len(value) <= MAX_EVENT_ID:
        return False
    return _edge_ok(value[0]) and _edge_ok(value[-1]) and all(_inner_ok(c) for c in value)


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: str


class SseParser:
    """Incremental ``text/event-stream`` parser: :meth:`feed` bytes, get events.

    Yields ``None`` for each comment line (the server's keepalive), so the caller can tell a
    live stream from a silent one. A block holding only ``id:`` comes out with empty
    ``event`` and ``data``: it sets the resume point (the reference server sends one on
    connect) and is otherwise not an event. An event cut off by the end of the connection is
    never yielded (it arrives again on resume, since its id was never seen).

    ``on_bad_id(value)`` is called for each ``id`` that :func:`valid_event_id` refuses.
    """

    def __init__(self, last_id: str | None = None,
                 on_bad_id: Callable[[str], None] | None = None):
        self.last_id = last_id if valid_event_id(last_id) else None
        self.on_bad_id = on_bad_id
        self._parts: list[bytes] = []    # the line not yet terminated, in pieces
        self._partial = 0
        self._skip_lf = False            # the last read ended in CR: its LF may follow
        self._name = ""
        self._data: list[str] = []
        self._size = 0
        self._has_field = False

    def feed(self, chunk: bytes) -> list[SseEvent | None]:
        """Add the bytes of one read; returns what they completed, in order."""
        out: list[SseEvent | None] = []
        for line in self._lines(chunk):
            self._line(line, out)
        return out

    def _lines(self, chunk: bytes) -> list[bytes]:
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\n" not in chunk and b"\r" not in chunk:
            self._hold(chunk)
            return []
        data = b"".join([*self._parts, chunk]) if self._parts else chunk
        self._parts, self._partial = [], 0
        lines = data.splitlines(keepends=True)   # bytes split only at CR, LF and CRLF
        if not lines[-1].endswith((b"\n", b"\r")):
            self._hold(lines.pop())
        elif lines[-1].endswith(b"\r"):
            self._skip_lf = True
        return [line.rstrip(b"\r\n") for line in lines]

    def _hold(self, piece: bytes) -> None:
        if not piece:
            return
        self._parts.append(piece)
        self._partial += len(piece)
        if self._partial > MAX_LINE:
            raise ServerUnreachable("push stream: a line longer than 1 MiB")

    def _line(self, raw: bytes, out: list) -> None:
        if not raw:
            if self._has_field and self._data:
                out.append(SseEvent(self.last_id, self._name or "message",
                                    "\n".join(self._data)))
            elif self._has_field and self.last_id:
                out.append(SseEvent(self.last_id, "", ""))   # only moves the resume point
            self._name, self._data, self._size, self._has_field = "", [], 0, False
            return
        if raw[:1] == b":":
            out.append(None)
            return
        line = raw.decode("utf-8", "replace")
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        self._has_field = True
        if field == "event":
            self._name = value
        elif field == "data":
            self._data.append(value)
            self._size += len(value)
            if self._size > MAX_LINE:   # one event, however many data lines, stays bounded
                raise ServerUnreachable("push stream: an event larger than 1 MiB")
        elif field == "id":
            if valid_event_id(value):
                self.last_id = value
            elif value and self.on_bad_id is not None:
                self.on_bad_id(value)


def sse_events(chunks: Iterable[bytes], parser: SseParser | None = None
               ) -> Iterator[SseEvent | None]:
    """Events (and ``None`` per comment) from an iterable of reads, each as soon as it is
    complete."""
    parser = parser or SseParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
