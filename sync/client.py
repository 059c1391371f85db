"""The HTTP client for the central server: one pooled session, hard limits, no surprises.

Every request has explicit (connect, read) timeouts and an overall deadline (a server that
drips a byte a second is cut off: ``sync.deadline``), verifies TLS (the chain and host name
always, the certificate dates only by a clock NTP has set: ``sync.tls``), carries the
bearer token read fresh from ``server.token_file`` (so a technician can replace the file
without a restart; the token never reaches a log line) and reads its body under a byte cap,
so a server that streams a gigabyte costs 32 MiB of memory at most and then the connection.

It needs a server to talk to; tests/test_sync_service.py drives it against the reference
server (devtools/devserver.py) on loopback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3

from appliance import __version__
from appliance.clock import NtpState
from appliance.errors import AntreanError
from sync.deadline import Deadline, mount_deadlines
from sync.server_time import parse_http_date
from sync.tls import CertificateAdapter, CertificatePolicy, CertificateTrustError, explain_tls_error

MAX_SCHEDULE_BYTES = 32 * 1024 * 1024   # the contract's limit (appliance.schedule agrees)
MAX_SMALL_BYTES = 1024 * 1024           # answers to events and heartbeats are tiny
STREAM_READ_BYTES = 64 * 1024
RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
# Answers that say "no such endpoint here" (or a proxy in the way), not "bad request": a
# mistyped server.url path must not be read as "office closed" or dead-letter the outbox.
WRONG_ENDPOINT_STATUSES = frozenset({404, 405, 410, 413})


class ServerUnreachable(AntreanError, ConnectionError):
    """No usable answer: refused, reset, timed out, or cut off mid-body. Retry later."""


class TlsRefused(ServerUnreachable):
    """The TLS handshake failed; the message says which check (``sync.tls``)."""


class BodyTooLarge(AntreanError, ValueError):
    """The server sent more bytes than the contract allows; the connection was dropped."""


class TokenUnavailable(AntreanError, PermissionError):
    """The device token file is missing or unreadable (treated like a revoked token)."""


@dataclass(frozen=True)
class Answer:
    """A complete, size-checked HTTP response.

    ``date`` is its ``Date`` header as epoch seconds (None when missing or not a strict GMT
    HTTP-date), ``sent_at``/``received_at`` the local clock around the exchange. The caller
    decides whether the answer was genuine enough for its ``Date`` to count
    (``sync.server_time``).
    """

    status: int
    headers: requests.structures.CaseInsensitiveDict
    body: bytes
    date: float | None = None
    sent_at: float = 0.0
    received_at: float = 0.0

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self):
        """The body as JSON, or None when it is not JSON (HTML error pages, garbage, or
        nesting deeper than the parser's recursion limit: 100,000 ``[``)."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None

    def is_json(self) -> bool:
        """A JSON body declared as such (the contract's bodies are JSON; an nginx or
        framework "not found" page is HTML or text)."""
        kind = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json" and not kind.endswith("+json"):
            return False
        try:
            json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return False
        return True

    @property
    def retryable(self) -> bool:
        return self.status in RETRY_STATUSES

    @property
    def wrong_endpoint(self) -> bool:
        return self.status in WRONG_ENDPOINT_STATUSES

    def retry_after(self) -> float | None:
        """``Retry-After`` in seconds (delta or HTTP date), or None."""
        return parse_retry_after(self.header("Retry-After"))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    when = parse_http_date(value)
    if when is None:
        return None
    return max(0.0, when - (time.time() if now is None else now))


WATCHDOG_SHARE = 0.45   # of WatchdogSec, for one request: pings come every half period


def request_deadline(config, watchdog_s: float | None) -> tuple[float, str | None]:
    """The overall deadline of each request, and why the config does not fit, if it does not.

    A request may last ``server.connect_timeout_s + server.read_timeout_s``. Under systemd's
    watchdog (``WatchdogSec``, ``watchdog_s`` here) the sync loop pings every half period
    and between requests, so one request must end well within the other half; when the two
    timeouts do not fit, requests are cut off at that limit and the caller shows the
    contradiction (a degraded state, not a restart loop).
    """
    s = config.server
    wanted = s.connect_timeout_s + s.read_timeout_s
    if not watchdog_s:
        return wanted, None
    limit = round(WATCHDOG_SHARE * watchdog_s, 2)
    if wanted <= limit:
        return wanted, None
    return limit, (f"server.connect_timeout_s + server.read_timeout_s ({s.connect_timeout_s:g}"
                   f" + {s.read_timeout_s:g} s) in {config.path} do not fit the watchdog "
                   f"(WatchdogSec={watchdog_s:g} s allows {limit:g} s per request); requests "
                   f"are cut off after {limit:g} s. Lower server.read_timeout_s to at most "
                   f"{max(1.0, limit - s.connect_timeout_s):g}, or raise WatchdogSec")


class CentralClient:
    """Requests to the central server for one device (``config.server``).

    ``tls`` decides how the server's certificate is verified; the sync service shares one
    between its clients (the push stream's too), so they decide alike and log once.
    """

    def __init__(self, config, *, deadline_s: float | None = None,
                 tls: CertificatePolicy | None = None):
        s = config.server
        if not s.url:
            raise AntreanError(f"{config.path}: server.url is empty; set it to the central "
                               "server's base URL to use sync")
        self.base = s.url.rstrip("/")
        self.device_id = s.device_id
        self.token_file = s.token_file
        self.timeout = (s.connect_timeout_s, s.read_timeout_s)
        # No request, from connect to its last byte, lasts longer (see request_deadline).
        self.deadline_s = deadline_s or sum(self.timeout)
        self.ca_file = s.ca_file
        self.tls = tls or CertificatePolicy(NtpState())
        self.session = requests.Session()
        self.session.verify = s.ca_file or True
        self.session.trust_env = False    # no proxy or netrc surprises on an appliance
        self.session.headers["User-Agent"] = f"antrean/{__version__} ({self.device_id})"
        mount_deadlines(self.session)
        self.session.mount("https://", CertificateAdapter(self.tls))

    def close(self) -> None:
        self.session.close()

    def _token(self) -> str:
        try:
            with open(self.token_file, encoding="utf-8") as f:
                token = f.read(4096).strip()
        except FileNotFoundError:
            raise TokenUnavailable(f"device token file {self.token_file} does not exist; "
                                   "install the token from the central server there") from None
        except (OSError, UnicodeDecodeError) as e:
            raise TokenUnavailable(f"device token file {self.token_file} cannot be read "
                                   f"({type(e).__name__}); check its owner and mode") from None
        if not token or any(c.isspace() for c in token):
            raise TokenUnavailable(f"device token file {self.token_file} is empty or holds "
                                   "more than one word; put only the token in it")
        if not (token.isascii() and token.isprintable()):
            raise TokenUnavailable(f"device token file {self.token_file} holds characters a "
                                   "token cannot have; copy the token again as plain text")
        return token

    def _headers(self, extra: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self._token()}"}
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, *, cap: int, headers: dict | None = None,
                **kwargs) -> Answer:
        """Send one request and read the whole body, at most ``cap`` bytes of it."""
        hdrs = self._headers(headers)
        with Deadline(self.deadline_s) as guard:
            try:
                answer = self._exchange(method, path, hdrs, cap, kwargs)
            except Exception:
                if not guard.expired:
                    raise
                answer = None
            if guard.expired:   # also when the cut looked like a normal end (EOF in headers)
                raise ServerUnreachable(
                    f"{method} {path}: no complete answer within {self.deadline_s:g} s (the "
                    "server or a proxy is too slow; cut off)") from None
        return answer

    def _exchange(self, method: str, path: str, hdrs: dict, cap: int, kwargs) -> Answer:
        sent_at = time.time()
        try:
            resp = self.session.request(method, self.base + path, headers=hdrs,
                                        timeout=self.timeout, stream=True,
                                        allow_redirects=False, **kwargs)
        except requests.Timeout:
            raise ServerUnreachable(f"{method} {path}: no answer within "
                                    f"{self.timeout[0]:g}/{self.timeout[1]:g} s") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError, CertificateTrustError) as e:
            raise self._unreachable(method, path, e) from None
        try:
            body = _read_capped(resp, cap, f"{method} {path}")
            return Answer(resp.status_code, resp.headers, body,
                          parse_http_date(resp.headers.get("Date")), sent_at, time.time())
        finally:
            resp.close()

    # the contract's endpoints --------------------------------------------------------------

    def get_schedule(self, office_id: str, day: str, etag: str | None) -> Answer:
        headers = {"Accept": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        return self.request("GET", f"/offices/{office_id}/schedule", params={"date": day},
                            headers=headers, cap=MAX_SCHEDULE_BYTES)

    def post_events(self, events: list[dict]) -> Answer:
        body = json.dumps({"events": events}, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")
        return self.request("POST", f"/devices/{self.device_id}/events", data=body,
                            headers={"Content-Type": "application/json"}, cap=MAX_SMALL_BYTES)

    def heartbeat(self, doc: dict) -> Answer:
        return self.request("POST", f"/devices/{self.device_id}/heartbeat", json=doc,
                            cap=MAX_SMALL_BYTES)

    def open_stream(self, last_event_id: str | None, silence_s: float
                    ) -> tuple[requests.Response, Deadline]:
        """Open the push stream; the caller reads it with ``stream_chunks`` and closes it.

        The answer's headers must arrive within the request deadline; after that a
        read that sees nothing for ``silence_s`` raises, which is how a silent stream is
        noticed (the server sends a comment every 15 s). The returned :class:`Deadline`'s
        ``shutdown()`` unblocks a read from another thread.
        """
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id:   # the caller keeps only valid ids (sync.sse.valid_event_id)
            headers["Last-Event-ID"] = last_event_id
        path = f"/devices/{self.device_id}/stream"
        with Deadline(self.deadline_s) as guard:
            try:
                resp = self.session.get(self.base + path, headers=self._headers(headers),
                                        timeout=(self.timeout[0], silence_s), stream=True,
                                        allow_redirects=False)
            except (requests.ConnectionError, requests.Timeout, CertificateTrustError) as e:
                if not guard.expired:
                    raise self._unreachable("GET", path, e) from None
                resp = None
            if guard.expired:
                if resp is not None:
                    resp.close()
                raise ServerUnreachable(f"GET {path}: no stream headers within "
                                        f"{self.deadline_s:g} s; cut off") from None
        return resp, guard

    def _unreachable(self, method: str, path: str, e: Exception) -> ServerUnreachable:
        """The error to raise for a failed exchange; a TLS failure says which check failed."""
        if isinstance(e, CertificateTrustError):
            return TlsRefused(f"{method} {path}: TLS: {e}")
        if isinstance(e, requests.exceptions.SSLError):
            return TlsRefused(f"{method} {path}: " + explain_tls_error(
                e, host=urlsplit(self.base).hostname or self.base, ca_file=self.ca_file,
                dates_checked=self.tls.dates_checked))
        return ServerUnreachable(f"{method} {path}: {_reason(e)}")


def _reason(e: Exception) -> str:
    text = str(e.args[0] if e.args else e)
    for known in ("Connection refused", "Remote end closed connection", "IncompleteRead",
                  "Connection reset", "Read timed out", "Name or service not known",
                  "Connection broken"):
        if known in text:
            return known.lower()
    return type(e).__name__


def _read_capped(resp: requests.Response, cap: int, what: str) -> bytes:
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        raise BodyTooLarge(f"{what}: the server announced {int(declared)} bytes, more than "
                           f"the {cap} byte limit; the answer was dropped")
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in resp.iter_content(chunk_size=64 * 1024):
            size += len(chunk)
            if size > cap:
                raise BodyTooLarge(f"{what}: the server sent more than {cap} bytes; the "
                                   "answer was dropped")
            chunks.append(chunk)
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError, requests.Timeout) as e:
        raise ServerUnreachable(f"{what}: the answer was cut off ({_reason(e)})") from None
    return b"".join(chunks)


def stream_chunks(resp: requests.Response, what: str = "push stream") -> Iterator[bytes]:
    """The body of an open streaming response, each read handed over as it returns.

    ``read1`` returns what the network has delivered (at most 64 KiB) instead of waiting to
    fill a buffer, so an event is not held back on a response with neither chunked encoding
    nor ``Content-Length`` (``Connection: close``), which only ends when the server hangs up.
    """
    raw = resp.raw
    while True:
        try:
            chunk = raw.read1(STREAM_READ_BYTES)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
            raise ServerUnreachable(f"{what}: {_reason(e)}") from None
        if not chunk:
            return
        yield chunk
