"""Read ESC/POS bytes back into what a printer would put on paper.

The printer doubles (``devtools.printer_doubles``) feed every byte they receive through a
``Decoder``; tests then check what the slip says, and ``devtools.slip_preview`` draws it.
It is written from the ESC/POS command reference, independently of python-escpos (which
builds the bytes), and it is strict: a command it does not know is a ``DecodeError``, so
stray bytes on the wire never pass unnoticed.

Understood: text in the usual code pages, LF, ``ESC @ ! E - a t M { G V d J 2 3 p *``,
``GS ! B b V v0 ( k L W h w H f``, real-time ``DLE EOT``/``DLE ENQ``. Receipts end at a cut
(``GS V``). QR codes (``GS ( k``) and raster images (``GS v 0``) are kept as data.

Example::

    >>> d = Decoder()
    >>> d.feed(b"\\x1b@\\x1d!\\x77A012\\n\\x1dV\\x00")
    []
    >>> d.receipts[0].lines[0].text, d.receipts[0].lines[0].width
    ('A012', 8)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

ESC, GS, DLE, FS = 0x1B, 0x1D, 0x10, 0x1C
CODE_PAGES = {0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 16: "cp1252",
              17: "cp866", 18: "cp852", 19: "cp858"}
ALIGN = {0: "left", 1: "center", 2: "right", 48: "left", 49: "center", 50: "right"}
# ESC/GS commands with one parameter byte that only change state we do not draw.
ESC_ONE_ARG = set(b"-MGVJR3c{U")
GS_ONE_ARG = set(b"bhwHfarI")


class DecodeError(ValueError):
    """The bytes are not ESC/POS this decoder knows."""


@dataclass(frozen=True)
class Style:
    width: int = 1
    height: int = 1
    bold: bool = False
    align: str = "left"
    code_page: int = 0


@dataclass(frozen=True)
class Span:
    text: str
    style: Style


@dataclass(frozen=True)
class Line:
    """One printed line: spans of text, each in its own style."""

    spans: tuple[Span, ...]
    align: str = "left"

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.spans)

    @property
    def width(self) -> int:
        return max((s.style.width for s in self.spans), default=1)

    @property
    def height(self) -> int:
        return max((s.style.height for s in self.spans), default=1)

    @property
    def bold(self) -> bool:
        return any(s.style.bold for s in self.spans if s.text.strip())


@dataclass(frozen=True)
class Raster:
    """A ``GS v 0`` raster image: ``rows`` of ``width_bytes`` bytes, 1 bits are black."""

    width_bytes: int
    height: int
    data: bytes
    align: str = "left"

    @property
    def width(self) -> int:
        return self.width_bytes * 8

    def pixel(self, x: int, y: int) -> bool:
        return bool(self.data[y * self.width_bytes + x // 8] & (0x80 >> (x % 8)))


@dataclass(frozen=True)
class QRCode:
    data: bytes
    module_size: int = 3
    align: str = "left"


@dataclass
class Receipt:
    """What came out between two cuts (``cut`` is None for paper not cut yet)."""

    items: list = field(default_factory=list)
    cut: str | None = None  # 'full' | 'partial' | None

    @property
    def lines(self) -> list[Line]:
        return [i for i in self.items if isinstance(i, Line)]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def find(self, text: str) -> Line:
        """The first line containing ``text``; KeyError if none does."""
        for line in self.lines:
            if text in line.text:
                return line
        raise KeyError(f"no line contains {text!r}; the receipt says:\n{self.text}")


class Decoder:
    """Incremental: ``feed()`` any chunking of the stream; complete receipts accumulate.

    ``feed`` returns the real-time status requests (``DLE EOT n``: the ``n`` values) found in
    the new bytes, so a printer double can answer them in order. Thread-safe.
    """

    def __init__(self):
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.style = Style()
        self.receipts: list[Receipt] = []
        self.current = Receipt()
        self._spans: list[Span] = []
        self._line_align = "left"
        self._qr = b""
        self._qr_size = 3
        self._graphics: Raster | None = None
        self.status_requests: list[int] = []
        self.raw = bytearray()

    def feed(self, data: bytes) -> list[int]:
        with self._lock:
            self._buf += data
            self.raw += data
            asked: list[int] = []
            pos = 0
            while pos < len(self._buf):
                end = self._step(pos, asked)
                if end is None:
                    break
                pos = end
            del self._buf[:pos]
            return asked

    @property
    def pending(self) -> bytes:
        """Bytes of an incomplete command waiting for the rest."""
        return bytes(self._buf)

    def all_receipts(self) -> list[Receipt]:
        """The cut receipts and, if anything was printed since the last cut, the uncut one."""
        with self._lock:
            tail = Receipt(list(self.current.items)) if self.current.items or self._spans \
                else None
            if tail is not None and self._spans:
                tail.items.append(Line(tuple(self._spans), self._line_align))
            return list(self.receipts) + ([tail] if tail else [])

    # the command table --------------------------------------------------------------

    def _step(self, pos: int, asked: list[int]) -> int | None:
        """Decode one command or text run at ``pos``; its end, or None if incomplete."""
        b = self._buf
        c = b[pos]
        if c >= 0x20:
            end = pos
            while end < len(b) and b[end] >= 0x20:
                end += 1
            self._text(bytes(b[pos:end]))
            return end
        if c == 0x0A:
            self._newline()
            return pos + 1
        if c in (0x0D, 0x00):
            return pos + 1
        if c == 0x09:
            self._text(b" ")
            return pos + 1
        if c == ESC:
            return self._esc(pos)
        if c == GS:
            return self._gs(pos)
        if c == DLE:
            return self._dle(pos, asked)
        if c == FS:
            return self._fs(pos)
        raise DecodeError(f"unexpected control byte 0x{c:02x} at offset {pos}")

    def _need(self, pos: int, n: int) -> bool:
        return pos + n <= len(self._buf)

    def _esc(self, pos: int) -> int | None:
        b = self._buf
        if not self._need(pos, 2):
            return None
        cmd = b[pos + 1]
        if cmd == ord("@"):
            self._flush_line()
            self.style = Style()
            return pos + 2
        if cmd == ord("2"):
            return pos + 2
        if cmd == ord("p"):
            return pos + 5 if self._need(pos, 5) else None
        if cmd == ord("B"):
            return pos + 4 if self._need(pos, 4) else None
        if cmd == ord("*"):
            if not self._need(pos, 5):
                return None
            m, n = b[pos + 2], b[pos + 3] | b[pos + 4] << 8
            end = pos + 5 + n * (1 if m in (0, 1) else 3)
            return end if end <= len(b) else None
        if not self._need(pos, 3):
            return None
        n = b[pos + 2]
        if cmd == ord("!"):
            self.style = replace(self.style, bold=bool(n & 0x08), height=2 if n & 0x10 else 1,
                                 width=2 if n & 0x20 else 1)
        elif cmd == ord("E"):
            self.style = replace(self.style, bold=bool(n & 1))
        elif cmd == ord("a"):
            if n not in ALIGN:
                raise DecodeError(f"ESC a {n}: no such alignment")
            self.style = replace(self.style, align=ALIGN[n])
        elif cmd == ord("t"):
            if n not in CODE_PAGES:
                raise DecodeError(f"ESC t {n}: code page not known to the decoder")
            self.style = replace(self.style, code_page=n)
        elif cmd == ord("d"):
            self._flush_line()
            self._blank_lines(n)
        elif cmd not in ESC_ONE_ARG:
            raise DecodeError(f"unknown command ESC 0x{cmd:02x} at offset {pos}")
        return pos + 3

    def _gs(self, pos: int) -> int | None:
        b = self._buf
        if not self._need(pos, 3):
            return None
        cmd, n = b[pos + 1], b[pos + 2]
        if cmd == ord("!"):
            self.style = replace(self.style, width=(n >> 4 & 7) + 1, height=(n & 7) + 1)
            return pos + 3
        if cmd == ord("V"):
            if n in (0, 1, 48, 49):
                end = pos + 3
            elif n in (65, 66, 97, 98, 103, 104):
                if not self._need(pos, 4):
                    return None
                end = pos + 4
            else:
                raise DecodeError(f"GS V {n}: no such cut")
            self._cut("partial" if n in (1, 49, 66, 98, 104) else "full")
            return end
        if cmd == ord("v"):
            if not self._need(pos, 8):
                return None
            xb, yb = b[pos + 4] | b[pos + 5] << 8, b[pos + 6] | b[pos + 7] << 8
            end = pos + 8 + xb * yb
            if end > len(b):
                return None
            self._flush_line()
            self.current.items.append(Raster(xb, yb, bytes(b[pos + 8:end]), self.style.align))
            return end
        if cmd == ord("("):
            if not self._need(pos, 5):
                return None
            size = b[pos + 3] | b[pos + 4] << 8
            end = pos + 5 + size
            if end > len(b):
                return None
            self._function(n, bytes(b[pos + 5:end]))
            return end
        if cmd == ord("k"):
            if n <= 6:
                try:
                    nul = b.index(0, pos + 3)
                except ValueError:
                    return None
                return nul + 1
            if not self._need(pos, 4):
                return None
            end = pos + 4 + b[pos + 3]
            return end if end <= len(b) else None
        if cmd in (ord("L"), ord("W")):
            return pos + 4 if self._need(pos, 4) else None
        if cmd == ord("B") or cmd in GS_ONE_ARG:
            return pos + 3
        raise DecodeError(f"unknown command GS 0x{cmd:02x} at offset {pos}")

    def _dle(self, pos: int, asked: list[int]) -> int | None:
        b = self._buf
        if not self._need(pos, 3):
            return None
        cmd, n = b[pos + 1], b[pos + 2]
        if cmd == 0x04:                      # DLE EOT n: real-time status request
            asked.append(n)
            self.status_requests.append(n)
            return pos + 3
        if cmd == 0x05:                      # DLE ENQ n: real-time recovery request
            return pos + 3
        if cmd == 0x14:                      # DLE DC4 fn a b
            return pos + 5 if self._need(pos, 5) else None
        raise DecodeError(f"unknown command DLE 0x{cmd:02x} at offset {pos}")

    def _fs(self, pos: int) -> int | None:
        b = self._buf
        if not self._need(pos, 2):
            return None
        cmd = b[pos + 1]
        if cmd in (ord("."), ord("&")):
            return pos + 2
        raise DecodeError(f"unknown command FS 0x{cmd:02x} at offset {pos}")

    def _function(self, fn: int, body: bytes) -> None:
        """``GS ( fn``: QR codes (``k``) and raster graphics (``L``); others only skipped."""
        if fn == ord("k") and len(body) >= 2 and body[0] == 49:     # cn = 49: QR code
            if body[1] == 67 and len(body) >= 3:
                self._qr_size = body[2]
            elif body[1] == 80:
                self._qr = body[3:]
            elif body[1] == 81:
                self._flush_line()
                self.current.items.append(QRCode(self._qr, self._qr_size, self.style.align))
        elif fn == ord("L") and len(body) >= 2:
            if body[1] == 112 and len(body) >= 10:                  # store raster graphics
                width, height = body[6] | body[7] << 8, body[8] | body[9] << 8
                xb = (width + 7) // 8
                self._graphics = Raster(xb, height, body[10:10 + xb * height], self.style.align)
            elif body[1] == 50 and self._graphics is not None:      # print stored graphics
                self._flush_line()
                self.current.items.append(self._graphics)

    # paper ----------------------------------------------------------------------------

    def _text(self, raw: bytes) -> None:
        codec = CODE_PAGES[self.style.code_page]
        if not self._spans:
            self._line_align = self.style.align
        self._spans.append(Span(raw.decode(codec), self.style))

    def _flush_line(self) -> None:
        if self._spans:
            self._newline()

    def _newline(self) -> None:
        align = self._line_align if self._spans else self.style.align
        self.current.items.append(Line(tuple(self._spans), align))
        self._spans = []

    def _blank_lines(self, n: int) -> None:
        for _ in range(n):
            self.current.items.append(Line((), self.style.align))

    def _cut(self, kind: str) -> None:
        self._flush_line()
        self.current.cut = kind
        self.receipts.append(self.current)
        self.current = Receipt()


def decode(data: bytes) -> list[Receipt]:
    """Every receipt in ``data`` (the last one uncut if paper was left hanging)."""
    d = Decoder()
    d.feed(data)
    if d.pending:
        raise DecodeError(f"the data ends inside a command: {d.pending[:16]!r}")
    return d.all_receipts()
