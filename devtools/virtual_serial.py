"""A real pseudo-terminal that behaves like a USB serial scanner: the serial backend's double.

The appliance opens ``path`` (a symlink, like ``/dev/serial/by-id/...``) exactly as it would
open the real scanner; the test, benchmark or demo writes "scanned" bytes on the master side.
``unplug()`` closes the pty and removes the link (reads on the appliance side fail, as on a
USB unplug); ``replug()`` makes a new pty behind the same link.

Example::

    >>> import serial, tempfile
    >>> link = os.path.join(tempfile.mkdtemp(), "scanner")
    >>> with VirtualSerialScanner(link) as v, serial.Serial(link, 9600, timeout=5) as port:
    ...     v.write(b"K7Q2M9XA\\r\\n")
    ...     port.readline()
    b'K7Q2M9XA\\r\\n'
    >>> os.path.exists(link)                                  # closing unplugged it
    False
"""

from __future__ import annotations

import os
import tty

from drivers.errors import DriverClosed


class VirtualSerialScanner:
    def __init__(self, path: str):
        self.path = path
        self.master: int | None = None
        self._slave: int | None = None
        self.slave_name = ""
        self.replug()

    def replug(self) -> None:
        """Plug in a (new) pty behind ``path``."""
        self.unplug()
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo or line editing before the appliance opens it
        self.master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        tmp = f"{self.path}.tmp{os.getpid()}"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.slave_name, tmp)
        os.replace(tmp, self.path)

    def unplug(self) -> None:
        """Remove the device: the link disappears and the appliance's reads fail."""
        if os.path.islink(self.path):
            os.unlink(self.path)
        for fd in (self._slave, self.master):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self._slave = None

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def write(self, data: bytes) -> None:
        """Send ``data`` as the scanner would (blocks while the appliance lags behind)."""
        if self.master is None:
            raise DriverClosed(f"virtual scanner {self.path} is unplugged")
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def close(self) -> None:
        self.unplug()

    def __enter__(self) -> VirtualSerialScanner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
