"""Stream RGB frames out of a video with PyAV.

Frames are converted with the stream's own YUV matrix and range (see color.py), so the
network sees the colours a correct player shows.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from vidsr.errors import InputError
from vidsr.io.color import ColorInfo
from vidsr.io.probe import open_container

log = logging.getLogger(__name__)


def iter_frames(path: Path, color: ColorInfo, *, threads: int = 0) -> Iterator[np.ndarray]:
    """Yield each frame as uint8 RGB [H, W, 3], in presentation order, one at a time."""
    src_range = "JPEG" if color.full_range else "MPEG"
    with open_container(path) as container:
        stream = container.streams.video[0]
        # Frame threading keeps several cores busy on H.264/HEVC; slice threading alone does not.
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        try:
            for frame in container.decode(stream):
                yield frame.reformat(
                    format="rgb24",
                    src_colorspace=color.matrix,
                    src_color_range=src_range,
                    dst_color_range="JPEG",
                    interpolation="BICUBIC",
                ).to_ndarray()
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot decode {path}: {exc}") from exc
