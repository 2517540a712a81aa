"""Finishing a video: the encoded parts and every other stream of the source, muxed into the output."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vidsr.engine.damage import damage_warnings, merge_reports
from vidsr.engine.options import UpscaleOptions
from vidsr.engine.outputs import atomic_output
from vidsr.engine.video_plan import VideoPlan
from vidsr.errors import InputError
from vidsr.io.decode import DecodeReport, Window
from vidsr.io.mux import Cut, VideoLayout, VideoPart, mux_with_source
from vidsr.io.probe import VideoInfo


def finish_video(plan: VideoPlan, options: UpscaleOptions,
                 parts: Sequence[tuple[Path, DecodeReport]]) -> tuple[str, ...]:
    """Check what decoding reported, then mux the encoded parts with every other stream into the output."""
    report = merge_reports([r for _, r in parts])
    if not report.pts:
        raise InputError(f"no video frame could be decoded from {plan.input}"
                         + (" in the window asked for" if not options.window.is_whole else ""))
    warnings = damage_warnings(report, plan.info, options)
    with atomic_output(plan.output) as tmp:
        mux_with_source([VideoPart(path, r.pts) for path, r in parts if r.pts], plan.info.time_base, plan.input,
                        tmp, cut=_cut(report, plan.info, options.window),
                        layout=VideoLayout(rotation=plan.info.rotation))
    return warnings


def _cut(report: DecodeReport, info: VideoInfo, window: Window) -> Cut | None:
    """The source time range the other streams are cut to: from the first kept frame to the end of the last."""
    if window.is_whole:
        return None
    tb = info.time_base
    first = float(report.pts[0] * tb)
    if window.duration is not None:
        return Cut(first, info.start_s + window.start + window.duration)
    frame = float(1 / info.rate) if info.rate else 0.0
    last = float(report.pts[-1] * tb) + frame
    return Cut(first, last)
