"""Which YUV<->RGB matrix and range a video uses, and how to tag the output.

Untagged video is common. Converting it with the wrong matrix shifts colours, and an
untagged *upscaled* output is worse: players guess the matrix from the frame size, so
a 640x360 source (BT.601 by convention) upscaled to 1280x720 would be shown as BT.709.
vidsr therefore decides the matrix once, converts with it both ways, and always tags
the output with what it used.
"""
from __future__ import annotations

from dataclasses import dataclass

import av

# FFmpeg's AVColorSpace values we map to swscale matrices (libswscale knows these).
_MATRIX_BY_AVCOL = {1: "ITU709", 5: "ITU601", 6: "SMPTE170M", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
# ffmpeg command-line / codec names for the tags.
_MATRIX_TAG = {"ITU709": "bt709", "ITU601": "bt470bg", "SMPTE170M": "smpte170m",
               "SMPTE240M": "smpte240m", "BT2020": "bt2020nc"}
_PRIMARIES_TAG = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020"}
_TRC_TAG = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
            13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}
_HD_HEIGHT = 720  # ITU-R BT.709 convention for untagged video, as FFmpeg and players use


@dataclass(frozen=True)
class ColorInfo:
    """Colour description of a video stream, resolved (no 'unspecified' left)."""

    matrix: str          # swscale matrix name, e.g. "ITU709"
    full_range: bool     # True for JPEG/full range, False for limited (16-235)
    primaries: int       # AVColorPrimaries value
    trc: int             # AVColorTransferCharacteristic value

    @property
    def matrix_tag(self) -> str:
        return _MATRIX_TAG[self.matrix]

    @property
    def range_tag(self) -> str:
        return "pc" if self.full_range else "tv"

    @property
    def primaries_tag(self) -> str:
        return _PRIMARIES_TAG.get(self.primaries, "bt709" if self.matrix == "ITU709" else "smpte170m")

    @property
    def trc_tag(self) -> str:
        return _TRC_TAG.get(self.trc, "bt709" if self.matrix == "ITU709" else "smpte170m")

    @property
    def av_matrix(self) -> int:
        """AVColorSpace value for tagging encoder contexts."""
        return {"ITU709": 1, "ITU601": 5, "SMPTE170M": 6, "SMPTE240M": 7, "BT2020": 9}[self.matrix]


def resolve_color(codec_context: av.codec.context.CodecContext, height: int, pix_fmt: str) -> ColorInfo:
    """Resolve a stream's colour tags, falling back to the convention for its size."""
    space = int(codec_context.colorspace or 2)
    matrix = _MATRIX_BY_AVCOL.get(space) or ("ITU709" if height >= _HD_HEIGHT else "SMPTE170M")
    rng = int(codec_context.color_range or 0)
    full = rng == 2 or (rng == 0 and pix_fmt.startswith("yuvj"))
    default_prim = 1 if matrix == "ITU709" else 6
    primaries = int(codec_context.color_primaries or 2)
    trc = int(codec_context.color_trc or 2)
    return ColorInfo(
        matrix=matrix,
        full_range=full,
        primaries=primaries if primaries != 2 else default_prim,
        trc=trc if trc != 2 else default_prim,
    )
