"""One office day for the whole lobby, also on a clock that cannot be trusted.

A Pi without a real-time clock boots in 1970; until the server's ``Date`` arrives nobody knows
what day it is. Everyone let in on such a clock must still be callable, counted and shown:
check-in, ``call``, ``status`` and the display all work on ``Clock.lobby_day``.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from datetime import datetime

import pytest
from conftest import appointment, office_time, schedule_doc, sign_doc

from appliance import clock as clock_module
from appliance.call_queue import CallQueue
from appliance.checkin import CheckinDesk
from appliance.clock import Clock, record_server_date
from appliance.schedule import save_schedule, verify_schedule
from display.model import StoreView

DAY = "2026-12-01"
FAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
EPOCH_1970 = datetime.fromisoformat("1970-01-02T09:00:00+00:00").timestamp()


def load(config, store, doc):
    body, sig = sign_doc(doc)
    save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)


def untrusted(store, config):
    return Clock(store, config, wall=lambda: EPOCH_1970, refresh_s=0)


def at_1970(*args: str) -> subprocess.CompletedProcess:
    """``antrean ARGS`` in a process whose wall clock says 1970 (libfaketime)."""
    env = {**os.environ, "LD_PRELOAD": FAKETIME[0], "FAKETIME": "@1970-01-02 09:00:00",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.skipif(not FAKETIME, reason="libfaketime is not installed (make installs "
                                         "the Debian package faketime)")
def test_a_1970_process_lets_in_calls_counts_and_shows_the_same_applicant(
        tmp_path, config_path, config, store):
    load(config, store, schedule_doc(DAY, [appointment("K7Q2M9XA", DAY, "09:00")]))
    cfg = str(config_path)
    probe = subprocess.run([sys.executable, "-c", "import time; print(time.time())"],
                           env={**os.environ, "LD_PRELOAD": FAKETIME[0],
                                "FAKETIME": "@1970-01-02 09:00:00"},
                           capture_output=True, text=True, check=True)
    assert float(probe.stdout) < 86400 * 2, "libfaketime did not move the clock"

    scan = json.loads(at_1970("--config", cfg, "scan", "K7Q2M9XA", "--json").stdout)
    assert scan["verdict"] == "ok" and scan["ticket"] == "A001"

    status = json.loads(at_1970("--config", cfg, "status", "--json").stdout)
    assert status["clock"]["trusted"] is False
    assert status["day"] == DAY and status["schedule"]["date"] == DAY
    assert status["queue"] == {"checked_in": 1, "waiting": 1, "called": 0}

    view = StoreView(config, wall=lambda: EPOCH_1970)
    snap, _ = view.poll()
    assert snap.office_day == DAY and snap.next_tickets == ("A001",)

    call = json.loads(at_1970("--config", cfg, "call", "--counter", "1", "--json").stdout)
    assert call == {"ticket": "A001", "counter": 1, "kind": "call"}
    recall = json.loads(at_1970("--config", cfg, "recall", "--counter", "1", "--json").stdout)
    assert recall["ticket"] == "A001"

    status = json.loads(at_1970("--config", cfg, "status", "--json").stdout)
    assert status["queue"] == {"checked_in": 1, "waiting": 0, "called": 1}
    snap, new_calls = view.poll()
    assert [(c.ticket, c.kind) for c in new_calls] == [("A001", "call"), ("A001", "recall")]
    assert snap.newest_call.name == "Bapak Andi S." and snap.counters[0].ticket == "A001"
    view.close()


def test_the_first_admission_pins_the_day_for_everyone_after_it(config, store):
    load(config, store, schedule_doc(DAY, [appointment("K7Q2M9XA", DAY, "15:00"),
                                           appointment("B0B0B0B0", DAY, "10:00")]))
    tomorrow = "2026-12-02"
    load(config, store, schedule_doc(tomorrow, [appointment("TMRW0001", tomorrow)]))
    clock = untrusted(store, config)
    desk, queue = CheckinDesk(store, config, clock), CallQueue(store, config, clock)
    # Before anyone is let in, the newest cached day is the best guess.
    assert clock.lobby_day(store.db) == tomorrow
    assert desk.scan("NOWHERE1").verdict == "no_schedule"
    assert desk.scan("K7Q2M9XA").ticket == "A001"
    assert clock.lobby_day(store.db) == DAY
    # Someone with tomorrow's booking is not turned away (nobody can prove the day), and is
    # numbered and queued with the others instead of being filed where no counter looks.
    assert desk.scan("TMRW0001").ticket == "A002"
    assert desk.scan("k7q2m9xa").verdict == "already_checked_in"
    days = {d for (d,) in store.db.execute("SELECT office_day FROM checkins")}
    assert days == {DAY}
    assert [queue.call_next(1).ticket for _ in range(2)] == ["A001", "A002"]
    assert queue.call_next(1) is None


def test_a_reboot_mid_day_keeps_the_waiting_applicants_callable(config, store):
    """Check-ins from before the power cut stay callable, even with tomorrow's schedule
    already cached (it is pulled after closing, while the last applicants still wait)."""
    load(config, store, schedule_doc(DAY, [appointment("K7Q2M9XA", DAY, "15:00")]))
    real = office_time(DAY, "15:10").timestamp()
    assert CheckinDesk(store, config, Clock(store, config, wall=lambda: real)).scan(
        "K7Q2M9XA").ticket == "A001"
    load(config, store, schedule_doc("2026-12-02", [appointment("TMRW0001", "2026-12-02")]))
    clock = untrusted(store, config)
    assert not clock.trusted and clock.lobby_day(store.db) == DAY
    assert CallQueue(store, config, clock).call_next(1).ticket == "A001"


def test_a_late_applicant_after_a_reboot_does_not_move_the_lobby_back(config, store):
    yesterday = "2026-11-30"
    load(config, store, schedule_doc(yesterday, [appointment("OLD00001", yesterday)]))
    load(config, store, schedule_doc(DAY, [appointment("K7Q2M9XA", DAY)]))
    real = office_time(DAY, "09:00").timestamp()
    CheckinDesk(store, config, Clock(store, config, wall=lambda: real)).scan("K7Q2M9XA")
    desk = CheckinDesk(store, config, untrusted(store, config))
    assert desk.scan("OLD00001").ticket == "A002"   # numbered after today's A001
    assert desk.clock.lobby_day(store.db) == DAY


def test_the_pin_holds_for_this_boot_only_and_a_trusted_clock_wins(
        tmp_path, monkeypatch, config, store):
    boot = tmp_path / "boot_id"
    boot.write_text("first-boot\n")
    monkeypatch.setattr(clock_module, "BOOT_ID_PATH", str(boot))
    tomorrow = "2026-12-02"
    load(config, store, schedule_doc(DAY, [appointment("K7Q2M9XA", DAY)]))
    load(config, store, schedule_doc(tomorrow, [appointment("TMRW0001", tomorrow)]))
    clock = untrusted(store, config)
    CheckinDesk(store, config, clock).scan("TMRW0001")     # the first one came a day early
    assert clock.lobby_day(store.db) == tomorrow
    boot.write_text("second-boot\n")                       # a new boot: no pin, evidence only
    assert clock.lobby_day(store.db) == tomorrow           # the latest day with check-ins
    CheckinDesk(store, config, clock).scan("K7Q2M9XA")
    assert clock.lobby_day(store.db) == tomorrow           # never before that day
    # The server's Date arrives: the real day, whatever was pinned.
    real = office_time(DAY, "09:30").timestamp()
    record_server_date(store, real, EPOCH_1970, synced=False)
    assert clock.trusted and clock.lobby_day(store.db) == DAY
