"""`vidsr bench`: decode, model, encode, end-to-end and a reference loop, timed in one run."""
from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Optional, cast

import typer

from vidsr.choices import EncoderBackend, EncoderBackendChoice
from vidsr.errors import OptionError

# A real clip shipped in the package (vidsr/assets/README.md), so a wheel install can bench.
_SAMPLE = Path(str(importlib.resources.files("vidsr") / "assets" / "earth_1s.mp4"))


def bench(
    source: Path = typer.Option(_SAMPLE, "--source", help="Real clip to loop and resize as the input."),
    size: Optional[str] = typer.Option(None, "--size", help="Input WxH (default: 960x540 on CUDA, 160x90 on CPU)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames per phase (default: 600 CUDA, 16 CPU)."),
    model: str = typer.Option("animevideov3", "-m", "--model"),
    scale: float = typer.Option(2.0, "-s", "--scale"),
    device: str = typer.Option("auto", "--device"),
    precision: str = typer.Option("auto", "--precision", help="Comma-separated: auto,fp16,bf16,fp32."),
    batch: Optional[str] = typer.Option(None, "--batch", help="Comma-separated batch sizes (default: 1,4,8; 4 on CPU)."),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="Also measure under torch.compile."),
    codec: str = typer.Option("libx264", "--codec"),
    preset: str = typer.Option("veryfast", "--preset"),
    crf: float = typer.Option(18, "--crf"),
    encoder: EncoderBackendChoice = typer.Option(EncoderBackendChoice.auto, "--encoder", help="Who encodes."),
    reference_frames: Optional[int] = typer.Option(None, "--reference-frames"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results here."),
    paths: bool = typer.Option(True, "--paths/--no-paths", help="Also time each way a run can go: the defaults "
                               "(compiled where the policy says), --no-compile with one encoder, several encoders, "
                               "--large-size input and an RRDB model, each against its bound."),
    path_batch: Optional[int] = typer.Option(None, "--path-batch", help="Batch of the path runs (default 8 CUDA, 4 CPU)."),
    encoders: int = typer.Option(2, "--encoders", help="Encoders of the multi-encoder path."),
    large_size: Optional[str] = typer.Option(None, "--large-size", help="Input WxH of the large path, or 'none' "
                                             "(default: 1920x1080 on CUDA, 128x72 on CPU)."),
    large_frames: Optional[int] = typer.Option(None, "--large-frames", help="Frames of the large path "
                                               "(default 300 CUDA, 8 CPU)."),
    rrdb_model: str = typer.Option("x4plus", "--rrdb-model", help="RRDB model of its path: a name, a weights "
                                   "file, 'random' (the x4plus architecture with seeded weights: same speed, for "
                                   "machines without the weights) or 'none'."),
    rrdb_frames: Optional[int] = typer.Option(None, "--rrdb-frames", help="Frames of the RRDB path (default 60 CUDA, 4 CPU)."),
    rrdb_size: Optional[str] = typer.Option(None, "--rrdb-size", help="Input WxH of the RRDB path "
                                            "(default: 640x360 on CUDA, 32x18 on CPU)."),
) -> None:
    """Measure where the time goes on this machine; prints a table (and JSON with --json)."""
    from vidsr.bench import BenchConfig, format_table, run_bench
    from vidsr.bench.paths import PathsConfig
    from vidsr.engine.cpu_memory import keep_freed_memory
    from vidsr.engine.device import pick_device
    from vidsr.io.encode import EncodeSettings

    cuda = pick_device(device).type == "cuda"
    try:
        w, h = (int(v) for v in (size or ("960x540" if cuda else "160x90")).lower().split("x"))
        large = (large_size or ("1920x1080" if cuda else "128x72")).lower()
        large_wh = None if large == "none" else tuple(int(v) for v in large.split("x"))
        rrdb_wh = tuple(int(v) for v in (rrdb_size or ("640x360" if cuda else "32x18")).lower().split("x"))
        batches = tuple(int(b) for b in (batch or ("1,4,8" if cuda else "4")).split(","))
    except ValueError as exc:
        raise OptionError(f"--size, --large-size and --rrdb-size take WxH, --batch comma-separated integers "
                          f"({exc})") from exc
    cfg = BenchConfig(
        source=source, size=(w, h), frames=frames or (600 if cuda else 16), model=model, scale=scale, device=device,
        precisions=tuple(precision.split(",")), batches=batches, compile=compile,
        encode=EncodeSettings(codec=codec, preset=preset, crf=crf, backend=cast(EncoderBackend, encoder.value)),
        reference_frames=reference_frames or (60 if cuda else 8), model_iters=20 if cuda else 2,
        paths=PathsConfig(batch=path_batch or (8 if cuda else 4), encoders=encoders, large_size=large_wh,
                          large_frames=large_frames or (300 if cuda else 8),
                          rrdb_model=None if rrdb_model == "none" else rrdb_model,
                          rrdb_frames=rrdb_frames or (60 if cuda else 4), rrdb_size=rrdb_wh,  # type: ignore[arg-type]
                          model_iters=20 if cuda else 2)
        if paths else None,
    )
    if not cuda:
        keep_freed_memory()  # as `vidsr upscale` does on the CPU, so the rows measure what users run
    report = run_bench(cfg, progress=lambda s: typer.echo(f"bench: {s}", err=True))
    typer.echo(format_table(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2))
