"""A picture to choose a model by: one frame (or a crop of it) through each model, side by side.

The first panel is the input enlarged with bicubic to the output size, the others are
each model's output at the same scale, each labelled, all at 1:1 (no resampling after the
model), so the panels show exactly what `vidsr upscale --model M -s S` would write for
those pixels (before encoding). Panels share one scale: `scale`, or else the largest
native scale among the models, so no model's detail is thrown away; a model of another
native scale is resized to it as `upscale -s` would.

Only the crop is upscaled, with `CONTEXT` input pixels of real picture around it, which
the network sees and the panel leaves out: the crop's pixels then come out as in a
whole-frame run (the same up to float rounding for receptive fields within `CONTEXT`, as
SRVGGNetCompact's 18 pixels; RRDBNet sees further: on a 32x32 crop of a bg_meadow frame,
x4plus and x4plus-anime panels differ from the whole-frame run by 0.1-0.2 code values on
average, at most 5, more than 2 on under 0.1% of the pixels), at a fraction of the cost, so
this runs on a CPU. Images with alpha are composited onto white first.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.choices import Precision
from vidsr.engine.crop import Crop, place_crop
from vidsr.engine.device import pick_device, pick_dtype
from vidsr.engine.device_formatter import DeviceFormatter
from vidsr.engine.outputs import atomic_output, check_output
from vidsr.engine.upscaler import FrameUpscaler, SpeedOptions
from vidsr.errors import InputError, OptionError
from vidsr.io.decode import FrameReader, Window
from vidsr.io.image import is_image, read_image
from vidsr.io.pixel_formats import packed_rgb_format
from vidsr.io.probe import probe_video
from vidsr.models import ModelDescriptor, load_model

log = logging.getLogger(__name__)

CONTEXT = 32            # input pixels around the crop that the networks see
DEFAULT_PANEL = 384     # output pixels on each side of a panel when no crop size is given
_PAD = 8
_FONT_SIZE = 15
_BACKGROUND = (24, 24, 24)
_TEXT = (235, 235, 235)


@dataclass(frozen=True)
class Panel:
    label: str
    model: str | None                   # None: the bicubic input
    box: tuple[int, int, int, int]      # (left, top, right, bottom) of its pixels in the picture


@dataclass(frozen=True)
class CompareResult:
    output: Path
    width: int
    height: int
    crop: Crop                          # in input pixels, placed
    scale: float
    panel_size: tuple[int, int]         # (width, height) of each panel
    time: float | None                  # seconds into a video of the frame shown
    frame: int | None                   # its index, when asked for by index
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class _Picture:
    pixels: torch.Tensor                # [3, H, W] float32 in [0, 1]
    time: float | None = None
    frame: int | None = None


def compare(input: Path | str, output: Path | str, *, models: Sequence[str], scale: float | None = None,
            time: float | None = None, frame: int | None = None, crop: Crop | str | None = None,
            device: str = "auto", precision: Precision = "auto", overwrite: bool = False) -> CompareResult:
    """Write one labelled PNG: the input (bicubic) beside each model's output, on the same frame and crop.

    `time` (seconds) or `frame` (index from 0) picks a video's frame (default: the middle);
    `crop` is a `Crop` or 'WxH+X+Y' / 'WxH' in input pixels (default: a window of
    DEFAULT_PANEL output pixels where the picture has the most detail).
    """
    input, output = Path(input), Path(output)
    if not models:
        raise OptionError("give at least one --model to compare")
    if time is not None and frame is not None:
        raise OptionError("give --time or --frame, not both")
    if (time is not None and time < 0) or (frame is not None and frame < 0):
        raise OptionError("--time and --frame must be >= 0")
    if scale is not None and not 0 < scale <= 16:
        raise OptionError(f"--scale must be in (0, 16], not {scale:g}")
    if output.suffix.lower() != ".png":
        raise OptionError(f"the comparison is a PNG: give an output ending in .png, not {output.name!r}")
    check_output(input, output, overwrite=overwrite)
    dev = pick_device(device)
    loaded = [load_model(name) for name in models]
    scale = scale or float(max(m.scale for m in loaded))
    picture = _read_picture(input, time, frame)
    h, w = picture.pixels.shape[-2:]
    if isinstance(crop, str):
        crop = Crop.parse(crop)
    if crop is None:
        side = max(8, round(DEFAULT_PANEL / scale))
        crop = Crop(min(side, w), min(side, h))
    crop = place_crop(picture.pixels, crop)
    log.info("%s: %dx%d, crop %s, x%g", input.name, w, h, crop, scale)

    region, offset = _with_context(picture.pixels, crop)
    panel_w, panel_h = _size(crop.width, scale), _size(crop.height, scale)
    out_size = (_size(region.shape[-1], scale), _size(region.shape[-2], scale))
    ox, oy = (min(round(o * scale), n - p) for o, n, p in zip(offset, out_size, (panel_w, panel_h)))

    def cut(frame_hwc: np.ndarray) -> np.ndarray:
        return frame_hwc[oy:oy + panel_h, ox:ox + panel_w]

    tiles = [(f"input, bicubic x{scale:g}", None, cut(_bicubic(region, out_size)))]
    for name, model in zip(models, loaded):
        label = model.name if model.scale == scale else f"{model.name} (x{model.scale} net, resized to x{scale:g})"
        tiles.append((label, name, cut(_upscale(region, model, dev, precision, out_size))))
        model.module.to("cpu")  # free the device for the next model

    head = _heading(input, picture, crop, (w, h), scale)
    image, boxes = _layout(head, [(label, pixels) for label, _, pixels in tiles])
    with atomic_output(output) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    panels = tuple(Panel(label, model_name, box) for (label, model_name, _), box in zip(tiles, boxes))
    return CompareResult(output, image.width, image.height, crop, scale, (panel_w, panel_h), picture.time,
                         picture.frame, panels)


# -- the frame ------------------------------------------------------------------------------------


def _read_picture(path: Path, time: float | None, frame: int | None) -> _Picture:
    if is_image(path):
        if time is not None or frame is not None:
            raise OptionError(f"{path.name} is an image: --time and --frame are for videos")
        return _Picture(_image_pixels(path))
    info = probe_video(path)
    deep = info.bits > 8
    if frame is not None:
        window = Window(frames=frame + 1)
    else:
        if time is None:
            time = (info.duration_s or 0.0) / 2
        window = Window(start=time, frames=1)
    reader = FrameReader(path, info.color, rgb_format=packed_rgb_format(3, deep), window=window,
                         start_s=info.start_s)
    last = None
    for last in reader:
        pass
    if last is None or (frame is not None and len(reader.report.pts) <= frame):
        count = len(reader.report.pts)
        asked = f"frame {frame}" if frame is not None else f"{time:g} s"
        raise InputError(f"{path.name} has no frame at {asked}"
                         + (f" (it has {count} frames)" if frame is not None else
                            f" (it lasts {info.duration_s:.2f} s)" if info.duration_s else ""))
    shown_s = float(reader.report.pts[-1] * info.time_base) - info.start_s
    pixels = torch.from_numpy(last.astype(np.float32) / (65535.0 if deep else 255.0)).permute(2, 0, 1)
    return _Picture(pixels.contiguous(), round(shown_s, 6), frame)


def _image_pixels(path: Path) -> torch.Tensor:
    image = read_image(path)
    peak = 65535.0 if image.bits == 16 else 255.0
    color = torch.from_numpy(image.color.astype(np.float32) / peak).permute(2, 0, 1)
    if image.gray:
        color = color.expand(3, -1, -1)
    if image.alpha is not None:
        alpha = torch.from_numpy(image.alpha.astype(np.float32) / peak)[None]
        color = color * alpha + (1 - alpha)  # over white, as a viewer shows it on a page
    return color.contiguous()


# -- the panels -----------------------------------------------------------------------------------


def _size(n: int, scale: float) -> int:
    return max(1, math.floor(n * scale + 0.5))


def _with_context(pixels: torch.Tensor, crop: Crop) -> tuple[torch.Tensor, tuple[int, int]]:
    """[1, 3, h, w]: the crop and up to CONTEXT pixels around it; and the crop's (x, y) inside that."""
    left, top, right, bottom = crop.box()
    h, w = pixels.shape[-2:]
    x0, y0 = max(0, left - CONTEXT), max(0, top - CONTEXT)
    x1, y1 = min(w, right + CONTEXT), min(h, bottom + CONTEXT)
    return pixels[None, :, y0:y1, x0:x1], (left - x0, top - y0)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """float [1, 3, H, W] -> uint8 [H, W, 3], rounded as the engine rounds."""
    return DeviceFormatter("rgb24", x.shape[-1], x.shape[-2], None)(x.clamp(0, 1))[0].cpu().numpy()


def _bicubic(region: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    big = F.interpolate(region, size=(size[1], size[0]), mode="bicubic", align_corners=False, antialias=True)
    return _to_uint8(big)


@torch.inference_mode()
def _upscale(region: torch.Tensor, model: ModelDescriptor, device: torch.device, precision: str,
             size: tuple[int, int]) -> np.ndarray:
    """What the engine makes of `region` with `model` at output `size`: network, resize, clamp, round."""
    dtype = pick_dtype(device, precision, model.supports_half)
    speed = SpeedOptions()
    upscaler = FrameUpscaler(model, device=device, dtype=dtype, out_size=size,
                             formatter=DeviceFormatter("rgb24", *size, None), speed=speed)
    x = region.to(device=device, dtype=dtype)
    if speed.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return upscaler.process(x)[0].cpu().numpy()


# -- the picture ----------------------------------------------------------------------------------


def _heading(input: Path, picture: _Picture, crop: Crop, size: tuple[int, int], scale: float) -> str:
    where = ""
    if picture.frame is not None:
        where = f"frame {picture.frame} ({picture.time:.2f} s), "
    elif picture.time is not None:
        where = f"{picture.time:.2f} s, "
    return f"{input.name}: {where}crop {crop} of {size[0]}x{size[1]}, x{scale:g}"


def _font():  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=_FONT_SIZE)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _layout(heading: str, tiles: Sequence[tuple[str, np.ndarray]], columns: int = 4
            ) -> tuple[object, list[tuple[int, int, int, int]]]:
    """A heading line, then the tiles in rows of up to `columns`, each under its label, at 1:1."""
    from PIL import Image, ImageDraw

    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = _FONT_SIZE + 8
    tile_h, tile_w = tiles[0][1].shape[:2]
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    cell_w = max(tile_w, *(math.ceil(measure.textlength(label, font=font)) for label, _ in tiles)) + _PAD
    cell_h = line_h + tile_h + _PAD
    width = max(_PAD + columns * cell_w, 2 * _PAD + math.ceil(measure.textlength(heading, font=font)))
    height = _PAD + line_h + rows * cell_h
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((_PAD, _PAD), heading, fill=_TEXT, font=font)
    boxes = []
    for i, (label, pixels) in enumerate(tiles):
        x = _PAD + (i % columns) * cell_w
        y = _PAD + line_h + (i // columns) * cell_h
        draw.text((x, y), label, fill=_TEXT, font=font)
        sheet.paste(Image.fromarray(np.ascontiguousarray(pixels), "RGB"), (x, y + line_h))
        boxes.append((x, y + line_h, x + tile_w, y + line_h + tile_h))
    return sheet, boxes
