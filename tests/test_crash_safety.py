"""A process killed with SIGKILL mid-write loses no acknowledged check-in."""

import os
import signal
import subprocess
import sys
import textwrap

from conftest import appointment, office_time, schedule_doc, sign_doc

from appliance.schedule import save_schedule, verify_schedule
from appliance.store import Store

DAY = "2026-11-30"

WRITER = textwrap.dedent("""
    import sys
    from appliance.config import load_config
    from appliance.checkin import CheckinDesk
    from appliance.clock import Clock
    cfg = load_config(sys.argv[1])
    from appliance.store import Store
    store = Store(cfg.storage.path)
    t = float(sys.argv[2])
    desk = CheckinDesk(store, cfg, Clock(store, cfg, wall=lambda: t))
    for i in range(100000):
        r = desk.scan(f"C{i:07d}")
        # The beep: only after scan() returned, i.e. after the commit.
        sys.stdout.write(f"{r.verdict} {r.ticket} C{i:07d}\\n")
        sys.stdout.flush()
""")


def test_sigkill_mid_write_keeps_acknowledged_checkins(config, config_path, store):
    appts = [appointment(f"C{i:07d}", DAY, "09:00") for i in range(3000)]
    body, sig = sign_doc(schedule_doc(DAY, appts))
    save_schedule(store, verify_schedule(body, sig, config), source="import", etag=None)
    store.close()
    t = office_time(DAY, "09:00").timestamp()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(config_path), str(t)],
                            stdout=subprocess.PIPE, text=True)
    acked = []
    for line in proc.stdout:
        acked.append(line.split())
        if len(acked) == 300:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    # Lines still buffered in the pipe were acknowledged too.
    acked += [ln.split() for ln in proc.stdout.read().splitlines()]
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 300
    with Store(config.storage.path) as again:
        assert again.integrity_check() == "ok"
        stored = dict(again.db.execute("SELECT booking_code, ticket FROM checkins"))
        events = {r[0] for r in again.db.execute(
            "SELECT json_extract(body, '$.booking_code') FROM outbox WHERE type='checkin'")}
        for verdict, ticket, code in acked:
            assert verdict == "ok"
            assert stored[code] == ticket
            assert code in events
        # Nothing half-written: every check-in has its event and vice versa.
        assert events == set(stored)
