"""``antrean demo`` / ``make demo``: the whole appliance on an embedded default, no hardware.

The default run starts the reference central server with today's generated schedule, the sync,
scanner, display and printer services as real processes, and then simulates the lobby: applicants
arriving with valid tickets (and some early, late, for another day, cancelled, unknown or
garbage) on a real pseudo-terminal scanner at the entrance (and, for some without a
smartphone, an officer typing their booking code on the desk's reader: a second reader feeding
the same queue), officers pressing their counters' "next" buttons (gpiozero mock pins) and
the officers' software pushing calls through the server. The screen opens in a window when
there is a display, and runs headless otherwise, writing a snapshot PNG every few seconds.
The slip printer is a file; each slip it "prints" is drawn as a PNG in ``slips/``. Ctrl-C
stops everything; nothing is left running.

``--offline`` runs the older, quicker demo: a whole office day through the CLI code paths on
a simulated clock, printed as a log, without services or network.
"""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

from appliance.call_queue import CallQueue, queue_counts
from appliance.checkin import CheckinDesk
from appliance.clock import Clock
from appliance.config import load_config
from appliance.keys import SigningKey, load_or_create_key
from appliance.names import public_name
from appliance.outbox import counts as outbox_counts
from appliance.schedule import save_schedule, verify_schedule
from appliance.store import Store
from devtools.demo_schedule import generate_schedule, next_day
from devtools.lobby import OFFICE_ID, OFFICE_NAME, TIMEZONE, signed_barcode


def prepare(out: Path) -> tuple[Path, SigningKey]:
    """Create (or reuse) the demo's key and config in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    key, _ = load_or_create_key(str(out / "demo-signing.key"), "kdemo")
    config_path = out / "antrean.toml"
    config_path.write_text(
        "# Written by `antrean demo`.\n"
        f'[office]\nid = "{OFFICE_ID}"\ntimezone = "{TIMEZONE}"\nname = "{OFFICE_NAME}"\n'
        '[storage]\npath = "antrean.db"\n'
        f'[trust]\nkeys = {{ {key.keyid} = "{key.public_b64}" }}\n'
        '[display]\nnames = "first"\nsound = "chime"\n')
    return config_path, key


def _import_day(store, config, key: SigningKey, day: str, count: int, now: float) -> dict:
    doc = generate_schedule(OFFICE_ID, OFFICE_NAME, TIMEZONE, day, count, generated_at=now)
    body = json.dumps(doc, ensure_ascii=False).encode()
    schedule = verify_schedule(body, key.sign_header(body), config, expect_date=day)
    save_schedule(store, schedule, source="import", etag=None)
    return doc


def run_cli_day(out: Path, seed: int = 2026) -> int:
    """The lobby day through the CLI code paths, printed as a log."""
    config_path, key = prepare(out)
    config = load_config(config_path)
    for old in Path(config.storage.path).parent.glob("antrean.db*"):
        old.unlink()  # each demo day starts with an empty lobby
    tz = config.tz
    real_now = datetime.now(tz)
    today = real_now.date().isoformat()
    rng = random.Random(seed)
    with Store(config.storage.path) as store:
        opening = datetime.fromisoformat(f"{today}T08:00").replace(tzinfo=tz)
        clock_at = [opening.timestamp()]
        clock = Clock(store, config, wall=lambda: clock_at[0])
        doc = _import_day(store, config, key, today, 120, real_now.timestamp() - 600)
        tomorrow = _import_day(store, config, key, next_day(today), 40, real_now.timestamp())
        print(f"Imported today's schedule ({today}, {len(doc['appointments'])} appointments) "
              f"and tomorrow's, signed with key {key.keyid}.")
        desk, queue = CheckinDesk(store, config, clock), CallQueue(store, config, clock)
        booked = [a for a in doc["appointments"] if a["status"] == "booked"]
        cancelled = [a for a in doc["appointments"] if a["status"] == "cancelled"]
        rng.shuffle(booked)
        mix = []
        for appt in booked[:30]:
            start = datetime.fromisoformat(appt["slot_start"])
            mix.append((start - timedelta(minutes=rng.randint(0, 50)), appt["booking_code"]))
        for appt in booked[30:33]:  # too early: two hours before their slot
            mix.append((datetime.fromisoformat(appt["slot_start"]) - timedelta(hours=2),
                        appt["booking_code"]))
        for appt in booked[33:35]:  # too late
            mix.append((datetime.fromisoformat(appt["slot_end"]) + timedelta(hours=1),
                        appt["booking_code"]))
        extra = [(booked[36], signed_barcode(key, booked[36])),
                 (booked[37], signed_barcode(key, booked[37], office="JKT")),
                 (booked[0], booked[0]["booking_code"].lower())]  # a repeat, lower case
        for appt, payload in extra:
            mix.append((datetime.fromisoformat(appt["slot_start"]), payload))
        if cancelled:
            mix.append((opening + timedelta(hours=1), cancelled[0]["booking_code"]))
        mix.append((opening + timedelta(hours=2), tomorrow["appointments"][0]["booking_code"]))
        mix += [(opening + timedelta(minutes=30), "ZZZZ9999"),
                (opening + timedelta(minutes=45), "\x1b[2J\x00garbage")]
        mix.sort(key=lambda item: item[0])

        calls = 0
        for i, (when, payload) in enumerate(mix):
            clock_at[0] = max(clock_at[0], when.timestamp())
            hhmm = datetime.fromtimestamp(clock_at[0], tz).strftime("%H:%M")
            r = desk.scan(payload)
            shown = payload if len(payload) <= 16 else payload[:13] + "..."
            print(f"{hhmm}  scan {shown!r:20} -> {r.verdict:18} {r.ticket or '':5} "
                  f"{r.message_id}")
            if i % 3 == 2:
                for counter in (1, 2, 3, 4):
                    call = queue.call_next(counter)
                    if call:
                        calls += 1
                        who = public_name(call.name, config.display.names, call.salutation)
                        print(f"{hhmm}  {call.counter_name}: {call.ticket} {who}")
        counts = queue_counts(store.db, today)
        print(f"\nDay summary: {counts.checked_in} checked in, {counts.called} called, "
              f"{counts.waiting} still waiting; outbox {outbox_counts(store)['pending']} "
              f"events for the server. Database: {config.storage.path}")
        print(f"Try: .venv/bin/antrean --config {config_path} status")
    return 0


def _snapshot(out: Path, config: Path, index: int) -> Path | None:
    import subprocess

    from devtools.lobby import antrean_argv

    path = out / "snapshots" / f"screen-{index:04d}.png"
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    proc = subprocess.run(antrean_argv("--config", str(config), "display", "--snapshot",
                                       str(path), "--size", "1920x1080"),
                          env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        print(f"[demo] snapshot failed: {proc.stderr.strip()[-300:]}", flush=True)
        return None
    return path


def run_lobby(out: Path, seconds: float = 0, headless: bool = False,
              arrival_s: float = 1.5, snapshot_s: float = 5.0) -> int:
    """The whole appliance with simulated applicants and officers; see the module doc."""
    import signal
    import time

    from devtools.lobby import COUNTER_PINS, applicant_payload, officer_push_call, start_lobby
    from devtools.slip_preview import SlipFolder

    has_screen = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    headless = headless or not has_screen
    print(f"[demo] starting the appliance in {out} "
          f"({'headless: snapshots in ' + str(out / 'snapshots') if headless else 'a window'})",
          flush=True)
    # Ctrl-C (even when started from a script that ignores it) and SIGTERM stop the demo.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    lobby = start_lobby(out, headless=headless, sound="off" if headless else "voice")
    print("[demo] all services ready. Ctrl-C stops the demo.", flush=True)
    slips = SlipFolder(str(lobby.files.printer), str(lobby.files.slips), width_mm=80)
    started = time.monotonic()
    next_snapshot = started + 2.0
    shots, tick, plain = 0, 0, 0
    try:
        while not seconds or time.monotonic() - started < seconds:
            tick += 1
            payload, kind = applicant_payload(lobby, time.time())
            shown = payload if len(payload) <= 24 else payload[:21] + "..."
            plain += kind == "valid booking code"
            if kind == "valid booking code" and plain % 3 == 1:
                # No smartphone: the officer types the booking code on the desk's reader.
                print(f"[lobby] at the desk an officer types {payload[3:]!r} for an applicant "
                      "without a smartphone", flush=True)
                lobby.scan(payload[3:], reader="desk")
            else:
                print(f"[lobby] an applicant scans {shown!r} ({kind})", flush=True)
                lobby.scan(payload)
            if tick % 3 == 0:
                counter = lobby.rng.randrange(1, 4)
                print(f"[lobby] the officer at Loket {counter} presses 'next'", flush=True)
                lobby.press(COUNTER_PINS[counter - 1])
            if tick % 8 == 0:
                ticket = officer_push_call(lobby, 4)
                if ticket:
                    print(f"[lobby] officer software calls {ticket} to Loket 4 "
                          "(pushed by the server)", flush=True)
            if headless and time.monotonic() >= next_snapshot:
                shots += 1
                if _snapshot(out, lobby.files.config, shots):
                    print(f"[demo] wrote snapshots/screen-{shots:04d}.png", flush=True)
                next_snapshot = time.monotonic() + snapshot_s
            for path in slips.poll():
                print(f"[demo] printed a slip: slips/{os.path.basename(path)}", flush=True)
            time.sleep(arrival_s)
    except KeyboardInterrupt:
        print("\n[demo] stopping...", flush=True)
    finally:
        summary = _finish(lobby)
    print(summary, flush=True)
    return 0


def _finish(lobby) -> str:
    """Let sync drain the outbox briefly, stop everything, and summarise the day."""
    import time

    from appliance.call_queue import queue_counts
    from appliance.outbox import counts as outbox_counts

    config = load_config(lobby.files.config)
    deadline = time.monotonic() + 15
    pending = None
    while time.monotonic() < deadline:
        with Store(str(lobby.files.db), readonly=True) as store:
            pending = outbox_counts(store)["pending"]
        if pending == 0:
            break
        time.sleep(0.5)
    try:
        received = len(lobby.central.admin("GET", "/_admin/events")["events"])
    except OSError:
        received = None
    lobby.sup.close()
    lobby.close_readers()
    with Store(str(lobby.files.db), readonly=True) as store:
        today = Clock(store, config).lobby_day(store.db)
        counts = queue_counts(store.db, today)
        verdicts = dict(store.db.execute(
            "SELECT verdict, SUM(count) FROM scans GROUP BY verdict ORDER BY 2 DESC").fetchall())
        readers = dict(store.db.execute(
            "SELECT reader, SUM(count) FROM scans GROUP BY reader ORDER BY 1").fetchall())
    return (f"[demo] stopped. Scans: {verdicts}; by reader: {readers}\n"
            f"[demo] {counts.checked_in} checked in, {counts.called} called, "
            f"{counts.waiting} waiting; outbox pending {pending}; "
            f"the central server received {received} events.\n"
            f"[demo] database {lobby.files.db}; snapshots in {lobby.files.snapshots}; "
            f"slips in {lobby.files.slips}\n"
            f"[demo] try: .venv/bin/antrean --config {lobby.files.config} status")


def run_demo(args) -> int:
    out = Path(args.out).resolve()
    if args.offline:
        return run_cli_day(out)
    return run_lobby(out, seconds=args.seconds, headless=args.headless)


if __name__ == "__main__":
    sys.exit(run_cli_day(Path("demo-out").resolve()))
