"""Text for the lobby screen: a legible open font, fallbacks for what it lacks, fit and cache.

DejaVu Sans (or ``display.font``) draws Latin; the Noto families and Droid Sans Fallback draw
Arabic, Hebrew, Devanagari, Thai, symbols and CJK, chosen character by character, so a name
never comes out as empty boxes. Characters no font has (most emoji) and control characters
are dropped rather than drawn as boxes. Right-to-left runs are put in visual order (Hebrew
exactly; Arabic in isolated letter forms, legible though not joined).

``fit()`` shrinks text to its box, then clips it with an ellipsis at the smallest size, and
caches the rendered surface (bounded LRU): the screen re-renders only text that changed.

Example::

    >>> r = TextRenderer()
    >>> surf = r.fit("Bapak Andi S.", 800, 120, max_size=110)
    >>> surf.get_width() <= 800 and surf.get_height() <= 120
    True
"""

from __future__ import annotations

import collections
import logging
import os
import unicodedata

import pygame
import pygame.freetype

log = logging.getLogger(__name__)

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/noto",
             "/usr/share/fonts/truetype/droid")
PRIMARY = {False: "DejaVuSans.ttf", True: "DejaVuSans-Bold.ttf"}
FALLBACKS = {
    False: ("NotoSans-Regular.ttf", "NotoSansArabic-Regular.ttf", "NotoSansHebrew-Regular.ttf",
            "NotoSansDevanagari-Regular.ttf", "NotoSansThai-Regular.ttf",
            "NotoSansSymbols2-Regular.ttf", "NotoSansSymbols-Regular.ttf",
            "DroidSansFallbackFull.ttf"),
    True: ("NotoSans-Bold.ttf", "NotoSansArabic-Bold.ttf", "NotoSansHebrew-Bold.ttf",
           "NotoSansDevanagari-Bold.ttf", "NotoSansThai-Bold.ttf", "NotoSansSymbols2-Regular.ttf",
           "NotoSansSymbols-Bold.ttf", "DroidSansFallbackFull.ttf"),
}
ELLIPSIS = "…"
RTL_CLASSES = {"R", "AL"}
LTR_CLASSES = {"L", "EN", "AN"}
MAX_FONTS = 64          # open faces per chain (each size is its own FreeType face)
SIZE_STEP = 0.92        # shrink-to-fit tries sizes in steps of 8 %, so few Font objects exist


def _find(name: str) -> str | None:
    for folder in FONT_DIRS:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


class FontChain:
    """The primary font and its fallbacks at every size used, plus which glyphs each has."""

    def __init__(self, primary: str | None = None, *, bold: bool = False):
        paths = []
        if primary:
            if not os.path.isfile(primary):
                raise FileNotFoundError(f"display.font {primary} does not exist; install the "
                                        "font or leave display.font empty for DejaVu Sans")
            paths.append(primary)
        else:
            found = _find(PRIMARY[bold])
            if found:
                paths.append(found)
        paths += [p for p in (_find(n) for n in FALLBACKS[bold]) if p and p not in paths]
        if not paths:
            paths = [None]                   # pygame's built-in font: better than nothing
            log.warning("no DejaVu or Noto fonts found; install fonts-dejavu-core fonts-noto-core")
        self.paths = paths
        self._fonts: dict[tuple[int, int], pygame.font.Font] = {}
        self._covers: dict[str, int | None] = {}
        self._probes: dict[int, pygame.freetype.Font] = {}

    def font(self, index: int, size: int) -> pygame.font.Font:
        key = (index, size)
        font = self._fonts.pop(key, None)
        if font is None:
            font = pygame.font.Font(self.paths[index], size)
            while len(self._fonts) >= MAX_FONTS:  # least recently used first
                del self._fonts[next(iter(self._fonts))]
        self._fonts[key] = font                   # most recently used last
        return font

    def font_for(self, ch: str) -> int | None:
        """Index of the first font with a glyph for ``ch``; None if none has it.

        pygame.font cannot tell a missing glyph from a real one (it measures the .notdef box),
        so coverage is asked of FreeType, which answers None for a glyph the font lacks.
        """
        if ch in self._covers:
            return self._covers[ch]
        found = None
        if ch == " ":
            found = 0
        else:
            for i in range(len(self.paths)):
                try:
                    metrics = self._probe(i).get_metrics(ch)
                except (pygame.error, ValueError, UnicodeError):
                    metrics = [None]
                if metrics and metrics[0] is not None:
                    found = i
                    break
        self._covers[ch] = found
        return found

    def _probe(self, index: int):
        probe = self._probes.get(index)
        if probe is None:
            if not pygame.freetype.get_init():
                pygame.freetype.init()
            path = self.paths[index]
            probe = self._probes[index] = (pygame.freetype.Font(path, 16) if path
                                           else pygame.freetype.SysFont(None, 16))
        return probe


CACHE_BYTES = 8 * 1024 * 1024


def _bytes(surf: pygame.Surface) -> int:
    return surf.get_width() * surf.get_height() * surf.get_bytesize()


def clean(text: str | None) -> str:
    """Drop control/format characters, collapse blanks; what is left is safe to measure."""
    out = []
    for ch in text or "":
        cat = unicodedata.category(ch)
        if cat in ("Zs", "Zl", "Zp") or ch in "\t\n\r":
            out.append(" ")
        elif cat[0] != "C":             # Cc control, Cf format, Cs surrogate, Co, Cn
            out.append(ch)
    return " ".join("".join(out).split())


def visual_order(text: str) -> str:
    """Reverse right-to-left runs in a left-to-right line (a small subset of the bidi rules)."""
    if not any(unicodedata.bidirectional(c) in RTL_CLASSES for c in text):
        return text
    out, run, tail = [], [], []
    for ch in text:
        cls = unicodedata.bidirectional(ch)
        if cls in RTL_CLASSES:
            run.extend(tail)
            tail = []
            run.append(ch)
        elif cls in LTR_CLASSES:
            out.extend(reversed(run))
            out.extend(tail)
            run, tail = [], []
            out.append(ch)
        elif run:
            tail.append(ch)             # a neutral: belongs to the run only if RTL follows
        else:
            out.append(ch)
    out.extend(reversed(run))
    out.extend(tail)
    return "".join(out)


class TextRenderer:
    """Renders and fits text with a bounded cache of finished surfaces.

    ``cache_size=0`` disables caching (the benchmark's naive renderer).
    """

    def __init__(self, font_path: str | None = None, *, cache_size: int = 512,
                 cache_bytes: int = CACHE_BYTES):
        if not pygame.font.get_init():
            pygame.font.init()
        self.chains = {False: FontChain(font_path, bold=False),
                       True: FontChain(font_path, bold=True)}
        self.cache_size = cache_size
        self.cache_bytes = cache_bytes
        self._cached_bytes = 0
        self._cache: collections.OrderedDict[tuple, pygame.Surface] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def runs(self, text: str, bold: bool) -> list[tuple[int, str]]:
        """Split text into (font index, text) runs; glyphs no font has are dropped."""
        chain = self.chains[bold]
        kept = "".join(ch for ch in clean(text) if chain.font_for(ch) is not None)
        kept = " ".join(kept.split())   # no double blanks where dropped glyphs were
        runs: list[tuple[int, str]] = []
        for ch in visual_order(kept):
            index = (runs[-1][0] if runs else 0) if ch == " " else chain.font_for(ch)
            if runs and runs[-1][0] == index:
                runs[-1] = (index, runs[-1][1] + ch)
            else:
                runs.append((index, ch))
        return runs

    def measure(self, runs: list[tuple[int, str]], size: int, bold: bool) -> tuple[int, int]:
        chain = self.chains[bold]
        width, height = 0, 0
        for index, part in runs:
            w, h = chain.font(index, size).size(part)
            width += w
            height = max(height, h)
        return width, height or chain.font(0, size).get_height()

    def render_runs(self, runs: list[tuple[int, str]], size: int, color, bold: bool):
        chain = self.chains[bold]
        fonts = [chain.font(i, size) for i, _ in runs]
        ascent = max([f.get_ascent() for f in fonts] or [chain.font(0, size).get_ascent()])
        descent = min([f.get_descent() for f in fonts] or [chain.font(0, size).get_descent()])
        width = sum(f.size(part)[0] for f, (_, part) in zip(fonts, runs, strict=True))
        surf = pygame.Surface((max(1, width), max(1, ascent - descent)), pygame.SRCALPHA)
        x = 0
        for font, (_, part) in zip(fonts, runs, strict=True):
            glyphs = font.render(part, True, color)
            surf.blit(glyphs, (x, ascent - font.get_ascent()))
            x += glyphs.get_width()
        return surf

    def fit(self, text: str | None, max_w: int, max_h: int, *, max_size: int,
            min_size: int = 12, color=(255, 255, 255), bold: bool = False) -> pygame.Surface:
        """``text`` at the largest size <= ``max_size`` that fits ``max_w`` x ``max_h``;
        at ``min_size`` and still too wide, cut with an ellipsis. Never larger than the box."""
        key = (text, max_w, max_h, max_size, min_size, tuple(color), bold)
        return self._cached(key, lambda: self._fit(text or "", max(1, max_w), max(1, max_h),
                                                   max_size, min(min_size, max_size), color,
                                                   bold))

    def _cached(self, key: tuple, build) -> pygame.Surface:
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return cached
        self.misses += 1
        surf = build()
        if self.cache_size:
            self._cache[key] = surf
            self._cached_bytes += _bytes(surf)
            # Bounded by count and by pixels: a call's huge ticket text is megabytes, and a
            # day of calls must not grow the display's memory (the soak test measures it).
            while len(self._cache) > 1 and (len(self._cache) > self.cache_size
                                            or self._cached_bytes > self.cache_bytes):
                self._cached_bytes -= _bytes(self._cache.popitem(last=False)[1])
        return surf

    def _fit(self, text, max_w, max_h, max_size, min_size, color, bold) -> pygame.Surface:
        runs = self.runs(text, bold)
        if not runs:
            return pygame.Surface((1, 1), pygame.SRCALPHA)
        size = max(min_size, max_size)
        chain = self.chains[bold]
        while size > min_size:
            w, h = self.measure(runs, size, bold)
            if w <= max_w and h <= max_h:
                break
            size = max(min_size, int(size * SIZE_STEP))
        # at the smallest size a line may still be too tall for a tiny box: shrink on
        while size > 4 and chain.font(0, size).get_height() > max_h:
            size = max(4, int(size * SIZE_STEP))
        if self.measure(runs, size, bold)[0] > max_w:
            runs = self._ellipsize(runs, size, bold, max_w)
        surf = self.render_runs(runs, size, color, bold)
        if surf.get_width() > max_w or surf.get_height() > max_h:
            # the last guard: never draw outside the box, whatever the font metrics say
            surf = surf.subsurface((0, 0, min(surf.get_width(), max_w),
                                    min(surf.get_height(), max_h))).copy()
        return surf

    def _ellipsize(self, runs, size, bold, max_w):
        chars = [(i, ch) for i, part in runs for ch in part]
        lo, hi = 0, len(chars)
        while lo < hi:                  # the longest prefix that fits with the ellipsis
            mid = (lo + hi + 1) // 2
            if self.measure(self._join(chars[:mid] + [(0, ELLIPSIS)]), size, bold)[0] <= max_w:
                lo = mid
            else:
                hi = mid - 1
        prefix = chars[:lo]
        while prefix and prefix[-1][1] == " ":
            prefix.pop()
        return self._join(prefix + [(0, ELLIPSIS)])

    @staticmethod
    def _join(chars):
        runs: list[tuple[int, str]] = []
        for index, ch in chars:
            if runs and runs[-1][0] == index:
                runs[-1] = (index, runs[-1][1] + ch)
            else:
                runs.append((index, ch))
        return runs

    def fit_lines(self, text: str | None, max_w: int, max_h: int, *, max_size: int,
                  max_lines: int = 2, min_size: int = 12, color=(255, 255, 255),
                  bold: bool = False, center: bool = False) -> pygame.Surface:
        """Like ``fit`` but may wrap at blanks into up to ``max_lines`` lines; the last line
        is ellipsised if the words still do not fit at ``min_size``."""
        key = ("lines", text, max_w, max_h, max_size, max_lines, min_size, tuple(color), bold,
               center)
        return self._cached(key, lambda: self._fit_lines(text, max_w, max_h, max_size,
                                                         max_lines, min_size, color, bold,
                                                         center))

    def _fit_lines(self, text, max_w, max_h, max_size, max_lines, min_size, color, bold,
                   center) -> pygame.Surface:
        words = clean(text).split(" ")
        size = max(min_size, max_size)
        lines = [clean(text)]
        while True:
            line_h = self.chains[bold].font(0, size).get_linesize()
            fits_h = max(1, max_h // max(1, line_h))
            lines = self._wrap(words, size, bold, max_w, min(max_lines, fits_h))
            if lines is not None or size <= min_size:
                break
            size = max(min_size, int(size * SIZE_STEP))
        if lines is None:               # too long even at min size: cut the last line
            fits_h = max(1, max_h // max(1, self.chains[bold].font(0, size).get_linesize()))
            n = min(max_lines, fits_h)
            lines = self._wrap(words, size, bold, 10**9, 10**9) or [""]
            lines = lines[:n - 1] + [" ".join(lines[n - 1:])]
        parts = [self.fit(line, max_w, max_h, max_size=size, min_size=size, color=color,
                          bold=bold) for line in lines]
        height = sum(p.get_height() for p in parts)
        surf = pygame.Surface((max(1, max(p.get_width() for p in parts)), max(1, height)),
                              pygame.SRCALPHA)
        y = 0
        for p in parts:
            x = (surf.get_width() - p.get_width()) // 2 if center else 0
            surf.blit(p, (x, y))
            y += p.get_height()
        if surf.get_height() > max_h:
            surf = surf.subsurface((0, 0, surf.get_width(), max_h)).copy()
        return surf

    def _wrap(self, words: list[str], size: int, bold: bool, max_w: int,
              max_lines: int) -> list[str] | None:
        """Greedy word wrap; None if it needs more lines or a word is wider than the box."""
        lines: list[str] = []
        current = ""
        for word in words:
            trial = f"{current} {word}" if current else word
            if self.measure(self.runs(trial, bold), size, bold)[0] <= max_w:
                current = trial
                continue
            if not current:
                return None
            lines.append(current)
            current = word
            if self.measure(self.runs(word, bold), size, bold)[0] > max_w:
                return None
        lines.append(current)
        return lines if len(lines) <= max_lines else None
