"""The printer service end to end: real check-ins in SQLite, the real service loop, printer
doubles on loopback and on a pty, faults, reprints, and a SIGKILL in the middle of a slip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from conftest import stops_after_sigterm_inside_a_wait, write_config
from test_scanner_service import CODES, kv, query, today_schedule, wait_for

from appliance.checkin import CheckinDesk
from appliance.clock import Clock
from appliance.config import load_config
from appliance.lobby_view import wait_estimates
from appliance.print_queue import PrintQueue, printer_report
from appliance.printer_service import PrinterService
from appliance.store import Store
from devtools.printer_doubles import NetworkPrinterDouble, SerialPrinterDouble

REPO = Path(__file__).resolve().parents[1]
FAST = {"status_timeout_s": 0.3, "timeout_s": 1.0, "retry_seconds": 1.0, "check_seconds": 5.0}


def network_config(tmp_path, double, **keys):
    return printer_config(tmp_path, kind="network", host="127.0.0.1", port=double.port, **keys)


def printer_config(tmp_path, **keys):
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in {**FAST, **keys}.items())
    path = write_config(tmp_path / "antrean.toml", tmp_path / "antrean.db",
                        f"[printer]\n{lines}")
    config = load_config(path)
    today_schedule(config)
    return config


def scan(config, code):
    with Store(config.storage.path) as store:
        return CheckinDesk(store, config).scan(code.encode())


class Running:
    """The service in a thread of this process, stopped and joined on exit."""

    def __init__(self, config, **kw):
        self.service = PrinterService(config, **kw)
        self.thread = threading.Thread(target=self.service.run, daemon=True)

    def __enter__(self) -> PrinterService:
        self.thread.start()
        wait_for(lambda: self.service.state is not None, "the printer service to start")
        return self.service

    def __exit__(self, *exc) -> None:
        self.service.stop.set()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive()


def printer_state(config) -> str | None:
    raw = kv(config, "printer.state")
    return json.loads(raw)["state"] if raw else None


def slips(config):
    return query(config, "SELECT ticket, kind, state, attempts FROM slips ORDER BY id")


def test_each_check_in_prints_one_slip_that_says_what_the_screen_says(tmp_path):
    with NetworkPrinterDouble() as double:
        config = network_config(tmp_path, double)
        before = scan(config, CODES[0])                  # before the printer's first start
        assert before.verdict == "ok"
        with Running(config):
            for code in CODES[1:4]:
                assert scan(config, code).verdict == "ok"
            assert scan(config, CODES[1]).verdict == "already_checked_in"
            receipts = double.wait_for_receipts(3)
            wait_for(lambda: [s[2] for s in slips(config)] == ["printed"] * 3, "3 printed")
        assert len(double.receipts) == 3, "one slip per check-in, none for the repeat"
        first = receipts[0]
        assert first.find("A002").width == 8
        for text in ("Kantor Imigrasi Kelas II TPI", "Paspor Baru", "Bapak Andi S.",
                     "Harap menunggu panggilan pada layar.",
                     "Please wait for your number on the screen."):
            assert text in first.text, text
        # People ahead in the call order: A001 (checked in before the printer) still waits.
        assert "1 orang di depan Anda" in first.text
        assert "3 orang di depan Anda" in receipts[2].text
        assert "Andi Saputra" not in first.text, "display.names = first applies on paper"
        assert "A001" not in "".join(r.text for r in receipts), "history is not printed"
        # The estimated call is the read model's (the screen's), as of when it printed.
        with Store(config.storage.path) as store:
            clock = Clock(store, config)
            with store.read() as db:
                day = clock.lobby_day(db)
                now = clock.time()
                mine = wait_estimates(db, day, now, config).for_ticket("A004")
        assert mine is not None
        printed = receipts[2].text
        assert "Perkiraan dipanggil pukul ±" in printed
        at = printed.split("Perkiraan dipanggil pukul ±")[1][:5]
        # The slip shows the time of day only; the call may fall after the office's midnight.
        shown = datetime.fromisoformat(f"{day}T{at}").replace(tzinfo=config.tz).timestamp()
        apart = (shown - mine.call_at) % 86400
        assert min(apart, 86400 - apart) <= 120, (at, mine)


def test_paper_out_is_shown_retried_and_the_slip_printed_once(tmp_path):
    with NetworkPrinterDouble() as double:
        config = network_config(tmp_path, double)
        double.paper_out = True
        with Running(config):
            wait_for(lambda: printer_state(config) == "paper_out", "paper out in the store")
            assert scan(config, CODES[0]).verdict == "ok"      # the check-in does not wait
            asked = len(double.decoder.status_requests)
            double.wait_for_status_requests(asked + 6)          # retried at least twice
            assert double.receipts == [] and slips(config)[0][2] == "pending"
            with Store(config.storage.path, readonly=True) as store:
                report = printer_report(store, Clock(store, config).office_day())
            assert report["state"] == "paper_out" and report["pending"] == 1
            status = subprocess.run([sys.executable, "-m", "appliance.cli", "--config",
                                     config.path, "status"], capture_output=True, text=True,
                                    timeout=60, cwd=REPO)
            assert "printer  network: paper_out (network printer" in status.stdout
            double.paper_out = False
            double.wait_for_receipts(1)
            wait_for(lambda: printer_state(config) == "ok", "the printer to be ok again")
            asked = len(double.decoder.status_requests)
            double.wait_for_status_requests(asked + 3)          # another round went by
        assert len(double.receipts) == 1
        assert slips(config) == [("A001", "checkin", "printed", 1)]


def test_listener_down_then_back(tmp_path):
    with NetworkPrinterDouble() as double:
        config = network_config(tmp_path, double)
        with Running(config):
            wait_for(lambda: printer_state(config) == "ok", "the first status check")
            double.stop()
            assert scan(config, CODES[0]).verdict == "ok"
            wait_for(lambda: printer_state(config) == "unplugged", "unplugged in the store")
            health = query(config, "SELECT state, detail FROM service_health"
                                   " WHERE service = 'printer'")[0]
            assert health[0] == "degraded" and "refused the connection" in health[1]
            double.start()
            assert double.wait_for_receipts(1)[0].find("A001").width == 8
            wait_for(lambda: printer_state(config) == "ok", "recovered")
        assert len(double.receipts) == 1


def test_serial_printer_pty_closed_then_back(tmp_path):
    path = str(tmp_path / "printer-pty")
    with SerialPrinterDouble(path) as double:
        config = printer_config(tmp_path, kind="serial", device=path, width=58)
        with Running(config):
            assert scan(config, CODES[0]).verdict == "ok"
            double.wait_for_receipts(1)
            double.unplug()
            assert scan(config, CODES[1]).verdict == "ok"
            wait_for(lambda: printer_state(config) == "unplugged", "unplugged in the store")
            double.replug()
            receipts = double.wait_for_receipts(2)            # the new pty's first slip
            assert receipts[1].find("A002").width == 8
        assert [s[2] for s in slips(config)] == ["printed", "printed"]


def test_reprint_from_the_command_line(tmp_path):
    with NetworkPrinterDouble() as double:
        config = network_config(tmp_path, double)
        with Running(config):
            assert scan(config, CODES[0]).verdict == "ok"
            double.wait_for_receipts(1)
            cli = [sys.executable, "-m", "appliance.cli", "--config", config.path, "print"]
            done = subprocess.run([*cli, "--ticket", "a001", "--json"], capture_output=True,
                                  text=True, timeout=60, cwd=REPO)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["state"] == "printed"
            reprint = double.wait_for_receipts(2)[1]
            assert "CETAK ULANG / REPRINT" in reprint.text and reprint.find("A001")
            unknown = subprocess.run([*cli, "--ticket", "A999"], capture_output=True,
                                     text=True, timeout=60, cwd=REPO)
            assert unknown.returncode == 1 and unknown.stdout == ""
            assert unknown.stderr.count("\n") == 1 and "not checked in today" in unknown.stderr
            double.paper_out = True
            wait_for(lambda: printer_state(config) == "paper_out", "paper out")
            late = subprocess.run([*cli, "--ticket", "A001", "--wait", "0.5"],
                                  capture_output=True, text=True, timeout=60, cwd=REPO)
            assert late.returncode == 1
            assert "queued but not printed yet" in late.stderr and "paper out" in late.stderr
            double.paper_out = False
            double.wait_for_receipts(3)
        assert [s[1] for s in slips(config)] == ["checkin", "reprint", "reprint"]


def test_no_printer_configured(tmp_path):
    config = printer_config(tmp_path)
    with Running(config) as service:
        assert scan(config, CODES[0]).verdict == "ok"
        assert service.state == ("none", "no printer configured (printer.kind = none)")
    assert slips(config) == []
    cli = subprocess.run([sys.executable, "-m", "appliance.cli", "--config", config.path,
                          "print", "--ticket", "A001"], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert cli.returncode == 2 and "printer.kind" in cli.stderr


def test_stale_slips_are_given_up_and_named_in_status(tmp_path):
    with NetworkPrinterDouble() as double:
        config = network_config(tmp_path, double, max_age_minutes=1)
        with Store(config.storage.path) as store:
            queue = PrintQueue(store, config)
            queue.follow_checkins()                               # the baseline
            scan(config, CODES[0])
            assert queue.follow_checkins() == 1
            assert queue.expire_stale() == []
            later = Clock(store, config, wall=lambda: time.time() + 61)
            assert PrintQueue(store, config, clock=later).expire_stale() == ["A001"]
            assert queue.next_job() is None
            report = printer_report(store, Clock(store, config).office_day())
        assert report["expired"] == 1 and report["attention"][0]["ticket"] == "A001"


def test_sigkill_while_printing_leaves_the_slip_interrupted_not_printed_twice(tmp_path):
    with NetworkPrinterDouble() as double:
        # The printer answers until the slip is in, then falls silent: the service sits in
        # the post-print status request with the slip marked 'printing' when it is killed.
        config = network_config(tmp_path, double, status_timeout_s=2.0)
        double.mute_after_receipts = 1
        argv = [sys.executable, "-m", "appliance.cli", "--config", config.path, "printer"]
        proc = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: printer_state(config) == "ok", "the service to start")
            assert scan(config, CODES[0]).verdict == "ok"
            double.wait_for_receipts(1)
            wait_for(lambda: slips(config)[0][2] == "printing", "the slip to be printing")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert slips(config)[0][2] == "printing"
        double.mute_after_receipts = None
        proc = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: slips(config)[0][2] == "interrupted", "interrupted after restart")
            asked = len(double.decoder.status_requests)
            double.wait_for_status_requests(asked + 3)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        assert len(double.receipts) == 1, "at most once: the interrupted slip is not repeated"
        status = subprocess.run([sys.executable, "-m", "appliance.cli", "--config", config.path,
                                 "status", "--json"], capture_output=True, text=True,
                                timeout=60, cwd=REPO)
        printer = json.loads(status.stdout)["printer"]
        assert printer["interrupted"] == 1
        assert printer["attention"][0]["ticket"] == "A001"


def test_sigterm_handled_inside_the_loops_wait_still_stops_the_service(tmp_path):
    # The loop waits in ``stop.wait(TICK_S)``; setting ``stop`` from the handler hung there.
    service = PrinterService(printer_config(tmp_path))
    stops_after_sigterm_inside_a_wait(service, service.stop._cond)


def doctor(config, *extra):
    done = subprocess.run([sys.executable, "-m", "appliance.cli", "--config", config.path,
                           "doctor", "--json", *extra], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    return done.returncode, {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_doctor_checks_the_printer_and_prints_a_test_page(tmp_path):
    with NetworkPrinterDouble() as double:
        config = network_config(tmp_path, double, width=58)
        _, checks = doctor(config)
        assert checks["printer"]["level"] == "ok" and "test page" not in checks
        assert double.receipts == []
        _, checks = doctor(config, "--print-test")
        assert checks["test page"]["level"] == "ok"
        page, = double.wait_for_receipts(1)
        assert "HALAMAN UJI / TEST PAGE" in page.text and page.find("A000").width == 8
        double.cover_open = True
        code, checks = doctor(config, "--print-test")
        assert code == 1 and checks["printer"]["level"] == "fail"
        assert "cover open" in checks["printer"]["detail"]
        assert checks["printer"]["fix"] == "close the printer's cover"
        assert "test page" not in checks and len(double.receipts) == 1
        double.stop()
        _, checks = doctor(config)
        assert checks["printer"]["level"] == "fail" and "refused" in checks["printer"]["detail"]
    (tmp_path / "none").mkdir()
    config = printer_config(tmp_path / "none")
    _, checks = doctor(config)
    assert checks["printer"]["level"] == "ok" and "printer.kind = none" in \
        checks["printer"]["detail"]
