"""The command line through real subprocesses: JSON fields, one-line errors, no tracebacks."""

import json
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from conftest import KEY, appointment, schedule_doc, sign_doc, write_config


def antrean(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def assert_one_line_error(proc, *words):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert proc.stdout == ""


@pytest.fixture
def schedule_file(tmp_path):
    """Today's schedule (the day taken now, not when the module loaded: a run may cross
    the office's midnight); its "date" says which day it is."""
    today = datetime.now(ZoneInfo("Asia/Makassar")).date().isoformat()
    doc = schedule_doc(today, [appointment("K7Q2M9XA", today, "00:00", minutes=24 * 60 - 1)])
    body, sig = sign_doc(doc)
    path = tmp_path / "schedule.json"
    path.write_bytes(body)
    (tmp_path / "schedule.json.sig").write_text(sig + "\n")
    return path


def test_import_scan_call_status(config_path, schedule_file):
    today = json.loads(schedule_file.read_bytes())["date"]
    out = json.loads(antrean("--config", config_path, "schedule", "import", schedule_file,
                             "--json").stdout)
    assert (out["date"], out["version"], out["appointments"]) == (today, 1, 1)
    scan = json.loads(antrean("--config", config_path, "scan", "]Q1K7Q2M9XA", "--json").stdout)
    assert scan["verdict"] == "ok" and scan["ticket"] == "A001"
    assert scan["booking_code"] == "K7Q2M9XA" and scan["message_id"] and scan["message_en"]
    call = json.loads(antrean("--config", config_path, "call", "--counter", "1", "--json").stdout)
    assert call == {"ticket": "A001", "counter": 1, "kind": "call"}
    none = json.loads(antrean("--config", config_path, "call", "--counter", "1", "--json").stdout)
    assert none == {"ticket": None, "counter": 1}
    status = json.loads(antrean("--config", config_path, "status", "--json").stdout)
    assert status["schedule"]["date"] == today and status["schedule"]["version"] == 1
    assert status["outbox"] == {"pending": 2, "dead": 0, "dead_recent": []}  # checkin, call
    assert status["queue"] == {"checked_in": 1, "waiting": 0, "called": 1}


def test_keygen_sign_and_tampered_import(tmp_path, config_path, schedule_file):
    key = tmp_path / "signing.key"
    out = json.loads(antrean("keygen", "--out", key, "--keyid", "k2026b", "--json").stdout)
    assert out["keyid"] == "k2026b" and len(out["public_key"]) == 44
    assert (key.stat().st_mode & 0o777) == 0o600
    assert_one_line_error(antrean("keygen", "--out", key, check=False), "already exists")
    antrean("schedule", "sign", schedule_file, "--key", key)
    assert (tmp_path / "schedule.json.sig").read_text().startswith("keyid=k2026b, sig=")
    # k2026b is not trusted by the config: refused, and nothing is stored.
    proc = antrean("--config", config_path, "schedule", "import", schedule_file, check=False)
    assert_one_line_error(proc, "not in the config")
    status = json.loads(antrean("--config", config_path, "status", "--json").stdout)
    assert status["schedule"]["version"] is None


@pytest.mark.parametrize("args, words", [
    (["scan"], ["PAYLOAD"]),
    (["call", "--counter", "x"], ["counter"]),
    (["call", "--counter", "0"], ["out of range"]),
    (["schedule", "import", "/nonexistent.json"], ["does not exist"]),
    (["frobnicate"], ["invalid choice"]),
])
def test_usage_errors_are_one_line(config_path, args, words):
    assert_one_line_error(antrean("--config", config_path, *args, check=False), *words)


def test_config_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[office]\nid = "TRK"\ntimezone = "Asia/Makassar"\n[storage]\npath = "x"\n'
                   f'[trust]\nkeys = {{ k2026a = "{KEY.public_b64}" }}\n[checkin]\nlate = 1\n')
    proc = antrean("--config", bad, "status", check=False)
    assert_one_line_error(proc, "checkin.late", str(bad))
    assert proc.returncode == 2


def test_a_screen_size_the_display_would_refuse_is_a_config_error(tmp_path):
    bad = write_config(tmp_path / "bad.toml", tmp_path / "x.db", '[display]\nsize = "100x100"\n')
    for command in (["display", "--snapshot", str(tmp_path / "x.png")], ["status"]):
        proc = antrean("--config", bad, *command, check=False)
        assert_one_line_error(proc, "display.size", str(bad), "240 to 8192")
        assert proc.returncode == 2


def test_missing_signature_file(tmp_path, config_path, schedule_file):
    (tmp_path / "schedule.json.sig").unlink()
    assert_one_line_error(antrean("--config", config_path, "schedule", "import", schedule_file,
                                  check=False), "schedule.json.sig is missing")


def test_scan_of_hostile_bytes_is_unreadable(config_path):
    out = json.loads(antrean("--config", config_path, "scan", "\x1b[2J\x07", "--json").stdout)
    assert out["verdict"] == "unreadable" and out["ticket"] is None
