"""`vidsr train`: a config in, the stages run, the exported network's paths out."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional

import typer


def train(
    config: str = typer.Option(..., "--config", "-c",
                               help="Training config: a name in vidsr/configs/train/ (compact_x4, compact_x2, "
                                    "rrdb_x4plus) or a .yml path."),
    data: Optional[list[Path]] = typer.Option(None, "--data", help="Folder or file of clean images/videos "
                                              "(repeatable) (default: the config's data.paths)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<config name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    stage: Optional[list[str]] = typer.Option(None, "--stage", help="Run only this stage (repeatable), e.g. net "
                                              "or gan (default: every stage in order)."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Fine-tune this model instead of "
                                             "training from scratch: a name (animevideov3, animevideov3-x2, ...) or "
                                             "a .pth/.safetensors/.param file of the config's architecture and "
                                             "scale (default: the config's network.pretrained)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Steps per stage, overriding the config."),
    holdout: Optional[list[str]] = typer.Option(None, "--holdout", help="File name held out for validation "
                                                "(repeatable) (default: the config's data.holdout)."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="torchvision VGG19 weights "
                                               "(vgg19-dcbb9e9d.pth) for the perceptual loss (default: the "
                                               "torch hub cache)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (torchrun picks per rank)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Stop (with a checkpoint and an export) "
                                            "after this much wall time."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Train a network, Real-ESRGAN style (L1 stage, then GAN stage), for `vidsr upscale --model`."""
    from vidsr.train import load_train_config, train as run_training, with_overrides, with_pretrained
    from vidsr.train.train_config import config_path

    cfg = load_train_config(config)
    cfg = with_overrides(cfg, data=data, steps=steps, holdout=holdout)
    if pretrained is not None:
        cfg = dataclasses.replace(cfg, network=with_pretrained(cfg.network, pretrained))
    out_dir = out or Path("runs") / (cfg.name or config_path(config).stem)
    result = run_training(cfg, out_dir, resume=resume, stages=stage, device=device, vgg_weights=vgg_weights,
                          time_limit=None if minutes is None else minutes * 60, progress=not quiet)
    if not quiet and result.rank == 0:
        done = ", ".join(f"{s.name} {s.steps} steps{'' if s.finished else ' (unfinished)'}" for s in result.stages)
        where = " and ".join(str(p) for p in result.exports) or "nothing (every stage was already done)"
        typer.echo(f"trained {done or 'nothing new'}; wrote {where}", err=True)
    logging.getLogger(__name__).debug("done: %s", result)
