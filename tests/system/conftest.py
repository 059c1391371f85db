"""The booted appliance: a Debian 12 VM with Antrean installed by systemd/install.sh.

Run with ``make system-test`` (it installs QEMU, mmdebstrap and tesseract and sets
ANTREAN_SYSTEM_TEST=1); a plain ``pytest tests`` skips this folder. The session fixture
builds or reuses the cached image, boots it, installs the appliance inside exactly as a
technician would, configures it for the reference server on the host, and powers it off; the
tests then boot it as an office would and check what a person would see.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from image import ImageError, guest_image, wheelhouse  # noqa: E402
from lobby import (  # noqa: E402
    REPO,
    WORK,
    Central,
    Lobby,
    choose_accel,
    install,
    installed_disk,
    qemu_runs,
    record,
    say,
    transfer_disk,
    write_report,
)
from vm import Machine  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ANTREAN_SYSTEM_TEST") == "1":
        return
    skip = pytest.mark.skip(reason="the booted-VM system test runs with `make system-test`")
    for item in items:
        if str(item.fspath).startswith(str(HERE)):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lobby():
    reason = qemu_runs()
    if reason:
        pytest.skip(reason)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    t0 = time.monotonic()
    try:
        image = guest_image()
        wheels = wheelhouse(str(REPO / ".venv" / "bin" / "pip"))
    except ImageError as e:
        pytest.fail(str(e), pytrace=False)
    record("image_ready_s", round(time.monotonic() - t0, 1))
    central = Central(WORK / "central")
    accel = choose_accel(image, WORK, central.port)
    say(f"accelerator: {accel} ({'KVM' if accel == 'kvm' else 'TCG, software emulation'})")
    record("accelerator", accel)
    machine = Machine(image, WORK / "vm", central.port,
                      extra_drive=transfer_disk(WORK, wheels), accel=accel)
    lobby = Lobby(machine, central, WORK)
    try:
        install(lobby, installed_disk(image, wheels))
        yield lobby
    finally:
        machine.close()
        central.stop()
        write_report()


