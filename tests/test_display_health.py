"""The display's health reaches ``antrean status`` and the server's heartbeat.

The real ``antrean display`` process (SDL dummy drivers) publishes its frame rate, last frame,
driver and size in a small file; the real sync service sends them in its heartbeat to the
reference server; a stopped or hung display is reported as such.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from test_cli import antrean
from test_display_service import ENV
from test_sync_harness import DEVICE, wait_until, write_sync_config

from appliance.clock import boottime
from appliance.config import load_config
from appliance.display_health import STALE_S, heartbeat_display, read_health, write_health
from appliance.store import Store
from display.health import HealthPublisher
from sync.service import SyncService

pytest_plugins = ("test_sync_harness",)   # the central fixture

REPO = Path(__file__).resolve().parents[1]


def test_the_display_health_reaches_status_and_the_heartbeat(tmp_path, central):
    config_path = write_sync_config(tmp_path, central,
                                    '[display]\nhealth_file = "run/display.json"\n')
    config = load_config(config_path)
    (tmp_path / "run").mkdir()
    Store(config.storage.path).close()
    health_path = config.display.health_file
    assert health_path == str(tmp_path / "run" / "display.json")
    display = subprocess.Popen([sys.executable, "-m", "appliance.cli", "--config",
                                str(config_path), "display", "--size", "1280x720"], env=ENV,
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    sync = SyncService(config, use_stream=False)
    try:
        report = wait_until(lambda: (read_health(health_path) or {}).get("frames", 0) > 30
                            and read_health(health_path), 60, "a health report")
        assert report["fresh"] and report["pid"] == display.pid
        assert report["driver"] == "dummy" and report["size"] == "1280x720"
        assert 5 <= report["fps"] <= 40                   # display.fps caps it near 30
        assert abs(report["last_frame_at"] - time.time()) < 15

        assert sync.heartbeat() is True
        beat = central.admin("GET", "/_admin/state")["heartbeats"][DEVICE]["display"]
        assert isinstance(beat["fps"], float) and beat["fps"] > 0
        assert beat["driver"] == "dummy" and beat["size"] == "1280x720"
        assert beat["last_frame_at"].endswith("Z")

        status = json.loads(antrean("--config", config_path, "status", "--json").stdout)
        assert status["display"]["fresh"] and status["display"]["fps"] > 0
        human = antrean("--config", config_path, "status").stdout
        assert "fps, dummy 1280x720" in human
    finally:
        display.terminate()
        assert display.wait(30) == 0, display.stderr.read()
    # A stopped display takes its report away: the heartbeat says so.
    assert not os.path.exists(health_path)
    try:
        assert sync.heartbeat_doc()["display"] == {"fps": None, "last_frame_at": None,
                                                   "driver": None, "size": None}
    finally:
        sync.close()
    assert "no health report" in antrean("--config", config_path, "status").stdout


def test_a_hung_display_is_stale_not_still_at_thirty_fps(tmp_path):
    path = str(tmp_path / "display.json")
    write_health(path, {"fps": 30.0, "last_frame_at": 1_800_000_000.0, "driver": "kmsdrm",
                        "size": "1920x1080"})
    assert read_health(path)["fresh"] and heartbeat_display(path)["fps"] == 30.0
    doc = json.loads(Path(path).read_text())
    doc["written_boot_s"] = boottime() - STALE_S - 5            # no report for 35 s
    Path(path).write_text(json.dumps(doc))
    beat = heartbeat_display(path)
    assert beat == {"fps": None, "last_frame_at": "2027-01-15T08:00:00Z", "driver": "kmsdrm",
                    "size": "1920x1080"}
    doc["boot_id"] = "another boot"
    doc["written_boot_s"] = boottime()
    Path(path).write_text(json.dumps(doc))
    assert not read_health(path)["fresh"]
    for junk in (b"", b"{", b"[1]", b'{"fps": 30}', b"\xff" * 10_000):
        Path(path).write_bytes(junk)
        assert read_health(path) is None and heartbeat_display(path)["fps"] is None


def test_an_unwritable_health_folder_is_logged_once_and_never_stops_the_screen(tmp_path,
                                                                               caplog):
    folder = tmp_path / "run"
    mono = [0.0]
    health = HealthPublisher(str(folder / "display.json"), "dummy", (640, 480),
                             monotonic=lambda: mono[0], every_s=5.0)
    with caplog.at_level("WARNING", logger="display.health"):
        for _ in range(3):
            mono[0] += 5.0
            health.frame()
    assert health.problem and len(caplog.records) == 1 and health.published == 0
    folder.mkdir()
    mono[0] += 5.0
    health.frame()
    assert health.problem is None and read_health(str(folder / "display.json"))["fresh"]
    health.close()
    assert not (folder / "display.json").exists()
