"""The damage policy: what decoding reported, said as warnings, or refused under --strict."""
from __future__ import annotations

import logging
from collections.abc import Sequence

from vidsr.engine.options import UpscaleOptions
from vidsr.errors import InputError
from vidsr.io.decode import DecodeReport
from vidsr.io.probe import VideoInfo

log = logging.getLogger(__name__)


def merge_reports(reports: Sequence[DecodeReport]) -> DecodeReport:
    """One report for consecutive parts of a video."""
    merged = DecodeReport()
    for r in reports:
        merged.pts.extend(r.pts)
        merged.concealed += r.concealed
        merged.replaced += r.replaced
        merged.dropped += r.dropped
        merged.resized += r.resized
        merged.truncated = r.truncated or merged.truncated
        merged.held += r.held
    return merged


def damage_warnings(report: DecodeReport, info: VideoInfo, options: UpscaleOptions) -> tuple[str, ...]:
    """Say what was done about damage; with --strict, refuse instead."""
    notes = []
    if report.concealed:
        notes.append(f"{report.concealed} frame(s) had decoding errors that FFmpeg concealed")
    if report.replaced:
        notes.append(f"{report.replaced} frame(s) could not be decoded and repeat the frame before them")
    if report.dropped:
        notes.append(f"{report.dropped} damaged packet(s) had no timestamp and were skipped")
    if report.resized:
        notes.append(f"{report.resized} frame(s) came out of the decoder at another size and were scaled to "
                     f"{info.width}x{info.height}")
    decoded = len(report.pts)
    if report.truncated:
        notes.append(f"input ends early: {report.truncated}; {decoded} frame(s) upscaled")
    elif options.window.is_whole and info.frames and decoded < info.frames and info.frames_exact:
        notes.append(f"input ends early: {decoded} of the {info.frames} frames its header lists were decoded")
    elif options.window.is_whole and info.duration_exact and info.duration_s and report.pts:
        frame = float(1 / info.rate) if info.rate else 0.04
        reached = float(report.pts[-1] * info.time_base) + frame - info.start_s
        if reached < info.duration_s - max(2 * frame, 0.1):
            notes.append(f"input ends early: video decoded up to {reached:.2f} s of the {info.duration_s:.2f} s "
                         f"its header gives; {decoded} frame(s) upscaled")
    if notes and options.strict:
        raise InputError(f"{info.path.name} is damaged (--strict): " + "; ".join(notes))
    for note in notes:
        log.warning("%s: %s", info.path.name, note)
    return tuple(notes)
