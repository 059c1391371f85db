"""Announcing calls through pygame.mixer: chime, then the spoken call, in order, with no gaps.

Each call becomes one ``pygame.mixer.Sound`` built by concatenating its clips' samples (chime,
"nomor antrean", letters, digits, name, "silakan menuju loket", counter), so there is no gap
between clips and no timer deciding when the next one starts. Announcements play on one
channel; the next is handed to ``Channel.queue`` while the current one plays, so a burst of
calls is spoken back to back, in the order they were made.

Building an announcement may run espeak-ng (a name never heard before), so it happens on a
worker thread; ``pump()`` is called from the render loop and only moves finished sounds to
the channel and notices which have ended.

Example::

    >>> import time
    >>> ann = Announcer("chime", ClipLibrary(None))      # "voice" adds the spoken call
    >>> ann.announce(41, "A012", 1, "Bapak Andi S.")
    >>> while not ann.done(41):                          # the render loop, once a frame
    ...     ann.pump()
    ...     time.sleep(1 / 30)
    >>> ann.history[-1].keys
    ['chime']
    >>> ann.close()
"""

from __future__ import annotations

import array
import collections
import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pygame

from appliance.config import SOUND_SETTINGS
from display.voice import NAME, ClipLibrary, VoiceUnavailable, call_clips

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
SETTINGS = SOUND_SETTINGS   # display.sound, defined with the config
PAUSE_S = 0.12          # breath between the chime and the voice, and after the name
MIXER_RATE = 22050       # mono 16-bit: plenty for a chime and a voice, half the memory


@dataclass
class Announcement:
    """One call to be heard; ``keys`` is what was (or will be) played, for logs and tests."""

    call_id: int
    ticket: str
    counter: int
    name: str
    keys: list[str] = field(default_factory=list)
    sound: pygame.mixer.Sound | None = None
    failed: str | None = None


class Announcer:
    """Plays calls in order. ``setting`` is ``display.sound``: off | chime | voice.

    Without a working mixer (no sound card, init failed) every call counts as announced at
    once: the screen must never wait for a speaker that is not there.
    """

    def __init__(self, setting: str, clips: ClipLibrary):
        if setting not in SETTINGS:
            raise ValueError(f"display.sound is {setting!r}; allowed values: {', '.join(SETTINGS)}")
        self.setting = setting
        self.clips = clips
        # Started announcements, oldest first (bounded: the display runs for months).
        self.history: collections.deque[Announcement] = collections.deque(maxlen=1000)
        self._todo: queue.Queue[Announcement | None] = queue.Queue()
        self._ready: collections.deque[Announcement] = collections.deque()
        self._lock = threading.Lock()
        self._in_channel: list[Announcement] = []
        self._done: set[int] = set()
        self._pending: set[int] = set()
        self._samples: dict[str, bytes] = {}
        self._channel: pygame.mixer.Channel | None = None
        self._worker: threading.Thread | None = None
        self.problem: str | None = None
        if setting != "off":
            self._start()

    def _start(self) -> None:
        if not pygame.mixer.get_init():
            try:
                # 16-bit PCM, so clips join as plain bytes (no numpy in the screen process).
                pygame.mixer.init(frequency=MIXER_RATE, size=-16, channels=1)
            except pygame.error as e:
                self.problem = f"no sound: {e}"
                log.warning("sound is off: the mixer did not start (%s)", e)
                return
        pygame.mixer.set_reserved(1)
        self._channel = pygame.mixer.Channel(0)
        self._worker = threading.Thread(target=self._build_loop, name="announcer", daemon=True)
        self._worker.start()

    @property
    def active(self) -> bool:
        return self._channel is not None

    # the render loop's side -----------------------------------------------------------

    def announce(self, call_id: int, ticket: str, counter: int, name: str = "") -> None:
        """Queue a call (a recall is simply announced again with its new id)."""
        if not self.active:
            self._done.add(call_id)
            return
        self._pending.add(call_id)
        self._todo.put(Announcement(call_id, ticket, counter, name))

    def done(self, call_id: int) -> bool:
        """True once this call has been heard to the end (or could not be played)."""
        return call_id in self._done

    def idle(self) -> bool:
        return not self._pending

    def pump(self) -> None:
        """Move built sounds onto the channel; notice finished ones. Cheap; call every frame."""
        if self._channel is None:
            return
        channel = self._channel
        playing = channel.get_sound() if channel.get_busy() else None
        queued = channel.get_queue()
        still = []
        for ann in self._in_channel:
            if ann.sound is playing or ann.sound is queued:
                still.append(ann)
            else:
                self._finish(ann)
        self._in_channel = still
        while True:
            with self._lock:
                if not self._ready:
                    break
                ann = self._ready[0]
            if ann.sound is None:           # could not be built: skip, keep the order
                with self._lock:
                    self._ready.popleft()
                self._finish(ann)
                continue
            if not channel.get_busy() and not self._in_channel:
                channel.play(ann.sound)
            elif channel.get_queue() is None and len(self._in_channel) == 1:
                channel.queue(ann.sound)
            else:
                break
            with self._lock:
                self._ready.popleft()
            self._in_channel.append(ann)
            self.history.append(ann)

    def _finish(self, ann: Announcement) -> None:
        self._pending.discard(ann.call_id)
        self._done.add(ann.call_id)

    def close(self) -> None:
        """Stop the worker and the sound; safe to call twice."""
        if self._worker is not None:
            self._todo.put(None)
            self._worker.join(timeout=5)
            self._worker = None
        if self._channel is not None:
            self._channel.stop()
            self._channel = None

    # the worker's side ------------------------------------------------------------------

    def _build_loop(self) -> None:
        while True:
            ann = self._todo.get()
            if ann is None:
                return
            try:
                ann.sound = self._build(ann)
            except (VoiceUnavailable, pygame.error, OSError, ValueError) as e:
                ann.failed = str(e)
                log.warning("call %s announced without voice: %s", ann.ticket, e)
                try:
                    ann.keys = ["chime"]
                    ann.sound = self._make_sound([self._clip_samples("chime")])
                except (pygame.error, OSError, ValueError) as e2:
                    ann.sound = None
                    log.warning("call %s not announced: %s", ann.ticket, e2)
            with self._lock:
                self._ready.append(ann)

    def _build(self, ann: Announcement) -> pygame.mixer.Sound:
        keys = ["chime"]
        if self.setting == "voice":
            keys += ["PAUSE"] + call_clips(ann.ticket, ann.counter, with_name=bool(ann.name))
        parts = []
        for key in keys:
            if key == "PAUSE":
                parts.append(self._silence(PAUSE_S))
            elif key == NAME:
                parts.append(self._file_samples(self.clips.name_path(ann.name)))
                parts.append(self._silence(PAUSE_S))
            else:
                parts.append(self._clip_samples(key))
        ann.keys = keys
        return self._make_sound(parts)

    def _clip_samples(self, key: str) -> bytes:
        if key not in self._samples:
            if key == "chime":
                path = self.clips.office_path("chime") or ASSETS / "chime.wav"
            else:
                path = self.clips.path(key)
            self._samples[key] = self._file_samples(path)
        return self._samples[key]

    def _file_samples(self, path: Path) -> bytes:
        """Raw samples in the mixer's format, the clip's leading/trailing silence trimmed."""
        _rate, _size, channels = pygame.mixer.get_init()
        return trim_silence(pygame.mixer.Sound(str(path)).get_raw(), channels)

    def _silence(self, seconds: float) -> bytes:
        rate, size, channels = pygame.mixer.get_init()
        return bytes(int(rate * seconds) * channels * (abs(size) // 8))

    def _make_sound(self, parts: list[bytes]) -> pygame.mixer.Sound:
        return pygame.mixer.Sound(buffer=b"".join(parts))


def trim_silence(raw: bytes, channels: int = 1, threshold: int = 300,
                 keep_s: float = 0.02) -> bytes:
    """Cut espeak's (or a recorder's) dead air at both ends of 16-bit PCM, keeping a few ms
    of lead-in; cuts fall on whole frames so channels stay aligned."""
    samples = array.array("h")
    samples.frombytes(raw[: len(raw) - len(raw) % 2])
    loud = [i for i, v in enumerate(samples) if v > threshold or v < -threshold]
    if not loud:
        return raw
    rate = pygame.mixer.get_init()[0] if pygame.mixer.get_init() else MIXER_RATE
    keep = int(rate * keep_s) * channels
    first = max(0, loud[0] - keep) // channels * channels
    last = min(len(samples), (loud[-1] // channels + 1) * channels + keep)
    return samples[first:last].tobytes()
