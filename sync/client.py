"""The HTTP client for the central server: one pooled session, hard limits, no surprises.

Every request has explicit (connect, read) timeouts, verifies TLS, carries the bearer token
read fresh from ``server.token_file`` (so a technician can replace the file without a
restart; the token never reaches a log line) and reads its body under a byte cap, so a
server that streams a gigabyte costs 32 MiB of memory at most and then the connection.

Example::

    >>> client = CentralClient(config)                          # doctest: +SKIP
    >>> answer = client.get_schedule("TRK", "2026-11-30", etag=None)  # doctest: +SKIP
    >>> answer.status, answer.header("ETag")                    # doctest: +SKIP
    (200, '"e7846326..."')
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests

from appliance import __version__
from appliance.errors import AntreanError

MAX_SCHEDULE_BYTES = 32 * 1024 * 1024   # the contract's limit (appliance.schedule agrees)
MAX_SMALL_BYTES = 1024 * 1024           # answers to events and heartbeats are tiny
MAX_SSE_LINE = 1024 * 1024
RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


class ServerUnreachable(AntreanError, ConnectionError):
    """No usable answer: refused, reset, timed out, or cut off mid-body. Retry later."""


class BodyTooLarge(AntreanError, ValueError):
    """The server sent more bytes than the contract allows; the connection was dropped."""


class TokenUnavailable(AntreanError, PermissionError):
    """The device token file is missing or unreadable (treated like a revoked token)."""


@dataclass(frozen=True)
class Answer:
    """A complete, size-checked HTTP response."""

    status: int
    headers: requests.structures.CaseInsensitiveDict
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self):
        """The body as JSON, or None when it is not JSON (HTML error pages, garbage)."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None

    @property
    def retryable(self) -> bool:
        return self.status in RETRY_STATUSES

    def retry_after(self) -> float | None:
        """``Retry-After`` in seconds (delta or HTTP date), or None."""
        return parse_retry_after(self.header("Retry-After"))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class CentralClient:
    """Requests to the central server for one device (``config.server``).

    ``on_date(server_epoch, sent_at, received_at)`` is called with every response's
    ``Date`` header so the caller can track the clock offset.
    """

    def __init__(self, config, *, on_date: Callable[[float, float, float], None] | None = None):
        s = config.server
        if not s.url:
            raise AntreanError(f"{config.path}: server.url is empty; set it to the central "
                               "server's base URL to use sync")
        self.base = s.url.rstrip("/")
        self.device_id = s.device_id
        self.token_file = s.token_file
        self.timeout = (s.connect_timeout_s, s.read_timeout_s)
        self.on_date = on_date
        self.session = requests.Session()
        self.session.verify = s.ca_file or True
        self.session.trust_env = False    # no proxy or netrc surprises on an appliance
        self.session.headers["User-Agent"] = f"antrean/{__version__} ({self.device_id})"

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

    def _note_date(self, resp: requests.Response, sent_at: float) -> None:
        server = parse_http_date(resp.headers.get("Date"))
        if server is not None and self.on_date is not None:
            self.on_date(server, sent_at, time.time())

    def request(self, method: str, path: str, *, cap: int, headers: dict | None = None,
                **kwargs) -> Answer:
        """Send one request and read the whole body, at most ``cap`` bytes of it."""
        url = self.base + path
        hdrs = self._headers(headers)
        sent_at = time.time()
        try:
            resp = self.session.request(method, url, headers=hdrs, timeout=self.timeout,
                                        stream=True, allow_redirects=False, **kwargs)
        except requests.Timeout:
            raise ServerUnreachable(f"{method} {path}: no answer within "
                                    f"{self.timeout[0]:g}/{self.timeout[1]:g} s") from None
        except requests.exceptions.SSLError:
            raise ServerUnreachable(f"{method} {path}: TLS verification failed; check "
                                    "server.ca_file and the clock") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as e:
            raise ServerUnreachable(f"{method} {path}: {_reason(e)}") from None
        try:
            self._note_date(resp, sent_at)
            body = _read_capped(resp, cap, f"{method} {path}")
            return Answer(resp.status_code, resp.headers, body)
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

    def open_stream(self, last_event_id: str | None, silence_s: float) -> requests.Response:
        """Open the push stream; the caller reads it with ``sse_events`` and closes it.

        A read that sees nothing for ``silence_s`` raises, which is how a silent stream
        is noticed (the server sends a comment every 15 s).
        """
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        path = f"/devices/{self.device_id}/stream"
        sent_at = time.time()
        try:
            resp = self.session.get(self.base + path, headers=self._headers(headers),
                                    timeout=(self.timeout[0], silence_s), stream=True,
                                    allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise ServerUnreachable(f"GET {path}: {_reason(e)}") from None
        self._note_date(resp, sent_at)
        return resp


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


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: str


def sse_events(resp: requests.Response) -> Iterator[SseEvent | None]:
    """Parse a text/event-stream body; yields events, and None for each comment line.

    A block holding only ``id:`` is yielded with empty ``event`` and ``data``: it sets the
    resume point (the reference server sends one on connect) and is otherwise not an event.

    An event is only yielded once its blank line arrives: an event cut off by a closed
    connection is dropped (and arrives again on resume, since its id was never seen).
    """
    buf = b""
    event_id: str | None = None
    name, data = "", []
    has_field = False
    size = 0
    for chunk in resp.iter_content(chunk_size=None):
        buf += chunk
        while True:
            cut = min((i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0), default=-1)
            if cut < 0:
                if len(buf) > MAX_SSE_LINE:
                    raise ServerUnreachable("push stream: a line longer than 1 MiB")
                break
            if buf[cut:cut + 1] == b"\r" and cut + 1 == len(buf):
                break   # a CR at the end of the buffer may be half of a CRLF
            line = buf[:cut].decode("utf-8", "replace")
            skip = 2 if buf[cut:cut + 2] == b"\r\n" else 1
            buf = buf[cut + skip:]
            if line == "":
                if has_field and data:
                    yield SseEvent(event_id, name or "message", "\n".join(data))
                elif has_field and event_id:
                    yield SseEvent(event_id, "", "")     # only moves the resume point
                name, data, has_field, size = "", [], False, 0
                continue
            if line.startswith(":"):
                yield None
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            has_field = True
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
                size += len(value)
                if size > MAX_SSE_LINE:  # one event, however many data lines, stays bounded
                    raise ServerUnreachable("push stream: an event larger than 1 MiB")
            elif field == "id" and "\0" not in value:
                event_id = value
