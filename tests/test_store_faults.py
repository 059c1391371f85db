"""A write that fails (a full card, a failed COMMIT) is not acknowledged and never locks the
store: the next scan works as soon as the cause is gone, without a restart. A store that
cannot be made clean again stops the watchdog pings, so systemd restarts the service.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import TZ, appointment, schedule_doc, sign_doc, write_config
from gpiozero.pins.mock import MockFactory
from test_scanner_service import CODES, WAIT, Running, query, today_schedule, wait_for

from appliance.checkin import CheckinDesk
from appliance.config import load_config
from appliance.errors import StoreError
from appliance.notify import SdNotify
from appliance.schedule import save_schedule, verify_schedule
from appliance.store import Store
from devtools.virtual_serial import VirtualSerialScanner

ROOT = Path(__file__).resolve().parents[1]
GREEN, RED, BUZZER = 17, 27, 22

# A real COMMIT failure: a deferred foreign key that is violated is only checked at COMMIT,
# and SQLite then leaves the transaction open.
BREAK_COMMIT = """
    CREATE TABLE IF NOT EXISTS fault_parent(id INTEGER PRIMARY KEY);
    CREATE TABLE IF NOT EXISTS fault_child(
        parent INTEGER REFERENCES fault_parent(id) DEFERRABLE INITIALLY DEFERRED);
    CREATE TRIGGER break_commit AFTER INSERT ON scans BEGIN
        INSERT INTO fault_child VALUES (NEW.id); END;
"""


def antrean(config_path, *args):
    return subprocess.run([sys.executable, "-m", "appliance.cli", "--config", str(config_path),
                           *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last block; returns the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def small_card(tmp_path):
    """A real 1 MiB filesystem (tmpfs with size=), standing in for a nearly full SD card."""
    mnt = tmp_path / "card"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs",
                          str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_card_is_a_clear_failure_and_scans_work_again_once_there_is_space(
        tmp_path, small_card):
    config_path = write_config(tmp_path / "antrean.toml", small_card / "antrean.db")
    config = load_config(config_path)
    codes = [f"FULL{i:04d}" for i in range(6)]
    today = datetime.now(TZ).date().isoformat()   # now, not at import: runs cross midnight
    doc = schedule_doc(today, [appointment(c, today, "00:00", minutes=24 * 60 - 1)
                               for c in codes])
    body, sig = sign_doc(doc)
    with Store(config.storage.path) as store:
        save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)
        desk = CheckinDesk(store, config)
        assert desk.scan(codes[0]).verdict == "ok"
        filler = fill(small_card)

        with pytest.raises(StoreError) as e:
            desk.scan(codes[1])
        assert "full" in str(e.value) and "free space" in str(e.value)
        assert not store.db.in_transaction
        # The technician's command says the same in one line, not an internal error.
        cli = antrean(config_path, "scan", codes[2], "--json")
        assert cli.returncode == 1 and cli.stdout == ""
        assert len(cli.stderr.strip().splitlines()) == 1, cli.stderr
        assert "full" in cli.stderr and "internal error" not in cli.stderr

        filler.unlink()
        # The same connection, no restart: the scan that failed now goes through.
        assert desk.scan(codes[1]).ticket == "A002"
        assert json.loads(antrean(config_path, "scan", codes[2], "--json").stdout)[
            "ticket"] == "A003"
        assert store.integrity_check() == "ok"
        assert [r[0] for r in store.db.execute(
            "SELECT booking_code FROM checkins ORDER BY id")] == codes[:3]


class Watchdog:
    """systemd's side of sd_notify: a datagram socket the service pings."""

    def __init__(self, folder: Path):
        self.path = str(folder / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.notify = SdNotify({"NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": "200000"})

    def next(self, timeout: float = WAIT) -> list[str]:
        self.sock.settimeout(timeout)
        return self.sock.recv(65536).decode().split("\n")

    def until(self, predicate, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                if predicate(self.next(timeout=left)):
                    return
            except TimeoutError:
                break
        raise AssertionError(f"timed out waiting for {what}")

    def assert_silent(self, seconds: float) -> None:
        """No ping for ``seconds`` (other messages may come)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msgs = self.next(timeout=left)
            except TimeoutError:
                return
            assert "WATCHDOG=1" not in msgs, msgs

    def close(self):
        self.notify.close()
        self.sock.close()


@pytest.fixture
def lobby(tmp_path):
    """The scanner service with a pty scanner, mock GPIO pins and a watchdog listening."""
    port = tmp_path / "usb-SCANNER-if00"
    state = tmp_path / "state"
    state.mkdir()
    config = load_config(write_config(
        tmp_path / "antrean.toml", state / "antrean.db",
        f'[scanner]\nkind = "serial"\nport = "{port}"\n[gpio]\nenabled = true\n'))
    today_schedule(config)
    factory = MockFactory()
    watchdog = Watchdog(tmp_path)
    with VirtualSerialScanner(str(port)) as scanner:
        with Running(config, pin_factory=factory, notify=watchdog.notify) as service:
            wait_for(lambda: query(config, "SELECT value FROM kv WHERE key ="
                                   " 'scanner.connected'") == [("true",)], "connected")
            yield config, service, scanner, factory, watchdog
    watchdog.close()
    factory.reset()


def ons(factory, pin) -> int:
    return sum(1 for s in factory.pin(pin).states if s.state)


def long_beep(factory) -> bool:
    """The error pattern's one-second beep (MockPin timestamps are time since the last change)."""
    states = factory.pin(BUZZER).states
    return any(a.state and not b.state and b.timestamp >= 0.9
               for a, b in zip(states, states[1:], strict=False))


def scanned(config, code) -> list:
    return query(config, "SELECT verdict, ticket FROM scans WHERE booking_code = ?", code)


def test_a_failed_commit_beeps_error_rolls_back_and_the_next_scan_works(lobby):
    config, service, scanner, factory, watchdog = lobby
    scanner.write(CODES[0].encode() + b"\r\n")
    wait_for(lambda: scanned(config, CODES[0]) == [("ok", "A001")], "the first check-in")
    wait_for(lambda: ons(factory, GREEN) == 1, "green LED")

    db = sqlite3.connect(config.storage.path, timeout=WAIT)
    db.executescript(BREAK_COMMIT)
    scanner.write(CODES[1].encode() + b"\r\n")
    # The applicant gets the error pattern (red flickers eight times, one long beep) ...
    wait_for(lambda: ons(factory, RED) >= 8 and long_beep(factory), "error pattern")
    assert ons(factory, GREEN) == 1                   # ... and never the green light
    assert scanned(config, CODES[1]) == []            # nothing of it was recorded
    state, detail = query(config, "SELECT state, detail FROM service_health"
                                  " WHERE service = 'scanner'")[0]
    assert state == "degraded" and "not saved" in detail and "FOREIGN KEY" in detail
    # The failed transaction was rolled back: another process can write at once ...
    db.execute("DROP TRIGGER break_commit")
    db.commit()
    db.close()
    # ... the watchdog was pinged throughout (a restart would not help) ...
    watchdog.until(lambda msgs: "WATCHDOG=1" in msgs, "a watchdog ping")
    # ... and the applicant who scans again is let in, without a restart.
    scanner.write(CODES[1].encode() + b"\r\n")
    wait_for(lambda: scanned(config, CODES[1]) == [("ok", "A002")], "the second check-in")
    wait_for(lambda: ons(factory, GREEN) == 2, "green LED again")
    wait_for(lambda: query(config, "SELECT state FROM service_health WHERE service ="
                                   " 'scanner'") == [("running",)], "running again")


def test_a_store_that_cannot_be_made_clean_stops_the_watchdog_until_it_can(tmp_path, lobby):
    config, service, scanner, factory, watchdog = lobby
    state = Path(config.storage.path).parent
    # Wedge the service's own connection the way a dying SD card would: from the moment the
    # scan's row is inserted every statement on it fails, ROLLBACK included (SQLite's
    # progress handler interrupting it), and the database's folder is gone, so it cannot be
    # reopened either.
    wedged = []
    conn = service.store.db
    conn.create_function("wedge", 0, lambda: wedged.append(True))
    conn.set_progress_handler(lambda: 1 if wedged else 0, 1)
    db = sqlite3.connect(config.storage.path, timeout=WAIT)
    db.executescript("CREATE TRIGGER wedge_store AFTER INSERT ON scans BEGIN"
                     " SELECT wedge(); END;")
    db.close()
    away = state.with_name("state.away")
    state.rename(away)
    scanner.write(CODES[2].encode() + b"\r\n")
    wait_for(lambda: ons(factory, RED) >= 8 and long_beep(factory), "error pattern")
    assert ons(factory, GREEN) == 0
    watchdog.until(lambda msgs: any("watchdog pings stopped" in m for m in msgs),
                   "the service saying it stops the watchdog")
    watchdog.assert_silent(1.0)                       # ten ping intervals without a ping
    assert service.store.broken

    away.rename(state)                                # the card is back
    db = sqlite3.connect(config.storage.path, timeout=WAIT)
    db.execute("DROP TRIGGER wedge_store")
    db.commit()
    db.close()
    watchdog.until(lambda msgs: "WATCHDOG=1" in msgs, "watchdog pings again")
    assert service.store.broken is None
    scanner.write(CODES[2].encode() + b"\r\n")
    wait_for(lambda: scanned(config, CODES[2]) == [("ok", "A001")], "the check-in")


def test_a_notify_socket_nobody_reads_never_blocks_the_service(tmp_path):
    # The kernel queues only a few datagrams (net.unix.max_dgram_qlen, often 10) per socket.
    watchdog = Watchdog(tmp_path)
    sent = threading.Event()

    def ping_a_lot():
        for _ in range(200):
            watchdog.notify.watchdog()
        watchdog.notify.stopping()
        sent.set()

    threading.Thread(target=ping_a_lot, daemon=True).start()
    try:
        assert sent.wait(WAIT), "a ping waited for a socket nobody reads"
        assert "WATCHDOG=1" in watchdog.next()  # what fitted in the queue arrived
    finally:
        watchdog.close()
