"""RGB -> the encoder's pixel format, on the device.

Doing this next to the network means the host gets yuv420p (half the bytes of RGB) and
runs no colour conversion of its own, which on a fast GPU is what keeps the encoder fed.
Formats without a device conversion here fall back to rgb24, converted by the encoder.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vidsr.io.color import ColorInfo

# Luma weights (Kr, Kb) of each matrix vidsr resolves to (see io/color.py).
_KR_KB = {
    "ITU709": (0.2126, 0.0722),
    "ITU601": (0.299, 0.114),
    "SMPTE170M": (0.299, 0.114),
    "SMPTE240M": (0.212, 0.087),
    "BT2020": (0.2627, 0.0593),
}
DEVICE_FORMATS = ("yuv420p", "yuv444p", "rgb24")


@dataclass(frozen=True)
class DeviceFormatter:
    """Turns float RGB NCHW in [0,1] into uint8 frames laid out as FFmpeg expects `pix_fmt`."""

    pix_fmt: str
    width: int
    height: int
    color: ColorInfo | None  # needed for the YUV formats only

    @staticmethod
    def for_encoder(pix_fmt: str, width: int, height: int, color: ColorInfo) -> DeviceFormatter:
        """The device-side format to produce for an encoder wanting `pix_fmt` (rgb24 if unsupported here)."""
        fmt = pix_fmt if pix_fmt in DEVICE_FORMATS else "rgb24"
        return DeviceFormatter(fmt, width, height, color)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame as PyAV's VideoFrame.from_ndarray takes it for this format."""
        if self.pix_fmt == "yuv420p":
            return (self.height * 3 // 2, self.width)
        if self.pix_fmt == "yuv444p":
            return (3, self.height, self.width)
        return (self.height, self.width, 3)

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        """float [N,3,H,W] in [0,1] -> uint8 [N, *frame_shape]."""
        if self.pix_fmt == "rgb24":
            return _to_uint8(rgb * 255).permute(0, 2, 3, 1)
        assert self.color is not None, "YUV output needs the colour matrix"
        y, cb, cr = _rgb_to_ycbcr(rgb.float(), self.color)
        if self.pix_fmt == "yuv420p":
            n = rgb.shape[0]
            # Chroma sited at the centre of each 2x2 block (a box average), as JPEG/H.261 do.
            cb = F.avg_pool2d(cb, 2)
            cr = F.avg_pool2d(cr, 2)
            return torch.cat([_to_uint8(y).reshape(n, -1), _to_uint8(cb).reshape(n, -1),
                              _to_uint8(cr).reshape(n, -1)], dim=1).reshape(n, *self.frame_shape)
        return _to_uint8(torch.cat([y, cb, cr], dim=1))


def _rgb_to_ycbcr(rgb: torch.Tensor, color: ColorInfo) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Full-range RGB in [0,1] -> Y, Cb, Cr in 8-bit code values (float, not yet rounded)."""
    kr, kb = _KR_KB[color.matrix]
    kg = 1.0 - kr - kb
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = kr * r + kg * g + kb * b
    cb = (b - y) / (2 * (1 - kb))
    cr = (r - y) / (2 * (1 - kr))
    if color.full_range:
        return y * 255, cb * 255 + 128, cr * 255 + 128
    return y * 219 + 16, cb * 224 + 128, cr * 224 + 128


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.add(0.5).floor_().clamp_(0, 255).to(torch.uint8)
