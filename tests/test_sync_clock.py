"""Which server ``Date`` headers may move the lobby's clock, and the right day after a
correction: the reference server on loopback, and ``sync --once`` in a process whose clock
is in 1970 (libfaketime), like a Raspberry Pi booted without a real-time clock."""

from __future__ import annotations

import glob
import logging
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_sync_harness import record_events, write_sync_config

from appliance.barcode import sign_barcode
from appliance.checkin import CheckinDesk
from appliance.clock import Clock, boot_id
from appliance.config import load_config
from appliance.schedule import schedule_info
from appliance.store import Store
from sync.client import parse_http_date
from sync.service import SyncService

pytest_plugins = ("test_sync_harness",)   # the central and sync_config fixtures

REPO = Path(__file__).resolve().parents[1]
FAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
DAY = 86400.0
IN_1970 = {"clock_offset_s": 86400.0 - time.time()}     # Date: 2 January 1970


@pytest.fixture
def service(sync_config):
    svc = SyncService(sync_config, use_stream=False, backoff_base_s=0.05, backoff_cap_s=0.2)
    yield svc
    svc.close()


def recorded_offset(svc: SyncService) -> float | None:
    clock = svc.store.get_kv("clock")
    return None if clock is None else clock["offset_s"]


# --- parsing --------------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0),        # IMF-fixdate
    ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777.0),       # obsolete RFC 850, GMT
    ("Sun Nov  6 08:49:37 1994", 784111777.0),             # obsolete asctime (GMT by definition)
    ("Mon, 30 Nov 2026 00:01:02 GMT", 1795996862.0),
    ("Sun, 06 Nov 1994 08:49:37 -0000", None),             # "unknown zone": not GMT
    ("Sun, 06 Nov 1994 08:49:37 +0000", None),
    ("Sun, 06 Nov 1994 15:49:37 +0700", None),
    ("Sun, 06 Nov 1994 08:49:37 UTC", None),
    ("Sun, 06 Nov 1994 03:49:37 EST", None),
    ("Sunday, 06-Nov-94 08:49:37 PST", None),
    ("Mon, 06 Nov 1994 08:49:37 GMT", None),               # weekday does not match
    ("Tue, 31 Feb 2026 08:49:37 GMT", None),
    ("Sun, 6 Nov 1994 08:49:37 GMT", None),                # IMF-fixdate has two-digit days
    ("06 Nov 1994 08:49:37 GMT", None),
    ("1994-11-06T08:49:37Z", None), ("", None), (None, None), ("\u0660" * 20, None),
])
def test_only_gmt_http_dates_are_read(value, expected):
    assert parse_http_date(value) == expected


# --- which answers count ----------------------------------------------------------------------

def ticket_for_now(central, code: str = "ZZNOW001") -> str:
    """A signed ticket whose slot is open right now (office time)."""
    from zoneinfo import ZoneInfo

    now = datetime.now(ZoneInfo("Asia/Makassar")).replace(microsecond=0)
    # Begun 10 minutes ago, but never before the office's midnight: a slot that began
    # yesterday is yesterday's booking (wrong_day) in the first minutes of a day.
    start = max(now - timedelta(minutes=10), now.replace(hour=0, minute=0, second=0))
    return sign_barcode(central.key, code, "TRK", start.isoformat(),
                       (now + timedelta(minutes=20)).isoformat(), "A", "Andi Saputra", False)


def test_a_503_dated_1970_does_not_move_the_lobby(service, central, sync_config):
    """The issue's case: one error page dated 1970, then a valid scan must be ``ok``."""
    assert service.pull_round() is True
    before = recorded_offset(service)
    central.admin("POST", "/_admin/faults", {**IN_1970, "status": 503})
    assert service.pull_round() is False
    central.admin("POST", "/_admin/faults", {"reset": True, "clock_offset_s": 0.0})
    assert recorded_offset(service) == before
    with Store(sync_config.storage.path) as store:
        assert Clock(store, sync_config).office_day() == service.clock.office_day()
        result = CheckinDesk(store, sync_config).scan(ticket_for_now(central))
    assert result.verdict == "ok", result


@pytest.mark.parametrize("fault", [{"status": 503}, {"status": 429, "retry_after": 1},
                                   {"status": 403}, {"revoked": True}, {"body": "html"},
                                   {"body": "garbage"}, {"signature": "wrong"}],
                         ids=["503", "429", "403", "401", "html-200", "garbage-200",
                              "badly-signed-200"])
def test_only_genuine_answers_set_the_time(service, central, fault):
    """Errors, and 200s that are not the central server's (a proxy's page, garbage, a
    schedule whose signature fails), carry no time that counts: here a Date two hours off,
    which a genuine answer would have recorded at once."""
    where = ["schedule"] if "signature" in fault else ["schedule", "events"]
    central.admin("POST", "/_admin/faults", {"clock_offset_s": 7200.0, **fault,
                                              "endpoints": where})
    central.admin("POST", "/_admin/schedule", {"appointments": 41})
    assert service.pull_round() is False
    if "events" in where:
        record_events(service.store, 2)
        service.upload_round()
    assert service.store.get_kv("clock") is None
    central.admin("POST", "/_admin/faults", {"reset": True})
    assert service.pull_round() is True                       # genuine: recorded at once
    assert abs(recorded_offset(service) - 7200) < 5


def test_a_date_before_the_build_date_is_ignored_even_from_a_good_answer(service, central,
                                                                         caplog):
    central.admin("POST", "/_admin/faults", IN_1970)
    with caplog.at_level(logging.WARNING, logger="antrean.sync"):
        for _ in range(3):
            service.heartbeat()
    assert service.store.get_kv("clock") is None
    assert len([r for r in caplog.records if "before this software's build date"
                in r.getMessage()]) == 1


def test_a_jump_of_days_counts_only_when_the_next_answer_confirms_it(service, central, caplog):
    assert service.heartbeat() and abs(recorded_offset(service)) < 5
    central.admin("POST", "/_admin/faults", {"clock_offset_s": 3 * DAY})
    with caplog.at_level(logging.INFO, logger="antrean.sync"):
        assert service.heartbeat()
        assert abs(recorded_offset(service)) < 5               # seen once: not believed
        assert service.heartbeat()
    assert abs(recorded_offset(service) - 3 * DAY) < 5         # seen twice in a row: recorded
    jumps = [r for r in caplog.records if "from the time recorded before" in r.getMessage()]
    assert len(jumps) == 1
    assert "confirmed by two answers" in caplog.text


def test_a_jump_seen_once_then_contradicted_is_forgotten(service, central):
    assert service.heartbeat()
    central.admin("POST", "/_admin/faults", {"clock_offset_s": -2 * DAY})
    assert service.heartbeat()
    central.admin("POST", "/_admin/faults", {"clock_offset_s": 0.0})
    assert service.heartbeat()
    central.admin("POST", "/_admin/faults", {"clock_offset_s": -2 * DAY})
    assert service.heartbeat()                                 # a new first sighting
    assert abs(recorded_offset(service)) < 5


def test_small_corrections_are_recorded_at_once(service, central):
    central.admin("POST", "/_admin/faults", {"clock_offset_s": 3600.0})
    assert service.heartbeat()
    assert abs(recorded_offset(service) - 3600) < 5


def test_backwards_across_boots_needs_confirmation_forwards_does_not(service, central):
    """A server time from an earlier boot: the appliance may have been off for days (forward
    is fine), but time never runs backwards by days."""
    now = time.time()
    earlier_boot = {"server_minus_boottime": 0.0, "boot_id": "an-earlier-boot",
                    "offset_s": 10 * DAY, "measured_at": now - 3600, "synced": False}
    service.store.set_kv("clock", earlier_boot)
    service._clock_kv = earlier_boot
    assert service.heartbeat()
    assert service.store.get_kv("clock")["boot_id"] == "an-earlier-boot"   # not yet
    assert service.heartbeat()
    assert service.store.get_kv("clock")["boot_id"] == boot_id()
    earlier_boot["offset_s"] = -10 * DAY
    service.store.set_kv("clock", earlier_boot)
    service._clock_kv = earlier_boot
    assert service.heartbeat()
    assert service.store.get_kv("clock")["boot_id"] == boot_id()          # at once


# --- the right day after a correction --------------------------------------------------------

@pytest.mark.skipif(not FAKETIME, reason="libfaketime is not installed (Debian: faketime)")
def test_sync_once_after_an_rtc_less_boot_pulls_the_right_day(tmp_path, central):
    """The process's clock says 2 January 1970; ``sync --once`` must pull the server's today."""
    config = write_sync_config(tmp_path, central)
    env = {**os.environ, "LD_PRELOAD": FAKETIME[0], "FAKETIME": "@1970-01-02 10:00:00",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "--config", str(config),
                           "sync", "--once"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    today = central.admin("GET", "/_admin/state")["today"]
    with Store(load_config(config).storage.path) as store:
        info = schedule_info(store, today)
        assert info is not None and info.appointments == 40
        assert schedule_info(store, "1970-01-02") is None
