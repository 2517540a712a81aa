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

from vidsr.io.pixel_formats import subsampled_chroma


@dataclass(frozen=True)
class Matrix:
    """One YUV<->RGB matrix: how it is tagged and named, and its luma weights."""

    av: int      # AVColorSpace value it is tagged with
    tag: str     # ffmpeg's name for that tag (codec option / command line)
    sws: str     # the name ffmpeg's scale filter takes for it
    kr: float    # luma weight of red
    kb: float    # luma weight of blue


# Every matrix vidsr resolves to, by swscale name: the one colour-matrix table.
MATRICES = {
    "ITU709": Matrix(1, "bt709", "bt709", 0.2126, 0.0722),
    "ITU601": Matrix(5, "bt470bg", "bt601", 0.299, 0.114),
    "SMPTE170M": Matrix(6, "smpte170m", "smpte170m", 0.299, 0.114),
    "SMPTE240M": Matrix(7, "smpte240m", "smpte240m", 0.212, 0.087),
    "BT2020": Matrix(9, "bt2020nc", "bt2020", 0.2627, 0.0593),
}
# FFmpeg's AVColorSpace values we map to those (BT.2020 constant luminance, 10, decodes with the same weights).
_MATRIX_BY_AVCOL = {m.av: name for name, m in MATRICES.items()} | {10: "BT2020"}
# BT.601 luma weights (R, G, B) as Pillow's convert("L") uses them: what "the brightness" of RGB means here.
LUMA_601 = (0.299, 0.587, 0.114)
# ffmpeg names of AVColorPrimaries and AVColorTransferCharacteristic values.
_PRIMARIES_TAG = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
                  10: "smpte428", 11: "smpte431", 12: "smpte432"}
_TRC_TAG = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
            11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
            16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
_AV_PRIMARIES = {tag: value for value, tag in _PRIMARIES_TAG.items()}
_AV_TRC = {tag: value for value, tag in _TRC_TAG.items()}


@dataclass(frozen=True)
class ColorInfo:
    """Colour description of a video stream, resolved (no 'unspecified' left)."""

    matrix: str          # swscale matrix name, e.g. "ITU709"
    full_range: bool     # True for JPEG/full range, False for limited (16-235)
    primaries: int       # AVColorPrimaries value
    trc: int             # AVColorTransferCharacteristic value

    @property
    def coefficients(self) -> Matrix:
        return MATRICES[self.matrix]

    @property
    def matrix_tag(self) -> str:
        return MATRICES[self.matrix].tag

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
        return MATRICES[self.matrix].av


def is_hd(width: int, height: int) -> bool:
    """The players' rule for untagged video: BT.709 when width >= 1280 or height > 576, else BT.601.

    This is mpv's `mp_csp_guess_colorspace` (video/csputils.c); VLC and FFmpeg-based players
    guess the same way. Going by height alone (>= 720) would treat a 1280x536 scope film as
    BT.601 while every player shows it as BT.709.
    """
    return width >= 1280 or height > 576


def guess_primaries(width: int, height: int) -> int:
    """AVColorPrimaries for untagged video, by mpv's `mp_csp_guess_primaries` (video/csputils.c):
    HD is BT.709; 576 lines PAL (BT.470BG); 480/486 lines NTSC (SMPTE 170M); anything else BT.709."""
    if is_hd(width, height):
        return 1
    return {576: 5, 480: 6, 486: 6}.get(height, 1)


def resolve_color(codec_context: av.codec.context.CodecContext, width: int, height: int,
                  pix_fmt: str) -> ColorInfo:
    """Resolve a stream's colour tags, falling back to the players' convention for its size.

    RGB video (an RGB pixel format, tagged 0 or not) needs no matrix or range to decode; the
    ones chosen here are only used if the output is YUV (then limited range, as usual).
    Outputs in an RGB format are tagged RGB whatever this says (see output_tags).
    """
    space = codec_context.colorspace if codec_context is not None else None
    space = 2 if space is None else int(space)
    # The RGB tag (0) means something only on RGB pixels; on YUV it is a mis-tag, read as untagged.
    rgb = _is_rgb_format(pix_fmt)
    matrix = _MATRIX_BY_AVCOL.get(space) or ("ITU709" if is_hd(width, height) else "SMPTE170M")
    rng = int(codec_context.color_range or 0) if codec_context is not None else 0
    # RGB decodes the same whatever its range tag; converted to YUV it takes the usual limited range.
    full = not rgb and (rng == 2 or (rng == 0 and pix_fmt.startswith("yuvj")))
    primaries = int(codec_context.color_primaries or 2) if codec_context is not None else 2
    if primaries in (0, 2):
        primaries = guess_primaries(width, height)
    trc = int(codec_context.color_trc or 2) if codec_context is not None else 2
    if trc in (0, 2):  # BT.709 and SMPTE 170M name the same curve; tag the one that goes with the primaries
        trc = 1 if primaries == 1 else 6
    return ColorInfo(matrix=matrix, full_range=full, primaries=primaries, trc=trc)


def _is_rgb_format(pix_fmt: str) -> bool:
    try:
        return av.VideoFormat(pix_fmt).is_rgb
    except ValueError:
        return False


@dataclass(frozen=True)
class OutputTags:
    """What an encoded stream in one pixel format says about its colour, for both encoder back ends."""

    matrix: str                  # ffmpeg name: "rgb" for RGB formats, else the matrix used
    av_matrix: int               # AVColorSpace
    full_range: bool
    primaries: str
    av_primaries: int
    trc: str
    av_trc: int
    chroma_location: str | None  # ffmpeg name; None where chroma is not subsampled

    @property
    def range_tag(self) -> str:
        return "pc" if self.full_range else "tv"


def output_tags(color: ColorInfo, pix_fmt: str) -> OutputTags:
    """Tags for video encoded as `pix_fmt` from frames converted with `color`.

    RGB formats are tagged RGB (and full range), so RGB stays RGB-tagged rather than
    carrying a YUV matrix it was never converted with. Subsampled chroma is tagged as
    sited at the centre of each 2x2 (or 2x1) block: that is what both conversions vidsr
    uses produce, the box average of the device's 4:2:0 path (engine/device_formatter.py) and
    swscale's default siting (asked for explicitly in the ffmpeg process encoder), while
    an untagged stream would be read as left-sited by decoders.
    """
    fmt = av.VideoFormat(pix_fmt)
    rgb = fmt.is_rgb
    subsampled = not rgb and len(fmt.components) >= 3 and any(subsampled_chroma(pix_fmt))
    return OutputTags(
        matrix="rgb" if rgb else color.matrix_tag,
        av_matrix=0 if rgb else color.av_matrix,
        full_range=rgb or color.full_range,
        primaries=color.primaries_tag,
        av_primaries=_AV_PRIMARIES[color.primaries_tag],
        trc=color.trc_tag,
        av_trc=_AV_TRC[color.trc_tag],
        chroma_location="center" if subsampled else None,
    )
