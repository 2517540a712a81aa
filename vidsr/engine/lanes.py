"""Several encoders at once inside one run: consecutive segments, one network stage, one join.

When the encoder bounds a run (x264 at 4K out, slow presets) and cores are idle, one
encoder cannot use them: its threads stall on each other's reference frames. Here the
video is cut at keyframes into consecutive segments (segments.py); each of `lanes` lanes
decodes one segment from its keyframe and encodes it into a file of its own, then takes
the next segment. The one network thread serves the lanes a batch each in turn, so every
encoder gets an equal share and the device stays as busy as with one lane. The segment files
are joined without re-encoding by the mux every segmented run uses (mux.py: one
decode-time rule across joins), so the output is one stream with every frame and its
timestamp.

Memory is a few batches per lane, whatever the length of the video.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch

from vidsr.engine.dedup import HeldFrameDetector
from vidsr.engine.dedup_batches import fill_batches, write_repeated
from vidsr.engine.frame_pipeline import QUEUE_DEPTH, BufferPool
from vidsr.engine.options import UpscaleOptions
from vidsr.engine.segments import Segment, plan_segments
from vidsr.engine.thread_budget import available_cores, budget_for
from vidsr.engine.threads import Crew, StopPipeline
from vidsr.engine.upscaler import FrameUpscaler
from vidsr.engine.video_part import make_upscaler, open_part_encoder, open_reader
from vidsr.engine.video_plan import VideoPlan
from vidsr.errors import OptionError
from vidsr.io.decode import DecodeReport, FrameReader, Window
from vidsr.io.encode import FrameEncoder
from vidsr.models import ModelDescriptor

log = logging.getLogger(__name__)

S = TypeVar("S")
_END = object()          # after a segment's last batch
_LANE_DONE = object()    # a lane has no segment left
# Auto: a second encoder only where cores would otherwise sit idle: one x264 at 1080p keeps
# about 8 cores busy; past that, lanes add throughput instead of contention.
CORES_PER_ENCODER = 8
MAX_AUTO_LANES = 4


def auto_lanes(device: torch.device, cores: int | None = None) -> int:
    """--encoders auto: 1, unless the network is on CUDA (so the CPU only decodes and encodes) and
    there are cores for more than one encoder."""
    if device.type != "cuda":
        return 1
    cores = cores if cores is not None else available_cores()
    return max(1, min(MAX_AUTO_LANES, cores // CORES_PER_ENCODER))


def lane_segment_seconds(duration_s: float | None, lanes: int) -> float:
    """Segments short enough that every lane gets several (the last one to finish works alone),
    long enough that a keyframe per segment costs little: 2 to 30 s."""
    if not duration_s:
        return 10.0
    return max(2.0, min(30.0, duration_s / (4 * lanes)))


class _Lane(Generic[S]):
    """One lane's buffers, its queue to its encoder thread, and the encoder now open."""

    def __init__(self, crew: Crew, index: int, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 in_dtype: torch.dtype, out_dtype: torch.dtype, pinned: bool) -> None:
        self.index = index
        self.in_pool = BufferPool(crew, QUEUE_DEPTH + 2, in_shape, dtype=in_dtype, pinned=pinned)
        self.out_pool = BufferPool(crew, QUEUE_DEPTH + 2, out_shape, dtype=out_dtype, pinned=pinned)
        self.inbox = crew.queue(QUEUE_DEPTH)    # decoded batches, to the network
        self.outbox = crew.queue(QUEUE_DEPTH)   # upscaled batches, to the encoder
        self.encoder: FrameEncoder | None = None
        self.done = threading.Event()


def run_lanes(segments: Sequence[S], lanes: int, upscaler: FrameUpscaler, *,
              frames: Callable[[S], Iterable[np.ndarray]], encoder: Callable[[S], FrameEncoder],
              batch: int, frame_shape: tuple[int, int, int], frame_dtype: torch.dtype = torch.uint8,
              on_progress: Callable[[int], None] | None = None, pad_last_batch: bool = False,
              detector: Callable[[S], HeldFrameDetector | None] | None = None) -> int:
    """Upscale every segment's frames, encoding up to `lanes` segments at once; returns the frame count.

    `frames(seg)` gives a segment's frames ([H,W,C] arrays of `frame_shape`, `frame_dtype`), in
    a decode thread of its lane; `encoder(seg)` opens the segment's encoder, in the lane's encode
    thread, which closes it after the segment's last frame. With `detector(seg)`, the segment's
    held frames skip the network and repeat the previous output (dedup_batches.py), as in
    run_pipeline. The network runs in the caller's thread. On any failure (or Ctrl-C) every
    thread is stopped, open encoders are aborted, and the first error is raised here; the
    caller removes the segment files.
    """
    crew = Crew()
    pinned = upscaler.is_cuda
    lanes = max(1, min(lanes, len(segments)))
    out_shape = (batch, *upscaler.formatter.frame_shape)
    pool = [_Lane(crew, i, (batch, *frame_shape), out_shape, frame_dtype, upscaler.formatter.dtype, pinned)
            for i in range(lanes)]
    todo = iter(segments)
    todo_lock = threading.Lock()

    def next_segment() -> S | None:
        with todo_lock:
            return next(todo, None)

    def decode(lane: _Lane) -> None:
        while (seg := next_segment()) is not None:
            held = detector(seg) if detector is not None else None
            for item in fill_batches(frames(seg), lane.in_pool.take, batch, held):
                crew.put(lane.inbox, (seg, item))
            crew.put(lane.inbox, (seg, _END))
        crew.put(lane.inbox, (None, _LANE_DONE))

    def encode(lane: _Lane) -> None:
        while True:
            item = crew.get(lane.outbox)
            if item is _LANE_DONE:
                lane.done.set()
                return
            seg, out, repeats, ready = item
            if out is _END:
                if lane.encoder is not None:  # a segment that decoded to nothing has no file
                    lane.encoder.close()
                    lane.encoder = None
                continue
            if lane.encoder is None:
                lane.encoder = encoder(seg)
            if ready is not None:
                ready.synchronize()
            write_repeated(lane.encoder.write, out[:len(repeats)].numpy(), repeats)
            lane.out_pool.give(out)

    for lane in pool:
        crew.start(lambda lane=lane: decode(lane), f"vidsr-decode-{lane.index}")
        crew.start(lambda lane=lane: encode(lane), f"vidsr-encode-{lane.index}")

    def interrupt() -> None:
        for lane in pool:
            if lane.encoder is not None:
                lane.encoder.interrupt()

    count = 0
    item = x = y = out = None
    try:
        # One batch from each lane in turn: were batches taken as they arrive, the lane whose
        # decoder runs ahead would fill the network's time while the other encoders starve.
        turn = list(pool)
        while turn:
            for lane in list(turn):
                seg, item = crew.get(lane.inbox)  # type: ignore[misc]
                if item is _LANE_DONE:
                    crew.put(lane.outbox, _LANE_DONE)
                    turn.remove(lane)
                    continue
                if item is _END:
                    crew.put(lane.outbox, (seg, _END, [], None))
                    continue
                n = item.count
                # A compiled network would recompile for a short last batch: run it full-size instead.
                x = upscaler.receive(item.buf if pad_last_batch else item.buf[:n])
                lane.in_pool.give(item.buf)
                y = upscaler.process(x)
                x = None
                out = lane.out_pool.take()
                crew.put(lane.outbox, (seg, out, item.repeats, upscaler.download(y[:n], out[:n])))
                out = y = None
                count += item.frames_out
                if on_progress is not None:
                    on_progress(item.frames_out)
                item = None
        for lane in pool:
            while not lane.done.wait(0.05):
                if crew.stop.is_set():
                    raise StopPipeline
    except BaseException as exc:
        crew.fail(exc)
        item = x = y = out = None  # the traceback keeps this frame alive: let go of its tensors now
        crew.shutdown(interrupt)
        for lane in pool:
            if lane.encoder is not None:
                _abort(lane.encoder)
            lane.in_pool.clear()
            lane.out_pool.clear()
        crew.reraise(exc)
    crew.shutdown()
    return count


def _abort(encoder: FrameEncoder) -> None:
    try:
        encoder.abort()
    except Exception:  # the run already failed; its first error is the one to report
        log.debug("aborting an encoder failed", exc_info=True)


# -- the video path ---------------------------------------------------------------------------


def lane_segments(plan: VideoPlan, options: UpscaleOptions, device: torch.device) -> list[Segment]:
    """The segments to encode in lanes, or [] for one encoder (one lane asked for or chosen, or a video
    that cannot be cut: a single keyframe, or damaged timestamps)."""
    lanes = options.encoders or auto_lanes(device)
    if lanes <= 1:
        return []
    seconds = options.segment_seconds or lane_segment_seconds(plan.info.duration_s, lanes)
    try:
        segments = plan_segments(plan.input, plan.info, seconds=seconds, window=options.window)
    except OptionError as exc:
        log.info("one encoder: %s", exc)
        return []
    if len(segments) < 2:
        log.info("one encoder: %s has no keyframe to cut at (segments of %.1f s)", plan.input.name, seconds)
        return []
    return segments


def upscale_in_lanes(plan: VideoPlan, options: UpscaleOptions, model: ModelDescriptor, device_spec: str,
                     segments: Sequence[Segment], part_paths: Sequence[Path], *,
                     on_progress: Callable[[int], None] | None = None) -> list[tuple[Path, DecodeReport]]:
    """Upscale `segments` into `part_paths` (one each) with `options.encoders` encoders at once; the parts
    and what decoding saw in each, ready for finish_video."""
    info = plan.info
    upscaler, batch = make_upscaler(plan, options, model, device_spec)
    lanes = options.encoders or auto_lanes(upscaler.device)
    threads = budget_for(upscaler.device)
    # Segments carry exact timestamp bounds: the window is already in them.
    whole = dataclasses.replace(options, window=Window())
    readers: dict[int, FrameReader] = {}
    # One detector per segment: a segment's first frame has no previous output in its file to repeat.
    detectors: dict[int, HeldFrameDetector] = {}
    paths = {seg.index: path for seg, path in zip(segments, part_paths)}

    def frames(seg: Segment) -> FrameReader:
        readers[seg.index] = reader = open_reader(plan, whole, (seg.start, seg.end), threads)
        return reader

    def encoder(seg: Segment) -> FrameEncoder:
        return open_part_encoder(plan, paths[seg.index], upscaler.formatter.pix_fmt, threads)

    def detector(seg: Segment) -> HeldFrameDetector | None:
        if not options.dedup:
            return None
        detectors[seg.index] = held = HeldFrameDetector()
        return held

    log.info("%d encoders at once on %d segments", min(lanes, len(segments)), len(segments))
    run_lanes(segments, lanes, upscaler, frames=frames, encoder=encoder, batch=batch,
              frame_shape=(info.height, info.width, plan.channels),
              frame_dtype=torch.uint16 if info.bits > 8 else torch.uint8, on_progress=on_progress,
              pad_last_batch=bool(options.speed.compile), detector=detector)
    parts = []
    for seg in segments:
        report = readers[seg.index].report if seg.index in readers else DecodeReport()
        if seg.index in detectors:
            report.held = detectors[seg.index].held
        parts.append((paths[seg.index], report))
    return parts
