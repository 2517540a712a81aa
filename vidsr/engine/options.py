"""What one upscale is told (UpscaleOptions) and what it reports back (UpscaleResult), for every path."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vidsr.choices import PRECISIONS, Precision
from vidsr.engine.compiled import wants_tensorrt
from vidsr.engine.device import pick_device
from vidsr.engine.upscaler import SpeedOptions
from vidsr.errors import OptionError
from vidsr.io.decode import Window
from vidsr.io.encode import EncodeSettings, validate_settings


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
    encoders: int | None = None         # encoders at once on consecutive segments; None: lanes.auto_lanes
    segment_seconds: float | None = None  # their segment length; None: from the duration (lanes.py)

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
        if self.encoders is not None and self.encoders < 1:
            raise OptionError(f"--encoders must be at least 1, not {self.encoders}")
        if self.segment_seconds is not None and self.segment_seconds <= 0:
            raise OptionError(f"--segment-seconds must be > 0, not {self.segment_seconds:g}")
        device = pick_device(self.device)  # an unusable device is an option error, before any work starts
        self.speed.validated()
        if self.speed.trt:
            if self.speed.compile is False:
                raise OptionError("--trt compiles the network: it cannot go with --no-compile")
            wants_tensorrt(True, device, compiled=True)  # one line if it cannot be had, before any work
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
    encoders: int = 1                   # encoders that ran at once (--encoders)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0
