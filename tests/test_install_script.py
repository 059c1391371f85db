"""systemd/install.sh, run for real into staging trees (`--root`): what a dry run plans,
that a second run changes nothing, that the installed tree passes `systemd-analyze verify`,
and that `--uninstall` removes the software but keeps config, state and the user.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_systemd_units import ANALYZE, SERVICES, UNITS, add_host_units_and_launcher, verify

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "systemd" / "install.sh"
RULES = ("99-antrean-scanner.rules", "99-antrean-display.rules")
# Where install.sh puts each file of systemd/.
INSTALLED = {
    **{f"/etc/systemd/system/{u}": u for u in UNITS},
    **{f"/etc/udev/rules.d/{r}": r for r in RULES},
    "/etc/sysusers.d/antrean.conf": "antrean.sysusers",
    "/etc/tmpfiles.d/antrean.conf": "antrean.tmpfiles",
}

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="install.sh --root sets owners: needs root"),
    pytest.mark.skipif(not (shutil.which("systemd-sysusers") and shutil.which("systemd-tmpfiles")),
                       reason="systemd-sysusers/systemd-tmpfiles are not installed"),
]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                            timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def lines(result: subprocess.CompletedProcess) -> list[str]:
    return result.stdout.splitlines()


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path's type, mode, owner, mtime and content: equal snapshots, untouched tree."""
    state = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            body = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            body = path.read_bytes()
        else:
            body = None
        state[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid,
                                              st.st_mtime_ns, body)
    return state


def entry(root: Path, db: str, name: str) -> list[str]:
    """The colon-separated fields of ``name`` in the tree's /etc/passwd or /etc/group."""
    for line in (root / "etc" / db).read_text().splitlines():
        if line.split(":")[0] == name:
            return line.split(":")
    raise AssertionError(f"{name} is not in /etc/{db}")


@pytest.fixture
def installed(tmp_path) -> Path:
    run("--root", str(tmp_path))
    return tmp_path


def test_dry_run_lists_the_planned_actions_and_changes_nothing(tmp_path):
    out = lines(run("--dry-run", "--root", str(tmp_path)))
    assert out == [
        "dry run: nothing is changed",
        "skip apt-get install (--root)",
        "install /etc/sysusers.d/antrean.conf",
        f"run systemd-sysusers --root={tmp_path} /etc/sysusers.d/antrean.conf",
        "install /etc/tmpfiles.d/antrean.conf",
        "install /etc/antrean/antrean.toml (from antrean.example.toml; edit it before starting)",
        f"run systemd-tmpfiles --create --root={tmp_path} /etc/tmpfiles.d/antrean.conf",
        "skip python3 -m venv --system-site-packages /opt/antrean/venv (--root)",
        f"skip pip install {REPO} (--root)",
        *[f"install /etc/systemd/system/{u}" for u in UNITS],
        *[f"install /etc/udev/rules.d/{r}" for r in RULES],
        "skip udevadm control --reload (--root)",
        "skip udevadm trigger --action=change --subsystem-match=tty --subsystem-match=drm "
        "(--root)",
        "skip systemctl daemon-reload (--root)",
        "skip systemctl enable antrean.target (--root)",
        "planned changes: 12",
    ]
    assert list(tmp_path.iterdir()) == []


def test_dry_run_on_this_machine_plans_the_host_steps_without_touching_it():
    if Path("/etc/systemd/system/antrean.target").exists() or Path("/opt/antrean").exists():
        pytest.skip("Antrean is really installed on this machine")
    out = lines(run("--dry-run"))
    for expected in ("install /etc/systemd/system/antrean-scanner.service",
                     "run python3 -m venv --clear --system-site-packages /opt/antrean/venv",
                     f"run pip install {REPO} into /opt/antrean/venv",
                     "run systemctl daemon-reload", "run udevadm control --reload",
                     "run systemctl enable antrean.target"):
        assert expected in out
    assert not Path("/etc/systemd/system/antrean-scanner.service").exists()
    assert not Path("/opt/antrean").exists()


def test_install_puts_every_file_in_place_with_the_right_owners(installed):
    for target, source in INSTALLED.items():
        dest = installed / target.lstrip("/")
        assert dest.read_bytes() == (REPO / "systemd" / source).read_bytes(), target
        assert stat.S_IMODE(dest.stat().st_mode) == 0o644, target
    user = entry(installed, "passwd", "antrean")
    uid, gid = int(user[2]), int(user[3])
    assert user[5:] == ["/var/lib/antrean", "/usr/sbin/nologin"]
    assert int(entry(installed, "group", "antrean")[2]) == gid
    for group in ("dialout", "gpio", "input", "video", "render", "audio", "lp"):
        assert "antrean" not in entry(installed, "group", group)[3].split(","), group

    etc, config, state = (installed / p for p in ("etc/antrean", "etc/antrean/antrean.toml",
                                                  "var/lib/antrean"))
    assert config.read_bytes() == (REPO / "antrean.example.toml").read_bytes()
    assert (stat.S_IMODE(etc.stat().st_mode), etc.stat().st_uid, etc.stat().st_gid) == (
        0o750, 0, gid)
    assert (stat.S_IMODE(config.stat().st_mode), config.stat().st_uid,
            config.stat().st_gid) == (0o640, 0, gid)
    assert (stat.S_IMODE(state.stat().st_mode), state.stat().st_uid) == (0o750, uid)


def test_second_run_changes_nothing(installed):
    before = snapshot(installed)
    out = lines(run("--root", str(installed)))
    assert out[-1] == "no changes"
    assert all(line.startswith(("keep ", "skip ")) for line in out[:-1]), out
    assert snapshot(installed) == before


def test_an_edited_unit_is_restored_and_reloaded_and_the_config_is_kept(installed):
    unit = installed / "etc/systemd/system/antrean-sync.service"
    unit.write_text(unit.read_text().replace("WatchdogSec=30s", "WatchdogSec=0"))
    config = installed / "etc/antrean/antrean.toml"
    config.write_text("# the technician's own config\n")
    out = lines(run("--root", str(installed)))
    assert "update /etc/systemd/system/antrean-sync.service" in out
    assert "skip systemctl daemon-reload (--root)" in out
    assert "keep /etc/antrean/antrean.toml (your config is never overwritten)" in out
    assert out[-1] == "changes: 1"
    assert unit.read_bytes() == (REPO / "systemd/antrean-sync.service").read_bytes()
    assert config.read_text() == "# the technician's own config\n"


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_installed_tree_passes_verify(installed):
    add_host_units_and_launcher(installed)
    for name in UNITS:
        result = verify(installed, name)
        assert result.returncode == 0 and result.stderr.strip() == "", (name, result.stderr)


def test_uninstall_removes_the_software_and_keeps_config_state_and_user(installed):
    (installed / "opt/antrean/venv/bin").mkdir(parents=True)
    (installed / "opt/antrean/venv/bin/antrean").write_text("#!/bin/sh\n")
    wants = installed / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir()
    (wants / "antrean.target").symlink_to("/etc/systemd/system/antrean.target")
    db = installed / "var/lib/antrean/antrean.db"
    db.write_bytes(b"SQLite format 3\x00")
    passwd = (installed / "etc/passwd").read_bytes()

    out = lines(run("--uninstall", "--root", str(installed)))
    for target in [*INSTALLED, "/opt/antrean",
                   "/etc/systemd/system/multi-user.target.wants/antrean.target"]:
        assert f"remove {target}" in out
        assert not os.path.lexists(installed / target.lstrip("/")), target
    assert "keep /etc/antrean (config and token; remove by hand if you want them gone)" in out
    assert (installed / "etc/antrean/antrean.toml").exists()
    assert db.read_bytes() == b"SQLite format 3\x00"
    assert (installed / "etc/passwd").read_bytes() == passwd

    again = lines(run("--uninstall", "--root", str(installed)))
    assert again[-1] == "no changes" and not any(ln.startswith("remove ") for ln in again)


def test_bad_arguments_get_one_clear_line(tmp_path):
    result = run("--frobnicate", check=False)
    assert result.returncode == 2
    assert result.stderr == "install.sh: unknown option '--frobnicate'; see install.sh --help\n"
    result = run("--root", str(tmp_path / "missing"), check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "is not a directory" in result.stderr
    assert "--uninstall" in run("--help").stdout


def test_the_services_named_in_the_units_are_the_cli_commands():
    result = subprocess.run([str(Path(sys.executable).parent / "antrean"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for name in SERVICES:
        command = name.removeprefix("antrean-").removesuffix(".service")
        assert f"    {command} " in result.stdout, command


def test_the_display_gets_an_sdl_that_draws_on_kms():
    """Found by the booted VM (tests/system): the pygame wheels on PyPI bundle an SDL without
    kmsdrm, and SDL's kmsdrm needs Mesa's DRI drivers and EGL, which apt's
    --no-install-recommends leaves out ("EGL not initialized", a dark screen)."""
    import re
    import tomllib

    text = SCRIPT.read_text()
    packages = re.search(r"^APT_PACKAGES=\((.*?)\)", text, re.S | re.M)[1].split()
    assert {"python3-pygame", "libgl1-mesa-dri", "libegl1", "libgles2"} <= set(packages)
    assert "venv --clear --system-site-packages" in text
    # pip must keep Debian's pygame (2.1.2 in bookworm) instead of fetching a wheel.
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pygame = next(d for d in deps if re.match(r"pygame\b", d))
    minimum = tuple(int(x) for x in re.search(r">=\s*([\d.]+)", pygame)[1].split("."))
    assert minimum <= (2, 1, 2), pygame


def test_an_optional_package_the_archive_offers_is_found():
    """Found by the booted VM: `apt-cache policy | grep -q` under `set -o pipefail` failed
    whenever grep exited before apt-cache finished writing (SIGPIPE), so python3-evdev and
    friends were skipped as "not in this system's archive" and a second run installed them."""
    check = ('set -euo pipefail; eval "$(sed -n \'/^apt_has()/,/^}/p\' "$1")"; '
             'apt_has bash && echo offered; apt_has no-such-package-antrean || echo absent')
    out = subprocess.run(["bash", "-c", check, "bash", str(SCRIPT)], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ["offered", "absent"], out.stdout + out.stderr
