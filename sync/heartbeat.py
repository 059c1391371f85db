"""The heartbeat: what the appliance tells the central server about itself, now and then.

``POST /v1/heartbeat`` carries the version, uptime, today's schedule, the outbox counts, the
reader, the screen and the clock (``docs/api.md``); its answer's ``Date`` is also how a
Pi without a real-time clock learns the time before it chooses which days to pull.
"""

from __future__ import annotations

import time

from appliance import __version__
from appliance.display_health import heartbeat_display
from appliance.lobby_view import read_lobby
from appliance.outbox import counts
from appliance.reactor import Timer
from appliance.readers import heartbeat_scanner
from sync.client import BodyTooLarge, ServerUnreachable, TokenUnavailable
from sync.contact import SyncPart


class Heartbeat(SyncPart):
    """The heartbeat of one sync service; ``timer`` is when the next one is due."""

    def __init__(self, *parts, **kw):
        super().__init__(*parts, **kw)
        self.started = time.monotonic()
        self.timer = Timer(float(self.config.server.heartbeat_seconds), None, 0.0)

    def heartbeat_doc(self) -> dict:
        with self.store.read() as db:
            today = self.clock.lobby_day(db)
            lobby = read_lobby(db, today, self.config, self.clock.time(), recent_calls=0,
                               next_tickets=0)
        info = lobby.schedule
        clock = self.store.get_kv("clock") or {}
        try:
            uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
        except (AttributeError, OSError):
            uptime = time.monotonic() - self.started
        return {
            "version": __version__,
            "uptime_s": int(uptime),
            "schedule": {"date": today, "version": info.version if info else None,
                         "age_s": int(lobby.schedule_age_s()) if info else None},
            "outbox": counts(self.store),
            "scanner": heartbeat_scanner(self.config, self.store),
            "display": heartbeat_display(self.config.display.health_file),
            "clock": {"synced": bool(clock.get("synced", False)),
                      "offset_s": round(float(clock.get("offset_s", 0.0)), 3)},
            "lobby": lobby.summary(),
        }

    def send(self) -> bool:
        self.keep_alive()
        try:
            ans = self.client.heartbeat(self.heartbeat_doc())
        except TokenUnavailable as e:
            self.contact.unauthorized(str(e))
            return False
        except (ServerUnreachable, BodyTooLarge) as e:
            self.contact.unreachable(str(e))
            return False
        if ans.status in (200, 204):
            self.contact.ok()
            self.server_clock.note_date(ans)
            self.faults.clear("heartbeat")
            self.faults.clear("endpoint POST heartbeat", "the heartbeat endpoint answers again")
            return True
        if ans.status == 401:
            self.contact.unauthorized()
        elif ans.wrong_endpoint:
            self.contact.misrouted("POST heartbeat", ans.status, "the server does not hear from "
                            "this appliance")
        elif ans.retryable:
            self.contact.unreachable(f"POST heartbeat answered HTTP {ans.status}")
        else:
            self.contact.ok()
            self.faults.set("heartbeat", f"POST heartbeat answered HTTP {ans.status}")
        return False
