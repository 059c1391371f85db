"""``clock.synced`` must be true under the shipped units once NTP has set the clock.

The units run with ``ProtectClock=yes`` and ``SystemCallFilter=@system-service``: both refuse
the ``@clock`` system calls with EPERM, so the kernel cannot be asked with ``adjtimex``.
These tests run the check inside a real seccomp filter that refuses the same calls, and under
``systemd-run`` with the unit's own settings where systemd is the init system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import seccomp_filter

from appliance.clock import system_clock_synced

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# The child refuses what ProtectClock= refuses (systemd's @clock set) with EPERM, the way the
# unit's filter does, then asks the kernel directly and through system_clock_synced().
CHILD = textwrap.dedent("""
    import ctypes, errno, json, sys
    sys.path.insert(0, sys.argv[1])
    from seccomp_filter import CLOCK_CALLS, refuse
    refuse(CLOCK_CALLS, errno.EPERM)
    libc = ctypes.CDLL(None, use_errno=True)
    refused = libc.adjtimex(ctypes.create_string_buffer(512)) == -1
    from appliance.clock import system_clock_synced
    print(json.dumps({"adjtimex_refused": refused, "errno": ctypes.get_errno(),
                      "with_flag": system_clock_synced(sys.argv[2]),
                      "without_flag": system_clock_synced(sys.argv[2] + ".absent")}))
""")


def _in_clock_filter(flag: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(TESTS), str(flag)], cwd=ROOT,
                         env={**os.environ, "PATH": "/nonexistent"},   # no timedatectl
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(seccomp_filter.LIBRARY is None, reason="libseccomp is not installed "
                    "(it comes with the Debian package systemd, which make installs)")
def test_synced_inside_the_units_clock_filter(tmp_path):
    flag = tmp_path / "synchronized"
    flag.touch()    # what systemd-timesyncd creates under /run once it has set the clock
    seen = _in_clock_filter(flag)
    assert seen["adjtimex_refused"] and seen["errno"] == 1    # EPERM, as under the unit
    assert seen["with_flag"] is True
    # Without the flag, with adjtimex refused and no timedated to ask: not synchronised.
    assert seen["without_flag"] is False


def test_the_flag_decides_and_the_kernel_answers_without_it(tmp_path):
    flag = tmp_path / "synchronized"
    assert system_clock_synced(str(flag)) is _kernel_answer()
    flag.touch()
    assert system_clock_synced(str(flag)) is True


def _kernel_answer() -> bool:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    state = libc.adjtimex(ctypes.create_string_buffer(512))
    assert state != -1, "adjtimex is allowed outside a sandbox"
    return state != 5


def _systemd_is_init() -> bool:
    return os.path.isdir("/run/systemd/system")    # sd_booted()'s own test


@pytest.mark.skipif(not _systemd_is_init(), reason="systemd is not the init system (PID 1) "
                    "here, so systemd-run cannot start a sandboxed unit; the seccomp test "
                    "above refuses the same system calls without it")
@pytest.mark.skipif(shutil.which("systemd-run") is None, reason="systemd-run is missing")
def test_synced_under_systemd_run_with_the_units_sandbox(tmp_path):
    flag = tmp_path / "synchronized"
    flag.touch()
    probe = ("import json, sys; from appliance.clock import system_clock_synced, "
             "_kernel_synced; print(json.dumps({'kernel': _kernel_synced(), "
             "'synced': system_clock_synced(sys.argv[1])}))")
    out = subprocess.run(
        ["systemd-run", "--quiet", "--wait", "--pipe", "--collect",
         "-p", "ProtectClock=yes", "-p", "SystemCallFilter=@system-service",
         "-p", "SystemCallFilter=~@privileged @resources", "-p", "SystemCallErrorNumber=EPERM",
         "-p", "ProtectSystem=strict", "-p", "PrivateTmp=no", "-p", f"WorkingDirectory={ROOT}",
         sys.executable, "-c", probe, str(flag)],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["kernel"] is None           # adjtimex refused, as the issue says
    assert seen["synced"] is True
