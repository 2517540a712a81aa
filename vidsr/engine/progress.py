"""The progress bar of a video upscale."""
from __future__ import annotations

from collections.abc import Callable

from tqdm import tqdm

from vidsr.engine.options import UpscaleOptions
from vidsr.engine.video_plan import VideoPlan


def progress_bar(plan: VideoPlan, options: UpscaleOptions) -> tqdm:
    total = options.window.frames or (None if options.window.duration else plan.info.frames)
    return tqdm(total=total, unit="frame", desc=plan.input.name, disable=not options.progress, dynamic_ncols=True,
                smoothing=0.1)


def frame_counter(bar: tqdm, options: UpscaleOptions) -> Callable[[int], None]:
    """A callback advancing `bar` by frames done; with torch.compile it first says the warm-up is on."""
    if options.speed.compile:
        bar.set_postfix_str("torch.compile warm-up (first batch)")

    def progress(n: int) -> None:
        if options.speed.compile and bar.n == 0:
            bar.set_postfix_str("")
        bar.update(n)

    return progress
