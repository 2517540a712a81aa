"""The video path in one process: plan, then one part through decode -> upscale -> encode, then mux.

The jobs live in their own modules: options.py (what is asked), video_plan.py (what will be
produced), video_part.py (decode -> upscale -> encode of a part), damage.py (what to do about
damaged input), video_mux.py (the output, with every other stream) and progress.py. The chunked
path (chunked.py) runs the same parts as resumable segments, possibly on several devices.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

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
    remove_stale_partials(plan.output)
    video_tmp = partial_path(plan.output, "video")
    start = time.perf_counter()
    try:
        with progress_bar(plan, options) as bar:
            report = upscale_part(plan, options, model, options.device, video_tmp,
                                  on_progress=frame_counter(bar, options))
        warnings = finish_video(plan, options, [(video_tmp, report)])
    finally:
        with contextlib.suppress(FileNotFoundError):
            video_tmp.unlink()
    return UpscaleResult(plan.output, len(report.pts), *plan.out_size, time.perf_counter() - start, warnings,
                         reused=report.held)
