"""Real anime art animated the way anime is drawn, encoded with a real codec: clips for the held-frame tests.

A background from tests/data/images/anime pans, and a character sprite moves and
changes pose; each is redrawn only every `*_every` frames ("on twos", "on threes"), so
whole frames are held exactly as in hand-drawn animation. The ground truth of which
frames repeat the one before is taken from the rendered pictures themselves (bit-exact
equality before encoding), never from the schedule.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from vidsr.io.decode import FrameReader
from vidsr.io.probe import probe_video


@dataclass(frozen=True)
class Shot:
    """One shot of `frames` frames. Speeds are per frame; a drawing is held for `*_every` frames."""

    frames: int
    pan_px: float = 0.0          # background pan speed, px per frame (sub-pixel allowed)
    pan_every: int = 1
    sprite_px: float = 0.0       # sprite walk speed, px per frame
    sprite_every: int = 1
    poses_every: int = 0         # swap between the poses every this many frames (0: never)
    fade: float = 0.0            # share of the brightness lost per frame (a fade to black), e.g. 1/72


def _load(path: Path, size: tuple[int, int] | None = None, height: int | None = None) -> np.ndarray:
    """An image as float32 [H, W, C] in 0..255, Lanczos-resized to `size` or to `height`."""
    with Image.open(path) as im:
        im = im.convert("RGBA" if im.mode in ("RGBA", "LA", "P") else "RGB")
        if height is not None:
            size = (round(im.width * height / im.height), height)
        if size is not None:
            im = im.resize(size, Image.Resampling.LANCZOS)
        return np.asarray(im, dtype=np.float32)


def _shift_x(img: np.ndarray, x: float, width: int) -> np.ndarray:
    """Columns [x, x + width) of `img`, with linear interpolation for the fractional part."""
    i, f = int(np.floor(x)), x - np.floor(x)
    a = img[:, i:i + width]
    if f == 0:
        return a.copy()
    return a * (1 - f) + img[:, i + 1:i + 1 + width] * f


def _paste(frame: np.ndarray, sprite: np.ndarray, x: int, y: int) -> None:
    h, w = sprite.shape[:2]
    x0, x1 = max(0, x), min(frame.shape[1], x + w)
    y0, y1 = max(0, y), min(frame.shape[0], y + h)
    if x0 >= x1 or y0 >= y1:
        return
    s = sprite[y0 - y:y1 - y, x0 - x:x1 - x]
    a = s[..., 3:] / 255.0
    frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1 - a) + s[..., :3] * a


def render(anime_dir: Path, shots: list[Shot], *, width: int = 320, height: int = 180,
           background: str = "bg_meadow.jpg",
           poses: tuple[str, ...] = ("sylvie_blue_normal.png", "sylvie_blue_smile.png")) -> list[np.ndarray]:
    """uint8 RGB frames [height, width, 3] of every shot, in order."""
    total_pan = sum(s.pan_px * s.frames for s in shots)
    bg_w = width + int(np.ceil(total_pan)) + 2
    # Scale the background to cover the pan, keeping its aspect ratio, then take a band of it.
    with Image.open(anime_dir / background) as im:
        bg_h = max(height, round(im.height * bg_w / im.width))
    bg = _load(anime_dir / background, size=(bg_w, bg_h))[(bg_h - height) // 2:][:height]
    sprites = [_load(anime_dir / p, height=int(height * 0.85)) for p in poses]
    frames: list[np.ndarray] = []
    pan = 0.0
    walk = 0.0
    level = 0.0
    for shot in shots:
        for k in range(shot.frames):
            # Positions advance every frame; a drawing shows them only when it is redrawn.
            if k % shot.pan_every == 0:
                bg_x = pan
            if k % shot.sprite_every == 0:
                sprite_x = walk
                pose = (k // shot.poses_every) % len(sprites) if shot.poses_every else 0
            frame = _shift_x(bg, bg_x, width)
            _paste(frame, sprites[pose], int(width * 0.3 + round(sprite_x)), height - sprites[pose].shape[0])
            frame *= max(0.0, 1.0 - level)
            frames.append(np.rint(frame).astype(np.uint8))
            pan += shot.pan_px
            walk += shot.sprite_px
            level += shot.fade
        level = 0.0
    return frames


def held_truth(frames: list[np.ndarray]) -> list[bool]:
    """For each frame, whether it repeats the one before bit for bit (the first never does)."""
    return [False] + [np.array_equal(a, b) for a, b in zip(frames, frames[1:])]


def encode(frames: list[np.ndarray], path: Path, *, codec: str = "libx264", crf: float = 23,
           preset: str = "medium", keyint: int = 0, rate: int = 24) -> Path:
    """Encode RGB frames to yuv420p with a real encoder at a normal CRF (BT.709 tagged)."""
    opts = {"crf": f"{crf:g}", "preset": preset}
    if codec == "libx265":
        opts["x265-params"] = "log-level=error" + (f":keyint={keyint}:min-keyint={keyint}" if keyint else "")
    elif keyint:
        opts["g"] = str(keyint)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(rate), options=opts)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = 1, 1, 1, 1
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", src_colorspace="ITU709", dst_colorspace="ITU709",
                src_color_range="JPEG", dst_color_range="MPEG", interpolation="BICUBIC")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decode(path: Path) -> list[np.ndarray]:
    """The frames as vidsr's decoder hands them to the pipeline."""
    return list(FrameReader(path, probe_video(path).color))
