"""The call screen: draws a ``Snapshot`` into a pygame surface, redrawing only what changed.

Every widget owns one rectangle of the layout and a *key*: the exact content it shows (texts,
colours, flash phase). Each frame the screen computes the keys; only widgets whose key changed
are redrawn, and only their rectangles are handed to ``pygame.display.update``. Text surfaces
come from the renderer's cache, so an idle frame costs a few comparisons plus the scrolling
ticker.

New calls wait in a queue and each gets its own moment (``display.call_seconds``, shorter
while more are waiting, and never before its announcement has finished), in the order they
were committed.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from datetime import datetime

import pygame

from appliance.verdicts import indonesian_date
from display.layout import Layout
from display.model import CallRow, Snapshot
from display.sound import Announcer
from display.text import TextRenderer

log = logging.getLogger("antrean.display")

BACKGROUND = (10, 24, 46)
PANEL = (20, 42, 76)
PANEL_HI = (30, 64, 112)
FLASH = (196, 32, 44)
TEXT = (255, 255, 255)
MUTED = (166, 186, 210)
ACCENT = (255, 200, 40)
WARN = (255, 120, 90)
OK_BG = (18, 110, 60)
REJECT_BG = (150, 40, 30)

BURST_MOMENT_S = 3.0        # a call's moment while further calls are waiting
FLASH_PERIOD_S = 0.5
FLASH_S = 4.0               # the flashing part of a call's moment
TICKER_SPEED = 0.12         # screen heights (landscape) per second
OK_VERDICTS = ("ok", "already_checked_in")


class Screen:
    """Renders snapshots onto ``surface``.

    ``feed()`` takes each poll's result; ``frame()`` draws what changed and returns the dirty
    rectangles. ``naive=True`` redraws everything without caches every frame (the benchmark's
    baseline). ``wall`` gives the office clock's epoch seconds for the header clock.
    """

    def __init__(self, surface: pygame.Surface, config, *, text: TextRenderer | None = None,
                 announcer: Announcer | None = None, wall: Callable[[], float] = time.time,
                 naive: bool = False):
        self.surface = surface
        self.config = config
        self.tz = config.tz
        self.layout = Layout(*surface.get_size(), config.display.overscan_percent)
        self.naive = naive
        self.text = text or TextRenderer(config.display.font or None,
                                         cache_size=0 if naive else 512)
        self.announcer = announcer
        self.wall = wall
        self.call_seconds = config.display.call_seconds
        self.checkin_seconds = config.display.checkin_panel_seconds
        self.snapshot = Snapshot()
        self.pending: collections.deque[CallRow] = collections.deque()
        self.current: CallRow | None = None
        # The latest calls given a moment, in order (bounded: the display runs for months).
        self.shown: collections.deque[CallRow] = collections.deque(maxlen=1000)
        self.moment_start = float("-inf")
        self.moment_until = float("-inf")
        self.checkin_until = float("-inf")
        self._keys: dict[str, object] = {}
        self.placed: dict[str, list[pygame.Rect]] = {}   # where text landed, per widget
        self._drawing = ""
        self._started = False
        self._ticker_items: tuple = ()
        self._ticker_surfs: list[pygame.Surface] = []
        self.frames = 0

    # input -------------------------------------------------------------------------------

    def feed(self, snapshot: Snapshot, new_calls: list[CallRow], now: float,
             new_scan: bool = False) -> None:
        """Take a poll's result; ``now`` is monotonic seconds."""
        if not self._started and self.current is None:
            self.current = snapshot.newest_call           # shown quietly, never announced
        self.snapshot = snapshot
        self.pending.extend(c for c in new_calls if c.kind in ("call", "recall"))
        if new_scan and snapshot.latest_scan is not None:
            self.checkin_until = now + self.checkin_seconds

    def _advance(self, now: float) -> None:
        """Start the next call's moment once the current one has had its time and sound."""
        if not self.pending or now < self.moment_until:
            return
        if self.current is not None and self.announcer is not None \
                and self.current in self.shown and not self.announcer.done(self.current.id):
            return
        call = self.pending.popleft()
        self.current = call
        self.shown.append(call)
        # One line per call's moment: technicians (and the soak test) see what the lobby saw.
        log.info("showing %s %s at counter %d (call #%d)", call.kind, call.ticket, call.counter,
                 call.id)
        self.moment_start = now
        self.moment_until = now + (BURST_MOMENT_S if self.pending else self.call_seconds)
        if self.announcer is not None:
            self.announcer.announce(call.id, call.ticket, call.counter, call.name)

    # drawing -----------------------------------------------------------------------------

    def frame(self, now: float) -> list[pygame.Rect]:
        """Draw this frame's changes; returns the rectangles to update on the display."""
        self.frames += 1
        self._advance(now)
        if self.naive or not self._started:
            self._started = True
            self._keys.clear()
            self._background()
            for name, (key, draw) in self._widgets(now).items():
                self._keys[name] = key
                self._draw(name, draw)
            self._ticker(now, force=True)
            return [self.surface.get_rect()]
        dirty = []
        for name, (key, draw) in self._widgets(now).items():
            if self._keys.get(name) != key:
                self._keys[name] = key
                dirty.append(self._draw(name, draw))
        ticker = self._ticker(now)
        if ticker is not None:
            dirty.append(ticker)
        return dirty

    def _draw(self, name: str, draw) -> pygame.Rect:
        self._drawing = name
        self.placed[name] = []
        rect = self.layout[name]
        draw(rect)
        return rect

    def _background(self) -> None:
        self.surface.fill(BACKGROUND)
        for region in ("header", "call", "counters", "waiting", "ticker", "status"):
            pygame.draw.rect(self.surface, PANEL, self.layout[region],
                             border_radius=max(4, self.layout.unit // 120))

    def _widgets(self, now: float) -> dict:
        snap = self.snapshot
        wall = self.wall()
        local = datetime.fromtimestamp(wall, self.tz)
        office = snap.office_name or self.config.office.name or "Kantor Imigrasi"
        widgets = {
            "header.office": (("office", office), lambda r: self._line(r, office, 0.05,
                                                                        bold=True)),
            "header.date": (("date", local.date()), lambda r: self._line(
                r, indonesian_date(local.date().isoformat()), 0.032, color=MUTED,
                align="right")),
            "header.clock": (("clock", local.strftime("%H:%M")), lambda r: self._line(
                r, local.strftime("%H:%M"), 0.055, bold=True, align="right")),
            "call.label": self._call_label(now),
            "call.ticket": self._call_part("ticket", now),
            "call.name": self._call_part("name", now),
            "call.counter": self._call_part("counter", now),
            "counters.title": (("ct",), lambda r: self._line(r, "Loket / Counter", 0.032,
                                                               color=MUTED)),
            "counters.rows": self._counters(),
            "waiting": self._lower(now),
            "status.text": self._status(wall),
        }
        return widgets

    # header and call box -----------------------------------------------------------------

    def _flash_on(self, now: float) -> bool:
        if now - self.moment_start > FLASH_S or now >= self.moment_until:
            return False
        return int((now - self.moment_start) / FLASH_PERIOD_S) % 2 == 0

    def _call_bg(self, now: float):
        return FLASH if self._flash_on(now) else PANEL

    def _call_label(self, now: float):
        bg = self._call_bg(now)
        label = ("Nomor antrean / Now calling" if self.current
                 else "Belum ada panggilan / No calls yet")
        return (("label", label, bg), lambda r: self._line(r, label, 0.035, color=MUTED,
                                                           bg=bg, align="center"))

    def _call_part(self, part: str, now: float):
        bg = self._call_bg(now)
        call = self.current
        if call is None:
            text = "—" if part == "ticket" else ""
        elif part == "ticket":
            text = call.ticket
        elif part == "name":
            text = call.name
        else:
            text = f"Silakan ke {call.counter_name} / Go to {call.counter_name}"
        style = {"ticket": (0.24, ACCENT, True), "name": (0.085, TEXT, False),
                 "counter": (0.08, TEXT, True)}[part]
        key = (part, text, bg, call.id if call else None)
        return key, lambda r: self._line(r, text, style[0], color=style[1], bold=style[2], bg=bg,
                                         align="center")

    # counters ----------------------------------------------------------------------------

    def _counters(self):
        rows = self.snapshot.counters
        newest = rows[0].call_id if rows and rows[0].ticket else None
        key = ("counters", rows, newest)

        def draw(rect: pygame.Rect) -> None:
            self.surface.fill(PANEL, rect)
            grid = self.layout.counter_grid(len(rows))
            for row, box in zip(rows, grid.rows, strict=False):
                hi = row.call_id == newest
                inner = box.inflate(-4, -4)
                pygame.draw.rect(self.surface, PANEL_HI if hi else BACKGROUND, inner,
                                 border_radius=max(3, inner.h // 10))
                pad = max(4, inner.h // 8)
                text_h = inner.h - 2 * pad
                name_box = pygame.Rect(inner.x + pad, inner.y + pad, inner.w * 45 // 100, text_h)
                ticket_box = pygame.Rect(name_box.right + pad, inner.y + pad,
                                         inner.right - name_box.right - 2 * pad, text_h)
                self._blit(self.text.fit(row.name, name_box.w, name_box.h,
                                         max_size=round(text_h * 0.6), color=MUTED), name_box)
                dim = row.kind == "no_show"
                ticket = row.ticket or "—"
                self._blit(self.text.fit(ticket, ticket_box.w, ticket_box.h,
                                         max_size=round(text_h * 0.85), bold=True,
                                         color=MUTED if dim or not row.ticket else ACCENT),
                           ticket_box,
                           align="right")
            if grid.more is not None:
                more = grid.more.inflate(-8, -8)
                self._blit(self.text.fit(f"+{grid.hidden} loket lainnya / more", more.w, more.h,
                                         max_size=round(more.h * 0.5), color=MUTED), more)
        return key, draw

    # waiting list or the check-in panel --------------------------------------------------

    def _lower(self, now: float):
        scan = self.snapshot.latest_scan
        if scan is not None and now < self.checkin_until:
            bg = OK_BG if scan.verdict in OK_VERDICTS else REJECT_BG
            estimate = self._checkin_estimate(scan)

            def draw_checkin(rect: pygame.Rect) -> None:
                pygame.draw.rect(self.surface, BACKGROUND, rect)
                pygame.draw.rect(self.surface, bg, rect,
                                 border_radius=max(4, self.layout.unit // 120))
                title, body = self.layout["checkin.title"], self.layout["checkin.body"]
                self._blit(self.text.fit_lines(scan.message_id, title.w, title.h,
                                               max_size=self.layout.type_px(0.06), bold=True,
                                               center=True), title, align="center")
                english = scan.message_en
                if estimate is not None:
                    line = self.layout["checkin.estimate"]
                    self._blit(self.text.fit(estimate[0], line.w, line.h, bold=True,
                                             max_size=self.layout.type_px(0.055), color=ACCENT),
                               line, align="center")
                    english = f"{english} {estimate[1]}"
                self._blit(self.text.fit_lines(english, body.w, body.h,
                                               max_size=self.layout.type_px(0.04), center=True,
                                               color=(230, 240, 230)), body, align="center")
            return ("checkin", scan, bg, estimate), draw_checkin
        snap = self.snapshot
        items = [waiting_parts(w) for w in snap.waiting] or [("—", "")]
        late = lateness_lines(snap.running_late_s)
        key = ("waiting", tuple(items), late, snap.next_tickets)

        def draw_waiting(rect: pygame.Rect) -> None:
            pygame.draw.rect(self.surface, BACKGROUND, rect)
            pygame.draw.rect(self.surface, PANEL, rect,
                             border_radius=max(4, self.layout.unit // 120))
            self._line(self.layout["waiting.title"], "Menunggu / Waiting", 0.032, color=MUTED)
            if late is not None:
                box = self.layout["waiting.late"]
                top = pygame.Rect(box.x, box.y, box.w, box.h * 3 // 5)
                bottom = pygame.Rect(box.x, top.bottom, box.w, box.h - top.h)
                self._blit(self.text.fit(late[0], top.w, top.h, bold=True, color=WARN,
                                         max_size=self.layout.type_px(0.036)), top,
                           align="right")
                self._blit(self.text.fit(late[1], bottom.w, bottom.h, color=WARN,
                                         max_size=self.layout.type_px(0.026)), bottom,
                           align="right")
            self._services(self.layout["waiting.services"], items, 0.04)
            nxt = self.layout["waiting.next"]
            head = pygame.Rect(nxt.x, nxt.y, nxt.w, nxt.h // 4)
            self._line(head, "Berikutnya / Next", 0.03, color=MUTED)
            body = pygame.Rect(nxt.x, head.bottom, nxt.w, nxt.h - head.h)
            tickets = " ".join(snap.next_tickets) or "—"
            self._blit(self.text.fit_lines(tickets, body.w, body.h, max_lines=3,
                                           max_size=self.layout.type_px(0.055), bold=True,
                                           color=ACCENT), body)
        return key, draw_waiting

    def _checkin_estimate(self, scan) -> tuple[str, str] | None:
        """The accepted applicant's place and expected call (Indonesian, English), if known."""
        if scan.verdict not in OK_VERDICTS or scan.ahead is None or scan.call_at is None:
            return None
        at = datetime.fromtimestamp(scan.call_at, self.tz).strftime("%H:%M")
        n = scan.ahead
        return (f"{scan.ticket} · {n} orang di depan · perkiraan dipanggil {at}",
                f"{n} {'person' if n == 1 else 'people'} ahead, expected call about {at}.")

    # status corner -----------------------------------------------------------------------

    def _status(self, wall: float):
        st = self.snapshot.status
        warn = False
        if st.problem:
            parts, warn = [st.problem], True
        else:
            parts = []
            if st.offline_since:
                since = datetime.fromtimestamp(st.offline_since, self.tz).strftime("%H:%M")
                parts.append(f"offline sejak {since}")
                warn = True
            if st.schedule_generated_at is None:
                parts.append("tanpa jadwal / no schedule")
                warn = True
            else:
                age = max(0.0, wall - st.schedule_generated_at)
                parts.append(f"jadwal {_age(age)}")
                warn = warn or age > st.max_schedule_age_s
            if st.outbox_pending:
                parts.append(f"outbox {st.outbox_pending}")
        text = " · ".join(parts)
        color = WARN if warn else MUTED
        return (("status", text, color), lambda r: self._lines_small(r, text, color))

    def _lines_small(self, rect: pygame.Rect, text: str, color) -> None:
        self.surface.fill(PANEL, rect)
        self._blit(self.text.fit_lines(text, rect.w, rect.h, max_size=self.layout.type_px(0.022),
                                       min_size=9, max_lines=2, color=color), rect)

    # ticker --------------------------------------------------------------------------------

    def _ticker(self, now: float, force: bool = False) -> pygame.Rect | None:
        items = self.snapshot.announcements
        rect = self.layout["ticker.text"]
        if items != self._ticker_items or force and not self._ticker_surfs:
            self._ticker_items = items
            size = self.layout.type_px(0.045)
            self._ticker_surfs = []
            for item in items:
                if not item:
                    continue
                self._ticker_surfs.append(self.text.fit(item, 10**5, rect.h, max_size=size,
                                                        min_size=size))
                bullet = self.text.fit("•", rect.h, rect.h, max_size=size, min_size=size,
                                       color=ACCENT)
                gap = pygame.Surface((bullet.get_width() + 2 * size, bullet.get_height()),
                                     pygame.SRCALPHA)
                gap.blit(bullet, (size, 0))
                self._ticker_surfs.append(gap)
            force = True
        surfs = self._ticker_surfs
        total = sum(s.get_width() for s in surfs)
        if total <= rect.w:             # fits: static, drawn only when it changes
            if not force:
                return None
            self.surface.fill(PANEL, rect)
            x = rect.x
            for s in surfs:
                self.surface.blit(s, (x, rect.y + (rect.h - s.get_height()) // 2))
                x += s.get_width()
            return rect
        offset = int(now * TICKER_SPEED * self.layout.unit) % total
        self.surface.fill(PANEL, rect)
        self.surface.set_clip(rect)
        x = rect.x - offset
        while x < rect.right:
            for s in surfs:
                if x + s.get_width() > rect.x and x < rect.right:
                    self.surface.blit(s, (x, rect.y + (rect.h - s.get_height()) // 2))
                x += s.get_width()
                if x >= rect.right:
                    break
        self.surface.set_clip(None)
        return rect

    # primitives ----------------------------------------------------------------------------

    def _line(self, rect: pygame.Rect, text: str, size: float, *, color=TEXT, bold=False,
              bg=PANEL, align: str = "left") -> None:
        self.surface.fill(bg, rect)
        surf = self.text.fit(text, rect.w, rect.h, max_size=self.layout.type_px(size),
                             color=color, bold=bold)
        self._blit(surf, rect, align=align)

    def _services(self, rect: pygame.Rect, items: list[tuple[str, str]], size: float) -> None:
        """Up to six services one below the other. A service's line that would have to
        shrink to fit goes on two lines instead (its name, then its count and wait), so it
        stays as large as the box allows."""
        n = max(1, min(len(items), 6))
        item_h = rect.h // n
        largest = min(self.layout.type_px(size), item_h)
        for i, (head, tail) in enumerate(items[:n]):
            box = pygame.Rect(rect.x, rect.y + i * item_h, rect.w, item_h)
            one = self.text.fit(f"{head} {tail}".strip(), box.w, box.h, max_size=largest)
            full = self.text.fit(head, 10**5, box.h, max_size=largest, min_size=largest)
            if one.get_height() >= 0.9 * full.get_height() or not tail:
                self._blit(one, box)
                continue
            half = box.h // 2
            for j, part in enumerate((head, tail)):
                line = pygame.Rect(box.x, box.y + j * half, box.w, half)
                self._blit(self.text.fit(part, line.w, line.h, max_size=min(largest, half)),
                           line)

    def _blit(self, surf: pygame.Surface, rect: pygame.Rect, align: str = "left") -> pygame.Rect:
        """Blit ``surf`` vertically centred in ``rect``; it was fitted, so it stays inside."""
        w, h = surf.get_size()
        if align == "center":
            x = rect.x + (rect.w - w) // 2
        elif align == "right":
            x = rect.right - w
        else:
            x = rect.x
        placed = pygame.Rect(x, rect.y + (rect.h - h) // 2, w, h)
        self.surface.blit(surf, placed)
        self.placed.setdefault(self._drawing, []).append(placed)
        return placed


def waiting_parts(w) -> tuple[str, str]:
    """One service's line in its two halves: "A · Paspor Baru:" and "4 menunggu · ±20 mnt"
    (the estimated wait for someone arriving now, in steps of five minutes: it is an
    estimate, not a promise)."""
    count = f"{w.waiting} menunggu"
    if w.next_wait_s is not None and w.next_wait_s != float("inf"):
        minutes = w.next_wait_s / 60
        count += " · " + ("< 5 mnt" if minutes < 5 else f"±{round(minutes / 5) * 5} mnt")
    return f"{w.code} · {w.name}:", count


def waiting_line(w) -> str:
    return " ".join(waiting_parts(w))




def lateness_lines(late_s: float | None) -> tuple[str, str] | None:
    """What the screen says about lateness beyond the notice threshold; None when on time."""
    if late_s is None:
        return None
    minutes = max(5, round(late_s / 300) * 5)
    return (f"Layanan terlambat ±{minutes} menit dari jadwal",
            f"Running about {minutes} min behind schedule")


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{int(seconds // 60)} mnt"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} jam"
    return f"{int(seconds // 86400)} hari"
