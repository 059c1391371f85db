"""Several readers on one appliance: each ``[[scanner]]`` table built, named and reported on
its own, all feeding the one queue.

A serial scanner at the entrance and a numeric keypad at the officer's desk are two readers of
one ``ReaderSet``. Each backend gets callbacks bound to its reader's name, so every payload
and state change says where it came from; the scanner service passes the name on to
``CheckinDesk.scan`` (scan records, outbox events) and to its logs. A reader that cannot even
be built (evdev missing for a keyboard reader) is one disconnected reader with the reason,
never a stopped service: the others start and run as usual.

The states are shared through the store's kv: ``scanner.readers`` (one entry per reader, in
config order) and ``scanner.connected`` (all of them connected, as before). ``reader_report``
reads them back for ``antrean status`` and the heartbeat; a reader the service has not
reported yet is disconnected.

Example (the stdin kind, whose input has already ended)::

    >>> import os
    >>> from appliance.config import Section
    >>> read_end, write_end = os.pipe(); os.close(write_end)
    >>> desk = Section({"name": "desk", "kind": "stdin"})
    >>> got = []
    >>> readers = ReaderSet((desk,), on_payload=lambda p, name: got.append((p, name)),
    ...                     on_state=lambda *s: None, stdin_fd=read_end)
    >>> readers.start()
    >>> readers["desk"].backend.kind
    'stdin'
    >>> readers.close(); os.close(read_end)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.backends import NO_SCANNER, SCANNERS
from appliance.errors import AntreanError

READERS_KV = "scanner.readers"
CONNECTED_KV = "scanner.connected"


def build_reader(reader, on_payload, on_state, *, stdin_fd: int | None = None):
    """The backend one reader's table names (``appliance.backends.SCANNERS``).

    Raises ``AntreanError`` (e.g. ``BackendUnavailable``) when it cannot even be built.
    """
    return SCANNERS.build(reader.kind, reader, on_payload=on_payload, on_state=on_state,
                          stdin_fd=stdin_fd)


@dataclass
class Reader:
    """One configured reader and what the service knows about it now."""

    name: str
    kind: str
    backend: Any = None
    connected: bool = False
    detail: str = "starting"

    def as_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "connected": self.connected,
                "detail": self.detail}


@dataclass
class ReaderSet:
    """The appliance's readers; callbacks carry the reader's name (driver threads call them).

    ``on_payload(payload, name)`` and ``on_state(name, connected, detail)`` must only hand
    over (the scanner service's inbox); ``set_state`` is then called from the service's own
    thread.
    """

    sections: tuple
    on_payload: Callable[[bytes, str], None]
    on_state: Callable[[str, bool, str], None]
    stdin_fd: int | None = None
    readers: dict[str, Reader] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for section in self.sections:
            self.readers[section.name] = Reader(section.name, section.kind)

    def __getitem__(self, name: str) -> Reader:
        return self.readers[name]

    def __iter__(self):
        return iter(self.readers.values())

    def __len__(self) -> int:
        return len(self.readers)

    def start(self) -> None:
        """Build and start every reader; one that cannot be built is marked, not fatal."""
        for section in self.sections:
            reader = self.readers[section.name]
            try:
                reader.backend = build_reader(
                    section, self._payload_from(section.name), self._state_from(section.name),
                    stdin_fd=self.stdin_fd)
            except AntreanError as e:
                self.set_state(section.name, False, str(e))
                continue
            reader.backend.reader_name = section.name
            reader.backend.start()

    def _payload_from(self, name: str):
        return lambda payload: self.on_payload(payload, name)

    def _state_from(self, name: str):
        return lambda connected, detail: self.on_state(name, connected, detail)

    def set_state(self, name: str, connected: bool, detail: str) -> None:
        reader = self.readers[name]
        reader.connected, reader.detail = connected, detail

    @property
    def all_connected(self) -> bool:
        return bool(self.readers) and all(r.connected for r in self)

    @property
    def finished(self) -> bool:
        """Every reader's input has ended (only the stdin and file-camera kinds ever end)."""
        return bool(self.readers) and all(r.backend is not None and r.backend.finished
                                          for r in self)

    def save(self, store) -> None:
        """The states into the store's kv, for ``status`` and the heartbeat."""
        with store.write() as db:
            store.set_kv(READERS_KV, [r.as_json() for r in self], db)
            store.set_kv(CONNECTED_KV, self.all_connected, db)

    def close(self) -> None:
        for reader in self:
            if reader.backend is not None:
                reader.backend.close()
            reader.connected, reader.detail = False, "the scanner service stopped"


def reader_report(config, store) -> dict:
    """``{kind, connected, readers}`` as the heartbeat and ``status`` show it.

    ``kind`` is the first reader's and ``connected`` means every reader is connected, so a
    consumer of the one-reader fields reads them as before; ``readers`` has each reader's
    ``name``, ``kind``, ``connected`` and ``detail`` in config order.
    """
    saved = {r.get("name"): r for r in store.get_kv(READERS_KV, None) or []
             if isinstance(r, dict)}
    readers = []
    for section in config.readers:
        state = saved.get(section.name) or {}
        connected = state.get("kind") == section.kind and state.get("connected") is True
        detail = state.get("detail") if state.get("kind") == section.kind else None
        readers.append({"name": section.name, "kind": section.kind, "connected": connected,
                        "detail": detail or ("" if connected else "not reported by the "
                                             "scanner service")})
    return {"kind": config.readers[0].kind if config.readers else NO_SCANNER,
            "connected": bool(readers) and all(r["connected"] for r in readers),
            "readers": readers}


def heartbeat_scanner(config, store) -> dict:
    """The heartbeat's ``scanner``: ``reader_report`` with ``{name, kind, connected}`` per
    reader (the details stay on the appliance, in ``antrean status``)."""
    report = reader_report(config, store)
    report["readers"] = [{k: r[k] for k in ("name", "kind", "connected")}
                         for r in report["readers"]]
    return report
