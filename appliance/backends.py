"""Which hardware backend each config ``kind`` names: registries in the spirit of gpiozero's
pin factories.

A new reader kind is one module in ``drivers/`` (a class with ``from_config``) and one line in
``SCANNERS``; the printer backends will get a registry of their own the same way. The tables
hold ``"module:Class"`` strings, so nothing is imported until a service builds the kind its
config names: evdev and picamera2 load only on the appliances that use them, and the config
check takes its allowed values from here without importing any driver.

Example::

    >>> SCANNER_KINDS
    ('serial', 'camera', 'keyboard', 'stdin', 'none')
    >>> SCANNERS.load("stdin").__name__
    'StdinScanner'
"""

from __future__ import annotations

import importlib
from typing import Any

from appliance.errors import ConfigError


class BackendRegistry:
    """Backend classes by kind name, each imported only when it is loaded."""

    def __init__(self, role: str, table: dict[str, str]):
        self.role = role
        self._table = dict(table)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._table)

    def __contains__(self, kind: object) -> bool:
        return kind in self._table

    def load(self, kind: str) -> type:
        """The class registered for ``kind``; its module is imported now."""
        if kind not in self._table:
            raise ConfigError(f"{self.role}.kind {kind!r} is not a known {self.role}; known "
                              "kinds: " + ", ".join(self._table))
        module, _, name = self._table[kind].partition(":")
        return getattr(importlib.import_module(module), name)

    def build(self, kind: str, section, **context: Any):
        """``kind``'s backend made from its config ``section`` (``Class.from_config``)."""
        return self.load(kind).from_config(section, **context)


SCANNERS = BackendRegistry("scanner", {
    "serial": "drivers.serial_scanner:SerialScanner",
    "camera": "drivers.camera_scanner:CameraScanner",
    "keyboard": "drivers.keyboard_scanner:KeyboardScanner",
    "stdin": "drivers.stdin_scanner:StdinScanner",
})
NO_SCANNER = "none"
# The values ``scanner.kind`` accepts: every registered reader, or none at all.
SCANNER_KINDS = (*SCANNERS.kinds, NO_SCANNER)
