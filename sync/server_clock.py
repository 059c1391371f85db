"""The clock from the central server's ``Date``: measured, recorded, and judged.

Each answer judged genuine offers its ``Date`` (1 s resolution, so +0.5 s on average); the
rules for which ones count are ``sync.server_time.ServerTimeFilter``. What counts is
recorded in kv ``clock`` (``appliance.clock.record_server_date``) when it moved, the boot or
the NTP state changed, or an hour passed, and a system clock far from the server's is a
visible fault (decisions then use the server's time).
"""

from __future__ import annotations

from datetime import datetime

from appliance import BUILD_DATE
from appliance.clock import (
    MAX_SKEW_S,
    NtpState,
    anchored_server_time,
    boot_id,
    boottime,
    record_server_date,
)
from sync.server_time import ServerTimeFilter

CLOCK_RECORD_DRIFT_S = 2.0     # re-record the clock offset when it moves more than this
CLOCK_RECORD_EVERY_S = 3600.0
BUILD_EPOCH = datetime.fromisoformat(BUILD_DATE + "T00:00:00+00:00").timestamp()


class ServerClock:
    """Tracks the offset to the server's ``Date`` for one sync service.

    ``synced`` says whether NTP has set the system clock (shared with the TLS policy,
    ``sync.tls``). :meth:`server_time` may be called from any thread: it only reads the
    record this object holds, never the store.
    """

    def __init__(self, store, faults, synced: NtpState | None = None):
        self.store = store
        self.faults = faults
        self.synced = synced or NtpState()
        self.time_filter = ServerTimeFilter(BUILD_EPOCH)
        self.recorded = self.store.get_kv("clock")
        self._boot_id = boot_id()

    def server_time(self) -> float | None:
        """The central server's now, from the last ``Date`` recorded this boot, or None."""
        return anchored_server_time(self.recorded, self._boot_id, boottime())

    def note_date(self, ans) -> None:
        """Track the offset to the ``Date`` of an answer judged genuine (a 2xx or 304 of the
        central server whose body was usable); 1 s resolution, so +0.5 s on average.
        ``ServerTimeFilter`` refuses times before the build date and unconfirmed jumps."""
        if ans.date is None or not self.time_filter.accept(ans.date, boottime(),
                                                           self.recorded, boot_id()):
            return
        server_epoch, sent_at, received_at = ans.date, ans.sent_at, ans.received_at
        offset = server_epoch + 0.5 - (sent_at + received_at) / 2
        synced = self.synced()
        prev = self.recorded
        if (prev is None or prev.get("boot_id") != boot_id()
                or abs(prev.get("offset_s", 0) - offset) > CLOCK_RECORD_DRIFT_S
                or prev.get("synced") != synced
                or received_at - prev.get("measured_at", 0) > CLOCK_RECORD_EVERY_S):
            record_server_date(self.store, server_epoch + 0.5, (sent_at + received_at) / 2,
                               synced)
            self.recorded = self.store.get_kv("clock")
        if abs(offset) > MAX_SKEW_S or received_at < BUILD_EPOCH:
            self.faults.set("clock", f"the system clock is off by {offset:+.0f} s from the "
                            "central server; decisions use the server's time")
        else:
            self.faults.clear("clock", "the system clock agrees with the central server")
