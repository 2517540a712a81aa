"""Contact sheets: degraded draws side by side, each labelled with its parameters.

The only module of the package that needs PIL.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from vidsr.degrade.codec import CodecParams, MotionParams
from vidsr.degrade.high_order import FinalParams, OrderParams, SampleParams
from vidsr.degrade.kernels import KernelParams

_KIND_LABEL = {"iso": "iso", "aniso": "aniso", "generalized_iso": "gen-iso", "generalized_aniso": "gen-aniso",
               "plateau_iso": "plat-iso", "plateau_aniso": "plat-aniso", "sinc": "sinc", "pulse": "none"}
_CODEC_LABEL = {"libx264": "x264", "libx265": "x265", "mpeg4": "mpeg4", "libvpx-vp9": "vp9"}


def describe_kernel(k: KernelParams | None) -> str:
    if k is None or k.kind == "pulse":
        return "none"
    name = f"{_KIND_LABEL[k.kind]} k{k.size}"
    if k.kind == "sinc":
        assert k.omega is not None
        return f"{name} w{k.omega / math.pi:.2f}pi"
    assert k.sigma_x is not None
    if k.kind.endswith("aniso"):
        assert k.theta is not None
        name += f" s{k.sigma_x:.1f}/{k.sigma_y:.1f} r{math.degrees(k.theta):.0f}"
    else:
        name += f" s{k.sigma_x:.2f}"
    if k.beta is not None:
        name += f" b{k.beta:.2f}"
    return name


def describe_codec(c: CodecParams) -> str:
    rate = f"crf {c.crf:.1f}" if c.rate_control == "crf" else f"{c.bitrate_bpp:.2f} bpp"
    if c.codec == "mpeg4" and c.rate_control == "crf":
        rate = f"q {c.crf:.0f}"
    parts = [_CODEC_LABEL.get(c.codec, c.codec), rate]
    if c.preset:
        parts.append(c.preset)
    parts.append(f"g{c.gop} b{c.bframes}")
    return " ".join(parts)


def _describe_order(tag: str, o: OrderParams | None) -> list[str]:
    if o is None:
        return [f"{tag} skipped"]
    noise = f"{'gauss' if o.noise.kind == 'gaussian' else 'poisson'} {o.noise.level:.2f}"
    noise += " gray" if o.noise.gray else ""
    resize = f"{o.resize.direction} x{o.resize.factor:.2f} {o.resize.mode}"
    second = f"{tag} {resize}, {noise}"
    if o.jpeg_quality is not None:
        second += f", q{o.jpeg_quality}"
    return [f"{tag} blur {describe_kernel(o.kernel)}", second]


def _describe_final(f: FinalParams, codec: CodecParams | None, place: str | None) -> list[str]:
    resize = f"resize {f.mode}"
    if f.sinc.kind != "pulse":
        resize += f" + {describe_kernel(f.sinc)}"
    squeeze = f"jpeg q{f.jpeg_quality}" if f.jpeg_quality is not None else "codec"
    order = f"{resize} > {squeeze}" if f.resize_first else f"{squeeze} > {resize}"
    lines = [f"F {order}"]
    if codec is not None:
        lines.append(f"V {describe_codec(codec)}" + (" (after F)" if place == "end" else ""))
    return lines


def _describe_motion(m: MotionParams) -> str:
    return f"M pan {math.hypot(m.dx, m.dy):.2f}px/f zoom {m.zoom * 100:+.2f}% ref {m.ref + 1}/{m.frames}"


def describe(params: SampleParams) -> list[str]:
    """Short text lines naming every drawn parameter of one sample, stage by stage."""
    lines = _describe_order("1", params.first) + _describe_order("2", params.second)
    lines += _describe_final(params.final, params.codec, params.codec_place)
    if params.motion is not None:
        lines.append(_describe_motion(params.motion))
    return lines


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def to_image(x: torch.Tensor, size: tuple[int, int] | None = None) -> Image.Image:
    """``[3, H, W]`` float [0, 1] -> RGB image, enlarged with nearest neighbour to ``size`` (w, h)."""
    arr = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    img = Image.fromarray(arr, "RGB")
    if size is not None and img.size != size:
        img = img.resize(size, Image.Resampling.NEAREST)
    return img


def contact_sheet(tiles: Sequence[torch.Tensor], captions: Sequence[Sequence[str]], *, columns: int = 4,
                  tile_size: tuple[int, int] | None = None, font_size: int = 11) -> Image.Image:
    """Lay out ``[3, h, w]`` tiles in a grid with captions under each.

    Tiles are shown at ``tile_size`` (w, h), enlarged with nearest neighbour so that every
    low-resolution pixel stays visible as a block; default: the largest tile's size.
    """
    if len(tiles) != len(captions):
        raise ValueError(f"{len(tiles)} tiles but {len(captions)} captions")
    if not tiles:
        raise ValueError("no tiles")
    if tile_size is None:
        tile_size = (max(t.shape[-1] for t in tiles), max(t.shape[-2] for t in tiles))
    font = _font(font_size)
    line_h = font_size + 3
    pad = 6
    caption_h = max(len(c) for c in captions) * line_h + pad
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max((measure.textlength(line, font=font) for c in captions for line in c), default=0)
    cell_w = max(tile_size[0], math.ceil(text_w)) + 2 * pad
    cell_h = tile_size[1] + caption_h + 2 * pad
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, (tile, caption) in enumerate(zip(tiles, captions)):
        x0, y0 = (i % columns) * cell_w + pad, (i // columns) * cell_h + pad
        sheet.paste(to_image(tile, tile_size), (x0, y0))
        for j, line in enumerate(caption):
            draw.text((x0, y0 + tile_size[1] + 3 + j * line_h), line, fill=(235, 235, 235), font=font)
    return sheet
