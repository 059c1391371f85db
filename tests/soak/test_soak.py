"""The promise, end to end under faults: every green beep is in the queue, on the screen when
called, and at the central server exactly once.

The three services run as real processes with the reference server on loopback, a serial
scanner on a real pty and counter buttons on gpiozero's mock pins (``devtools.lobby``).
Simulated applicants and officers act through those edges while faults are injected: SIGKILL
of each service, the server down, slow, answering 500/429 or garbage, the push stream cut
mid-event, the scanner unplugged and plugged back, and a service restarted with its clock far
in the past (libfaketime). ``make test`` runs a short version; ``make soak`` runs it for
``ANTREAN_SOAK_SECONDS`` (600) and, with ``ANTREAN_SOAK_REPORT=1``, writes its summary into
``bench/REPORT.md`` (``bench/soak_report.py``).
"""

from __future__ import annotations

import glob
import os
import random
import re
import signal
import sqlite3
import time
from collections import Counter

import psutil
import pytest

from bench.soak_report import (
    MAX_GROWTH_MB,
    MAX_RSS_MB,
    SoakSummary,
    summary_lines,
    write_soak_report,
)
from devtools.lobby import (
    COUNTER_PINS,
    RECALL_PINS,
    applicant_payload,
    officer_push_call,
    start_lobby,
)

SECONDS = float(os.environ.get("ANTREAN_SOAK_SECONDS", "40"))
SEED = int(os.environ.get("ANTREAN_SOAK_SEED", "7"))
FAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
SERVICES = ("scanner", "sync", "display")


class Faults:
    """Injects one fault at a time, round-robin in random order so each kind recurs."""

    def __init__(self, lobby, rng: random.Random):
        self.lobby = lobby
        self.rng = rng
        self.done: Counter = Counter()
        self.kinds = ["kill_scanner", "kill_sync", "kill_display", "server_down",
                      "server_slow", "server_500", "server_429", "server_garbage",
                      "stream_cut", "scanner_replug"]
        if FAKETIME:
            self.kinds.append("clock_past")
        self._order: list[str] = []
        self.display_gaps: list[tuple[int, int]] = []
        self.db = str(lobby.files.db)

    def server(self, faults: dict) -> None:
        self.lobby.central.admin("POST", "/_admin/faults", faults)

    def clear_server(self) -> None:
        self.lobby.central.admin("POST", "/_admin/faults", {
            "down": False, "slow": 0.0, "status": None, "retry_after": None, "body": None,
            "stream_cut": False})

    def restart(self, name: str, env: dict | None = None) -> None:
        sup = self.lobby.sup
        child = sup.children[name]
        shown_before = shown_call_ids(child.lines) if name == "display" else set()
        sup.kill(name, signal.SIGKILL)
        base = {k: v for k, v in child.env.items() if k not in ("LD_PRELOAD", "FAKETIME")}
        sup.restart(name, env={**base, **(env or {})})
        sup.wait_ready(name, timeout=60)
        if name == "display":
            # Calls the killed display still had queued, and calls made until its successor
            # was up, get no moment of their own (the new one starts from the counter rows).
            self.display_gaps.append((max(shown_before, default=0), max_call_id(self.db)))

    def inject(self) -> str:
        if not self._order:
            self._order = list(self.kinds)
            self.rng.shuffle(self._order)
        kind = self._order.pop()
        if kind.startswith("kill_"):
            self.restart(kind[5:])  # same environment as before (the scanner's mock pins)
        elif kind == "clock_past":
            # The machine's wall clock far in the past for a restarted scanner: no applicant
            # may be turned away for it (decisions use the server's time).
            self.restart("scanner", {"LD_PRELOAD": FAKETIME[0], "FAKETIME": "-400d",
                                     "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
        elif kind == "server_down":
            self.server({"down": True})
        elif kind == "server_slow":
            self.server({"slow": 3.0})
        elif kind == "server_500":
            self.server({"status": 500})
        elif kind == "server_429":
            self.server({"status": 429, "retry_after": 1})
        elif kind == "server_garbage":
            self.server({"body": "garbage"})
        elif kind == "stream_cut":
            self.server({"stream_cut": True})
            officer_push_call(self.lobby, 4)
        elif kind == "scanner_replug":
            self.lobby.scanner_pty.unplug()
            time.sleep(0.5)
            self.lobby.scanner_pty.replug()
        self.done[kind] += 1  # faults on the server are cleared by the loop after a while
        return kind


SHOWN_RE = re.compile(r"showing \w+ \S+ at counter \d+ \(call #(\d+)\)")


def shown_call_ids(lines) -> set[int]:
    return {int(m.group(1)) for line in list(lines) for m in [SHOWN_RE.search(line)] if m}


def max_call_id(db_path: str) -> int:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return db.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()[0]


def rss_mb(pid: int) -> float | None:
    try:
        return psutil.Process(pid).memory_info().rss / 1e6
    except psutil.Error:
        return None


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_soak(tmp_path, capsys):
    log_path = tmp_path / "soak.log"
    rng = random.Random(SEED)
    with open(log_path, "w") as log:
        # Enough bookings that valid tickets never run out at ~3 arrivals a second.
        lobby = start_lobby(tmp_path / "lobby", echo=log, sound="chime", seed=rng.random(),
                            appointments=max(160, int(SECONDS * 10)))
        try:
            faults = Faults(lobby, rng)
            memory: dict[str, list[tuple[int, float]]] = {s: [] for s in SERVICES}
            scans = Counter()
            started = time.monotonic()
            next_fault = started + 2.0
            fault_clear_at = None
            tick = 0
            while time.monotonic() - started < SECONDS:
                tick += 1
                payload, kind = applicant_payload(lobby, time.time())
                if rng.random() < 0.05:  # an applicant taps twice
                    lobby.scan(payload)
                lobby.scan(payload)
                scans[kind] += 1
                if tick % 7 == 0:
                    pins = RECALL_PINS if rng.random() < 0.15 else COUNTER_PINS
                    lobby.press(pins[rng.randrange(3)])
                if tick % 15 == 0:
                    officer_push_call(lobby, 4)
                now = time.monotonic()
                if fault_clear_at and now >= fault_clear_at:
                    faults.clear_server()
                    fault_clear_at = None
                if now >= next_fault:
                    kind = faults.inject()
                    log.write(f"[soak] fault injected: {kind}\n")
                    if kind.startswith("server_") or kind == "stream_cut":
                        fault_clear_at = now + rng.uniform(1.5, 4.0)
                    next_fault = now + rng.uniform(2.0, 4.0)
                if tick % 10 == 0:
                    for name in SERVICES:
                        child = lobby.sup.children[name]
                        value = rss_mb(child.pid) if child.running() else None
                        if value:
                            memory[name].append((child.pid, value))
                time.sleep(rng.uniform(0.15, 0.45))
            faults.clear_server()
            # Let everything settle: the outbox drains once the server is healthy again.
            db_path = str(lobby.files.db)

            def drained() -> bool:
                # Runs of unreadable scans are reported once they end: wait for those too.
                with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
                    return db.execute("SELECT (SELECT COUNT(*) FROM outbox WHERE state !="
                                      " 'sent') + (SELECT COUNT(*) FROM scans WHERE count >"
                                      " reported)").fetchone()[0] == 0
            outbox_drained = wait_until(drained, 60)
            # Each call gets its own moment on screen, in order: let the display catch up.
            display = lobby.sup.children["display"]

            def unseen() -> list:
                with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
                    calls = db.execute("SELECT id, ticket, counter, kind FROM calls WHERE"
                                       " kind != 'no_show' ORDER BY id").fetchall()
                shown = shown_call_ids(display.lines)
                return [c for c in calls if c[0] not in shown
                        and not any(a < c[0] <= b for a, b in faults.display_gaps)]
            wait_until(lambda: not unseen(), 120)
            not_shown = unseen()
            received = lobby.central.admin("GET", "/_admin/events")["events"]
            duplicates = lobby.central.admin("GET", "/_admin/state")["duplicates"]
            restarts = {n: lobby.sup.children[n].restarts for n in SERVICES}
        finally:
            lobby.sup.close()
            lobby.close_readers()

    # Measure everything first, so that the report carries a failed run's figures too.
    problems = [] if outbox_drained else ["the outbox did not drain after the faults"]
    db = sqlite3.connect(str(lobby.files.db))
    try:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            problems.append(f"integrity check: {integrity}")
        verdicts = Counter(dict(db.execute("SELECT verdict, SUM(count) FROM scans GROUP BY 1")))
        # 1. Every green beep is in the queue with its ticket.
        missing = db.execute(
            "SELECT s.booking_code, s.ticket FROM scans s WHERE s.verdict = 'ok' AND NOT EXISTS"
            " (SELECT 1 FROM checkins c WHERE c.office_day = s.office_day AND"
            " c.booking_code = s.booking_code AND c.ticket = s.ticket)").fetchall()
        if missing:
            problems.append(f"accepted scans not in the queue: {missing[:5]}")
        # 2. The server holds every event exactly once, and nothing waits or died.
        local = [r[0] for r in db.execute("SELECT id FROM outbox ORDER BY seq")]
        server_ids = [e["id"] for e in received]
        if len(server_ids) != len(set(server_ids)):
            problems.append("an event reached the server twice")
        lost = set(local) - set(server_ids)
        if lost:
            problems.append(f"{len(lost)} events never reached the server")
        states = Counter(dict(db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY 1")))
        if states.get("pending", 0) or states.get("dead", 0):
            problems.append(f"outbox not all sent: {dict(states)}")
        # 3. Every call was shown by the display (it logs each call's moment on screen).
        calls = db.execute("SELECT COUNT(*) FROM calls WHERE kind != 'no_show'").fetchone()[0]
        if not_shown:
            problems.append(f"calls never shown: {not_shown[:5]}")
    finally:
        db.close()
    # 4. Memory did not grow without bound (per process lifetime, last third vs first third).
    growth, peak = {}, {}
    for name, samples in memory.items():
        by_pid: dict[int, list[float]] = {}
        for pid, value in samples:
            by_pid.setdefault(pid, []).append(value)
        longest = max(by_pid.values(), key=len, default=[])
        if len(longest) >= 6:
            third = len(longest) // 3
            growth[name] = (sum(longest[-third:]) - sum(longest[:third])) / third
            if growth[name] >= MAX_GROWTH_MB:
                problems.append(f"{name} grew {growth[name]:.1f} MB")
        peak[name] = max((v for _, v in samples), default=0.0)
        if peak[name] >= MAX_RSS_MB:
            problems.append(f"{name} used {peak[name]:.0f} MB")
    if not (sum(verdicts.values()) > 0 and verdicts["ok"] > 0):
        problems.append(f"no scan was accepted: {dict(verdicts)}")

    summary = SoakSummary(
        seconds=SECONDS, seed=SEED, scans=dict(scans), verdicts=dict(verdicts),
        faults=dict(faults.done), restarts=restarts, recorded=len(local),
        uploaded=len(server_ids), duplicates=duplicates, lost=len(lost), calls=calls,
        not_shown=len(not_shown), display_kills=len(faults.display_gaps), growth_mb=growth,
        peak_mb=peak, problems=problems)
    if os.environ.get("ANTREAN_SOAK_REPORT") == "1":  # `make soak`, not `make test`
        write_soak_report(summary)
    with capsys.disabled():
        print("\n\n" + "\n".join(summary_lines(summary)) + f"\n  log: {log_path}")
    assert not problems, problems


pytestmark = pytest.mark.timeout(int(SECONDS) + 300)
