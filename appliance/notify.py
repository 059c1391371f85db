"""sd_notify in a small class: readiness, watchdog pings, status text, stopping.

Talks the plain datagram protocol to ``$NOTIFY_SOCKET`` (no libsystemd needed) and does
nothing at all when the service was not started by systemd, so the same code runs in tests,
the demo and on the Pi.

Example::

    >>> n = SdNotify()
    >>> n.ready()          # a no-op outside systemd
    >>> n.watchdog_interval() is None or n.watchdog_interval() > 0
    True
"""

from __future__ import annotations

import os
import socket


class SdNotify:
    def __init__(self, environ=os.environ):
        self._addr = environ.get("NOTIFY_SOCKET") or None
        self._watchdog_usec = environ.get("WATCHDOG_USEC")
        self._sock: socket.socket | None = None
        if self._addr:
            if self._addr.startswith("@"):
                self._addr = "\0" + self._addr[1:]
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def _send(self, text: str) -> None:
        if self._sock is None:
            return
        try:
            # Never wait: a socket nobody reads (its queue holds only a few datagrams) must
            # not hang the service; a ping dropped there is one systemd was not reading.
            self._sock.sendto(text.encode(), socket.MSG_DONTWAIT, self._addr)
        except OSError:
            pass  # systemd going away must never take the service with it

    def ready(self, status: str = "") -> None:
        self._send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between pings: half of ``WATCHDOG_USEC``, or None without a watchdog."""
        try:
            usec = int(self._watchdog_usec or 0)
        except ValueError:
            return None
        return usec / 2e6 if usec > 0 else None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
