"""Deciding, once and before any work, what a video upscale will produce."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vidsr.engine.options import UpscaleOptions
from vidsr.engine.outputs import check_output, default_output
from vidsr.engine.upscaler import output_size
from vidsr.io.encode import EncodeSettings
from vidsr.io.formats import resolve_encoding
from vidsr.io.mux import container_format_for
from vidsr.io.probe import VideoInfo, probe_video

log = logging.getLogger(__name__)


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
