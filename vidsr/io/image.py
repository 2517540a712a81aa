"""Still images in and out, kept as they are: gray stays gray, alpha stays, 16 bits stay 16 bits.

Reading goes through Pillow (EXIF orientation applied on the way in), except 16-bit colour:
Pillow opens 16-bit RGB/RGBA/gray+alpha PNGs and TIFFs as 8-bit modes without a word, so their
samples are decoded with PyAV (FFmpeg) and Pillow only supplies the metadata (orientation, ICC
profile). A 16-bit colour TIFF with an orientation tag other than 1 is the exception: FFmpeg
ignores the tag and Pillow's own handling of it is not one to copy, so it is read by Pillow, at
8 bits, with a warning. 16-bit gray (I;16) stays with Pillow, which keeps its 16 bits.
Writing goes through Pillow, except 16-bit samples, which Pillow cannot write in colour: those
are encoded with FFmpeg's PNG or TIFF encoder.

Not carried over: EXIF (its orientation is applied to the pixels instead, so nothing is left to
rotate twice), DPI, gamma/chromaticity chunks. The ICC profile is carried wherever the writer can
embed one (every Pillow format here, and 16-bit PNG), so colour-managed images keep their colours.
"""
from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidsr.errors import InputError, OptionError
from vidsr.io.probe import check_input_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageFormat:
    """An output format and what it can hold."""

    name: str                # Pillow's format name
    alpha: bool              # holds transparency
    max_bits: int            # deepest samples it holds (8 or 16)
    gray: bool = True        # holds one-channel images (else they are widened to RGB)
    save_options: dict[str, Any] = field(default_factory=dict)


_FORMATS = {
    ".jpg": ImageFormat("JPEG", alpha=False, max_bits=8, save_options={"quality": 95, "subsampling": 0}),
    ".jpeg": ImageFormat("JPEG", alpha=False, max_bits=8, save_options={"quality": 95, "subsampling": 0}),
    ".png": ImageFormat("PNG", alpha=True, max_bits=16),
    ".webp": ImageFormat("WEBP", alpha=True, max_bits=8, gray=False, save_options={"lossless": True}),
    # Pillow writes 32-bit BMPs, but reads them back (as most programs do) without alpha.
    ".bmp": ImageFormat("BMP", alpha=False, max_bits=8),
    ".tif": ImageFormat("TIFF", alpha=True, max_bits=16),
    ".tiff": ImageFormat("TIFF", alpha=True, max_bits=16),
}

# What vidsr reads as a still image is what it can write back: the one list of image suffixes.
IMAGE_SUFFIXES = frozenset(_FORMATS)

# 16-bit writers (FFmpeg encoders), by channel count: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
_DEEP_PIX_FMTS = {
    "PNG": ("png", {1: "gray16be", 2: "ya16be", 3: "rgb48be", 4: "rgba64be"}),
    # Gray+alpha goes as RGBA: FFmpeg's ya16le TIFFs are ones Pillow (and others) cannot open.
    "TIFF": ("tiff", {1: "gray16le", 2: "rgba64le", 3: "rgb48le", 4: "rgba64le"}),
}
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"})
_ORIENTATION_TAG = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class StillImage:
    """Decoded pixels, upright (EXIF orientation applied), at the file's own bit depth."""

    pixels: np.ndarray          # [H, W, C] uint8 or uint16; C: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
    mode: str                   # what the file held, for messages, e.g. "RGBA", "RGB 16-bit"
    icc_profile: bytes | None = None

    @property
    def gray(self) -> bool:
        return self.pixels.shape[2] in (1, 2)

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] in (2, 4)

    @property
    def bits(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def color(self) -> np.ndarray:
        """[H, W, 1 or 3], without the alpha channel."""
        return self.pixels[..., :-1] if self.has_alpha else self.pixels

    @property
    def alpha(self) -> np.ndarray | None:
        """[H, W], or None for opaque images."""
        return self.pixels[..., -1] if self.has_alpha else None


def is_image(path: Path) -> bool:
    """Whether vidsr takes `path` for a still image (by its suffix)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_format(path: Path) -> ImageFormat:
    """The format a file named `path` is written in; OptionError for suffixes vidsr cannot write."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OptionError(f"cannot write images as {path.suffix or 'a file without a suffix'!r}; "
                          f"use one of {', '.join(_FORMATS)}")
    return fmt


def read_image(path: Path) -> StillImage:
    """Decode `path` upright, keeping gray, alpha and 16-bit samples as the file has them."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    check_input_file(path)
    try:
        with Image.open(path) as im:
            icc = im.info.get("icc_profile") or None
            if _deep_colour(im, path) and (deep := _read_deep(path)) is not None:
                # For a PNG this may load the 8-bit pixels too, to find an eXIf chunk after them.
                orientation = im.getexif().get(_ORIENTATION_TAG, 1)
                pixels, mode = deep
                return StillImage(_orient(pixels, orientation), mode, icc)
            im.load()
            _warn_if_shallower(im, path)
            im = ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc
    return StillImage(_pixels_of(im), im.mode, icc)


def read_rgb8(path: Path) -> np.ndarray:
    """[H, W, 3] uint8 RGB of an image file, as training and `vidsr degrade` look at pictures: gray
    widened to RGB, 16-bit samples rounded to 8 bits, transparency composited over white."""
    pixels = read_image(path).pixels
    if pixels.dtype == np.uint16:
        pixels = np.round(pixels / 257.0).astype(np.uint8)
    if pixels.shape[2] in (2, 4):
        color, alpha = pixels[..., :-1].astype(np.float32), pixels[..., -1:].astype(np.float32) / 255
        pixels = np.round(color * alpha + 255 * (1 - alpha)).astype(np.uint8)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels)


def write_image(path: Path, pixels: np.ndarray, *, format_path: Path, icc_profile: bytes | None = None) -> None:
    """Write [H, W, C] uint8/uint16 `pixels` (C as in StillImage) to `path`, in `format_path`'s format.

    `format_path` names the format so that a temporary name can be written. The pixels must be
    something the format holds (see image_format): no alpha for JPEG/BMP, 16 bits only for PNG/TIFF.
    """
    from PIL import Image

    fmt = image_format(format_path)
    channels = pixels.shape[2]
    if channels in (2, 4) and not fmt.alpha:
        raise OptionError(f"{fmt.name} cannot hold transparency")
    if channels < 3 and not fmt.gray:
        pixels = pixels[..., [0, 0, 0, 1] if channels == 2 else [0, 0, 0]]
        channels = pixels.shape[2]
        if icc_profile and icc_profile[16:20] == b"GRAY":  # the profile's colour space no longer fits
            icc_profile = None
    if pixels.dtype == np.uint16:
        if fmt.max_bits < 16:
            raise OptionError(f"{fmt.name} cannot hold 16-bit samples")
        if channels == 1 and fmt.name == "TIFF":
            pass  # Pillow writes 16-bit gray TIFFs itself (I;16), below
        else:
            _write_deep(path, pixels, fmt, icc_profile)
            return
    if channels == 1:
        im = Image.fromarray(np.ascontiguousarray(pixels[..., 0]))  # L, or I;16 for uint16
    else:
        im = Image.fromarray(np.ascontiguousarray(pixels), {2: "LA", 3: "RGB", 4: "RGBA"}[channels])
    opts = dict(fmt.save_options)
    if icc_profile and fmt.name != "BMP":
        opts["icc_profile"] = icc_profile
    im.save(path, format=fmt.name, **opts)


# -- reading -------------------------------------------------------------------------------


def _pixels_of(im: Any) -> np.ndarray:
    """A loaded Pillow image -> [H, W, C] as StillImage holds them."""
    mode = im.mode
    bands = im.getbands()
    has_alpha = "A" in bands or "a" in bands or (mode in ("P", "L", "RGB") and "transparency" in im.info)
    if mode in _GRAY_MODES:
        if mode.startswith("I"):
            # 16-bit gray (I;16*), or 32-bit ints as Pillow once gave 16-bit PNGs: 0..65535.
            return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)[..., None]
        if has_alpha:
            return np.asarray(im.convert("LA")).copy()
        return np.asarray(im.convert("L")).copy()[..., None]
    return np.asarray(im.convert("RGBA" if has_alpha else "RGB")).copy()


def _sample_bits(im: Any, path: Path) -> int:
    """Bits per sample as stored in the file (Pillow's mode may say fewer)."""
    if im.format == "PNG":
        return _png_bit_depth(path) or 8
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, 8)
        return max(bits) if isinstance(bits, (tuple, list)) else int(bits)
    return 16 if im.mode.startswith("I;16") else 8


def _deep_colour(im: Any, path: Path) -> bool:
    """16-bit samples that Pillow would narrow to 8 bits, in a file FFmpeg can decode as is."""
    if im.mode.startswith("I") or _sample_bits(im, path) != 16:
        return False
    return im.format == "PNG" or (im.format == "TIFF" and im.tag_v2.get(_ORIENTATION_TAG, 1) == 1)


def _warn_if_shallower(im: Any, path: Path) -> None:
    """Say so when Pillow read deeper samples than it kept."""
    bits = _sample_bits(im, path)
    if bits > 8 and not im.mode.startswith("I"):
        log.warning("%s: %d-bit %s image read as 8 bits", path.name, bits, im.mode)


def _png_bit_depth(path: Path) -> int | None:
    """Bit depth from a PNG's IHDR, or None if `path` is not a PNG."""
    with path.open("rb") as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24]


def _read_deep(path: Path) -> tuple[np.ndarray, str] | None:
    """16-bit samples decoded by FFmpeg (orientation not applied), or None if it cannot (Pillow then reads)."""
    import av

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration, IndexError) as exc:
        log.warning("%s: could not decode at 16 bits (%s); reading 8-bit samples", path.name, exc)
        return None
    comps = frame.format.components
    alpha = any(c.is_alpha for c in comps)
    gray = sum(not c.is_alpha for c in comps) == 1 and not frame.format.is_rgb
    # Gray formats widen to RGB exactly (each sample copied), so one conversion serves all four.
    rgb = frame.to_ndarray(format="rgba64le" if alpha else "rgb48le").astype(np.uint16, copy=False)
    if gray:
        rgb = rgb[..., [0, 3]] if alpha else rgb[..., :1]
    mode = ("LA" if alpha else "L") if gray else ("RGBA" if alpha else "RGB")
    return np.ascontiguousarray(rgb), f"{mode} 16-bit"


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to [H, W, C] pixels, as ImageOps.exif_transpose does."""
    ops = {
        2: lambda a: a[:, ::-1],                        # mirror left-right
        3: lambda a: a[::-1, ::-1],                     # rotate 180
        4: lambda a: a[::-1],                           # mirror top-bottom
        5: lambda a: a.transpose(1, 0, 2),              # transpose
        6: lambda a: np.rot90(a, -1),                   # rotate 90 clockwise
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # transverse
        8: lambda a: np.rot90(a, 1),                    # rotate 90 counter-clockwise
    }
    op = ops.get(orientation)
    return pixels if op is None else np.ascontiguousarray(op(pixels))


# -- writing -------------------------------------------------------------------------------


def _write_deep(path: Path, pixels: np.ndarray, fmt: ImageFormat, icc_profile: bytes | None) -> None:
    """16-bit samples through FFmpeg's PNG/TIFF encoder (Pillow has no 16-bit colour modes)."""
    import av

    codec, pix_fmts = _DEEP_PIX_FMTS[fmt.name]
    pix_fmt = pix_fmts[pixels.shape[2]]
    if pixels.shape[2] == 2 and pix_fmt.startswith("rgba"):
        pixels = pixels[..., [0, 0, 0, 1]]
    h, w, channels = pixels.shape
    frame = av.VideoFrame(w, h, pix_fmt)
    plane = frame.planes[0]
    row = w * channels * 2
    buf = np.zeros(plane.buffer_size, np.uint8)
    rows = buf[: h * plane.line_size].reshape(h, plane.line_size)
    samples = np.ascontiguousarray(pixels, dtype=">u2" if pix_fmt.endswith("be") else "<u2")
    rows[:, :row] = samples.view(np.uint8).reshape(h, row)
    plane.update(buf.tobytes())
    frame.pts = 0
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, pix_fmt
    ctx.time_base = Fraction(1, 1)
    ctx.sample_aspect_ratio = Fraction(1, 1)  # square pixels (FFmpeg writes 0:1 otherwise)
    data = b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])
    if icc_profile:
        if codec == "png":
            data = _with_png_chunk(data, b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile))
        else:
            log.warning("%s: the ICC profile is not carried into 16-bit TIFF output", path.name)
    path.write_bytes(data)


def _with_png_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    """Insert a chunk right after IHDR (where iCCP must come: before PLTE and IDAT)."""
    end_of_ihdr = len(_PNG_SIGNATURE) + 8 + 13 + 4
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]
