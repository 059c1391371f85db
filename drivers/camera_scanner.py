"""Camera barcode reading: frames from a backend, decoded, each code reported once.

On the Pi, ``Picamera2Frames`` asks for a low-resolution YUV420 stream and hands its Y plane
(already grayscale) straight to the decoder: no colour conversion, little CPU. Tests and the
demo use ``FileFrames`` (a folder of PNG or ``.npy`` frames, or any iterable of arrays).

A code is reported once while it stays in view; the same code is reported again only after
it has been out of view for ``repeat_seconds`` (an applicant who lowers the phone and shows it
again gets a new verdict, a phone held still does not flood the store).

Example (frames from memory; ``FileFrames(folder)`` reads PNG or ``.npy`` files the same way,
``Picamera2Frames()`` is the Pi camera)::

    >>> import zxingcpp
    >>> symbol = zxingcpp.create_barcode("K7Q2M9XA", zxingcpp.BarcodeFormat.QRCode)
    >>> qr = np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=4), np.uint8)
    >>> seen = []
    >>> with CameraScanner(FileFrames([qr, qr, qr]), on_payload=seen.append) as cam:
    ...     while not cam.finished:
    ...         time.sleep(0.01)
    >>> seen                            # three frames with the code in view: one scan
    [b'K7Q2M9XA']
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator

import numpy as np

from drivers.backend import PayloadCallback, ScannerBackend, StateCallback
from drivers.decoder import DEFAULT_BACKEND, check_frame, get_decoder
from drivers.errors import BackendUnavailable, DriverError

Frame = tuple[float, np.ndarray]  # (seconds, 2-D uint8 grayscale)


class SightingFilter:
    """Decide which decoded codes are new sightings.

    ``update(codes, now)`` returns the codes to report: those not seen before, or not seen in
    any frame during the last ``repeat_seconds``.
    """

    def __init__(self, repeat_seconds: float):
        self.repeat_seconds = repeat_seconds
        self._last_seen: dict[str, float] = {}

    def update(self, codes: Iterable[str], now: float) -> list[str]:
        new = []
        for code in codes:
            last = self._last_seen.get(code)
            if last is None or now - last > self.repeat_seconds:
                new.append(code)
            self._last_seen[code] = now
        # Forget codes gone long enough, so memory stays bounded over a day of scans.
        horizon = now - self.repeat_seconds
        for code in [c for c, t in self._last_seen.items() if t < horizon]:
            del self._last_seen[code]
        return new


class FileFrames:
    """Frames from a folder (``*.png``, ``*.npy`` in name order) or an iterable of arrays.

    Frame times are ``index / fps``; ``realtime=True`` also paces them at ``fps`` (the demo).
    ``loop=True`` repeats the folder forever.
    """

    def __init__(self, source: str | os.PathLike | Iterable[np.ndarray], *, fps: float = 15.0,
                 realtime: bool = False, loop: bool = False):
        self.source = source
        self.fps = fps
        self.realtime = realtime
        self.loop = loop

    def _arrays(self) -> Iterator[np.ndarray]:
        if isinstance(self.source, (str, os.PathLike)):
            folder = os.fspath(self.source)
            if not os.path.isdir(folder):
                raise DriverError(f"frames folder {folder} does not exist; "
                                  "fix scanner.frames_dir")
            names = sorted(n for n in os.listdir(folder)
                           if n.lower().endswith((".png", ".npy")))
            for name in names:
                yield load_frame(os.path.join(folder, name))
        else:
            yield from self.source

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        start = time.monotonic()
        while True:
            for gray in self._arrays():
                t = index / self.fps
                if self.realtime:
                    delay = start + t - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                yield t, gray
                index += 1
            if not self.loop or index == 0:
                return


def load_frame(path: str) -> np.ndarray:
    """Read a ``.npy`` (2-D uint8) or PNG file as a grayscale frame."""
    if path.lower().endswith(".npy"):
        return check_frame(np.load(path, allow_pickle=False))
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    try:
        surface = pygame.image.load(path)
    except (pygame.error, FileNotFoundError) as e:
        raise DriverError(f"frame {path} cannot be read as PNG ({e})") from None
    rgb = pygame.surfarray.array3d(surface).transpose(1, 0, 2).astype(np.uint16)
    gray = (rgb[..., 0] * 77 + rgb[..., 1] * 150 + rgb[..., 2] * 29) >> 8  # BT.601 luma
    return gray.astype(np.uint8)


class Picamera2Frames:
    """Live frames from the Pi camera: the Y plane of a low-resolution YUV420 stream."""

    def __init__(self, width: int = 640, height: int = 480, fps: int = 15):
        self.width = width
        self.height = height
        self.fps = fps
        self._camera = None

    def __iter__(self) -> Iterator[Frame]:
        try:
            from picamera2 import Picamera2
        except ImportError as e:
            raise BackendUnavailable(f"the camera scanner needs picamera2 ({e}); install "
                                     "python3-picamera2 or pick another scanner.kind") from None
        try:
            cam = Picamera2()
            main = {"size": (self.width, self.height), "format": "YUV420"}
            lores = {"size": (self.width, self.height), "format": "YUV420"}
            frame_us = int(1_000_000 / self.fps)
            cam.configure(cam.create_video_configuration(
                main=main, lores=lores, buffer_count=4,
                controls={"FrameDurationLimits": (frame_us, frame_us)}))
            cam.start()
        except Exception as e:  # noqa: BLE001 - libcamera raises many kinds
            raise DriverError(f"the camera cannot be started ({e}); check the ribbon cable "
                              "and that no other program uses the camera") from None
        self._camera = cam
        try:
            while True:
                yuv = cam.capture_array("lores")
                # YUV420 arrives as a (height * 3 / 2, width) array: the top rows are Y.
                yield time.monotonic(), yuv[:self.height, :self.width]
        finally:
            self.close()

    def close(self) -> None:
        cam, self._camera = self._camera, None
        if cam is not None:
            try:
                cam.stop()
                cam.close()
            except Exception:  # noqa: BLE001 - closing must never raise
                pass


class CameraScanner(ScannerBackend):
    """The scan loop: frames -> decoder -> sighting filter -> ``on_payload``."""

    kind = "camera"

    def __init__(self, frames: Iterable[Frame], *, on_payload: PayloadCallback,
                 on_state: StateCallback | None = None, decoder: str = DEFAULT_BACKEND,
                 repeat_seconds: float = 3.0, retry_s: float = 2.0):
        super().__init__(on_payload, on_state)
        self.frames = frames
        self.decoder = get_decoder(decoder)
        self.sightings = SightingFilter(repeat_seconds)
        self.retry_s = retry_s
        self.frames_seen = 0

    @classmethod
    def from_config(cls, scanner, *, on_payload, on_state=None, stdin_fd=None):
        """Frames from ``scanner.frames_dir`` when set (a recorded or test scene), else the
        Pi camera."""
        if scanner.frames_dir:
            frames = FileFrames(scanner.frames_dir, fps=scanner.camera_fps, realtime=True)
        else:
            frames = Picamera2Frames(scanner.camera_width, scanner.camera_height,
                                     scanner.camera_fps)
        return cls(frames, on_payload=on_payload, on_state=on_state, decoder=scanner.decoder,
                   repeat_seconds=scanner.repeat_seconds)

    def scan_frame(self, gray: np.ndarray, now: float) -> list[str]:
        """Decode one frame; return the codes that are new sightings."""
        return self.sightings.update(self.decoder.decode(check_frame(gray)), now)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for now, gray in self.frames:
                    if self._stop.is_set():
                        return
                    self._set_state(True, f"camera decoding with {self.decoder.name}")
                    self.frames_seen += 1
                    for code in self.scan_frame(gray, now):
                        self._emit(code.encode("utf-8"))
            except DriverError as e:
                self._set_state(False, f"{e}; retrying")
                if self._wait(self.retry_s):
                    return
                continue
            if isinstance(self.frames, FileFrames) and not self.frames.loop:
                self.finished = True
                self._set_state(False, "camera frames ended")
                return
            self._set_state(False, "camera stopped delivering frames; restarting it")
            if self._wait(self.retry_s):
                return

    def _release(self) -> None:
        close = getattr(self.frames, "close", None)
        if close is not None:
            close()
