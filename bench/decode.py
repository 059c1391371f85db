"""Decoder benchmark: ms per grayscale frame and success rate, zxing-cpp vs pyzbar.

Scenes: empty, clean and blurred (box blur r=1), at 640x480 and 320x240, for a plain booking
code in QR, a signed AT1 ticket in QR and a plain code in Code 128. Prints medians, p99 and
the zxing/pyzbar time ratio; the README's default decoder comes from these numbers.

    .venv/bin/python bench/decode.py [--repeat 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import percentile, result  # noqa: E402
from devtools.scenes import add_noise, barcode_image, box_blur, scene  # noqa: E402
from drivers.decoder import BACKENDS, get_decoder  # noqa: E402

PLAIN = "K7Q2M9XA"
SIGNED = ("AT1.k2026a.eyJiIjoiSzdRMk05WEEiLCJvIjoiVFJLIiwicyI6IjIwMjYtMTEtMzBUMDg6MDA6MDArMDg6"
          "MDAiLCJlIjoiMjAyNi0xMS0zMFQwODozMDowMCswODowMCIsInYiOiJBIiwibiI6IkFuZGkgUy4iLCJwIjowfQ."
          "q3MzeyH0Tj9xW1vQm8Jb7Lr2Kc5Np4Ds6Fg8Ht0Au1Ei3Oy5Wz7Xx9Vv2Bb4Nn6Mm8Ll0Kk2Jj4Hh6Gg8Ff0Dd1Qw")
SYMBOLS = [("qr-plain", PLAIN, "qr", 3), ("qr-AT1", SIGNED, "qr", 3),
           ("code128", PLAIN, "code128", 2)]
SIZES = [(640, 480), (320, 240)]


def scenes():
    """(label, size, expected text or None, frames) for every case; frames vary by noise seed."""
    for size in SIZES:
        yield "empty", size, None, [add_noise(scene(None, size), 4.0, seed=s) for s in range(8)]
        for name, text, fmt, scale in SYMBOLS:
            sym = barcode_image(text, fmt, scale=scale)
            if sym.shape[1] > size[0] or sym.shape[0] > size[1]:
                sym = barcode_image(text, fmt, scale=scale - 1)
            clean = [add_noise(scene(sym, size), 4.0, seed=s) for s in range(8)]
            yield f"{name}/clean", size, text, clean
            yield f"{name}/blur", size, text, [box_blur(f, 1) for f in clean]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=40, help="decodes per case and backend")
    args = ap.parse_args()
    decoders = {b: get_decoder(b) for b in BACKENDS}
    print(f"{'case':<22}{'size':>9}  " + "  ".join(
        f"{b + ' med':>11}{b + ' p99':>11}{'ok%':>6}" for b in BACKENDS) + f"{'ratio':>8}")
    totals = {b: [] for b in BACKENDS}
    for label, (w, h), expected, frames in scenes():
        row, medians = [], {}
        for b, dec in decoders.items():
            times, hits = [], 0
            for i in range(args.repeat):
                frame = frames[i % len(frames)]
                t0 = time.perf_counter()
                got = dec.decode(frame)
                times.append((time.perf_counter() - t0) * 1000)
                hits += (got == [expected]) if expected else (got == [])
            medians[b] = statistics.median(times)
            totals[b] += times
            tail = percentile(times, 99)
            row.append(f"{medians[b]:>11.2f}{tail:>11.2f}{100 * hits / args.repeat:>6.0f}")
        ratio = medians["zxing"] / medians["pyzbar"] if medians["pyzbar"] else float("nan")
        print(f"{label:<22}{w}x{h:<5}  " + "  ".join(row) + f"{ratio:>8.2f}")
    z, p = statistics.median(totals["zxing"]), statistics.median(totals["pyzbar"])
    print(f"\nall cases: zxing median {z:.2f} ms, pyzbar median {p:.2f} ms, "
          f"zxing/pyzbar = {z / p:.2f}")
    result("decode per frame, zxing-cpp (all cases)", z, "ms",
           p99=percentile(totals["zxing"], 99))
    result("decode per frame, pyzbar (all cases)", p, "ms",
           p99=percentile(totals["pyzbar"], 99))
    result("decode time ratio zxing / pyzbar", z / p, "x",
           note="below 1: zxing-cpp faster, the default")
    return 0


if __name__ == "__main__":
    sys.exit(main())
