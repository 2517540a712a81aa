"""Held frames: real anime art animated on twos and threes, encoded with real x264/x265, decoded as vidsr does."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anime_clip import Shot, decode, encode, held_truth, render
from vidsr.engine.dedup import HeldFrameDetector, HeldThresholds, half_size
from vidsr.errors import OptionError
from vidsr.io.decode import FrameReader
from vidsr.io.probe import probe_video

W, H = 320, 180
# As anime is drawn: everything on twos (pan, walk, mouth), on threes, a close-up whose
# lips move on threes over a still background, then a pan on ones under a character on
# twos (nothing held there).
ANIMATION = [
    Shot(24, pan_px=0.5, pan_every=2, sprite_px=1, sprite_every=2, poses_every=6),
    Shot(24, pan_px=0.25, pan_every=3, sprite_px=0.5, sprite_every=3, poses_every=9),
    Shot(24, sprite_every=3, poses_every=3),
    Shot(12, pan_px=0.25, sprite_every=2, sprite_px=1),
]


@pytest.fixture(scope="module")
def anime(media: Path) -> Path:
    return media / "images" / "anime"


@pytest.fixture(scope="module")
def animation(anime: Path) -> tuple[list[np.ndarray], list[bool]]:
    frames = render(anime, ANIMATION, width=W, height=H)
    return frames, held_truth(frames)


def _detect(frames: list[np.ndarray], thresholds: HeldThresholds = HeldThresholds()) -> tuple[list[bool], list[int]]:
    """Held flags and, for each frame, the index of the frame whose output it would reuse (itself if not held)."""
    det = HeldFrameDetector(thresholds)
    held, source = [], []
    for i, frame in enumerate(frames):
        held.append(det.is_held(frame))
        source.append(source[-1] if held[-1] else i)
    assert det.frames == len(frames) and det.held == sum(held)
    return held, source


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255**2 / mse) if mse else float("inf")


@pytest.mark.parametrize(("codec", "crf", "preset", "recall"), [
    ("libx264", 23, "medium", 1.0),   # x264's defaults
    ("libx264", 18, "veryfast", 1.0),
    # x265's default CRF. Its medium preset drops the 3-pixel lip change at this tiny size
    # altogether (the decoded frames are identical, so reusing them is right, but the
    # rendered truth would call it a change): fast keeps it.
    ("libx265", 28, "fast", 0.85),
])
def test_finds_the_held_frames_and_only_those(tmp_path: Path, animation, codec: str, crf: int, preset: str,
                                              recall: float) -> None:
    frames, truth = animation
    assert 40 <= sum(truth) <= 48  # the clip really is on twos and threes
    decoded = decode(encode(frames, tmp_path / "anime.mp4", codec=codec, crf=crf, preset=preset, keyint=24))
    assert len(decoded) == len(frames)
    held, source = _detect(decoded)
    wrong = [i for i, (h, t) in enumerate(zip(held, truth)) if h and not t]
    assert wrong == [], f"real changes merged at frames {wrong}"
    found = sum(h and t for h, t in zip(held, truth))
    assert found >= recall * sum(truth), f"found {found} of {sum(truth)} held frames"
    # The output a held frame reuses is that of a picture within the codec's own noise of it.
    for i in range(len(decoded)):
        if held[i]:
            assert _psnr(decoded[i], decoded[source[i]]) >= 40


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
@pytest.mark.parametrize("shot", [
    Shot(36, pan_px=0.25),                    # a slow pan, the whole frame
    Shot(36, pan_px=0.25, sprite_px=0.25),    # the camera follows a character drifting across it
    Shot(36, sprite_every=2, fade=1 / 72),    # a 3-second fade to black over a held drawing
], ids=["pan", "pan+sprite", "fade"])
def test_slow_motion_and_fades_are_never_merged(tmp_path: Path, anime: Path, codec: str, shot: Shot) -> None:
    frames = render(anime, [shot], width=W, height=H)
    assert not any(held_truth(frames))
    decoded = decode(encode(frames, tmp_path / "motion.mp4", codec=codec, crf=23 if codec == "libx264" else 28))
    held, _ = _detect(decoded)
    assert not any(held), f"frames {[i for i, h in enumerate(held) if h]} reused"


def test_drift_adds_up_against_the_reference(anime: Path) -> None:
    """0.05 px per frame is below any per-frame threshold, but never freezes for long."""
    frames = render(anime, [Shot(40, pan_px=0.05)], width=W, height=H)
    held, source = _detect(frames)
    assert any(held) and not all(held[1:])
    # Each reused output is at most a few frames (a fraction of a pixel) behind.
    assert max(i - s for i, s in enumerate(source)) <= 4


def test_real_footage_has_its_duplicates_found(media: Path) -> None:
    """Big Buck Bunny at 25 fps repeats one frame in 25 (made from 24 fps); nothing else repeats."""
    path = media / "videos" / "bbb_720p_aac51_2s.mp4"
    frames = list(FrameReader(path, probe_video(path).color))
    held, _ = _detect(frames)
    assert [i for i, h in enumerate(held) if h] == [7, 32]


@pytest.mark.parametrize("name", ["earth", "bikes"])
def test_live_motion_is_never_reused(media: Path, name: str) -> None:
    path = (media.parents[1] / "samples" / "earth_3s.mp4" if name == "earth"
            else media / "videos" / "bikes_640x272_3s.mp4")
    frames = list(FrameReader(path, probe_video(path).color))
    held, _ = _detect(frames)
    assert not any(held)


def test_motion_graphics_holds(media: Path) -> None:
    """flat2d: no twos or threes, but a title card held for 78 frames and a few shorter holds."""
    path = media / "videos" / "flat2d_480x352_aac_10s.mp4"
    frames = list(FrameReader(path, probe_video(path).color))
    held, source = _detect(frames)
    assert all(held[62:140])           # the title card, still from frame 61 to 139
    assert not any(held[140:181])      # then it moves again
    assert not any(held[262:])         # a slow drift at the end (consecutive PSNR 46-54 dB) is motion
    for i in range(len(frames)):
        if held[i]:
            assert _psnr(frames[i], frames[source[i]]) >= 40


def test_small_changes_against_exact_copies(anime: Path) -> None:
    frame = render(anime, [Shot(1)], width=W, height=H)[0]
    det = HeldFrameDetector()
    assert not det.is_held(frame)           # the first frame is never held
    assert det.is_held(frame.copy())
    eye = frame.copy()
    eye[80:84, 150:154] = np.clip(eye[80:84, 150:154].astype(int) + 24, 0, 255)  # a 4x4 detail, 24 levels
    assert not det.is_held(eye)
    assert det.is_held(eye.copy())          # the changed frame is the reference now
    dimmer = np.clip(eye.astype(int) - 1, 0, 255).astype(np.uint8)  # one level darker everywhere
    assert not det.is_held(dimmer)
    det.reset()
    assert not det.is_held(dimmer)          # after a reset (a new segment) nothing is held
    assert not det.is_held(dimmer[:, :-2])  # nor a frame of another size


def test_deep_and_alpha_frames(anime: Path) -> None:
    frame = render(anime, [Shot(1)], width=W, height=H)[0]
    deep = frame.astype(np.uint16) * 200  # 16-bit samples, with room above for the changes below
    det = HeldFrameDetector()
    assert not det.is_held(deep)
    assert det.is_held(deep + 50)           # 0.2 of an 8-bit level
    assert not det.is_held(deep + 257 * 2)  # 2 levels everywhere
    rgba = np.dstack([frame, np.full((H, W), 255, np.uint8)])
    det = HeldFrameDetector()
    assert not det.is_held(rgba)
    assert det.is_held(rgba.copy())
    hole = rgba.copy()
    hole[40:60, 40:60, 3] = 0               # only the alpha channel changes
    assert not det.is_held(hole)


def test_half_size_is_the_block_mean_over_channels() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)  # odd sizes: the last row and column are dropped
    expected = frame[:6, :8].astype(np.float64).reshape(3, 2, 4, 2, 3).mean(axis=(1, 3, 4))
    np.testing.assert_allclose(half_size(frame), expected, rtol=1e-6)


def test_tiny_frames_are_never_held() -> None:
    det = HeldFrameDetector()
    tiny = np.zeros((12, 12, 3), np.uint8)
    assert not det.is_held(tiny) and not det.is_held(tiny)


def test_thresholds_are_checked() -> None:
    with pytest.raises(OptionError, match="motion_px"):
        HeldFrameDetector(HeldThresholds(motion_px=0))
