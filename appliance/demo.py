"""``antrean demo`` / ``make demo``: a lobby day on an embedded default, no hardware needed.

It makes a signing key and a config in the output folder, generates and signs today's schedule,
imports it through the same path as ``antrean schedule import``, then lets simulated
applicants scan (mostly valid tickets; some early, late, for another day, cancelled, unknown,
garbage and signed tickets) and counters call them, on a simulated clock that runs through
the office day. Every scan and call goes through the real check-in and queue code and the real
database, and the log says what happened.
"""

from __future__ import annotations

import base64
import json
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

from appliance.checkin import CheckinDesk
from appliance.clock import Clock
from appliance.config import load_config
from appliance.keys import SigningKey, generate_key, load_key_file, write_key_file
from appliance.names import public_name
from appliance.outbox import counts as outbox_counts
from appliance.queue import Queue, queue_counts
from appliance.schedule import save_schedule, verify_schedule
from appliance.store import Store
from sync.demo_schedule import generate_schedule, next_day

OFFICE_ID = "TRK"
OFFICE_NAME = "Kantor Imigrasi Kelas II TPI Tarakan"
TIMEZONE = "Asia/Makassar"


def signed_ticket(key: SigningKey, appt: dict, office: str = OFFICE_ID) -> str:
    """An AT1 ticket as the booking app would print it (central-api.md section 2)."""
    fields = {"b": appt["booking_code"], "o": office, "s": appt["slot_start"],
              "e": appt["slot_end"], "v": appt["service"], "n": appt["name"],
              "p": int(appt["priority"])}
    payload = base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode())
    head = f"AT1.{key.keyid}.{payload.rstrip(b'=').decode()}"
    sig = base64.urlsafe_b64encode(key.sign(head.encode())).rstrip(b"=").decode()
    return f"{head}.{sig}"


def prepare(out: Path) -> tuple[Path, SigningKey]:
    """Create (or reuse) the demo's key and config in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    key_path = out / "demo-signing.key"
    if not key_path.exists():
        write_key_file(generate_key("kdemo"), str(key_path))
    key = load_key_file(str(key_path))
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
        desk, queue = CheckinDesk(store, config, clock), Queue(store, config, clock)
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
        extra = [(booked[36], signed_ticket(key, booked[36])),
                 (booked[37], signed_ticket(key, booked[37], office="JKT")),
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


def run_demo(args) -> int:
    return run_cli_day(Path(args.out).resolve())


if __name__ == "__main__":
    sys.exit(run_cli_day(Path("demo-out").resolve()))
