"""How the central server is doing, as every request of the sync service sees it.

Each answer ends in one of a few verdicts (reachable; unreachable or unusable; a refused
token; an endpoint that is not where the contract puts it). They are kept as faults on the
``FaultBoard`` (logged once, shown in ``antrean status``) and as the kv keys
``sync.offline_since`` and ``sync.last_ok`` that ``status`` and the heartbeat read.
"""

from __future__ import annotations

import logging
import time

LAST_OK_EVERY_S = 60.0         # sync.last_ok is rewritten at most this often


class Contact:
    """The server's standing for one sync service; shared by the pulls, uploads and beats."""

    def __init__(self, config, store, faults):
        self.config = config
        self.store = store
        self.faults = faults
        self._offline_since = self.store.get_kv("sync.offline_since")
        self._last_ok_written = 0.0

    def ok(self) -> None:
        self.faults.clear("server", "central server reachable again")
        self.faults.clear("token", "the central server accepts the device token again")
        now = time.time()
        if self._offline_since is not None:
            self._offline_since = None
            self.store.set_kv("sync.offline_since", None)
        if now - self._last_ok_written >= LAST_OK_EVERY_S:
            self.store.set_kv("sync.last_ok", now)
            self._last_ok_written = now

    def went_offline(self) -> None:
        if self._offline_since is None:
            self._offline_since = time.time()
            self.store.set_kv("sync.offline_since", self._offline_since)

    def unreachable(self, why: str) -> None:
        self.went_offline()
        self.faults.set("server", f"central server unusable: {why}; the lobby works from "
                        "the cache and events wait in the outbox")

    def misrouted(self, what: str, status: int, meanwhile: str) -> None:
        """A 404/405/410/413 where the contract has an endpoint: ``server.url`` (or a proxy)
        is wrong. Nothing is the data's fault: keep it all, alert, retry at the poll
        interval."""
        self.went_offline()
        self.faults.set(f"endpoint {what}", f"the central server answered HTTP {status} to "
                        f"{what}: technician, server.url ({self.config.server.url}) in "
                        f"{self.config.path} may point to the wrong place, or a proxy refuses "
                        f"the request; {meanwhile}", logging.ERROR)

    def unauthorized(self, why: str | None = None) -> None:
        """A refused (401) or unreadable token: keep everything, alert, retry at the normal
        interval so a replaced token file is picked up."""
        self.went_offline()
        self.faults.set("token", why or "the central server refused the device token (401); "
                        "technician: install a new device token in "
                        f"{self.config.server.token_file} (nothing is deleted meanwhile)",
                        logging.ERROR)


class SyncPart:
    """What every job of the sync service works with: the store and the lobby's clock, the
    client, the fault board, the server's standing and clock, and the watchdog's
    ``keep_alive`` (called between the requests of a long round)."""

    def __init__(self, config, store, clock, client, faults, contact: Contact,
                 server_clock, *, keep_alive):
        self.config = config
        self.store = store
        self.clock = clock
        self.client = client
        self.faults = faults
        self.contact = contact
        self.server_clock = server_clock
        self.keep_alive = keep_alive
