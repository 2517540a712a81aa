"""Stream frames out of a video with PyAV, with their timestamps, surviving damage.

Frames are converted with the stream's own YUV matrix and range (see color.py), so the
network sees the colours a correct player shows, at 16 bits per channel when the source
has more than 8, and with alpha when the source has it.
"""
from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidsr.io.color import ColorInfo
from vidsr.io.probe import open_container

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """Which part of the video to take, in seconds from its first frame; None means unbounded."""

    start: float = 0.0
    duration: float | None = None
    frames: int | None = None

    @property
    def is_whole(self) -> bool:
        return self.start <= 0 and self.duration is None and self.frames is None


@dataclass
class DecodeReport:
    """What decoding found, filled in as frames are read."""

    pts: list[int] = field(default_factory=list)   # of each frame handed out, in the stream's time base
    concealed: int = 0       # frames FFmpeg decoded with errors hidden (marked corrupt)
    replaced: int = 0        # packets that gave no picture (failed or dropped), stood in for by the previous one
    dropped: int = 0         # failed packets with no usable timestamp, so no frame could stand in
    resized: int = 0         # frames decoded at another size than the video's, scaled to it
    truncated: str | None = None  # why reading stopped early, if it did
    held: int = 0            # frames that repeat the one before (--dedup) and were given its output


class FrameReader:
    """Iterate to get each frame as [H, W, C] uint8 or uint16 (`rgb_format`), in presentation order."""

    def __init__(self, path: Path, color: ColorInfo, *, rgb_format: str = "rgb24", window: Window = Window(),
                 start_s: float = 0.0, pts_range: tuple[int | None, int | None] | None = None,
                 threads: int = 0, rate: Fraction | None = None, timestamps: bool = True,
                 size: tuple[int, int] | None = None) -> None:
        self.path = path
        self.color = color
        self.rgb_format = rgb_format
        self.window = window
        self.first_frame_s = start_s
        self.pts_range = pts_range  # exact [start, end) timestamps; overrides `window` (used by segments)
        self.threads = threads
        self.rate = rate            # nominal frame rate: times frames that carry no timestamp
        self.timestamps = timestamps  # False: the stream has none at all; every frame is timed by `rate`
        self.size = size            # (width, height) every frame is delivered at (None: the first frame's)
        self.report = DecodeReport()

    def __iter__(self) -> Iterator[np.ndarray]:
        with open_container(self.path) as container:
            stream = container.streams.video[0]
            # Frame threading keeps several cores busy on H.264/HEVC; slice threading alone does not.
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self.threads
            tb = Fraction(stream.time_base)
            start_pts, end_pts = self.pts_range or self._bounds(tb)
            if start_pts is not None and self.timestamps:
                # Without timestamps there is nothing to seek by: decode from the start, skip to the window.
                container.seek(start_pts, stream=stream, backward=True, any_frame=False)
            for pts, image, status in self._timeline(container, stream):
                if start_pts is not None and pts < start_pts:
                    continue
                if end_pts is not None and pts >= end_pts:
                    break
                if self.window.frames is not None and len(self.report.pts) >= self.window.frames:
                    break
                if self.report.pts and pts <= self.report.pts[-1]:
                    pts = self.report.pts[-1] + 1  # keep timestamps strictly increasing for the muxer
                # Counted only here: frames before a segment's start, decoded from the keyframe
                # before it without their references, are not damage.
                if status == "replaced":
                    self.report.replaced += 1
                elif status == "concealed":
                    self.report.concealed += 1
                self.report.pts.append(pts)
                yield image

    def _timeline(self, container: av.container.InputContainer,
                  stream: av.video.stream.VideoStream) -> Iterator[tuple[int, np.ndarray, str]]:
        """(pts, picture, "ok" | "concealed" | "replaced") in presentation order, one per video packet.

        A packet whose picture never comes out of the decoder (it failed, or the decoder
        silently dropped it) gets the picture shown before it, so the frame count and
        the timing survive damage. Such packets are known by their timestamps: once the
        decoder shows a frame at time t, every packet sent with an earlier time that has
        not been shown is lost (the decoder shows frames in presentation order).
        """
        sent: list[int] = []          # heap of packet timestamps not shown yet
        tracking = True               # off if frame and packet timestamps turn out not to match
        last: np.ndarray | None = None
        for kind, pts, frame in self._decoded(container, stream):
            if kind == "packet":
                if tracking and pts is not None:
                    heapq.heappush(sent, pts)
                continue
            assert frame is not None
            image = self._to_array(frame)
            if tracking and pts not in sent:
                tracking, sent = False, []
                log.debug("frame timestamps do not match packet timestamps; lost frames cannot be detected")
            while tracking and sent and sent[0] < pts:
                yield heapq.heappop(sent), image if last is None else last, "replaced"
            if tracking and sent and sent[0] == pts:
                heapq.heappop(sent)
            yield pts, image, "concealed" if frame.is_corrupt else "ok"
            last = image
        while sent and last is not None:
            yield heapq.heappop(sent), last, "replaced"

    def _decoded(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
                 ) -> Iterator[tuple[str, int | None, av.VideoFrame | None]]:
        """("packet", pts, None) for each packet sent, ("frame", pts, frame) for each frame decoded."""
        packets = container.demux(stream)
        clock = _FrameClock(Fraction(stream.time_base), self.rate, self.timestamps)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.error.FFmpegError, EOFError) as exc:
                self.report.truncated = f"reading stopped at a damaged or missing part ({_reason(exc)})"
                break
            if packet.size:
                yield "packet", packet.pts if self.timestamps else None, None
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                if packet.pts is None:
                    self.report.dropped += 1
                continue
            for frame in frames:
                yield "frame", clock.time(frame), frame
        if self.report.truncated:
            # Demuxing stopped on an error, so the decoder never got its end-of-stream flush.
            try:
                for frame in stream.codec_context.decode(None):
                    yield "frame", clock.time(frame), frame
            except (av.error.FFmpegError, EOFError):
                pass

    def _bounds(self, tb: Fraction) -> tuple[int | None, int | None]:
        """The window as [start, end) timestamps of the stream (None: unbounded)."""
        w = self.window
        if w.is_whole:
            return None, None
        start_s = self.first_frame_s + max(0.0, w.start)
        start = math.ceil(_exact(start_s) / tb) if w.start > 0 else None
        end = math.ceil(_exact(start_s + w.duration) / tb) if w.duration is not None else None
        return start, end

    def _to_array(self, frame: av.VideoFrame) -> np.ndarray:
        c = self.color
        if self.size is None:
            self.size = (frame.width, frame.height)
        width, height = self.size
        if (frame.width, frame.height) != (width, height):
            # A damaged header or a mid-stream size change: keep every frame, at the video's size.
            self.report.resized += 1
        return frame.reformat(
            width=width,
            height=height,
            format=self.rgb_format,
            src_colorspace=c.matrix,
            src_color_range="JPEG" if c.full_range else "MPEG",
            dst_color_range="JPEG",
            interpolation="BICUBIC",
        ).to_ndarray()


class _FrameClock:
    """Each decoded frame's time, in the stream's time base.

    A stream without timestamps (raw H.264/HEVC) times frame k at k / rate; a frame missing
    its timestamp in a stream that has them comes one frame interval after the one before.
    """

    def __init__(self, time_base: Fraction, rate: Fraction | None, timestamps: bool) -> None:
        self._interval = 1 / (rate * time_base) if rate else None  # ticks per frame
        self._timestamps = timestamps
        self._count = 0
        self._last: int | None = None

    def time(self, frame: av.VideoFrame) -> int:
        if self._timestamps and frame.pts is not None:
            pts = frame.pts
        elif not self._timestamps and self._interval is not None:
            pts = round(self._count * self._interval)
        elif self._last is None:
            pts = 0
        else:
            pts = self._last + max(1, round(self._interval or 1))
        self._count += 1
        self._last = pts
        return pts


def iter_frames(path: Path, color: ColorInfo, *, threads: int = 0) -> Iterator[np.ndarray]:
    """Every frame as uint8 RGB [H, W, 3], for callers that need no timestamps."""
    return iter(FrameReader(path, color, threads=threads))


def _exact(seconds: float) -> Fraction:
    """Seconds typed by a user (0.4) as the fraction they meant, not the nearest binary float."""
    return Fraction(seconds).limit_denominator(1_000_000)


def _reason(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())
