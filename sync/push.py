"""Applying pushes: what the stream thread heard, acted on in the main thread.

``schedule`` pulls that day at once (the pull verifies it; a push is never trusted as a
schedule), ``call`` records a call from the officers' software in the queue, and
``announcements`` replaces the screen's ticker. Anything malformed is logged and ignored,
and the resume point (``sync.stream_last_id``) moves on either way, so one bad event is
never heard twice.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import date as Date
from datetime import datetime

from sync.sse import SseEvent

log = logging.getLogger("antrean.sync")

TICKET_RE = re.compile(r"^[A-Z]{1,3}[0-9]{3,6}$")


def _epoch(text) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None or not 2000 <= when.year <= 2100:  # a sane instant, or none
        return None
    return when.timestamp()


class PushHandler:
    """Acts on the stream's messages for one sync service (main thread only)."""

    def __init__(self, store, clock, queue, faults, puller):
        self.store = store
        self.clock = clock
        self.queue = queue
        self.faults = faults
        self.puller = puller

    def handle(self, item: tuple) -> None:
        """Act on one message from the stream thread (main thread only)."""
        if item[0] == "stream":
            self.stream_state(item[1], item[2])
        elif item[0] == "push":
            self.on_push(item[1])

    def stream_state(self, up: bool, why: str) -> None:
        if up == self.puller.stream_up:
            return
        self.puller.stream_up = up
        if up:
            self.faults.clear("stream", "push stream connected")
            self.puller.timer.at(time.monotonic())   # catch up on anything missed meanwhile
        else:
            self.faults.set("stream", f"push stream down ({why}); polling the schedule every "
                            f"{self.puller.poll_s:g} s", logging.INFO)
            self.puller.timer.at(min(self.puller.timer.due, time.monotonic() + self.puller.poll_s))

    def on_push(self, event: SseEvent) -> None:
        if not event.data:
            if event.id:
                self.store.set_kv("sync.stream_last_id", event.id)
            return
        try:
            data = json.loads(event.data)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            log.warning("ignored a %r push whose data is not a JSON object", event.event)
        elif event.event == "schedule":
            self._push_schedule(data)
        elif event.event == "call":
            self._push_call(data)
        elif event.event == "announcements":
            items = data.get("items")
            if isinstance(items, list) and all(isinstance(x, str) for x in items):
                self.store.set_kv("announcements", {"items": items, "at": time.time()})
                log.info("announcements replaced by the server (%d items)", len(items))
            else:
                log.warning("ignored an announcements push without a list of texts")
        else:
            log.debug("ignored unknown push event %r", event.event)
        if event.id:
            self.store.set_kv("sync.stream_last_id", event.id)

    def _push_schedule(self, data: dict) -> None:
        day = data.get("date")
        try:
            valid = Date.fromisoformat(day).isoformat() == day  # YYYY-MM-DD only
        except (TypeError, ValueError):
            valid = False
        if not valid:
            log.warning("ignored a schedule push without a valid date")
            return
        self.puller.pull_now.add(day)

    def _push_call(self, data: dict) -> None:
        sid, ticket, counter = data.get("id"), data.get("ticket"), data.get("counter")
        if not (isinstance(sid, str) and sid and isinstance(ticket, str)
                and TICKET_RE.match(ticket) and isinstance(counter, int)
                and not isinstance(counter, bool) and 1 <= counter <= 999):
            log.warning("ignored a call push without a valid id, ticket and counter")
            return
        at = _epoch(data.get("at"))
        if self.queue.record_server_call(sid, ticket, counter, at if at else self.clock.time()):
            log.info("call %s to counter %d (from the officers' software)", ticket, counter)
