"""Held frames: deciding whether a decoded frame repeats the last one the network saw.

Anime is drawn on twos and threes, so a third to a half of its frames show the drawing
before them again, re-encoded by the codec with small differences. Such a frame can
reuse the previous output instead of running the network (and then does not shimmer).

A frame is compared with the *reference*: the last frame that was not held, whose
output would be reused. Comparing with the reference rather than with the frame just
before means slow changes add up until they show, so a 0.1 px/frame drift or a slow
fade is never frozen for long: the reused output never differs from the exact one by
more than the thresholds below.

Four statistics, each aimed at a kind of real change that the others miss, all computed
on a half-size image (the mean of each 2x2 block over every channel, alpha included):

- `local`: the largest mean of the signed difference over a 4x4-pixel window (stride 2).
  Codec noise is mostly high-frequency and of both signs inside a window, so it averages
  out; a drawing that changes (a mouth, a limb, a sprite that moves) does not. The limit
  is 16 levels where large differences are spread over the frame (codec noise follows
  edges everywhere), 8 where they sit in at most 3 of 4x4 tiles (a detail was redrawn).
- `mean` and `tile_mean`: the mean difference over the whole frame and over each of 4x4
  tiles. A fade moves every pixel a little the same way, which no window sees but these do.
- `motion_px`: a global motion estimate (least squares on the image gradient: pan, zoom
  and rotation) in pixels at the frame's corners. A slow pan moves every edge a fraction
  of a pixel, a change below the codec noise locally but coherent across the frame;
  codec noise also follows edges, but with signs that cancel over the frame.

Thresholds come from measurements on real anime art animated on twos and threes and
encoded with x264 and x265 at CRF 18-28 (tests/anime_clip.py builds such clips; the
numbers are in docs/dedup.md). They lean towards running the network: a missed held
frame costs one network call, a merged real change shows a wrong picture.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from vidsr.errors import OptionError

_TILES = 4            # tiles per side for tile_mean
_MIN_SIDE = 16        # below this (in pixels) a frame has no room for the statistics: never held


@dataclass(frozen=True)
class HeldThresholds:
    """Largest differences still counted as the same drawing, in 8-bit levels and pixels."""

    local: float = 16.0      # mean signed difference over a 4x4 window, where differences are spread
    local_compact: float = 8.0  # the same, where they are confined to a few tiles (a drawing's detail changed)
    mean: float = 0.4        # mean difference over the whole frame
    tile_mean: float = 1.0   # mean difference over any of the 4x4 tiles
    motion_px: float = 0.1   # estimated global motion at the frame's corners, full-resolution pixels

    def validated(self) -> HeldThresholds:
        for name in ("local", "local_compact", "mean", "tile_mean", "motion_px"):
            if not getattr(self, name) > 0:
                raise OptionError(f"dedup threshold {name} must be > 0, not {getattr(self, name)}")
        return self


@dataclass(frozen=True)
class Difference:
    """How a frame differs from the reference (same units as HeldThresholds)."""

    local: float
    local_floor: float   # the 4th-largest of the tiles' largest window differences (0 when not needed)
    mean: float
    tile_mean: float
    motion_px: float

    def within(self, t: HeldThresholds) -> bool:
        local_limit = min(t.local, max(t.local_compact, 2 * self.local_floor))
        return (self.local < local_limit and abs(self.mean) < t.mean and self.tile_mean < t.tile_mean
                and self.motion_px < t.motion_px)


class _Reference:
    """What is kept of the reference frame: its half-size image, and (built on first use) the motion model."""

    def __init__(self, half: np.ndarray) -> None:
        self.half = half
        self._model: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _build(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Regressors of a pan/zoom/rotation on the image gradient, the inverse of their Gram matrix, the corners."""
        half = self.half
        h, w = half.shape
        reg = np.zeros((4, h, w), dtype=np.float32)
        gx, gy, zoom, turn = reg
        np.subtract(half[:, 2:], half[:, :-2], out=gx[:, 1:-1])
        np.subtract(half[2:], half[:-2], out=gy[1:-1])
        gx *= 0.5
        gy *= 0.5
        # Coordinates scaled by the half-diagonal: zoom and rotation are then displacements at the corners.
        r = 0.5 * float(np.hypot(w - 1, h - 1))
        x = ((np.arange(w, dtype=np.float32) - (w - 1) / 2) / r)[None, :]
        y = ((np.arange(h, dtype=np.float32) - (h - 1) / 2) / r)[:, None]
        # d ~ -(tx*gx + ty*gy + s*(x*gx + y*gy) + a*(x*gy - y*gx)): translation, zoom, rotation.
        np.multiply(gx, x, out=zoom)
        zoom += gy * y
        np.multiply(gy, x, out=turn)
        turn -= gx * y
        flat = reg.reshape(4, -1)
        gram = (flat @ flat.T).astype(np.float64)
        ridge = 1e-6 * float(np.trace(gram)) + 1e-3  # a flat frame has no observable motion: estimate 0
        corners = np.array([[(w - 1) / 2 / r * sx, (h - 1) / 2 / r * sy] for sx in (-1, 1) for sy in (-1, 1)])
        return flat, np.linalg.inv(gram + ridge * np.eye(4)), corners

    def motion(self, d: np.ndarray) -> float:
        """Largest displacement (half-size pixels) of the least-squares pan/zoom/rotation at a corner."""
        if self._model is None:
            self._model = self._build()
        flat, solve, c = self._model
        tx, ty, s, a = solve @ -(flat @ d.reshape(-1)).astype(np.float64)
        dx = tx + s * c[:, 0] - a * c[:, 1]
        dy = ty + s * c[:, 1] + a * c[:, 0]
        return float(np.sqrt(dx * dx + dy * dy).max())


def half_size(frame: np.ndarray) -> np.ndarray:
    """[H, W, C] uint8/uint16 -> float32 [H//2, W//2]: each 2x2 block's mean over all channels, in 8-bit levels.

    Strided adds, not a reduction over axes: about four times faster in NumPy.
    """
    h, w, c = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2, frame.shape[2]
    wide = np.uint16 if frame.dtype == np.uint8 else np.uint32
    blocks = frame[:h, :w].reshape(h // 2, 2, w // 2, 2 * c)
    rows = np.add(blocks[:, 0], blocks[:, 1], dtype=wide)
    total = rows[..., 0].copy()
    for k in range(1, 2 * c):
        total += rows[..., k]
    scale = 1.0 / (4 * c) if frame.dtype == np.uint8 else 1.0 / (4 * c * 257)
    return total.astype(np.float32) * np.float32(scale)


def compare(reference: _Reference, half: np.ndarray, thresholds: HeldThresholds | None = None) -> Difference:
    """The four statistics; with `thresholds`, the motion estimate is skipped (inf) once another one fails."""
    d = half - reference.half
    window = d[:-1, :-1] + d[1:, :-1]
    window += d[:-1, 1:]
    window += d[1:, 1:]
    local = float(max(window.max(), -window.min())) * 0.25
    h, w = d.shape[0] // _TILES * _TILES, d.shape[1] // _TILES * _TILES
    tiles = d[:h, :w].reshape(_TILES, h // _TILES, _TILES, w // _TILES).mean(axis=(1, 3))
    floor = 0.0
    if thresholds is None or thresholds.local_compact <= local < thresholds.local:
        # Codec noise follows edges all over the frame; a changed detail (a mouth, an eye) sits in a few tiles.
        wh, ww = window.shape[0] // _TILES * _TILES, window.shape[1] // _TILES * _TILES
        peaks = np.abs(window[:wh, :ww]).reshape(_TILES, wh // _TILES, _TILES, ww // _TILES).max(axis=(1, 3))
        floor = float(np.sort(peaks.ravel())[-4]) * 0.25
    diff = Difference(local=local, local_floor=floor, mean=float(d.mean()), tile_mean=float(np.abs(tiles).max()),
                      motion_px=0.0)
    if thresholds is not None and not diff.within(thresholds):
        return dataclasses.replace(diff, motion_px=math.inf)
    # Motion in half-size pixels; the frame's own pixels are twice as large.
    return dataclasses.replace(diff, motion_px=2.0 * reference.motion(d))


class HeldFrameDetector:
    """Feed every decoded frame in order; `is_held(frame)` says whether it can reuse the reference's output.

    A frame that is not held becomes the new reference. The first frame, and any frame after
    `reset()` (a new segment, a seek), is never held.
    """

    def __init__(self, thresholds: HeldThresholds = HeldThresholds()) -> None:
        self.thresholds = thresholds.validated()
        self._reference: _Reference | None = None
        self._shape: tuple[int, ...] | None = None
        self.frames = 0
        self.held = 0

    def reset(self) -> None:
        self._reference = None
        self._shape = None

    def difference(self, frame: np.ndarray) -> Difference | None:
        """How `frame` differs from the reference (None when there is none to compare with); no state changes."""
        if self._reference is None or frame.shape != self._shape:
            return None
        return compare(self._reference, half_size(frame))

    def is_held(self, frame: np.ndarray) -> bool:
        """[H, W, C] uint8/uint16 (C = 3, or 4 with alpha) -> True if it repeats the reference."""
        self.frames += 1
        if frame.ndim != 3 or min(frame.shape[:2]) < _MIN_SIDE:
            self.reset()
            return False
        half = half_size(frame)
        if self._reference is not None and frame.shape == self._shape:
            if compare(self._reference, half, self.thresholds).within(self.thresholds):
                self.held += 1
                return True
        self._reference = _Reference(half)
        self._shape = frame.shape
        return False
