"""Which ``Date`` headers of the central server may set the lobby's idea of now.

Whenever the Pi's own clock is wrong, every decision (which day it is, who is early or late,
which schedule to pull) follows the server's ``Date``. So one bogus ``Date`` (an error page
dated 1970, a proxy with a dead clock, a misread zone) would move the whole lobby to another
day. The sync service offers a ``Date`` here only from an answer it judged genuine (2xx or
304 from the central server, its body usable), parsed strictly as GMT
(:func:`parse_http_date`). This filter then refuses a time earlier than the software's build
date, and believes a jump of more than a day from the time already recorded (carried forward
by the boot clock, which no wall-clock change moves) only when the next answer confirms it.

Example::

    >>> f = ServerTimeFilter(build_epoch=1.8e9)
    >>> f.accept(1.7e9, boot_s=100.0, previous=None, this_boot="b1")   # before the build
    False
"""

from __future__ import annotations

import logging
import re
import time
from calendar import timegm

log = logging.getLogger("antrean.sync")

JUMP_S = 86400.0     # a move of more than a day must be seen twice
AGREE_S = 300.0      # two sightings of a jump agree within this (server minus boot clock)

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TIME = r"(\d{2}):(\d{2}):(\d{2})"
_M = "|".join(_MONTHS)
# RFC 9110 5.6.7 (was RFC 7231 7.1.1.1): IMF-fixdate, and the two obsolete forms, all GMT.
_IMF = re.compile(rf"({'|'.join(_DAYS)}), (\d{{2}}) ({_M}) (\d{{4}}) {_TIME} GMT")
_RFC850 = re.compile(rf"({'|'.join(_LONG_DAYS)}), (\d{{2}})-({_M})-(\d{{2}}) {_TIME} GMT")
_ASCTIME = re.compile(rf"({'|'.join(_DAYS)}) ({_M}) ([ \d]\d) {_TIME} (\d{{4}})")


def parse_http_date(value: str | None, now: float | None = None) -> float | None:
    """An HTTP-date as epoch seconds, or None unless it is exactly one of the three forms.

    Only GMT exists in HTTP dates: ``-0000``, ``+0700``, ``UTC``, ``EST`` and friends are
    refused (``email.utils`` would read ``-0000`` in the machine's own zone). The weekday
    must match the date. A two-digit RFC 850 year more than 50 years ahead of ``now`` means
    the century before, as RFC 9110 says.
    """
    if not isinstance(value, str):
        return None
    value = value.strip(" \t")
    if m := _IMF.fullmatch(value):
        wday, day, mon, year, hh, mm, ss = m.groups()
        names = _DAYS
    elif m := _RFC850.fullmatch(value):
        wday, day, mon, yy, hh, mm, ss = m.groups()
        names = _LONG_DAYS
        this_year = time.gmtime(time.time() if now is None else now).tm_year
        year = (this_year // 100) * 100 + int(yy)
        if year > this_year + 50:
            year -= 100
    elif m := _ASCTIME.fullmatch(value):
        wday, mon, day, hh, mm, ss, year = m.groups()
        names = _DAYS
    else:
        return None
    fields = (int(year), _MONTHS.index(mon) + 1, int(day), int(hh), int(mm), int(ss))
    if not (1 <= fields[2] <= 31 and fields[3] <= 23 and fields[4] <= 59 and fields[5] <= 60):
        return None
    epoch = timegm((*fields[:5], min(fields[5], 59), 0, 0, 0))
    parsed = time.gmtime(epoch)
    if (parsed.tm_mon, parsed.tm_mday) != fields[1:3] or names[parsed.tm_wday] != wday:
        return None    # 31 Feb, or a weekday that does not match: not a real date
    return float(epoch)


class ServerTimeFilter:
    """Decides, answer by answer, whether a server time may be recorded (one per process)."""

    def __init__(self, build_epoch: float):
        self.build_epoch = build_epoch
        self._pending: float | None = None     # server minus boot clock of an unconfirmed jump
        self._early_logged = False

    def accept(self, server_epoch: float, boot_s: float, previous: dict | None,
               this_boot: str) -> bool:
        """Whether ``server_epoch`` (received at boot clock ``boot_s``) may be recorded.

        ``previous`` is the recorded kv ``clock`` (or None), ``this_boot`` the kernel's boot
        id: within one boot the recorded time is carried forward by the boot clock, so any
        move of more than a day is suspect; across boots only a move backwards is (the
        appliance may have been off for a long weekend).
        """
        if server_epoch < self.build_epoch:
            if not self._early_logged:
                self._early_logged = True
                log.warning("ignored the central server's Date %s: it is before this "
                            "software's build date", _utc(server_epoch))
            return False
        self._early_logged = False
        jump = _jump(server_epoch, boot_s, previous, this_boot)
        anchor = server_epoch - boot_s
        if jump is None:
            if self._pending is not None:
                log.info("the central server's time is back in line; the jump it reported "
                         "before was not recorded")
            self._pending = None
            return True
        if self._pending is not None and abs(anchor - self._pending) <= AGREE_S:
            self._pending = None
            log.warning("the central server's time moved by %s, confirmed by two answers in a "
                        "row; recorded", _span(jump))
            return True
        if self._pending is None:
            log.warning("the central server's Date (%s) is %s from the time recorded before; "
                        "not believed until the next answer confirms it", _utc(server_epoch),
                        _span(jump))
        self._pending = anchor
        return False


def _jump(server_epoch: float, boot_s: float, previous: dict | None,
          this_boot: str) -> float | None:
    """The suspect move from the recorded time in seconds, or None when it is plausible."""
    if not previous:
        return None
    try:
        if previous.get("boot_id") == this_boot and "server_minus_boottime" in previous:
            jump = server_epoch - (float(previous["server_minus_boottime"]) + boot_s)
            return jump if abs(jump) > JUMP_S else None
        last = float(previous["measured_at"]) + float(previous["offset_s"])
    except (KeyError, TypeError, ValueError):
        return None     # a record this version cannot read is no evidence either way
    jump = server_epoch - last
    return jump if jump < -JUMP_S else None


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _span(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:+.1f} days" if abs(days) >= 1 else f"{seconds:+.0f} s"
