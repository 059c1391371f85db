"""Every request has an overall deadline: a server that drips a byte a second cannot hold
sync until systemd's watchdog kills it. Real sockets on loopback, a real sd_notify socket."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import KEY
from raw_http import RawServer, answer
from test_sync_harness import DEVICE, wait_until, write_sync_config

from appliance.config import load_config
from sync.client import CentralClient, ServerUnreachable
from sync.service import SyncService

REPO = Path(__file__).resolve().parents[1]


def dripping(where: str):
    """A responder that sends a byte a second forever: inside the headers, or the body."""
    def respond(conn, head, n):
        if where == "headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        else:
            conn.sendall(answer("200 OK", {"Content-Type": "application/json",
                                           "Content-Length": "100000"}) + b"[")
        while not respond.stop.wait(1.0):
            conn.sendall(b"a" if where == "headers" else b" ")
    respond.stop = threading.Event()
    return respond


def fast_config(tmp_path, url: str, connect: float = 1.0, read: float = 2.0):
    token = tmp_path / "token"
    token.write_text("dev-token-0123456789\n")
    path = tmp_path / "antrean.toml"
    path.write_text(
        '[office]\nid = "TRK"\ntimezone = "Asia/Makassar"\n'
        f'[storage]\npath = "{tmp_path / "antrean.db"}"\n'
        f'[trust]\nkeys = {{ {KEY.keyid} = "{KEY.public_b64}" }}\n'
        f'[server]\nurl = "{url}"\ndevice_id = "{DEVICE}"\ntoken_file = "{token}"\n'
        f'connect_timeout_s = {connect}\nread_timeout_s = {read}\n'
        'poll_seconds = 5\nheartbeat_seconds = 5\n')
    return load_config(path)


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_slow_drip_server_is_cut_off_at_the_deadline(tmp_path, where):
    """A byte a second never trips the 2 s read timeout; the 3 s deadline must."""
    respond = dripping(where)
    with RawServer(respond) as raw:
        client = CentralClient(load_config(write_sync_config(
            tmp_path, SimpleNamespace(url=raw.url, key=KEY))))
        outcome = {}

        def ask():
            t = time.monotonic()
            try:
                outcome["answer"] = client.get_schedule("TRK", "2026-12-01", None)
            except Exception as e:  # noqa: BLE001 - the test inspects it
                outcome["error"] = e
            outcome["took"] = time.monotonic() - t

        thread = threading.Thread(target=ask, daemon=True)
        thread.start()
        thread.join(30)
        alive = thread.is_alive()
        respond.stop.set()
    assert not alive, "the request was still running after 30 s"
    assert isinstance(outcome.get("error"), ServerUnreachable), outcome
    assert "no complete answer within 3 s" in str(outcome["error"])
    assert outcome["took"] >= 2.9
    client.close()


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket collecting (time, message)."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def times(self, prefix: str) -> list[float]:
        return [t for t, m in self.messages if m.startswith(prefix)]

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_sync_keeps_the_watchdog_fed_and_says_degraded_against_a_slow_drip(tmp_path,
                                                                           monkeypatch):
    """WatchdogSec=6 s: pings every 3 s, a request may take 2.7 s and takes 1.5 s here.
    Every request meets a dripping server; systemd must never see 6 s without a ping."""
    watchdog_s = 6.0
    listener = NotifyListener(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", str(int(watchdog_s * 1e6)))
    respond = dripping("body")
    with RawServer(respond) as raw:
        svc = SyncService(fast_config(tmp_path, raw.url, connect=0.5, read=1.0),
                          use_stream=False, backoff_base_s=0.05, backoff_cap_s=0.2)
        assert svc.client.deadline_s == 1.5 and "config" not in svc.faults.active
        thread = threading.Thread(target=svc.run_forever)
        thread.start()
        try:
            wait_until(lambda: len(listener.times("WATCHDOG=1")) >= 4 and raw.connections >= 4,
                       timeout=40, what="pings while every request drips")
            detail = svc.store.db.execute("SELECT state, detail FROM service_health WHERE "
                                          "service = 'sync'").fetchone()
        finally:
            svc.request_stop()
            respond.stop.set()
            thread.join(15)
            svc.close()
    listener.close()
    assert not thread.is_alive()
    pings = listener.times("READY=1") + listener.times("WATCHDOG=1")
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert max(gaps) < watchdog_s, gaps
    assert detail[0] == "degraded" and "no complete answer within 1.5 s" in detail[1]


def test_timeouts_that_do_not_fit_the_watchdog_are_degraded_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    config = fast_config(tmp_path, "http://127.0.0.1:9", connect=5.0, read=300.0)
    svc = SyncService(config, use_stream=False)
    try:
        assert svc.client.deadline_s == 13.5
        problem = svc.faults.active["config"]
        assert "server.read_timeout_s" in problem and config.path in problem
        assert "WatchdogSec=30 s" in problem and "at most 8.5" in problem
        state = svc.store.db.execute("SELECT state FROM service_health WHERE service = 'sync'"
                                     ).fetchone()[0]
        assert state == "degraded"
    finally:
        svc.close()


def test_the_default_timeouts_fit_the_shipped_unit(tmp_path):
    from test_config import BASE, load

    from sync.client import request_deadline

    unit = (REPO / "systemd/antrean-sync.service").read_text()
    watchdog_s = float(re.search(r"^WatchdogSec=(\d+)s$", unit, re.M).group(1))
    config, _ = load(tmp_path, BASE + '[server]\nurl = "https://central.example.go.id"\n')
    assert request_deadline(config, watchdog_s) == (13.0, None)
