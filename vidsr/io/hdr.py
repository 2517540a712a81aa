"""HDR10 static metadata: read from the source's frames, handed to the encoder as its parameters.

The encoders take it as text (x265 `master-display`/`max-cll`, x264 `mastering-display`/`cll`)
in the units of the HEVC/AVC SEI messages: chromaticities in 1/50000, luminance in 1/10000 cd/m2.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import av

_MASTERING = "MASTERING_DISPLAY_METADATA"
_LIGHT = "CONTENT_LIGHT_LEVEL"


@dataclass(frozen=True)
class HdrMetadata:
    master_display: str | None = None   # "G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)"
    content_light: str | None = None    # "MaxCLL,MaxFALL"

    def encoder_params(self, codec: str | None) -> dict[str, str]:
        """Extra `x265-params` / `x264-params` entries for `codec` (empty for codecs that take none)."""
        if codec == "libx265":
            items = ["hdr10=1"]
            if self.master_display:
                items.append(f"master-display={self.master_display}")
            if self.content_light:
                items.append(f"max-cll={self.content_light}")
            return {"x265-params": ":".join(items)} if len(items) > 1 else {}
        if codec == "libx264":
            items = []
            if self.master_display:
                items.append(f"mastering-display={self.master_display}")
            if self.content_light:
                items.append(f"cll={self.content_light}")
            return {"x264-params": ":".join(items)} if items else {}
        return {}

    def __bool__(self) -> bool:
        return bool(self.master_display or self.content_light)


def read_hdr_metadata(frame: av.VideoFrame) -> HdrMetadata:
    master = light = None
    container = frame.side_data
    for entry in container:
        # PyAV <= 18 iterates SideData objects; PyAV 19 iterates their types, as a mapping's keys.
        side = entry if hasattr(entry, "type") else container[entry]
        kind = getattr(side.type, "name", str(side.type))
        data = bytes(side)
        if kind == _MASTERING and len(data) >= 88:
            master = _master_display(data)
        elif kind == _LIGHT and len(data) >= 8:
            max_cll, max_fall = struct.unpack_from("<II", data)
            light = f"{max_cll},{max_fall}"
    return HdrMetadata(master, light)


def _master_display(data: bytes) -> str | None:
    """AVMasteringDisplayMetadata: primaries r,g,b (x,y) and white point as AVRationals, then min/max luminance."""
    rationals = struct.unpack_from("<20i", data)
    has_primaries, has_luminance = struct.unpack_from("<ii", data, 80)
    if not (has_primaries and has_luminance):
        return None

    def value(i: int, unit: int) -> int:
        num, den = rationals[2 * i], rationals[2 * i + 1]
        return round(num * unit / den) if den else 0

    (rx, ry, gx, gy, bx, by, wx, wy) = (value(i, 50000) for i in range(8))
    lmin, lmax = value(8, 10000), value(9, 10000)
    return f"G({gx},{gy})B({bx},{by})R({rx},{ry})WP({wx},{wy})L({lmax},{lmin})"
