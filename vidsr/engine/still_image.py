"""The still-image path: read, upscale in float, write the image's own format atomically.

What comes in goes out (where the output format can hold it):

* Gray (L, I;16, LA) stays gray. The network only knows RGB, so it sees the gray replicated
  into three channels, and the result goes back to one channel as BT.601 luma
  (0.299 R + 0.587 G + 0.114 B, the weights of Pillow's convert("L")), i.e. the brightness of
  the RGB result as it would be seen. The network's output for a gray input is nearly gray
  (on a bg_meadow crop, animevideov3 puts R, G and B 2 code values apart on average, up to 27
  at a few edge pixels), so luma and a plain mean agree to 0.3 code values on average; where
  the network does tint an edge, luma is the one that matches what the RGB result looks like.
* 16 bits stay 16 bits: samples go to the device as uint16 / 65535 and come back as
  round(x * 65535), with no 8-bit step; precision "auto" then means fp32 on every device,
  since fp16 carries only 11 significant bits. 16-bit input written as JPEG/WebP/BMP is
  rounded once, from float, to 8 bits.
* Alpha is kept in PNG, WebP and TIFF. JPEG and BMP hold none: there the image is composited
  onto white (what a viewer shows for a transparent image on a page) with a warning, because
  dropping alpha would show whatever colour the transparent pixels happen to hold, which for
  typical sprites is black.

Alpha is upscaled with antialiased bicubic, not the network. Measured by downscaling real
masks and upscaling them back: on hard-edged sprite masks (media/images/anime/sylvie_*.png)
the network is 5-9 dB closer than bicubic, but on soft masks (the same masks blurred,
gradients) it is 10-35 dB worse, turning smooth falloffs into steps; bicubic is never that
far off, so it is the safe default.

The colour under fully transparent pixels is undefined (black in those sprites), yet the
network reads it around every edge and bleeds it into the semi-transparent rim as a dark
fringe. So before the network those pixels take the colour of their nearest visible
neighbours (an alpha-weighted push-pull fill); visible pixels are untouched. On the sprites
at x4 this makes the edge pixels 1-2 dB closer to the original composited over white or black.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.engine.device import pick_device, pick_dtype
from vidsr.engine.device_formatter import DeviceFormatter
from vidsr.engine.options import UpscaleOptions, UpscaleResult
from vidsr.engine.outputs import atomic_output, check_output, default_output
from vidsr.engine.upscaler import FrameUpscaler, output_size
from vidsr.io.color import LUMA_601
from vidsr.io.image import StillImage, image_format, read_image, write_image
from vidsr.models import ModelDescriptor, load_model

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class _FloatRGB(DeviceFormatter):
    """Leaves the network's output as float RGB in [0,1], so it can be quantised to any depth."""

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb.float()


def upscale_image(input_path: Path, output: Path | None, options: UpscaleOptions,
                  model: ModelDescriptor | None = None) -> UpscaleResult:
    """Upscale one still image into `output`, keeping its gray/alpha/bit depth where the format allows."""
    options = options.validated()
    image = read_image(input_path)
    start = time.perf_counter()
    model = model or load_model(options.model)
    scale = options.scale or float(model.scale)
    output = output or default_output(input_path, scale, image=True)
    check_output(input_path, output, overwrite=options.overwrite)
    fmt = image_format(output)  # an unwritable suffix fails here, before the network runs
    keep_alpha = image.has_alpha and fmt.alpha
    if image.has_alpha and not keep_alpha:
        log.warning("%s cannot hold transparency: compositing %s onto white", fmt.name, input_path.name)
    out_bits = 16 if image.bits == 16 and fmt.max_bits >= 16 else 8
    if image.bits > out_bits:
        log.info("%s holds 8-bit samples: %s is written at 8 bits", fmt.name, input_path.name)

    device = pick_device(options.device)
    precision = "fp32" if image.bits > 8 and options.precision == "auto" else options.precision
    dtype = pick_dtype(device, precision, model=model)
    out_w, out_h = output_size(image.width, image.height, scale)
    upscaler = FrameUpscaler(model, device=device, dtype=dtype, out_size=(out_w, out_h),
                             formatter=_FloatRGB("rgb24", out_w, out_h, None), speed=options.speed)
    log.info("%s (%s): %dx%d -> %dx%d with %s on %s", input_path, image.mode, image.width, image.height,
             out_w, out_h, model.name, device)
    pixels = _upscale(image, upscaler, keep_alpha=keep_alpha, out_bits=out_bits)
    with atomic_output(output) as tmp:
        write_image(tmp, pixels, format_path=output, icc_profile=image.icc_profile)
    return UpscaleResult(output, 1, out_w, out_h, time.perf_counter() - start)


@torch.inference_mode()
def _upscale(image: StillImage, upscaler: FrameUpscaler, *, keep_alpha: bool, out_bits: int) -> np.ndarray:
    """[H, W, C] samples -> [H', W', C'] samples at `out_bits`, all arithmetic in float on the device."""
    device = upscaler.device
    color = _to_device(image.color, device)                   # [1, 1|3, H, W] in [0,1]
    rgb = color.expand(-1, 3, -1, -1) if image.gray else color
    alpha = None if image.alpha is None else _to_device(image.alpha[..., None], device)
    if alpha is not None:
        rgb = _fill_transparent(rgb, alpha)
    x = rgb.to(upscaler.dtype)
    if upscaler.speed.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    big = upscaler.process(x)                                 # float [1, 3, H', W'] in [0,1]
    planes = []
    big_alpha = None
    if alpha is not None:
        big_alpha = F.interpolate(alpha, size=big.shape[-2:], mode="bicubic", align_corners=False,
                                  antialias=True).clamp_(0, 1)
        if not keep_alpha:
            big = big * big_alpha + (1 - big_alpha)           # over white
            big_alpha = None
    if image.gray:
        big = sum(w * big[:, i:i + 1] for i, w in enumerate(LUMA_601))
    planes.append(big)
    if big_alpha is not None:
        planes.append(big_alpha)
    return _to_host(torch.cat(planes, dim=1), out_bits)


def _to_device(samples: np.ndarray, device: torch.device) -> torch.Tensor:
    """[H, W, C] uint8/uint16 -> float32 [1, C, H, W] in [0,1] on `device`."""
    peak = 65535.0 if samples.dtype == np.uint16 else 255.0
    host = np.ascontiguousarray(samples)
    t = torch.from_numpy(host.astype(np.int32) if host.dtype == np.uint16 else host)
    return t.to(device)[None].permute(0, 3, 1, 2).float().div_(peak)


def _to_host(x: torch.Tensor, bits: int) -> np.ndarray:
    """float [1, C, H, W] in [0,1] -> [H, W, C] uint8/uint16, rounded to nearest."""
    peak = (1 << bits) - 1
    q = x.mul(peak).add_(0.5).floor_().clamp_(0, peak)[0].permute(1, 2, 0)
    if bits == 8:
        return np.ascontiguousarray(q.to(torch.uint8).cpu().numpy())
    return np.ascontiguousarray(q.to(torch.int32).cpu().numpy(), dtype=np.uint16)


def _fill_transparent(rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Give fully transparent pixels the colour of their nearest visible neighbours.

    Push-pull: average colour (weighted by alpha) over ever coarser 2x2 blocks until every block
    sees something, then fill each hole from the level above. Pixels with alpha > 0 are kept.
    """
    filled = _push_pull(rgb * alpha, alpha)
    return torch.where(alpha > 0, rgb, filled)


def _push_pull(weighted: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    own = weighted / weight.clamp_min(1e-12)
    h, w = weight.shape[-2:]
    if bool((weight > 0).all()) or (h == 1 and w == 1):
        return own
    k = (min(h, 2), min(w, 2))
    coarse = _push_pull(F.avg_pool2d(weighted, k, ceil_mode=True), F.avg_pool2d(weight, k, ceil_mode=True))
    up = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return torch.where(weight > 0, own, up)
