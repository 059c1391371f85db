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
