"""Where to look: the window of a picture that has the most detail, and the `WxH+X+Y` crop syntax.

`vidsr compare` and `vidsr degrade` show a small part of a frame at full size. The centre
is a poor default: in a photo of a wall with a small figure, or a film frame with a face
off to one side, it is often flat, and every panel then looks the same. So both pick the
window whose luma has the largest total gradient magnitude (edges and texture, which is
what a super-resolution model changes), measured on the picture shrunk to at most
`_ANALYSIS_SIDE` pixels: cheap at 4K, and the area average smooths grain and sensor noise
away, so a noisy flat wall does not beat a detailed subject. Ties (a flat picture) go to
the window nearest the centre, so such pictures keep the old centre crop. A small subject fits
in many windows equally well; the one chosen is then moved to centre its detail.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vidsr.errors import OptionError
from vidsr.io.color import LUMA_601

_ANALYSIS_SIDE = 512
_CROP_SYNTAX = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*(?:\+\s*(\d+)\s*\+\s*(\d+))?\s*$")


@dataclass(frozen=True)
class Crop:
    """A window of a picture, in its pixels; x and y None mean "where the picture has detail"."""

    width: int
    height: int
    x: int | None = None
    y: int | None = None

    @classmethod
    def parse(cls, spec: str) -> Crop:
        """'96x64+200+40' (size and top-left corner) or '96x64' (size only, placed by detail)."""
        m = _CROP_SYNTAX.match(spec)
        if m is None:
            raise OptionError(f"--crop must look like WxH+X+Y (e.g. 128x96+300+40) or WxH, not {spec!r}")
        w, h = int(m[1]), int(m[2])
        if w < 1 or h < 1:
            raise OptionError(f"--crop {spec}: width and height must be at least 1")
        return cls(w, h, None if m[3] is None else int(m[3]), None if m[4] is None else int(m[4]))

    @property
    def placed(self) -> bool:
        return self.x is not None and self.y is not None

    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of a placed crop."""
        if self.x is None or self.y is None:
            raise ValueError("crop has no position")
        return self.x, self.y, self.x + self.width, self.y + self.height

    def __str__(self) -> str:
        where = f"+{self.x}+{self.y}" if self.placed else ""
        return f"{self.width}x{self.height}{where}"


def place_crop(frame: torch.Tensor, crop: Crop) -> Crop:
    """`crop` checked against `frame` ([C, H, W]), and placed by detail if it has no position."""
    h, w = frame.shape[-2:]
    if crop.width > w or crop.height > h:
        raise OptionError(f"crop {crop.width}x{crop.height} is larger than the picture ({w}x{h})")
    if crop.placed:
        assert crop.x is not None and crop.y is not None
        if crop.x + crop.width > w or crop.y + crop.height > h:
            raise OptionError(f"crop {crop} reaches outside the picture ({w}x{h})")
        return crop
    x, y = most_detailed_window(frame, crop.width, crop.height)
    return Crop(crop.width, crop.height, x, y)


def most_detailed_window(frame: torch.Tensor, width: int, height: int) -> tuple[int, int]:
    """Top-left (x, y) of the `width` x `height` window of `frame` with the most detail.

    `frame` is [C, H, W] (C = 1 or 3, any float or integer range); the window must fit in it.
    """
    h, w = frame.shape[-2:]
    if not (1 <= width <= w and 1 <= height <= h):
        raise ValueError(f"window {width}x{height} does not fit in {w}x{h}")
    if (width, height) == (w, h):
        return 0, 0
    luma = _luma(frame.detach().to("cpu", torch.float32))
    factor = max(1, math.ceil(max(h, w) / _ANALYSIS_SIDE))
    if factor > 1:
        luma = F.avg_pool2d(luma[None], factor, ceil_mode=True)[0]
    gy, gx = luma[:, 1:, :-1] - luma[:, :-1, :-1], luma[:, :-1, 1:] - luma[:, :-1, :-1]
    energy = torch.sqrt(gx * gx + gy * gy)[0].double()          # [h', w'] gradient magnitude
    eh, ew = energy.shape
    wh, ww = min(eh, max(1, round(height / factor))), min(ew, max(1, round(width / factor)))
    if eh == 0 or ew == 0:
        return (w - width) // 2, (h - height) // 2
    integral = F.pad(energy.cumsum(0).cumsum(1), (1, 0, 1, 0))
    scores = (integral[wh:, ww:] - integral[:-wh, ww:] - integral[wh:, :-ww] + integral[:-wh, :-ww])
    best = scores.max()
    if best <= 0:  # flat
        return (w - width) // 2, (h - height) // 2
    ties = scores >= best - 1e-9 * (1.0 + best.abs())
    ys, xs = torch.nonzero(ties, as_tuple=True)
    cy, cx = (scores.shape[0] - 1) / 2, (scores.shape[1] - 1) / 2
    i = int(torch.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    top, left = int(ys[i]), int(xs[i])
    # Many windows hold all of a small subject; centre it, on the window's centre of detail.
    inside = energy[top:top + wh, left:left + ww]
    total = float(inside.sum())
    if total > 0:
        top += round(float((inside.sum(1) * torch.arange(wh, dtype=inside.dtype)).sum()) / total - (wh - 1) / 2)
        left += round(float((inside.sum(0) * torch.arange(ww, dtype=inside.dtype)).sum()) / total - (ww - 1) / 2)
    x = min(max(0, round(left * factor)), w - width)
    y = min(max(0, round(top * factor)), h - height)
    return x, y


def _luma(frame: torch.Tensor) -> torch.Tensor:
    """[C, H, W] -> [1, H, W]: BT.601 luma of RGB, the only channel of gray."""
    if frame.shape[0] >= 3:
        return sum(k * frame[i:i + 1] for i, k in enumerate(LUMA_601))  # type: ignore[return-value]
    return frame[:1]
