"""The three ways a thermal printer is reached: a device file, a serial line, the network.

Each connection is opened for one job (a slip, a status check) and closed after it, so a
technician's test page or a reprint never finds the device held for good. Every call is
bounded by a deadline: a printer that stops taking data (paper out, cover open, switched off)
turns into a ``PrinterError`` within ``timeout_s``, never a hung service.

What each kind can tell about the printer:

- ``FileConnection`` (``/dev/usb/lp0`` through the kernel's ``usblp`` driver, or a parallel
  port): write-only. Status comes from the kernel's line-printer port status
  (``LPGETSTATUS``): paper out, offline, error; an open cover shows as offline or error at
  best. ``LPABORT`` is switched on so that a write to a printer out of paper fails
  (``ENOSPC``) instead of blocking forever. A regular file or a FIFO has no status at all.
- ``SerialConnection`` (pyserial) and ``NetworkConnection`` (raw TCP, port 9100): the printer
  answers ``DLE EOT`` real-time status requests, so paper out, paper low, cover open,
  offline and error are all seen; a printer that never answers is ``not_answering``.

Example::

    >>> from devtools.printer_doubles import NetworkPrinterDouble
    >>> with NetworkPrinterDouble() as double:      # a printer on 127.0.0.1, port double.port
    ...     with NetworkConnection("127.0.0.1", double.port) as conn:
    ...         conn.ask_status().ready
    True
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import stat
import struct
import time

from drivers.printer.errors import (
    PrinterError,
    PrinterNotReady,
    PrinterSilent,
    PrinterTimeout,
    PrinterUnavailable,
)
from drivers.printer.status import (
    ASK_OFFLINE_CAUSE,
    ASK_PAPER,
    ASK_PRINTER,
    LPABORT,
    LPGETSTATUS,
    PrinterStatus,
    from_lp_status,
    from_realtime,
    is_status_byte,
)

GONE_ERRNOS = (errno.ENODEV, errno.ENXIO, errno.ENOENT, errno.EBADF, errno.EPIPE)


class Connection:
    """One open channel to the printer; a context manager, ``close()`` twice is fine."""

    kind = "base"

    def __init__(self, *, timeout_s: float = 5.0, status_timeout_s: float = 1.0):
        self.timeout_s = timeout_s
        self.status_timeout_s = status_timeout_s

    def describe(self) -> str:
        raise NotImplementedError

    def open(self) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        """Hand ``data`` to the printer within ``timeout_s`` or raise ``PrinterError``."""
        raise NotImplementedError

    def ask_status(self) -> PrinterStatus:
        """The printer's condition now; ``known=False`` where this connection cannot ask."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Connection:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # the DLE EOT exchange shared by serial and network --------------------------------

    def _send_query(self, query: bytes) -> None:
        self.write(query)

    def _read_byte(self, deadline: float) -> int | None:
        """One byte from the printer before ``deadline``, or None on timeout."""
        raise NotImplementedError

    def _drop_input(self) -> None:
        """Forget unread bytes (a late reply) so the next reply is the one asked for."""

    def _query(self, query: bytes) -> int:
        self._drop_input()
        self._send_query(query)
        deadline = time.monotonic() + self.status_timeout_s
        while True:
            value = self._read_byte(deadline)
            if value is None:
                raise PrinterSilent(f"{self.describe()}: no answer to a status request within "
                                    f"{self.status_timeout_s:g} s; if this printer has no "
                                    "real-time status, set printer.status = \"none\"")
            if is_status_byte(value):
                return value

    def _realtime_status(self) -> PrinterStatus:
        printer = self._query(ASK_PRINTER)
        cause = self._query(ASK_OFFLINE_CAUSE)
        paper = self._query(ASK_PAPER)
        return from_realtime(printer, cause, paper)


class FileConnection(Connection):
    """A printer device file: usblp (``/dev/usb/lp0``), a parallel port, or a plain file."""

    kind = "file"

    def __init__(self, path: str, **kw):
        super().__init__(**kw)
        self.path = path
        self._fd: int | None = None
        self._char_device = False

    def describe(self) -> str:
        return f"printer {self.path}"

    def open(self) -> None:
        if self._fd is not None:
            return
        flags = os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            raise PrinterUnavailable(f"{self.describe()} does not exist: is it plugged in and "
                                     "switched on? (`ls -l /dev/usb/`)") from None
        except PermissionError:
            raise PrinterUnavailable(f"{self.describe()} cannot be opened by this user: the "
                                     "service needs group lp") from None
        except OSError as e:
            raise PrinterUnavailable(f"{self.describe()} cannot be opened: {e.strerror}") \
                from None
        self._fd = fd
        self._char_device = stat.S_ISCHR(os.fstat(fd).st_mode)
        if self._char_device:
            try:  # usblp: fail a blocked write on paper out instead of waiting forever
                fcntl.ioctl(fd, LPABORT, 1)
            except OSError:
                pass  # not a line printer (a pty double): nothing to switch

    def write(self, data: bytes) -> None:
        fd = self._require()
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout_s
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        while view:
            try:
                n = os.write(fd, view)
                view = view[n:]
                continue
            except BlockingIOError:
                pass
            except OSError as e:
                raise self._write_error(e) from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise PrinterTimeout(f"{self.describe()} took no data for {self.timeout_s:g} s:"
                                     " paper out, cover open or switched off?")
            for _fd, events in poller.poll(left * 1000):
                if events & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                    raise PrinterUnavailable(f"{self.describe()} went away while printing")

    def _write_error(self, e: OSError) -> PrinterError:
        if e.errno == errno.ENOSPC:  # usblp with LPABORT: out of paper
            return PrinterNotReady(PrinterStatus(True, paper_out=True, source="write"),
                                   self.describe())
        if e.errno in GONE_ERRNOS:
            return PrinterUnavailable(f"{self.describe()} went away while printing "
                                      f"({e.strerror})")
        return PrinterTimeout(f"{self.describe()} refused the data ({e.strerror}): offline?")

    def ask_status(self) -> PrinterStatus:
        fd = self._require()
        if not self._char_device:
            return PrinterStatus(False, source="a plain file has no printer status")
        try:
            raw = fcntl.ioctl(fd, LPGETSTATUS, struct.pack("i", 0))
        except OSError as e:
            if e.errno in (errno.ENOTTY, errno.EINVAL):
                return PrinterStatus(False, source="not a line-printer device")
            if e.errno in GONE_ERRNOS:
                raise PrinterUnavailable(f"{self.describe()} went away ({e.strerror})") \
                    from None
            raise PrinterTimeout(f"{self.describe()} did not report its status "
                                 f"({e.strerror})") from None
        return from_lp_status(struct.unpack("i", raw)[0] & 0xFF)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def _require(self) -> int:
        if self._fd is None:
            raise PrinterError(f"{self.describe()} is not open")
        return self._fd


class RealtimeConnection(Connection):
    """A connection the printer answers on: its status is asked with DLE EOT."""

    def ask_status(self) -> PrinterStatus:
        return self._realtime_status()


class SerialConnection(RealtimeConnection):
    """A printer on a serial line (RS-232 through a USB adapter, or the Pi's UART)."""

    kind = "serial"

    def __init__(self, device: str, baudrate: int = 9600, flow_control: str = "none", **kw):
        super().__init__(**kw)
        self.device = device
        self.baudrate = baudrate
        self.flow_control = flow_control
        self._ser = None

    def describe(self) -> str:
        return f"serial printer {self.device}"

    def open(self) -> None:
        import serial

        if self._ser is not None:
            return
        try:
            self._ser = serial.Serial(
                self.device, self.baudrate, timeout=0, write_timeout=self.timeout_s,
                exclusive=True, rtscts=self.flow_control == "rtscts",
                xonxoff=self.flow_control == "xonxoff")
        except (serial.SerialException, OSError, ValueError) as e:
            if getattr(e, "errno", None) == errno.ENOENT or not os.path.exists(self.device):
                raise PrinterUnavailable(f"{self.describe()} does not exist: is the cable "
                                         "plugged in?") from None
            raise PrinterUnavailable(f"{self.describe()} cannot be opened ({_short(e)}); "
                                     "the service needs group dialout") from None

    def write(self, data: bytes) -> None:
        import serial

        ser = self._require()
        try:
            ser.write(data)
        except serial.SerialTimeoutException:
            raise PrinterTimeout(f"{self.describe()} took no data for {self.timeout_s:g} s: "
                                 "paper out, cover open or switched off?") from None
        except (serial.SerialException, OSError, TypeError) as e:
            raise PrinterUnavailable(f"{self.describe()} went away while printing "
                                     f"({_short(e)})") from None

    def _drop_input(self) -> None:
        import serial

        try:
            self._require().reset_input_buffer()
        except (serial.SerialException, OSError) as e:
            raise PrinterUnavailable(f"{self.describe()} went away ({_short(e)})") from None

    def _read_byte(self, deadline: float) -> int | None:
        import serial

        ser = self._require()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                ready, _, _ = select.select([ser.fileno()], [], [], left)
                if not ready:
                    return None
                data = ser.read(1)
            except (serial.SerialException, OSError, TypeError, ValueError) as e:
                raise PrinterUnavailable(f"{self.describe()} went away ({_short(e)})") \
                    from None
            if data:
                return data[0]

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is None:
            return
        try:
            # Drop what a stopped printer did not take, so closing never waits for it.
            ser.reset_output_buffer()
            ser.close()
        except Exception:  # noqa: BLE001 - a vanished port must not break closing
            pass

    def _require(self):
        if self._ser is None:
            raise PrinterError(f"{self.describe()} is not open")
        return self._ser


class NetworkConnection(RealtimeConnection):
    """A printer on the network taking raw ESC/POS on a TCP port (9100, "JetDirect")."""

    kind = "network"

    def __init__(self, host: str, port: int = 9100, **kw):
        super().__init__(**kw)
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None

    def describe(self) -> str:
        return f"network printer {self.host}:{self.port}"

    def open(self) -> None:
        if self._sock is not None:
            return
        try:
            self._sock = socket.create_connection((self.host, self.port),
                                                  timeout=self.timeout_s)
            # Status requests are 3-byte writes answered at once: no Nagle delay for them.
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except socket.gaierror:
            raise PrinterUnavailable(f"{self.describe()}: host name not found; check "
                                     "printer.host") from None
        except ConnectionRefusedError:
            raise PrinterUnavailable(f"{self.describe()} refused the connection: switched "
                                     "off, or busy with another computer's job") from None
        except TimeoutError:
            raise PrinterUnavailable(f"{self.describe()} did not answer within "
                                     f"{self.timeout_s:g} s: switched off or not on this "
                                     "network?") from None
        except OSError as e:
            raise PrinterUnavailable(f"{self.describe()} cannot be reached ({e.strerror})") \
                from None

    def write(self, data: bytes) -> None:
        sock = self._require()
        sock.settimeout(self.timeout_s)
        try:
            sock.sendall(data)
        except TimeoutError:
            raise PrinterTimeout(f"{self.describe()} took no data for {self.timeout_s:g} s: "
                                 "paper out, cover open or switched off?") from None
        except OSError as e:
            raise PrinterUnavailable(f"{self.describe()} went away while printing "
                                     f"({e.strerror or e})") from None

    def _drop_input(self) -> None:
        sock = self._require()
        sock.setblocking(False)
        try:
            while True:
                data = sock.recv(4096)
                if not data:
                    raise PrinterUnavailable(f"{self.describe()} closed the connection")
        except BlockingIOError:
            pass
        except OSError as e:
            raise PrinterUnavailable(f"{self.describe()} went away ({e.strerror})") from None
        finally:
            sock.settimeout(self.timeout_s)

    def _read_byte(self, deadline: float) -> int | None:
        sock = self._require()
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(1)
        except TimeoutError:
            return None
        except OSError as e:
            raise PrinterUnavailable(f"{self.describe()} went away ({e.strerror})") from None
        if not data:
            raise PrinterUnavailable(f"{self.describe()} closed the connection")
        return data[0]

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            # Unread input would turn the close into a reset that can drop the slip's tail.
            self._sock = sock
            self._drop_input()
        except PrinterError:
            pass
        finally:
            self._sock = None
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        sock.close()

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise PrinterError(f"{self.describe()} is not open")
        return self._sock


def _short(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:160]
