"""Stream RGB frames out of a video with PyAV, a batch at a time.

Frames are converted with the stream's own YUV matrix and range (see color.py), so the
network sees the colours a correct player shows.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from vidsr.errors import InputError
from vidsr.io.color import ColorInfo
from vidsr.io.probe import open_container

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameBatch:
    """Consecutive decoded frames: `rgb` is uint8 [N, H, W, 3]; `pts` in the stream's time base."""

    rgb: np.ndarray
    pts: tuple[int | None, ...]


def iter_frame_batches(path: Path, color: ColorInfo, batch: int, *, threads: int = 0) -> Iterator[FrameBatch]:
    """Yield batches of decoded frames; the last one may be shorter.

    Memory is one batch plus the decoder's own queue: the video is never held whole.
    """
    with open_container(path) as container:
        stream = container.streams.video[0]
        # Frame threading keeps several cores busy on H.264/HEVC; slices alone do not.
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        buf: list[np.ndarray] = []
        pts: list[int | None] = []
        src_range = "JPEG" if color.full_range else "MPEG"
        try:
            for frame in container.decode(stream):
                rgb = frame.reformat(
                    format="rgb24",
                    src_colorspace=color.matrix,
                    src_color_range=src_range,
                    dst_color_range="JPEG",
                    interpolation="BICUBIC",
                ).to_ndarray()
                buf.append(rgb)
                pts.append(frame.pts)
                if len(buf) == batch:
                    yield FrameBatch(np.stack(buf), tuple(pts))
                    buf, pts = [], []
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot decode {path}: {exc}") from exc
        if buf:
            yield FrameBatch(np.stack(buf), tuple(pts))
