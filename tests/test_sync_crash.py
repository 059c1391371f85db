"""A real `antrean sync` process killed with SIGKILL mid-upload, then restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from test_sync_harness import record_events, server_ids, wait_until, write_sync_config

from appliance.outbox import counts
from appliance.store import Store

pytest_plugins = ("test_sync_harness",)   # the central and sync_config fixtures


def antrean(config, *args) -> list[str]:
    return [sys.executable, "-m", "appliance.cli", "--config", str(config), *args]


def test_sigkill_mid_upload_then_restart_loses_nothing(tmp_path, central):
    config = write_sync_config(tmp_path, central)
    store = Store(str(tmp_path / "antrean.db"))
    ids = record_events(store, 3000)
    central.admin("POST", "/_admin/faults", {"slow": 0.05, "endpoints": ["events"]})
    env = {**os.environ, "ANTREAN_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(antrean(config, "sync"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(server_ids(central)) >= 500, timeout=30,
                   what="the upload to be under way")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < counts(store)["pending"] < 3000, "the kill must land mid-upload"
    central.admin("POST", "/_admin/faults", {"reset": True})
    done = subprocess.run(antrean(config, "sync", "--once"), env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert server_ids(central) == ids              # each once, oldest first
    assert counts(store) == {"pending": 0, "dead": 0}
    store.close()
