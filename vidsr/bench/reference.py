"""The baseline: a frame-by-frame loop in the style of Real-ESRGAN's inference_realesrgan_video.py.

Batch 1, uint8 -> float32 on the host, a synchronous copy each way, the result turned
back into a numpy image every frame, and a Lanczos resize on the CPU for -s values
that differ from the network's scale. Kept deliberately naive: it is what vidsr is
measured against, not a code path users run.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch


def _cpu_resize() -> Callable[[np.ndarray, int, int], np.ndarray]:
    try:
        import cv2

        return lambda img, w, h: cv2.resize(img, (w, h), interpolation=cv2.INTER_LANCZOS4)
    except ImportError:
        from PIL import Image

        return lambda img, w, h: np.asarray(Image.fromarray(img).resize((w, h), Image.LANCZOS))


def reference_loop(frames: Iterable[np.ndarray], module: torch.nn.Module, device: torch.device,
                   dtype: torch.dtype, out_size: tuple[int, int], native_scale: int,
                   write: Callable[[np.ndarray], None]) -> int:
    resize = _cpu_resize()
    n = 0
    with torch.no_grad():
        for img in frames:
            x = torch.from_numpy(np.transpose(img.astype(np.float32) / 255.0, (2, 0, 1))).unsqueeze(0)
            x = x.to(device).to(dtype)
            y = module(x).squeeze(0).float().cpu().clamp_(0, 1).numpy()
            out = (np.transpose(y, (1, 2, 0)) * 255.0).round().astype(np.uint8)
            h, w = img.shape[:2]
            if out_size != (w * native_scale, h * native_scale):
                out = resize(out, *out_size)
            write(out[None])
            n += 1
    return n
