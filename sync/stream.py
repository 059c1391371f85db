"""The push stream: one long GET of ``/v1/stream`` in its own thread, read as SSE.

It holds the connection open, reconnects with backoff whatever goes wrong, remembers the
``Last-Event-ID`` to resume from and hands every event (and every up/down change) to the
main thread through a queue: it never touches the store, so no SQLite connection is shared
between threads. Its client verifies the server with the sync service's TLS policy
(``sync.tls``), so both connections decide alike on a clock NTP has not set. The framing
itself is ``sync.sse``; applying what it hears is ``sync.push``.
"""

from __future__ import annotations

import logging
import queue
import threading

import requests

from sync.backoff import Backoff
from sync.client import CentralClient, ServerUnreachable, TokenUnavailable, stream_chunks
from sync.sse import SseParser, valid_event_id
from sync.tls import CertificatePolicy

log = logging.getLogger("antrean.sync")

STREAM_SILENCE_S = 45.0        # the server comments every 15 s; three missed means dead


class PushStream(threading.Thread):
    """Holds the push stream open and forwards what it hears; never touches the store.

    Nothing may end this thread but ``stop``: whatever goes wrong (a bug, a bizarre answer,
    an exhausted backoff) becomes a stream-down message for the main thread, a wait and a
    new connection. Problems are logged once each, not once per retry.
    """

    def __init__(self, config, inbox: queue.SimpleQueue, last_id: str | None,
                 stop: threading.Event, *, silence_s: float, backoff: Backoff,
                 tls: CertificatePolicy | None = None):
        super().__init__(name="sync-stream", daemon=True)
        self.config = config
        self.inbox = inbox
        self.last_id = last_id if valid_event_id(last_id) else None
        self.stop_event = stop
        self.silence_s = silence_s
        self.backoff = backoff
        self.tls = tls                         # the sync service's, so both decide alike
        self._guard = None                     # unblocks the open stream's read (interrupt)
        self._problem: str | None = None      # the unexpected error last logged
        self._bad_id_logged = False

    def run(self) -> None:
        client: CentralClient | None = None
        try:
            while not self.stop_event.is_set():
                try:
                    if client is None:
                        client = CentralClient(self.config, tls=self.tls)
                    delay = self._hold(client)
                except BaseException as e:  # noqa: BLE001 - pushes must never end for good
                    delay = self._unexpected(e)
                self.stop_event.wait(delay)
        finally:
            if client is not None:
                client.close()

    def _unexpected(self, e: BaseException) -> float:
        """Report an error no branch expected (once per distinct problem); the wait."""
        problem = f"{type(e).__name__}: {e}"[:300]
        if problem != self._problem:
            self._problem = problem
            log.error("push stream: unexpected error (%s); reconnecting with backoff",
                      problem, exc_info=e)
        if self.stop_event.is_set():
            return 0.0
        self.inbox.put(("stream", False, f"the stream broke ({type(e).__name__})"))
        try:
            return self.backoff.failed()
        except Exception:  # noqa: BLE001 - even a broken backoff must not end pushes
            return float(self.config.server.poll_seconds)

    def _bad_id(self, value: str) -> None:
        if not self._bad_id_logged:
            self._bad_id_logged = True
            log.warning("push stream: ignored an event id that is not a valid header value "
                        "(%d characters, starting %r); keeping the last good resume point",
                        len(value), value[:20])

    def _hold(self, client: CentralClient) -> float:
        """One connection; returns how long to wait before the next."""
        try:
            resp, self._guard = client.open_stream(self.last_id, self.silence_s)
        except TokenUnavailable as e:
            self.inbox.put(("stream", False, str(e)))
            return float(self.config.server.poll_seconds)
        except ServerUnreachable as e:
            self.inbox.put(("stream", False, str(e)))
            return self.backoff.failed()
        try:
            if self.stop_event.is_set():    # stopped while connecting: interrupt() missed it
                return 0.0
            kind = resp.headers.get("Content-Type", "")
            if resp.status_code == 401:
                self.inbox.put(("stream", False, "the server refused the device token (401)"))
                return float(self.config.server.poll_seconds)
            if resp.status_code != 200 or not kind.startswith("text/event-stream"):
                self.inbox.put(("stream", False, f"the stream answered HTTP {resp.status_code}"
                                f" ({kind or 'no content type'})"))
                return self.backoff.failed()
            self.inbox.put(("stream", True, ""))
            self._problem = None
            parser = SseParser(self.last_id, on_bad_id=self._bad_id)
            for chunk in stream_chunks(resp):
                for event in parser.feed(chunk):
                    self.backoff.succeeded()
                    if event is not None:
                        if event.id:
                            self.last_id = event.id
                        self.inbox.put(("push", event))
            reason = "the server ended the stream"
        except Exception as e:
            if self.stop_event.is_set():    # interrupt() closed the response under us
                return 0.0
            if not isinstance(e, (requests.RequestException, ServerUnreachable, OSError)):
                return self._unexpected(e)
            reason = f"the stream broke ({type(e).__name__})"
        finally:
            self._guard = None
            resp.close()
        if self.stop_event.is_set():
            return 0.0
        self.inbox.put(("stream", False, reason))
        return self.backoff.failed()

    def interrupt(self) -> None:
        """Unblock the stream's read from another thread (on stop).

        Closing the response would wait for the read to finish (they share a lock), up to a
        keepalive later; shutting the socket down makes the blocked read return at once.
        """
        guard = self._guard
        if guard is not None:
            guard.shutdown()


def resume_point(store) -> str | None:
    """The saved ``Last-Event-ID``, or None; a saved id that is no valid header value
    (from an older version, or a hostile server) is dropped instead of breaking every
    reconnect."""
    saved = store.get_kv("sync.stream_last_id")
    if saved is None or valid_event_id(saved):
        return saved
    log.warning("dropped the saved push stream resume point: not a valid header value; "
                "the stream starts from now and a schedule pull catches up")
    store.set_kv("sync.stream_last_id", None)
    return None
