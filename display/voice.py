"""What the lobby hears: a call as a sequence of Indonesian clips, and where the clips come from.

``call_clips("A012", 1)`` is a pure function giving the clip keys of
"Nomor antrean A nol satu dua, ..., silakan menuju loket satu". The ticket is read letter by
letter and digit by digit (the way officers read tickets aloud); the counter as an Indonesian
number (``sebelas``, ``dua puluh satu``, ``seratus``). The name is not a clip key: it is spoken
on the fly, so the sequence carries a ``NAME`` marker where it goes.

Clips are WAV files named ``<key>.wav``. An office may record its own into ``display.clips_dir``
(any subset: the rest falls back); missing ones are generated once with espeak-ng's Indonesian
voice into a cache folder, so the appliance speaks without a network.

Spoken names are applicants' personal data on an SD card, so their cache is bounded: files
are named only by a keyed hash (HMAC-SHA-256 with a random key kept in the cache, so a list
of names cannot be checked against the file names), removed after ``display.voice_cache_days``
and, oldest first, once the folder exceeds ``display.voice_cache_mb``. The name reaches
espeak-ng on its standard input, never on a command line other processes can read.

Example::

    >>> " ".join(call_clips("A012", 12))
    'nomor_antrean huruf_a nol satu dua NAME silakan_menuju_loket dua belas'
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import shutil
import subprocess
import tempfile
import time
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
NAMES_FOLDER = "names"          # spoken names, by keyed hash, bounded
NAME_KEY_FILE = ".key"          # the HMAC key of the names folder (random, mode 0600)
PRUNE_EVERY_S = 3600.0          # the age limit is enforced at least this often while in use
DEFAULT_CACHE_MB = 32
DEFAULT_CACHE_DAYS = 7


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
    ``name_path(text)`` does the same for a name, in the bounded names cache (see the module
    docstring): at most ``max_bytes`` of files, none older than ``max_age_s``.
    """

    def __init__(self, office_dir: str | None, cache_dir: str | None = None,
                 espeak: str | None = None, *, max_bytes: int = DEFAULT_CACHE_MB << 20,
                 max_age_s: float = DEFAULT_CACHE_DAYS * 86400.0, wall=time.time):
        self.office_dir = Path(office_dir) if office_dir else None
        self.cache_dir = Path(cache_dir or default_cache_dir()) / f"espeak-{ESPEAK_VOICE}"
        self.names_dir = self.cache_dir / NAMES_FOLDER
        self.espeak = espeak or shutil.which("espeak-ng")
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._wall = wall
        self._key: bytes | None = None
        self._pruned_at = float("-inf")
        self.prune()

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
        return self._generated(self.cache_dir / f"{key}.wav", CLIP_TEXT[key])

    def name_path(self, text: str) -> Path:
        """The WAV of a spoken name, generated on first use; the cache stays within bounds."""
        if self._wall() - self._pruned_at > PRUNE_EVERY_S:
            self.prune()
        digest = hmac.new(self._name_key(), text.encode("utf-8"), hashlib.sha256).hexdigest()
        target = self.names_dir / f"{digest[:32]}.wav"
        if target.is_file():
            return target
        self._generated(target, text, what="the name")
        self.prune(keep=target)
        return target

    def _generated(self, target: Path, text: str, what: str | None = None) -> Path:
        if target.is_file():
            return target
        what = what or repr(text)
        if not self.espeak:
            raise VoiceUnavailable("espeak-ng is not installed and the clip folder lacks "
                                   f"{target.name}; install espeak-ng or record the clip")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written to a temp file and renamed, so a crash never leaves half a clip in the cache.
        fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            subprocess.run([self.espeak, "-v", ESPEAK_VOICE, "-w", tmp, "--stdin"],
                           input=text.encode("utf-8"), check=True, capture_output=True,
                           timeout=20)
            os.replace(tmp, target)
        except (OSError, subprocess.SubprocessError) as e:
            raise VoiceUnavailable(f"espeak-ng could not speak {what}: {e}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    def _name_key(self) -> bytes:
        """The random HMAC key of the names folder, made on first use."""
        if self._key is None:
            path = self.names_dir / NAME_KEY_FILE
            try:
                key = path.read_bytes()
            except FileNotFoundError:
                key = b""
            if len(key) != 32:
                self.names_dir.mkdir(parents=True, exist_ok=True)
                key = os.urandom(32)
                tmp = path.with_name(f"{NAME_KEY_FILE}.{os.getpid()}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
                os.replace(tmp, path)
                # A new key orphans every name file made with the old one.
                self._remove(p for p in self.names_dir.iterdir() if p.name != NAME_KEY_FILE)
            self._key = key
        return self._key

    def prune(self, keep: Path | None = None) -> int:
        """Enforce the names cache's bounds; returns how many files were removed.

        Removes names older than ``max_age_s``, then the oldest until the folder fits in
        ``max_bytes`` (``keep``, the file just made, stays), plus leftovers of a crash and
        name files of older releases (``name-<sha1>.wav`` beside the fixed clips).
        """
        self._pruned_at = now = self._wall()
        doomed = [p for p in _listing(self.cache_dir) if p.name.startswith("name-")
                  or p.suffix == ".tmp"]
        files = []
        for path in _listing(self.names_dir):
            if path.name == NAME_KEY_FILE or path == keep:
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if path.suffix != ".wav" or now - st.st_mtime > self.max_age_s:
                doomed.append(path)
            else:
                files.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in files)
        if keep is not None and keep.is_file():
            total += keep.stat().st_size
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            doomed.append(path)
            total -= size
        return self._remove(doomed)

    @staticmethod
    def _remove(paths) -> int:
        removed = 0
        for path in paths:
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("voice cache: cannot remove %s: %s", path.name, e)
        return removed


def library_for(display) -> ClipLibrary:
    """The clip library the ``[display]`` config section describes."""
    return ClipLibrary(display.clips_dir or None, max_bytes=display.voice_cache_mb << 20,
                       max_age_s=display.voice_cache_days * 86400.0)


class VoiceUnavailable(AntreanError, RuntimeError):
    """A clip can be neither found nor generated; the call is announced with the chime only."""


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def default_cache_dir() -> str:
    """systemd's ``CacheDirectory=`` if set, else the user's cache folder."""
    cache = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if cache:
        return cache
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "antrean", "voice")
