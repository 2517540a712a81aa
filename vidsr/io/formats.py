"""Which codec and pixel format the output gets when the user does not say.

The rule is "the same video, only larger": 10-bit stays 10-bit, gray stays gray, alpha
stays alpha, HEVC stays HEVC; everything else becomes H.264 in the input's chroma
format.
"""
from __future__ import annotations

import dataclasses

import av

from vidsr.errors import OptionError
from vidsr.io.encode import EncodeSettings
from vidsr.io.probe import VideoInfo

# Alpha-capable intra codecs, by the input codec they replace, with the pixel format they store.
_ALPHA_CODECS = {
    "png": ("png", "rgba"),
    "qtrle": ("qtrle", "argb"),
    "prores": ("prores_ks", "yuva444p10le"),
    "ffv1": ("ffv1", "yuva420p"),
}
_ALPHA_FALLBACK = {"mov": ("png", "rgba"), "mp4": ("png", "rgba"), "matroska": ("ffv1", "yuva420p"),
                   "webm": ("libvpx-vp9", "yuva420p")}


def encoder_formats(codec: str) -> list[str]:
    try:
        return [f.name for f in av.codec.Codec(codec, "w").video_formats or []]
    except Exception as exc:  # PyAV raises several types for unknown codecs
        raise OptionError(f"unknown or unavailable video encoder {codec!r}") from exc


def resolve_encoding(info: VideoInfo, settings: EncodeSettings, container_format: str) -> EncodeSettings:
    """Fill in codec and pixel format left as None, from the input; check explicit ones exist."""
    codec, pix_fmt = settings.codec, settings.pix_fmt
    if codec is None:
        if info.alpha:
            codec, alpha_fmt = _ALPHA_CODECS.get(info.codec) or _ALPHA_FALLBACK.get(container_format, ("png", "rgba"))
            pix_fmt = pix_fmt or alpha_fmt
        elif info.gray or info.codec == "hevc":
            codec = "libx265"
        else:
            codec = "libx264"
    supported = encoder_formats(codec)
    if pix_fmt is None:
        pix_fmt = _closest_format(info, supported)
    elif supported and pix_fmt not in supported:
        raise OptionError(f"{codec} cannot encode {pix_fmt}; it takes {', '.join(supported)}")
    return dataclasses.replace(settings, codec=codec, pix_fmt=pix_fmt)


def _closest_format(info: VideoInfo, supported: list[str]) -> str:
    deep = info.bits > 8
    wanted = info.pix_fmt.replace("yuvj", "yuv")  # full range is carried by the range tag instead
    candidates = [wanted]
    if info.gray:
        candidates += ["gray10le", "gray12le"] if deep else ["gray"]
    if info.alpha:
        candidates += ["yuva420p10le", "yuva444p10le", "rgba64be", "rgba64le"] if deep else ["yuva420p", "rgba", "argb"]
    candidates += ["yuv420p10le", "yuv444p10le"] if deep else ["yuv420p", "yuv444p"]
    for fmt in candidates:
        if not supported or fmt in supported:
            return fmt
    return supported[0]
