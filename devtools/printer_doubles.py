"""Real printer doubles: a TCP listener and a pseudo-terminal that behave like ESC/POS printers.

They take bytes the way a printer does, decode everything that arrives
(``devtools.escpos_decode``) and answer ``DLE EOT`` real-time status requests from their
current condition, which a test or the demo changes at will: paper out, cover open, offline,
silent (a printer that never answers). ``NetworkPrinterDouble.stop()`` takes the listener
down (connections are refused, as with a printer switched off); ``SerialPrinterDouble.unplug()``
closes the pty and removes its link, as when the cable is pulled.

Example::

    >>> import socket
    >>> with NetworkPrinterDouble() as printer:
    ...     with socket.create_connection(("127.0.0.1", printer.port)) as sock:
    ...         sock.sendall(b"\\x1b@A012\\n\\x1dV\\x00")     # initialise, a line, full cut
    ...     printer.wait_for_receipts(1)[0].text
    'A012'
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time

from devtools.escpos_decode import Decoder, Receipt
from devtools.virtual_serial import VirtualSerialScanner


class PrinterModel:
    """The printer's condition and everything it was sent (shared by both doubles)."""

    def __init__(self):
        self.decoder = Decoder()
        self.paper_out = False
        self.paper_low = False
        self.cover_open = False
        self.offline = False
        self.silent = False
        # Fall silent once this many slips are in (a printer dying right after a slip).
        self.mute_after_receipts: int | None = None
        self._changed = threading.Condition()

    def answer(self, n: int) -> bytes:
        """The one-byte reply to ``DLE EOT n`` (nothing while ``silent``)."""
        muted = self.mute_after_receipts is not None and \
            len(self.decoder.receipts) >= self.mute_after_receipts
        if self.silent or muted:
            return b""
        value = 0x12
        stopped = self.paper_out or self.cover_open or self.offline
        if n == 1 and stopped:
            value |= 0x08
        elif n == 2:
            value |= (0x04 if self.cover_open else 0) | (0x20 if self.paper_out else 0)
        elif n == 4:
            value |= (0x60 if self.paper_out else 0) | (0x0C if self.paper_low else 0)
        return bytes([value])

    def receive(self, data: bytes) -> bytes:
        """Take bytes as the printer would; returns the replies owed to the sender."""
        asked = self.decoder.feed(data)
        with self._changed:
            self._changed.notify_all()
        return b"".join(self.answer(n) for n in asked)

    @property
    def receipts(self) -> list[Receipt]:
        """The slips cut so far."""
        return list(self.decoder.receipts)

    def _wait(self, count, what: tuple[int, str], timeout: float) -> None:
        """Until ``count()`` reaches ``what``'s number; TimeoutError naming what is missing."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (have := count()) < what[0]:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{have} of {what[0]} {what[1]} arrived within "
                                       f"{timeout:g} s")
                self._changed.wait(left)

    def wait_for_receipts(self, count: int, timeout: float = 30.0) -> list[Receipt]:
        self._wait(lambda: len(self.decoder.receipts), (count, "slips"), timeout)
        return self.receipts

    def wait_for_status_requests(self, count: int, timeout: float = 30.0) -> None:
        self._wait(lambda: len(self.decoder.status_requests), (count, "status requests"),
                   timeout)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NetworkPrinterDouble(PrinterModel):
    """A raw-TCP (port 9100 style) printer on loopback; one connection at a time."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        super().__init__()
        self.host = host
        self.port = port
        self.connections = 0
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.start()

    def start(self) -> None:
        """Listen (again, on the same port after ``stop()``)."""
        if self._listener is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(1)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(sock, self._stop),
                                        daemon=True, name="printer-double")
        self._thread.start()

    def stop(self) -> None:
        """Take the listener down: new connections are refused."""
        sock, self._listener = self._listener, None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if sock is not None:
            sock.close()

    def _serve(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if not select.select([listener], [], [], 0.1)[0]:
                    continue
                conn, _ = listener.accept()
            except (OSError, ValueError):   # stop() closed the listener
                return
            self.connections += 1
            with conn:
                self._talk(conn, stop)

    def _talk(self, conn: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            ready, _, _ = select.select([conn], [], [], 0.1)
            if not ready:
                continue
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            reply = self.receive(data)
            if reply:
                try:
                    conn.sendall(reply)
                except OSError:
                    return

    def close(self) -> None:
        self.stop()


class SerialPrinterDouble(PrinterModel):
    """A printer on a pseudo-terminal behind ``path`` (a link, like /dev/serial/by-id/...)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.pty = VirtualSerialScanner(path)   # the same pty and link a scanner double has
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._listen()

    def _listen(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(self.pty.master, self._stop),
                                        daemon=True, name="printer-double-pty")
        self._thread.start()

    def replug(self) -> None:
        self.unplug()
        self.pty.replug()
        self._listen()

    def unplug(self) -> None:
        """The cable is pulled: the link goes, the pty closes (writes to it fail)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.pty.unplug()

    def _serve(self, master: int, stop: threading.Event) -> None:
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            reply = self.receive(data)
            if reply:
                try:
                    os.write(master, reply)
                except OSError:
                    return

    def close(self) -> None:
        self.unplug()
