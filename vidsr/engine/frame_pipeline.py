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

from vidsr.engine.dedup import HeldFrameDetector
from vidsr.engine.dedup_batches import FrameBatch, fill_batches, write_repeated
from vidsr.engine.threads import Consumer, Crew, Producer
from vidsr.engine.upscaler import FrameUpscaler

QUEUE_DEPTH = 2


class BufferPool:
    """A fixed set of host tensors handed out and given back."""

    def __init__(self, crew: Crew, count: int, shape: tuple[int, ...], *, dtype: torch.dtype,
                 pinned: bool) -> None:
        self._crew = crew
        self._free: queue.Queue[torch.Tensor] = queue.Queue()
        for _ in range(count):
            self._free.put(torch.empty(shape, dtype=dtype, pin_memory=pinned))

    def take(self) -> torch.Tensor:
        """The next free buffer. Waits as long as the stage holding them needs (a slow encoder is
        not an error); raises StopPipeline as soon as the run has failed."""
        return self._crew.get(self._free)  # type: ignore[return-value]

    def give(self, buf: torch.Tensor) -> None:
        self._free.put(buf)

    def clear(self) -> None:
        """Drop every free buffer (after a failure, so pinned memory is released at once)."""
        while True:
            try:
                self._free.get_nowait()
            except queue.Empty:
                return


def run_pipeline(frames: Callable[[], Iterable[np.ndarray]], upscaler: FrameUpscaler,
                 sink: Callable[[np.ndarray], None], *, batch: int, frame_shape: tuple[int, int, int],
                 frame_dtype: torch.dtype = torch.uint8, on_progress: Callable[[int], None] | None = None,
                 pad_last_batch: bool = False, interrupt: Callable[[], None] | None = None,
                 detector: HeldFrameDetector | None = None) -> int:
    """Upscale every frame from `frames()` and pass the results, in order, to `sink`. Returns the count.

    With a `detector`, a frame it finds held (repeating the one before) skips the network
    and the previous output is written again (see dedup_batches.py); `detector.held` then
    says how many.

    Frames are [H,W,C] arrays (`frame_shape`, `frame_dtype`: uint8 or uint16; C = 3, or 4 with alpha).
    `frames` runs in its own thread, `sink` in another; the network runs in the caller's.
    `sink` receives uint8 arrays [n, *upscaler.formatter.frame_shape].

    If any stage fails (or Ctrl-C arrives), every thread is stopped and joined before the
    first error is raised here; `interrupt` is called first, to wake a `sink` blocked in a
    write (e.g. by killing the encoder process it writes to).
    """
    crew = Crew()
    pinned = upscaler.is_cuda
    # One buffer being filled, one being consumed, QUEUE_DEPTH waiting: no stage waits for a buffer.
    in_pool = BufferPool(crew, QUEUE_DEPTH + 2, (batch, *frame_shape), dtype=frame_dtype, pinned=pinned)
    out_pool = BufferPool(crew, QUEUE_DEPTH + 2, (batch, *upscaler.formatter.frame_shape),
                          dtype=upscaler.formatter.dtype, pinned=pinned)

    def batches() -> Iterator[FrameBatch]:
        return fill_batches(frames(), in_pool.take, batch, detector)

    def encode(item: tuple[torch.Tensor, list[int], torch.cuda.Event | None]) -> None:
        out, repeats, ready = item
        if ready is not None:
            ready.synchronize()
        write_repeated(sink, out[:len(repeats)].numpy(), repeats)
        out_pool.give(out)

    producer: Producer[FrameBatch] = Producer(crew, batches, maxsize=QUEUE_DEPTH, name="vidsr-decode")
    consumer: Consumer[tuple[torch.Tensor, list[int], torch.cuda.Event | None]] = Consumer(
        crew, encode, maxsize=QUEUE_DEPTH, name="vidsr-encode")
    count = 0
    item = buf = x = y = out = None
    try:
        for item in producer:
            buf, n = item.buf, item.count
            # A compiled network would recompile for a short last batch: run it full-size instead.
            x = upscaler.receive(buf if pad_last_batch else buf[:n])
            in_pool.give(buf)
            buf = None
            y = upscaler.process(x)
            x = None
            out = out_pool.take()
            consumer.put((out, item.repeats, upscaler.download(y[:n], out[:n])))
            out = y = None
            count += item.frames_out
            if on_progress is not None:
                on_progress(item.frames_out)
        consumer.finish()
    except BaseException as exc:
        crew.fail(exc)
        item = buf = x = y = out = None  # the traceback keeps this frame alive: let go of its tensors now
        crew.shutdown(interrupt)
        in_pool.clear()
        out_pool.clear()
        crew.reraise(exc)
    crew.shutdown()
    return count
