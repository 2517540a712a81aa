"""Held frames leave the batches the network sees, and come back, in order, at the encoder."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.engine.dedup import HeldFrameDetector
from vidsr.engine.dedup_batches import fill_batches, write_repeated

H, W = 32, 48


def _pictures(pattern: str) -> list[np.ndarray]:
    """A new random picture for each letter that differs from the one before, an exact copy otherwise."""
    rng = np.random.default_rng(1)
    frames: list[np.ndarray] = []
    for i, c in enumerate(pattern):
        if i and c == pattern[i - 1]:
            frames.append(frames[-1].copy())
        else:
            frames.append(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    return frames


def _run(frames: list[np.ndarray], batch: int, dedup: bool) -> tuple[list[tuple[int, list[int]]], list[np.ndarray]]:
    """(count, repeats) of each batch, and the frames written when each batch's frames are its 'outputs'."""
    pool = [torch.empty((batch, H, W, 3), dtype=torch.uint8) for _ in range(2)]
    taken = iter(pool * len(frames))
    written: list[np.ndarray] = []
    seen = []
    for b in fill_batches(frames, lambda: next(taken), batch, HeldFrameDetector() if dedup else None):
        seen.append((b.count, list(b.repeats)))
        write_repeated(lambda a: written.extend(a.copy()), b.buf[:b.count].numpy(), b.repeats)
    return seen, written


@pytest.mark.parametrize("batch", [1, 2, 3, 4])
@pytest.mark.parametrize("pattern", ["aabcccdd", "abcdef", "aaaaaa", "abbbbbbbc"])
def test_every_frame_comes_back_in_order(pattern: str, batch: int) -> None:
    frames = _pictures(pattern)
    seen, written = _run(frames, batch, dedup=True)
    assert len(written) == len(frames)
    assert all(np.array_equal(a, b) for a, b in zip(written, frames))
    new = [i == 0 or c != pattern[i - 1] for i, c in enumerate(pattern)]
    assert sum(count for count, _ in seen) == sum(new)          # the network sees each picture once
    assert all(count <= batch for count, _ in seen)
    assert all(count == batch for count, _ in seen[:-1])        # batches stay full
    assert [r for _, reps in seen for r in reps] == [len(run) for run in _runs(pattern)]


def _runs(pattern: str) -> list[str]:
    out: list[str] = []
    for i, c in enumerate(pattern):
        if i and c == pattern[i - 1]:
            out[-1] += c
        else:
            out.append(c)
    return out


def test_without_a_detector_nothing_is_held() -> None:
    frames = _pictures("aabbb")
    seen, written = _run(frames, 2, dedup=False)
    assert seen == [(2, [1, 1]), (2, [1, 1]), (1, [1])]
    assert all(np.array_equal(a, b) for a, b in zip(written, frames))


def test_write_repeated_uses_few_calls() -> None:
    calls: list[int] = []
    write_repeated(lambda a: calls.append(len(a)), np.zeros((4, 2, 2, 3), np.uint8), [1, 1, 3, 1])
    assert calls == [3, 1, 1, 1]
