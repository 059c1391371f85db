"""Keyboard-wedge scanners and keypads: real evdev InputEvents through the key state machine."""

import os
import queue
import time

import pytest

evdev = pytest.importorskip("evdev")
from evdev import InputEvent, ecodes  # noqa: E402

from drivers.keyboard_scanner import KeyboardScanner, KeyLineReader, KeyTranslator  # noqa: E402

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CHAR_KEYS = {**{c: getattr(ecodes, f"KEY_{c}") for c in _LETTERS + "0123456789"},
              **{c.lower(): getattr(ecodes, f"KEY_{c}") for c in _LETTERS},
              ".": ecodes.KEY_DOT, "-": ecodes.KEY_MINUS, "_": ecodes.KEY_MINUS,
              "]": ecodes.KEY_RIGHTBRACE}


def key(code, value, t=0.0):
    return InputEvent(int(t), int((t % 1) * 1e6), ecodes.EV_KEY, code, value)


def typed(text):
    """The events a wedge scanner sends for ``text`` + Enter (with SYN reports between)."""
    events = []
    for ch in text:
        code = _CHAR_KEYS[ch]
        shift = ch.isupper() or ch == "_"
        if shift:
            events.append(key(ecodes.KEY_LEFTSHIFT, 1))
        events += [key(code, 1), InputEvent(0, 0, ecodes.EV_SYN, 0, 0), key(code, 0)]
        if shift:
            events.append(key(ecodes.KEY_LEFTSHIFT, 0))
    return events + [key(ecodes.KEY_ENTER, 1), key(ecodes.KEY_ENTER, 0)]


def read_all(events, reader=None, now=0.0):
    reader = reader or KeyLineReader(timeout_s=20.0)
    return [line for e in events for line in reader.feed(e, now)]


def test_wedge_scanner_codes_with_shift():
    signed = "AT1.k2026a.eyJiIjoiSzdR_-x.q3Mz-_Yw"
    assert read_all(typed("K7Q2M9XA") + typed(signed)) == [b"K7Q2M9XA", signed.encode()]


def test_aim_prefix_is_stripped():
    assert read_all(typed("]Q1K7Q2M9XA")) == [b"K7Q2M9XA"]


def test_caps_lock_inverts_letters():
    t = KeyTranslator()
    t.feed(key(ecodes.KEY_CAPSLOCK, 1))
    t.feed(key(ecodes.KEY_CAPSLOCK, 0))
    assert t.feed(key(ecodes.KEY_K, 1)) == b"K"
    t.feed(key(ecodes.KEY_LEFTSHIFT, 1))
    assert t.feed(key(ecodes.KEY_K, 1)) == b"k"


def test_numeric_keypad_with_backspace_and_keypad_enter():
    keys = [ecodes.KEY_KP1, ecodes.KEY_KP2, ecodes.KEY_KP9, ecodes.KEY_BACKSPACE,
            ecodes.KEY_KP3, ecodes.KEY_KPENTER]
    events = [e for k in keys for e in (key(k, 1), key(k, 0))]
    assert read_all(events) == [b"123"]


def test_key_repeat_types_again_and_key_release_does_not():
    t = KeyTranslator()
    assert t.feed(key(ecodes.KEY_KP7, 1)) == b"7"
    assert t.feed(key(ecodes.KEY_KP7, 2)) == b"7"
    assert t.feed(key(ecodes.KEY_KP7, 0)) == b""
    assert t.feed(InputEvent(0, 0, ecodes.EV_MSC, 4, 458783)) == b""


def test_half_typed_code_is_dropped_after_the_timeout():
    reader = KeyLineReader(timeout_s=20.0)
    half = [e for k in (ecodes.KEY_KP1, ecodes.KEY_KP2) for e in (key(k, 1), key(k, 0))]
    assert read_all(half, reader, now=100.0) == []
    assert reader.partial == b"12"
    assert reader.expire(115.0) is False          # still within the timeout
    assert reader.expire(121.0) is True
    assert reader.partial == b""
    # or, with no idle tick, the next key after the timeout starts a fresh code
    read_all(half, reader, now=200.0)
    assert read_all(typed("K7Q2M9XA"), reader, now=230.0) == [b"K7Q2M9XA"]


def test_escape_clears_and_empty_enter_is_nothing():
    events = [key(ecodes.KEY_KP5, 1), key(ecodes.KEY_ESC, 1),
              key(ecodes.KEY_KPENTER, 1)]
    assert read_all(events) == []


def test_missing_device_is_a_visible_state(tmp_path):
    states = queue.Queue()
    kb = KeyboardScanner(str(tmp_path / "usb-SCANNER-event-kbd"), on_payload=print,
                         on_state=lambda c, d: states.put((c, d)), retry_s=0.05)
    with kb:
        connected, detail = states.get(timeout=5)
    assert connected is False and "cannot be opened" in detail


@pytest.mark.skipif(not os.access("/dev/uinput", os.W_OK), reason="no writable /dev/uinput")
def test_virtual_uinput_keyboard_end_to_end():
    from evdev import UInput

    got = queue.Queue()
    with UInput({ecodes.EV_KEY: list(range(1, 120))}, name="antrean-test-wedge") as ui:
        time.sleep(0.2)  # udev creates the event node
        kb = KeyboardScanner(ui.device.path, on_payload=got.put)
        with kb:
            time.sleep(0.2)
            for e in typed("K7Q2M9XA"):
                if e.type == ecodes.EV_KEY:
                    ui.write(ecodes.EV_KEY, e.code, e.value)
                    ui.syn()
            assert got.get(timeout=5) == b"K7Q2M9XA"
