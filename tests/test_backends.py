"""The scanner backend registry: one table of kinds that the config, the service and the drivers
agree on, with each driver imported only when its kind is chosen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_config

from appliance.backends import NO_SCANNER, SCANNER_KINDS, SCANNERS, BackendRegistry
from appliance.config import load_config
from appliance.errors import ConfigError
from appliance.readers import build_reader
from drivers.backend import ScannerBackend

REPO = Path(__file__).resolve().parents[1]


def test_every_registered_kind_is_a_backend_that_names_itself_so():
    assert SCANNERS.kinds == ("serial", "camera", "keyboard", "stdin")
    for kind in SCANNERS.kinds:
        cls = SCANNERS.load(kind)
        assert issubclass(cls, ScannerBackend) and cls.kind == kind
        assert cls.from_config.__func__ is not ScannerBackend.from_config.__func__, kind


def test_the_config_accepts_exactly_the_registered_kinds(tmp_path):
    for kind in SCANNER_KINDS:
        device = 'device = "/dev/input/event0"\n' if kind == "keyboard" else ""
        path = write_config(tmp_path / f"{kind}.toml", tmp_path / "antrean.db",
                            f'[scanner]\nkind = "{kind}"\n{device}')
        assert load_config(path).scanner.kind == kind
    path = write_config(tmp_path / "bad.toml", tmp_path / "antrean.db",
                        '[scanner]\nkind = "nfc"\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (f"{path}: scanner.kind is 'nfc'; allowed values: 'serial', "
                            "'camera', 'keyboard', 'stdin', 'none'")


def test_building_a_kind_uses_its_config_section(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    path = write_config(tmp_path / "antrean.toml", tmp_path / "antrean.db",
                        f'[scanner]\nkind = "camera"\nframes_dir = "{frames}"\ncamera_fps = 7\n'
                        'decoder = "pyzbar"\nrepeat_seconds = 9.5\n')
    config = load_config(path)
    cam = build_reader(config.scanner, on_payload=print, on_state=None)
    assert type(cam).__name__ == "CameraScanner"
    assert (cam.frames.fps, cam.decoder.name, cam.sightings.repeat_seconds) == (7, "pyzbar", 9.5)
    cam.close()

    serial_cfg = load_config(write_config(
        tmp_path / "serial.toml", tmp_path / "antrean.db",
        '[scanner]\nkind = "serial"\nport = "/dev/ttyNONE"\nbaudrate = 19200\n'))
    ser = build_reader(serial_cfg.scanner, on_payload=print, on_state=None)
    assert (type(ser).__name__, ser.port, ser.baudrate) == ("SerialScanner", "/dev/ttyNONE",
                                                            19200)
    none_cfg = load_config(write_config(tmp_path / "none.toml", tmp_path / "antrean.db",
                                        f'[scanner]\nkind = "{NO_SCANNER}"\n'))
    assert none_cfg.readers == ()


class EchoScanner(ScannerBackend):
    """A reader kind defined outside drivers/: one class, one registration."""

    kind = "echo"

    def __init__(self, words, *, on_payload, on_state=None):
        super().__init__(on_payload, on_state)
        self.words = words

    @classmethod
    def from_config(cls, scanner, *, on_payload, on_state=None, stdin_fd=None):
        return cls(scanner.words, on_payload=on_payload, on_state=on_state)

    def _run(self):
        self._set_state(True, "echo")
        for word in self.words:
            self._emit(word.encode())
        self.finished = True


def test_a_new_kind_is_one_class_and_one_registration():
    registry = BackendRegistry("scanner", {"echo": f"{__name__}:EchoScanner"})
    section = type("Section", (), {"words": ["K7Q2M9XA", "B3C4D5E6"]})()
    got = []
    backend = registry.build("echo", section, on_payload=got.append, on_state=None)
    with backend:
        backend._thread.join(5)
    assert got == [b"K7Q2M9XA", b"B3C4D5E6"] and backend.finished
    with pytest.raises(ConfigError, match="scanner.kind 'nfc' is not a known scanner; "
                                          "known kinds: echo"):
        registry.load("nfc")


def test_only_the_chosen_kind_is_imported(tmp_path):
    """The config check needs no driver; building ``stdin`` imports its module alone."""
    path = write_config(tmp_path / "antrean.toml", tmp_path / "antrean.db",
                        '[scanner]\nkind = "stdin"\n')
    code = (
        "import json, sys\n"
        "from appliance.config import load_config\n"
        "from appliance.backends import SCANNERS\n"
        f"config = load_config({str(path)!r})\n"
        "before = sorted(m for m in sys.modules if m.startswith('drivers'))\n"
        "SCANNERS.build(config.scanner.kind, config.scanner, on_payload=print).close()\n"
        "after = sorted(m for m in sys.modules if m.startswith(('drivers', 'evdev', "
        "'picamera2', 'serial', 'zxingcpp', 'pyzbar', 'numpy')))\n"
        "print(json.dumps([before, after]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=60, check=True)
    before, after = json.loads(out.stdout)
    assert before == []
    assert after == ["drivers", "drivers.backend", "drivers.errors", "drivers.line_framer",
                     "drivers.stdin_scanner"]
