"""The whole appliance on one machine with no hardware: the demo's and the soak test's lobby.

It starts the reference central server and the four services as real processes (through
:class:`devtools.supervisor.Supervisor`, the way systemd would), with a real pseudo-terminal
as the serial scanner, gpiozero's mock pins behind a button panel for the counters and a plain
file as the slip printer (``printer.bin``; ``devtools.slip_preview.SlipFolder`` draws its
slips). The
simulated applicants and officers act only through the real edges: bytes on the scanner's pty,
presses on the counter buttons, and calls pushed by the server's "officer software".
"""

from __future__ import annotations

import json
import random
import secrets
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from appliance.barcode import sign_barcode
from appliance.keys import SigningKey, load_or_create_key
from devtools.supervisor import Supervisor
from devtools.virtual_serial import VirtualSerialScanner

OFFICE_ID = "TRK"
OFFICE_NAME = "Kantor Imigrasi Kelas II TPI Tarakan"
TIMEZONE = "Asia/Makassar"
TOKEN = "demo-device-token"
DEVICE_ID = "trk-lobby-1"
COUNTER_PINS = [5, 6, 13, 19]  # "next" buttons of counters 1-4 (BCM)
RECALL_PINS = [12, 16, 20, 21]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def antrean_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "appliance.cli", *args]


def signed_barcode(key: SigningKey, appt: dict, office: str = OFFICE_ID) -> str:
    """The AT1 ticket of a schedule appointment (central-api.md section 2)."""
    return sign_barcode(key, appt["booking_code"], office, appt["slot_start"], appt["slot_end"],
                       appt["service"], appt["name"], appt["priority"])


@dataclass
class LobbyFiles:
    out: Path
    config: Path
    key_path: Path
    db: Path
    pty: Path
    panel: Path
    snapshots: Path
    central: Path
    printer: Path
    slips: Path
    admin_token: Path           # the reference server's /_admin bearer token
    desk_pty: Path              # the officer's desk reader, for applicants without smartphones


def prepare(out: Path, *, port: int, display_sound: str = "voice",
            poll_seconds: int = 10) -> tuple[LobbyFiles, SigningKey]:
    """Write the lobby's key, token and config into ``out`` (a fresh database each time)."""
    out.mkdir(parents=True, exist_ok=True)
    files = LobbyFiles(out, out / "antrean.toml", out / "central-signing.key",
                       out / "antrean.db", out / "scanner-pty", out / "counter-buttons",
                       out / "snapshots", out / "central", out / "printer.bin", out / "slips",
                       out / "central-admin-token", out / "desk-pty")
    for old in out.glob("antrean.db*"):
        old.unlink()
    files.snapshots.mkdir(exist_ok=True)
    files.printer.write_bytes(b"")   # the file printer's paper: empty each run
    for old in files.slips.glob("slip-*.png"):
        old.unlink()
    key, _ = load_or_create_key(str(files.key_path), "kdemo")
    token = out / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    files.admin_token.touch(mode=0o600)
    files.admin_token.chmod(0o600)
    files.admin_token.write_text(secrets.token_urlsafe(32) + "\n")
    files.config.write_text(
        "# Written by `antrean demo`: the whole appliance on this machine, no hardware.\n"
        f'[office]\nid = "{OFFICE_ID}"\ntimezone = "{TIMEZONE}"\nname = "{OFFICE_NAME}"\n'
        '[storage]\npath = "antrean.db"\n'
        f'[trust]\nkeys = {{ {key.keyid} = "{key.public_b64}" }}\n'
        f'[server]\nurl = "http://127.0.0.1:{port}"\ndevice_id = "{DEVICE_ID}"\n'
        f'token_file = "token"\npoll_seconds = {poll_seconds}\nheartbeat_seconds = 10\n'
        # Two readers, one queue: the scanner at the entrance and the officer's desk.
        f'[[scanner]]\nname = "entrance"\nkind = "serial"\nport = "{files.pty.name}"\n'
        f'[[scanner]]\nname = "desk"\nkind = "serial"\nport = "{files.desk_pty.name}"\n'
        f'[gpio]\nenabled = true\nnext_pins = {COUNTER_PINS}\nrecall_pins = {RECALL_PINS}\n'
        f'mock_panel = "{files.panel.name}"\n'
        f'[display]\nnames = "first"\nsound = "{display_sound}"\n'
        'health_file = "display-health.json"\n'
        f'[printer]\nkind = "file"\ndevice = "{files.printer.name}"\nwidth = 80\n')
    return files, key


class Central:
    """The reference server's admin side, as the demo's officers and tests use it."""

    def __init__(self, port: int, admin_token: str):
        self.base = f"http://127.0.0.1:{port}"
        self._auth = f"Bearer {admin_token}"

    def admin(self, method: str, path: str, body: dict | None = None, timeout: float = 10):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": self._auth})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")

    def wait_up(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.admin("GET", "/_admin/state", timeout=2)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def day_around_now(now: datetime) -> tuple[str, str]:
    """Opening hours that put "now" early in the office day, whatever the hour."""
    start = max(0, now.hour - 2)
    end = min(23, now.hour + 6)
    return f"{start:02d}:00", f"{end:02d}:45"


@dataclass
class Lobby:
    """A running lobby: the supervisor, the pty readers (entrance and desk), the button panel
    and the server."""

    files: LobbyFiles
    key: SigningKey
    sup: Supervisor
    central: Central
    scanner_pty: VirtualSerialScanner
    today: dict
    tomorrow: dict
    rng: random.Random = field(default_factory=lambda: random.Random(2026))
    arrived: set[str] = field(default_factory=set)  # booking codes already scanned
    desk_pty: VirtualSerialScanner | None = None

    def press(self, pin: int) -> None:
        with open(self.files.panel, "w") as fifo:
            fifo.write(f"press {pin}\n")

    def scan(self, payload: str | bytes, reader: str = "entrance") -> None:
        """``payload`` on the entrance scanner, or typed by the officer at the ``desk``."""
        data = payload.encode() if isinstance(payload, str) else payload
        pty = self.desk_pty if reader == "desk" else self.scanner_pty
        pty.write(data + b"\r\n")

    def close_readers(self) -> None:
        for pty in (self.scanner_pty, self.desk_pty):
            if pty is not None:
                pty.close()


def start_lobby(out: Path, *, echo=sys.stdout, appointments: int = 160, sound: str = "voice",
                display: bool = True, headless: bool = True, seed: int = 2026,
                watchdog_s: float = 0, printer: bool = True) -> Lobby:
    """Start server, sync, scanner, display and printer; returns once all are ready."""
    from zoneinfo import ZoneInfo

    from devtools.demo_schedule import generate_schedule, next_day

    port = free_port()
    files, key = prepare(out, port=port, display_sound=sound)
    sup = Supervisor(out / "run", echo=echo, watchdog_s=watchdog_s)
    pty = desk = None
    try:
        sup.start("central", antrean_argv(
            "devserver", "--port", str(port), "--key", str(files.key_path), "--state",
            str(files.central), "--token", TOKEN, "--appointments", str(appointments),
            "--office", OFFICE_ID, "--timezone", TIMEZONE,
            "--admin-token-file", str(files.admin_token)))
        central = Central(port, files.admin_token.read_text().strip())
        central.wait_up()
        tz = ZoneInfo(TIMEZONE)
        now = datetime.now(tz)
        day = now.date().isoformat()
        today = generate_schedule(OFFICE_ID, OFFICE_NAME, TIMEZONE, day, appointments,
                                  version=2, generated_at=time.time(),
                                  hours=day_around_now(now))
        central.admin("POST", "/_admin/schedule", {"date": day, "document": today,
                                                   "push": False})
        tomorrow = central.admin("GET", f"/_admin/schedule?date={next_day(day)}")["document"]
        pty = VirtualSerialScanner(str(files.pty))
        desk = VirtualSerialScanner(str(files.desk_pty))
        config = ["--config", str(files.config)]
        sup.start("sync", antrean_argv(*config, "sync"))
        sup.start("scanner", antrean_argv(*config, "scanner"),
                  env={"GPIOZERO_PIN_FACTORY": "mock"})
        if display:
            env = {} if not headless else {"SDL_VIDEODRIVER": "dummy",
                                           "SDL_AUDIODRIVER": "dummy"}
            sup.start("display", antrean_argv(*config, "display"), env=env)
        if printer:
            sup.start("printer", antrean_argv(*config, "printer"))
        for name in list(sup.children):
            if name != "central":
                sup.wait_ready(name, timeout=60)
        _wait_for_schedule(files, day, timeout=30)
        return Lobby(files, key, sup, central, pty, today, tomorrow, random.Random(seed),
                     desk_pty=desk)
    except BaseException:
        for reader in (pty, desk):
            if reader is not None:
                reader.close()
        sup.close()
        raise


def _wait_for_schedule(files: LobbyFiles, day: str, timeout: float) -> None:
    """The lobby opens once sync has stored today's schedule (as on a real morning)."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{files.db}?mode=ro", uri=True) as db:
                if db.execute("SELECT 1 FROM schedules WHERE date = ?", (day,)).fetchone():
                    return
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"sync did not store the schedule for {day} within {timeout:g} s")


def applicant_payload(lobby: Lobby, now: float) -> tuple[str, str]:
    """One arriving applicant: (what they hold, what kind of case it is)."""
    rng = lobby.rng
    appts = lobby.today["appointments"]

    def window(a):
        s = datetime.fromisoformat(a["slot_start"]).timestamp()
        e = datetime.fromisoformat(a["slot_end"]).timestamp()
        return s - 3600, e + 1800

    booked = [a for a in appts if a["status"] == "booked"]
    valid = [a for a in booked if window(a)[0] <= now <= window(a)[1]]
    fresh = [a for a in valid if a["booking_code"] not in lobby.arrived]
    roll = rng.random()
    if roll < 0.60 and fresh:
        a = rng.choice(fresh)
        lobby.arrived.add(a["booking_code"])
        if rng.random() < 0.25:
            return signed_barcode(lobby.key, a), "valid signed ticket"
        return "]Q1" + a["booking_code"], "valid booking code"
    if roll < 0.68:
        early = [a for a in booked if window(a)[0] > now]
        if early:
            return rng.choice(early)["booking_code"], "too early"
    if roll < 0.74:
        late = [a for a in booked if window(a)[1] < now]
        if late:
            return rng.choice(late)["booking_code"], "too late"
    if roll < 0.80:
        # Tomorrow's schedule is pulled only after closing time: a plain code is unknown
        # today, a signed ticket says which day it is for (wrong_day).
        a = rng.choice(lobby.tomorrow["appointments"])
        if rng.random() < 0.5:
            return signed_barcode(lobby.key, a), "tomorrow's signed ticket"
        return a["booking_code"], "tomorrow's booking code"
    if roll < 0.85:
        cancelled = [a for a in appts if a["status"] == "cancelled"]
        if cancelled:
            return rng.choice(cancelled)["booking_code"], "cancelled booking"
    if roll < 0.90:
        return "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=8)), "unknown code"
    if roll < 0.95:
        return rng.choice(["\x1b[2J", "hello?", "ÿþ garbage", "AT1.x.y.z", ""]), "garbage"
    if lobby.arrived:
        return rng.choice(sorted(lobby.arrived)).lower(), "a repeat, typed in lower case"
    return "ZZZZ0000", "unknown code"


def officer_push_call(lobby: Lobby, counter: int) -> str | None:
    """The officers' software calls the next waiting ticket; the server pushes it."""
    from appliance.call_queue import waiting
    from appliance.config import load_config
    from appliance.store import Store

    config = load_config(lobby.files.config)
    with Store(str(lobby.files.db), readonly=True) as store:
        from appliance.clock import Clock

        rows = waiting(store.db, Clock(store, config).lobby_day(store.db), limit=1)
    if not rows:
        return None
    lobby.central.admin("POST", "/_admin/push", {"event": "call",
                                                 "data": {"ticket": rows[0][0],
                                                          "counter": counter}})
    return rows[0][0]
