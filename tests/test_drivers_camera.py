"""Decoder backends and the camera scan loop over generated frames."""

import queue

import numpy as np
import pytest

from devtools.scenes import add_noise, barcode_image, box_blur, scene
from drivers.camera_scanner import CameraScanner, FileFrames, SightingFilter, load_frame
from drivers.decoder import decode
from drivers.errors import AntreanError, BadFrame

PLAIN = "K7Q2M9XA"
# A signed ticket's shape: AT1.<kid>.<base64url payload>.<base64url 64-byte signature>.
SIGNED = ("AT1.k2026a.eyJiIjoiSzdRMk05WEEiLCJvIjoiVFJLIiwicyI6IjIwMjYtMTEtMzBUMDg6MDA6MDArMDg6"
          "MDAiLCJlIjoiMjAyNi0xMS0zMFQwODozMDowMCswODowMCIsInYiOiJBIiwibiI6IkFuZGkgUy4iLCJwIjowfQ."
          "q3MzeyH0Tj9xW1vQm8Jb7Lr2Kc5Np4Ds6Fg8Ht0Au1Ei3Oy5Wz7Xx9Vv2Bb4Nn6Mm8Ll0Kk2Jj4Hh6Gg8Ff0Dd1Qw")
BACKENDS = ["zxing", "pyzbar"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("text, fmt", [(PLAIN, "qr"), (SIGNED, "qr"), (PLAIN, "code128")])
@pytest.mark.parametrize("size", [(640, 480), (320, 240)])
def test_clean_and_noisy_scenes_decode(backend, text, fmt, size):
    scale = 2 if len(text) > 40 or (fmt == "code128" and size[0] < 400) else 3
    symbol = barcode_image(text, fmt, scale=scale)
    frame = scene(symbol, size)
    assert decode(frame, backend) == [text]
    assert decode(add_noise(frame, sigma=12.0, seed=1), backend) == [text]


@pytest.mark.parametrize("backend", BACKENDS)
def test_blurred_scene_decodes_when_the_symbol_is_large_enough(backend):
    frame = box_blur(scene(barcode_image(SIGNED, "qr", scale=4)), radius=1)
    assert decode(frame, backend) == [SIGNED]


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_heavily_blurred_scenes_give_nothing(backend):
    assert decode(scene(None), backend) == []
    assert decode(add_noise(scene(None), sigma=30.0), backend) == []
    assert decode(box_blur(scene(barcode_image(PLAIN, "qr", scale=1)), 2), backend) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_symbologies_are_ignored(backend):
    import zxingcpp

    code = zxingcpp.create_barcode("1234567", zxingcpp.BarcodeFormat.EAN8)
    ean = np.asarray(zxingcpp.write_barcode_to_image(code, scale=3), dtype=np.uint8)
    ean = np.repeat(ean[:1], 80, axis=0)
    assert decode(scene(ean), backend) == []


def test_two_codes_in_one_frame_each_once():
    frame = scene(barcode_image(PLAIN, "qr", scale=3), at=(20, 20))
    frame[250:330, 200:629] = barcode_image("B2C3D4E5", "code128", scale=3)
    assert sorted(decode(frame)) == ["B2C3D4E5", PLAIN]


def test_bad_frames_are_refused_with_a_clear_error():
    for bad in (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), np.float32), b"abc"):
        with pytest.raises(BadFrame) as e:
            decode(bad)
        assert isinstance(e.value, AntreanError) and isinstance(e.value, ValueError)
    with pytest.raises(ValueError, match="unknown decoder backend"):
        decode(scene(None), "opencv")


def test_sighting_filter_reports_once_while_in_view():
    f = SightingFilter(repeat_seconds=3.0)
    assert f.update([PLAIN], 0.0) == [PLAIN]
    assert f.update([PLAIN], 0.1) == []
    assert all(f.update([PLAIN], t / 15) == [] for t in range(2, 150))  # held 10 s: once
    assert f.update([], 11.0) == []
    assert f.update([PLAIN], 12.5) == []        # out of view only 2.5 s
    assert f.update([PLAIN], 16.0) == [PLAIN]   # out of view 3.5 s: a new sighting
    assert f.update(["B2C3D4E5", PLAIN], 16.1) == ["B2C3D4E5"]


def run_camera(frames, **kwargs):
    got, states = queue.Queue(), []
    cam = CameraScanner(frames, on_payload=got.put, on_state=lambda c, d: states.append(c),
                        **kwargs)
    with cam:
        cam._thread.join(timeout=30)
    return list(got.queue), states, cam


def test_camera_loop_over_generated_frames(tmp_path):
    qr = scene(barcode_image(PLAIN, "qr", scale=3))
    c128 = add_noise(scene(barcode_image("B2C3D4E5", "code128", scale=3)), seed=2)
    empty = scene(None)
    # 15 fps: the QR is held for 10 frames, leaves for 1 s, comes back (a new sighting after
    # repeat_seconds=0.5), then a Code 128 and a blurred QR of a long signed ticket.
    blurred = box_blur(scene(barcode_image(SIGNED, "qr", scale=4)), radius=1)
    frames = [qr] * 10 + [empty] * 15 + [qr] * 3 + [c128] * 4 + [empty] + [blurred] * 3
    for i, f in enumerate(frames):
        np.save(tmp_path / f"{i:03d}.npy", f)
    got, states, cam = run_camera(FileFrames(tmp_path, fps=15.0), repeat_seconds=0.5)
    assert got == [PLAIN.encode(), PLAIN.encode(), b"B2C3D4E5", SIGNED.encode()]
    assert states == [True, False] and cam.finished
    assert cam.frames_seen == len(frames)


def test_short_gap_does_not_repeat_and_pyzbar_backend_works():
    qr = scene(barcode_image(PLAIN, "qr", scale=3))
    frames = [qr, qr, scene(None), scene(None), qr]  # out of view 0.2 s < 3 s
    got, _, _ = run_camera(FileFrames(frames, fps=10.0), repeat_seconds=3.0, decoder="pyzbar")
    assert got == [PLAIN.encode()]


def test_png_frames_load_as_grayscale(tmp_path):
    import os

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    import pygame

    gray = scene(barcode_image(PLAIN, "qr", scale=3))
    rgb = np.repeat(gray[:, :, None], 3, axis=2).transpose(1, 0, 2).copy()
    pygame.image.save(pygame.surfarray.make_surface(rgb), str(tmp_path / "f.png"))
    loaded = load_frame(str(tmp_path / "f.png"))
    assert loaded.shape == gray.shape and loaded.dtype == np.uint8
    assert np.abs(loaded.astype(int) - gray).max() <= 1
    got, _, _ = run_camera(FileFrames(tmp_path))
    assert got == [PLAIN.encode()]


def test_missing_frames_folder_is_a_visible_state_not_a_crash(tmp_path):
    states = queue.Queue()
    cam = CameraScanner(FileFrames(tmp_path / "nope"), on_payload=print,
                        on_state=lambda c, d: states.put((c, d)), retry_s=0.05)
    with cam:
        connected, detail = states.get(timeout=5)
    assert connected is False and "does not exist" in detail
