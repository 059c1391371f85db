"""Office time, corrected when the system clock is clearly wrong.

A Raspberry Pi has no real-time clock: it can boot days in the past. The sync service stores
the offset between this machine's clock and the server's ``Date`` header (kv ``clock``), tagged
with the kernel's boot id because an offset measured in an earlier boot says nothing about this
one. Every process then decides with :meth:`Clock.time`:

- the server offset is used while the local clock is off by more than 5 minutes or earlier than
  the software's build date;
- a local clock earlier than the build date with no offset from this boot is *untrusted*:
  decisions that depend on the hour are relaxed (see ``Clock.trusted`` and docs/decisions.md),
  because no applicant may be turned away for a dead RTC battery.
"""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from appliance import BUILD_DATE

MAX_SKEW_S = 300.0
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_BUILD_EPOCH = datetime.fromisoformat(BUILD_DATE + "T00:00:00+00:00").timestamp()


def boot_id() -> str:
    try:
        with open(BOOT_ID_PATH) as f:
            return f.read().strip()
    except OSError:
        return ""


def record_server_date(store, server_epoch: float, local_epoch: float, synced: bool,
                       db=None) -> float:
    """Store the server-minus-local offset for this boot; returns the offset in seconds."""
    offset = server_epoch - local_epoch
    store.set_kv("clock", {"offset_s": offset, "boot_id": boot_id(), "measured_at": local_epoch,
                           "synced": bool(synced)}, db=db)
    return offset


class Clock:
    """The appliance's idea of now, in the office time zone.

    Example::

        >>> clock = Clock(store, config)   # doctest: +SKIP
        >>> clock.office_day()             # doctest: +SKIP
        '2026-11-30'
    """

    def __init__(self, store, config, *, wall=time.time, refresh_s: float = 5.0):
        self._store = store
        self.tz: ZoneInfo = config.tz
        self._wall = wall
        self._refresh_s = refresh_s
        self._read_at = float("-inf")
        self._offset: float | None = None
        self.synced = False

    def _load(self) -> None:
        now = time.monotonic()
        if now - self._read_at < self._refresh_s:
            return
        self._read_at = now
        value = self._store.get_kv("clock") if self._store is not None else None
        if value and value.get("boot_id") == boot_id():
            self._offset = float(value["offset_s"])
            self.synced = bool(value.get("synced"))
        else:
            self._offset = None

    @property
    def offset(self) -> float | None:
        """Server minus local clock, measured in this boot; ``None`` when unknown."""
        self._load()
        return self._offset

    @property
    def corrected(self) -> bool:
        """True while decisions use the server's time instead of the system clock."""
        local = self._wall()
        off = self.offset
        return off is not None and (abs(off) > MAX_SKEW_S or local < _BUILD_EPOCH)

    @property
    def trusted(self) -> bool:
        """False when the local clock is before the build date and no offset is known."""
        return self._wall() >= _BUILD_EPOCH or self.offset is not None

    def time(self) -> float:
        """Epoch seconds to decide with."""
        local = self._wall()
        off = self.offset
        if off is not None and (abs(off) > MAX_SKEW_S or local < _BUILD_EPOCH):
            return local + off
        return local

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), self.tz)

    def office_day(self, epoch: float | None = None) -> str:
        when = self.time() if epoch is None else epoch
        return datetime.fromtimestamp(when, self.tz).date().isoformat()
