"""What the lobby hears: a call as a sequence of Indonesian clips, and where the clips come from.

``call_clips("A012", 1)`` is a pure function giving the clip keys of
"Nomor antrean A nol satu dua, ..., silakan menuju loket satu". The ticket is read letter by
letter and digit by digit (the way officers read tickets aloud); the counter as an Indonesian
number (``sebelas``, ``dua puluh satu``, ``seratus``). The name is not a clip key: it is spoken
on the fly, so the sequence carries a ``NAME`` marker where it goes.

Clips are WAV files named ``<key>.wav``. An office may record its own into ``display.clips_dir``
(any subset: the rest falls back); missing ones are generated once with espeak-ng's Indonesian
voice into a cache folder, so the appliance speaks without a network.

Example::

    >>> " ".join(call_clips("A012", 12))
    'nomor_antrean huruf_a nol satu dua NAME silakan_menuju_loket dua belas'
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from appliance.errors import AntreanError

log = logging.getLogger(__name__)

NAME = "NAME"

DIGITS = ("nol", "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan")

# Indonesian letter names, as they are read out (be, ce, de, ...).
LETTERS = {
    "A": "a", "B": "be", "C": "ce", "D": "de", "E": "e", "F": "ef", "G": "ge", "H": "ha",
    "I": "i", "J": "je", "K": "ka", "L": "el", "M": "em", "N": "en", "O": "o", "P": "pe",
    "Q": "ki", "R": "er", "S": "es", "T": "te", "U": "u", "V": "ve", "W": "we", "X": "eks",
    "Y": "ye", "Z": "zet",
}

# Every clip key and the text espeak-ng says for it.
CLIP_TEXT: dict[str, str] = {
    "nomor_antrean": "nomor antrean",
    "silakan_menuju_loket": "silakan menuju loket",
    **{d: d for d in DIGITS},
    "sepuluh": "sepuluh", "sebelas": "sebelas", "seratus": "seratus", "seribu": "seribu",
    "belas": "belas", "puluh": "puluh", "ratus": "ratus", "ribu": "ribu",
    **{f"huruf_{c.lower()}": spoken for c, spoken in LETTERS.items()},
}

ESPEAK_VOICE = "id"


def number_words(n: int) -> list[str]:
    """Indonesian words for 0 <= n <= 9999: ``21 -> ['dua', 'puluh', 'satu']``."""
    if not 0 <= n <= 9999:
        raise ValueError(f"cannot speak {n}: counters are numbered 0 to 9999")
    if n < 10:
        return [DIGITS[n]]
    if n == 10:
        return ["sepuluh"]
    if n == 11:
        return ["sebelas"]
    if n < 20:
        return [DIGITS[n - 10], "belas"]
    if n < 100:
        tens, rest = divmod(n, 10)
        return [DIGITS[tens], "puluh"] + (number_words(rest) if rest else [])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = ["seratus"] if hundreds == 1 else [DIGITS[hundreds], "ratus"]
        return head + (number_words(rest) if rest else [])
    thousands, rest = divmod(n, 1000)
    head = ["seribu"] if thousands == 1 else [DIGITS[thousands], "ribu"]
    return head + (number_words(rest) if rest else [])


def ticket_clips(ticket: str) -> list[str]:
    """A ticket read out character by character: ``'A012' -> huruf_a nol satu dua``."""
    keys = []
    for ch in ticket.upper():
        if ch in LETTERS:
            keys.append(f"huruf_{ch.lower()}")
        elif ch.isascii() and ch.isdigit():
            keys.append(DIGITS[int(ch)])
    return keys


def call_clips(ticket: str, counter: int, *, with_name: bool = True) -> list[str]:
    """The clip keys of one spoken call; ``NAME`` marks where the name goes."""
    keys = ["nomor_antrean", *ticket_clips(ticket)]
    if with_name:
        keys.append(NAME)
    return keys + ["silakan_menuju_loket", *number_words(counter)]


class ClipLibrary:
    """Finds the WAV file for a clip key: the office's recording, else a cached espeak-ng one.

    ``path(key)`` may run espeak-ng once (tens of milliseconds); call it off the render loop.
    ``name_path(text)`` does the same for a name, cached by its hash.
    """

    def __init__(self, office_dir: str | None, cache_dir: str | None = None,
                 espeak: str | None = None):
        self.office_dir = Path(office_dir) if office_dir else None
        self.cache_dir = Path(cache_dir or default_cache_dir()) / f"espeak-{ESPEAK_VOICE}"
        self.espeak = espeak or shutil.which("espeak-ng")

    def office_path(self, key: str) -> Path | None:
        if self.office_dir is None:
            return None
        path = self.office_dir / f"{key}.wav"
        return path if path.is_file() else None

    def path(self, key: str) -> Path:
        """The WAV for ``key``; raises ``VoiceUnavailable`` when there is none and no espeak-ng."""
        found = self.office_path(key)
        if found:
            return found
        if key not in CLIP_TEXT:
            raise VoiceUnavailable(f"no clip {key!r}: not a known clip name")
        return self._generated(key, CLIP_TEXT[key])

    def name_path(self, text: str) -> Path:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]
        return self._generated(f"name-{digest}", text)

    def _generated(self, stem: str, text: str) -> Path:
        target = self.cache_dir / f"{stem}.wav"
        if target.is_file():
            return target
        if not self.espeak:
            raise VoiceUnavailable("espeak-ng is not installed and the clip folder lacks "
                                   f"{stem}.wav; install espeak-ng or record the clip")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Written to a temp file and renamed, so a crash never leaves half a clip in the cache.
        fd, tmp = tempfile.mkstemp(suffix=".wav", dir=self.cache_dir)
        os.close(fd)
        try:
            subprocess.run([self.espeak, "-v", ESPEAK_VOICE, "-w", tmp, "--", text],
                           check=True, capture_output=True, timeout=20)
            os.replace(tmp, target)
        except (OSError, subprocess.SubprocessError) as e:
            raise VoiceUnavailable(f"espeak-ng could not speak {text!r}: {e}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target


class VoiceUnavailable(AntreanError, RuntimeError):
    """A clip can be neither found nor generated; the call is announced with the chime only."""


def default_cache_dir() -> str:
    """systemd's ``CacheDirectory=`` if set, else the user's cache folder."""
    cache = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if cache:
        return cache
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "antrean", "voice")
