"""``antrean doctor`` reports each check with what to fix, and fails on real faults."""

import json

from test_cli import antrean


def test_doctor_on_a_fresh_config(tmp_path, config_path):
    proc = antrean("--config", config_path, "doctor", "--json", check=False)
    data = json.loads(proc.stdout)
    levels = {c["name"]: c["level"] for c in data["checks"]}
    assert levels["config"] == "ok" and levels["trust keys"] == "ok"
    assert levels["database"] == "warn"  # not created yet
    assert levels["server"] == "warn"    # no server.url
    # This box has no DRM device: the screen check fails, so doctor exits 1.
    assert (proc.returncode == 0) == data["ok"]
    for c in data["checks"]:
        assert c["level"] == "ok" or c["fix"], c


def test_doctor_names_a_broken_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[office]\nid = 5\n")
    proc = antrean("--config", bad, "doctor", check=False)
    assert proc.returncode == 1
    assert "FAIL config" in proc.stdout and str(bad) in proc.stdout
    assert "Traceback" not in proc.stderr


def test_doctor_missing_serial_scanner_and_token(tmp_path, config_path):
    with open(config_path, "a") as f:
        f.write(f'[scanner]\nkind = "serial"\nport = "{tmp_path}/ttyNOPE"\n'
                f'[server]\nurl = "http://127.0.0.1:9"\ntoken_file = "{tmp_path}/token"\n')
    data = json.loads(antrean("--config", config_path, "doctor", "--json", check=False).stdout)
    by_name = {c["name"]: c for c in data["checks"]}
    assert by_name["scanner"]["level"] == "fail" and "ttyNOPE" in by_name["scanner"]["detail"]
    assert by_name["token"]["level"] == "fail" and "does not exist" in by_name["token"]["detail"]
    assert not data["ok"]
