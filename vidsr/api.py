"""`vidsr.upscale`: the command line's `vidsr upscale`, as one Python call.

Options are keywords with the CLI's defaults; grouped ones take the same dataclasses the
engine uses (SpeedOptions, EncodeSettings, Window, ChunkOptions). One file in and one
file (or nothing) out gives an `UpscaleResult`, and a failure raises a `VidsrError`; a
folder, several inputs or an existing folder as `output` make a queue, which returns a
`BatchResult` with each file's status (a file that fails is recorded there, not raised).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from vidsr.choices import Precision
from vidsr.engine.batch import BatchResult, FileResult, is_batch, upscale_many
from vidsr.engine.chunked import ChunkOptions, upscale_video_chunked
from vidsr.engine.options import UpscaleOptions, UpscaleResult
from vidsr.engine.still_image import upscale_image
from vidsr.engine.upscaler import SpeedOptions
from vidsr.engine.video import upscale_video
from vidsr.io.decode import Window
from vidsr.io.encode import EncodeSettings
from vidsr.io.image import is_image

PathLike = str | os.PathLike[str]


def upscale(input: PathLike | Sequence[PathLike], output: PathLike | None = None, *,
            model: PathLike = "animevideov3", scale: float | None = None, device: str = "auto",
            precision: Precision = "auto", batch: int | None = None, speed: SpeedOptions | None = None,
            encode: EncodeSettings | None = None, window: Window | None = None, strict: bool = False,
            overwrite: bool = False, progress: bool = True, dedup: bool = False, chunks: ChunkOptions | None = None,
            recursive: bool = False, glob: str | None = None, encoders: int | None = None,
            on_file: Callable[[FileResult], None] | None = None) -> UpscaleResult | BatchResult:
    """Upscale a video or image, a list of them, or folders of them.

    `output`: the output file (default: beside the input, INPUT_x<scale>.<ext>), or for a
    queue the output folder (outputs keep their names and, with `recursive`, their
    subfolders). `chunks` runs videos segmented over several devices (resumable).
    `glob` filters the files found in folders ('*.mkv'); `on_file` is called after each
    file of a queue. `dedup`: frames repeating the one before reuse its output (the result's
    `reused` counts them). `encoders`: encoders at once on consecutive segments (None: auto).
    """
    inputs = [Path(input)] if isinstance(input, (str, os.PathLike)) else [Path(p) for p in input]
    out = Path(output) if output is not None else None
    options = UpscaleOptions(
        model=str(model), scale=scale, device=device, batch=batch, precision=precision,
        speed=speed or SpeedOptions(), encode=encode or EncodeSettings(), window=window or Window(),
        strict=strict, overwrite=overwrite, progress=progress, dedup=dedup, encoders=encoders,
    )
    if is_batch(inputs, out):
        return upscale_many(inputs, out, options, chunks=chunks, recursive=recursive, glob=glob, on_file=on_file)
    source = inputs[0]
    if is_image(source):
        return upscale_image(source, out, options)
    if chunks is not None:
        return upscale_video_chunked(source, out, options, chunks)
    return upscale_video(source, out, options)
