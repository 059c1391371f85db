"""``antrean status`` reads the services' state from the store and from the system."""

import json
import subprocess
import sys
import time
from pathlib import Path

from test_cli import antrean

REPO = Path(__file__).resolve().parents[1]


def test_status_sees_running_services_including_the_display(config_path):
    env_cmd = [sys.executable, "-m", "appliance.cli", "--config", str(config_path)]
    antrean("--config", config_path, "scan", "K7Q2M9XA")  # creates the store
    procs = [subprocess.Popen(env_cmd + [name], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=REPO)
             for name in ("scanner", "display")]
    try:
        deadline = time.monotonic() + 30
        while True:
            data = json.loads(antrean("--config", config_path, "status", "--json").stdout)
            services = data["services"]
            if services["scanner"]["running"] and services["display"]["running"]:
                break
            assert time.monotonic() < deadline, services
            time.sleep(0.2)
        assert services["sync"]["running"] is False
        assert data["queue"] == {"checked_in": 0, "waiting": 0, "called": 0}
        assert data["outbox"]["pending"] == 1  # the scan_rejected event of the first scan
        human = antrean("--config", config_path, "status").stdout
        assert "scanner  up" in human and "display  up" in human and "sync     down" in human
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
    from appliance.outbox import mark_dead, pending_batch
    from appliance.store import Store

    with Store(str(config_path.parent / "antrean.db")) as store:
        event = pending_batch(store, 1)[0]
        mark_dead(store, {event.id: "rejected: unknown booking code"})
    data = json.loads(antrean("--config", config_path, "status", "--json").stdout)
    assert data["outbox"]["dead_recent"] == [{"id": event.id, "type": "scan_rejected",
                                              "reason": "rejected: unknown booking code"}]
    assert "rejected: unknown booking code" in antrean("--config", config_path,
                                                       "status").stdout
    assert not data["services"]["scanner"]["running"]
    assert data["services"]["scanner"]["state"] == "stopped"
    assert not data["services"]["display"]["running"]
