"""Overall deadlines for requests: no request, from connect to its last byte, outlives one.

``requests`` timeouts bound each socket operation, not the request: a server (or a broken
proxy) that drips one byte a second never trips a 20 s read timeout, and holds the sync loop
until systemd's watchdog kills the service, again and again. Every connection the central
client opens is tracked: while a :class:`Deadline` is active on the thread, the socket the
request uses is registered with it, and when the deadline passes a timer shuts that socket
down. The blocked read returns at once and the client reports a timeout.

The same handle lets another thread unblock a long-lived read (the push stream, on stop)
without waiting for the read's lock.

Example, against the reference server told to wait 30 s before answering: the 8 s read
timeout alone would hold the request for all 30 s, the half-second deadline cuts it off::

    >>> import time
    >>> from devtools.devserver import DevServer
    >>> session = requests.Session()
    >>> mount_deadlines(session)
    >>> with DevServer(token="dev-token") as server:
    ...     _ = server.admin("POST", "/_admin/faults", {"slow": 30})
    ...     started = time.monotonic()
    ...     try:
    ...         with Deadline(0.5) as d:
    ...             session.get(f"{server.url}/offices/TRK/schedule", timeout=(5, 8))
    ...     except requests.ConnectionError:
    ...         print("cut off after less than 8 s:", time.monotonic() - started < 8)
    cut off after less than 8 s: True
    >>> d.expired
    True
    >>> session.close()
"""

from __future__ import annotations

import socket
import threading

import requests
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

_current = threading.local()


class Deadline:
    """Shuts the current request's socket down ``seconds`` after entering (one thread)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._outer: Deadline | None = None

    def __enter__(self) -> Deadline:
        self._outer = getattr(_current, "deadline", None)
        _current.deadline = self
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_timer()
        _current.deadline = self._outer

    def stop_timer(self) -> None:
        """No deadline from now on (the socket stays known for :meth:`shutdown`)."""
        if self._timer is not None:
            self._timer.cancel()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sock = sock
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sock = self._sock
        if sock is not None:
            _shut(sock)

    def shutdown(self) -> None:
        """Unblock any read on the socket now (from any thread)."""
        with self._lock:
            sock = self._sock
        if sock is not None:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for a TLS socket: ssl.SSLSocket.shutdown would drop
    # its SSL object under the thread that is reading through it.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass   # already closed: nothing to unblock


def _watch(sock) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _Tracked:
    """Registers the socket of every new or reused connection with the thread's deadline."""

    def _new_conn(self):
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def request(self, *args, **kwargs):
        _watch(self.sock)
        return super().request(*args, **kwargs)


class _TrackedHTTPConnection(_Tracked, HTTPConnection):
    pass


class TrackedHTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = TrackedHTTPSConnection


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


def mount_deadlines(session: requests.Session) -> None:
    """Make every connection of ``session`` answer to :class:`Deadline`."""
    session.mount("http://", DeadlineAdapter())
    session.mount("https://", DeadlineAdapter())
