"""Several readers on one appliance: two real pseudo-terminal scanners and a desk reader feed
one queue through the real scanner service; one reader failing never stops the others.

The desk reader is a keyboard-kind keypad typed through a real uinput device where the kernel
offers /dev/uinput, and the stdin kind on a real pipe everywhere (this machine has no uinput:
the keyboard variant is skipped there, and a keyboard-kind reader whose device is missing is
what the failure test runs instead).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

import pytest
from conftest import write_config
from test_scanner_service import WAIT, Running, query, today_schedule, wait_for
from test_sync_harness import DEVICE, TOKEN, central  # noqa: F401 - the fixture

from appliance.config import load_config
from appliance.notify import SdNotify
from appliance.readers import heartbeat_scanner
from appliance.status import collect_status, format_status
from appliance.store import Store
from devtools.virtual_serial import VirtualSerialScanner

ENTRANCE = [f"EN{i:06d}" for i in range(15)]
SIDE = [f"SD{i:06d}" for i in range(15)]
DESK = [f"9{i:07d}" for i in range(5)]          # a numeric keypad types digits only
HAS_UINPUT = os.access("/dev/uinput", os.W_OK)


def readers_config(tmp_path, desk: str, extra: str = "", codes=ENTRANCE + SIDE + DESK):
    text = (f'[[scanner]]\nname = "entrance"\nkind = "serial"\n'
            f'port = "{tmp_path / "usb-ENTRANCE-if00"}"\n'
            f'[[scanner]]\nname = "side-door"\nkind = "serial"\n'
            f'port = "{tmp_path / "usb-SIDE-if00"}"\n' + desk + extra)
    cfg = load_config(write_config(tmp_path / "antrean.toml", tmp_path / "antrean.db", text))
    today_schedule(cfg, codes)
    return cfg


def reader_states(cfg) -> dict[str, dict]:
    rows = query(cfg, "SELECT value FROM kv WHERE key = 'scanner.readers'")
    return {r["name"]: r for r in json.loads(rows[0][0])} if rows else {}


def connected(cfg, *names) -> bool:
    states = reader_states(cfg)
    return all(states.get(n, {}).get("connected") for n in names)


def checkins(cfg) -> list[tuple]:
    return query(cfg, "SELECT booking_code, ticket, reader, verdict FROM scans ORDER BY id")


def write_codes(scanner: VirtualSerialScanner, codes) -> None:
    for code in codes:
        scanner.write(code.encode() + b"\r\n")


class KeypadDesk:
    """The desk's numeric keypad: a real uinput keyboard typing digits and keypad Enter."""

    def __init__(self):
        from evdev import UInput, ecodes

        self.ecodes = ecodes
        self.ui = UInput({ecodes.EV_KEY: list(range(1, 120))}, name="antrean-test-keypad")
        wait_for(lambda: os.path.exists(self.ui.device.path), "the keypad's event node")
        self.path = self.ui.device.path

    def type(self, codes) -> None:
        e = self.ecodes
        for code in codes:
            keys = [getattr(e, f"KEY_KP{c}") for c in code] + [e.KEY_KPENTER]
            for key in keys:
                for value in (1, 0):
                    self.ui.write(e.EV_KEY, key, value)
                    self.ui.syn()

    def close(self) -> None:
        self.ui.close()


class PipeDesk:
    """The desk reader as the stdin kind: codes typed into a real pipe."""

    def __init__(self):
        self.read_end, self.write_end = os.pipe()

    def type(self, codes) -> None:
        os.write(self.write_end, b"".join(c.encode() + b"\n" for c in codes))

    def close(self) -> None:
        for fd in (self.write_end, self.read_end):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture(params=["stdin", pytest.param("keyboard", marks=pytest.mark.skipif(
    not HAS_UINPUT, reason="no writable /dev/uinput: the keyboard-kind desk needs the kernel's "
    "uinput; the stdin kind stands in"))])
def desk(request):
    made = KeypadDesk() if request.param == "keyboard" else PipeDesk()
    made.kind = request.param
    yield made
    made.close()


def desk_table(desk) -> str:
    if desk.kind == "keyboard":
        return f'[[scanner]]\nname = "desk"\nkind = "keyboard"\ndevice = "{desk.path}"\n'
    return '[[scanner]]\nname = "desk"\nkind = "stdin"\n'


def test_concurrent_scans_from_three_readers_get_distinct_numbers_and_their_names(
        tmp_path, desk):
    cfg = readers_config(tmp_path, desk_table(desk))
    stdin_fd = getattr(desk, "read_end", None)
    with VirtualSerialScanner(cfg.readers[0].port) as entrance, \
            VirtualSerialScanner(cfg.readers[1].port) as side, \
            Running(cfg, stdin_fd=stdin_fd):
        wait_for(lambda: connected(cfg, "entrance", "side-door", "desk"), "all three readers")
        running = {t.name for t in threading.enumerate()}
        assert {"scanner-entrance", "scanner-side-door", "scanner-desk"} <= running
        start = threading.Barrier(3)

        def burst(send, codes):
            start.wait(timeout=WAIT)
            send(codes)

        threads = [threading.Thread(target=burst, args=(lambda c: write_codes(entrance, c),
                                                        ENTRANCE)),
                   threading.Thread(target=burst, args=(lambda c: write_codes(side, c), SIDE)),
                   threading.Thread(target=burst, args=(desk.type, DESK))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=WAIT)
        total = len(ENTRANCE) + len(SIDE) + len(DESK)
        wait_for(lambda: len(checkins(cfg)) >= total, "every scan judged")

        status = collect_status(cfg)
        text = format_status(status)

    rows = checkins(cfg)
    assert len(rows) == total and {v for *_, v in rows} == {"ok"}       # none lost, none twice
    tickets = [t for _, t, _, _ in rows]
    assert sorted(tickets) == [f"A{n:03d}" for n in range(1, total + 1)]   # distinct, no gaps
    where = {code: reader for code, _, reader, _ in rows}
    assert where == {**dict.fromkeys(ENTRANCE, "entrance"), **dict.fromkeys(SIDE, "side-door"),
                     **dict.fromkeys(DESK, "desk")}
    # Each reader's codes were judged in the order that reader sent them.
    for codes in (ENTRANCE, SIDE, DESK):
        assert [c for c, *_ in rows if c in codes] == codes
    events = [json.loads(b) for (b,) in query(cfg, "SELECT body FROM outbox ORDER BY seq")]
    assert {e["booking_code"]: e["reader"] for e in events if e["type"] == "checkin"} == where

    assert [(r["name"], r["kind"], r["connected"]) for r in status["scanner"]["readers"]] == [
        ("entrance", "serial", True), ("side-door", "serial", True), ("desk", desk.kind, True)]
    assert status["scanner"]["connected"] is True and status["scanner"]["kind"] == "serial"
    assert "reader   entrance (serial): connected" in text
    assert f"reader   desk ({desk.kind}): connected" in text


def test_an_unplugged_reader_and_one_that_cannot_open_never_stop_the_others(tmp_path):
    missing = tmp_path / "usb-KEYPAD-event-kbd"
    cfg = readers_config(tmp_path, f'[[scanner]]\nname = "keypad"\nkind = "keyboard"\n'
                                   f'device = "{missing}"\n'
                                   # its frames folder is missing
                                   f'[[scanner]]\nname = "camera"\nkind = "camera"\n'
                                   f'frames_dir = "{tmp_path / "no-frames"}"\n')
    notify_addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_addr)
    sock.settimeout(WAIT)
    notify = SdNotify({"NOTIFY_SOCKET": notify_addr})
    try:
        with VirtualSerialScanner(cfg.readers[0].port) as entrance, \
                VirtualSerialScanner(cfg.readers[1].port) as side, \
                Running(cfg, notify=notify):
            # READY although the keypad is missing: its state is per reader.
            sent = sock.recv(4096).decode()
            while "READY=1" not in sent:
                sent = sock.recv(4096).decode()
            assert "keypad (keyboard)" in sent and "entrance (serial)" in sent
            wait_for(lambda: connected(cfg, "entrance", "side-door"), "both serial readers")
            wait_for(lambda: "cannot be opened" in reader_states(cfg)["keypad"]["detail"],
                     "the keypad reported missing")
            assert reader_states(cfg)["keypad"]["connected"] is False
            wait_for(lambda: "does not exist" in reader_states(cfg)["camera"]["detail"],
                     "the camera reported its missing frames")
            write_codes(entrance, ENTRANCE[:2])
            write_codes(side, SIDE[:2])
            wait_for(lambda: len(checkins(cfg)) == 4, "scans from both serial readers")

            entrance.unplug()
            wait_for(lambda: reader_states(cfg)["entrance"]["connected"] is False,
                     "the entrance reader reported unplugged")
            state, detail = query(cfg, "SELECT state, detail FROM service_health"
                                       " WHERE service = 'scanner'")[0]
            assert state == "degraded" and "reader entrance:" in detail \
                and "reader keypad:" in detail and "reader camera:" in detail \
                and "reader side-door" not in detail
            status = collect_status(cfg)
            assert status["scanner"]["connected"] is False
            assert {r["name"]: r["connected"] for r in status["scanner"]["readers"]} == {
                "entrance": False, "side-door": True, "keypad": False, "camera": False}
            text = format_status(status)
            assert "reader   entrance (serial): DISCONNECTED" in text
            assert "reader   side-door (serial): connected" in text

            write_codes(side, SIDE[2:6])               # the side door keeps checking in
            wait_for(lambda: len(checkins(cfg)) == 8, "the side door's scans")

            entrance.replug()
            wait_for(lambda: reader_states(cfg)["entrance"]["connected"], "entrance back")
            write_codes(entrance, ENTRANCE[2:4])
            wait_for(lambda: len(checkins(cfg)) == 10, "the entrance's scans after replug")
    finally:
        sock.close()
    rows = checkins(cfg)
    assert {v for *_, v in rows} == {"ok"}
    assert [r for c, _, r, _ in rows if c in SIDE] == ["side-door"] * 6
    assert [r for c, _, r, _ in rows if c in ENTRANCE] == ["entrance"] * 4
    stopped = reader_states(cfg)
    assert not any(r["connected"] for r in stopped.values())     # the service stopped


def test_a_reader_that_cannot_even_be_built_leaves_the_others_running(tmp_path, monkeypatch):
    """evdev not installed: the keypad reader is never built; the entrance checks in."""
    monkeypatch.setitem(sys.modules, "evdev", None)          # as if the package were absent
    cfg = readers_config(tmp_path, '[[scanner]]\nname = "keypad"\nkind = "keyboard"\n'
                                   'device = "/dev/input/by-id/usb-KEYPAD-event-kbd"\n')
    with VirtualSerialScanner(cfg.readers[0].port) as entrance, Running(cfg) as service:
        wait_for(lambda: connected(cfg, "entrance"), "the entrance reader")
        assert service.readers["keypad"].backend is None
        keypad = reader_states(cfg)["keypad"]
        assert not keypad["connected"] and "needs evdev" in keypad["detail"]
        write_codes(entrance, ENTRANCE[:1])
        wait_for(lambda: len(checkins(cfg)) == 1, "the entrance's scan")
        detail = query(cfg, "SELECT detail FROM service_health WHERE service = 'scanner'")[0][0]
        assert "reader keypad: the keyboard scanner needs evdev" in detail
    assert checkins(cfg)[0][1:] == ("A001", "entrance", "ok")


def test_unreadable_runs_are_counted_per_reader(tmp_path):
    """Two noisy readers at once: one row and one count per reader, not a row per scan."""
    cfg = readers_config(tmp_path, "")
    with VirtualSerialScanner(cfg.readers[0].port) as entrance, \
            VirtualSerialScanner(cfg.readers[1].port) as side, Running(cfg):
        wait_for(lambda: connected(cfg, "entrance", "side-door"), "both readers")
        for _ in range(20):
            entrance.write(b"garbage!\r\n")
            side.write(b"noise??\r\n")
        wait_for(lambda: query(cfg, "SELECT COALESCE(SUM(count), 0) FROM scans")[0][0] == 40,
                 "every unreadable scan judged")
        write_codes(side, SIDE[:1])                    # a good scan ends both runs
        wait_for(lambda: any(v == "ok" for *_, v in checkins(cfg)), "the good scan")
    runs = query(cfg, "SELECT reader, count FROM scans WHERE verdict = 'unreadable'")
    assert sorted(runs) == [("entrance", 20), ("side-door", 20)]
    events = [json.loads(b) for (b,) in query(cfg, "SELECT body FROM outbox")]
    told = {}
    for e in events:
        if e["type"] == "scan_rejected":
            told[e["reader"]] = told.get(e["reader"], 0) + e.get("count", 1)
    assert told == {"entrance": 20, "side-door": 20}


def test_reader_names_reach_the_reference_server(tmp_path, central):  # noqa: F811
    from sync.service import SyncService

    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    extra = (f'[server]\nurl = "{central.url}"\ndevice_id = "{DEVICE}"\n'
             f'token_file = "{token}"\n')
    cfg = readers_config(tmp_path, "", extra)
    with VirtualSerialScanner(cfg.readers[0].port) as entrance, \
            VirtualSerialScanner(cfg.readers[1].port) as side, Running(cfg):
        wait_for(lambda: connected(cfg, "entrance", "side-door"), "both readers")
        write_codes(entrance, ENTRANCE[:1])
        write_codes(side, [SIDE[0], "not a code"])
        wait_for(lambda: len(checkins(cfg)) == 3, "three scans")
        side.unplug()
        wait_for(lambda: not reader_states(cfg)["side-door"]["connected"], "side door gone")
        sync = SyncService(cfg, use_stream=False, backoff_base_s=0.05, backoff_cap_s=0.2)
        try:
            assert sync.upload_round()[0] == "done"
            assert sync.heartbeat() is True
        finally:
            sync.close()
    received = central.admin("GET", f"/_admin/events?device={DEVICE}")["events"]
    assert sorted((e["type"], e.get("booking_code"), e["reader"]) for e in received) == [
        ("checkin", ENTRANCE[0], "entrance"), ("checkin", SIDE[0], "side-door"),
        ("scan_rejected", None, "side-door")]
    beat = central.admin("GET", "/_admin/state")["heartbeats"][DEVICE]
    assert beat["scanner"] == {"kind": "serial", "connected": False, "readers": [
        {"name": "entrance", "kind": "serial", "connected": True},
        {"name": "side-door", "kind": "serial", "connected": False}]}


def test_the_reference_server_refuses_a_reader_that_is_no_name(central):  # noqa: F811
    at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    base = {"type": "checkin", "at": at, "booking_code": "K7Q2M9XA", "ticket": "A001",
            "service": "A", "offline": False}
    events = [dict(base, id="ok-1", reader="desk"), dict(base, id="ok-2"),
              dict(base, id="bad-1", reader=7), dict(base, id="bad-2", reader="Pintu Masuk")]
    import requests

    answer = requests.post(f"{central.url}/devices/{DEVICE}/events", json={"events": events},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=WAIT).json()
    status = {r["id"]: r["status"] for r in answer["results"]}
    assert status == {"ok-1": "accepted", "ok-2": "accepted", "bad-1": "rejected",
                      "bad-2": "rejected"}
    reasons = [r["reason"] for r in answer["results"] if r["status"] == "rejected"]
    assert all("reader must be a reader name" in r for r in reasons)


def test_the_heartbeat_without_a_running_service_says_disconnected(tmp_path):
    cfg = readers_config(tmp_path, "")
    with Store(cfg.storage.path) as store:
        assert heartbeat_scanner(cfg, store) == {"kind": "serial", "connected": False,
                                                 "readers": [
            {"name": "entrance", "kind": "serial", "connected": False},
            {"name": "side-door", "kind": "serial", "connected": False}]}
