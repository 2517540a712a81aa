"""Cutting a video into independently processable segments, at keyframes, from packet timestamps only."""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vidsr.errors import OptionError
from vidsr.io.decode import Window
from vidsr.io.probe import VideoInfo, open_container


@dataclass(frozen=True)
class Segment:
    """Frames with start <= pts < end (None: unbounded), decoded from the keyframe at `start`."""

    index: int
    start: int | None
    end: int | None
    frames: int


def plan_segments(path: Path, info: VideoInfo, *, seconds: float, window: Window = Window()) -> list[Segment]:
    """Segments of about `seconds` each, starting at keyframes, covering the window's frames exactly once.

    Only packets are read (no decoding). Frames are assigned by presentation timestamp,
    so with open GOPs the leading pictures shown before a keyframe stay with the segment
    before it, which can decode them.
    """
    with open_container(path) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    if not info.timestamps:
        return _untimed(packets, info, window)
    if not packets or any(pts is None for pts, _ in packets):
        # Some packets lost their timestamps (damage): no reliable place to cut, nor to start a window.
        if not window.is_whole:
            raise OptionError(f"--start/--duration/--frames need frame timestamps, and some packets of "
                              f"{path.name} have none; run without them, or without --devices")
        return [Segment(0, None, None, len(packets))]
    frames = sorted(pts for pts, _ in packets)
    keyframes = sorted(pts for pts, key in packets if key)
    tb = info.time_base
    lo, hi = _window_bounds(frames, info, window)
    if lo >= hi:
        return []
    first, last = frames[lo], frames[hi - 1]
    # Each boundary is a keyframe inside the window at least `seconds` after the previous boundary.
    bounds: list[int] = []
    step = max(1, math.ceil(Fraction(seconds).limit_denominator(1000) / tb))
    previous = first
    for key in keyframes:
        if first < key <= last and key - previous >= step:
            bounds.append(key)
            previous = key
    starts = [first] + bounds
    ends = bounds + [None if hi == len(frames) else frames[hi]]
    segments = []
    for i, (start, end) in enumerate(zip(starts, ends)):
        begin = bisect.bisect_left(frames, start)
        stop = len(frames) if end is None else bisect.bisect_left(frames, end)
        segments.append(Segment(i, None if (i == 0 and lo == 0) else start, end, stop - begin))
    return segments


def _untimed(packets: list[tuple[int | None, bool]], info: VideoInfo, window: Window) -> list[Segment]:
    """A stream without timestamps (raw H.264/HEVC) in one segment, bounded by the window.

    Its frames are timed as the decoder times them (frame k at k / rate, see decode.py), so
    the window becomes exact frame times; there is nothing to seek by, so the one segment is
    decoded from the start.
    """
    interval = 1 / (info.rate * info.time_base)
    frames = [round(k * interval) for k in range(len(packets))]
    lo, hi = _window_bounds(frames, info, window)
    if lo >= hi:
        return []
    return [Segment(0, frames[lo] if lo else None, frames[hi] if hi < len(frames) else None, hi - lo)]


def _window_bounds(frames: list[int], info: VideoInfo, window: Window) -> tuple[int, int]:
    """Indices [lo, hi) into the sorted frame timestamps that the window keeps."""
    if window.is_whole:
        return 0, len(frames)
    tb = info.time_base
    origin = Fraction(info.start_s).limit_denominator(1_000_000) + Fraction(window.start).limit_denominator(1_000_000)
    lo = bisect.bisect_left(frames, math.ceil(origin / tb)) if window.start > 0 else 0
    hi = len(frames)
    if window.duration is not None:
        end = origin + Fraction(window.duration).limit_denominator(1_000_000)
        hi = bisect.bisect_left(frames, math.ceil(end / tb))
    if window.frames is not None:
        hi = min(hi, lo + window.frames)
    return lo, hi
