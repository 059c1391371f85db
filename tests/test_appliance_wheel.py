"""The appliance as a Pi gets it: the wheel alone, without the dev extra or devtools/.

systemd/install.sh installs the root project without extras. Here its wheel is built and
inspected, and install.sh's own pip step installs the appliance into a fresh virtual
environment with nothing else (the runtime dependencies come from the package index).
The reference server and aiohttp must not be there, ``antrean devserver`` and ``antrean demo``
must say in one line how to get them, and the three services must still start and tell
systemd READY=1. Slow (it builds a wheel and installs the dependencies), so it is marked, but
``make test`` runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import write_config

REPO = Path(__file__).resolve().parents[1]
INSTALL_SH = REPO / "systemd" / "install.sh"
APPLIANCE_PACKAGES = {"appliance", "drivers", "display", "sync"}
# What moved to devtools/ and must never be found on a Pi again.
DEV_MODULES = {"devserver.py", "demo_schedule.py", "lobby.py", "supervisor.py", "demo.py",
               "virtual_serial.py", "scenes.py"}
WAIT = 60.0  # a cold service start on a busy machine; passing runs never wait this long

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _copy_source(dest: Path) -> Path:
    """The checkout as a fresh clone has it: no venv, no earlier build output."""
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
        "demo-out", ".system-test"))
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_source(tmp / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                    "--disable-pip-version-check", "--wheel-dir", str(tmp / "dist"), str(src)],
                   check=True, timeout=600)
    (built,) = (tmp / "dist").glob("antrean-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with the appliance installed by install.sh's own pip step.

    The source is a checkout upgraded from before the move: its build/ still holds the
    reference server from an earlier install, which must not come back.
    """
    tmp = tmp_path_factory.mktemp("appliance")
    src = _copy_source(tmp / "src")
    stale = src / "build" / "lib" / "sync" / "devserver.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("from aiohttp import web\n")
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    step = re.search(r"^pip_install_appliance\(\) \{\n.*?^\}\n", INSTALL_SH.read_text(),
                     re.M | re.S).group(0)
    subprocess.run(["bash", "-euo", "pipefail", "-c", f"{step}pip_install_appliance"],
                   env={**os.environ, "SRC": str(src), "VENV": str(env_dir)},
                   check=True, timeout=1200)
    return env_dir


def _run(venv: Path, *args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "antrean"), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=WAIT, **kwargs)


def test_the_wheel_holds_only_the_appliance_packages(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == APPLIANCE_PACKAGES
    assert not [n for n in names if Path(n).name in DEV_MODULES]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    runtime = [r for r in requires if "extra ==" not in r]
    assert runtime and not [r for r in runtime if "aiohttp" in r]
    assert [r for r in requires if "aiohttp" in r and "extra == \"dev\"" in r]


def test_the_installed_tree_has_no_reference_server_and_no_aiohttp(venv, tmp_path):
    probe = ("import importlib.util, json; print(json.dumps({m: importlib.util.find_spec(m) "
             "is not None for m in ['appliance', 'drivers', 'display', 'sync', 'devtools', "
             "'aiohttp']}))")
    found = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True,
                           text=True, cwd=tmp_path, check=True, timeout=WAIT)
    assert json.loads(found.stdout) == {"appliance": True, "drivers": True, "display": True,
                                        "sync": True, "devtools": False, "aiohttp": False}
    (site,) = (venv / "lib").glob("python3*/site-packages")
    assert not [p for p in site.rglob("*.py")
                if p.name in DEV_MODULES and p.parent.name in APPLIANCE_PACKAGES]
    assert not list(site.glob("aiohttp*"))


@pytest.mark.parametrize("command, what", [("devserver", "the reference server"),
                                           ("demo", "the demo")])
def test_dev_commands_explain_themselves_in_one_line(venv, tmp_path, command, what):
    result = _run(venv, command, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"antrean {command}: {what} is a development tool, not installed on appliances; "
        "in a checkout run `make demo` or `pip install -e ./devtools`\n")
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("service", ["scanner", "sync", "display"])
def test_each_service_starts_and_reports_ready(venv, tmp_path, service):
    token = tmp_path / "token"
    token.write_text("device-token\n")
    config = write_config(
        tmp_path / "antrean.toml", tmp_path / "antrean.db",
        f'[server]\nurl = "http://127.0.0.1:{_closed_port()}"\ntoken_file = "{token}"\n'
        '[scanner]\nkind = "stdin"\n[display]\nsound = "off"\n')
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(WAIT)
    env = {**os.environ, "NOTIFY_SOCKET": addr, "SDL_VIDEODRIVER": "dummy",
           "SDL_AUDIODRIVER": "dummy"}
    proc = subprocess.Popen([str(venv / "bin" / "antrean"), "--config", str(config), service],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        seen: list[str] = []
        while "READY=1" not in seen:
            seen += sock.recv(4096).decode().split("\n")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
