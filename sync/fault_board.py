"""The sync service's faults: each logged once when it appears or changes, once when it clears.

An SD card and a small journal cannot take a line per retry, and a technician reading
``antrean status`` wants the current faults, not a scroll of them. The board keeps the set
of active faults, mirrors it into ``service_health`` and the kv ``sync.last_error``, and
writes to the store only when something changed.

Example::

    >>> board = FaultBoard(store)
    >>> board.set("server", "central server unreachable: connection refused")
    >>> board.set("server", "central server unreachable: connection refused")  # no new line
    >>> store.get_kv("sync.last_error"), sorted(board.active)
    ('central server unreachable: connection refused', ['server'])
    >>> board.clear("server", "central server reachable again")
    >>> board.active
    {}
"""

from __future__ import annotations

import logging

from appliance.reactor import Problems

log = logging.getLogger("antrean.sync")


class FaultBoard(Problems):
    """``appliance.reactor.Problems`` (a new reason is logged too), mirrored into the store."""

    def __init__(self, store, service: str = "sync"):
        super().__init__(log, log_changes=True)
        self.store = store
        self.service = service
        self._state: tuple[str, str] | None = None

    def set(self, name: str, message: str, level: int = logging.WARNING) -> None:
        if not super().set(name, message, level):
            return
        self.store.set_kv("sync.last_error", message)
        self._report(error=message)

    def clear(self, name: str, recovered: str | None = None) -> None:
        if super().clear(name, recovered):
            self._report()

    def clear_prefix(self, prefix: str, keep: set[str]) -> None:
        for name in [n for n in self.active if n.startswith(prefix) and n not in keep]:
            self.clear(name)

    def report(self, state_if_ok: str = "ok") -> None:
        """Write the health row if the summary changed (e.g. at start, or going idle)."""
        self._report(state_if_ok=state_if_ok)

    def _report(self, error: str | None = None, state_if_ok: str = "ok") -> None:
        state = "degraded" if self.active else state_if_ok
        detail = "; ".join(self.active[k] for k in sorted(self.active))
        if (state, detail) == self._state and error is None:
            return
        self._state = (state, detail)
        self.store.report_health(self.service, state, detail, error)
