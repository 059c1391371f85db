"""The shared service loop: stopping from a signal handler must never wait for a lock."""

from __future__ import annotations

import queue
import signal
import threading

from appliance.reactor import Reactor

WAIT = 10.0


def handler_runs_holding(lock, reactor: Reactor) -> bool:
    """Run the SIGTERM handler while ``lock`` is held by the same thread, as when the signal
    arrives inside a wait that holds it; True if the handler returned."""
    handled = threading.Event()

    def inside_the_wait():
        with lock:
            reactor.request_stop(signal.SIGTERM, None)
        handled.set()

    threading.Thread(target=inside_the_wait, daemon=True).start()
    return handled.wait(WAIT)


def test_a_stop_requested_inside_the_stop_events_own_wait_returns_and_stops():
    reactor = Reactor()
    assert handler_runs_holding(reactor.stop_event._cond, reactor), \
        "the handler waited forever for the stop event's lock"
    assert not reactor.stop_event.is_set()     # nothing set from inside the handler...
    assert reactor.stopped                     # ...the loop turns the request into the stop
    assert reactor.stop_event.is_set()


def test_wakers_run_from_the_handler_and_a_simple_queue_is_safe_there():
    reactor = Reactor()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    reactor.on_stop(lambda: inbox.put(("stop",)))
    assert handler_runs_holding(threading.Lock(), reactor)
    assert inbox.get(timeout=WAIT) == ("stop",)
    assert reactor.stopped
