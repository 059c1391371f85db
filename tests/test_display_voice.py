"""The spoken call: clip sequences checked exhaustively against spelled-out Indonesian, clip
lookup (office recordings first, real espeak-ng fallback), and real playback order through
pygame.mixer on SDL's dummy audio driver."""

from __future__ import annotations

import hashlib
import os
import re
import time
import wave

import numpy as np
import pygame
import pytest

from display.sound import Announcer
from display.voice import CLIP_TEXT, NAME, ClipLibrary, call_clips, number_words, ticket_clips

# Written out by hand, not computed: the independent expectation for the counter numbers.
COUNTERS_1_TO_40 = [
    "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan", "sepuluh",
    "sebelas", "dua belas", "tiga belas", "empat belas", "lima belas", "enam belas",
    "tujuh belas", "delapan belas", "sembilan belas", "dua puluh",
    "dua puluh satu", "dua puluh dua", "dua puluh tiga", "dua puluh empat", "dua puluh lima",
    "dua puluh enam", "dua puluh tujuh", "dua puluh delapan", "dua puluh sembilan",
    "tiga puluh", "tiga puluh satu", "tiga puluh dua", "tiga puluh tiga", "tiga puluh empat",
    "tiga puluh lima", "tiga puluh enam", "tiga puluh tujuh", "tiga puluh delapan",
    "tiga puluh sembilan", "empat puluh",
]
SPOT_CHECKS = {
    100: "seratus", 101: "seratus satu", 110: "seratus sepuluh", 111: "seratus sebelas",
    115: "seratus lima belas", 120: "seratus dua puluh", 200: "dua ratus",
    305: "tiga ratus lima", 999: "sembilan ratus sembilan puluh sembilan",
}
DIGIT_NAMES = "nol satu dua tiga empat lima enam tujuh delapan sembilan".split()


def spelled(n: int) -> str:
    """Indonesian numbers the way a textbook states the rule, as plain strings."""
    one_to_nine = DIGIT_NAMES[1:]
    hundreds, rest = divmod(n, 100)
    words = []
    if hundreds:
        words.append("seratus" if hundreds == 1 else f"{one_to_nine[hundreds - 1]} ratus")
    if 1 <= rest <= 40:
        words.append(COUNTERS_1_TO_40[rest - 1])
    elif rest:
        tens, unit = divmod(rest, 10)
        words.append(f"{one_to_nine[tens - 1]} puluh" + (f" {one_to_nine[unit - 1]}"
                                                          if unit else ""))
    return " ".join(words)


def test_numbers_1_to_999():
    for n, text in SPOT_CHECKS.items():
        assert " ".join(number_words(n)) == text
    for n in range(1, 1000):
        assert " ".join(number_words(n)) == spelled(n), n


def test_counters_1_to_40_in_the_call():
    for counter, words in enumerate(COUNTERS_1_TO_40, start=1):
        keys = call_clips("A012", counter)
        assert keys[keys.index("silakan_menuju_loket") + 1:] == words.split()


def test_tickets_1_to_999_read_digit_by_digit():
    for n in range(1, 1000):
        text = f"{n:03d}"
        expected = ["nomor_antrean", "huruf_b"] + [DIGIT_NAMES[int(d)] for d in text]
        assert call_clips(f"B{text}", 1)[:5] == expected
    assert ticket_clips("a1000") == ["huruf_a", "satu", "nol", "nol", "nol"]
    assert ticket_clips("X-7") == ["huruf_x", "tujuh"]


def test_the_example_call():
    assert call_clips("A012", 1) == ["nomor_antrean", "huruf_a", "nol", "satu", "dua", NAME,
                                     "silakan_menuju_loket", "satu"]
    assert NAME not in call_clips("A012", 1, with_name=False)
    with pytest.raises(ValueError):
        number_words(10000)


def write_tone(path, ms: int = 20, freq: float = 440.0, rate: int = 22050):
    t = np.arange(int(rate * ms / 1000)) / rate
    samples = (np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


@pytest.fixture
def office_clips(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for key in [*CLIP_TEXT, "chime"]:
        write_tone(folder / f"{key}.wav")
    return folder


def test_office_clip_wins_and_espeak_fills_the_gap(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    write_tone(folder / "satu.wav")
    lib = ClipLibrary(str(folder), cache_dir=str(tmp_path / "cache"))
    assert lib.path("satu") == folder / "satu.wav"
    generated = lib.path("dua")                 # real espeak-ng, Indonesian voice
    assert generated.parent == tmp_path / "cache" / "espeak-id"
    with wave.open(str(generated)) as w:
        assert w.getnframes() > 1000
    assert lib.path("dua") == generated         # cached: no second run
    name = lib.name_path("Bapak Andi S.")
    assert name.is_file() and name != lib.name_path("Ibu Siti R.")


def test_spoken_names_cache_is_bounded_and_named_by_a_keyed_hash_only(tmp_path):
    """Names are personal data on an SD card: bounded by age and size, nothing to look up."""
    cache = tmp_path / "cache"
    clips = cache / "espeak-id"
    clips.mkdir(parents=True)
    legacy = clips / f"name-{hashlib.sha1(b'Ibu Siti R.').hexdigest()[:20]}.wav"
    write_tone(legacy)                          # an older release's file: plain SHA-1 of a name
    lib = ClipLibrary(None, cache_dir=str(cache))          # the defaults: 32 MB, 7 days
    assert not legacy.exists()
    names = ["Bapak Andi S.", "Ibu Siti R.", "Bapak Budi H.", "Ibu Dewi K.", "Bapak Eko P."]
    paths = [lib.name_path(n) for n in names]   # real espeak-ng
    assert len(set(paths)) == len(names) and all(p.parent == clips / "names" for p in paths)
    for name, path in zip(names, paths, strict=True):
        assert re.fullmatch(r"[0-9a-f]{32}\.wav", path.name)
        for algorithm in ("sha1", "sha256", "md5"):
            assert hashlib.new(algorithm, name.encode()).hexdigest()[:16] not in path.name
    key = clips / "names" / ".key"
    assert key.stat().st_mode & 0o777 == 0o600
    made = paths[0].stat().st_mtime_ns
    assert lib.name_path(names[0]) == paths[0] and paths[0].stat().st_mtime_ns == made  # a hit

    # Age: a name older than voice_cache_days is gone after the next new name.
    week_ago = time.time() - 8 * 86400
    os.utime(paths[1], (week_ago, week_ago))
    lib.name_path("Ibu Fitri A.")
    assert not paths[1].exists() and paths[0].exists()

    # Size: the oldest go first until the folder fits; the newest stays.
    for i, path in enumerate(p for p in paths if p.exists()):
        os.utime(path, (time.time() - 3600 + i, time.time() - 3600 + i))
    wavs = sorted((clips / "names").glob("*.wav"), key=lambda p: p.stat().st_mtime)
    budget = sum(p.stat().st_size for p in wavs[-2:])
    small = ClipLibrary(None, cache_dir=str(cache), max_bytes=budget)
    left = sorted((clips / "names").glob("*.wav"), key=lambda p: p.stat().st_mtime)
    assert left == wavs[-2:] and sum(p.stat().st_size for p in left) <= budget
    newest = small.name_path("Bapak Gilang T.")
    assert newest.exists()
    assert sum(p.stat().st_size for p in (clips / "names").glob("*.wav")) <= budget
    # Same key after a restart: a recall of a known name is still a hit.
    assert ClipLibrary(None, cache_dir=str(cache), max_bytes=budget).name_path(
        "Bapak Gilang T.") == newest


@pytest.fixture
def mixer():
    pygame.mixer.init()
    yield
    pygame.mixer.quit()


def test_calls_are_heard_in_order_back_to_back(mixer, office_clips, tmp_path):
    ann = Announcer("voice", ClipLibrary(str(office_clips), cache_dir=str(tmp_path / "c")))
    calls = [(11, "A001", 1), (12, "B002", 12), (13, "A003", 21)]
    for call in calls:
        ann.announce(*call)
    deadline = time.monotonic() + 20
    while not all(ann.done(c[0]) for c in calls) and time.monotonic() < deadline:
        ann.pump()
        time.sleep(0.005)
    ann.close()
    assert [a.call_id for a in ann.history] == [11, 12, 13]
    assert [a.keys for a in ann.history] == [
        ["chime", "PAUSE", *call_clips(t, c, with_name=False)] for _, t, c in calls]
    assert all(a.failed is None for a in ann.history)


def test_chime_only_and_off(mixer, office_clips, tmp_path):
    lib = ClipLibrary(str(office_clips), cache_dir=str(tmp_path / "c"))
    chime = Announcer("chime", lib)
    chime.announce(1, "A001", 1, "Bapak Andi S.")
    deadline = time.monotonic() + 10
    while not chime.done(1) and time.monotonic() < deadline:
        chime.pump()
        time.sleep(0.005)
    chime.close()
    assert chime.history[0].keys == ["chime"]
    off = Announcer("off", lib)
    off.announce(2, "A002", 1)
    assert off.done(2) and not off.history
