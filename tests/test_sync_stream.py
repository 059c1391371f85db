"""The push stream end to end: calls, schedules and announcements from the server, resume
after cuts and restarts, and reconnecting when the stream goes silent."""

from __future__ import annotations

import json
import logging
import queue
import threading
from types import SimpleNamespace

import pytest
from conftest import KEY
from raw_http import RawServer, answer, header
from test_sync_harness import wait_until, write_sync_config

from appliance.config import load_config
from appliance.schedule import schedule_info
from appliance.store import Store
from devtools.devserver import DevServer
from sync.backoff import Backoff
from sync.service import PushStream, SyncService

pytest_plugins = ("test_sync_harness",)   # the central and sync_config fixtures


class Running:
    """A sync service looping in a thread, and a second connection to look at the store."""

    def __init__(self, config, **knobs):
        self.service = SyncService(config, backoff_base_s=0.05, backoff_cap_s=0.2, **knobs)
        self.thread = threading.Thread(target=self.service.run_forever)
        self.look = Store(config.storage.path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.service.request_stop()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.service.close()
        self.look.close()

    def call_rows(self, server_id: str) -> int:
        return self.look.db.execute("SELECT COUNT(*) FROM calls WHERE server_id = ?",
                                    (server_id,)).fetchone()[0]


def streams(server) -> int:
    return server.admin("GET", "/_admin/state")["streams"]


def push_call(server, ticket: str, counter: int = 2) -> str:
    return server.admin("POST", "/_admin/push", {"event": "call", "data": {
        "ticket": ticket, "counter": counter}})["data"]["id"]


def test_pushed_call_reaches_the_store(sync_config, central):
    with Running(sync_config) as run:
        wait_until(lambda: streams(central) >= 1, what="the stream to connect")
        sid = push_call(central, "A013")
        wait_until(lambda: run.call_rows(sid) == 1, timeout=5, what="the pushed call")
        row = run.look.db.execute("SELECT ticket, counter, kind, origin FROM calls WHERE "
                                  "server_id = ?", (sid,)).fetchone()
        assert row == ("A013", 2, "call", "server")


def test_odd_pushes_are_ignored_and_sync_carries_on(sync_config, central):
    with Running(sync_config) as run:
        wait_until(lambda: streams(central) >= 1, what="the stream to connect")
        odd = central.admin("POST", "/_admin/push", {"event": "call", "data": {
            "ticket": "A020", "counter": 1, "at": "9999-12-31T23:59:59-12:00"}})["data"]["id"]
        central.admin("POST", "/_admin/push", {"event": "schedule",
                                               "data": {"date": "20261130", "version": 9}})
        sid = push_call(central, "A021")
        wait_until(lambda: run.call_rows(sid) == 1, timeout=5, what="the call after them")
        # The absurd time is replaced by the appliance's own; the call itself is kept.
        at = run.look.db.execute("SELECT at FROM calls WHERE server_id = ?", (odd,)).fetchone()
        assert at is not None and 2000 < at[0] / 31557600 + 1970 < 2100


def test_schedule_and_announcement_pushes(sync_config, central):
    with Running(sync_config) as run:
        wait_until(lambda: streams(central) >= 1, what="the stream to connect")
        day = central.admin("GET", "/_admin/state")["today"]
        wait_until(lambda: schedule_info(run.look, day), what="the first pull")
        central.admin("POST", "/_admin/schedule", {"appointments": 44})
        wait_until(lambda: schedule_info(run.look, day).version == 2, what="the pushed pull")
        assert schedule_info(run.look, day).appointments == 44
        central.admin("POST", "/_admin/push", {"event": "announcements", "data": {
            "items": ["Loket 3 tutup pukul 12.00."]}})
        wait_until(lambda: (run.look.get_kv("announcements") or {}).get("items")
                   == ["Loket 3 tutup pukul 12.00."], what="the announcements")


def test_resume_with_last_event_id_after_a_cut(sync_config, central):
    with Running(sync_config) as run:
        wait_until(lambda: streams(central) >= 1, what="the stream to connect")
        first = push_call(central, "A001")
        wait_until(lambda: run.call_rows(first), what="the first call")
        central.admin("POST", "/_admin/faults", {"down": True, "endpoints": ["stream"]})
        central.admin("POST", "/_admin/close-streams", {})
        wait_until(lambda: streams(central) == 0, what="the stream to drop")
        missed = push_call(central, "A002")           # sent while the appliance is away
        central.admin("POST", "/_admin/faults", {"reset": True})
        wait_until(lambda: run.call_rows(missed), what="the call pushed during the cut")


def test_event_cut_in_half_is_delivered_once_later(sync_config, central):
    with Running(sync_config) as run:
        wait_until(lambda: streams(central) >= 1, what="the stream to connect")
        central.admin("POST", "/_admin/faults", {"stream_cut": True})
        sid = push_call(central, "B007", 3)
        wait_until(lambda: central.admin("GET", "/_admin/state")["requests"]["stream"] >= 3,
                   what="reconnects while the stream keeps breaking")
        assert run.call_rows(sid) == 0          # half an event is no event
        central.admin("POST", "/_admin/faults", {"reset": True})
        wait_until(lambda: run.call_rows(sid), what="the whole event")
        last = central.admin("GET", "/_admin/state")["last_push_id"]
        wait_until(lambda: run.look.get_kv("sync.stream_last_id") == str(last),
                   what="the resume point to be saved")
        assert run.call_rows(sid) == 1


def test_restart_resumes_from_the_saved_event_id(sync_config, central):
    with Running(sync_config) as run:
        wait_until(lambda: streams(central) >= 1, what="the stream to connect")
        sid = push_call(central, "A005")
        wait_until(lambda: run.call_rows(sid), what="the first call")
    wait_until(lambda: streams(central) == 0, what="the old stream to close")
    missed = push_call(central, "A006")
    with Running(sync_config) as run:
        wait_until(lambda: run.call_rows(missed), what="the call pushed while stopped")


@pytest.fixture
def quiet_central(tmp_path):
    with DevServer(state_dir=str(tmp_path / "quiet"), token="dev-token-0123456789",
                   keepalive_s=30.0, appointments=5) as server:
        yield server


def test_silent_stream_is_reconnected(tmp_path, quiet_central):
    config = load_config(write_sync_config(tmp_path, quiet_central))
    with Running(config, stream_silence_s=0.3) as run:
        wait_until(lambda: quiet_central.admin("GET", "/_admin/state")["requests"]["stream"]
                   >= 3, what="reconnects after silence")
        assert run.service.stream.is_alive()  # still holding on, not given up


def test_sigterm_stops_sync_while_the_stream_is_quiet(tmp_path, quiet_central):
    """The stream's blocked read must not hold the service past SIGTERM (the server's next
    keepalive is 30 s away here; systemd would wait, then kill)."""
    import subprocess
    import sys
    from pathlib import Path

    config = write_sync_config(tmp_path, quiet_central)
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "--config", str(config),
                             "sync"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        wait_until(lambda: streams(quiet_central) >= 1, what="the stream to connect")
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert b"Traceback" not in proc.stderr.read()


# --- hostile and odd streams (raw answers the reference server never gives) ---------------

def raw_config(tmp_path, raw: RawServer):
    return load_config(write_sync_config(tmp_path, SimpleNamespace(url=raw.url, key=KEY)))


def stream_or_503(on_stream):
    """A responder: ``on_stream(conn, head, n)`` for the n-th stream request, 503 otherwise
    (schedule pulls and heartbeats find a server that is down)."""
    streams_seen = []

    def respond(conn, head, index):
        if b"/stream " not in head.split(b"\r\n", 1)[0]:
            conn.sendall(answer("503 Service Unavailable", {"Content-Length": "0"}))
            return
        streams_seen.append(head)
        on_stream(conn, head, len(streams_seen) - 1)
    respond.streams = streams_seen
    return respond


SSE_UNFRAMED = answer("200 OK", {"Content-Type": "text/event-stream", "Connection": "close"})


def call_event(event_id: str, server_id: str, ticket: str = "A013") -> bytes:
    data = json.dumps({"id": server_id, "ticket": ticket, "counter": 2})
    return f"id: {event_id}\nevent: call\ndata: {data}\n\n".encode()


def test_event_is_delivered_while_an_unframed_response_stays_open(tmp_path):
    """No chunked encoding, no Content-Length: the event must not wait for the close."""
    def on_stream(conn, head, n):
        conn.sendall(SSE_UNFRAMED + b": hello\n\n" + call_event("1", "srv-open"))
        raw.stopping.wait()                       # the connection stays open

    responder = stream_or_503(on_stream)
    with RawServer(responder) as raw, Running(raw_config(tmp_path, raw)) as run:
        wait_until(lambda: run.call_rows("srv-open") == 1, what="the event on an open stream")
        assert len(responder.streams) == 1        # delivered on the first, still open, stream


def test_a_flood_of_comment_lines_is_framed_in_linear_time(tmp_path):
    """4 MiB of ``:`` lines (2 million), then an event, in one chunk of a chunked answer.

    Framing that copies the rest of the buffer per line needs minutes for this (the old
    parser: 0.7 s for 256 KiB, growing with the square); one pass needs seconds. The figure
    for 256 KiB is in bench/sync.py; here only a generous wait.
    """
    flood = b":\n" * (2 * 1024 * 1024)

    def on_stream(conn, head, n):
        if n:
            raw.stopping.wait()
            return
        event = call_event("1", "srv-flood")
        conn.sendall(answer("200 OK", {"Content-Type": "text/event-stream",
                                       "Transfer-Encoding": "chunked"})
                     + b"%x\r\n" % len(flood) + flood + b"\r\n"
                     + b"%x\r\n" % len(event) + event + b"\r\n")
        raw.stopping.wait()

    with RawServer(stream_or_503(on_stream)) as raw, \
            Running(raw_config(tmp_path, raw)) as run:
        wait_until(lambda: run.call_rows("srv-flood") == 1, timeout=60,
                   what="the event after 4 MiB of comment lines")


@pytest.mark.parametrize("bad", [" 7", "7\u20ac", "7" * 300, "7\x01", "7 "],
                         ids=["leading-blank", "not-latin-1", "too-long", "control", "trailing"])
def test_an_event_id_that_is_no_header_value_is_ignored(tmp_path, caplog, bad):
    """The id is not kept, the reconnect resumes from the last good id, the thread lives."""
    def on_stream(conn, head, n):
        if n == 0:
            conn.sendall(SSE_UNFRAMED + b"id: 1\n\n"
                         + call_event(" " + bad, "srv-bad-1", "A021")
                         + call_event(" " + bad + "x", "srv-bad-2", "A022"))
            return                                # and hang up: the client must reconnect
        conn.sendall(SSE_UNFRAMED + b": hello\n\n")
        raw.stopping.wait()

    responder = stream_or_503(on_stream)
    with caplog.at_level(logging.WARNING, logger="antrean.sync"), RawServer(responder) as raw, \
            Running(raw_config(tmp_path, raw)) as run:
        wait_until(lambda: len(responder.streams) >= 2, what="the reconnect")
        assert header(responder.streams[1], "Last-Event-ID") == "1"
        wait_until(lambda: run.call_rows("srv-bad-1") == run.call_rows("srv-bad-2") == 1,
                   what="both events (their ids ignored, the events kept)")
        assert run.service.stream.is_alive()
        wait_until(lambda: run.look.get_kv("sync.stream_last_id") == "1",
                   what="the resume point (the last good id)")
    ignored = [r for r in caplog.records if "ignored an event id" in r.getMessage()]
    assert len(ignored) == 1


@pytest.mark.parametrize("saved", [" 5", "5\u20ac", "\x00", 7],
                         ids=["leading-blank", "not-latin-1", "nul", "not-a-string"])
def test_a_saved_resume_point_that_is_no_header_value_does_not_stop_pushes(
        sync_config, central, saved):
    """An id saved by an older version must not kill the stream after a restart."""
    with Store(sync_config.storage.path) as s:
        s.set_kv("sync.stream_last_id", saved)
    with Running(sync_config) as run:
        wait_until(lambda: streams(central) >= 1, what="the stream to connect")
        sid = push_call(central, "A031")
        wait_until(lambda: run.call_rows(sid) == 1, what="a call pushed after the restart")
        assert run.look.get_kv("sync.stream_last_id") != saved


class BrokenOnce(Backoff):
    """A backoff with a bug that shows once: an exception no branch of the stream expects."""

    def __init__(self):
        super().__init__(base_s=0.05, cap_s=0.2)
        self.broke = False

    def failed(self, retry_after=None):
        if not self.broke:
            self.broke = True
            raise RuntimeError("a bug nobody foresaw")
        return super().failed(retry_after)


def test_no_exception_ends_the_stream_thread(sync_config, central, caplog):
    central.admin("POST", "/_admin/faults", {"down": True, "endpoints": ["stream"]})
    inbox, stop = queue.SimpleQueue(), threading.Event()
    backoff = BrokenOnce()
    stream = PushStream(sync_config, inbox, None, stop, silence_s=5, backoff=backoff)
    with caplog.at_level(logging.ERROR, logger="antrean.sync"):
        stream.start()
        try:
            wait_until(lambda: backoff.broke and backoff.failures >= 2, what="retries")
            central.admin("POST", "/_admin/faults", {"reset": True})
            wait_until(lambda: streams(central) >= 1, what="the stream after the error")
            assert stream.is_alive()
        finally:
            stop.set()
            stream.interrupt()
            stream.join(5)
    assert len([r for r in caplog.records if "unexpected error" in r.getMessage()]) == 1
