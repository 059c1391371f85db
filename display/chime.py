"""The two-tone lobby chime, synthesised with numpy so the repo ships no opaque binary source.

``display/assets/chime.wav`` is this module's output (``python -m display.chime``); an office
may override it with ``chime.wav`` in ``display.clips_dir``.
"""

from __future__ import annotations

import sys
import wave

import numpy as np

RATE = 22050
# A falling major third (E5 then C5), the classic "ding-dong" that cuts through lobby noise.
TONES_HZ = (659.25, 523.25)
NOTE_S = 0.55
TAIL_S = 0.5


def synthesize(rate: int = RATE) -> np.ndarray:
    """The chime as mono int16 samples: two bell-like notes with a soft attack and decay."""
    total = int(rate * (NOTE_S * len(TONES_HZ) + TAIL_S))
    out = np.zeros(total, dtype=np.float64)
    for i, freq in enumerate(TONES_HZ):
        start = int(i * NOTE_S * rate)
        t = np.arange(total - start) / rate
        envelope = np.exp(-t * 3.2) * np.minimum(1.0, t / 0.01)
        bell = (np.sin(2 * np.pi * freq * t) + 0.35 * np.sin(2 * np.pi * 2 * freq * t)
                + 0.12 * np.sin(2 * np.pi * 3 * freq * t))
        out[start:] += bell * envelope
    out *= 0.6 / np.max(np.abs(out))
    fade = int(0.05 * rate)
    out[-fade:] *= np.linspace(1.0, 0.0, fade)
    return (out * 32767).astype(np.int16)


def write_wav(path: str, samples: np.ndarray, rate: int = RATE) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


if __name__ == "__main__":
    write_wav(sys.argv[1] if len(sys.argv) > 1 else "display/assets/chime.wav", synthesize())
