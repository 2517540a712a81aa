"""The overlapped frame pipeline: decode | upload+network+download | encode.

Three threads joined by bounded queues, with fixed pools of (pinned, on CUDA) host
buffers sized so that no stage ever waits for a buffer: memory is a handful of
batches whatever the length of the video.
"""
from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from vidsr.engine.threads import Consumer, Producer
from vidsr.engine.upscaler import FrameUpscaler

QUEUE_DEPTH = 2


class BufferPool:
    """A fixed set of host tensors handed out and given back."""

    def __init__(self, count: int, shape: tuple[int, ...], *, dtype: torch.dtype, pinned: bool) -> None:
        self._free: queue.Queue[torch.Tensor] = queue.Queue()
        for _ in range(count):
            self._free.put(torch.empty(shape, dtype=dtype, pin_memory=pinned))

    def take(self) -> torch.Tensor:
        try:
            return self._free.get(timeout=600)
        except queue.Empty:  # the pool is sized so this cannot happen; fail loudly if it does
            raise RuntimeError("internal error: frame buffer pool exhausted") from None

    def give(self, buf: torch.Tensor) -> None:
        self._free.put(buf)


def run_pipeline(frames: Callable[[], Iterable[np.ndarray]], upscaler: FrameUpscaler,
                 sink: Callable[[np.ndarray], None], *, batch: int, frame_shape: tuple[int, int, int],
                 frame_dtype: torch.dtype = torch.uint8, on_progress: Callable[[int], None] | None = None, pad_last_batch: bool = False) -> int:
    """Upscale every frame from `frames()` and pass the results, in order, to `sink`. Returns the count.

    Frames are [H,W,C] arrays (`frame_shape`, `frame_dtype`: uint8 or uint16; C = 3, or 4 with alpha).
    `frames` runs in its own thread, `sink` in another; the network runs in the caller's.
    `sink` receives uint8 arrays [n, *upscaler.formatter.frame_shape].
    """
    pinned = upscaler.is_cuda
    # One buffer being filled, one being consumed, QUEUE_DEPTH waiting: no stage waits for a buffer.
    in_pool = BufferPool(QUEUE_DEPTH + 2, (batch, *frame_shape), dtype=frame_dtype, pinned=pinned)
    out_pool = BufferPool(QUEUE_DEPTH + 2, (batch, *upscaler.formatter.frame_shape), dtype=upscaler.formatter.dtype,
                          pinned=pinned)

    def batches() -> Iterator[tuple[torch.Tensor, int]]:
        buf, view, n = None, None, 0
        for rgb in frames():
            if buf is None:
                buf = in_pool.take()
                view = buf.numpy()
            np.copyto(view[n], rgb)
            n += 1
            if n == batch:
                yield buf, n
                buf, n = None, 0
        if buf is not None:
            yield buf, n

    def encode(item: tuple[torch.Tensor, int, torch.cuda.Event | None]) -> None:
        out, n, ready = item
        if ready is not None:
            ready.synchronize()
        sink(out[:n].numpy())
        out_pool.give(out)

    producer: Producer[tuple[torch.Tensor, int]] = Producer(batches, maxsize=QUEUE_DEPTH, name="vidsr-decode")
    consumer: Consumer[tuple[torch.Tensor, int, torch.cuda.Event | None]] = Consumer(
        encode, maxsize=QUEUE_DEPTH, name="vidsr-encode")
    count = 0
    try:
        for buf, n in producer:
            # A compiled network would recompile for a short last batch: run it full-size instead.
            x = upscaler.upload(buf if pad_last_batch else buf[:n])
            in_pool.give(buf)
            y = upscaler.process(x)
            out = out_pool.take()
            consumer.put((out, n, upscaler.download(y[:n], out[:n])))
            count += n
            if on_progress is not None:
                on_progress(n)
        consumer.finish()
    except BaseException:
        producer.close()
        consumer.close()
        raise
    return count
