"""The config is strict: every mistake is one error naming the key and the file."""

import pytest
from conftest import KEY

from appliance.config import load_config
from appliance.errors import ConfigError
from appliance.wait_estimate import EstimateSettings

BASE = ('[office]\nid = "TRK"\ntimezone = "Asia/Makassar"\n[storage]\npath = "a.db"\n'
        f'[trust]\nkeys = {{ k2026a = "{KEY.public_b64}" }}\n')


def load(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return load_config(p), str(p)


def test_minimal_config_has_defaults_and_resolves_paths(tmp_path):
    cfg, path = load(tmp_path, BASE)
    assert cfg.checkin.early_minutes == 60 and cfg.checkin.late_minutes == 30
    assert cfg.display.names == "first" and cfg.scanner.kind == "none"
    assert cfg.storage.path == str(tmp_path / "a.db")
    assert cfg.trusted_keys == {"k2026a": KEY.public_raw}


@pytest.mark.parametrize("extra, words", [
    ("[checkin]\nearly_minuts = 5\n", ["checkin.early_minuts", "unknown key"]),
    ("[checkin]\nearly_minutes = \"5\"\n", ["checkin.early_minutes", "integer"]),
    ("[checkin]\nearly_minutes = -1\n", ["checkin.early_minutes", "between"]),
    ("[checkin]\nlate_minutes = true\n", ["checkin.late_minutes", "integer"]),
    ("[display]\nnames = \"initials\"\n", ["display.names", "allowed"]),
    ("[scanner]\nbaudrate = 9601\n", ["scanner.baudrate"]),
    ("[server]\nurl = \"ftp://x\"\n", ["server.url"]),
    ("[gpio]\nnext_pins = [5, 99]\n", ["gpio.next_pins"]),
    ("[bogus]\nx = 1\n", ["[bogus]", "unknown section"]),
    ("[estimate]\ndefault_minutes = 0\n", ["estimate.default_minutes", "between"]),
    ("[estimate]\nminutes = { a = 12 }\n", ["estimate.minutes", "'a'", "capital letters"]),
    ("[estimate]\nminutes = { A = \"12\" }\n", ["estimate.minutes", "number of minutes"]),
    ("[estimate]\nminutes = { A = true }\n", ["estimate.minutes", "number of minutes"]),
    ("[estimate]\nminutes = { A = 500 }\n", ["estimate.minutes", "between 0.5 and 240"]),
    ("[estimate]\nminutes = 12\n", ["estimate.minutes", "a table"]),
    ("[estimate]\nrecent_calls = 2\n", ["estimate.recent_calls", "between"]),
    ("[estimate]\nwindow = 60\n", ["estimate.window", "unknown key"]),
    ("[estimate]\nhistory_days = 61\n", ["estimate.history_days", "between 0 and 60"]),
    ("[estimate]\nidle_minutes = 20\nminutes = { B = 25 }\n",
     ["estimate.idle_minutes", "longest is 25", "break"]),
    ("[estimate]\nidle_minutes = 8\n", ["estimate.idle_minutes", "longest is 10"]),
])
def test_mistakes_name_key_and_file(tmp_path, extra, words):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, BASE + extra)
    message = str(e.value)
    assert str(tmp_path / "c.toml") in message
    for w in words:
        assert w in message
    assert "\n" not in message


def test_estimate_section_defaults_and_overrides(tmp_path):
    cfg, _ = load(tmp_path, BASE)
    est = cfg.estimate
    assert (est.default_minutes, est.minutes, est.recent_calls, est.idle_minutes) == (
        10.0, {}, 10, 30.0)
    assert (est.lateness_window_minutes, est.late_notice_minutes) == (60.0, 15.0)
    assert est.history_days == 10
    cfg, _ = load(tmp_path, BASE + "[estimate]\ndefault_minutes = 9\nminutes = { A = 12, "
                  "B = 7.5 }\nidle_minutes = 45\nlate_notice_minutes = 20\n")
    assert cfg.estimate.default_minutes == 9.0 and cfg.estimate.minutes == {"A": 12, "B": 7.5}
    assert cfg.estimate.idle_minutes == 45.0 and cfg.estimate.late_notice_minutes == 20.0
    cfg, _ = load(tmp_path, BASE + "[checkin]\nearly_minutes = 45\nlate_minutes = 20\n"
                  "[estimate]\nminutes = { A = 12 }\nhistory_days = 0\n")
    assert EstimateSettings.from_config(cfg) == EstimateSettings(
        minutes={"A": 12}, history_days=0, early_checkin_minutes=45.0,
        late_checkin_minutes=20.0)


def test_bad_timezone_and_office_and_key(tmp_path):
    with pytest.raises(ConfigError, match="office.timezone"):
        load(tmp_path, BASE.replace("Asia/Makassar", "Mars/Olympus"))
    with pytest.raises(ConfigError, match="office.id"):
        load(tmp_path, BASE.replace('"TRK"', '"trk lobby"'))
    with pytest.raises(ConfigError, match="trust.keys"):
        load(tmp_path, BASE.replace(KEY.public_b64, "c2hvcnQ="))


def test_missing_section_file_and_broken_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"\[trust\] is missing"):
        load(tmp_path, BASE.split("[trust]")[0])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path, "[office\n")


def test_example_config_differs_only_in_its_placeholder_key(tmp_path):
    from pathlib import Path

    text = (Path(__file__).parents[1] / "antrean.example.toml").read_text()
    with pytest.raises(ConfigError, match="trust.keys"):
        load(tmp_path, text)
    text = text.replace("REPLACE-WITH-BASE64-OF-THE-RAW-32-BYTE-PUBLIC-KEY=", KEY.public_b64)
    cfg, _ = load(tmp_path, text)
    assert cfg.scanner.kind == "serial" and cfg.server.device_id == "trk-lobby-1"


def test_device_links_stay_links(tmp_path):
    """A stable device name (udev's /dev/antrean-scanner, /dev/serial/by-id/...) must reach the
    drivers as the link, or a replugged device that came back as ttyACM1 is never found."""
    first, second = tmp_path / "ttyACM0", tmp_path / "ttyACM1"
    first.touch()
    second.touch()
    link = tmp_path / "antrean-scanner"
    link.symlink_to(first)
    cfg, _ = load(tmp_path, BASE + f'[scanner]\nkind = "serial"\nport = "{link}"\n'
                  '[printer]\nkind = "serial"\ndevice = "by-id/printer"\n')
    assert cfg.scanner.port == str(link)
    assert cfg.printer.device == str(tmp_path / "by-id/printer")


@pytest.mark.parametrize("extra, words", [
    ('[printer]\nkind = "usb"\n', ["printer.kind", "allowed"]),
    ('[printer]\nkind = "network"\n', ["printer.host", "network"]),
    ('[printer]\nkind = "serial"\n', ["printer.device", "serial"]),
    ('[printer]\nkind = "file"\nhost = "10.0.0.5"\n', ["printer.host", "printer.device"]),
    ('[printer]\nkind = "network"\nhost = "10.0.0.5"\ndevice = "/dev/usb/lp0"\n',
     ["printer.device", "printer.host"]),
    ('[printer]\nwidth = 57\n', ["printer.width", "58, 80"]),
    ('[printer]\nport = 0\n', ["printer.port", "between"]),
    ('[printer]\nhost = "printer at desk"\n', ["printer.host", "host name"]),
    ('[printer]\ntimeout_s = 60\n', ["printer.timeout_s", "between"]),
    ('[printer]\npaper = "thermal"\n', ["printer.paper", "unknown key"]),
])
def test_printer_mistakes_and_contradictions(tmp_path, extra, words):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, BASE + extra)
    for w in words:
        assert w in str(e.value)
    assert "\n" not in str(e.value)


def test_printer_defaults(tmp_path):
    cfg, _ = load(tmp_path, BASE)
    assert cfg.printer.kind == "none" and cfg.printer.width == 80
    cfg, _ = load(tmp_path, BASE + '[printer]\nkind = "file"\n')
    assert cfg.printer.device == "/dev/usb/lp0" and cfg.printer.status == "auto"
    cfg, _ = load(tmp_path, BASE + '[printer]\nkind = "network"\nhost = "192.168.1.50"\n')
    assert (cfg.printer.host, cfg.printer.port) == ("192.168.1.50", 9100)
# Settings that contradict each other, or that a part would refuse at start, are refused when
# the config is read: one line naming the key(s) and the file.
@pytest.mark.parametrize("extra, words", [
    ('[display]\nsize = "100x100"\n', ["display.size", "240 to 8192"]),
    ('[display]\nsize = "1920x9000"\n', ["display.size", "240 to 8192"]),
    ('[display]\nsize = "1920x1080 "\n', ["display.size", "WIDTHxHEIGHT"]),
    ("[gpio]\nenabled = true\nred_led = 17\n", ["gpio.green_led", "gpio.red_led", "pin 17"]),
    ("[gpio]\nenabled = true\nnext_pins = [5, 22]\n",
     ["gpio.buzzer", "gpio.next_pins[1]", "pin 22"]),
    ("[gpio]\nenabled = true\nnext_pins = [5, 6]\nrecall_pins = [6]\n",
     ["gpio.next_pins[1]", "gpio.recall_pins[0]", "pin 6"]),
    ("[gpio]\nenabled = true\nnext_pins = [5, 5]\n",
     ["gpio.next_pins[0]", "gpio.next_pins[1]", "pin 5"]),
    ('[scanner]\nkind = "serial"\nport = "/dev/ttyAMA0"\n[gpio]\nenabled = true\n'
     "next_pins = [14]\n", ["gpio.next_pins[0]", "scanner.port", "pin 14"]),
    ('[scanner]\nkind = "serial"\nport = ""\n', ["scanner.port", "scanner.kind"]),
    ('[scanner]\nkind = "keyboard"\n', ["scanner.device", "scanner.kind"]),
    ('[gpio]\nmock_panel = "panel"\n', ["gpio.mock_panel", "gpio.enabled"]),
])
def test_contradicting_settings_are_refused_when_read(tmp_path, extra, words):
    assert_one_error(tmp_path, BASE + extra, words)


def assert_one_error(tmp_path, text, words):
    """Loading ``text`` is refused by one line naming the file and every word."""
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    message = str(e.value)
    assert message.startswith(str(tmp_path / "c.toml") + ": ")
    for w in words:
        assert w in message, message
    assert "\n" not in message


def test_settings_that_only_look_alike_still_load(tmp_path):
    cfg, _ = load(tmp_path, BASE + '[display]\nsize = "240x8192"\n[gpio]\nnext_pins = [17]\n'
                  '[scanner]\nkind = "serial"\nport = "/dev/ttyAMA0"\n')
    assert cfg.display.size == "240x8192"       # the limits themselves are fine
    assert cfg.gpio.next_pins == [17]           # gpio disabled: its pins drive nothing


def test_every_part_checks_with_the_configs_own_definition(tmp_path):
    """The display's --size, its layout and its sound use the ranges config.py defines, and
    a size the config accepts is one the screen can lay out."""
    from appliance import config as cfgmod
    from display.layout import Layout
    from display.service import DisplayError, parse_size
    from display.sound import SETTINGS
    from drivers.decoder import BACKENDS

    lo, hi = cfgmod.SCREEN_SIDE
    for text in (f"{lo}x{lo}", f"{hi}x{lo}", "1920x1080"):
        load(tmp_path, BASE + f'[display]\nsize = "{text}"\n')
        Layout(*parse_size(text))
    for text in (f"{lo - 1}x{lo}", f"{lo}x{hi + 1}"):
        with pytest.raises(ConfigError):
            load(tmp_path, BASE + f'[display]\nsize = "{text}"\n')
        with pytest.raises(DisplayError) as e:
            parse_size(text)
        assert f"{lo} to {hi}" in str(e.value)
        with pytest.raises(ValueError):
            Layout(lo - 1, lo)
    assert cfgmod.SCHEMA["display"]["sound"].choices == SETTINGS
    assert cfgmod.SCHEMA["scanner"]["decoder"].choices == BACKENDS


# several readers: [[scanner]] ----------------------------------------------------------------

TWO_READERS = ('[[scanner]]\nname = "entrance"\nkind = "serial"\nport = "/dev/antrean-scanner"\n'
               '[[scanner]]\nname = "desk"\nkind = "keyboard"\n'
               'device = "/dev/input/by-id/usb-KEYPAD-event-kbd"\n')


def test_a_list_of_readers_keeps_order_names_and_first_as_scanner(tmp_path):
    cfg, _ = load(tmp_path, BASE + TWO_READERS)
    assert [(r.name, r.kind) for r in cfg.readers] == [("entrance", "serial"),
                                                       ("desk", "keyboard")]
    assert cfg.readers[1].device == "/dev/input/by-id/usb-KEYPAD-event-kbd"
    assert cfg.readers[1].keypad_timeout_s == 20.0          # the defaults apply per reader
    assert cfg.scanner is cfg.readers[0]                    # the one-reader view: the first


def test_the_single_scanner_table_is_one_reader_named_by_its_kind(tmp_path):
    cfg, _ = load(tmp_path, BASE + '[scanner]\nkind = "serial"\nport = "/dev/ttyUSB0"\n')
    assert [(r.name, r.kind, r.port) for r in cfg.readers] == [("serial", "serial",
                                                                "/dev/ttyUSB0")]
    none, _ = load(tmp_path, BASE)
    assert none.readers == () and none.scanner.kind == "none"


def test_unnamed_readers_get_unique_names_from_their_kind(tmp_path):
    cfg, _ = load(tmp_path, BASE + '[[scanner]]\nkind = "serial"\nport = "/dev/a"\n'
                  '[[scanner]]\nkind = "serial"\nport = "/dev/b"\n'
                  '[[scanner]]\nkind = "stdin"\n')
    assert [r.name for r in cfg.readers] == ["serial-1", "serial-2", "stdin"]


@pytest.mark.parametrize("extra, words", [
    ('[[scanner]]\nkind = "serial"\nport = "/dev/a"\n[[scanner]]\nkind = "serial"\n'
     'port = "/dev/a"\n', ["scanner[0].port", "scanner[1].port", "/dev/a", "one device"]),
    ('[[scanner]]\nkind = "keyboard"\ndevice = "/dev/input/event3"\n[[scanner]]\nname = "b"\n'
     'kind = "keyboard"\ndevice = "/dev/input/event3"\n',
     ["scanner[0].device", "scanner[1].device"]),
    ('[[scanner]]\nname = "desk"\nkind = "stdin"\n[[scanner]]\nname = "desk"\nkind = "serial"\n',
     ["scanner[0]", "scanner[1]", "'desk'", "scanner.name"]),
    ('[[scanner]]\nname = "serial-2"\nkind = "stdin"\n[[scanner]]\nkind = "serial"\n'
     'port = "/dev/a"\n[[scanner]]\nkind = "serial"\nport = "/dev/b"\n',
     ["scanner[0]", "scanner[2]", "'serial-2'"]),
    ('[[scanner]]\nkind = "stdin"\n[[scanner]]\nname = "two"\nkind = "stdin"\n',
     ["scanner[0]", "scanner[1]", "standard input"]),
    ('[[scanner]]\nkind = "camera"\n[[scanner]]\nname = "cam2"\nkind = "camera"\n',
     ["scanner[0].frames_dir", "scanner[1].frames_dir", "Pi camera"]),
    ('[[scanner]]\nkind = "none"\n[[scanner]]\nkind = "stdin"\n',
     ["scanner[0].kind", "none", "remove that [[scanner]] table"]),
    ('[[scanner]]\nkind = "stdin"\n[[scanner]]\nkind = "serial"\nbaud = 9600\n',
     ["unknown key scanner[1].baud"]),
    ('[[scanner]]\nkind = "stdin"\n[[scanner]]\nkind = "keyboard"\n',
     ["scanner[1].device", "scanner[1].kind", "keyboard"]),
    ('[[scanner]]\nname = "Pintu Masuk"\nkind = "stdin"\n',
     ["scanner[0].name", "'Pintu Masuk'", "lower-case"]),
    ('[[scanner]]\nname = 7\nkind = "stdin"\n', ["scanner[0].name", "a string"]),
    ('[[scanner]]\nkind = "stdin"\n[[scanner]]\nkind = "serial"\nport = "/dev/ttyAMA0"\n'
     "[gpio]\nenabled = true\nnext_pins = [15]\n",
     ["gpio.next_pins[0]", "scanner[1].port", "pin 15"]),
])
def test_reader_mistakes_and_contradictions_are_one_clear_error(tmp_path, extra, words):
    assert_one_error(tmp_path, BASE + extra, words)


@pytest.mark.parametrize("top, words", [
    ("scanner = []\n", ["[[scanner]]", "empty"]),
    ("scanner = [1]\n", ["scanner[0]", "must be a table"]),
    ("scanner = 1\n", ["[scanner]", "must be a table"]),
])
def test_a_scanner_key_that_is_no_table_is_refused(tmp_path, top, words):
    assert_one_error(tmp_path, top + BASE, words)


def test_a_bad_reader_list_is_one_line_from_the_cli(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "c.toml"
    path.write_text(BASE + '[[scanner]]\nkind = "serial"\nport = "/dev/a"\n'
                    '[[scanner]]\nkind = "serial"\nport = "/dev/a"\n')
    out = subprocess.run([sys.executable, "-m", "appliance.cli", "--config", str(path),
                          "status"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "scanner[1].port" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_examples_reader_list_loads_in_place_of_its_scanner_table(tmp_path):
    """antrean.example.toml's commented [[scanner]] block is a working two-reader config."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "antrean.example.toml").read_text()
    text = text.replace("REPLACE-WITH-BASE64-OF-THE-RAW-32-BYTE-PUBLIC-KEY=", KEY.public_b64)
    single = re.search(r"^\[scanner\]\n(?:[^\[\n#].*\n)+", text, re.M)
    listed = re.search(r"^# \[\[scanner\]\]\n(?:#.*\n)+", text, re.M)
    assert single and listed
    readers = "".join(line[2:] + "\n" for line in listed[0].splitlines())
    cfg, _ = load(tmp_path, text.replace(single[0], "").replace(listed[0], readers))
    assert [(r.name, r.kind) for r in cfg.readers] == [("entrance", "serial"),
                                                       ("desk", "keyboard")]
