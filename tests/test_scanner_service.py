"""The scanner service end to end: a real pty, the real service loop, verdicts in SQLite."""

import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import (
    TZ,
    appointment,
    schedule_doc,
    sign_doc,
    stops_after_sigterm_inside_a_wait,
    write_config,
)
from gpiozero.pins.mock import MockFactory

from appliance.config import load_config
from appliance.scanner_service import ScannerService
from appliance.schedule import save_schedule, verify_schedule
from appliance.store import Store
from devtools.virtual_serial import VirtualSerialScanner

WAIT = 20.0  # upper bound for the service to catch up; passing runs never wait this long
CODES = [f"K7Q2M9{i:02d}" for i in range(12)]


def today_schedule(config, codes=CODES):
    now = datetime.now(TZ)
    day = now.date().isoformat()
    start = (now - timedelta(minutes=5)).strftime("%H:%M")
    if now.strftime("%H:%M") < start:  # just after midnight: keep the slot on today
        start = "00:00"
    doc = schedule_doc(day, [appointment(c, day, start, minutes=60) for c in codes])
    body, sig = sign_doc(doc)
    with Store(config.storage.path) as store:
        save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)


def make_config(tmp_path, extra=""):
    path = write_config(tmp_path / "antrean.toml", tmp_path / "antrean.db", extra)
    cfg = load_config(path)
    today_schedule(cfg)
    return cfg


def query(config, sql, *args):
    """Read the store from its own connection, as the display or a technician would."""
    db = sqlite3.connect(config.storage.path)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def verdicts(config):
    return query(config, "SELECT verdict, booking_code, ticket FROM scans ORDER BY id")


def judged(config):
    """Scans decided so far (a run of unreadable ones is one row with a count)."""
    return query(config, "SELECT COALESCE(SUM(count), 0) FROM scans")[0][0]


def reported(config):
    """Scans the outbox events stand for."""
    events = [json.loads(b) for (b,) in query(config, "SELECT body FROM outbox")]
    return sum(e.get("count", 1) for e in events if e["type"] in ("checkin", "scan_rejected"))


def calls(config):
    return query(config, "SELECT ticket, counter, kind FROM calls ORDER BY id")


def health(config):
    rows = query(config, "SELECT state, detail FROM service_health WHERE service = 'scanner'")
    return rows[0] if rows else None


def kv(config, key):
    rows = query(config, "SELECT value FROM kv WHERE key = ?", key)
    return rows[0][0] if rows else None


def wait_for(predicate, what):
    """Poll the store (a separate connection, as the display would) until ``predicate``."""
    done = threading.Event()
    for _ in range(int(WAIT / 0.02)):
        if predicate():
            return
        done.wait(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Running:
    """The real service loop in a thread, stopped the way SIGTERM stops it."""

    def __init__(self, config, **kwargs):
        self.service = ScannerService(config, **kwargs)
        self.code = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.code = self.service.run()

    def __enter__(self):
        self.thread.start()
        return self.service

    def __exit__(self, *exc):
        self.service.request_stop()
        self.thread.join(timeout=WAIT)
        assert not self.thread.is_alive()
        assert self.code == 0


@pytest.fixture
def serial_setup(tmp_path):
    port = str(tmp_path / "usb-SCANNER-if00")
    cfg = make_config(tmp_path, f'[scanner]\nkind = "serial"\nport = "{port}"\n')
    with VirtualSerialScanner(port) as v:
        yield cfg, v





def test_scans_through_the_pty_get_verdicts_in_the_store(serial_setup):
    cfg, port = serial_setup
    with Running(cfg):
        wait_for(lambda: kv(cfg, "scanner.connected") == "true", "connected")
        port.write(b"]Q1" + CODES[0].encode() + b"\r\n" + CODES[1].lower().encode() + b"\t"
                   + CODES[0].encode() + b"\rZZZZZZZZ\n")
        wait_for(lambda: len(verdicts(cfg)) == 4, "four verdicts")
        assert health(cfg)[0] == "running"
    assert verdicts(cfg) == [("ok", CODES[0], "A001"), ("ok", CODES[1], "A002"),
                             ("already_checked_in", CODES[0], "A001"),
                             ("unknown", "ZZZZZZZZ", None)]
    assert health(cfg)[0] == "stopped" and kv(cfg, "scanner.connected") == "false"


def test_bad_input_gets_unreadable_and_the_service_stays_up(serial_setup):
    cfg, port = serial_setup
    garbage = [os.urandom(64).replace(b"\r", b"").replace(b"\n", b"").replace(b"\t", b"")
               for _ in range(5)]
    lines = garbage + [b"\x00\x00NUL", b"\x1b[2J\x1b]0;owned\x07", b"\xff\xfe\xfd"]
    with Running(cfg) as svc:
        wait_for(lambda: kv(cfg, "scanner.connected") == "true", "connected")
        port.write(b"\n".join(lines) + b"\n")
        port.write(b"A" * (1 << 20))                # 1 MiB without a newline
        # the write returned, so the reader took almost all of it: memory stayed bounded
        assert len(svc.backend.framer.partial) <= svc.backend.framer.max_length
        port.write(b"\n" + CODES[2].encode() + b"\n")
        wait_for(lambda: judged(cfg) == len(lines) + 2, "every line judged")
    # One run of unreadable input: one row that counts them, then the good scan.
    assert query(cfg, "SELECT verdict, count FROM scans ORDER BY id") == [
        ("unreadable", len(lines) + 1), ("ok", 1)]
    assert verdicts(cfg)[-1] == ("ok", CODES[2], "A001")


def test_flood_of_lines_every_line_judged_and_no_ok_lost(serial_setup):
    cfg, port = serial_setup
    n = 1000
    flood = b"".join(b"JUNK%04d\n" % i for i in range(n))
    codes = CODES[3:8]
    with Running(cfg):
        wait_for(lambda: kv(cfg, "scanner.connected") == "true", "connected")
        writer = threading.Thread(target=port.write,
                                  args=(flood + b"".join(c.encode() + b"\n" for c in codes),))
        writer.start()
        writer.join(timeout=WAIT)
        wait_for(lambda: len(verdicts(cfg)) == n + len(codes), "flood judged")
    got = verdicts(cfg)
    assert sum(1 for v, _, _ in got if v == "unknown") == n
    assert [(c, t) for v, c, t in got if v == "ok"] == [(c, f"A{i + 1:03d}")
                                                        for i, c in enumerate(codes)]


def test_unplug_is_degraded_then_recovers(serial_setup):
    cfg, port = serial_setup
    with Running(cfg):
        wait_for(lambda: kv(cfg, "scanner.connected") == "true", "connected")
        port.unplug()
        wait_for(lambda: kv(cfg, "scanner.connected") == "false", "disconnected")
        state, detail = health(cfg)
        assert state == "degraded" and "went away" in detail
        port.replug()
        wait_for(lambda: kv(cfg, "scanner.connected") == "true", "reconnected")
        port.write(CODES[8].encode() + b"\r\n")
        wait_for(lambda: len(verdicts(cfg)) == 1, "a verdict after replug")
        assert health(cfg)[0] == "running"
    assert verdicts(cfg) == [("ok", CODES[8], "A001")]


def test_missing_scanner_at_start_is_degraded_not_a_crash(tmp_path, caplog):
    cfg = make_config(tmp_path, f'[scanner]\nkind = "serial"\nport = "{tmp_path}/nope"\n')
    with caplog.at_level("INFO", logger="antrean.scanner"), Running(cfg) as svc:
        wait_for(lambda: (health(cfg) or ("",))[0] == "degraded", "degraded")
        # the backend keeps retrying; the state is logged once, not per retry
        wait_for(lambda: svc.backend.open_attempts >= 4, "several retries")
    disconnected = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(disconnected) == 1


def test_gpio_feedback_and_counter_buttons(serial_setup):
    cfg, port = serial_setup
    cfg = load_config(write_config(Path(cfg.path), Path(cfg.storage.path),
                                   f'[scanner]\nkind = "serial"\nport = "{port.path}"\n'
                                   "[gpio]\nenabled = true\nnext_pins = [5, 6]\n"
                                   "recall_pins = [13]\n"))
    factory = MockFactory()
    with Running(cfg, pin_factory=factory) as svc:
        wait_for(lambda: kv(cfg, "scanner.connected") == "true", "connected")
        port.write(CODES[9].encode() + b"\n")
        wait_for(lambda: len(verdicts(cfg)) == 1, "ok scan")
        green = factory.pin(17)
        wait_for(lambda: any(s.state for s in green.states), "green LED on")
        port.write(b"NOPE1234\n")
        wait_for(lambda: len(verdicts(cfg)) == 2, "rejected scan")
        wait_for(lambda: any(s.state for s in factory.pin(27).states), "red LED on")
        factory.pin(5).drive_low()                      # counter 1 "next"
        wait_for(lambda: calls(cfg) == [("A001", 1, "call")], "call")
        factory.pin(5).drive_high()
        factory.pin(13).drive_low()                     # counter 1 "recall"
        wait_for(lambda: len(calls(cfg)) == 2, "recall")
        factory.pin(6).drive_low()                      # counter 2: nobody waits for B
        factory.pin(13).drive_high()
        factory.pin(13).drive_low()
        wait_for(lambda: len(calls(cfg)) == 3, "second recall")
        assert svc.gpio is not None
    assert calls(cfg) == [("A001", 1, "call"), ("A001", 1, "recall"), ("A001", 1, "recall")]
    assert svc.gpio.closed
    factory.reset()





def test_stdin_kind_in_a_subprocess_ends_at_end_of_input(tmp_path):
    cfg = make_config(tmp_path, '[scanner]\nkind = "stdin"\n')
    payload = f"{CODES[10]}\n\x1b[A\n{CODES[11]}".encode()  # last line without newline
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "--config", cfg.path,
                           "scanner"], input=payload, capture_output=True, timeout=60,
                          cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr.decode()
    assert [v for v, _, _ in verdicts(cfg)] == ["ok", "unreadable", "ok"]
    assert b"Traceback" not in proc.stderr


def test_sigterm_stops_the_service_cleanly(tmp_path):
    cfg = make_config(tmp_path, '[scanner]\nkind = "none"\n')
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "--config", cfg.path,
                             "scanner"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            cwd=Path(__file__).parent.parent)
    try:
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
        while b"ready" not in lines.get(timeout=WAIT):
            pass
        proc.terminate()
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert health(cfg)[0] == "stopped"


def test_sigterm_handled_inside_the_loops_queue_wait_still_stops_the_service(tmp_path):
    # The loop waits in ``inbox.get()``; putting on the inbox from the handler hung there.
    service = ScannerService(make_config(tmp_path, '[scanner]\nkind = "none"\n'))
    stops_after_sigterm_inside_a_wait(service, service.inbox.mutex, WAIT)
    assert health(service.config)[0] == "stopped"


def test_sd_notify_ready_watchdog_and_stopping(tmp_path):
    import socket

    cfg = make_config(tmp_path, '[scanner]\nkind = "none"\n')
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(WAIT)
    env = {**os.environ, "NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "200000"}
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "--config", cfg.path,
                             "scanner"], env=env, stderr=subprocess.DEVNULL,
                            cwd=Path(__file__).parent.parent)
    try:
        seen = []
        while seen.count("WATCHDOG=1") < 2:
            seen += sock.recv(4096).decode().split("\n")
        assert "READY=1" in seen and seen.index("READY=1") < seen.index("WATCHDOG=1")
        proc.terminate()
        assert proc.wait(timeout=WAIT) == 0
        while "STOPPING=1" not in seen:
            seen += sock.recv(4096).decode().split("\n")
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_mock_button_panel_presses_counter_buttons_of_a_service_process(tmp_path):
    """Another process presses counter 1's mock "next" button through the FIFO panel."""
    panel = tmp_path / "panel"
    cfg = make_config(tmp_path, '[scanner]\nkind = "stdin"\n[gpio]\nenabled = true\n'
                      f'next_pins = [5]\nrecall_pins = [6]\nmock_panel = "{panel}"\n')
    env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock")
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "--config", cfg.path,
                             "scanner"], stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, cwd=Path(__file__).parent.parent)
    try:
        proc.stdin.write(f"{CODES[0]}\n{CODES[1]}\n".encode())
        proc.stdin.flush()
        wait_for(lambda: len(verdicts(cfg)) == 2 and panel.exists(), "two check-ins")
        with open(panel, "w") as fifo:
            fifo.write("press 5\nnonsense\n")
        wait_for(lambda: len(calls(cfg)) == 1, "the next button's call")
        with open(panel, "w") as fifo:
            fifo.write("press 6\n")
        wait_for(lambda: len(calls(cfg)) == 2, "the recall button's call")
        assert calls(cfg) == [("A001", 1, "call"), ("A001", 1, "recall")]
        proc.stdin.close()
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_mock_button_panel_refuses_real_pins(tmp_path):
    from drivers.button_panel import MockButtonPanel
    from drivers.errors import DriverError

    with pytest.raises(DriverError, match="only drives mock pins"):
        MockButtonPanel(str(tmp_path / "panel"), object())


def test_stray_bytes_before_a_scan_do_not_spoil_it(serial_setup):
    """Noise without a line end, a pause, then a good scan: the scan is checked in."""
    cfg, port = serial_setup
    with Running(cfg) as svc:
        wait_for(lambda: kv(cfg, "scanner.connected") == "true", "connected")
        port.write(b"\x00\x7f")
        wait_for(lambda: svc.backend.framer.dropped_stale == 1, "the stray bytes dropped")
        port.write(CODES[0].encode() + b"\r\n")
        wait_for(lambda: len(verdicts(cfg)) == 1, "a verdict")
        assert svc.backend.framer.stale_after == cfg.scanner.serial_timeout_s == 0.5
    assert verdicts(cfg) == [("ok", CODES[0], "A001")]


def test_a_flood_of_garbage_lines_makes_few_rows_and_events(serial_setup):
    """1,000 unreadable lines were 1,000 rows and 1,000 events; now one run, one row."""
    cfg, port = serial_setup
    flood = b"".join(b"\x1b[%dm\x00noise\n" % i for i in range(1000))
    with Running(cfg):
        wait_for(lambda: kv(cfg, "scanner.connected") == "true", "connected")
        port.write(flood + CODES[4].encode() + b"\n")
        wait_for(lambda: judged(cfg) == 1001, "the flood judged")
        # The good scan ended the run, so its rest was reported in the same transaction.
        assert reported(cfg) == 1001
    assert query(cfg, "SELECT verdict, count FROM scans ORDER BY id") == [
        ("unreadable", 1000), ("ok", 1)]
    events = [json.loads(b) for (b,) in query(cfg, "SELECT body FROM outbox ORDER BY seq")]
    assert [(e["type"], e.get("count")) for e in events] == [
        ("scan_rejected", None), ("scan_rejected", 999), ("checkin", None)]


def test_a_run_that_goes_quiet_is_reported_by_the_service(serial_setup, monkeypatch):
    """No further scan comes: the idle service reports the run's rest once it has ended."""
    import appliance.checkin

    monkeypatch.setattr(appliance.checkin, "RUN_GAP_S", 0.3)
    cfg, port = serial_setup
    with Running(cfg):
        wait_for(lambda: kv(cfg, "scanner.connected") == "true", "connected")
        port.write(b"\x00\n" * 50)
        wait_for(lambda: judged(cfg) == 50, "the garbage judged")
        wait_for(lambda: reported(cfg) == 50, "the run reported while idle")
    assert query(cfg, "SELECT SUM(count), SUM(reported) FROM scans") == [(50, 50)]
