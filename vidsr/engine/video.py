"""The video path: probe, then decode -> upscale -> encode (overlapped), then mux every other stream."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from vidsr.engine.batching import choose_batch
from vidsr.engine.dedup import HeldFrameDetector
from vidsr.engine.device import PRECISIONS, Precision, pick_device, pick_dtype
from vidsr.engine.outputs import (atomic_output, check_output, default_output, partial_path,
                                  remove_stale_partials)
from vidsr.engine.pipeline import run_pipeline
from vidsr.engine.pixfmt import DeviceFormatter
from vidsr.engine.thread_budget import budget_for
from vidsr.engine.upscaler import FrameUpscaler, SpeedOptions, output_size
from vidsr.errors import InputError, OptionError
from vidsr.io.decode import DecodeReport, FrameReader, Window
from vidsr.io.encode import EncodeSettings, FrameEncoder, open_encoder, validate_settings
from vidsr.io.formats import resolve_encoding
from vidsr.io.mux import Cut, VideoLayout, VideoPart, container_format_for, mux_with_source
from vidsr.io.probe import VideoInfo, probe_video
from vidsr.models import ModelDescriptor, load_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpscaleOptions:
    """Everything `vidsr upscale` can be told; defaults are the CLI's defaults."""

    model: str = "animevideov3"
    scale: float | None = None          # None: the model's native scale
    device: str = "auto"
    batch: int | None = None            # None: from free GPU memory (CUDA) or 4 (CPU)
    precision: Precision = "auto"       # auto: fp16 on CUDA, fp32 on CPU
    speed: SpeedOptions = field(default_factory=SpeedOptions)
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    window: Window = field(default_factory=Window)
    strict: bool = False                # damaged input is an error rather than a warning
    overwrite: bool = False
    progress: bool = True
    decode_threads: int = 0             # 0: one on the CPU (the network has the cores), else FFmpeg picks
    dedup: bool = False                 # a frame repeating the previous one reuses its output (engine/dedup.py)

    def validated(self) -> UpscaleOptions:
        if self.scale is not None and not (0 < self.scale <= 16):
            raise OptionError(f"--scale must be in (0, 16], not {self.scale:g}")
        if self.batch is not None and self.batch < 1:
            raise OptionError(f"--batch must be at least 1, not {self.batch}")
        w = self.window
        if w.start < 0 or (w.duration is not None and w.duration <= 0) or (w.frames is not None and w.frames < 1):
            raise OptionError("--start must be >= 0, --duration > 0 and --frames >= 1")
        if self.precision not in PRECISIONS:
            raise OptionError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        pick_device(self.device)  # an unusable device is an option error, before any work starts
        self.speed.validated()
        validate_settings(self.encode)
        return self


@dataclass(frozen=True)
class UpscaleResult:
    output: Path
    frames: int
    width: int
    height: int
    seconds: float
    warnings: tuple[str, ...] = ()
    reused: int = 0                     # frames given the previous frame's output (--dedup)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class VideoPlan:
    """What one upscale will produce, decided once (and handed to segment workers as is)."""

    input: Path
    output: Path
    info: VideoInfo
    encode: EncodeSettings        # codec and pix_fmt resolved
    out_size: tuple[int, int]

    @property
    def channels(self) -> int:
        return 4 if self.info.alpha else 3


def plan_video(input_path: Path, output: Path | None, options: UpscaleOptions, model_scale: int) -> VideoPlan:
    """Probe the input and settle output path, codec, pixel format and size; fails fast on bad input."""
    info = probe_video(input_path)
    if info.hdr:
        log.warning("%s is HDR (%s); its tags%s are kept, but the models were trained on SDR video",
                    input_path.name, info.color.trc_tag, " and mastering metadata" if info.hdr_metadata else "")
    scale = options.scale or float(model_scale)
    encode = resolve_encoding(info, options.encode, container_format_for(output or input_path))
    output = output or default_output(input_path, scale, image=False, codec=encode.codec)
    encode = resolve_encoding(info, options.encode, container_format_for(output))
    check_output(input_path, output, overwrite=options.overwrite)
    return VideoPlan(input_path, output, info, encode, output_size(info.width, info.height, scale, encode.pix_fmt))


def encode_part(plan: VideoPlan, options: UpscaleOptions, model: ModelDescriptor, device_spec: str,
                part_path: Path, *, pts_range: tuple[int | None, int | None] | None = None,
                on_progress: Callable[[int], None] | None = None) -> DecodeReport:
    """Upscale the frames of the window (or `pts_range`) into a video-only file; return what decoding saw."""
    info = plan.info
    device = pick_device(device_spec)
    dtype = pick_dtype(device, options.precision, model=model)
    out_w, out_h = plan.out_size
    formatter = DeviceFormatter.for_encoder(plan.encode.pix_fmt, out_w, out_h, info.color, alpha=info.alpha)
    upscaler = FrameUpscaler(model, device=device, dtype=dtype, out_size=plan.out_size, formatter=formatter,
                             speed=options.speed)
    batch = options.batch or choose_batch(upscaler, info.height, info.width)
    threads = budget_for(device)
    log.info("%s: %dx%d -> %dx%d with %s on %s (%s, batch %d), %s %s", plan.input, info.width, info.height,
             out_w, out_h, model.name, device, str(dtype).removeprefix("torch."), batch, plan.encode.codec,
             plan.encode.pix_fmt)
    deep = info.bits > 8
    rgb_format = {(3, False): "rgb24", (3, True): "rgb48le", (4, False): "rgba", (4, True): "rgba64le"}[
        (plan.channels, deep)]
    reader = FrameReader(plan.input, info.color, rgb_format=rgb_format, window=options.window,
                         start_s=info.start_s, pts_range=pts_range, threads=options.decode_threads or threads.decode,
                         rate=info.rate, timestamps=info.timestamps, size=(info.width, info.height))
    encode = plan.encode if plan.encode.threads else dataclasses.replace(plan.encode, threads=threads.encode)
    # A new detector per part: a segment's first frame has no previous output to reuse.
    detector = HeldFrameDetector() if options.dedup else None
    encoder: FrameEncoder | None = None
    try:  # opened inside: a Ctrl-C right after the encoder starts must still stop it
        encoder = open_encoder(part_path, width=out_w, height=out_h, rate=info.rate, color=info.color,
                               settings=encode, container_format=container_format_for(plan.output),
                               input_pix_fmt=formatter.pix_fmt, sample_aspect_ratio=info.sample_aspect_ratio,
                               hdr=info.hdr_metadata)
        run_pipeline(lambda: reader, upscaler, encoder.write, batch=batch,
                     frame_shape=(info.height, info.width, plan.channels),
                     frame_dtype=torch.uint16 if deep else torch.uint8, on_progress=on_progress,
                     pad_last_batch=options.speed.compile, interrupt=encoder.interrupt, detector=detector)
        encoder.close()
    except BaseException:
        if encoder is not None:
            encoder.abort()
        raise
    if detector is not None:
        reader.report.held = detector.held
    return reader.report


def finish_video(plan: VideoPlan, options: UpscaleOptions, parts: Sequence[tuple[Path, DecodeReport]]) -> tuple[str, ...]:
    """Check what decoding reported, then mux the encoded parts with every other stream into the output."""
    report = merge_reports([r for _, r in parts])
    if not report.pts:
        raise InputError(f"no video frame could be decoded from {plan.input}"
                         + (" in the window asked for" if not options.window.is_whole else ""))
    warnings = _damage_warnings(report, plan.info, options)
    with atomic_output(plan.output) as tmp:
        mux_with_source([VideoPart(path, r.pts) for path, r in parts if r.pts], plan.info.time_base, plan.input,
                        tmp, cut=_cut(report, plan.info, options.window),
                        layout=VideoLayout(rotation=plan.info.rotation))
    return warnings


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


def progress_bar(plan: VideoPlan, options: UpscaleOptions) -> tqdm:
    total = options.window.frames or (None if options.window.duration else plan.info.frames)
    return tqdm(total=total, unit="frame", desc=plan.input.name, disable=not options.progress, dynamic_ncols=True,
                smoothing=0.1)


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
            if options.speed.compile:
                bar.set_postfix_str("torch.compile warm-up (first batch)")

            def progress(n: int) -> None:
                if options.speed.compile and bar.n == 0:
                    bar.set_postfix_str("")
                bar.update(n)

            report = encode_part(plan, options, model, options.device, video_tmp, on_progress=progress)
        warnings = finish_video(plan, options, [(video_tmp, report)])
    finally:
        with contextlib.suppress(FileNotFoundError):
            video_tmp.unlink()
    return UpscaleResult(plan.output, len(report.pts), *plan.out_size, time.perf_counter() - start, warnings,
                         reused=report.held)


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


def _damage_warnings(report: DecodeReport, info: VideoInfo, options: UpscaleOptions) -> tuple[str, ...]:
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
