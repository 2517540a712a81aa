"""`vidsr degrade`: show what the trainer will see, as a labelled contact sheet."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from vidsr.errors import InputNotFoundError, OptionError, OutputExistsError

if TYPE_CHECKING:
    import torch

    from vidsr.engine.crop import Crop

log = logging.getLogger(__name__)


def _read_image(path: Path) -> torch.Tensor:
    """``[1, 3, H, W]`` float in [0, 1]; transparency is composited over white."""
    import torch

    from vidsr.io.image import read_rgb8

    return torch.from_numpy(read_rgb8(path)).permute(2, 0, 1)[None].float() / 255


def _read_video(path: Path, frames: int, start: float) -> torch.Tensor:
    """``[T, 3, H, W]`` float in [0, 1]: up to ``frames`` consecutive frames from ``start`` seconds."""
    import av
    import numpy as np
    import torch

    from vidsr.errors import InputError

    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream")
            stream = container.streams.video[0]
            if start > 0:
                container.seek(int(start * 1_000_000), any_frame=False, backward=True)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time < start:
                    continue
                out.append(frame.to_ndarray(format="rgb24"))
                if len(out) == frames:
                    break
    except av.FFmpegError as exc:
        raise InputError(f"cannot read video {path}: {exc}") from None
    if not out:
        raise InputError(f"no video frames in {path} from {start} s on")
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def _detail_crop(x: torch.Tensor, crop: int, scale: int, shown: int) -> tuple[torch.Tensor, Crop]:
    """A square of side ``crop`` (a multiple of ``scale``) where frame ``shown`` of ``x`` has the most detail."""
    from vidsr.engine.crop import Crop, place_crop
    from vidsr.errors import InputError

    h, w = x.shape[-2:]
    side = min(crop, h, w) // scale * scale
    if side < 8 * scale:
        raise InputError(f"input is {w}x{h}: too small for a crop of at least {8 * scale} pixels at x{scale}")
    where = place_crop(x[shown], Crop(side, side))
    left, top, right, bottom = where.box()
    return x[..., top:bottom, left:right], where


def degrade(
    input: Path = typer.Argument(..., help="Image (PNG/JPEG/WebP...) or video to degrade."),
    output: Path = typer.Option(..., "-o", "--output", help="Contact sheet to write (.png)."),
    n: int = typer.Option(12, "-n", help="Number of random draws."),
    config: str = typer.Option("realesrgan_video", "-c", "--config",
                               help="Shipped config (realesrgan_video, anime_video) or a YAML file."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draws; the same seed gives the same sheet."),
    scale: int = typer.Option(4, "-s", "--scale", help="HR size / LR size."),
    crop: int = typer.Option(256, "--crop", help="Side of the square degraded (HR pixels), placed where the "
                             "picture has the most detail."),
    frames: int = typer.Option(5, "--frames", help="Video input: consecutive frames read for the codec stage."),
    start: float = typer.Option(0.0, "--start", help="Video input: seconds into the video to read from."),
    codec_prob: Optional[float] = typer.Option(None, "--codec-prob",
                                               help="Override the config's codec-stage probability (0..1)."),
    columns: int = typer.Option(4, "--columns", help="Tiles per row."),
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace an existing output."),
) -> None:
    """Write a contact sheet of N random degradations of an image or video frame, each labelled."""
    from vidsr.degrade import HighOrderDegradation, load_config
    from vidsr.degrade.contact_sheet import contact_sheet, describe
    from vidsr.degrade.high_order import SampleParams
    from vidsr.io.image import is_image

    if not input.exists():
        raise InputNotFoundError(f"input not found: {input}")
    if output.suffix.lower() != ".png":
        raise OptionError(f"the contact sheet is a PNG: give an output ending in .png, not {output.name!r}")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output} exists (add --overwrite to replace it)")
    for name, value, low in (("-n", n, 1), ("--scale", scale, 1), ("--crop", crop, 8), ("--frames", frames, 1),
                             ("--columns", columns, 1)):
        if value < low:
            raise OptionError(f"{name} must be at least {low}, got {value}")
    if codec_prob is not None and not 0 <= codec_prob <= 1:
        raise OptionError(f"--codec-prob must be in [0, 1], got {codec_prob}")

    cfg = load_config(config)
    if codec_prob is not None:
        cfg = dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, prob=codec_prob))

    still = is_image(input)
    if still:
        source, where = _detail_crop(_read_image(input), crop, scale, 0)  # [1, 3, S, S]
        hr = source.expand(n, -1, -1, -1).contiguous()
        shown = source[0]
    else:
        clip = _read_video(input, frames, start)
        clip, where = _detail_crop(clip, crop, scale, clip.shape[0] // 2)  # [T, 3, S, S]
        hr = clip[None].expand(n, -1, -1, -1, -1).contiguous()
        shown = clip[clip.shape[0] // 2]

    with HighOrderDegradation(cfg, seed=seed) as pipeline:
        lr, params = pipeline(hr, scale)
    if not still:
        lr = lr[:, lr.shape[1] // 2]  # the middle frame of each degraded clip

    side = shown.shape[-1]
    head = [f"input: {input.name}", f"HR crop {where}, LR {side // scale}x{side // scale} shown x{scale}",
            f"config {Path(config).stem}, seed {seed}"]
    if not still:
        head.append(f"middle of {hr.shape[1]} frames from {start:g} s")
    captions = [head] + [[f"#{i + 1}"] + describe(SampleParams.from_dict(p)) for i, p in enumerate(params)]
    sheet = contact_sheet([shown, *lr.unbind(0)], captions, columns=columns, tile_size=(side, side))
    output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(output, format="PNG")
    typer.echo(f"wrote {output} ({n} draws, {sheet.width}x{sheet.height})", err=True)
    log.debug("degradation parameters: %s", params)
