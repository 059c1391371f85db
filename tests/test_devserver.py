"""The reference server itself: generated schedules, permanent de-duplication, its command."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import requests

from appliance.keys import verify_header
from devtools.demo_schedule import generate_schedule
from devtools.devserver import DevServer, main

AUTH = {"Authorization": "Bearer dev-token"}


def test_generated_schedule_is_believable_at_20000():
    doc = generate_schedule("TRK", "Kantor Imigrasi", "Asia/Makassar", "2026-11-30", 20_000)
    items = doc["appointments"]
    assert len(items) == 20_000
    assert len({a["booking_code"] for a in items}) == 20_000
    assert {a["service"] for a in items} == {"A", "B"}
    assert Counter(a["salutation"] for a in items).keys() == {"Bapak", "Ibu", ""}
    assert 0 < sum(a["priority"] for a in items) < 3000
    assert 0 < sum(a["status"] == "cancelled" for a in items) < 2000
    assert all("T08:" <= a["slot_start"][10:14] and a["slot_end"] <= "2026-11-30T16:00:00+08:00"
               for a in items)
    assert generate_schedule("TRK", "K", "Asia/Makassar", "2026-11-30", 5) == \
        generate_schedule("TRK", "K", "Asia/Makassar", "2026-11-30", 5)


def test_signature_date_and_restart_keeps_duplicates(tmp_path):
    state = str(tmp_path / "central")
    event = {"id": "01JDX3Q6W4T2K5M8N9P0R1S2T3", "type": "call",
             "at": "2026-11-30T00:01:02.123Z", "ticket": "A001", "counter": 1}
    with DevServer(state_dir=state) as server:
        day = server.admin("GET", "/_admin/state")["today"]
        r = requests.get(f"{server.url}/offices/TRK/schedule", params={"date": day},
                         headers=AUTH, timeout=5)
        assert verify_header(r.content, r.headers["X-Antrean-Signature"],
                             {server.key.keyid: server.key.public_raw}) == server.key.keyid
        assert r.headers["Date"].endswith("GMT")
        post = requests.post(f"{server.url}/devices/d1/events", json={"events": [event]},
                             headers=AUTH, timeout=5)
        assert post.json()["results"][0]["status"] == "accepted"
        keyid = server.key.keyid
    with DevServer(state_dir=state) as server:       # same folder: same key, same memory
        assert server.key.keyid == keyid
        post = requests.post(f"{server.url}/devices/d1/events", json={"events": [event]},
                             headers=AUTH, timeout=5)
        assert post.json()["results"][0]["status"] == "duplicate"
        down = requests.get(f"{server.url}/nowhere", timeout=5)
        assert down.status_code == 404 and "Date" in down.headers


def test_fault_switch_counts_down_and_signed_ticket(tmp_path):
    with DevServer(state_dir=str(tmp_path / "c")) as server:
        server.admin("POST", "/_admin/faults", {"status": 503, "times": 2})
        url = f"{server.url}/devices/d1/heartbeat"
        codes = [requests.post(url, json={}, headers=AUTH, timeout=5).status_code
                 for _ in range(3)]
        assert codes == [503, 503, 400]
        doc = server.admin("GET", "/_admin/schedule")["document"]
        code = doc["appointments"][0]["booking_code"]
        ticket = server.admin("GET", f"/_admin/ticket?booking_code={code}")["ticket"]
        head, sig = ticket.rsplit(".", 1)
        assert head.startswith(f"AT1.{server.key.keyid}.")
        bad = requests.post(f"{server.url}/_admin/faults", json={"bogus": 1}, timeout=5,
                            headers={"Authorization": f"Bearer {server.admin_token}"})
        assert bad.status_code == 400 and "unknown fault" in bad.json()["error"]


def test_bad_options_are_one_line_errors(capsys):
    assert main(["--faults", "{not json", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--faults" in err
    assert main(["--timezone", "Mars/Olympus", "--port", "0"]) == 2
    assert "Mars/Olympus" in capsys.readouterr().err


def test_command_serves_until_terminated(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "devtools.devserver", "--port", "0",
                             "--state", str(tmp_path / "s"), "--appointments", "20000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "serving http://127.0.0.1:" in first
        url = first.split("serving ")[1].split()[0]
        assert requests.get(f"{url}/_admin/state", timeout=5).status_code == 401
        token_file = tmp_path / "s" / "admin-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        admin = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        today = requests.get(f"{url}/_admin/state", headers=admin, timeout=5).json()["today"]
        r = requests.get(f"{url}/offices/TRK/schedule", params={"date": today},
                         headers=AUTH, timeout=30)
        assert len(r.json()["appointments"]) == 20_000
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_admin_endpoints_need_the_admin_token(tmp_path):
    """Without it nobody can mint tickets or schedules signed with a key appliances trust."""
    with DevServer(state_dir=str(tmp_path / "c")) as server:
        for method, path in (("GET", "/_admin/state"), ("GET", "/_admin/ticket?booking_code=X"),
                             ("POST", "/_admin/schedule"), ("POST", "/_admin/push"),
                             ("POST", "/_admin/token"), ("GET", "/_admin/nowhere")):
            for headers in ({}, AUTH, {"Authorization": "Bearer wrong-admin-token-123"},
                            {"Authorization": f"Bearer {server.admin_token}x"}):
                r = requests.request(method, server.url + path, json={"token": "t" * 20},
                                     headers=headers, timeout=5)
                assert r.status_code == 401, (method, path, headers)
                assert "admin token" in r.json()["error"]
        assert server.admin("GET", "/_admin/state")["streams"] == 0   # with the token: fine
        refused = requests.post(f"{server.url}/_admin/token", json={"token": server.admin_token},
                                headers={"Authorization": f"Bearer {server.admin_token}"},
                                timeout=5)
        assert refused.status_code == 400 and "differ" in refused.json()["error"]


def test_listening_beyond_loopback_needs_an_admin_token_file(tmp_path, capsys):
    assert main(["--host", "0.0.0.0", "--port", "0", "--state", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--admin-token-file" in err and "0.0.0.0" in err
    short = tmp_path / "short"
    short.write_text("abc\n")
    assert main(["--host", "0.0.0.0", "--port", "0", "--admin-token-file", str(short)]) == 2
    assert "16-512" in capsys.readouterr().err
    missing = tmp_path / "missing"
    assert main(["--admin-token-file", str(missing), "--port", "0"]) == 2
    assert str(missing) in capsys.readouterr().err
    token = "admin-" + "x" * 30
    with DevServer(host="0.0.0.0", admin_token=token, state_dir=str(tmp_path / "c")) as server:
        local = f"http://127.0.0.1:{server.port}"
        assert requests.get(f"{local}/_admin/state", timeout=5).status_code == 401
        ok = requests.get(f"{local}/_admin/state", timeout=5,
                          headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert not (tmp_path / "c" / "admin-token").exists()   # a given token is not copied
    with DevServer(host="localhost", state_dir=str(tmp_path / "d")) as server:
        assert server.admin("GET", "/_admin/state")["streams"] == 0


def test_a_huge_or_foreign_last_event_id_starts_the_stream_afresh(tmp_path):
    """5,000 digits once gave a 500 (int() refuses them); now: a fresh resume point."""
    with DevServer(state_dir=str(tmp_path / "c")) as server:
        server.admin("POST", "/_admin/push", {"event": "announcements", "data": {"items": []}})
        for last in ("9" * 5000, "12345678901234567890", "\u00b2", "7", "-1", "0"):
            with requests.get(f"{server.url}/devices/d1/stream", stream=True, timeout=5,
                              headers={**AUTH, "Last-Event-ID": last}) as r:
                assert r.status_code == 200, last[:20]
                lines = r.iter_lines()
                assert next(lines) == b": connected" and next(lines) == b""
                head = next(lines)
                if last == "0":      # an id this server issued: resumed, no id block
                    assert head == b"id: 1" and next(lines) == b"event: announcements"
                else:
                    assert head == b"id: 1" and next(lines) == b"", last[:20]


def test_heartbeat_lobby_is_stored_shown_and_checked(tmp_path):
    with DevServer(state_dir=str(tmp_path / "c")) as server:
        url = f"{server.url}/devices/d1/heartbeat"
        base = {"version": "x", "uptime_s": 1, "schedule": {}, "outbox": {}, "scanner": {},
                "display": {}, "clock": {}}
        assert requests.post(url, json=base, headers=AUTH, timeout=5).status_code == 204
        assert server.admin("GET", "/_admin/state")["lobbies"] == {}   # an older appliance
        lobby = {"date": "2026-11-30", "waiting": 4, "lateness_s": 900, "running_late": True,
                 "open_counters": [1, 2], "services": [
                     {"code": "A", "name": "Paspor Baru", "waiting": 4, "next_wait_s": 1200,
                      "lateness_s": 900}]}
        ok = requests.post(url, json={**base, "lobby": lobby}, headers=AUTH, timeout=5)
        assert ok.status_code == 204
        shown = server.admin("GET", "/_admin/state")["lobbies"]["d1"]
        assert shown["services"] == lobby["services"] and shown["received_at"] > 0
        bad = requests.post(url, json={**base, "lobby": {"services": "A"}}, headers=AUTH,
                            timeout=5)
        assert bad.status_code == 400 and '"lobby"' in bad.json()["error"]
        assert server.admin("GET", "/_admin/state")["lobbies"]["d1"]["waiting"] == 4
