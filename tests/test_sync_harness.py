"""Shared parts of the sync tests: the reference server on loopback and an appliance config.

No tests live here; the sync and devserver test files import from it. Everything is real:
the reference server on a free loopback port, a TOML config, a SQLite file in a tmp dir.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.outbox import record_event
from appliance.store import Store
from devtools.devserver import DevServer

TOKEN = "dev-token-0123456789"
DEVICE = "trk-lobby-1"


@pytest.fixture
def central(tmp_path):
    with DevServer(state_dir=str(tmp_path / "central"), token=TOKEN, keepalive_s=0.3,
                   appointments=40) as server:
        yield server


def write_sync_config(tmp_path: Path, server: DevServer, extra: str = "") -> Path:
    """A config trusting the server's key, with the token in a file beside it."""
    token = tmp_path / "token"
    if not token.exists():
        token.write_text(TOKEN + "\n")
    path = tmp_path / "antrean.toml"
    path.write_text(
        '[office]\nid = "TRK"\ntimezone = "Asia/Makassar"\n'
        f'[storage]\npath = "{tmp_path / "antrean.db"}"\n'
        f'[trust]\nkeys = {{ {server.key.keyid} = "{server.key.public_b64}" }}\n'
        f'[server]\nurl = "{server.url}"\ndevice_id = "{DEVICE}"\n'
        f'token_file = "{token}"\nconnect_timeout_s = 1.0\nread_timeout_s = 2.0\n'
        'poll_seconds = 5\nheartbeat_seconds = 5\n' + extra)
    return path


@pytest.fixture
def sync_config(tmp_path, central):
    return load_config(write_sync_config(tmp_path, central))


def record_events(store: Store, n: int, counter: int = 1) -> list[str]:
    """Queue ``n`` call events the way the queue does, one transaction each."""
    ids = []
    for i in range(n):
        with store.write() as db:
            ids.append(record_event(db, "call", {"ticket": f"A{i % 1000:03d}",
                                                 "counter": counter}, time.time()))
    return ids


def wait_until(predicate, timeout: float = 10.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy (short sleeps, no blind waits)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def server_ids(server: DevServer) -> list[str]:
    return [e["id"] for e in server.admin("GET", f"/_admin/events?device={DEVICE}")["events"]]


def outbox_states(store: Store) -> dict[str, str]:
    return dict(store.db.execute("SELECT id, state FROM outbox").fetchall())
