"""The call screen's own health, published for ``antrean status`` and the heartbeat.

The render loop calls ``frame()`` once per frame; every ``PUBLISH_EVERY_S`` the frame rate
achieved since the last report, the time of the last frame, the video driver, the screen
size and the framebuffer in use are written to ``display.health_file`` (see
``appliance.display_health``), never to the store. A file that cannot be written is logged
once and retried at the next report; the screen carries on regardless.

Example (a temporary folder standing in for ``/run/antrean``, a hand-driven clock)::

    >>> import os, tempfile
    >>> from appliance.display_health import read_health
    >>> run = tempfile.TemporaryDirectory()
    >>> path = os.path.join(run.name, "display.json")
    >>> ticks = iter([0.0, 0.5, 1.0])       # seconds on the monotonic clock
    >>> health = HealthPublisher(path, "kmsdrm", (1920, 1080), monotonic=lambda: next(ticks))
    >>> health.frame(); health.frame()      # the second frame is at 1.0 s: report due
    >>> report = read_health(path)
    >>> report["fps"], report["size"], report["fresh"]
    (2.0, '1920x1080', True)
    >>> health.close(); os.path.exists(path)
    False
    >>> run.cleanup()
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from appliance.display_health import PUBLISH_EVERY_S, write_health

log = logging.getLogger(__name__)


class HealthPublisher:
    def __init__(self, path: str, driver: str, size: tuple[int, int], *,
                 framebuffer: str | None = None, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 every_s: float = PUBLISH_EVERY_S):
        self.path = path
        self.static = {"pid": os.getpid(), "driver": driver, "size": f"{size[0]}x{size[1]}",
                       "framebuffer": framebuffer}
        self._wall = wall
        self._mono = monotonic
        self.every_s = every_s
        self.frames = 0
        self.last_frame_at: float | None = None
        self._since = monotonic()
        self._frames_since = 0
        self._next = self._since + min(1.0, every_s)       # the first report comes quickly
        self.problem: str | None = None
        self.published = 0

    def frame(self) -> None:
        """Count a drawn frame; publish when a report is due."""
        self.frames += 1
        self.last_frame_at = self._wall()
        now = self._mono()
        if now >= self._next:
            self.publish(now)

    def publish(self, now: float) -> None:
        elapsed = max(now - self._since, 1e-6)
        fps = (self.frames - self._frames_since) / elapsed
        self._since, self._frames_since = now, self.frames
        self._next = now + self.every_s
        doc = {**self.static, "fps": round(fps, 1), "last_frame_at": self.last_frame_at,
               "frames": self.frames}
        try:
            write_health(self.path, doc)
        except OSError as e:
            problem = f"{type(e).__name__}: {e.strerror or e}"
            if problem != self.problem:
                log.warning("display health not published to %s (%s); set "
                            "display.health_file to a writable folder", self.path, problem)
            self.problem = problem
            return
        if self.problem is not None:
            log.info("display health published to %s again", self.path)
        self.problem = None
        self.published += 1

    def close(self) -> None:
        """Take the report away: a stopped display has no frame rate."""
        if self.published:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.published = 0
