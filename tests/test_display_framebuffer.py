"""The framebuffer SDL backs the call screen with, chosen per video driver.

Under X11, SDL's default loads Mesa's GL stack into the display (131 MB PSS measured,
against 39 MB with SDL's software framebuffer; figures in bench/REPORT.md). The real
``antrean display`` process runs on a real X server (Xvfb) and its memory map is read.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from test_display_world import Office

from appliance.display_health import read_health
from devtools.supervisor import Supervisor

needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None,
                                reason="Xvfb is not installed (the Makefile installs xvfb)")
GL_LIBRARY = re.compile(r"^(libGL|libGLX|libEGL|libLLVM|libgallium|libglapi)|_dri\.so")


def gl_libraries(pid: int) -> set[str]:
    """Mesa / GL shared objects mapped into process ``pid``."""
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        name = os.path.basename(line.split()[-1]) if "/" in line else ""
        if GL_LIBRARY.search(name):
            found.add(name)
    return found


def display_argv(config_path: str) -> list[str]:
    return [sys.executable, "-m", "appliance.cli", "--config", config_path, "display",
            "--size", "1280x720"]


@needs_xvfb
def test_under_x11_the_screen_draws_without_mesa_in_the_process(tmp_path):
    for folder in ("office", "gl"):
        (tmp_path / folder).mkdir()
    office = Office(tmp_path / "office", extra='[display]\nhealth_file = "health.json"\n')
    office.check_in(3)
    office.queue.call_next(1)
    with Supervisor(tmp_path / "run", echo=None) as sup:
        x_display = sup.start_virtual_x()
        env = {"SDL_VIDEODRIVER": "x11", "DISPLAY": x_display, "SDL_AUDIODRIVER": "dummy"}
        sup.start("display", display_argv(office.config.path), env=env)
        sup.wait_ready("display", timeout=60)
        pid = sup.children["display"].pid
        assert gl_libraries(pid) == set()            # SDL's default maps about 30 of them
        health = office.config.display.health_file
        report = None
        deadline = time.monotonic() + 30            # the first report comes after 1 s
        while report is None and time.monotonic() < deadline:
            time.sleep(0.02)
            report = read_health(health)
        assert report and (report["driver"], report["framebuffer"]) == ("x11", "software")

        # The choice is the config's: asked for, the accelerated framebuffer loads Mesa.
        accelerated = Office(tmp_path / "gl", extra='[display]\nframebuffer = "accelerated"\n')
        sup.start("display-gl", display_argv(accelerated.config.path), env=env)
        sup.wait_ready("display-gl", timeout=60)
        assert gl_libraries(sup.children["display-gl"].pid)
        accelerated.close()
    office.close()


def test_the_framebuffer_per_driver(caplog):
    from display.service import choose_framebuffer

    table = {d: choose_framebuffer("auto", d, environ={})
             for d in ("x11", "dummy", "offscreen", "kmsdrm", "wayland")}
    assert table == {"x11": "software", "dummy": "software", "offscreen": "software",
                     "kmsdrm": "accelerated", "wayland": "accelerated"}
    assert choose_framebuffer("accelerated", "x11", environ={}) == "accelerated"
    assert choose_framebuffer("auto", "x11", {"SDL_FRAMEBUFFER_ACCELERATION": "1"}) == (
        "accelerated")
    assert choose_framebuffer("software", "x11", {"SDL_FRAMEBUFFER_ACCELERATION": "1"}) == (
        "software")
    with caplog.at_level("WARNING"):
        assert choose_framebuffer("software", "kmsdrm", environ={}) == "accelerated"
    assert "needs a renderer" in caplog.text


def test_on_kms_the_window_is_drawn_with_gl_es_2():
    """SDL's own first pick on kmsdrm, desktop GL, drew a black monitor in the booted VM.

    Debian's SDL does not pull in libOpenGL.so.0, so that renderer's calls do nothing;
    the system test (tests/system) shows the picture through GL ES 2.
    """
    from display.service import framebuffer_hint

    assert framebuffer_hint("accelerated", "kmsdrm", environ={}) == "opengles2"
    assert framebuffer_hint("accelerated", "kmsdrm", {"SDL_FRAMEBUFFER_ACCELERATION": "1"}) == (
        "opengles2")
    assert framebuffer_hint("accelerated", "x11", environ={}) == "1"
    assert framebuffer_hint("software", "x11", environ={}) == "0"
    # A renderer a technician names in the unit's environment is kept, on any driver.
    assert framebuffer_hint("accelerated", "kmsdrm",
                            {"SDL_FRAMEBUFFER_ACCELERATION": "OpenGL"}) == "opengl"
