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

# Containers and raw streams FFmpeg reads that people keep video in: the one list of video suffixes.
VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mkv", ".webm", ".mov", ".qt", ".avi", ".wmv", ".asf", ".flv", ".f4v", ".mpg", ".mpeg",
    ".m2v", ".mpe", ".vob", ".ts", ".m2ts", ".mts", ".mxf", ".3gp", ".3g2", ".ogv", ".rm", ".rmvb", ".divx",
    ".dv", ".nut", ".y4m", ".ivf", ".h264", ".264", ".hevc", ".265", ".gif",
})


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
    timestamps: bool = True       # False: frames are timed by `rate` (raw H.264/HEVC elementary streams)

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


def open_container(path: Path) -> av.container.InputContainer:
    """av.open with FFmpeg's complaint turned into an InputError naming the file."""
    check_input_file(path)
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"cannot read {path}: not a video or image FFmpeg recognises ({reason})") from exc


# AVFMT_NOTIMESTAMPS: the demuxer gives packets no timestamps (raw H.264/HEVC elementary streams).
_NO_TIMESTAMPS_FLAG = 0x80
# Rates above this are a time base mistaken for a frame rate (damaged or odd headers), not video.
_MAX_RATE = 1000


def probe_video(path: Path) -> VideoInfo:
    """Describe the first video stream of `path`; raise InputError naming the file and what is missing."""
    with open_container(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise InputError(f"input has no video stream ({', '.join(kinds)} only): {path}")
        for other in container.streams:
            # Copied as they are, but a stream must at least say what it holds.
            if other.type in ("audio", "subtitle") and other.codec_context is None:
                raise InputError(f"{other.type} stream #{other.index} has no codec FFmpeg recognises "
                                 f"(damaged header?): {path}")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None or not ctx.name:
            raise InputError(f"video stream has no codec FFmpeg can decode (damaged header?): {path}")
        codec = ctx.name
        duration = _video_duration(stream)
        duration_exact = duration is not None
        if duration is None and container.duration:
            duration = container.duration / av.time_base
        declared_frames = stream.frames or None
        first = _first_frame(container, stream, path)
        timestamps = first.timestamps and not (int(container.format.flags or 0) & _NO_TIMESTAMPS_FLAG)
        rate = _frame_rate(stream, timestamps)
        width, height = ctx.width or first.width, ctx.height or first.height
        if not width or not height:
            raise InputError(f"video stream has no frame size (damaged header?): {path}")
        pix_fmt = ctx.pix_fmt or first.pix_fmt
        if not pix_fmt:
            raise InputError(f"video stream has no pixel format (damaged header?): {path}")
        fmt = av.VideoFormat(pix_fmt)
        frames = declared_frames
        if frames is None and duration:
            frames = round(duration * rate)
        sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
        return VideoInfo(
            path=path,
            container=container.format.name,
            width=width,
            height=height,
            pix_fmt=pix_fmt,
            rate=rate,
            time_base=Fraction(stream.time_base or Fraction(1, 90000)),
            frames=frames,
            frames_exact=declared_frames is not None,
            duration_s=duration,
            duration_exact=duration_exact,
            start_s=float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0,
            color=resolve_color(ctx, width, height, pix_fmt),
            codec=codec,
            bits=max(c.bits for c in fmt.components),
            alpha=len(fmt.components) in (2, 4),
            gray=len(fmt.components) in (1, 2) and not fmt.has_palette,
            rotation=first.rotation,
            hdr_metadata=first.hdr,
            sample_aspect_ratio=Fraction(sar) if sar else Fraction(1),
            timestamps=timestamps,
        )


def _frame_rate(stream: av.video.stream.VideoStream, timestamps: bool) -> Fraction:
    """The nominal frame rate. Without timestamps it also times every frame, so it must be the
    stream's own: the raw H.264/HEVC demuxers set an average rate of 25 whatever the stream
    says, while the guessed rate comes from the stream's headers (SPS/VPS timing)."""
    rates = [stream.guessed_rate, stream.average_rate] if not timestamps else [stream.average_rate,
                                                                                stream.guessed_rate]
    for rate in (*rates, stream.base_rate):
        if rate and 0 < rate <= _MAX_RATE:
            return Fraction(rate)
    return Fraction(25)


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
    width: int
    height: int
    pix_fmt: str | None
    timestamps: bool       # whether the packets before it carried timestamps


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 path: Path) -> _FirstFrame:
    """Decode one frame: proves the video decodes at all, and gives what only frames carry.

    Packets that fail to decode are skipped, as the decoder proper skips them (decode.py).
    """
    error: BaseException | None = None
    timestamps: bool | None = None
    try:
        for packet in container.demux(stream):
            if timestamps is None and packet.size:
                timestamps = packet.pts is not None or packet.dts is not None
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                error = exc
                continue
            for frame in frames:
                return _FirstFrame(int(round(frame.rotation or 0)) % 360, read_hdr_metadata(frame), frame.width,
                                   frame.height, frame.format.name if frame.format else None, bool(timestamps))
    except (av.error.FFmpegError, EOFError) as exc:  # the demuxer gave up: damaged or cut short
        error = exc
    if error is not None:
        reason = " ".join(str(getattr(error, "strerror", None) or error).split())
        raise InputError(f"cannot decode the video of {path}: {reason}") from error
    raise InputError(f"no video frame could be decoded from {path}")
