"""The backoff stays a number between half the cap and the cap, however long the outage."""

from __future__ import annotations

from sync.backoff import Backoff

pytest_plugins = ("test_sync_harness",)   # the central and sync_config fixtures


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


def test_the_stream_survives_a_long_weekend_of_failures(sync_config, central):
    """The stream thread after 10,000 failed connects (the router off for days) keeps trying
    and connects when the server is back; the old uncapped exponent killed it here."""
    import queue
    import threading

    from test_sync_harness import wait_until

    from sync.service import PushStream

    central.admin("POST", "/_admin/faults", {"down": True, "endpoints": ["stream"]})
    backoff = Backoff(base_s=0.001, cap_s=0.05)
    backoff.failures = 10_000
    stop = threading.Event()
    stream = PushStream(sync_config, queue.SimpleQueue(), None, stop, silence_s=5,
                        backoff=backoff)
    stream.start()
    try:
        wait_until(lambda: backoff.failures >= 10_003, what="retries past 10,000 failures")
        assert stream.is_alive()
        central.admin("POST", "/_admin/faults", {"reset": True})
        wait_until(lambda: central.admin("GET", "/_admin/state")["streams"] >= 1,
                   what="the stream once the server is back")
    finally:
        stop.set()
        stream.interrupt()
        stream.join(5)
