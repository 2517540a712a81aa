"""The still-image path: read, upscale (alpha alongside), write atomically."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.engine.device import pick_device, pick_dtype
from vidsr.engine.outputs import atomic_output, check_output, default_output
from vidsr.engine.upscaler import FrameUpscaler, output_size
from vidsr.engine.video import UpscaleOptions, UpscaleResult
from vidsr.io.image import read_image, write_image
from vidsr.models import ModelDescriptor, load_model


def upscale_image(input_path: Path, output: Path | None, options: UpscaleOptions,
                  model: ModelDescriptor | None = None) -> UpscaleResult:
    options = options.validated()
    rgb, alpha, mode = read_image(input_path)
    start = time.perf_counter()
    model = model or load_model(options.model)
    scale = options.scale or float(model.scale)
    output = output or default_output(input_path, scale, image=True)
    check_output(input_path, output, overwrite=options.overwrite)
    device = pick_device(options.device)
    dtype = pick_dtype(device, options.precision, model.supports_half)
    h, w = rgb.shape[:2]
    out_w, out_h = output_size(w, h, scale)
    upscaler = FrameUpscaler(model, device=device, dtype=dtype, out_size=(out_w, out_h), speed=options.speed)
    big = upscaler(torch.from_numpy(rgb)[None])[0].numpy()
    big_alpha = None
    if alpha is not None:
        # Alpha edges are smooth masks: bicubic keeps them clean where the network would sharpen halos.
        a = torch.from_numpy(alpha).to(device, torch.float32)[None, None] / 255
        a = F.interpolate(a, size=(out_h, out_w), mode="bicubic", align_corners=False, antialias=True)
        big_alpha = a.clamp(0, 1).mul(255).round().to(torch.uint8)[0, 0].cpu().numpy()
    with atomic_output(output) as tmp:
        write_image(tmp, np.ascontiguousarray(big), big_alpha, mode, format_path=output)
    return UpscaleResult(output, 1, out_w, out_h, time.perf_counter() - start)
