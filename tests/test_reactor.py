"""The shared service loop: stopping from a signal handler must never wait for a lock."""

from __future__ import annotations

import queue
import threading

from conftest import handler_returns_holding

from appliance.reactor import Reactor

WAIT = 10.0


def test_a_stop_requested_inside_the_stop_events_own_wait_returns_and_stops():
    reactor = Reactor()
    assert handler_returns_holding(reactor.stop_event._cond, reactor.request_stop, WAIT), \
        "the handler waited forever for the stop event's lock"
    assert not reactor.stop_event.is_set()     # nothing set from inside the handler...
    assert reactor.stopped                     # ...the loop turns the request into the stop
    assert reactor.stop_event.is_set()


def test_wakers_run_from_the_handler_and_a_simple_queue_is_safe_there():
    reactor = Reactor()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    reactor.on_stop(lambda: inbox.put(("stop",)))
    assert handler_returns_holding(threading.Lock(), reactor.request_stop, WAIT)
    assert inbox.get(timeout=WAIT) == ("stop",)
    assert reactor.stopped
