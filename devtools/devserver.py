"""The reference central server: the contract's server side on loopback, with fault switches.

It exists so the demo runs without the ministry's server and so the tests speak real HTTP
over real sockets to something that behaves exactly as central-api.md says, and that can be
told to misbehave in every way the appliance must survive. aiohttp serves it (streaming
responses for the push stream and the 1 GiB body). Decisions where the contract is silent are
written down in docs/api.md.

Run it::

    antrean devserver --port 8080 --state /tmp/central --token dev-token

The ``/_admin/`` endpoints mint schedules and tickets signed with a key appliances trust, so
they always need ``Authorization: Bearer <admin token>``: the token from
``--admin-token-file``, else a fresh one written to ``STATE/admin-token`` (mode 0600) at
every start. Listening on anything but loopback is refused unless ``--admin-token-file``
is given.

Over TLS, as an office's central server is reached (``https``), with a certificate and
key in PEM (``devtools/throwaway_ca.py`` makes a test CA and one for loopback)::

    antrean devserver --tls-cert server.pem --tls-key server-key.pem

Or in-process for a test, told to answer 503 with ``Retry-After``::

    >>> import requests
    >>> with DevServer(token="dev-token") as server:
    ...     today = server.admin("GET", "/_admin/state")["today"]
    ...     url = f"{server.url}/offices/TRK/schedule?date={today}"
    ...     auth = {"Authorization": "Bearer dev-token"}
    ...     print(requests.get(url, headers=auth).status_code)
    ...     _ = server.admin("POST", "/_admin/faults", {"status": 503, "retry_after": 1})
    ...     r = requests.get(url, headers=auth)
    ...     print(r.status_code, r.headers["Retry-After"])
    200
    503 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import random
import re
import secrets
import socket
import sqlite3
import ssl
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

import requests.adapters
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appliance.barcode import sign_barcode
from appliance.config import DEVICE_ID_RE, KEY_ID_RE, OFFICE_ID_RE, READER_NAME_RE
from appliance.errors import KeyFileError
from appliance.keys import generate_key, load_key_file, load_or_create_key
from devtools.demo_schedule import FORMAT, generate_schedule, next_day, office_today
from sync.tls import NO_CHECK_TIME

MAX_EVENTS_PER_BATCH = 100
ADMIN_TOKEN_FILE = "admin-token"        # in the state folder, when no token file is given
ADMIN_TOKEN_RE = re.compile(r"^[\x21-\x7e]{16,512}$")
STREAM_ID_RE = re.compile(r"^[0-9]{1,18}$")
HUGE_BODY_BYTES = 1 << 30
EVENT_TYPES = {
    "checkin": {"booking_code": str, "ticket": str, "service": str, "offline": bool},
    "scan_rejected": {"reason": str, "payload_sha256": str},
    "call": {"ticket": str, "counter": int},
    "recall": {"ticket": str, "counter": int},
    "no_show": {"ticket": str, "counter": int},
}
# Events that may say which of the appliance's readers the scan came from (optional).
READER_EVENTS = ("checkin", "scan_rejected")
HEARTBEAT_FIELDS = ("version", "uptime_s", "schedule", "outbox", "scanner", "display", "clock")
ENDPOINTS = ("schedule", "events", "stream", "heartbeat")
BODY_FAULTS = (None, "truncated", "garbage", "html", "huge", "deep")
DEFAULT_FAULTS: dict[str, Any] = {
    "down": False,          # close the connection without an answer
    "slow": 0.0,            # seconds to wait before answering
    "status": None,         # answer this status (e.g. 500, 429, 503, 408, 400) instead
    "retry_after": None,    # seconds, sent as Retry-After with ``status``
    "body": None,           # truncated | garbage | html | huge (1 GiB, streamed lazily) | deep
    "signature": None,      # wrong | missing (schedule only)
    "office": None,         # serve the schedule of this other office id instead
    "revoked": False,       # every token is refused with 401
    "stream_cut": False,    # the push stream closes in the middle of its next event
    "clock_offset_s": 0.0,  # the Date header lies by this much (not reset by ``times``)
    "endpoints": None,      # list of endpoint names the faults apply to (None: all)
    "times": None,          # the faults clear themselves after this many faulted requests
}
PUSH_EVENTS = ("schedule", "call", "announcements")
FAULTS = web.RequestKey("faults", dict)


class DevServerError(ValueError):
    """Bad options or admin input for the reference server."""


def _utc_z(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _parse_z(text: Any) -> bool:
    if not isinstance(text, str) or not text.endswith("Z"):
        return False
    try:
        datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        return False
    return True


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def check_faults(changes: dict) -> None:
    """Raise ``DevServerError`` for an unknown fault name or a value it cannot take."""
    for name, value in changes.items():
        if name not in DEFAULT_FAULTS:
            raise DevServerError(f"unknown fault {name!r}; known: {', '.join(DEFAULT_FAULTS)}")
        if name == "body" and value not in BODY_FAULTS:
            raise DevServerError(f"body fault must be one of {BODY_FAULTS}")
        if name == "signature" and value not in (None, "wrong", "missing"):
            raise DevServerError("signature fault must be null, 'wrong' or 'missing'")
        if name == "endpoints" and value is not None and (
                not isinstance(value, list) or not set(value) <= set(ENDPOINTS)):
            raise DevServerError(f"endpoints must be a list drawn from {ENDPOINTS}")


class CentralState:
    """Everything the server knows: schedules, received events, pushes, faults.

    Lives on the event loop's thread only (its SQLite connection is made there).
    """

    def __init__(self, *, office_id: str, office_name: str, tz_name: str, appointments: int,
                 token: str, key, state_dir: str, keepalive_s: float, admin_token: str):
        self.office_id = office_id
        self.admin_token = admin_token
        self.office_name = office_name
        self.tz_name = tz_name
        self.appointments = appointments
        self.token = token
        self.key = key
        self.keepalive_s = keepalive_s
        self.faults = dict(DEFAULT_FAULTS)
        self.overrides: dict[str, dict] = {}    # date -> {version, closed, document, count}
        self.duplicates = 0                     # events received again and absorbed
        self._bodies: dict[tuple, tuple[bytes, str]] = {}
        self.heartbeats: dict[str, dict] = {}
        self.requests: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self.user_agents: list[str] = []
        self.streams = 0
        self.stream_generation = 0
        self.push_event: asyncio.Event | None = None
        self.db = sqlite3.connect(os.path.join(state_dir, "central.db"), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS events (
                seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, device TEXT NOT NULL,
                type TEXT NOT NULL, body TEXT NOT NULL, received_at REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS pushes (
                id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL,
                event TEXT NOT NULL, data TEXT NOT NULL, at REAL NOT NULL);
        """)

    def lobbies(self) -> dict[str, dict]:
        """Per device, how its office runs (waiting, estimates, lateness per service) as its
        latest heartbeat told, and when that heartbeat came."""
        return {device: {**doc["lobby"], "received_at": doc["received_at"]}
                for device, doc in self.heartbeats.items() if isinstance(doc.get("lobby"), dict)}

    # faults ------------------------------------------------------------------------------

    def set_faults(self, changes: dict) -> dict:
        if changes.get("reset"):
            offset = self.faults["clock_offset_s"]
            self.faults = dict(DEFAULT_FAULTS)
            self.faults["clock_offset_s"] = offset
            changes = {k: v for k, v in changes.items() if k != "reset"}
        check_faults(changes)
        for name, value in changes.items():
            self.faults[name] = value
        return dict(self.faults)

    def faults_for(self, endpoint: str) -> dict | None:
        """The faults that hit this request (counting down ``times``), or None."""
        f = self.faults
        active = {k: v for k, v in f.items() if k not in ("clock_offset_s", "endpoints", "times")
                  and v != DEFAULT_FAULTS[k]}
        if not active or (f["endpoints"] is not None and endpoint not in f["endpoints"]):
            return None
        snapshot = dict(f)
        if f["times"] is not None:
            f["times"] -= 1
            if f["times"] <= 0:
                self.set_faults({"reset": True})
        return snapshot

    # schedules ---------------------------------------------------------------------------

    def today(self) -> str:
        return office_today(self.tz_name, time.time() + self.faults["clock_offset_s"])

    def schedule_version(self, day: str) -> int:
        return self.overrides.get(day, {}).get("version", 1)

    def schedule_document(self, day: str, office_id: str | None = None) -> dict | None:
        """The current document for ``day``, or None when the office is closed that day."""
        o = self.overrides.get(day, {})
        if o.get("closed") or (not o and day not in (self.today(), next_day(self.today()))):
            return None
        if "document" in o:
            return o["document"]
        gen = o.get("generated_at")
        if gen is None:   # stable across restarts: "made at 21:00 UTC the evening before"
            gen = datetime.fromisoformat(day + "T00:00:00+00:00").timestamp() - 3 * 3600
        office = office_id or self.office_id
        name = self.office_name if office == self.office_id else f"Kantor Imigrasi {office}"
        return generate_schedule(office, name, self.tz_name, day,
                                 o.get("appointments", self.appointments),
                                 version=self.schedule_version(day), generated_at=gen)

    def schedule_body(self, day: str, office_id: str | None = None) -> tuple[bytes, str] | None:
        """(body, etag) for ``day``, cached until the schedule changes."""
        cache_key = (day, office_id, self.schedule_version(day))
        if cache_key not in self._bodies:
            doc = self.schedule_document(day, office_id)
            if doc is None:
                return None
            body = _json_bytes(doc)
            self._bodies[cache_key] = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        return self._bodies[cache_key]

    def change_schedule(self, change: dict) -> dict:
        day = change.get("date") or self.today()
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except (TypeError, ValueError):
            raise DevServerError(f"date {day!r} is not YYYY-MM-DD") from None
        o = self.overrides.setdefault(day, {})
        o["version"] = self.schedule_version(day) + 1
        o["generated_at"] = time.time()
        if "closed" in change:
            o["closed"] = bool(change["closed"])
        if "appointments" in change:
            if not isinstance(change["appointments"], int) or change["appointments"] < 0:
                raise DevServerError("appointments must be a whole number >= 0")
            o["appointments"] = change["appointments"]
        if "document" in change:
            if not isinstance(change["document"], dict):
                raise DevServerError("document must be a JSON object")
            o["document"] = change["document"]
        if change.get("push", True):
            self.push("*", "schedule", {"date": day, "version": o["version"]})
        body = self.schedule_body(day)
        return {"date": day, "version": o["version"], "etag": body[1] if body else None}

    # events ------------------------------------------------------------------------------

    def receive_events(self, device: str, events: list) -> list[dict]:
        results = []
        now = time.time()
        with contextlib.closing(self.db.cursor()) as cur:
            cur.execute("BEGIN IMMEDIATE")
            try:
                for event in events:
                    results.append(self._receive_one(cur, device, event, now))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return results

    def _receive_one(self, cur, device: str, event: Any, now: float) -> dict:
        if not isinstance(event, dict):
            return {"id": None, "status": "rejected", "reason": "an event must be a JSON object"}
        eid = event.get("id")
        if not isinstance(eid, str) or not 1 <= len(eid) <= 128:
            return {"id": eid if isinstance(eid, str) else None, "status": "rejected",
                    "reason": "id must be a string of 1 to 128 characters"}
        if cur.execute("SELECT 1 FROM events WHERE id = ?", (eid,)).fetchone():
            self.duplicates += 1
            return {"id": eid, "status": "duplicate"}
        problem = self._event_problem(event)
        if problem:
            return {"id": eid, "status": "rejected", "reason": problem}
        cur.execute("INSERT INTO events(id, device, type, body, received_at) VALUES (?,?,?,?,?)",
                    (eid, device, event["type"], json.dumps(event, ensure_ascii=False), now))
        return {"id": eid, "status": "accepted"}

    @staticmethod
    def _event_problem(event: dict) -> str | None:
        fields = EVENT_TYPES.get(event.get("type"))
        if fields is None:
            return f"unknown type {event.get('type')!r}; known: {', '.join(EVENT_TYPES)}"
        if not _parse_z(event.get("at")):
            return "at must be an RFC 3339 UTC time ending in Z"
        for name, kind in fields.items():
            value = event.get(name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                return f"{name} is missing or not a {kind.__name__}"
        if event["type"] in READER_EVENTS and "reader" in event:
            reader = event["reader"]
            if not isinstance(reader, str) or not READER_NAME_RE.match(reader):
                return ("reader must be a reader name: 1-32 lower-case letters, digits, - or _"
                        " (absent for a scan not made at a reader)")
        if event["type"] == "scan_rejected":
            code = event.get("booking_code", "missing")
            if code is not None and not isinstance(code, str):
                return "booking_code must be a string or null"
            count = event.get("count", 1)
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                return "count must be an integer of at least 1"
        return None

    def received(self, device: str | None) -> list[dict]:
        sql, args = "SELECT body FROM events ORDER BY seq", ()
        if device:
            sql, args = "SELECT body FROM events WHERE device = ? ORDER BY seq", (device,)
        return [json.loads(row[0]) for row in self.db.execute(sql, args)]

    # pushes ------------------------------------------------------------------------------

    def push(self, device: str, event: str, data: dict) -> int:
        cur = self.db.execute("INSERT INTO pushes(device, event, data, at) VALUES (?,?,?,?)",
                              (device, event, _json_bytes(data).decode(), time.time()))
        self._wake()
        return cur.lastrowid

    def _wake(self) -> None:
        if self.push_event is not None:
            self.push_event.set()
        self.push_event = asyncio.Event()

    def pushes_after(self, device: str, after: int) -> list[tuple[int, str, str]]:
        return self.db.execute("SELECT id, event, data FROM pushes WHERE id > ? AND device IN"
                               " (?, '*') ORDER BY id", (after, device)).fetchall()

    def last_push_id(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM pushes").fetchone()[0]

    def close_streams(self) -> None:
        self.stream_generation += 1
        self._wake()


# --- HTTP -------------------------------------------------------------------------------

def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


async def _drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the socket without an answer, like a dead server or a cut cable."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError()


async def _send(request: web.Request, status: int, body: bytes, headers: dict,
                content_type: str = "application/json") -> web.StreamResponse:
    """Answer ``body``, or a broken version of it when a body fault is switched on."""
    fault = (request.get(FAULTS) or {}).get("body")
    if fault == "garbage":
        body, status = random.Random(len(body)).randbytes(max(64, len(body) // 2)), 200
    elif fault == "html":
        body, status, content_type = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway"
                                      b"</title></head><body>nginx</body></html>", 200,
                                      "text/html")
    elif fault == "deep":   # valid JSON so far, nested past any parser's recursion limit
        body, status = b"[" * 100_000, 200
    elif fault == "huge":
        return await _send_huge(request, headers)
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_type = content_type
    resp.content_length = len(body)
    await resp.prepare(request)
    if fault == "truncated":
        await resp.write(body[: len(body) // 2])
        return await _drop_connection(request)
    await resp.write(body)
    return resp


async def _send_huge(request: web.Request, headers: dict) -> web.StreamResponse:
    """1 GiB of JSON-looking bytes, chunked, made one MiB at a time (never held whole)."""
    resp = web.StreamResponse(status=200, headers=headers)
    resp.content_type = "application/json"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    item = b'{"booking_code":"PADDING0","name":"Padding"},'
    chunk = item * ((1 << 20) // len(item))
    sent = 0
    try:
        await resp.write(b'{"format":"' + FORMAT.encode() + b'","appointments":[')
        while sent < HUGE_BODY_BYTES:
            await resp.write(chunk)
            sent += len(chunk)
        await resp.write(b"{}]}")
    except (ConnectionError, RuntimeError):
        pass   # the client gave up, as it should
    return resp


def _bearer_is(request: web.Request, token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>`` (compared in constant time)."""
    given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, f"Bearer {token}".encode())


def _resume_point(header: str, newest: int) -> int | None:
    """The push id a ``Last-Event-ID`` resumes after, or None for a fresh start.

    Only ids this server can have issued count: a short run of ASCII digits no larger than
    the newest push. Anything else (5,000 digits, another server's id) starts afresh.
    """
    text = header.strip()
    if not STREAM_ID_RE.match(text):
        return None
    value = int(text)
    return value if value <= newest else None


def contract_gate(state: CentralState):
    """The middleware in front of every request: the admin token for ``/_admin``, and for
    the contract's endpoints the request counts, the fault switches and the device token."""

    @web.middleware
    async def contract(request: web.Request, handler):
        if request.path.startswith("/_admin"):
            if not _bearer_is(request, state.admin_token):
                return _error(401, "the admin endpoints need Authorization: Bearer <admin "
                              "token> (see --admin-token-file)",
                              {"WWW-Authenticate": 'Bearer realm="antrean-admin"'})
            return await handler(request)
        if request.match_info.route.name is None:
            return await handler(request)
        endpoint = request.match_info.route.name
        state.requests[endpoint] += 1
        state.user_agents.append(request.headers.get("User-Agent", ""))
        del state.user_agents[:-50]
        faults = state.faults_for(endpoint)
        if faults and faults["slow"]:
            await asyncio.sleep(float(faults["slow"]))
        if faults and faults["down"]:
            return await _drop_connection(request)
        if (faults and faults["revoked"]) or \
                request.headers.get("Authorization") != f"Bearer {state.token}":
            return _error(401, "the device token is missing, unknown or revoked",
                          {"WWW-Authenticate": 'Bearer realm="antrean"'})
        if faults and faults["status"]:
            headers = {}
            if faults["retry_after"] is not None:
                headers["Retry-After"] = str(faults["retry_after"])
            return _error(int(faults["status"]), "fault switch: forced status", headers)
        request[FAULTS] = faults
        return await handler(request)

    return contract


class ContractHandlers:
    """The central API as ``docs/api.md`` describes it (the appliance's side of the world)."""

    def __init__(self, state: CentralState):
        self.state = state

    def device_of(self, request: web.Request) -> str:
        device = request.match_info["device"]
        if not DEVICE_ID_RE.match(device):
            raise web.HTTPNotFound(text='{"error": "unknown device id"}',
                                   content_type="application/json")
        return device

    async def get_schedule(self, request: web.Request) -> web.StreamResponse:
        office = request.match_info["office"]
        day = request.query.get("date", "")
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except ValueError:
            return _error(400, "date must be given as ?date=YYYY-MM-DD")
        if office != self.state.office_id:
            return _error(404, f"unknown office {office!r}")
        faults = request.get(FAULTS) or {}
        served = self.state.schedule_body(day, faults.get("office"))
        if served is None:
            return _error(404, f"no schedule for {day}: the office is closed")
        body, etag = served
        if_none = request.headers.get("If-None-Match", "")
        tags = {t.strip().removeprefix("W/") for t in if_none.split(",") if t.strip()}
        if etag in tags or "*" in tags:
            return web.Response(status=304, headers={"ETag": etag})
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if faults.get("signature") == "wrong":
            headers["X-Antrean-Signature"] = generate_key(self.state.key.keyid).sign_header(body)
        elif faults.get("signature") != "missing":
            headers["X-Antrean-Signature"] = self.state.key.sign_header(body)
        return await _send(request, 200, body, headers)

    async def device_and_body(self, request: web.Request) -> tuple[str, Any]:
        device = self.device_of(request)
        try:
            return device, json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text='{"error": "the body is not JSON"}',
                                     content_type="application/json") from None

    async def post_events(self, request: web.Request) -> web.StreamResponse:
        device, doc = await self.device_and_body(request)
        events = doc.get("events") if isinstance(doc, dict) else None
        if not isinstance(events, list):
            return _error(400, 'the body must be {"events": [...]}')
        if len(events) > MAX_EVENTS_PER_BATCH:
            return _error(413, f"at most {MAX_EVENTS_PER_BATCH} events per request")
        results = self.state.receive_events(device, events)
        return await _send(request, 200, _json_bytes({"results": results}), {})

    async def post_heartbeat(self, request: web.Request) -> web.StreamResponse:
        device, doc = await self.device_and_body(request)
        missing = [k for k in HEARTBEAT_FIELDS if not isinstance(doc, dict) or k not in doc]
        if missing:
            return _error(400, f"heartbeat lacks {', '.join(missing)}")
        lobby = doc.get("lobby")
        if lobby is not None and not (isinstance(lobby, dict)
                                      and isinstance(lobby.get("services"), list)):
            return _error(400, 'heartbeat "lobby" must be an object with a "services" list')
        doc["received_at"] = time.time()
        self.state.heartbeats[device] = doc
        return web.Response(status=204)

    async def get_stream(self, request: web.Request) -> web.StreamResponse:
        device = self.device_of(request)
        resume = _resume_point(request.headers.get("Last-Event-ID", ""), self.state.last_push_id())
        cursor = self.state.last_push_id() if resume is None else resume
        generation = self.state.stream_generation
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        self.state.streams += 1
        try:
            await resp.write(b": connected\n\n")
            if resume is None:   # give a fresh client its resume point
                await resp.write(f"id: {cursor}\n\n".encode())
            while generation == self.state.stream_generation:
                if self.state.push_event is None:
                    self.state._wake()
                woken = self.state.push_event
                for pid, event, data in self.state.pushes_after(device, cursor):
                    chunk = f"id: {pid}\nevent: {event}\ndata: {data}\n\n".encode()
                    if self.state.faults["stream_cut"]:
                        await resp.write(chunk[: len(chunk) // 2])
                        return await _drop_connection(request)
                    await resp.write(chunk)
                    cursor = pid
                try:
                    await asyncio.wait_for(woken.wait(), self.state.keepalive_s)
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.state.streams -= 1
        return resp


def contract_routes(state: CentralState) -> list:
    """The contract's endpoints; their route names are the fault switches' endpoint names."""
    h = ContractHandlers(state)
    return [web.get("/offices/{office}/schedule", h.get_schedule, name="schedule"),
            web.post("/devices/{device}/events", h.post_events, name="events"),
            web.get("/devices/{device}/stream", h.get_stream, name="stream"),
            web.post("/devices/{device}/heartbeat", h.post_heartbeat, name="heartbeat")]


def _admin_endpoint(fn):
    """An admin handler returning a dict: answered as JSON, a ``DevServerError`` as 400."""
    async def wrapped(self, request: web.Request) -> web.StreamResponse:
        try:
            return web.json_response(await fn(self, request))
        except DevServerError as e:
            return _error(400, str(e))
    return wrapped


class AdminHandlers:
    """Loopback tooling for tests and demos (behind the admin token, never faulted)."""

    def __init__(self, state: CentralState):
        self.state = state

    async def admin_json(self, request: web.Request) -> dict:
        try:
            doc = await request.json()
        except ValueError:
            raise DevServerError("the admin body is not JSON") from None
        if not isinstance(doc, dict):
            raise DevServerError("the admin body must be a JSON object")
        return doc

    @_admin_endpoint
    async def admin_faults(self, request: web.Request) -> dict:
        if request.method == "POST":
            return self.state.set_faults(await self.admin_json(request))
        return dict(self.state.faults)

    @_admin_endpoint
    async def admin_schedule(self, request: web.Request) -> dict:
        if request.method == "POST":
            return self.state.change_schedule(await self.admin_json(request))
        day = request.query.get("date") or self.state.today()
        return {"document": self.state.schedule_document(day)}

    @_admin_endpoint
    async def admin_push(self, request: web.Request) -> dict:
        doc = await self.admin_json(request)
        event, data = doc.get("event"), doc.get("data")
        if event not in PUSH_EVENTS or not isinstance(data, dict):
            raise DevServerError(f"push needs event in {PUSH_EVENTS} and a data object")
        if event == "call":
            data = {"id": secrets.token_hex(8), "at": _utc_z(time.time()), **data}
        pid = self.state.push(doc.get("device") or "*", event, data)
        return {"id": pid, "data": data}

    @_admin_endpoint
    async def admin_events(self, request: web.Request) -> dict:
        return {"events": self.state.received(request.query.get("device"))}

    @_admin_endpoint
    async def admin_state(self, request: web.Request) -> dict:
        return {"streams": self.state.streams, "requests": self.state.requests,
                "heartbeats": self.state.heartbeats, "lobbies": self.state.lobbies(),
                "user_agents": self.state.user_agents[-5:],
                "faults": self.state.faults, "today": self.state.today(),
                "duplicates": self.state.duplicates, "keyid": self.state.key.keyid,
                "public_key": self.state.key.public_b64, "last_push_id": self.state.last_push_id()}

    @_admin_endpoint
    async def admin_token(self, request: web.Request) -> dict:
        token = (await self.admin_json(request)).get("token")
        if not isinstance(token, str) or not token:
            raise DevServerError("token must be a non-empty string")
        if hmac.compare_digest(token.encode(), self.state.admin_token.encode()):
            raise DevServerError("the device token must differ from the admin token")
        self.state.token = token
        return {"ok": True}

    @_admin_endpoint
    async def admin_close_streams(self, request: web.Request) -> dict:
        self.state.close_streams()
        return {"ok": True}

    @_admin_endpoint
    async def admin_ticket(self, request: web.Request) -> dict:
        day = request.query.get("date") or self.state.today()
        code = request.query.get("booking_code", "").upper()
        doc = self.state.schedule_document(day) or {}
        for a in doc.get("appointments", []):
            if a["booking_code"] == code:
                return {"ticket": sign_barcode(self.state.key, code, self.state.office_id,
                                              a["slot_start"], a["slot_end"], a["service"],
                                              a["name"], a["priority"])}
        raise DevServerError(f"booking code {code!r} is not in the schedule of {day}")


def admin_routes(state: CentralState) -> list:
    """The ``/_admin`` endpoints the tests and the demo drive the server with."""
    h = AdminHandlers(state)
    return [web.route("*", "/_admin/faults", h.admin_faults),
            web.route("*", "/_admin/schedule", h.admin_schedule),
            web.post("/_admin/push", h.admin_push),
            web.get("/_admin/events", h.admin_events),
            web.get("/_admin/state", h.admin_state),
            web.post("/_admin/token", h.admin_token),
            web.post("/_admin/close-streams", h.admin_close_streams),
            web.get("/_admin/ticket", h.admin_ticket)]


def build_app(state: CentralState) -> web.Application:
    """The aiohttp application serving ``state``: the contract and the admin endpoints."""

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Date"] = formatdate(time.time() + state.faults["clock_offset_s"],
                                              usegmt=True)

    app = web.Application(middlewares=[contract_gate(state)], client_max_size=4 << 20)
    app.on_response_prepare.append(on_prepare)
    app.add_routes(contract_routes(state))
    app.add_routes(admin_routes(state))
    return app


# --- running it ---------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback one (``""`` means all: False)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback
                               for i in infos)


def read_admin_token(path: str) -> str:
    """The admin token in ``path`` (one line); raises ``DevServerError`` naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise DevServerError(f"--admin-token-file {path}: cannot read it "
                             f"({getattr(e, 'strerror', None) or e})") from None
    if not ADMIN_TOKEN_RE.match(token):
        raise DevServerError(f"--admin-token-file {path}: the token must be one line of 16-512 "
                             "printable characters without spaces")
    return token


def _write_secret(path: str, text: str) -> str:
    """Write ``text`` to ``path`` readable by its owner only, atomically."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)
    return path


def _load_or_make_key(key_path: str | None, state_dir: str, keyid: str):
    if key_path:
        return load_key_file(key_path), False
    return load_or_create_key(os.path.join(state_dir, "devserver.key"), keyid)


def _read_pem(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError as e:
        raise DevServerError(f"{option} {path}: cannot read it ({e.strerror or e})") from None


def server_tls_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """The TLS context serving ``cert_path`` (PEM, the server certificate first, then any
    intermediates) with ``key_path`` (PEM, unencrypted); ``DevServerError`` names the file
    and what is wrong with it (unreadable, not PEM, or a key that is not the certificate's).
    """
    cert_pem, key_pem = _read_pem("--tls-cert", cert_path), _read_pem("--tls-key", key_path)
    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        raise DevServerError(f"--tls-cert {cert_path}: not a PEM certificate (expected "
                             "-----BEGIN CERTIFICATE-----)") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):   # TypeError: it is encrypted
        raise DevServerError(f"--tls-key {key_path}: not an unencrypted PEM private key") \
            from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != leaf.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise DevServerError(f"--tls-key {key_path} is not the key of --tls-cert {cert_path}; "
                             "give the key the certificate was made for")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, OSError) as e:
        raise DevServerError(f"--tls-cert {cert_path} / --tls-key {key_path}: OpenSSL refuses "
                             f"them ({getattr(e, 'reason', None) or e})") from None
    return context


class _OwnServerAdapter(requests.adapters.HTTPAdapter):
    """Verifies the server's chain (to ``tls_ca``) and name, not its dates: a test may serve
    a certificate outside its validity on purpose, and ``admin()`` must still reach the
    server it started."""

    def __init__(self, ca_file: str | None):
        self.context = ssl.create_default_context(cafile=ca_file)
        self.context.verify_flags |= NO_CHECK_TIME
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, ssl_context=self.context, **kwargs)


class DevServer:
    """The reference server on its own thread and event loop, for tests and the demo.

    ``port=0`` picks a free port; ``url`` is the base URL once started. ``admin()`` talks to
    the admin endpoints over real HTTP, like any other client would.

    With ``tls_cert`` and ``tls_key`` (PEM files) it serves https and ``url`` says so;
    ``admin()`` then verifies the server against ``tls_ca`` (the CA file an appliance would
    be given as ``server.ca_file``; default: the usual public CAs).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, key_path: str | None = None,
                 office: str = "TRK", office_name: str = "Kantor Imigrasi Kelas II TPI Tarakan",
                 timezone_name: str = "Asia/Makassar", state_dir: str | None = None,
                 token: str = "dev-token", appointments: int = 120, keepalive_s: float = 15.0,
                 keyid: str = "dev", faults: dict | None = None,
                 admin_token: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, tls_ca: str | None = None):
        if admin_token is None and not is_loopback(host):
            raise DevServerError(f"--host {host!r} is not a loopback address: anyone on that "
                                 "network could use the admin endpoints; give "
                                 "--admin-token-file FILE, or listen on 127.0.0.1")
        if admin_token is not None and not ADMIN_TOKEN_RE.match(admin_token):
            raise DevServerError("the admin token must be 16-512 printable characters "
                                 "without spaces")
        if admin_token is not None and hmac.compare_digest(admin_token.encode(), token.encode()):
            raise DevServerError("the admin token must differ from the device token (--token)")
        if (tls_cert is None) != (tls_key is None):
            raise DevServerError("--tls-cert and --tls-key go together: give both (or neither "
                                 "for plain http)")
        self.tls = server_tls_context(tls_cert, tls_key) if tls_cert else None
        self.tls_ca = tls_ca
        self.host, self.port = host, port
        self._tmp = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="antrean-central-")
            state_dir = self._tmp.name
        os.makedirs(state_dir, exist_ok=True)
        self.state_dir = state_dir
        self.admin_token_path = None
        if admin_token is None:
            admin_token = secrets.token_urlsafe(32)
            self.admin_token_path = _write_secret(os.path.join(state_dir, ADMIN_TOKEN_FILE),
                                                  admin_token)
        self.admin_token = admin_token
        self.key, self.key_created = _load_or_make_key(key_path, state_dir, keyid)
        self._options = dict(office_id=office, office_name=office_name, tz_name=timezone_name,
                             appointments=appointments, token=token, key=self.key,
                             state_dir=state_dir, keepalive_s=keepalive_s,
                             admin_token=admin_token)
        self._faults = faults or {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.state: CentralState | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def _start_async(self) -> None:
        self.state = CentralState(**self._options)
        self.state.set_faults(self._faults)
        self._runner = web.AppRunner(build_app(self.state), access_log=None,
                                     handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True,
                           ssl_context=self.tls)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start_async())
        except BaseException as e:   # reported to start()'s caller
            self._error = e
            self._started.set()
            loop.close()
            return
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        if self.state is not None:
            self.state.db.close()
        loop.close()

    def start(self) -> DevServer:
        self._thread = threading.Thread(target=self._thread_main, name="devserver", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise DevServerError(f"cannot start the reference server on {self.host}:"
                                 f"{self.port}: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        with requests.Session() as session:
            session.trust_env = False
            if self.tls:
                session.verify = self.tls_ca or True
                session.mount("https://", _OwnServerAdapter(self.tls_ca))
            r = session.request(method, self.url + path, json=body, timeout=10,
                                headers={"Authorization": f"Bearer {self.admin_token}"})
        r.raise_for_status()
        return r.json()



def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="antrean devserver",
                                description="Run the reference central server (loopback demo).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; anything but "
                   "loopback needs --admin-token-file")
    p.add_argument("--admin-token-file", metavar="FILE", help="file holding the bearer token "
                   "of the /_admin endpoints (default: a new one in STATE/admin-token)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--key", metavar="KEYFILE", help="signing key from `antrean keygen` "
                   "(default: STATE/devserver.key, made on first start)")
    p.add_argument("--keyid", default="dev", help="key id for a newly made key")
    p.add_argument("--office", default="TRK")
    p.add_argument("--office-name", default="Kantor Imigrasi Kelas II TPI Tarakan")
    p.add_argument("--timezone", default="Asia/Makassar")
    p.add_argument("--state", metavar="DIR", help="folder for received events and the key "
                   "(default: a temporary folder, forgotten at exit)")
    p.add_argument("--token", default="dev-token", help="the device token to accept")
    p.add_argument("--appointments", type=int, default=120, help="bookings per generated day")
    p.add_argument("--keepalive", type=float, default=15.0, help="seconds between stream "
                   "comment lines")
    p.add_argument("--faults", default="{}", help='faults at start as JSON, e.g. '
                   '\'{"status": 429, "retry_after": 5}\'')
    p.add_argument("--tls-cert", metavar="FILE", help="serve https with this certificate "
                   "(PEM, intermediates after it); needs --tls-key. A test CA and certificate: "
                   "python -m devtools.throwaway_ca DIR --name 127.0.0.1")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM, "
                   "unencrypted)")
    return p


def _check_options(args: argparse.Namespace) -> dict:
    if not OFFICE_ID_RE.match(args.office):
        raise DevServerError(f"--office {args.office!r} must be 1-16 of A-Z 0-9 _ -")
    if not KEY_ID_RE.match(args.keyid):
        raise DevServerError(f"--keyid {args.keyid!r} must be 1-32 of A-Z a-z 0-9 _ -")
    if not 0 <= args.appointments <= 200_000:
        raise DevServerError("--appointments must be between 0 and 200000")
    if not 0 <= args.port <= 65535:
        raise DevServerError("--port must be between 0 and 65535")
    if args.keepalive <= 0:
        raise DevServerError("--keepalive must be above 0 seconds")
    try:
        office_today(args.timezone, 0)
    except (ValueError, KeyError):
        raise DevServerError(f"--timezone {args.timezone!r} is not an IANA time zone "
                             "name (for example Asia/Makassar)") from None
    try:
        faults = json.loads(args.faults)
    except ValueError:
        raise DevServerError(f"--faults {args.faults!r} is not JSON; "
                             'write e.g. \'{"status": 500}\'') from None
    if not isinstance(faults, dict):
        raise DevServerError("--faults must be a JSON object")
    check_faults({k: v for k, v in faults.items() if k != "reset"})
    return faults


def main(argv: list[str]) -> int:
    """``antrean devserver``: serve until Ctrl-C / SIGTERM."""
    args = _parser().parse_args(argv)
    try:
        faults = _check_options(args)
        admin_token = read_admin_token(args.admin_token_file) if args.admin_token_file else None
        server = DevServer(host=args.host, port=args.port, key_path=args.key,
                           office=args.office, office_name=args.office_name,
                           timezone_name=args.timezone, state_dir=args.state,
                           token=args.token, appointments=args.appointments,
                           keepalive_s=args.keepalive, keyid=args.keyid, faults=faults,
                           admin_token=admin_token, tls_cert=args.tls_cert,
                           tls_key=args.tls_key)
        server.start()
    except (DevServerError, KeyFileError, OSError) as e:
        print(f"antrean devserver: {e}", file=sys.stderr)
        return 2
    print(f"antrean devserver: serving {server.url} for office {args.office} "
          f"({args.timezone}); state in {server.state_dir}", flush=True)
    print(f"  trust this key in the appliance config: [trust] keys = "
          f'{{ {server.key.keyid} = "{server.key.public_b64}" }}', flush=True)
    print(f"  server.url = \"{server.url}\"; the device token is in --token "
          "(not printed)", flush=True)
    where = args.admin_token_file or server.admin_token_path
    print(f"  /_admin endpoints need Authorization: Bearer <the token in {where}>", flush=True)
    import signal
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
