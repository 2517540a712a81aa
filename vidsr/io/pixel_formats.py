"""Facts about FFmpeg pixel formats, and the raw frame layouts passed from the device to the encoder.

The one table of the layouts the device side produces (engine/device_formatter.py) and the
encoders accept as raw input (io/encode.py): both read it from here.
"""
from __future__ import annotations

from dataclasses import dataclass

import av


@dataclass(frozen=True)
class RawLayout:
    """How one raw frame is laid out: `kind` of planes and bits per sample."""

    kind: str   # "yuv420", "yuv444", "gray", "rgb" or "rgba"
    bits: int

    @property
    def bytes_per_pixel(self) -> float:
        samples = {"yuv420": 1.5, "yuv444": 3.0, "gray": 1.0, "rgb": 3.0, "rgba": 4.0}[self.kind]
        return samples * (1 if self.bits == 8 else 2)

    def frame_shape(self, width: int, height: int) -> tuple[int, ...]:
        """Shape of one frame as PyAV's VideoFrame.from_ndarray takes it."""
        h, w = height, width
        return {"yuv420": (h * 3 // 2, w), "yuv444": (3, h, w), "gray": (h, w), "rgb": (h, w, 3),
                "rgba": (h, w, 4)}[self.kind]


# Raw layouts produced on the device and fed to the encoders, by pixel format.
RAW_LAYOUTS = {
    "yuv420p": RawLayout("yuv420", 8), "yuv420p10le": RawLayout("yuv420", 10), "yuv444p": RawLayout("yuv444", 8),
    "gray": RawLayout("gray", 8), "gray10le": RawLayout("gray", 10),
    "rgb24": RawLayout("rgb", 8), "rgb48le": RawLayout("rgb", 16), "rgba": RawLayout("rgba", 8),
    "rgba64le": RawLayout("rgba", 16),
}


def packed_rgb_format(channels: int, deep: bool) -> str:
    """The packed RGB (3 channels) or RGBA (4) format, 8 or 16 bits per sample."""
    return {(3, False): "rgb24", (3, True): "rgb48le", (4, False): "rgba", (4, True): "rgba64le"}[(channels, deep)]


def is_packed_rgb(pix_fmt: str) -> bool:
    """Packed RGB(A) as the device side produces it."""
    return pix_fmt.startswith("rgb")


def sample_bits(pix_fmt: str) -> int:
    """Bits of the deepest component."""
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def has_alpha(pix_fmt: str) -> bool:
    fmt = av.VideoFormat(pix_fmt)
    return len(fmt.components) == 4 or pix_fmt.startswith(("ya", "gbrap", "argb", "abgr", "bgra", "rgba"))


def subsampled_chroma(pix_fmt: str) -> tuple[bool, bool]:
    """Whether chroma is subsampled (width, height); subsampling also forces an even size."""
    fmt = av.VideoFormat(pix_fmt)
    return fmt.chroma_width(64) < 64, fmt.chroma_height(64) < 64
