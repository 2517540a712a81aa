"""Open an input and describe it, turning every way it can be unusable into one clear error."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vidsr.errors import InputError, InputNotFoundError
from vidsr.io.color import ColorInfo, resolve_color

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about an input video before decoding it."""

    path: Path
    container: str           # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    width: int
    height: int
    pix_fmt: str
    rate: Fraction           # average frame rate, for the encoder's nominal rate
    time_base: Fraction
    frames: int | None       # from container metadata; only a progress hint
    duration_s: float | None
    start_s: float           # first video timestamp; the encoded video is shifted by it
    color: ColorInfo
    audio_streams: int


def check_input_file(path: Path) -> None:
    """Reject paths that are missing, not files, or empty, before any demuxer sees them."""
    if not path.exists():
        raise InputNotFoundError(f"input not found: {path}")
    if not path.is_file():
        raise InputError(f"input is not a file: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"input is empty (0 bytes): {path}")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def open_container(path: Path) -> av.container.InputContainer:
    """av.open with FFmpeg's complaint turned into an InputError naming the file."""
    check_input_file(path)
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"cannot read {path}: not a video or image FFmpeg recognises ({reason})") from exc


def probe_video(path: Path) -> VideoInfo:
    """Describe the first video stream of `path`; raise InputError if there is none."""
    with open_container(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise InputError(f"input has no video stream ({', '.join(kinds)} only): {path}")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise InputError(f"video stream has no frame size (damaged header?): {path}")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        frames = stream.frames or None
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        if frames is None and duration:
            frames = round(duration * rate)
        pix_fmt = ctx.pix_fmt or "yuv420p"
        return VideoInfo(
            path=path,
            container=container.format.name,
            width=ctx.width,
            height=ctx.height,
            pix_fmt=pix_fmt,
            rate=Fraction(rate),
            time_base=Fraction(stream.time_base or Fraction(1, 90000)),
            frames=frames,
            duration_s=duration,
            start_s=float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0,
            color=resolve_color(ctx, ctx.height, pix_fmt),
            audio_streams=len(container.streams.audio),
        )
