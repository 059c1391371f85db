"""Real frames on SDL's dummy video driver, saved as PNG and checked region by region, for
1920x1080, 1280x720 and portrait 1080x1920; bad names; 40 counters; dirty rectangles; and a
burst of 10 calls committed within one second, each shown and announced in order."""

from __future__ import annotations

import itertools
import time
from datetime import datetime

import pygame
import pytest
from test_display_voice import write_tone
from test_display_world import Mono, Office, video  # noqa: F401  (fixture)

from appliance.names import public_name
from display.screen import (
    ACCENT,
    FLASH,
    PANEL,
    TEXT,
    Screen,
    lateness_lines,
    waiting_parts,
)
from display.sound import Announcer
from display.text import TextRenderer
from display.voice import CLIP_TEXT, ClipLibrary

SIZES = [(1920, 1080), (1280, 720), (1080, 1920)]
TEXT_WIDGETS = ("header.office", "header.date", "header.clock", "call.label", "call.ticket",
                "call.name", "call.counter", "counters.title", "counters.rows", "waiting",
                "status.text")


def render(office, size, mono, *, new_scan=False, announcer=None):
    surface = pygame.display.set_mode(size)
    view = office.view(mono)
    screen = Screen(surface, office.config, wall=office.wall, announcer=announcer)
    snap, new = view.poll()
    screen.feed(snap, new, mono.t, new_scan)
    screen.frame(mono.t)
    return screen, view


def region(surface: pygame.Surface, rect: pygame.Rect):
    return pygame.surfarray.array3d(surface.subsurface(rect)).copy()


def expected_region(rect, text, *, max_size, color, bold, bg=PANEL):
    """The text drawn by an independent renderer, centred in a box of the region's size."""
    box = pygame.Surface(rect.size)
    box.fill(bg)
    surf = TextRenderer().fit(text, rect.w, rect.h, max_size=max_size, color=color, bold=bold)
    box.blit(surf, ((rect.w - surf.get_width()) // 2, (rect.h - surf.get_height()) // 2))
    return pygame.surfarray.array3d(box)


def assert_text_stays_inside(screen):
    for name in TEXT_WIDGETS:
        outer = screen.layout[name]
        for placed in screen.placed.get(name, []):
            assert outer.contains(placed), (name, placed, outer)
    for a, b in itertools.combinations(TEXT_WIDGETS, 2):
        assert not screen.layout[a].colliderect(screen.layout[b]), (a, b)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_frame_shows_the_right_text_in_the_right_regions(tmp_path, video, size):  # noqa: F811
    office = Office(tmp_path)
    tickets = office.check_in(6)
    office.queue.call_next(2)
    call = office.queue.call_next(1)
    mono = Mono()
    screen, view = render(office, size, mono, new_scan=True)
    out = tmp_path / f"frame-{size[0]}x{size[1]}.png"
    pygame.image.save(screen.surface, str(out))
    frame = pygame.image.load(str(out))            # check the saved PNG, not the live surface
    lay = screen.layout

    ticket_box = lay["call.ticket"]
    assert (region(frame, ticket_box) == expected_region(
        ticket_box, call.ticket, max_size=lay.type_px(0.24), color=ACCENT, bold=True)).all()
    name_box = lay["call.name"]
    assert (region(frame, name_box) == expected_region(
        name_box, public_name(call.name, "first", call.salutation),
        max_size=lay.type_px(0.085), color=TEXT, bold=False)).all()
    # the check-in panel (green: accepted) covers the waiting region after the scan
    checkin = region(frame, lay["checkin.title"].inflate(-4, -4))
    assert (checkin.reshape(-1, 3) == (18, 110, 60)).all(axis=1).mean() > 0.4
    assert screen.snapshot.latest_scan.ticket == tickets[5]
    # every counter row drawn, the newest call on top
    assert [r.id for r in screen.snapshot.counters][:2] == [1, 2]
    assert_text_stays_inside(screen)
    # nothing drawn outside the safe area (overscan margin stays background)
    safe = lay.safe
    border = pygame.surfarray.array3d(frame)[: safe.x, :, :]
    assert (border.reshape(-1, 3) == (10, 24, 46)).all()
    view.close()
    office.close()


BAD_NAMES = ["😀😀😀", "محمد عبد الله", "שלום כהן", "W" * 200, "", "王小明",
             "Andi\u0000\u202e\u200bSaputra", "   "]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_bad_names_are_fitted_never_overlapping(tmp_path, video, size):  # noqa: F811
    office = Office(tmp_path, names=BAD_NAMES, extra='[display]\nnames = "full"\n',
                    counters=2)
    office.check_in(len(BAD_NAMES))
    mono = Mono()
    screen, view = render(office, size, mono)
    for _ in BAD_NAMES:
        office.queue.call_next(1)
        snap, new = view.poll()
        screen.feed(snap, new, mono.t)
        mono.t += 10
        screen.frame(mono.t)
        assert_text_stays_inside(screen)
        call = screen.current
        placed = screen.placed["call.name"]
        if call.name:
            assert placed and placed[0].w > 1     # something legible, not empty boxes only
            crop = region(screen.surface, placed[0])
            assert (crop.reshape(-1, 3) != PANEL).any(axis=1).any()
    pygame.image.save(screen.surface, str(tmp_path / "bad-names.png"))
    names = [c.name for c in screen.shown]
    assert names[0] == "Bapak 😀😀😀" and names[5] == "Ibu 王小明"
    view.close()
    office.close()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_forty_counters_fit_or_clip(tmp_path, video, size):  # noqa: F811
    office = Office(tmp_path, counters=40)
    office.check_in(12)
    for counter in (40, 7, 1):
        office.queue.call_next(counter)
    screen, view = render(office, size, Mono())
    grid = screen.layout.counter_grid(40)
    assert len(grid.rows) + grid.hidden == 40 and len(grid.rows) >= 15
    area = screen.layout["counters.rows"]
    assert all(area.contains(r) for r in grid.rows)
    assert not any(a.colliderect(b) for a, b in itertools.combinations(grid.rows, 2))
    assert [r.id for r in screen.snapshot.counters[:3]] == [1, 7, 40]
    assert_text_stays_inside(screen)
    pygame.image.save(screen.surface, str(tmp_path / "forty.png"))
    view.close()
    office.close()


def test_missing_store_keeps_running_and_says_so(tmp_path, video):  # noqa: F811
    office = Office(tmp_path)
    office.config.storage._values["path"] = str(tmp_path / "nowhere" / "x.db")
    mono = Mono()
    screen, view = render(office, (1280, 720), mono)
    assert "does not exist" in screen.snapshot.problem
    crop = region(screen.surface, screen.placed["status.text"][0])
    assert ((crop.reshape(-1, 3) == (255, 120, 90)).all(axis=1)).any()   # warning colour
    for _ in range(5):
        mono.t += 1
        snap, new = view.poll()
        screen.feed(snap, new, mono.t)
        screen.frame(mono.t)
    view.close()
    office.close()


def test_idle_frames_redraw_nothing_and_a_call_only_its_regions(tmp_path, video):  # noqa: F811
    office = Office(tmp_path)
    office.check_in(3)
    mono = Mono()
    screen, view = render(office, (1920, 1080), mono)
    for _ in range(3):
        mono.t += 0.033
        snap, new = view.poll()
        screen.feed(snap, new, mono.t)
        assert screen.frame(mono.t) == []
    office.queue.call_next(1)
    snap, new = view.poll()
    screen.feed(snap, new, mono.t)
    dirty = screen.frame(mono.t)
    allowed = [screen.layout[n] for n in ("call", "counters", "waiting", "status")]
    assert dirty and all(any(a.contains(d) for a in allowed) for d in dirty)
    view.close()
    office.close()


def test_burst_of_ten_calls_each_shown_and_announced_in_order(tmp_path, video):  # noqa: F811
    clips = tmp_path / "clips"
    clips.mkdir()
    for key in [*CLIP_TEXT, "chime"]:
        write_tone(clips / f"{key}.wav", ms=10)
    office = Office(tmp_path, counters=10,
                    extra=f'[display]\nnames = "none"\nclips_dir = "{clips}"\n')
    office.check_in(10)
    pygame.mixer.init()
    announcer = Announcer("voice", ClipLibrary(str(clips), cache_dir=str(tmp_path / "c")))
    mono = Mono()
    screen, view = render(office, (1280, 720), mono, announcer=announcer)
    started = time.monotonic()
    made = [office.queue.call_next(c) for c in range(1, 11)]
    assert time.monotonic() - started < 1.0
    seen = []
    deadline = time.monotonic() + 30
    while (len(seen) < 10 or not announcer.idle()) and time.monotonic() < deadline:
        snap, new = view.poll()
        screen.feed(snap, new, mono.t)
        screen.frame(mono.t)
        announcer.pump()
        if screen.current is not None and (not seen or seen[-1].id != screen.current.id):
            seen.append(screen.current)
            lay = screen.layout
            box = lay["call.ticket"]
            assert (region(screen.surface, box) == expected_region(
                box, screen.current.ticket, max_size=lay.type_px(0.24), color=ACCENT,
                bold=True, bg=FLASH)).all()
        mono.t += 0.5
        time.sleep(0.002)
    announcer.close()
    pygame.mixer.quit()
    assert [(c.ticket, c.counter) for c in seen] == [(m.ticket, m.counter) for m in made]
    assert [a.ticket for a in announcer.history] == [m.ticket for m in made]
    assert [a.counter for a in announcer.history] == list(range(1, 11))
    view.close()
    office.close()


class RecordingText(TextRenderer):
    """The real renderer, remembering the size of the surface it made for each text, so a
    test can find where the screen placed that text."""

    def __init__(self):
        super().__init__()
        self.sizes: dict[str, set[tuple[int, int]]] = {}

    def fit(self, text, max_w, max_h, **kw):
        surf = super().fit(text, max_w, max_h, **kw)
        self.sizes.setdefault(text or "", set()).add(surf.get_size())
        return surf


def placed_inside(screen, text_renderer, widget, text, box) -> bool:
    sizes = text_renderer.sizes.get(text, set())
    return any(r.size in sizes and box.contains(r) for r in screen.placed.get(widget, []))


def render_recorded(office, size, mono, *, new_scan=False):
    surface = pygame.display.set_mode(size)
    view = office.view(mono)
    text = RecordingText()
    screen = Screen(surface, office.config, wall=office.wall, text=text)
    snap, new = view.poll()
    screen.feed(snap, new, mono.t, new_scan)
    screen.frame(mono.t)
    return screen, view, text


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_waiting_panel_shows_estimates_and_lateness(tmp_path, video, size):  # noqa: F811
    office = Office(tmp_path)
    office.check_in(8)
    office.wall.t += 20 * 60                    # 09:50: the 09:00 slots are called late
    office.queue.call_next(1)
    office.queue.call_next(2)
    screen, view, text = render_recorded(office, size, Mono())
    pygame.image.save(screen.surface, str(tmp_path / f"waiting-{size[0]}x{size[1]}.png"))
    lay, snap = screen.layout, screen.snapshot
    assert snap.running_late_s == pytest.approx(50 * 60)
    services = lay["waiting.services"]
    for w in snap.waiting:
        assert w.next_wait_s is not None
        head, tail = waiting_parts(w)
        assert tail.startswith(f"{w.waiting} menunggu · ")
        assert tail.endswith(" mnt")
        one_line = placed_inside(screen, text, "waiting", f"{head} {tail}", services)
        assert one_line or (placed_inside(screen, text, "waiting", head, services)
                            and placed_inside(screen, text, "waiting", tail, services)), w
    late = lay["waiting.late"]
    indonesian, english = lateness_lines(snap.running_late_s)
    assert indonesian == "Layanan terlambat ±50 menit dari jadwal"
    assert placed_inside(screen, text, "waiting", indonesian, late)
    assert placed_inside(screen, text, "waiting", english, late)
    drawn = screen.placed["waiting"]
    assert not any(a.colliderect(b) for a, b in itertools.combinations(drawn, 2))
    assert all(lay["waiting"].contains(r) for r in drawn)
    assert_text_stays_inside(screen)
    view.close()
    office.close()


def test_on_time_the_screen_says_nothing_about_lateness(tmp_path, video):  # noqa: F811
    office = Office(tmp_path)
    office.check_in(4)
    office.wall.t -= 25 * 60                    # 09:05: five minutes after the slot
    office.queue.call_next(1)
    screen, view, text = render_recorded(office, (1920, 1080), Mono())
    assert screen.snapshot.running_late_s is None
    assert not any(screen.layout["waiting.late"].colliderect(r)
                   for r in screen.placed["waiting"])
    assert not any(t.startswith("Layanan terlambat") for t in text.sizes)
    view.close()
    office.close()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_checkin_panel_shows_place_and_expected_call(tmp_path, video, size):  # noqa: F811
    office = Office(tmp_path)
    tickets = office.check_in(5)
    screen, view, text = render_recorded(office, size, Mono(), new_scan=True)
    pygame.image.save(screen.surface, str(tmp_path / f"checkin-{size[0]}x{size[1]}.png"))
    scan = screen.snapshot.latest_scan
    assert scan.ticket == tickets[4] and scan.ahead == 3      # one of the five is a B
    at = datetime.fromtimestamp(scan.call_at, office.config.tz).strftime("%H:%M")
    line = f"{tickets[4]} · 3 orang di depan · perkiraan dipanggil {at}"
    assert placed_inside(screen, text, "waiting", line, screen.layout["checkin.estimate"])
    drawn = screen.placed["waiting"]
    assert len(drawn) == 3                      # title, estimate, English body
    assert not any(a.colliderect(b) for a, b in itertools.combinations(drawn, 2))
    assert all(screen.layout["checkin"].contains(r) for r in drawn)
    view.close()
    office.close()
