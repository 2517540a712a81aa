"""`vidsr compare`: one labelled picture of the same frame through several models."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, cast

import typer

from vidsr.choices import Precision, PrecisionChoice


def compare(
    input: Path = typer.Argument(..., help="Video or image to look at."),
    output: Path = typer.Option(..., "-o", "--output", help="The picture to write (.png)."),
    models: list[str] = typer.Option(..., "-m", "--model", help="A model name or weights file; "
                                     "repeat for each model to compare (e.g. -m animevideov3 -m x4plus)."),
    scale: Optional[float] = typer.Option(None, "-s", "--scale",
                                          help="Output size / input size (default: the largest model scale)."),
    time: Optional[float] = typer.Option(None, "--time", "-t", help="Video: seconds into it (default: the middle)."),
    frame: Optional[int] = typer.Option(None, "--frame", help="Video: the frame with this index (from 0)."),
    crop: Optional[str] = typer.Option(None, "--crop", help="WxH+X+Y in input pixels, or WxH to place it where "
                                       "the picture has the most detail (default: about 384 output pixels "
                                       "square, placed so)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: PrecisionChoice = typer.Option(PrecisionChoice.auto, "--precision", help="Network arithmetic."),
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace an existing output."),
) -> None:
    """Write one picture: the input (bicubic) beside each model's output on the same frame and crop."""
    from vidsr.engine.comparison import compare as compare_models

    result = compare_models(input, output, models=models, scale=scale, time=time, frame=frame, crop=crop,
                            device=device, precision=cast(Precision, precision.value), overwrite=overwrite)
    typer.echo(f"wrote {result.output} ({result.width}x{result.height}: input and {len(models)} model(s), "
               f"crop {result.crop} at x{result.scale:g})", err=True)
