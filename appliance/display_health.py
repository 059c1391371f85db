"""The display's own health (frame rate, last frame, video driver, size), as a small file.

The display never writes the store (it must not contend with check-ins, nor wear the SD
card once a second), so it publishes its health by atomically replacing a small JSON file,
``display.health_file``, by default ``/run/antrean/display.json``: a tmpfs that systemd
makes for the display unit (``RuntimeDirectory=antrean``, mode 0750, user ``antrean``) and
removes when the display stops. ``antrean status`` and the sync service's heartbeat read it.

A report is *fresh* while it was written in this boot less than ``STALE_S`` ago, measured
on ``CLOCK_BOOTTIME`` (immune to the wall clock jumping when NTP or the server corrects
it); a hung display stops rewriting it and so becomes stale, a stopped one takes it away.

Example (a temporary folder standing in for ``/run/antrean``)::

    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     path = os.path.join(run, "display.json")
    ...     write_health(path, {"fps": 29.9})
    ...     report = read_health(path)
    >>> report["fps"], report["fresh"]
    (29.9, True)
    >>> read_health(path) is None           # the display stopped: its folder is gone
    True
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from appliance.clock import boot_id, boottime

DEFAULT_PATH = "/run/antrean/display.json"
PUBLISH_EVERY_S = 5.0
STALE_S = 30.0
MAX_BYTES = 4096


def write_health(path: str, doc: dict) -> None:
    """Replace ``path`` with ``doc`` plus when and in which boot it was written (atomic)."""
    body = json.dumps({**doc, "boot_id": boot_id(), "written_boot_s": round(boottime(), 3)},
                      separators=(",", ":"))
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(body)
    os.replace(tmp, path)


def read_health(path: str) -> dict | None:
    """The last report with ``fresh`` and ``age_s`` added, or None when there is none.

    A missing, unreadable or malformed file is "no report", never an error: the display
    may simply not be running.
    """
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read(MAX_BYTES + 1)[:MAX_BYTES])
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("written_boot_s"), int | float):
        return None
    age = boottime() - doc["written_boot_s"]
    same_boot = doc.get("boot_id") == boot_id()
    doc["age_s"] = round(age, 1) if same_boot else None
    doc["fresh"] = same_boot and -1.0 <= age <= STALE_S
    return doc


def heartbeat_display(path: str) -> dict:
    """The heartbeat's ``display`` object: ``fps`` only from a fresh report, else null.

    ``last_frame_at`` (RFC 3339 UTC), ``driver`` and ``size`` come from the last report
    even when it is stale, so the server can tell a frozen screen from a missing one.
    """
    doc = read_health(path) or {}
    fps = doc.get("fps") if doc.get("fresh") else None
    last = doc.get("last_frame_at")
    return {"fps": fps if isinstance(fps, int | float) else None,
            "last_frame_at": _utc(last) if isinstance(last, int | float) else None,
            "driver": _text(doc.get("driver")), "size": _text(doc.get("size"))}


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")[:-6] + "Z"


def _text(value) -> str | None:
    return value[:64] if isinstance(value, str) else None
