"""A raw HTTP answerer on loopback: the exact bytes a test wants, at the pace it wants.

For answers the reference server is built never to give (a stream with neither length nor
chunking that stays open, a body dripped one byte a second, an odd ``Date`` header, an event
id that is no header value): real sockets on 127.0.0.1 and real timing, no mocks. Each
connection is handled in its own thread by ``respond(conn, head, index)``, where ``head`` is
the request's header block and ``index`` counts connections from 0; the connection is closed
when ``respond`` returns. ``stopping`` is set on exit, so a handler that keeps a connection
open can wait on it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class RawServer:
    def __init__(self, respond: Callable[[socket.socket, bytes, int], None]):
        self.respond = respond
        self.heads: list[bytes] = []
        self.stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.heads)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)   # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(5)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = read_head(conn)
            if head is None:
                return
            with self._lock:
                index = len(self.heads)
                self.heads.append(head)
            try:
                self.respond(conn, head, index)
            except OSError:
                pass   # the client hung up: that is its right


def read_head(conn: socket.socket) -> bytes | None:
    """The request line and headers, and the body when a Content-Length announces one."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            more = conn.recv(65536)
        except OSError:
            return None
        if not more:
            return None
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            want = int(value.strip())
            while len(body) < want:
                more = conn.recv(65536)
                if not more:
                    break
                body += more
    return head


def header(head: bytes, name: str) -> str | None:
    """One request header's value from ``head``, or None."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode("latin-1")
    return None


def answer(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """A complete HTTP/1.1 response's bytes (headers exactly as given)."""
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
