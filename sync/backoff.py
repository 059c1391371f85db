"""Capped exponential backoff with full jitter, honouring the server's ``Retry-After``.

Jitter spreads a hundred lobbies that lost the network together, so they do not all come
back in the same second and knock the server over again.

Example::

    >>> b = Backoff(base_s=1.0, cap_s=60.0, rng=lambda lo, hi: hi)
    >>> b.failed(), b.failed(), b.failed(retry_after=30.0)
    (1.0, 2.0, 30.0)
    >>> b.succeeded(); b.failures
    0
"""

from __future__ import annotations

import random
from collections.abc import Callable

MAX_RETRY_AFTER_S = 3600.0
# 2 ** 62 seconds is far past any cap; beyond it ``base * 2 ** n`` would overflow a float
# (after about 1,025 failures: a long weekend with the router off).
MAX_EXPONENT = 62


class Backoff:
    """How long to wait after the n-th consecutive failure."""

    def __init__(self, base_s: float = 1.0, cap_s: float = 300.0,
                 rng: Callable[[float, float], float] = random.uniform):
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0
        self._rng = rng

    def failed(self, retry_after: float | None = None) -> float:
        """Count a failure; returns the delay before the next try, in seconds."""
        self.failures += 1
        exponent = min(self.failures - 1, MAX_EXPONENT)
        ceiling = min(self.cap_s, self.base_s * 2.0 ** exponent)
        delay = self._rng(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        return delay

    def succeeded(self) -> None:
        self.failures = 0
