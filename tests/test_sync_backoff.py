"""The backoff stays a number between half the cap and the cap, however long the outage."""

from __future__ import annotations

from sync.backoff import Backoff


def test_ten_thousand_consecutive_failures_stay_capped():
    """A long weekend with the router off: no OverflowError, every delay within the cap."""
    b = Backoff(base_s=1.0, cap_s=300.0)
    delays = [b.failed() for _ in range(10_000)]
    assert b.failures == 10_000
    assert all(0.5 <= d <= 300.0 for d in delays)
    assert all(150.0 <= d <= 300.0 for d in delays[9:])   # 2 ** 9 > 300: at the cap
    assert b.failed(retry_after=1e12) == 3600.0     # a huge Retry-After is capped too
    b.succeeded()
    assert b.failed() <= 1.0


def test_growth_until_the_cap():
    b = Backoff(base_s=1.0, cap_s=60.0, rng=lambda lo, hi: hi)
    assert [b.failed() for _ in range(8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
