"""``antrean display``: the call screen service, and ``--snapshot`` for technicians and tests.

Video: on a Raspberry Pi SDL's ``kmsdrm`` driver, fullscreen, cursor hidden, no desktop
needed (the service user needs the ``video`` and ``render`` groups). Elsewhere a window when a
display exists, else the ``dummy`` driver. On a Pi that did not get ``kmsdrm`` the service
says so and exits non-zero instead of drawing into nothing.

The loop: poll the store (one ``PRAGMA data_version`` per frame), draw what changed, hand the
dirty rectangles to ``pygame.display.update``, feed the announcer, ping the watchdog, sleep to
``display.fps``. SIGTERM ends it cleanly.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import time

from appliance.errors import AntreanError
from appliance.notify import SdNotify

log = logging.getLogger(__name__)

PI_MODEL_PATH = "/proc/device-tree/model"
DEFAULT_WINDOW = (1280, 720)
DEFAULT_HEADLESS = (1920, 1080)
FPS_LOG_S = 900.0           # log the achieved frame rate every 15 minutes


class DisplayError(AntreanError, RuntimeError):
    """The screen cannot be used; the message is the one line printed."""


def is_raspberry_pi(path: str = PI_MODEL_PATH) -> bool:
    try:
        with open(path, "rb") as f:
            return b"Raspberry Pi" in f.read()
    except OSError:
        return False


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``'1920x1080'`` -> (1920, 1080); ``None``/``'auto'`` -> None."""
    if text in (None, "", "auto"):
        return None
    m = re.fullmatch(r"([1-9][0-9]{2,4})x([1-9][0-9]{2,4})", text.strip())
    if not m:
        raise DisplayError(f"size {text!r} is not WIDTHxHEIGHT (for example 1920x1080)")
    w, h = int(m[1]), int(m[2])
    if min(w, h) < 240 or max(w, h) > 8192:
        raise DisplayError(f"size {text} is out of range: each side 240 to 8192 pixels")
    return w, h


def choose_driver(environ=os.environ, on_pi: bool | None = None) -> str | None:
    """The SDL video driver to ask for, or None to let SDL pick (a desktop window)."""
    if environ.get("SDL_VIDEODRIVER"):
        return environ["SDL_VIDEODRIVER"]
    if on_pi if on_pi is not None else is_raspberry_pi():
        return "kmsdrm"
    if not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"):
        return "dummy"
    return None


def open_display(size: tuple[int, int] | None, *, on_pi: bool):
    """Initialise pygame's video and return the screen surface."""
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
    surface = pygame.display.set_mode(size, flags)
    pygame.display.set_caption("Antrean")
    if fullscreen:
        pygame.mouse.set_visible(False)
    log.info("display: %s driver, %dx%d%s", got, *surface.get_size(),
             " fullscreen" if fullscreen else "")
    return surface


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
        screen.feed(snap, [], time.monotonic())
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

    from display.model import StoreView
    from display.screen import Screen
    from display.sound import Announcer
    from display.voice import ClipLibrary

    notify = SdNotify()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    on_pi = is_raspberry_pi()
    surface = open_display(size, on_pi=on_pi)
    pygame.font.init()
    announcer = Announcer(config.display.sound, ClipLibrary(config.display.clips_dir or None))
    view = StoreView(config)
    screen = Screen(surface, config, announcer=announcer, wall=view.now)
    clock = pygame.time.Clock()
    fps = config.display.fps
    watchdog = notify.watchdog_interval()
    next_ping = 0.0
    next_fps_log = time.monotonic() + FPS_LOG_S
    notify.ready(f"call screen {surface.get_width()}x{surface.get_height()}")
    try:
        while not stop:
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    stop.append(True)
            now = time.monotonic()
            render_step(view, screen, now)
            announcer.pump()
            if watchdog and now >= next_ping:
                notify.watchdog()
                next_ping = now + watchdog
            if now >= next_fps_log:
                log.info("display: %.1f fps", clock.get_fps())
                next_fps_log = now + FPS_LOG_S
            clock.tick(fps)
    finally:
        notify.stopping()
        announcer.close()
        view.close()
        pygame.quit()
    return 0
