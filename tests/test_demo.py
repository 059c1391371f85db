"""`make demo` end to end: the whole appliance headless for 30 s, then the store, the server
and a snapshot of the call screen are checked."""

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pygame

from display.layout import Layout
from display.screen import ACCENT

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_the_whole_appliance_headless(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "demo", "--out", str(out),
                           "--seconds", "30", "--headless"], capture_output=True, text=True,
                          timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout
    assert "Traceback" not in log + proc.stderr
    for service in ("central", "sync", "scanner", "display", "printer"):
        assert f"[{service}]" in log
    # The store: check-ins and calls happened, and the outbox is empty.
    db = sqlite3.connect(out / "antrean.db")
    try:
        checked_in = db.execute("SELECT COUNT(*) FROM checkins").fetchone()[0]
        calls = db.execute("SELECT COUNT(*) FROM calls WHERE kind = 'call'").fetchone()[0]
        origins = {r[0] for r in db.execute("SELECT origin FROM calls")}
        readers = {r[0] for r in db.execute("SELECT reader FROM scans WHERE verdict = 'ok'")}
        pending = db.execute("SELECT COUNT(*) FROM outbox WHERE state != 'sent'").fetchone()[0]
        recorded = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    assert checked_in >= 5 and calls >= 3
    # Two readers, one queue: the entrance scanner and the officer's desk both checked in.
    assert "[lobby] at the desk an officer types" in log
    assert set(readers) == {"entrance", "desk"}, readers
    assert "local" in origins            # a counter button, through the mock GPIO panel
    assert pending == 0
    # The reference server received every event the appliance recorded.
    m = re.search(r"the central server received (\d+) events", log)
    assert m and int(m.group(1)) == recorded
    # A snapshot of the call screen, with a call in it (the ticket box is not background).
    shots = sorted((out / "snapshots").glob("screen-*.png"))
    assert shots, log[-2000:]
    image = pygame.image.load(str(shots[-1]))
    assert image.get_size() == (1920, 1080)
    box = Layout(1920, 1080, 3)["call.ticket"]
    accent = sum(1 for x in range(box.x, box.right, 4) for y in range(box.y, box.bottom, 4)
                 if tuple(image.get_at((x, y)))[:3] == ACCENT)
    assert accent > 200, "no queue ticket in the call box of the last snapshot"
    # The file printer's slips, drawn: one per check-in the printer saw, the number in 8x.
    slips = sorted((out / "slips").glob("slip-*.png"))
    assert slips and "[demo] printed a slip: slips/slip-0001-" in log
    from devtools.escpos_decode import decode

    printed = decode((out / "printer.bin").read_bytes())
    assert len(printed) >= len(slips) and all(r.cut == "full" for r in printed)
    big = [line.text for line in printed[0].lines if line.width == 8]
    assert len(big) == 1 and re.fullmatch(r"[A-Z]\d{3}", big[0]), printed[0].text
    # Nothing left running.
    left = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout
    assert left.strip() == ""


def test_ctrl_c_stops_the_demo_and_leaves_nothing_running(tmp_path):
    import signal
    import time

    out = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "demo", "--out", str(out),
                             "--headless"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "an applicant scans" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    log = "".join(lines) + rest
    assert proc.returncode == 0, log[-2000:]
    assert "[demo] stopped." in log and "Traceback" not in log
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout
    assert left.strip() == ""
