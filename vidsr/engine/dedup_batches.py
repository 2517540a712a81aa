"""Batches of the frames the network must run on, each frame with how many times its output is written.

With `--dedup`, a decoded frame that the HeldFrameDetector says repeats the previous one
never reaches the network: it only adds one to the count of the frame it repeats, and the
encoder writes that frame's output once more. Frame count and order are unchanged, so the
timestamps the decoder recorded still belong to the frames written.

A full batch is handed on only once the next new frame arrives (or the input ends):
until then, frames held after its last frame still add to that frame's count. That costs
no extra buffer, as the next buffer is taken at that moment too.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from vidsr.engine.dedup import HeldFrameDetector


@dataclass
class FrameBatch:
    """`count` frames in `buf[:count]`; output i is written `repeats[i]` times (1 without held frames)."""

    buf: torch.Tensor
    count: int = 0
    repeats: list[int] = field(default_factory=list)

    @property
    def frames_out(self) -> int:
        return sum(self.repeats)


def fill_batches(frames: Iterable[np.ndarray], take: Callable[[], torch.Tensor], batch: int,
                 detector: HeldFrameDetector | None = None) -> Iterator[FrameBatch]:
    """Copy frames into buffers from `take()`, `batch` at a time; held frames (per `detector`) are counted, not copied."""
    filling: FrameBatch | None = None
    waiting: FrameBatch | None = None   # full, but frames held after its last one may still come
    view: np.ndarray | None = None
    for rgb in frames:
        if detector is not None and detector.is_held(rgb):
            # The detector never holds the first frame, so a frame to repeat is in one of the two.
            (filling or waiting).repeats[-1] += 1  # type: ignore[union-attr]
            continue
        if waiting is not None:
            yield waiting
            waiting = None
        if filling is None:
            filling = FrameBatch(take())
            view = filling.buf.numpy()
        np.copyto(view[filling.count], rgb)  # type: ignore[index]
        filling.count += 1
        filling.repeats.append(1)
        if filling.count == batch:
            if detector is None:
                yield filling
            else:
                waiting = filling
            filling = None
    if waiting is not None:
        yield waiting
    if filling is not None:
        yield filling


def write_repeated(sink: Callable[[np.ndarray], None], frames: np.ndarray, repeats: list[int]) -> None:
    """Pass `frames[i]` to `sink` `repeats[i]` times, in order, in as few calls as runs of single frames allow."""
    start = 0
    for i, r in enumerate(repeats):
        if r == 1:
            continue
        sink(frames[start:i + 1])
        for _ in range(r - 1):
            sink(frames[i:i + 1])
        start = i + 1
    if start < len(repeats):
        sink(frames[start:len(repeats)])
