"""The exceptions the appliance raises on purpose.

Each subclasses both ``AntreanError`` (so the CLI can turn any of them into one clear line)
and the builtin it resembles (so callers that only know Python still catch it sensibly),
the way gpiozero's exceptions do.
"""


class AntreanError(Exception):
    """Base of every error the appliance reports to a person.

    The message is one line: what went wrong, where, and what to do about it.
    """


class ConfigError(AntreanError, ValueError):
    """The config file is missing, unreadable or invalid."""


class ScheduleRejected(AntreanError, ValueError):
    """A schedule document failed verification; the cache was not touched."""


class KeyFileError(AntreanError, ValueError):
    """A signing key file is missing, malformed or would be overwritten."""


class StoreError(AntreanError, RuntimeError):
    """The database cannot be opened, migrated or written."""


class QueueError(AntreanError, ValueError):
    """A queue operation does not apply (unknown counter, nothing called yet, ...)."""


class OutboxError(AntreanError, LookupError):
    """An outbox operation names events that are not in the state it needs."""


class StoreClosed(StoreError):
    """The store was used after ``close()``."""
