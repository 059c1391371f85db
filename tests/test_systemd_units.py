"""The systemd units: `systemd-analyze verify` is clean, the offline security score of every
service is "OK" or better, and each unit grants exactly the access docs/install.md promises.

verify and security run against a staging root (`--root`) holding our units where
install.sh puts them, this machine's own distribution units (sysinit.target,
network-online.target, ... that ours reference) and, at the ExecStart path, a launcher that
runs this checkout's real `antrean`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SYSTEMD_DIR = REPO / "systemd"
SERVICES = ("antrean-scanner.service", "antrean-display.service", "antrean-sync.service",
            "antrean-printer.service")
UNITS = (*SERVICES, "antrean.target")
EXEC = "/opt/antrean/venv/bin/antrean"
ANALYZE = shutil.which("systemd-analyze")
HOST_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
# systemd-analyze security's levels, best first; the issue asks for "OK" or better.
GOOD_LEVELS = ("PERFECT", "SAFE", "OK")

needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def add_host_units_and_launcher(root: Path) -> None:
    """Make ``root`` verifiable: distribution units beside ours, a real ExecStart binary."""
    host_units = next((d for d in HOST_UNIT_DIRS if (d / "sysinit.target").exists()), None)
    if host_units is None:
        pytest.skip("this machine has no systemd unit directory to verify against")
    dest = root / "usr/lib/systemd/system"
    if not dest.exists():
        shutil.copytree(host_units, dest, symlinks=True)
    launcher = root / EXEC.lstrip("/")
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(f'#!/bin/sh\nexec {Path(sys.executable).parent / "antrean"} "$@"\n')
    launcher.chmod(0o755)


def verify(root: Path, unit: str) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYZE, "verify", f"--root={root}", f"/etc/systemd/system/{unit}"],
                          capture_output=True, text=True, timeout=60)


def security(root: Path, unit: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYZE, "security", "--offline=yes", f"--root={root}", *extra,
                           f"/etc/systemd/system/{unit}"],
                          capture_output=True, text=True, timeout=60)


def exposure(output: str, unit: str) -> tuple[float, str]:
    """The overall exposure (0.0 best .. 10.0 worst) and its level name from the report."""
    m = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d) (\w+)", output)
    assert m, f"no overall exposure line in:\n{output[-500:]}"
    return float(m.group(1)), m.group(2)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> every value given (systemd allows repeating a key)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    return parse_unit((SYSTEMD_DIR / name).read_text())


def words(values: list[str]) -> set[str]:
    return {w for v in values for w in v.split()}


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("root")
    target = root / "etc/systemd/system"
    target.mkdir(parents=True)
    for name in UNITS:
        shutil.copy(SYSTEMD_DIR / name, target / name)
    add_host_units_and_launcher(root)
    return root


@needs_analyze
@pytest.mark.parametrize("name", UNITS)
def test_verify_is_clean(staged, name):
    result = verify(staged, name)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"systemd-analyze verify warned:\n{result.stderr}"


@needs_analyze
def test_verify_reports_a_misspelt_key_and_a_missing_binary(staged, tmp_path):
    bad = (SYSTEMD_DIR / "antrean-sync.service").read_text()
    bad = bad.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    (staged / "etc/systemd/system/antrean-typo.service").write_text(bad)
    result = verify(staged, "antrean-typo.service")
    assert "Unknown key 'NoNewPrivilege'" in result.stderr

    bare = tmp_path / "bare"
    (bare / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(SYSTEMD_DIR / "antrean-sync.service", bare / "etc/systemd/system")
    add_host_units_and_launcher(bare)
    (bare / EXEC.lstrip("/")).unlink()
    result = verify(bare, "antrean-sync.service")
    assert result.returncode != 0
    assert "not executable" in result.stderr


@needs_analyze
@pytest.mark.parametrize("name", SERVICES)
def test_security_is_ok_or_better(staged, name):
    result = security(staged, name)
    assert result.returncode == 0, result.stderr
    score, level = exposure(result.stdout, name)
    assert level in GOOD_LEVELS and score < 5.0, f"{name}: {score} {level}"
    # The same bar through systemd's own gate (exposure in tenths: OK ends at 4.9).
    assert security(staged, name, "--threshold=49").returncode == 0


@needs_analyze
def test_security_score_notices_missing_hardening(staged):
    plain = "[Service]\nExecStart=/opt/antrean/venv/bin/antrean sync\nUser=antrean\n"
    (staged / "etc/systemd/system/antrean-plain.service").write_text(plain)
    result = security(staged, "antrean-plain.service")
    score, level = exposure(result.stdout, "antrean-plain.service")
    assert level not in GOOD_LEVELS and score >= 5.0
    assert security(staged, "antrean-plain.service", "--threshold=49").returncode != 0


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_a_watched_notify_service_of_the_target(name):
    u = unit(name)
    s = u["Service"]
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["ExecStart"] == [f"{EXEC} {name.removeprefix('antrean-').removesuffix('.service')}"]
    assert s["WatchdogSec"] == ["30s"]
    assert s["Restart"] == ["always"] and s["RestartSec"]
    assert u["Unit"]["StartLimitIntervalSec"] and int(u["Unit"]["StartLimitBurst"][0]) > 1
    assert u["Unit"]["PartOf"] == ["antrean.target"]
    assert s["User"] == ["antrean"] and s["Group"] == ["antrean"]
    assert s["StateDirectory"] == ["antrean"] and s["ConfigurationDirectory"] == ["antrean"]
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("DevicePolicy", "closed"), ("CapabilityBoundingSet", ""),
                       ("UMask", "0027"), ("SystemCallArchitectures", "native"),
                       ("StandardOutput", "journal"), ("StandardError", "journal")]:
        assert s[key] == [value], key
    assert "@system-service" in s["SystemCallFilter"]


def test_each_service_gets_only_its_own_groups_devices_and_sockets():
    scanner, display, sync, printer = (unit(n)["Service"] for n in SERVICES)
    assert words(scanner["SupplementaryGroups"]) == {"dialout", "gpio", "input", "video"}
    assert words(display["SupplementaryGroups"]) == {"video", "render", "audio"}
    assert "SupplementaryGroups" not in sync
    assert words(printer["SupplementaryGroups"]) == {"lp", "dialout"}

    assert words(scanner["RestrictAddressFamilies"]) == {"AF_UNIX"}
    assert words(display["RestrictAddressFamilies"]) == {"AF_UNIX"}
    assert words(sync["RestrictAddressFamilies"]) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert words(printer["RestrictAddressFamilies"]) == {"AF_UNIX", "AF_INET", "AF_INET6"}

    def devices(s):
        return {v.split()[0] for v in s.get("DeviceAllow", [])}
    assert devices(scanner) == {"char-ttyUSB", "char-ttyACM", "char-ttyAMA", "char-ttyS",
                                "char-gpiochip",
                                "char-input", "char-video4linux", "char-media", "char-dma_heap"}
    assert devices(display) == {"char-drm", "char-alsa", "/dev/tty1"}
    assert devices(sync) == set() and sync["PrivateDevices"] == ["yes"]
    assert devices(printer) == {"char-usb", "char-ttyUSB", "char-ttyACM", "char-ttyAMA"}
    # Sync and printer deny writable+executable memory; ctypes callbacks and Mesa may need it.
    assert sync["MemoryDenyWriteExecute"] == ["yes"]
    assert printer["MemoryDenyWriteExecute"] == ["yes"]


def test_printer_reaches_only_the_office_network():
    s = unit("antrean-printer.service")["Service"]
    assert s["IPAddressDeny"] == ["any"]
    allowed = words(s["IPAddressAllow"])
    assert {"localhost", "link-local", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= allowed
    assert not {"any", "0.0.0.0/0", "::/0"} & allowed


def test_display_owns_tty1_and_waits_for_the_drm_card():
    u = unit("antrean-display.service")
    s = u["Service"]
    assert s["TTYPath"] == ["/dev/tty1"] and s["StandardInput"] == ["tty"]
    assert u["Unit"]["Conflicts"] == ["getty@tty1.service"]
    assert "getty@tty1.service" in words(u["Unit"]["After"])
    assert "dev-dri-antrean.device" in words(u["Unit"]["Wants"])
    assert "dev-dri-antrean.device" in words(u["Unit"]["After"])
    assert {"SDL_VIDEODRIVER=kmsdrm", "SDL_AUDIODRIVER=alsa"} <= words(s["Environment"])
    rule = (SYSTEMD_DIR / "99-antrean-display.rules").read_text()
    assert 'SYMLINK+="dri/antrean"' in rule and 'TAG+="systemd"' in rule


def test_the_display_health_file_lives_where_the_units_share_it():
    """The display writes /run/antrean/display.json; sync (same user) may read it."""
    from appliance.config import SCHEMA

    display, sync = unit("antrean-display.service")["Service"], unit("antrean-sync.service")[
        "Service"]
    default = Path(SCHEMA["display"]["health_file"].default)
    assert display["RuntimeDirectory"] == [default.parent.name] and str(default.parent) == (
        "/run/" + default.parent.name)
    assert display["RuntimeDirectoryMode"] == ["0750"]
    assert display["User"] == sync["User"] == ["antrean"]
    # Sync must neither own (and so remove) the folder nor have /run hidden from it.
    assert "RuntimeDirectory" not in sync
    for key in ("InaccessiblePaths", "TemporaryFileSystem", "ReadOnlyPaths"):
        assert not any("/run" in v for v in sync.get(key, [])), key


def test_sync_waits_for_the_network_but_not_for_time_sync():
    u = unit("antrean-sync.service")["Unit"]
    assert "network-online.target" in words(u["Wants"])
    assert "network-online.target" in words(u["After"])
    for key in ("Requires", "Requisite", "BindsTo", "After", "Wants"):
        assert "time-sync.target" not in words(u.get(key, [])), key


def test_target_wants_every_service_and_starts_at_boot():
    u = unit("antrean.target")
    assert words(u["Unit"]["Wants"]) == set(SERVICES)
    assert u["Install"]["WantedBy"] == ["multi-user.target"]


UDEV_TOKEN = re.compile(
    r'\s*([A-Z_]+(?:\{[^}]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(?:,|$)')


def udev_rules(name: str) -> list[list[tuple[str, str, str]]]:
    """Active rules as (key, operator, value) lists; fails on a line udev would reject."""
    text = (SYSTEMD_DIR / name).read_text().replace("\\\n", " ")
    rules = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens, pos = [], 0
        while pos < len(line):
            m = UDEV_TOKEN.match(line, pos)
            assert m, f"{name}:{lineno}: cannot parse {line[pos:]!r}"
            tokens.append(m.groups())
            pos = m.end()
        rules.append(tokens)
    return rules


def test_scanner_rule_names_the_scanner_for_dialout_and_hides_it_from_modemmanager():
    rules = udev_rules("99-antrean-scanner.rules")
    naming = [r for r in rules if ("SYMLINK", "+=", "antrean-scanner") in r]
    assert len(naming) == 1
    assert {("GROUP", "=", "dialout"), ("MODE", "=", "0660"),
            ("ENV{ID_MM_DEVICE_IGNORE}", "=", "1")} <= set(naming[0])
    matchers = [r for r in rules if ("ENV{ANTREAN_SCANNER}", "=", "1") in r]
    assert matchers and all(k == "ATTRS{idVendor}" and re.fullmatch(r"[0-9a-f]{4}", v)
                            for r in matchers for k, op, v in r if op == "==")
    assert udev_rules("99-antrean-display.rules")


def test_sysusers_makes_the_user_without_blanket_group_membership():
    lines = [ln.split() for ln in (SYSTEMD_DIR / "antrean.sysusers").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0][:2] == ["u", "antrean"]
    assert not [ln for ln in lines if ln[0] == "m"]
    groups = {ln[1] for ln in lines if ln[0] == "g"}
    every_unit_group = set().union(*(words(unit(n)["Service"].get("SupplementaryGroups", []))
                                     for n in SERVICES))
    assert groups == every_unit_group


# The kernel's own W^X switch (Linux 6.3+): the same rule MemoryDenyWriteExecute=yes puts
# on antrean-sync, applied to one real sync round against the reference server.
UNDER_WX_RULE = """
import ctypes, mmap, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit(78)
except PermissionError:
    pass
from appliance.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sync_runs_a_full_round_without_writable_executable_memory(tmp_path):
    DevServer = pytest.importorskip("devtools.devserver").DevServer
    harness = pytest.importorskip("test_sync_harness")
    TOKEN, write_sync_config = harness.TOKEN, harness.write_sync_config

    with DevServer(state_dir=str(tmp_path / "central"), token=TOKEN,
                   keepalive_s=0.3, appointments=5) as server:
        config = write_sync_config(tmp_path, server)
        result = subprocess.run(
            [sys.executable, "-c", UNDER_WX_RULE, "--config", str(config), "sync", "--once"],
            capture_output=True, text=True, timeout=120, cwd=REPO)
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    assert result.returncode != 78, "W+X mapping was not refused: the test proves nothing"
    assert result.returncode == 0, result.stderr[-2000:]


def test_sync_may_read_whether_ntp_synchronised_the_clock():
    """Found by the booted VM (tests/system): ProtectClock= filters adjtimex() even in its
    read-only form, so the sync service reported "not synchronised" while timedatectl said
    yes. Setting the clock stays impossible without capabilities."""
    s = unit("antrean-sync.service")["Service"]
    assert "ProtectClock" not in s
    assert s["CapabilityBoundingSet"] == [""] and "AmbientCapabilities" in s
    # @system-service lacks @clock and ~@privileged removes it: allowed again, last.
    assert set(s["SystemCallFilter"][-1].split()) == {"adjtimex", "clock_adjtime"}
