"""Open an input and describe it, turning every way it can be unusable into one clear error."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vidsr.errors import InputError, InputNotFoundError
from vidsr.io.color import ColorInfo, resolve_color
from vidsr.io.hdr import HdrMetadata, read_hdr_metadata

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
    frames_exact: bool       # True when `frames` is the header's count, False when guessed from duration
    duration_s: float | None     # of the video stream where known, else of the container
    duration_exact: bool          # True when duration_s is the video stream's own
    start_s: float           # first video timestamp; the encoded video is shifted by it
    color: ColorInfo
    codec: str = "h264"           # decoder name, e.g. "hevc"
    bits: int = 8                 # deepest component
    alpha: bool = False
    gray: bool = False
    rotation: int = 0             # display rotation, counter-clockwise degrees
    hdr_metadata: HdrMetadata = HdrMetadata()  # mastering display / content light level, if any
    sample_aspect_ratio: Fraction = Fraction(1)

    @property
    def hdr(self) -> bool:
        """PQ or HLG transfer: the models were trained on SDR."""
        return self.color.trc in (16, 18)


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
        frames_exact = frames is not None
        duration = _video_duration(stream)
        if duration is None and container.duration:
            duration = container.duration / av.time_base
        if frames is None and duration:
            frames = round(duration * rate)
        pix_fmt = ctx.pix_fmt or "yuv420p"
        fmt = av.VideoFormat(pix_fmt)
        first = _first_frame(container, stream, path)
        sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
        return VideoInfo(
            path=path,
            container=container.format.name,
            width=ctx.width,
            height=ctx.height,
            pix_fmt=pix_fmt,
            rate=Fraction(rate),
            time_base=Fraction(stream.time_base or Fraction(1, 90000)),
            frames=frames,
            frames_exact=frames_exact,
            duration_s=duration,
            duration_exact=_video_duration(stream) is not None,
            start_s=float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0,
            color=resolve_color(ctx, ctx.height, pix_fmt),
            codec=ctx.name,
            bits=max(c.bits for c in fmt.components),
            alpha=len(fmt.components) in (2, 4),
            gray=len(fmt.components) in (1, 2) and not fmt.has_palette,
            rotation=first.rotation,
            hdr_metadata=first.hdr,
            sample_aspect_ratio=Fraction(sar) if sar else Fraction(1),
        )


def _video_duration(stream: av.video.stream.VideoStream) -> float | None:
    """The video stream's own duration: its header field, or Matroska's per-track DURATION tag."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class _FirstFrame:
    rotation: int
    hdr: HdrMetadata


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 path: Path) -> _FirstFrame:
    """Decode one frame: proves the video decodes at all, and gives what only frames carry."""
    try:
        for frame in container.decode(stream):
            return _FirstFrame(int(round(frame.rotation or 0)) % 360, read_hdr_metadata(frame))
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot decode the video of {path}: {exc}") from exc
    raise InputError(f"no video frame could be decoded from {path}")
