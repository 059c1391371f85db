"""Synthetic camera scenes with real barcodes: the camera backend's double.

Tests, ``bench/decode.py`` and the demo build frames here: a QR or Code 128 symbol made by
zxing-cpp's encoder, pasted into a plain grey "lobby" scene, optionally blurred (box blur,
like a phone held too close) or noisy (sensor noise in a dim lobby).

Example::

    >>> frame = scene(barcode_image("K7Q2M9XA", "qr"), size=(640, 480))
    >>> frame.shape
    (480, 640)
"""

from __future__ import annotations

import numpy as np

FORMATS = ("qr", "code128")


def barcode_image(text: str, fmt: str = "qr", scale: int = 4, height: int = 80) -> np.ndarray:
    """A black-on-white symbol with quiet zone, as a 2-D uint8 array."""
    import zxingcpp

    kinds = {"qr": zxingcpp.BarcodeFormat.QRCode, "code128": zxingcpp.BarcodeFormat.Code128}
    if fmt not in kinds:
        raise ValueError(f"unknown barcode format {fmt!r}; use one of {', '.join(FORMATS)}")
    code = zxingcpp.create_barcode(text, kinds[fmt])
    img = np.asarray(zxingcpp.write_barcode_to_image(code, scale=scale), dtype=np.uint8)
    if fmt == "code128":
        img = np.repeat(img[:1], height, axis=0)  # a 1-D symbol: stretch one row to a height
    return img


def scene(symbol: np.ndarray | None, size: tuple[int, int] = (640, 480), *,
          at: tuple[int, int] | None = None, background: int = 170) -> np.ndarray:
    """A ``size`` (width, height) grey frame with ``symbol`` pasted (centred by default)."""
    width, height = size
    frame = np.full((height, width), background, np.uint8)
    # A darker band at the bottom, like a counter edge, so an empty scene is not flat.
    frame[int(height * 0.8):, :] = background // 2
    if symbol is None:
        return frame
    sh, sw = symbol.shape
    if sh > height or sw > width:
        raise ValueError(f"a {sw}x{sh} symbol does not fit in a {width}x{height} scene")
    x, y = at if at is not None else ((width - sw) // 2, (height - sh) // 2)
    frame[y:y + sh, x:x + sw] = symbol
    return frame


def box_blur(frame: np.ndarray, radius: int = 1) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges clamped."""
    if radius <= 0:
        return frame.copy()
    k = 2 * radius + 1
    padded = np.pad(frame.astype(np.uint32), radius, mode="edge")
    sums = padded.cumsum(0).cumsum(1)
    sums = np.pad(sums, ((1, 0), (1, 0)))
    h, w = frame.shape
    total = sums[k:k + h, k:k + w] - sums[:h, k:k + w] - sums[k:k + h, :w] + sums[:h, :w]
    return (total // (k * k)).astype(np.uint8)


def add_noise(frame: np.ndarray, sigma: float = 12.0, seed: int = 0) -> np.ndarray:
    """Gaussian sensor noise, reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    noisy = frame.astype(np.float32) + rng.normal(0.0, sigma, frame.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)
