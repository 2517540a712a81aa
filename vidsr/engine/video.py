"""The video path in one process: plan, then one part through decode -> upscale -> encode, then mux.

The jobs live in their own modules: options.py (what is asked), video_plan.py (what will be
produced), video_part.py (decode -> upscale -> encode of a part), damage.py (what to do about
damaged input), video_mux.py (the output, with every other stream) and progress.py. The chunked
path (chunked.py) runs the same parts as resumable segments, possibly on several devices; lanes.py
runs several encoders at once on consecutive segments inside this one process. compiled.py decides
whether the network is compiled for the run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

from vidsr.engine.compiled import expected_frames, settle_compile
from vidsr.engine.device import pick_device
from vidsr.engine.lanes import auto_lanes, lane_segments, upscale_in_lanes
from vidsr.engine.options import UpscaleOptions, UpscaleResult
from vidsr.engine.outputs import partial_path, remove_stale_partials
from vidsr.engine.progress import frame_counter, progress_bar
from vidsr.engine.video_mux import finish_video
from vidsr.engine.video_part import upscale_part
from vidsr.engine.video_plan import plan_video
from vidsr.models import ModelDescriptor, load_model

__all__ = ["UpscaleOptions", "UpscaleResult", "upscale_video"]


def upscale_video(input_path: Path, output: Path | None, options: UpscaleOptions,
                  model: ModelDescriptor | None = None) -> UpscaleResult:
    """Upscale every frame of `input_path` (or the window asked for) into `output`, copying all other streams."""
    options = options.validated()
    model = model or load_model(options.model)
    plan = plan_video(input_path, output, options, model.scale)
    device = pick_device(options.device)
    options = dataclasses.replace(options, speed=settle_compile(options.speed, device,
                                                                expected_frames(plan.info, options.window)))
    segments = lane_segments(plan, options, device)
    remove_stale_partials(plan.output)
    temps = ([partial_path(plan.output, f"lane{seg.index}") for seg in segments] if segments
             else [partial_path(plan.output, "video")])
    start = time.perf_counter()
    try:
        with progress_bar(plan, options) as bar:
            progress = frame_counter(bar, options)
            if segments:
                parts = upscale_in_lanes(plan, options, model, options.device, segments, temps, on_progress=progress)
            else:
                parts = [(temps[0], upscale_part(plan, options, model, options.device, temps[0],
                                                 on_progress=progress))]
        warnings = finish_video(plan, options, parts)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    frames = sum(len(report.pts) for _, report in parts)
    lanes = min(options.encoders or auto_lanes(device), len(segments)) if segments else 1
    return UpscaleResult(plan.output, frames, *plan.out_size, time.perf_counter() - start, warnings,
                         reused=sum(report.held for _, report in parts), encoders=lanes)
