"""Printer faults, each with the state code the printer service shows for it.

The codes are the printer's visible states in ``antrean status`` and the heartbeat
(docs/printer.md): ``unplugged`` (device missing, connection refused, cable pulled),
``offline`` (the printer stopped taking data), ``not_answering`` (no reply to a status
request), and the problems a status names (``paper_out``, ``cover_open``, ``error``).
"""

from __future__ import annotations

from drivers.errors import DriverError
from drivers.printer.status import PrinterStatus


class PrinterError(DriverError):
    """The printer cannot print now; ``code`` says why in one word."""

    code = "error"


class PrinterUnavailable(PrinterError):
    """The device is missing or refuses the connection (unplugged, switched off)."""

    code = "unplugged"


class PrinterTimeout(PrinterError):
    """The printer stopped taking data within the timeout."""

    code = "offline"


class PrinterSilent(PrinterError):
    """The printer did not answer a real-time status request."""

    code = "not_answering"


class PrinterNotReady(PrinterError):
    """The printer answered, and what it said rules printing out (paper out, cover open...)."""

    def __init__(self, status: PrinterStatus, where: str = ""):
        self.status = status
        self.code = status.problem or "error"
        super().__init__(f"{where + ': ' if where else ''}{status.describe()}")
