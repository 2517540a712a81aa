"""One part of a video (the whole window, or one segment) through decode -> upscale -> encode.

Each stage is set up by its own function; upscale_part only wires them to the overlapped
frame pipeline, so the reader, the upscaler and the encoder can each be changed alone.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from vidsr.engine.batching import choose_batch
from vidsr.engine.dedup import HeldFrameDetector
from vidsr.engine.device import pick_device, pick_dtype
from vidsr.engine.device_formatter import DeviceFormatter
from vidsr.engine.frame_pipeline import run_pipeline
from vidsr.engine.options import UpscaleOptions
from vidsr.engine.thread_budget import ThreadBudget, budget_for
from vidsr.engine.upscaler import FrameUpscaler
from vidsr.engine.video_plan import VideoPlan
from vidsr.io.decode import DecodeReport, FrameReader
from vidsr.io.encode import FrameEncoder, open_encoder
from vidsr.io.mux import container_format_for
from vidsr.io.pixel_formats import packed_rgb_format
from vidsr.models import ModelDescriptor

log = logging.getLogger(__name__)


def open_reader(plan: VideoPlan, options: UpscaleOptions,
                pts_range: tuple[int | None, int | None] | None = None,
                threads: ThreadBudget = ThreadBudget()) -> FrameReader:
    """The decoder of the part: packed RGB(A) frames at the input's depth, in presentation order."""
    info = plan.info
    return FrameReader(plan.input, info.color, rgb_format=packed_rgb_format(plan.channels, info.bits > 8),
                       window=options.window, start_s=info.start_s, pts_range=pts_range,
                       threads=options.decode_threads or threads.decode, rate=info.rate, timestamps=info.timestamps,
                       size=(info.width, info.height))


def make_upscaler(plan: VideoPlan, options: UpscaleOptions, model: ModelDescriptor,
                  device_spec: str) -> tuple[FrameUpscaler, int]:
    """The network on its device, producing the encoder's pixel format, and the batch to feed it."""
    info = plan.info
    device = pick_device(device_spec)
    dtype = pick_dtype(device, options.precision, model=model)
    out_w, out_h = plan.out_size
    formatter = DeviceFormatter.for_encoder(plan.encode.pix_fmt, out_w, out_h, info.color, alpha=info.alpha)
    upscaler = FrameUpscaler(model, device=device, dtype=dtype, out_size=plan.out_size, formatter=formatter,
                             speed=options.speed)
    batch = options.batch or choose_batch(upscaler, info.height, info.width)
    log.info("%s: %dx%d -> %dx%d with %s on %s (%s, batch %d), %s %s", plan.input, info.width, info.height,
             out_w, out_h, model.name, device, str(dtype).removeprefix("torch."), batch, plan.encode.codec,
             plan.encode.pix_fmt)
    return upscaler, batch


def open_part_encoder(plan: VideoPlan, part_path: Path, input_pix_fmt: str,
                      threads: ThreadBudget = ThreadBudget()) -> FrameEncoder:
    """The encoder writing the part's video-only file in the planned codec and pixel format."""
    info = plan.info
    out_w, out_h = plan.out_size
    settings = plan.encode if plan.encode.threads else dataclasses.replace(plan.encode, threads=threads.encode)
    return open_encoder(part_path, width=out_w, height=out_h, rate=info.rate, color=info.color,
                        settings=settings, container_format=container_format_for(plan.output),
                        input_pix_fmt=input_pix_fmt, sample_aspect_ratio=info.sample_aspect_ratio,
                        hdr=info.hdr_metadata)


def upscale_part(plan: VideoPlan, options: UpscaleOptions, model: ModelDescriptor, device_spec: str,
                 part_path: Path, *, pts_range: tuple[int | None, int | None] | None = None,
                 on_progress: Callable[[int], None] | None = None) -> DecodeReport:
    """Upscale the frames of the window (or `pts_range`) into a video-only file; return what decoding saw."""
    info = plan.info
    upscaler, batch = make_upscaler(plan, options, model, device_spec)
    threads = budget_for(upscaler.device)
    reader = open_reader(plan, options, pts_range, threads)
    # A new detector per part: a segment's first frame has no previous output to reuse.
    detector = HeldFrameDetector() if options.dedup else None
    encoder: FrameEncoder | None = None
    try:  # opened inside: a Ctrl-C right after the encoder starts must still stop it
        encoder = open_part_encoder(plan, part_path, upscaler.formatter.pix_fmt, threads)
        run_pipeline(lambda: reader, upscaler, encoder.write, batch=batch,
                     frame_shape=(info.height, info.width, plan.channels),
                     frame_dtype=torch.uint16 if info.bits > 8 else torch.uint8, on_progress=on_progress,
                     pad_last_batch=options.speed.compile, interrupt=encoder.interrupt, detector=detector)
        encoder.close()
    except BaseException:
        if encoder is not None:
            encoder.abort()
        raise
    if detector is not None:
        reader.report.held = detector.held
    return reader.report
