"""The sync settings the config refuses: a server URL that would send the token in clear."""

from __future__ import annotations

import json

import pytest
from test_cli import antrean
from test_config import BASE, load

from appliance.errors import ConfigError


@pytest.mark.parametrize("url", [
    "http://antrean.example.go.id/api/v1", "http://10.0.0.5:8080", "HTTP://192.168.1.10/",
    "http://127.0.0.1.nip.io/api", "http://localhost.example.com/", "http://[::2]/",
    "http://[::ffff:127.0.0.1]/", "http://0.0.0.0:8080"])
def test_plain_http_to_another_machine_is_refused(tmp_path, url):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, BASE + f'[server]\nurl = "{url}"\n')
    message = str(e.value)
    assert "server.url" in message and str(tmp_path / "c.toml") in message
    assert "in clear" in message and "https://" in message and "\n" not in message


@pytest.mark.parametrize("url", [
    "https://antrean.example.go.id/api/v1", "http://127.0.0.1:8080", "http://127.5.6.7/x",
    "http://[::1]:8080/api", "http://localhost:8080", "http://LOCALHOST/", ""])
def test_tls_or_loopback_is_accepted(tmp_path, url):
    cfg, _ = load(tmp_path, BASE + f'[server]\nurl = "{url}"\n')
    assert cfg.server.url == url


def test_doctor_says_why_plain_http_is_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(BASE + '[server]\nurl = "http://central.example.go.id/api/v1"\n')
    proc = antrean("--config", path, "doctor", "--json", check=False)
    assert proc.returncode == 1
    config = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}["config"]
    assert config["level"] == "fail"
    assert "server.url" in config["detail"] and "in clear" in config["detail"]
