"""What a thermal printer says about itself, in one small value.

Two sources, depending on how the printer is connected:

- ESC/POS real-time status (``DLE EOT n``), answered with one byte by the printer itself over
  a serial line or the network: ``n = 1`` printer status (offline), ``n = 2`` offline cause
  (cover open, paper end, error), ``n = 4`` roll paper sensor (near end, end). Every valid
  reply has bits 1 and 4 set and bits 0 and 7 clear (``byte & 0x93 == 0x12``); anything else
  is not a status byte.
- The Linux line-printer port status (``ioctl LPGETSTATUS``), which the kernel's ``usblp``
  driver answers from the USB printer class's GET_PORT_STATUS request: paper out,
  selected (online), error. It cannot tell a cover that is open from any other offline cause.

Example::

    >>> from_realtime(0x12, 0x16, 0x12).problem
    'cover_open'
    >>> from_lp_status(0x18).problem is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass

# The problems a status can name, most specific first; each is also a state of the printer
# service (docs/printer.md lists them all).
PROBLEMS = ("paper_out", "cover_open", "offline", "error")

DLE_EOT = b"\x10\x04"
ASK_PRINTER = DLE_EOT + b"\x01"
ASK_OFFLINE_CAUSE = DLE_EOT + b"\x02"
ASK_PAPER = DLE_EOT + b"\x04"

# Linux <linux/lp.h>: the port status bits LPGETSTATUS returns.
LPGETSTATUS = 0x060B
LPABORT = 0x0604
LP_POUTPA = 0x20    # paper out
LP_PSELECD = 0x10   # selected: online
LP_PERRORP = 0x08   # active low: 0 means the printer reports an error


def is_status_byte(value: int) -> bool:
    """True if ``value`` has the fixed bits every ``DLE EOT`` reply has."""
    return 0 <= value <= 255 and value & 0x93 == 0x12


@dataclass(frozen=True)
class PrinterStatus:
    """A printer's condition; ``known=False`` when the connection cannot ask."""

    known: bool
    online: bool = True
    paper_out: bool = False
    paper_low: bool = False
    cover_open: bool = False
    error: bool = False
    source: str = ""

    @property
    def problem(self) -> str | None:
        """The reason it cannot print now (one of ``PROBLEMS``), or None."""
        if not self.known:
            return None
        if self.paper_out:
            return "paper_out"
        if self.cover_open:
            return "cover_open"
        if self.error:
            return "error"
        if not self.online:
            return "offline"
        return None

    @property
    def ready(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        if not self.known:
            return f"status not available ({self.source})" if self.source else "status unknown"
        words = {"paper_out": "paper out", "cover_open": "cover open", "error": "printer error",
                 "offline": "offline"}
        text = words.get(self.problem or "", "ready")
        if self.paper_low and not self.paper_out:
            text += ", paper low"
        return text


UNKNOWN = PrinterStatus(known=False)


def from_realtime(printer: int, offline_cause: int | None, paper: int | None) -> PrinterStatus:
    """Combine the replies to ``DLE EOT 1``, ``2`` and ``4`` (None: that one was not asked)."""
    online = not printer & 0x08
    cover = bool(offline_cause is not None and offline_cause & 0x04)
    paper_end_stop = bool(offline_cause is not None and offline_cause & 0x20)
    error = bool(offline_cause is not None and offline_cause & 0x40)
    paper_out = paper_end_stop or bool(paper is not None and paper & 0x60 == 0x60)
    paper_low = bool(paper is not None and paper & 0x0C == 0x0C)
    return PrinterStatus(True, online=online, paper_out=paper_out, paper_low=paper_low,
                         cover_open=cover, error=error, source="DLE EOT")


def from_lp_status(value: int) -> PrinterStatus:
    """The port status byte of ``LPGETSTATUS`` (usblp, parport)."""
    return PrinterStatus(True, online=bool(value & LP_PSELECD), paper_out=bool(value & LP_POUTPA),
                         error=not value & LP_PERRORP, source="LPGETSTATUS")
