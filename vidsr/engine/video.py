"""The video path: probe, then decode -> upscale -> encode (overlapped), then mux the other streams."""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from vidsr.engine.batching import choose_batch
from vidsr.engine.device import pick_device, pick_dtype
from vidsr.engine.outputs import atomic_output, check_output, default_output, partial_path
from vidsr.engine.pipeline import run_pipeline
from vidsr.engine.pixfmt import DeviceFormatter
from vidsr.engine.upscaler import FrameUpscaler, SpeedOptions, output_size
from vidsr.errors import InputError, OptionError
from vidsr.io.decode import iter_frames
from vidsr.io.encode import EncodeSettings, open_encoder, validate_settings
from vidsr.io.mux import container_format_for, mux_with_source
from vidsr.io.probe import probe_video
from vidsr.models import ModelDescriptor, load_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpscaleOptions:
    """Everything `vidsr upscale` can be told; defaults are the CLI's defaults."""

    model: str = "animevideov3"
    scale: float | None = None          # None: the model's native scale
    device: str = "auto"
    batch: int | None = None            # None: from free GPU memory (CUDA) or 4 (CPU)
    precision: str = "auto"             # auto: fp16 on CUDA, fp32 on CPU
    speed: SpeedOptions = field(default_factory=SpeedOptions)
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    overwrite: bool = False
    progress: bool = True
    decode_threads: int = 0             # 0: FFmpeg picks

    def validated(self) -> UpscaleOptions:
        if self.scale is not None and not (0 < self.scale <= 16):
            raise OptionError(f"--scale must be in (0, 16], not {self.scale:g}")
        if self.batch is not None and self.batch < 1:
            raise OptionError(f"--batch must be at least 1, not {self.batch}")
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

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def upscale_video(input_path: Path, output: Path | None, options: UpscaleOptions,
                  model: ModelDescriptor | None = None) -> UpscaleResult:
    """Upscale every frame of `input_path` into `output`, copying its audio streams."""
    options = options.validated()
    info = probe_video(input_path)  # fails fast on bad input, before the model loads
    model = model or load_model(options.model)
    scale = options.scale or float(model.scale)
    output = output or default_output(input_path, scale, image=False)
    check_output(input_path, output, overwrite=options.overwrite)
    device = pick_device(options.device)
    dtype = pick_dtype(device, options.precision, model.supports_half)
    out_w, out_h = output_size(info.width, info.height, scale, options.encode.pix_fmt)
    formatter = DeviceFormatter.for_encoder(options.encode.pix_fmt, out_w, out_h, info.color)
    upscaler = FrameUpscaler(model, device=device, dtype=dtype, out_size=(out_w, out_h), formatter=formatter,
                             speed=options.speed)
    batch = options.batch or choose_batch(upscaler, info.height, info.width)
    log.info("%s: %dx%d -> %dx%d with %s on %s (%s, batch %d)", input_path, info.width, info.height, out_w,
             out_h, model.name, device, str(dtype).removeprefix("torch."), batch)

    video_tmp = partial_path(output, "video")
    start = time.perf_counter()
    try:
        encoder = open_encoder(video_tmp, width=out_w, height=out_h, rate=info.rate, color=info.color,
                               settings=options.encode, container_format=container_format_for(output),
                               input_pix_fmt=formatter.pix_fmt)
        with tqdm(total=info.frames, unit="frame", desc=input_path.name, disable=not options.progress,
                  dynamic_ncols=True, smoothing=0.1) as bar:
            if options.speed.compile:
                bar.set_postfix_str("torch.compile warm-up (first batch)")

            def progress(n: int) -> None:
                if options.speed.compile and bar.n == 0:
                    bar.set_postfix_str("")
                bar.update(n)

            try:
                frames = run_pipeline(lambda: iter_frames(input_path, info.color, threads=options.decode_threads),
                                      upscaler, encoder.write, batch=batch,
                                      frame_shape=(info.height, info.width, 3), on_progress=progress,
                                      pad_last_batch=options.speed.compile)
                encoder.close()
            except BaseException:
                encoder.abort()
                raise
        if frames == 0:
            raise InputError(f"no video frame could be decoded from {input_path}")
        with atomic_output(output) as tmp:
            mux_with_source(video_tmp, input_path, tmp, video_offset_s=info.start_s)
    finally:
        with contextlib.suppress(FileNotFoundError):
            video_tmp.unlink()
    return UpscaleResult(output, frames, out_w, out_h, time.perf_counter() - start)
