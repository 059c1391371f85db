"""``antrean display``: the call screen service, and ``--snapshot`` for technicians and tests.

Video: on a Raspberry Pi SDL's ``kmsdrm`` driver, fullscreen, cursor hidden, no desktop
needed (the service user needs the ``video`` and ``render`` groups). Elsewhere a window when a
display exists, else the ``dummy`` driver. On a Pi that did not get ``kmsdrm`` the service
says so and exits non-zero instead of drawing into nothing.

Framebuffer: SDL backs the window either with the video driver's own window framebuffer
(``software``: X11 shared memory, plain memory on ``dummy``) or with a texture drawn by a GL
renderer (``accelerated``: Mesa in the process). The screen is drawn by pygame's software
blitter either way and only changed rectangles are shown, so the renderer buys nothing here
but costs memory: under X11 the call screen measured 131 MB PSS with SDL's default against
39 MB with the software framebuffer (``bench/display_memory.py``). ``display.framebuffer =
"auto"`` therefore asks for ``software`` wherever the driver has a native window
framebuffer; ``kmsdrm`` and ``wayland`` have none in SDL 2, so SDL needs a renderer there
whatever is asked (``FRAMEBUFFER_BY_DRIVER``).

The loop: poll the store (one ``PRAGMA data_version`` per frame), draw what changed, hand the
dirty rectangles to ``pygame.display.update``, feed the announcer, ping the watchdog, publish
the screen's health every few seconds (``display.health``: a small file, never the store),
sleep to ``display.fps``. SIGTERM ends it cleanly.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

from appliance.config import parse_screen_size
from appliance.errors import AntreanError
from appliance.reactor import Reactor

log = logging.getLogger(__name__)

PI_MODEL_PATH = "/proc/device-tree/model"
DEFAULT_WINDOW = (1280, 720)
DEFAULT_HEADLESS = (1920, 1080)
FPS_LOG_S = 900.0           # log the achieved frame rate every 15 minutes
FRAMEBUFFER_HINT = "SDL_FRAMEBUFFER_ACCELERATION"
# display.framebuffer = "auto": what to ask SDL for, per video driver (see the docstring).
FRAMEBUFFER_BY_DRIVER = {"x11": "software", "dummy": "software", "offscreen": "software",
                         "kmsdrm": "accelerated", "wayland": "accelerated"}
# Drivers with no native window framebuffer in SDL 2: a renderer is the only choice.
RENDERER_ONLY = {"kmsdrm", "wayland"}
# The renderer named for the accelerated framebuffer, per driver (SDL's "1" means its first
# working pick). On kmsdrm SDL 2.26 picks desktop OpenGL first, but Debian's and Raspberry Pi
# OS's SDL do not depend on the library that provides it (libOpenGL.so.0): every GL call then
# does nothing, the service runs at full frame rate and the monitor stays black. GL ES 2 is
# what the Pi's GPU speaks natively, and install.sh installs its library (libgles2).
RENDERER_BY_DRIVER = {"kmsdrm": "opengles2"}
# SDL_FRAMEBUFFER_ACCELERATION values that choose on/off rather than name a renderer.
HINT_SWITCHES = {"", "0", "1", "true", "false", "software"}


class DisplayError(AntreanError, RuntimeError):
    """The screen cannot be used; the message is the one line printed."""


def is_raspberry_pi(path: str = PI_MODEL_PATH) -> bool:
    try:
        with open(path, "rb") as f:
            return b"Raspberry Pi" in f.read()
    except OSError:
        return False


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``'1920x1080'`` -> (1920, 1080); ``None``/``'auto'`` -> None.

    Checked with the config's own definition (``appliance.config.parse_screen_size``).
    """
    if text in (None, ""):
        return None
    try:
        return parse_screen_size(text)
    except ValueError as e:
        raise DisplayError(f"screen size {e}") from None


def choose_driver(environ=os.environ, on_pi: bool | None = None) -> str | None:
    """The SDL video driver to ask for, or None to let SDL pick (a desktop window)."""
    if environ.get("SDL_VIDEODRIVER"):
        return environ["SDL_VIDEODRIVER"]
    if on_pi if on_pi is not None else is_raspberry_pi():
        return "kmsdrm"
    if not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"):
        return "dummy"
    return None


def choose_framebuffer(setting: str, driver: str, environ=os.environ) -> str:
    """``software`` or ``accelerated``: what the window will be backed by on ``driver``.

    ``setting`` is ``display.framebuffer``; with ``auto`` an ``SDL_FRAMEBUFFER_ACCELERATION``
    in the environment wins (SDL's own knob, for experiments), else the per-driver table.
    """
    if driver in RENDERER_ONLY:
        if setting == "software":
            log.warning("display.framebuffer = software is not possible on the %s driver: "
                        "SDL needs a renderer there; using it", driver)
        return "accelerated"
    if setting == "auto" and environ.get(FRAMEBUFFER_HINT):
        hint = environ[FRAMEBUFFER_HINT].strip().lower()
        return "software" if hint in ("0", "false", "software") else "accelerated"
    if setting == "auto":
        return FRAMEBUFFER_BY_DRIVER.get(driver, "software")
    return setting


def framebuffer_hint(chosen: str, driver: str, environ=os.environ) -> str:
    """The ``SDL_FRAMEBUFFER_ACCELERATION`` value for ``chosen`` on ``driver``.

    A renderer already named there (a technician's experiment) is kept; otherwise the
    accelerated framebuffer names the driver's renderer where one is known to draw.

    >>> framebuffer_hint("accelerated", "kmsdrm", environ={})
    'opengles2'
    >>> framebuffer_hint("software", "x11", environ={}), framebuffer_hint("accelerated", "x11", {})
    ('0', '1')
    """
    if chosen == "software":
        return "0"
    named = environ.get(FRAMEBUFFER_HINT, "").strip().lower()
    if named not in HINT_SWITCHES:
        return named
    return RENDERER_BY_DRIVER.get(driver, "1")


def open_display(size: tuple[int, int] | None, *, on_pi: bool,
                 framebuffer: str = "auto"):
    """Initialise pygame's video; returns the screen surface and the framebuffer chosen."""
    import pygame

    driver = choose_driver(on_pi=on_pi)
    if driver:
        os.environ["SDL_VIDEODRIVER"] = driver
    try:
        pygame.display.init()
    except pygame.error as e:
        raise DisplayError(f"no video output ({driver or 'default'} driver): {e}; on a Pi "
                           "check the HDMI cable and that the service user is in the video "
                           "and render groups") from None
    # SDL 2.26 (Debian's and Raspberry Pi OS's pygame) names it "KMSDRM", newer SDLs "kmsdrm".
    got = pygame.display.get_driver().lower()
    if on_pi and got != "kmsdrm":
        pygame.display.quit()
        raise DisplayError(f"this Raspberry Pi got the {got!r} video driver, not kmsdrm: the "
                           "screen would stay dark; check the HDMI cable, the vc4-kms-v3d "
                           "overlay and the video/render groups")
    fullscreen = got == "kmsdrm"
    if size is None:
        if fullscreen:
            info = pygame.display.Info()
            size = (info.current_w, info.current_h)
        else:
            size = DEFAULT_HEADLESS if got in ("dummy", "offscreen") else DEFAULT_WINDOW
    flags = pygame.FULLSCREEN if fullscreen else 0
    chosen = choose_framebuffer(framebuffer, got)
    # Read by SDL when set_mode creates the window surface, so it must be set before.
    hint = os.environ[FRAMEBUFFER_HINT] = framebuffer_hint(chosen, got)
    renderer = "" if hint in HINT_SWITCHES else f" ({hint} renderer)"
    try:
        surface = pygame.display.set_mode(size, flags)
    except pygame.error as e:
        pygame.display.quit()
        raise DisplayError(f"cannot open the {got} screen at {size[0]}x{size[1]} with the "
                           f"{chosen} framebuffer{renderer}: {e}; check that libgles2, libegl1 "
                           "and libgl1-mesa-dri are installed (systemd/install.sh installs "
                           "them)") from None
    pygame.display.set_caption("Antrean")
    if fullscreen:
        pygame.mouse.set_visible(False)
    log.info("display: %s driver, %dx%d%s, %s framebuffer%s", got, *surface.get_size(),
             " fullscreen" if fullscreen else "", chosen, renderer)
    return surface, chosen


def render_step(view, screen, now: float) -> list:
    """One frame of the screen loop: read what changed, draw it, show only the changed areas.

    The service and the benchmark run exactly this; returns the updated rectangles.
    """
    import pygame

    snap, new_calls = view.poll()
    screen.feed(snap, new_calls, now, view.new_scan)
    dirty = screen.frame(now)
    if dirty:
        pygame.display.update(dirty)
    return dirty


def _skip_unused_imports() -> None:
    """Keep pygame from importing numpy (for surfarray) and pkg_resources (for its data).

    The screen uses neither, and together they are about 30 MB of a Pi's memory and a tenth
    of a second of start-up. Only in the display's own process, and only if nobody loaded
    them yet: pygame treats them as optional and carries on without.
    """
    for name in ("numpy", "pkg_resources"):
        if name not in sys.modules:
            sys.modules[name] = None


def run(config, snapshot: str | None = None, size: str | None = None) -> int:
    """Run the call screen until SIGTERM, or render one ``snapshot`` PNG and return."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    _skip_unused_imports()
    try:
        wanted = parse_size(size if size is not None else config.display.size)
        if snapshot is not None:
            return _snapshot(config, snapshot, wanted)
        return _serve(config, wanted)
    except DisplayError as e:
        log.error("%s", e)
        return 1
    except FileNotFoundError as e:      # display.font missing
        log.error("%s", e)
        return 1


def _snapshot(config, out: str, size: tuple[int, int] | None) -> int:
    import pygame

    from display.model import StoreView
    from display.screen import Screen

    os.environ["SDL_VIDEODRIVER"] = "dummy"
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise DisplayError(f"cannot write snapshot {out}: folder {folder} does not exist")
    pygame.display.init()
    pygame.font.init()
    try:
        surface = pygame.display.set_mode(size or DEFAULT_HEADLESS)
        view = StoreView(config)
        snap, _ = view.poll()
        view.close()
        screen = Screen(surface, config, wall=view.now)
        # What the lobby sees right now: the check-in panel while a scan is that recent.
        scan = snap.latest_scan
        recent = scan is not None and view.now() - scan.at < config.display.checkin_panel_seconds
        screen.feed(snap, [], time.monotonic(), new_scan=recent)
        screen.frame(time.monotonic())
        try:
            pygame.image.save(surface, out)
        except (pygame.error, OSError) as e:
            raise DisplayError(f"cannot write snapshot {out}: {e}") from None
        print(out)
        return 0
    finally:
        pygame.quit()


def _serve(config, size: tuple[int, int] | None) -> int:
    import pygame

    from display.health import HealthPublisher
    from display.model import StoreView
    from display.screen import Screen
    from display.sound import Announcer
    from display.voice import library_for

    reactor = Reactor()
    reactor.stop_on_signals((signal.SIGTERM,))
    on_pi = is_raspberry_pi()
    surface, framebuffer = open_display(size, on_pi=on_pi,
                                        framebuffer=config.display.framebuffer)
    pygame.font.init()
    announcer = Announcer(config.display.sound, library_for(config.display))
    view = StoreView(config)
    screen = Screen(surface, config, announcer=announcer, wall=view.now)
    health = HealthPublisher(config.display.health_file, pygame.display.get_driver(),
                             surface.get_size(), framebuffer=framebuffer, wall=view.now)
    clock = pygame.time.Clock()
    fps = config.display.fps
    # What runs when: a frame per display.fps tick (pygame's clock paces the loop), the
    # watchdog at its pace, the achieved frame rate in the log every FPS_LOG_S.
    reactor.every(FPS_LOG_S, lambda: log.info("display: %.1f fps", clock.get_fps()),
                  first=time.monotonic() + FPS_LOG_S)
    reactor.ready(f"call screen {surface.get_width()}x{surface.get_height()}")
    try:
        while not reactor.stopped:
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    reactor.request_stop()
            now = time.monotonic()
            render_step(view, screen, now)
            health.frame()
            announcer.pump()
            reactor.keep_alive(now)
            reactor.run_timers(now)
            clock.tick(fps)
    finally:
        reactor.stopping()
        health.close()
        announcer.close()
        view.close()
        pygame.quit()
    return 0
