"""``antrean doctor`` checks the server with the sync service's own client: same token
reading, same timeouts and deadline, no proxy from the environment. So doctor never says
"reachable" when sync cannot reach it, nor the opposite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

from conftest import KEY
from raw_http import RawServer
from test_sync_harness import write_sync_config

from appliance.config import load_config
from sync.service import SyncService

pytest_plugins = ("test_sync_harness",)   # the central fixture

REPO = Path(__file__).resolve().parents[1]


def doctor(config_path, env=None, timeout=60) -> dict:
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "--config", str(config_path),
                           "doctor", "--json"], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout)
    assert "Traceback" not in proc.stderr
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}["server"]


def test_doctor_ignores_proxy_variables_like_sync(tmp_path, central):
    """A proxy in the environment that sync never uses must not make doctor fail (or pass)."""
    config = write_sync_config(tmp_path, central)
    dead_proxy = "http://127.0.0.1:9"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(HTTP_PROXY=dead_proxy, HTTPS_PROXY=dead_proxy, ALL_PROXY=dead_proxy,
               http_proxy=dead_proxy, https_proxy=dead_proxy)
    sync = SyncService(load_config(config), use_stream=False)
    try:
        assert sync.pull_round() is True           # sync reaches the server directly
    finally:
        sync.close()
    check = doctor(config, env)
    assert check["level"] == "ok", check


def test_doctor_reads_the_token_the_way_sync_does(tmp_path, central):
    """A token file sync refuses (two words) is reported with sync's words, not as a 401."""
    config = write_sync_config(tmp_path, central)
    (tmp_path / "token").write_text("dev-token-0123456789 extra\n")
    check = doctor(config)
    assert check["level"] == "fail" and "more than one word" in check["detail"], check


def test_doctor_uses_the_sync_deadline(tmp_path):
    """A server dripping a byte a second: doctor gives up at sync's 3 s deadline."""
    stop = threading.Event()

    def respond(conn, head, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not stop.wait(1.0):
            conn.sendall(b"a")

    with RawServer(respond) as raw:
        config = write_sync_config(tmp_path, SimpleNamespace(url=raw.url, key=KEY))
        try:
            check = doctor(config, timeout=40)
        finally:
            stop.set()
    assert check["level"] == "fail"
    assert "no complete answer within 3 s" in check["detail"], check


def test_doctor_names_a_wrong_server_url(tmp_path, central):
    config = write_sync_config(tmp_path, central)
    config.write_text(config.read_text().replace(f'url = "{central.url}"',
                                                 f'url = "{central.url}/api/v9"'))
    check = doctor(config)
    assert check["level"] == "fail" and "wrong place" in check["detail"], check
