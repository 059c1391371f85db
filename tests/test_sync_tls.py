"""TLS to the central server with a wrong clock: the reference server on loopback serving
https with certificates from a throwaway CA (devtools/throwaway_ca.py), the appliance
trusting that CA through ``server.ca_file``.

A Pi without an RTC battery and without NTP runs months behind, so by its clock the
server's certificate is not yet valid. Its dates must not be judged by a clock known to be
wrong, or the appliance could never read the server's ``Date`` and correct itself; the chain
and the host name are still verified. Whether NTP has set the clock is what
``appliance.clock.system_clock_synced`` answers: with timesyncd's flag file (the real
mechanism) for "synchronised", and as a Pi that never reached NTP answers for "not".
"""

from __future__ import annotations

import glob
import logging
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import seccomp_filter
from test_sync_harness import TOKEN, wait_until, write_sync_config
from test_sync_stream import Running, push_call, streams

from appliance.clock import TIMESYNC_FLAG, system_clock_synced
from appliance.config import load_config
from appliance.schedule import schedule_info
from appliance.store import Store
from devtools import devserver, throwaway_ca
from devtools.devserver import DevServer, DevServerError
from devtools.throwaway_ca import issue_server_certificate, make_ca
from sync.client import CentralClient, ServerUnreachable, TlsRefused
from sync.service import SyncService
from sync.tls import NO_CHECK_TIME, CertificatePolicy

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
FAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
DAY = 86400.0
NOW = datetime.now(UTC)
TWO_DAYS_AHEAD = {"clock_offset_s": 2 * DAY}    # the server's Date: this device is 2 days behind

pytest_plugins = ("test_sync_harness",)   # the central fixture


def clock_not_synced() -> bool:
    """What ``system_clock_synced`` answers on a Pi that never reached an NTP server."""
    return False


@pytest.fixture
def clock_synced(tmp_path):
    """``system_clock_synced`` seeing systemd-timesyncd's flag: NTP has set the clock."""
    flag = tmp_path / "timesync-synchronized"
    flag.touch()
    return partial(system_clock_synced, str(flag))


@pytest.fixture
def ca(tmp_path):
    return make_ca(str(tmp_path / "ca"), not_before=NOW - timedelta(days=1),
                   not_after=NOW + timedelta(days=365))


def server_cert(ca, tmp_path, names=("127.0.0.1",), *, starts: timedelta = -timedelta(hours=1),
                lasts: timedelta = timedelta(days=30), stem: str = "server"):
    return issue_server_certificate(ca, str(tmp_path / "certs"), list(names),
                                    not_before=NOW + starts, not_after=NOW + starts + lasts,
                                    stem=stem)


def tls_central(tmp_path, pair, ca, **faults) -> DevServer:
    return DevServer(state_dir=str(tmp_path / "central"), token=TOKEN, keepalive_s=0.3,
                     appointments=40, tls_cert=pair.cert, tls_key=pair.key,
                     tls_ca=ca.cert_path, faults=faults)


def appliance_config(tmp_path, server, ca_file: str):
    return load_config(write_sync_config(tmp_path, server, f'ca_file = "{ca_file}"\n'))


def sync_once(config, synced) -> tuple[int, SyncService]:
    service = SyncService(config, use_stream=False, backoff_base_s=0.05, backoff_cap_s=0.2,
                          clock_synced=synced)
    return service.run_once(), service


def refused(config, synced) -> str:
    """Sync once against a server the appliance must refuse: nothing is learnt or stored
    from it. Returns the fault that says why."""
    rc, service = sync_once(config, synced)
    try:
        assert rc == 1
        assert service.store.get_kv("clock") is None       # no Date from a refused server
        assert service.store.db.execute("SELECT COUNT(*) FROM schedules").fetchone()[0] == 0
        return service.faults.active["server"]
    finally:
        service.close()


def server_today(server) -> str:
    return server.admin("GET", "/_admin/state")["today"]


def fetch(client: CentralClient, server):
    """One request of the contract: today's schedule."""
    return client.get_schedule("TRK", server_today(server), None)


# --- the test CA and the reference server over TLS --------------------------------------------

def test_the_throwaway_certificates_pass_openssl_strict_verification(tmp_path, ca):
    pair = server_cert(ca, tmp_path, ["127.0.0.1", "localhost"])
    assert os.stat(pair.key).st_mode & 0o777 == 0o600
    assert os.stat(ca.key_path).st_mode & 0o777 == 0o600
    ctx = ssl.create_default_context(cafile=ca.cert_path)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    with tls_central(tmp_path, pair, ca) as server:
        assert server.url.startswith("https://127.0.0.1:")
        assert server.admin("GET", "/_admin/state")["today"]     # admin() verifies with the CA
        for host in ("127.0.0.1", "localhost"):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname=host) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_devserver_refuses_bad_tls_files_in_one_line(tmp_path, ca, capsys):
    pair = server_cert(ca, tmp_path)
    other = server_cert(ca, tmp_path, stem="other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [
        (["--tls-cert", str(tmp_path / "absent.pem"), "--tls-key", pair.key],
         "--tls-cert", "cannot read it"),
        (["--tls-cert", pair.cert, "--tls-key", other.key], "--tls-key", "is not the key of"),
        (["--tls-cert", str(garbage), "--tls-key", pair.key], "--tls-cert", "not a PEM"),
        (["--tls-cert", pair.cert, "--tls-key", pair.cert], "--tls-key", "not an unencrypted"),
        (["--tls-cert", pair.cert], "--tls-cert and --tls-key go together", ""),
    ]
    for args, *words in cases:
        assert devserver.main(["--port", "0", "--state", str(tmp_path / "st"), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("antrean devserver: "), err
        assert all(w in err for w in words), err
        assert "Traceback" not in err
    with pytest.raises(DevServerError, match="is not the key of"):
        DevServer(tls_cert=pair.cert, tls_key=other.key)


def test_throwaway_ca_refuses_bad_input_before_writing_anything(tmp_path, capsys):
    folder = tmp_path / "tls"
    assert throwaway_ca.main([str(folder), "--name", "127.0.0.1"]) == 0
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(before) == {"ca.pem", "ca-key.pem", "server.pem", "server-key.pem"}
    capsys.readouterr()
    for args in (["--name", "not a name"], ["--name", "x", "--days", "-1"]):
        assert throwaway_ca.main([str(folder), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("throwaway_ca: "), err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


# --- (a) a valid certificate, a synchronised clock ---------------------------------------------

def test_a_valid_certificate_and_the_ca_file_sync(tmp_path, ca, clock_synced):
    with tls_central(tmp_path, server_cert(ca, tmp_path), ca) as server:
        config = appliance_config(tmp_path, server, ca.cert_path)
        rc, service = sync_once(config, clock_synced)
        try:
            assert rc == 0, service.faults.active
            assert schedule_info(service.store, server_today(server)) is not None
            # urllib3 really connected with the policy's context, the one with date checks.
            pools = service.client.session.get_adapter(server.url).poolmanager.pools.keys()
            used = {key.key_ssl_context for key in pools}
            assert used == {service.tls.context(ca.cert_path)}
            assert not next(iter(used)).verify_flags & NO_CHECK_TIME
        finally:
            service.close()


# --- (b) the certificate is valid only by the server's time, the clock is not synced -----------

def test_a_clock_behind_without_ntp_still_syncs_and_learns_the_time(tmp_path, ca, caplog):
    """The issue's case: by this device's clock the certificate starts tomorrow (the device
    is two days behind the server). The sync must pull the server's today and record the
    offset from its ``Date``; urllib3 must have used the context without date checks."""
    pair = server_cert(ca, tmp_path, starts=timedelta(days=1))
    caplog.set_level(logging.INFO, logger="antrean.sync")
    with tls_central(tmp_path, pair, ca, **TWO_DAYS_AHEAD) as server:
        config = appliance_config(tmp_path, server, ca.cert_path)
        rc, service = sync_once(config, clock_not_synced)
        try:
            assert rc == 0, service.faults.active
            today = server_today(server)
            assert service.clock.office_day() == today
            assert schedule_info(service.store, today) is not None
            clock = service.store.get_kv("clock")
            assert clock["synced"] is False
            assert abs(clock["offset_s"] - 2 * DAY) < 30
            pools = service.client.session.get_adapter(server.url).poolmanager.pools.keys()
            assert all(key.key_ssl_context.verify_flags & NO_CHECK_TIME for key in pools)
            # Later connections judge the certificate by the server's time: still valid.
            service.client.session.close()
            assert service.pull_round() is True
            assert service.upload_round()[0] == "done"
        finally:
            service.close()
    warnings = [r for r in caplog.records if "not NTP-synchronised" in r.getMessage()]
    assert len(warnings) == 1, "the relaxed date check is logged once, not per request"
    assert "host name are still verified" in warnings[0].getMessage()


def test_the_push_stream_connects_with_the_same_policy(tmp_path, ca):
    pair = server_cert(ca, tmp_path, starts=timedelta(days=1))
    with tls_central(tmp_path, pair, ca, **TWO_DAYS_AHEAD) as server:
        config = appliance_config(tmp_path, server, ca.cert_path)
        with Running(config, clock_synced=clock_not_synced) as run:
            wait_until(lambda: streams(server) >= 1, what="the push stream over TLS")
            sid = push_call(server, "A013")
            wait_until(lambda: run.call_rows(sid) == 1, timeout=10, what="the pushed call")
            assert run.service.stream.tls is run.service.tls


# --- (c) the same certificate with a synchronised clock: refused, and why ---------------------

def test_a_synchronised_clock_refuses_a_certificate_not_yet_valid(tmp_path, ca, clock_synced):
    pair = server_cert(ca, tmp_path, starts=timedelta(days=1))
    with tls_central(tmp_path, pair, ca, **TWO_DAYS_AHEAD) as server:
        why = refused(appliance_config(tmp_path, server, ca.cert_path), clock_synced)
    assert "certificate is not yet valid by this device's clock" in why, why
    assert "which NTP has synchronised" in why, why


# --- (d) an unknown CA, (e) another host's certificate: refused, clock synced or not ----------

def test_an_unknown_ca_is_refused_with_the_clock_not_synced(tmp_path, ca):
    stranger = make_ca(str(tmp_path / "stranger"), common_name="Someone else's CA")
    pair = server_cert(stranger, tmp_path)
    with tls_central(tmp_path, pair, stranger) as server:
        why = refused(appliance_config(tmp_path, server, ca.cert_path), clock_not_synced)
    assert "not signed by a CA this device trusts" in why, why
    assert f"server.ca_file {ca.cert_path}" in why, why


@pytest.mark.parametrize("synced", [False, True], ids=["not-synced", "synced"])
def test_a_certificate_for_another_host_is_refused(tmp_path, ca, clock_synced, synced):
    pair = server_cert(ca, tmp_path, ["central.antrean.example.go.id"])
    with tls_central(tmp_path, pair, ca) as server:
        why = refused(appliance_config(tmp_path, server, ca.cert_path),
                      clock_synced if synced else clock_not_synced)
    assert "certificate is not for 127.0.0.1" in why, why


# --- the server's time, NTP arriving, the CA file --------------------------------------------

def test_once_the_server_time_is_known_it_judges_the_certificate(tmp_path, ca):
    """The server's own ``Date`` says its certificate starts tomorrow: the first answer is
    taken (no better time exists yet), every new connection after it is refused."""
    pair = server_cert(ca, tmp_path, starts=timedelta(days=1))
    with tls_central(tmp_path, pair, ca) as server:
        config = appliance_config(tmp_path, server, ca.cert_path)
        rc, service = sync_once(config, clock_not_synced)
        try:
            assert rc == 0, service.faults.active
            assert abs(service.store.get_kv("clock")["offset_s"]) < 30
            service.client.session.close()                    # the next request connects anew
            assert service.pull_round() is False
            why = service.faults.active["server"]
            assert "not yet valid by the central server's own time" in why, why
        finally:
            service.close()


def test_ntp_arriving_brings_back_the_date_check_on_new_connections(tmp_path, ca):
    pair = server_cert(ca, tmp_path, starts=timedelta(days=1))
    ntp = {"synced": False}
    with tls_central(tmp_path, pair, ca, **TWO_DAYS_AHEAD) as server:
        config = appliance_config(tmp_path, server, ca.cert_path)
        client = CentralClient(config, tls=CertificatePolicy(lambda: ntp["synced"]))
        try:
            assert fetch(client, server).status == 200
            ntp["synced"] = True
            with pytest.raises(TlsRefused, match="not yet valid by this device's clock"):
                fetch(client, server)
        finally:
            client.close()


def test_a_missing_ca_file_is_a_clear_error_and_fixing_it_needs_no_restart(tmp_path, ca):
    later = tmp_path / "later-ca.pem"
    with tls_central(tmp_path, server_cert(ca, tmp_path), ca) as server:
        config = appliance_config(tmp_path, server, str(later))
        client = CentralClient(config, tls=CertificatePolicy(clock_not_synced))
        try:
            with pytest.raises(ServerUnreachable, match=f"CA bundle {later} does not exist"):
                fetch(client, server)
            later.write_text("not a certificate\n")
            with pytest.raises(ServerUnreachable, match="cannot be used"):
                fetch(client, server)
            later.write_bytes(Path(ca.cert_path).read_bytes())
            assert fetch(client, server).status == 200
        finally:
            client.close()


def test_a_plain_http_port_is_named_as_such(tmp_path, central):
    """server.url says https, but the port speaks plain http."""
    path = write_sync_config(tmp_path, central)
    path.write_text(path.read_text().replace('url = "http://', 'url = "https://'))
    config = load_config(path)
    client = CentralClient(config, tls=CertificatePolicy(clock_not_synced))
    try:
        with pytest.raises(TlsRefused, match="does not speak TLS on that port"):
            fetch(client, central)
    finally:
        client.close()


# --- the whole sync process on a clock months behind, sandboxed like the unit --------------

CHILD = textwrap.dedent("""
    import errno, sys
    sys.path.insert(0, sys.argv[1])
    from seccomp_filter import CLOCK_CALLS, refuse
    refuse(CLOCK_CALLS, errno.EPERM)      # ProtectClock=: the kernel's NTP state is refused
    from appliance.cli import main
    sys.exit(main(["--config", sys.argv[2], "sync", "--once"]))
""")


@pytest.mark.skipif(not FAKETIME, reason="libfaketime is not installed (Debian: faketime)")
@pytest.mark.skipif(seccomp_filter.LIBRARY is None, reason="libseccomp is not installed")
@pytest.mark.skipif(os.path.exists(TIMESYNC_FLAG), reason=f"{TIMESYNC_FLAG} exists here: "
                    "this machine's NTP state would reach the child")
def test_sync_once_months_behind_without_ntp_over_tls(tmp_path, ca):
    """``sync --once`` in a process whose clock is 220 days behind (an RTC-less Pi), which
    cannot learn that NTP set the clock (no timesyncd flag, ``adjtimex`` refused as under the
    unit, no timedatectl): the certificate, valid since an hour ago, is not yet valid by its
    clock. It must still pull the server's today and record the server's time."""
    pair = server_cert(ca, tmp_path)
    with tls_central(tmp_path, pair, ca) as server:
        config = write_sync_config(tmp_path, server, f'ca_file = "{ca.cert_path}"\n')
        env = {**os.environ, "LD_PRELOAD": FAKETIME[0], "FAKETIME": "-220d",
               "FAKETIME_DONT_FAKE_MONOTONIC": "1", "PATH": "/nonexistent"}
        started = time.time()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(TESTS), str(config)], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stderr.count("not NTP-synchronised, so certificate dates") == 1
        with Store(str(tmp_path / "antrean.db")) as store:
            assert schedule_info(store, server_today(server)) is not None
            clock = store.get_kv("clock")
        assert clock["synced"] is False
        assert abs(clock["offset_s"] - 220 * DAY) < 120 + (time.time() - started)


def test_the_time_check_flag_is_really_passed_to_openssl(tmp_path, ca):
    """CPython hands ``verify_flags`` bits it has no name for to OpenSSL unchanged."""
    ctx = ssl.create_default_context(cafile=ca.cert_path)
    ctx.verify_flags |= NO_CHECK_TIME
    assert int(ctx.verify_flags) & NO_CHECK_TIME
    pair = server_cert(ca, tmp_path, starts=timedelta(days=1))
    with tls_central(tmp_path, pair, ca) as server:
        for flags, ok in ((0, False), (NO_CHECK_TIME, True)):
            ctx = ssl.create_default_context(cafile=ca.cert_path)
            ctx.verify_flags |= flags
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
                try:
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1").close()
                    seen = True
                except ssl.SSLCertVerificationError as e:
                    assert e.verify_code == 9           # X509_V_ERR_CERT_NOT_YET_VALID
                    seen = False
            assert seen is ok

