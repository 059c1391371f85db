"""A thermal slip printer behind one of the three connections: ask, print, report.

``ThermalPrinter.print_slip`` opens the connection, asks the printer whether it can print
(where it can be asked), sends the whole slip, asks again (this confirms the bytes arrived
over serial or the network, and notices paper that ran out on this slip), and closes. A
printer that is not ready raises ``PrinterNotReady`` before any byte of the slip is sent, so
the caller can retry later without a half slip on the paper.

Example::

    >>> from appliance.slip import Text
    >>> from devtools.printer_doubles import NetworkPrinterDouble
    >>> with NetworkPrinterDouble() as double:      # a printer on 127.0.0.1, port double.port
    ...     printer = ThermalPrinter(lambda: NetworkConnection("127.0.0.1", double.port))
    ...     print(printer.print_slip([Text("A012", size=4)]).describe())
    ...     "A012" in double.wait_for_receipts(1)[0].text
    ready
    True
"""

from __future__ import annotations

import logging

from drivers.printer.connection import (
    Connection,
    FileConnection,
    NetworkConnection,
    SerialConnection,
)
from drivers.printer.errors import PrinterError, PrinterNotReady
from drivers.printer.render import load_logo, render
from drivers.printer.status import PrinterStatus

log = logging.getLogger("antrean.drivers.printer")


class ThermalPrinter:
    def __init__(self, connect, *, width_mm: int = 80, ask_status: bool = True,
                 cut: bool = True, logo_path: str = ""):
        self._connect = connect
        self.width_mm = width_mm
        self.ask_status = ask_status
        self.cut = cut
        self.logo_path = logo_path
        self.logo_problem: str | None = None
        self._logo = None
        if logo_path:
            try:
                self._logo = load_logo(logo_path, width_mm)
            except (OSError, ValueError) as e:
                # Degrade: slips without the logo beat no slips.
                self.logo_problem = f"logo {logo_path} cannot be used ({e}); printing without"
                log.warning("%s", self.logo_problem)

    @property
    def name(self) -> str:
        """Where the printer is, e.g. ``network printer 192.168.1.50:9100``."""
        conn: Connection = self._connect()
        return conn.describe()

    def describe(self) -> str:
        status = "DLE EOT status" if self.ask_status else "no status requests"
        return f"{self.name}, {self.width_mm} mm, {status}"

    def _status(self, conn: Connection) -> PrinterStatus:
        if not self.ask_status:
            return PrinterStatus(False, source="printer.status = none")
        return conn.ask_status()

    def check(self) -> PrinterStatus:
        """The printer's condition now; raises ``PrinterError`` when it cannot be reached."""
        with self._connect() as conn:
            return self._status(conn)

    def render(self, elements) -> bytes:
        return render(elements, width_mm=self.width_mm, cut=self.cut, logo=self._logo)

    def print_bytes(self, data: bytes) -> PrinterStatus:
        """Send one rendered job; returns the printer's condition after it."""
        with self._connect() as conn:
            before = self._status(conn)
            if not before.ready:
                raise PrinterNotReady(before, conn.describe())
            conn.write(data)
            try:
                return self._status(conn)
            except PrinterError as e:
                # The slip was handed over; what happens next is the next slip's problem.
                log.warning("after printing: %s", e)
                return PrinterStatus(False, source=str(e))

    def print_slip(self, elements) -> PrinterStatus:
        return self.print_bytes(self.render(elements))


def printer_from_config(section) -> ThermalPrinter | None:
    """The printer ``[printer]`` describes, or None for ``kind = "none"``."""
    kind = section.kind
    timeouts = {"timeout_s": section.timeout_s, "status_timeout_s": section.status_timeout_s}
    if kind == "file":
        def connect():
            return FileConnection(section.device, **timeouts)
    elif kind == "serial":
        def connect():
            return SerialConnection(section.device, section.baudrate, section.flow_control,
                                    **timeouts)
    elif kind == "network":
        def connect():
            return NetworkConnection(section.host, section.port, **timeouts)
    else:
        return None
    return ThermalPrinter(connect, width_mm=section.width, ask_status=section.status == "auto",
                          cut=section.cut, logo_path=section.logo)
