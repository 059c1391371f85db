"""Barcode decoding of grayscale frames, restricted to QR and Code 128.

Two backends behind one function: zxing-cpp (default, chosen by ``bench/decode.py``) and
pyzbar (needs the system library ``libzbar0``). Limiting the symbologies keeps decoding fast
and stops a stray EAN on a leaflet from becoming a "scan". Texts are returned decoded as
UTF-8 (undecodable bytes replaced), each code once per frame.

Example::

    >>> import numpy as np
    >>> decode(np.full((240, 320), 255, np.uint8))
    []
"""

from __future__ import annotations

import functools

import numpy as np

from drivers.errors import BackendUnavailable, BadFrame

BACKENDS = ("zxing", "pyzbar")
DEFAULT_BACKEND = "zxing"


class ZxingDecoder:
    """zxing-cpp: QR and Code 128 only, no rotation search beyond what a lobby needs."""

    name = "zxing"

    def __init__(self):
        import zxingcpp

        self._read = zxingcpp.read_barcodes
        self._formats = [zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.Code128]

    def decode(self, gray: np.ndarray) -> list[str]:
        return [r.text for r in self._read(gray, formats=self._formats) if r.valid]


class PyzbarDecoder:
    """ZBar through pyzbar: QR and Code 128 only."""

    name = "pyzbar"

    def __init__(self):
        try:
            from pyzbar import pyzbar
        except ImportError as e:  # raised when libzbar0 is missing, too
            raise BackendUnavailable(f"the pyzbar decoder cannot load ({e}); install the "
                                     "libzbar0 package or set scanner.decoder = \"zxing\"")\
                from None
        self._decode = pyzbar.decode
        self._symbols = [pyzbar.ZBarSymbol.QRCODE, pyzbar.ZBarSymbol.CODE128]

    def decode(self, gray: np.ndarray) -> list[str]:
        h, w = gray.shape
        found = self._decode((gray.tobytes(), w, h), symbols=self._symbols)
        return [r.data.decode("utf-8", "replace") for r in found]


@functools.cache
def get_decoder(backend: str = DEFAULT_BACKEND) -> ZxingDecoder | PyzbarDecoder:
    """The (cached) decoder object for ``backend``."""
    if backend == "zxing":
        return ZxingDecoder()
    if backend == "pyzbar":
        return PyzbarDecoder()
    raise ValueError(f"unknown decoder backend {backend!r}; use one of {', '.join(BACKENDS)}")


def check_frame(gray) -> np.ndarray:
    """Return ``gray`` as a C-contiguous 2-D uint8 array, or raise ``BadFrame``."""
    if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.dtype != np.uint8:
        desc = (f"{gray.dtype} array of shape {gray.shape}" if isinstance(gray, np.ndarray)
                else type(gray).__name__)
        raise BadFrame(f"a frame must be a 2-D uint8 grayscale array, got a {desc}")
    return np.ascontiguousarray(gray)


def decode(gray: np.ndarray, backend: str = DEFAULT_BACKEND) -> list[str]:
    """All QR and Code 128 texts in the frame ``gray`` (2-D uint8), each once, in order."""
    texts = get_decoder(backend).decode(check_frame(gray))
    return list(dict.fromkeys(texts))
