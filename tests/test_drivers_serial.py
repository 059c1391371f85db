"""The serial backend through a real pseudo-terminal behind a by-id style symlink."""

import queue
import threading
import time

import pytest
import serial

from devtools.virtual_serial import VirtualSerialScanner
from drivers.line_framer import OverlongLine
from drivers.serial_scanner import SerialScanner

WAIT = 5.0  # generous upper bound for a thread hand-over; tests never wait this long if OK


class Recorder:
    """Collects what the backend reports, in order, for assertions."""

    def __init__(self):
        self.events = queue.Queue()

    def payload(self, data: bytes) -> None:
        self.events.put(("scan", data))

    def state(self, connected: bool, detail: str) -> None:
        self.events.put(("state", connected))

    def next(self):
        return self.events.get(timeout=WAIT)

    def assert_quiet(self):
        assert self.events.empty(), list(self.events.queue)


@pytest.fixture
def port(tmp_path):
    with VirtualSerialScanner(str(tmp_path / "usb-SCANNER-if00")) as v:
        yield v


@pytest.fixture
def scanner(port):
    rec = Recorder()
    # A long partial-line timeout: these tests pause mid-line on purpose.
    s = SerialScanner(port.path, 9600, on_payload=rec.payload, on_state=rec.state,
                      retry_s=0.05, max_length=64, partial_timeout_s=5.0)
    s.start()
    assert rec.next() == ("state", True)
    yield s, rec
    s.close()


def test_lines_with_every_terminator_and_aim_prefix(scanner, port):
    s, rec = scanner
    port.write(b"K7Q2M9XA\r\n]Q1B2C3D4E5\rAAAAAA\tBBBBBB\n")
    assert [rec.next() for _ in range(4)] == [
        ("scan", b"K7Q2M9XA"), ("scan", b"B2C3D4E5"), ("scan", b"AAAAAA"), ("scan", b"BBBBBB")]
    rec.assert_quiet()


def test_partial_line_is_completed_by_its_terminator_not_by_a_timeout(scanner, port):
    s, rec = scanner
    port.write(b"K7Q2")
    # Several read timeouts pass (poll_s = 0.2); the partial line must not come out.
    with pytest.raises(queue.Empty):
        rec.events.get(timeout=0.5)
    port.write(b"M9XA\r\n")
    assert rec.next() == ("scan", b"K7Q2M9XA")


def wait_until(predicate, what):
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_noise_without_a_line_end_is_dropped_after_a_silence(port):
    """Two stray bytes, then silence, then a good scan: the scan must arrive clean."""
    rec = Recorder()
    with SerialScanner(port.path, 9600, on_payload=rec.payload, on_state=rec.state) as s:
        assert rec.next() == ("state", True)
        port.write(b"\x13\x8a")
        wait_until(lambda: s.framer.dropped_stale == 1, "the stray bytes to be dropped")
        assert s.framer.partial == b""
        port.write(b"K7Q2M9XA\r\n")
        assert rec.next() == ("scan", b"K7Q2M9XA")
        rec.assert_quiet()


def test_waiting_for_the_service_is_not_silence_on_the_line(port):
    """Back-pressure: while the service holds the reader, bytes queue up; they are not stale."""
    entered, release = threading.Event(), threading.Event()
    got = queue.Queue()

    def slow_service(data: bytes) -> None:
        got.put(data)
        entered.set()
        release.wait(WAIT)          # the bounded inbox is full: the reader waits here

    with SerialScanner(port.path, 9600, on_payload=slow_service, partial_timeout_s=0.1) as s:
        wait_until(lambda: s.connected, "the port to open")
        port.write(b"AAAAAA\r\nK7Q2")
        assert entered.wait(WAIT)
        port.write(b"M9XA\r\n")
        time.sleep(0.5)             # the service holds the reader well past the 0.1 s timeout
        release.set()
        assert [got.get(timeout=WAIT), got.get(timeout=WAIT)] == [b"AAAAAA", b"K7Q2M9XA"]
        assert s.framer.dropped_stale == 0


def test_overlong_garbage_is_cut_and_the_next_line_survives(scanner, port):
    s, rec = scanner
    port.write(b"\x00\xff\x1b[2J" * 50_000 + b"\nK7Q2M9XA\n")
    kind, cut = rec.next()
    assert kind == "scan" and isinstance(cut, OverlongLine) and len(cut) == 64
    assert rec.next() == ("scan", b"K7Q2M9XA")
    assert s.framer.dropped_long == 1


def test_port_is_opened_exclusively(scanner, port):
    with pytest.raises(serial.SerialException):
        serial.Serial(port.path, 9600, exclusive=True)


def test_unplug_and_replug_at_the_same_path_reconnects(scanner, port):
    s, rec = scanner
    port.write(b"K7Q2")  # half a code when the cable is pulled: must be dropped
    port.unplug()
    assert rec.next() == ("state", False)
    assert not s.connected
    port.replug()
    assert rec.next() == ("state", True)
    port.write(b"M9XA\nK7Q2M9XA\n")
    assert rec.next() == ("scan", b"M9XA")
    assert rec.next() == ("scan", b"K7Q2M9XA")
    rec.assert_quiet()


def test_missing_device_is_reported_once_then_found(tmp_path):
    rec = Recorder()
    path = str(tmp_path / "usb-LATE-if00")
    s = SerialScanner(path, 9600, on_payload=rec.payload, on_state=rec.state, retry_s=0.05)
    with s:
        assert rec.next() == ("state", False)
        assert "cannot be opened" in s.detail
        with VirtualSerialScanner(path) as v:
            assert rec.next() == ("state", True)  # no repeated "disconnected" in between
            v.write(b"K7Q2M9XA\n")
            assert rec.next() == ("scan", b"K7Q2M9XA")
    assert s.closed
    s.close()  # twice is fine


def test_close_is_prompt_and_releases_the_port(port):
    rec = Recorder()
    s = SerialScanner(port.path, 9600, on_payload=rec.payload, on_state=rec.state)
    s.start()
    assert rec.next() == ("state", True)
    s.close()
    with serial.Serial(port.path, 9600, exclusive=True):
        pass
