"""``antrean display`` as a real process: snapshots at three sizes, one-line errors, the Pi's
driver check, and the service loop under systemd's notify protocol until SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pygame
import pytest
from test_display_world import Office

from display.service import DisplayError, choose_driver, open_display, parse_size

ENV = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}


def antrean(config_path, *args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "appliance.cli", "--config", str(config_path),
                           "display", *args], env=env or ENV, capture_output=True, text=True,
                          timeout=60, **kw)


@pytest.fixture
def office(tmp_path):
    o = Office(tmp_path)
    o.check_in(3)
    o.queue.call_next(1)
    yield o
    o.close()


def test_snapshot_at_each_size(office, tmp_path):
    for size in ("1920x1080", "1280x720", "1080x1920"):
        out = tmp_path / f"snap-{size}.png"
        done = antrean(office.config.path, "--snapshot", str(out), "--size", size)
        assert done.returncode == 0, done.stderr
        w, h = map(int, size.split("x"))
        assert pygame.image.load(str(out)).get_size() == (w, h)


def test_bad_size_and_folder_are_one_line_errors(office, tmp_path):
    bad = antrean(office.config.path, "--snapshot", str(tmp_path / "x.png"), "--size", "big")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "WIDTHxHEIGHT" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    nowhere = antrean(office.config.path, "--snapshot", str(tmp_path / "no" / "x.png"))
    assert nowhere.returncode != 0 and "does not exist" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


def test_size_parsing_and_driver_choice():
    assert parse_size("1080x1920") == (1080, 1920) and parse_size("auto") is None
    with pytest.raises(DisplayError):
        parse_size("100x100")
    assert choose_driver({}, on_pi=True) == "kmsdrm"
    assert choose_driver({}, on_pi=False) == "dummy"
    assert choose_driver({"DISPLAY": ":0"}, on_pi=False) is None
    assert choose_driver({"SDL_VIDEODRIVER": "x11"}, on_pi=True) == "x11"


def test_a_pi_without_kmsdrm_refuses_to_draw_into_nothing(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    with pytest.raises(DisplayError, match="not kmsdrm"):
        open_display((640, 480), on_pi=True)
    pygame.display.quit()


def test_service_runs_until_sigterm_with_sd_notify(office, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(30)
    env = {**ENV, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "200000"}
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "--config",
                             office.config.path, "display"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        messages = []
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(sock.recv(4096).decode())
        office.queue.call_next(2)                 # a live commit while the loop runs
        while "WATCHDOG=1" not in messages:
            messages.append(sock.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
