"""Which codec and pixel format the output gets when the user does not say.

The rule is "the same video, only larger": 10-bit stays 10-bit, gray stays gray, alpha
stays alpha, HEVC stays HEVC; everything else becomes H.264 in the input's chroma
format.
"""
from __future__ import annotations

import dataclasses
import functools
import io

import av

from vidsr.errors import OptionError
from vidsr.io.encode import EncodeSettings
from vidsr.io.mux import FORMAT_BY_SUFFIX
from vidsr.io.probe import VideoInfo

# Alpha-capable intra codecs, by the input codec they replace, with the pixel format they store.
_ALPHA_CODECS = {
    "png": ("png", "rgba"),
    "qtrle": ("qtrle", "argb"),
    "prores": ("prores_ks", "yuva444p10le"),
    "ffv1": ("ffv1", "yuva420p"),
}
# Where the input's alpha codec cannot go into the output container: one that can, by container.
# FFV1 keeps alpha losslessly in Matroska (as RGBA for RGB sources, see _closest_format).
_ALPHA_FALLBACK = {"mov": "png", "mp4": "png", "matroska": "ffv1", "webm": "libvpx-vp9"}
# Default encoders for containers that cannot hold H.264/HEVC.
_CONTAINER_DEFAULT = {"webm": "libvpx-vp9"}


def encoder_formats(codec: str) -> list[str]:
    try:
        return [f.name for f in av.codec.Codec(codec, "w").video_formats or []]
    except Exception as exc:  # PyAV raises several types for unknown codecs
        raise OptionError(f"unknown or unavailable video encoder {codec!r}") from exc


@functools.lru_cache(maxsize=16)
def container_codecs(container_format: str) -> frozenset[str]:
    """Codec names (e.g. "h264", "png") the muxer `container_format` can store."""
    out = av.open(io.BytesIO(), mode="w", format=container_format)
    try:
        return frozenset(out.supported_codecs)
    finally:
        try:
            out.close()
        except av.error.FFmpegError:  # nothing was written; only the answer matters
            pass


def container_holds(container_format: str, encoder: str) -> bool:
    return av.codec.Codec(encoder, "w").canonical_name in container_codecs(container_format)


def resolve_encoding(info: VideoInfo, settings: EncodeSettings, container_format: str) -> EncodeSettings:
    """Fill in codec and pixel format left as None, from the input and the container; check explicit ones."""
    codec, pix_fmt = settings.codec, settings.pix_fmt
    if codec is None:
        if info.alpha:
            own_codec, own_fmt = _ALPHA_CODECS.get(info.codec, (None, None))
            if own_codec is not None and container_holds(container_format, own_codec):
                codec, pix_fmt = own_codec, pix_fmt or own_fmt
            elif container_format in _ALPHA_FALLBACK:
                codec = _ALPHA_FALLBACK[container_format]
            else:
                raise OptionError(f"{info.path.name} has alpha, which vidsr keeps, but vidsr knows no alpha codec "
                                  f"for {container_format}; write a .mkv or .mov instead")
        elif info.gray or info.codec == "hevc":
            codec = "libx265"
        else:
            codec = "libx264"
        if not container_holds(container_format, codec):
            codec = _CONTAINER_DEFAULT.get(container_format, codec)
    supported = encoder_formats(codec)
    if not container_holds(container_format, codec):
        raise OptionError(f"{codec} cannot go into {container_format}; {_where(codec)}")
    if pix_fmt is None:
        pix_fmt = _closest_format(info, supported)
    elif supported and pix_fmt not in supported:
        raise OptionError(f"{codec} cannot encode {pix_fmt}; it takes {', '.join(supported)}")
    return dataclasses.replace(settings, codec=codec, pix_fmt=pix_fmt)


def _where(codec: str) -> str:
    suffixes = sorted({s for s, fmt in FORMAT_BY_SUFFIX.items() if container_holds(fmt, codec)})
    if not suffixes:
        return "no output container vidsr writes can hold it"
    return "write " + " or ".join(suffixes) + " instead"


def _closest_format(info: VideoInfo, supported: list[str]) -> str:
    deep = info.bits > 8
    wanted = info.pix_fmt.replace("yuvj", "yuv")  # full range is carried by the range tag instead
    rgb = av.VideoFormat(info.pix_fmt).is_rgb
    candidates = [wanted]
    if info.gray:
        candidates += ["gray10le", "gray12le"] if deep else ["gray"]
    if info.alpha and rgb:  # RGBA stays RGB where the codec can: no matrix, no chroma subsampling
        candidates += ["rgba64le", "rgba64be", "gbrap16le", "gbrap12le", "gbrap10le"] if deep else [
            "rgba", "bgra", "argb", "gbrap"]
    if info.alpha:
        candidates += ["yuva420p10le", "yuva444p10le", "rgba64be", "rgba64le"] if deep else ["yuva420p", "rgba", "argb"]
    if rgb:  # RGB has full-resolution colour: the closest YUV is 4:4:4
        candidates += ["gbrp10le", "gbrp16le", "yuv444p10le"] if deep else ["gbrp", "bgr0", "yuv444p"]
    candidates += ["yuv420p10le", "yuv444p10le"] if deep else ["yuv420p", "yuv444p"]
    for fmt in candidates:
        if not supported or fmt in supported:
            return fmt
    return supported[0]
