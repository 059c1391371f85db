"""GPIO feedback and counter buttons on gpiozero's MockFactory."""

import queue

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from drivers.errors import DriverClosed
from drivers.gpio import PATTERNS, Blink, Gpio, Pattern

# The real patterns scaled down 20x so the blink threads finish in a few dozen milliseconds.
FAST = {name: Pattern(*(None if b is None else Blink(b.on_s / 20, b.off_s / 20, b.n)
                        for b in (p.green, p.red, p.buzzer)))
        for name, p in PATTERNS.items()}


@pytest.fixture
def factory():
    f = MockFactory()
    previous = Device.pin_factory
    Device.pin_factory = f
    yield f
    f.reset()
    Device.pin_factory = previous


@pytest.fixture
def gpio(factory):
    actions = queue.Queue()
    g = Gpio(actions, green_led=17, red_led=27, buzzer=22, next_pins=[5, 6],
             recall_pins=[13], bounce_ms=0, patterns=FAST)
    yield g, actions, factory
    g.close()


def finish(*devices):
    """Wait for background blinks to end (gpiozero's own blink thread)."""
    for d in devices:
        t = getattr(d, "_blink_thread", None)
        if t is not None:
            t.join(timeout=5)


def ons(pin) -> int:
    """How many times an output pin was switched on."""
    return sum(1 for s in pin.states if s.state)


def test_patterns_are_distinct_on_leds_and_buzzer(gpio):
    g, _, factory = gpio
    green, red, buzz = (factory.pin(n) for n in (17, 27, 22))
    seen = {}
    for name in ("accepted", "rejected", "error"):
        for pin in (green, red, buzz):
            pin.clear_states()
        g.show(name)
        finish(g.green, g.red, g.buzzer)
        assert not green.state and not red.state and not buzz.state  # all off afterwards
        seen[name] = (ons(green), ons(red), ons(buzz))
    assert seen == {"accepted": (1, 0, 1), "rejected": (0, 3, 2), "error": (0, 8, 1)}


def test_next_and_recall_buttons_queue_actions(gpio):
    g, actions, factory = gpio
    factory.pin(5).drive_low()      # pressed (pull-up: active low)
    factory.pin(5).drive_high()
    factory.pin(6).drive_low()
    factory.pin(13).drive_low()
    got = [actions.get(timeout=5) for _ in range(3)]
    assert got == [("next", 1), ("next", 2), ("recall", 1)]
    factory.pin(6).drive_high()     # a release is not a press
    assert actions.empty()


def test_bounce_time_comes_from_bounce_ms(factory):
    # MockPin stores but does not simulate bounce; the real pin drivers honour it.
    with Gpio(queue.Queue(), next_pins=[5], recall_pins=[6], bounce_ms=80, patterns=FAST):
        assert factory.pin(5).bounce == pytest.approx(0.08)
        assert factory.pin(6).bounce == pytest.approx(0.08)
    with Gpio(queue.Queue(), next_pins=[5], bounce_ms=0, patterns=FAST):
        assert factory.pin(5).bounce is None


def test_close_twice_and_use_after_close(gpio):
    g, _, factory = gpio
    g.close()
    g.close()
    assert g.closed
    with pytest.raises(DriverClosed):
        g.accepted()
    # the pins are free again: a new Gpio can claim them
    Gpio(queue.Queue(), next_pins=[5, 6], recall_pins=[13], patterns=FAST).close()


def test_from_config_section(factory):
    from appliance.config import parse_config

    cfg = parse_config({"office": {"id": "TRK", "timezone": "Asia/Makassar"},
                        "storage": {"path": "x.db"}, "trust": {"keys": {}},
                        "gpio": {"enabled": True, "next_pins": [5], "recall_pins": [6],
                                 "green_led": 20, "red_led": 21, "buzzer": 26}}, "t.toml")
    actions = queue.Queue()
    with Gpio.from_config(cfg.gpio, actions, patterns=FAST) as g:
        g.accepted()
        finish(g.green, g.buzzer)
        assert ons(factory.pin(20)) == 1 and ons(factory.pin(26)) == 1
        factory.pin(6).drive_low()
        assert actions.get(timeout=5) == ("recall", 1)
