"""The network's RGB(A) -> the encoder's pixel format, on the device.

Doing this next to the network means the host gets yuv420p (half the bytes of RGB) and
runs no colour conversion of its own, which on a fast GPU is what keeps the encoder
fed. Formats without a device conversion here fall back to packed RGB(A) at the right
bit depth, converted by the encoder.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vidsr.io.color import ColorInfo
from vidsr.io.pixel_formats import RAW_LAYOUTS, RawLayout, has_alpha, sample_bits


@dataclass(frozen=True)
class DeviceFormatter:
    """Turns float RGB(A) NCHW in [0,1] into frames laid out as FFmpeg expects `pix_fmt`."""

    pix_fmt: str
    width: int
    height: int
    color: ColorInfo | None  # needed for the YUV/gray formats only

    @staticmethod
    def for_encoder(pix_fmt: str, width: int, height: int, color: ColorInfo | None,
                    alpha: bool = False) -> DeviceFormatter:
        """The device-side format to produce for an encoder wanting `pix_fmt`.

        `alpha` says the frames carry an alpha channel; it is kept whenever `pix_fmt` has one.
        """
        deep = sample_bits(pix_fmt) > 8
        if alpha and has_alpha(pix_fmt):
            fmt = "rgba64le" if deep else "rgba"
        elif pix_fmt in RAW_LAYOUTS and RAW_LAYOUTS[pix_fmt].kind != "rgba":
            fmt = pix_fmt
        else:
            fmt = "rgb48le" if deep else "rgb24"
        return DeviceFormatter(fmt, width, height, color)

    @property
    def layout(self) -> RawLayout:
        return RAW_LAYOUTS[self.pix_fmt]

    @property
    def kind(self) -> str:
        return self.layout.kind

    @property
    def bits(self) -> int:
        return self.layout.bits

    @property
    def dtype(self) -> torch.dtype:
        return torch.uint8 if self.bits == 8 else torch.uint16

    @property
    def channels_in(self) -> int:
        """Channels the formatter consumes: 4 when it keeps alpha."""
        return 4 if self.kind == "rgba" else 3

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame as PyAV's VideoFrame.from_ndarray takes it for this format."""
        return self.layout.frame_shape(self.width, self.height)

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        """float [N,C,H,W] in [0,1] (C = 3, or 4 with alpha) -> [N, *frame_shape] of `dtype`."""
        n = rgb.shape[0]
        top = (1 << self.bits) - 1
        if self.kind in ("rgb", "rgba"):
            return self._quantise(rgb[:, : self.channels_in].float() * top).permute(0, 2, 3, 1)
        y, cb, cr = _rgb_to_ycbcr(rgb[:, :3].float(), self.color, self.bits)
        if self.kind == "gray":
            return self._quantise(y)[:, 0]
        if self.kind == "yuv420":
            # Chroma sited at the centre of each 2x2 block (a box average), as JPEG/H.261 do.
            cb, cr = F.avg_pool2d(cb, 2), F.avg_pool2d(cr, 2)
            planes = [self._quantise(p).reshape(n, -1) for p in (y, cb, cr)]
            return torch.cat(planes, dim=1).reshape(n, *self.frame_shape)
        return self._quantise(torch.cat([y, cb, cr], dim=1))

    def _quantise(self, x: torch.Tensor) -> torch.Tensor:
        top = (1 << self.bits) - 1
        # uint16 tensors support few ops: round and clamp in int32, then narrow.
        return x.add(0.5).floor_().clamp_(0, top).to(torch.int32 if self.bits > 8 else torch.uint8).to(self.dtype)


def _rgb_to_ycbcr(rgb: torch.Tensor, color: ColorInfo | None,
                  bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Full-range RGB in [0,1] -> Y, Cb, Cr as code values of `bits` (float, not yet rounded)."""
    assert color is not None, "YUV output needs the colour matrix"
    kr, kb = color.coefficients.kr, color.coefficients.kb
    kg = 1.0 - kr - kb
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = kr * r + kg * g + kb * b
    cb = (b - y) / (2 * (1 - kb))
    cr = (r - y) / (2 * (1 - kr))
    unit = 1 << (bits - 8)  # 8-bit code values scaled up, as BT.709/BT.2020 define 10-bit levels
    mid = 128 * unit
    if color.full_range:
        top = (1 << bits) - 1
        return y * top, cb * top + mid, cr * top + mid
    return (y * 219 + 16) * unit, cb * 224 * unit + mid, cr * 224 * unit + mid
