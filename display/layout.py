"""Where everything goes on the call screen: one description, any screen size.

Regions are fractions of the safe area (the screen minus ``display.overscan_percent`` on every
side, because many TVs crop the edges of HDMI). Landscape and portrait share the same regions
in a different arrangement. Sizes of type are fractions of the screen height (landscape) or
width (portrait), chosen for a 32-inch TV read from 8 m: the ticket about a quarter of the
screen height, names about a tenth.

Example::

    >>> lay = Layout(1920, 1080, overscan_percent=3)
    >>> lay["call.ticket"]
    <rect(...)>
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pygame

from appliance.config import SCREEN_SIDE

# name: (landscape (x, y, w, h), portrait (x, y, w, h)) as fractions of the safe area.
REGIONS: dict[str, tuple[tuple[float, float, float, float], tuple[float, float, float, float]]] = {
    "header":   ((0.00, 0.00, 1.00, 0.10), (0.00, 0.00, 1.00, 0.07)),
    "call":     ((0.00, 0.10, 0.60, 0.52), (0.00, 0.07, 1.00, 0.31)),
    "counters": ((0.60, 0.10, 0.40, 0.82), (0.00, 0.38, 1.00, 0.34)),
    "waiting":  ((0.00, 0.62, 0.60, 0.30), (0.00, 0.72, 1.00, 0.21)),
    "ticker":   ((0.00, 0.92, 0.78, 0.08), (0.00, 0.93, 0.74, 0.07)),
    "status":   ((0.78, 0.92, 0.22, 0.08), (0.74, 0.93, 0.26, 0.07)),
}
# The check-in panel appears over the waiting region for a few seconds after each scan.
OVERLAYS = {"checkin": "waiting"}

# Parts inside a region: (x, y, w, h) as fractions of the region's inner box.
PARTS: dict[str, tuple[float, float, float, float]] = {
    "header.office": (0.00, 0.00, 0.62, 1.00),
    "header.date":   (0.62, 0.00, 0.24, 1.00),
    "header.clock":  (0.86, 0.00, 0.14, 1.00),
    "call.label":    (0.00, 0.00, 1.00, 0.12),
    "call.ticket":   (0.00, 0.12, 1.00, 0.48),
    "call.name":     (0.00, 0.60, 1.00, 0.20),
    "call.counter":  (0.00, 0.80, 1.00, 0.20),
    "counters.title": (0.00, 0.00, 1.00, 0.08),
    "counters.rows": (0.00, 0.09, 1.00, 0.91),
    "waiting.title": (0.00, 0.00, 0.34, 0.18),
    "waiting.late":  (0.34, 0.00, 0.66, 0.26),
    "waiting.services": (0.00, 0.28, 0.62, 0.72),
    "waiting.next":  (0.65, 0.28, 0.35, 0.72),
    "checkin.title": (0.00, 0.00, 1.00, 0.36),
    "checkin.estimate": (0.00, 0.38, 1.00, 0.30),
    "checkin.body":  (0.00, 0.70, 1.00, 0.30),
    "ticker.text":   (0.00, 0.10, 1.00, 0.80),
    "status.text":   (0.00, 0.00, 1.00, 1.00),
}

GAP = 0.008             # between regions, as a fraction of the screen's short side
PAD = 0.012             # inside a region's border, as a fraction of the type unit
MIN_ROW_FRACTION = 0.035  # a counter row is at least this much of the screen's long side
MAX_COLUMNS = 3


@dataclass(frozen=True)
class CounterGrid:
    """Row boxes for the counters that fit, and how many did not (shown as '+N')."""

    rows: list[pygame.Rect]
    hidden: int
    more: pygame.Rect | None


class Layout:
    """Rectangles for one screen size. ``lay[name]`` for regions and parts."""

    def __init__(self, width: int, height: int, overscan_percent: int = 3):
        if min(width, height) < SCREEN_SIDE[0]:
            raise ValueError(f"screen {width}x{height} is too small for the call screen")
        self.width, self.height = width, height
        self.portrait = height > width
        margin_x = round(width * overscan_percent / 100)
        margin_y = round(height * overscan_percent / 100)
        self.safe = pygame.Rect(margin_x, margin_y, width - 2 * margin_x, height - 2 * margin_y)
        self.unit = width if self.portrait else height   # type scales with this
        gap = max(2, round(min(width, height) * GAP))
        self.rects: dict[str, pygame.Rect] = {}
        self.inner: dict[str, pygame.Rect] = {}
        for name, variants in REGIONS.items():
            fx, fy, fw, fh = variants[1 if self.portrait else 0]
            s = self.safe
            x0, y0 = s.x + round(fx * s.w), s.y + round(fy * s.h)
            x1, y1 = s.x + round((fx + fw) * s.w), s.y + round((fy + fh) * s.h)
            rect = pygame.Rect(x0, y0, x1 - x0, y1 - y0).inflate(-gap, -gap)
            self.rects[name] = rect
        for overlay, base in OVERLAYS.items():
            self.rects[overlay] = self.rects[base].copy()
        for name, rect in self.rects.items():
            pad = max(2, round(self.unit * PAD))
            self.inner[name] = rect.inflate(-2 * pad, -2 * pad)
        for part, (fx, fy, fw, fh) in PARTS.items():
            box = self.inner[part.split(".")[0]]
            x0, y0 = box.x + round(fx * box.w), box.y + round(fy * box.h)
            x1, y1 = box.x + round((fx + fw) * box.w), box.y + round((fy + fh) * box.h)
            self.rects[part] = pygame.Rect(x0, y0, x1 - x0, y1 - y0)   # shared edges, no overlap

    def __getitem__(self, name: str) -> pygame.Rect:
        return self.rects[name]

    def type_px(self, fraction: float) -> int:
        """A type size as a fraction of the screen's reference dimension."""
        return max(8, round(self.unit * fraction))

    def counter_grid(self, count: int) -> CounterGrid:
        """Boxes for ``count`` counter rows: one column while they fit, then up to three
        columns, then the rest hidden behind a '+N' line (40 counters on 720p still fit)."""
        area = self.rects["counters.rows"]
        if count <= 0:
            return CounterGrid([], 0, None)
        min_h = max(18, round(max(self.width, self.height) * MIN_ROW_FRACTION))
        max_h = round(area.h / 5)
        per_column = max(1, area.h // min_h)
        columns = min(MAX_COLUMNS, math.ceil(count / per_column))
        while columns > 1 and area.w / columns < area.h * 0.35:
            columns -= 1                 # too narrow to read a ticket: hide some instead
        capacity = per_column * columns
        shown = count if count <= capacity else capacity - 1
        rows_in_column = min(per_column, math.ceil(max(shown, 1) / columns))
        if count > capacity:
            rows_in_column = per_column
        row_h = min(max_h, area.h // rows_in_column)
        col_w = area.w // columns
        gap = max(2, col_w // 40)
        rows = []
        for i in range(shown):
            col, row = divmod(i, rows_in_column)
            rows.append(pygame.Rect(area.x + col * col_w, area.y + row * row_h,
                                    col_w - (gap if col < columns - 1 else 0), row_h))
        hidden = count - shown
        more = None
        if hidden:
            col, row = divmod(shown, rows_in_column)
            more = pygame.Rect(area.x + col * col_w, area.y + row * row_h, col_w, row_h)
        return CounterGrid(rows, hidden, more)
