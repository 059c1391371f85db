"""The beep promises the check-in is on the card: WAL and ``synchronous=FULL`` on every writer.

The SIGKILL test (test_crash_safety.py) proves atomicity, but a killed process never loses
what is already in the page cache, so it would pass with ``synchronous=OFF``. These tests pin
the pragmas themselves, and show with a real seccomp filter that a commit whose sync fails is
never acknowledged.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import seccomp_filter
from conftest import appointment, schedule_doc, sign_doc

from appliance.errors import StoreError
from appliance.schedule import save_schedule, verify_schedule
from appliance.store import Store, assert_durable

ROOT = Path(__file__).resolve().parents[1]
FULL = 2    # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def test_every_writing_connection_is_wal_and_synchronous_full(config):
    from appliance.scanner_service import ScannerService

    with Store(config.storage.path) as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == FULL
    service = ScannerService(config)
    try:
        assert service.store.db.execute("PRAGMA synchronous").fetchone()[0] == FULL
    finally:
        service.close()


def test_no_other_code_opens_the_database_for_writing():
    """Every writer goes through Store (which asserts the pragmas); other opens are read-only."""
    for folder in ("appliance", "display", "drivers", "sync"):
        for path in (ROOT / folder).glob("*.py"):
            if path.name == "store.py" or path.name == "devserver.py":   # the server's own db
                continue
            for line in path.read_text().splitlines():
                if "sqlite3.connect(" in line:
                    assert "mode=ro" in line, f"{path.name}: {line.strip()}"


@pytest.mark.parametrize("pragma, words", [
    ("PRAGMA synchronous=NORMAL", ["synchronous", "NORMAL", "FULL"]),
    ("PRAGMA synchronous=OFF", ["synchronous", "OFF", "FULL"]),
    ("PRAGMA journal_mode=DELETE", ["journal mode", "delete", "WAL"]),
])
def test_a_connection_that_could_lose_an_acknowledged_scan_is_refused(tmp_path, pragma, words):
    path = str(tmp_path / "x.db")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        assert_durable(db, path)            # the good case passes
        db.execute(pragma)
        with pytest.raises(StoreError) as e:
            assert_durable(db, path)
    finally:
        db.close()
    message = str(e.value)
    assert path in message and "\n" not in message
    for w in words:
        assert w in message, message


SYNC_FAILS = textwrap.dedent("""
    import errno, json, sqlite3, sys
    sys.path.insert(0, sys.argv[1])
    from seccomp_filter import refuse
    from appliance.config import load_config
    from appliance.checkin import CheckinDesk
    from appliance.clock import Clock
    from appliance.store import Store
    cfg = load_config(sys.argv[2])
    store = Store(cfg.storage.path)
    desk = CheckinDesk(store, cfg, Clock(store, cfg, wall=lambda: float(sys.argv[3])))
    spare = sqlite3.connect(cfg.storage.path + ".normal", isolation_level=None)
    spare.execute("PRAGMA journal_mode=WAL")
    spare.execute("PRAGMA synchronous=NORMAL")
    spare.execute("CREATE TABLE t(x)")
    # From here on the card "fails": every fsync and fdatasync returns EIO.
    refuse(["fsync", "fdatasync", "sync_file_range", "syncfs"], errno.EIO)
    out = {}
    try:
        out["scan"] = desk.scan("K7Q2M9XA").verdict
    except Exception as e:
        out["scan"] = type(e).__name__ + ": " + str(e)
    spare.execute("INSERT INTO t VALUES (1)")       # no sync asked: NORMAL "succeeds"
    out["normal_commit"] = "ok"
    print(json.dumps(out))
""")


@pytest.mark.skipif(seccomp_filter.LIBRARY is None, reason="libseccomp is not installed "
                    "(it comes with the Debian package systemd, which make installs)")
def test_a_commit_that_does_not_reach_the_card_is_not_acknowledged(config, config_path, store):
    from conftest import office_time

    body, sig = sign_doc(schedule_doc("2026-12-01", [appointment("K7Q2M9XA", "2026-12-01")]))
    save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)
    at = office_time("2026-12-01", "09:00").timestamp()
    out = subprocess.run([sys.executable, "-c", SYNC_FAILS, str(ROOT / "tests"),
                          str(config_path), str(at)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    # With synchronous=NORMAL the same failing card would have given a green beep.
    assert seen["normal_commit"] == "ok"
    assert seen["scan"] != "ok" and re.search(r"disk I/O error", seen["scan"]), seen["scan"]
