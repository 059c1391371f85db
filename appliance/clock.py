"""Office time, corrected when the system clock is clearly wrong.

A Raspberry Pi has no real-time clock: it can boot days in the past, and its clock can jump
when NTP finally answers. The sync service stores the server's time from each ``Date`` header
anchored to ``CLOCK_BOOTTIME`` (kv ``clock``: server time minus boot time, with the kernel's
boot id), so the server's "now" stays known however the wall clock jumps during this boot; an
anchor from an earlier boot is ignored. Every process then decides with :meth:`Clock.time`:

- the server offset is used while the local clock is off by more than 5 minutes or earlier than
  the software's build date;
- a local clock earlier than the build date with no offset from this boot is *untrusted*:
  decisions that depend on the hour are relaxed (see ``Clock.trusted`` and docs/decisions.md),
  because no applicant may be turned away for a dead RTC battery.

Check-ins, counter calls, ``status`` and the screen all work on one day,
:meth:`Clock.lobby_day`: the office day on a trusted clock, else the day the store has
evidence of (pinned for this boot by the first check-in), so whoever is let in on an
untrusted clock is also callable, counted and shown.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from appliance import BUILD_DATE

MAX_SKEW_S = 300.0
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
# systemd-timesyncd creates this (on the /run tmpfs, so once per boot) when it has set the clock.
TIMESYNC_FLAG = "/run/systemd/timesync/synchronized"
TIME_ERROR = 5      # adjtimex's "clock not synchronised"
TIMEDATECTL_TIMEOUT_S = 2.0
LOBBY_DAY_KEY = "lobby.day"   # kv: {"day", "boot_id"}, the day pinned on an untrusted clock
_BUILD_EPOCH = datetime.fromisoformat(BUILD_DATE + "T00:00:00+00:00").timestamp()


def boot_id() -> str:
    try:
        with open(BOOT_ID_PATH) as f:
            return f.read().strip()
    except OSError:
        return ""


def boottime() -> float:
    """Seconds since boot, counting suspend; immune to wall-clock jumps."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _kernel_synced() -> bool | None:
    """The kernel's NTP state (read-only ``adjtimex``), or None where the call is refused.

    ``ProtectClock=yes`` and the ``@system-service`` filter of the shipped units refuse every
    ``@clock`` system call with EPERM, even this read-only one.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(512)    # struct timex, modes = 0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    return None if state == -1 else state != TIME_ERROR


def _timedated_synced() -> bool | None:
    """timedated's ``NTPSynchronized`` over D-Bus (``timedatectl``), or None if unavailable."""
    tool = shutil.which("timedatectl")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, timeout=TIMEDATECTL_TIMEOUT_S,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    answer = out.stdout.strip()
    return {"yes": True, "no": False}.get(answer) if out.returncode == 0 else None


def system_clock_synced(flag_path: str = TIMESYNC_FLAG) -> bool:
    """Whether NTP has set the system clock, asked in a way that works inside the units.

    In order: systemd-timesyncd's flag file (readable under any sandbox); the kernel's state
    where ``adjtimex`` is allowed (other NTP daemons, no sandbox); timedated over D-Bus
    where it is refused; else False. See docs/decisions.md.
    """
    if os.path.exists(flag_path):
        return True
    kernel = _kernel_synced()
    if kernel is not None:
        return kernel
    return bool(_timedated_synced())


class NtpState:
    """:func:`system_clock_synced`, asked at most once every ``every_s`` seconds.

    Asking may start ``timedatectl`` (up to 2 s), and the sync service wants the answer for
    every clock record and every TLS connection: one instance is shared by all of them.
    """

    def __init__(self, probe: Callable[[], bool] = system_clock_synced, every_s: float = 60.0):
        self.probe = probe
        self.every_s = every_s
        self._seen: tuple[float, bool] | None = None

    def __call__(self) -> bool:
        now = time.monotonic()
        seen = self._seen
        if seen is None or now - seen[0] > self.every_s:
            seen = self._seen = (now, bool(self.probe()))
        return seen[1]


def anchored_server_time(record, this_boot: str, boot_seconds: float) -> float | None:
    """The server's now from a kv ``clock`` record, or None unless it was made this boot.

    Example::

        >>> anchored_server_time({"server_minus_boottime": 1.8e9, "boot_id": "b1"}, "b1", 60.0)
        1800000060.0
        >>> anchored_server_time({"server_minus_boottime": 1.8e9, "boot_id": "b0"}, "b1", 60.0)
    """
    if not isinstance(record, dict) or record.get("boot_id") != this_boot:
        return None
    try:
        return float(record["server_minus_boottime"]) + boot_seconds
    except (KeyError, TypeError, ValueError):
        return None


def record_server_date(store, server_epoch: float, local_epoch: float, synced: bool,
                       db=None, *, boot_seconds: float | None = None) -> float:
    """Anchor the server's time to this boot's clock; returns server minus local seconds.

    ``server_epoch`` is the server's ``Date`` as just received, ``local_epoch`` the wall clock
    at that moment, ``synced`` whether the system clock reports NTP synchronisation.
    """
    anchor = server_epoch - (boottime() if boot_seconds is None else boot_seconds)
    store.set_kv("clock", {"server_minus_boottime": anchor, "boot_id": boot_id(),
                           "offset_s": server_epoch - local_epoch, "measured_at": local_epoch,
                           "synced": bool(synced)}, db=db)
    return server_epoch - local_epoch


class Clock:
    """The appliance's idea of now, in the office time zone.

    Example::

        >>> clock = Clock(store, config)
        >>> clock.office_day(1796000000.0)     # 08:53 in Tarakan
        '2026-11-30'
    """

    def __init__(self, store, config, *, wall=time.time, boot=boottime,
                 refresh_s: float = 5.0):
        self._store = store
        self.tz: ZoneInfo = config.tz
        self._wall = wall
        self._boot = boot
        self._refresh_s = refresh_s
        self._read_at = float("-inf")
        self._anchor: float | None = None

    def _load(self) -> None:
        now = time.monotonic()
        if now - self._read_at < self._refresh_s:
            return
        self._read_at = now
        value = self._store.get_kv("clock") if self._store is not None else None
        self._anchor = anchored_server_time(value, boot_id(), 0.0)

    def server_time(self) -> float | None:
        """The server's idea of now (from the last ``Date`` this boot), or None."""
        self._load()
        return None if self._anchor is None else self._anchor + self._boot()

    @property
    def offset(self) -> float | None:
        """Server minus local clock right now; ``None`` when unknown this boot."""
        server = self.server_time()
        return None if server is None else server - self._wall()

    @property
    def corrected(self) -> bool:
        """True while decisions use the server's time instead of the system clock."""
        return self._choose()[1]

    @property
    def trusted(self) -> bool:
        """False when the local clock is before the build date and no server time is known."""
        return self._wall() >= _BUILD_EPOCH or self.server_time() is not None

    def _choose(self) -> tuple[float, bool]:
        local = self._wall()
        server = self.server_time()
        if server is not None and (abs(server - local) > MAX_SKEW_S or local < _BUILD_EPOCH):
            return server, True
        return local, False

    def local(self) -> float:
        """This machine's own wall clock (what other processes wrote their times with)."""
        return self._wall()

    def time(self) -> float:
        """Epoch seconds to decide with."""
        return self._choose()[0]

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), self.tz)

    def office_day(self, epoch: float | None = None) -> str:
        when = self.time() if epoch is None else epoch
        return datetime.fromtimestamp(when, self.tz).date().isoformat()

    # the lobby's day ---------------------------------------------------------------------

    def lobby_day(self, db) -> str:
        """The office day the lobby is working on; ``db`` is an open connection to the store.

        On a trusted clock it is :meth:`office_day`. On an untrusted one it is the day pinned
        by the first check-in of this boot, else the latest day with check-ins, else the
        newest cached schedule's day. Check-ins are filed under it, and ``call``, ``status``
        and the screen look at it, so everyone let in can be called (docs/decisions.md).
        """
        if self.trusted:
            return self.office_day()
        return self._pinned_day(db) or self._latest_checkin_day(db) or self._newest_schedule_day(
            db) or self.office_day()

    def admission_day(self, db, booking_day: str) -> str:
        """The day a check-in of a booking for ``booking_day`` is filed under.

        On an untrusted clock with no day pinned yet, the booking's own day (an applicant is
        the best evidence of the date), but never before the latest day with check-ins: time
        does not run backwards, and an applicant who came days late must not move the lobby.
        """
        if self.trusted:
            return self.office_day()
        pinned = self._pinned_day(db)
        if pinned:
            return pinned
        return max(booking_day, self._latest_checkin_day(db) or booking_day)

    def pin_lobby_day(self, db, day: str) -> None:
        """Remember ``day`` for the rest of this boot (in the check-in's write transaction).

        A no-op on a trusted clock or when a day is already pinned this boot.
        """
        if self.trusted or self._pinned_day(db):
            return
        self._store.set_kv(LOBBY_DAY_KEY, {"day": day, "boot_id": boot_id()}, db=db)

    @staticmethod
    def _pinned_day(db) -> str | None:
        row = db.execute("SELECT value FROM kv WHERE key = ?", (LOBBY_DAY_KEY,)).fetchone()
        try:
            value = json.loads(row[0]) if row else None
        except ValueError:
            return None
        if isinstance(value, dict) and value.get("boot_id") == boot_id():
            day = value.get("day")
            return day if isinstance(day, str) else None
        return None

    @staticmethod
    def _latest_checkin_day(db) -> str | None:
        return db.execute("SELECT MAX(office_day) FROM checkins").fetchone()[0]

    @staticmethod
    def _newest_schedule_day(db) -> str | None:
        return db.execute("SELECT MAX(date) FROM schedules").fetchone()[0]
