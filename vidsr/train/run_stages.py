"""A whole training run: its stages in order, from one run folder, with one final export.

``train(config, out_dir)`` runs the configured stages (Real-ESRGAN: an L1 stage, then a GAN
stage that starts from the first stage's EMA weights) and copies the last stage's EMA
generator to ``out_dir/<name>.safetensors`` and ``.pth``. Everything a user can get wrong
(data, VGG weights, an occupied run folder) is checked before the folder is touched.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from vidsr.degrade import load_config
from vidsr.errors import InputError, OptionError, OutputExistsError
from vidsr.train.data import PatchSampler, find_media, make_sources, split_holdout
from vidsr.train.generator import with_pretrained
from vidsr.train.losses import load_vgg19_state_dict
from vidsr.train.process_group import barrier, leave_process_group, setup_device
from vidsr.train.results import StageResult, TrainResult
from vidsr.train.run_log import utc_now
from vidsr.train.train_config import StageConfig, TrainConfig
from vidsr.train.trainer import DONE, VAL_PAIRS, Trainer
from vidsr.train.validate import ValPairs, make_val_pairs

log = logging.getLogger(__name__)


def _load_export(stage_dir: Path, config: TrainConfig, stage: StageConfig) -> tuple[dict[str, torch.Tensor], str]:
    from safetensors.torch import load_file

    path = stage_dir / f"{config.name}_{stage.name}.safetensors"
    if not path.is_file():
        raise InputError(f"{path} is missing: run stage {stage.name!r} first")
    return load_file(str(path)), str(path)


def _check_out_dir(out_dir: Path, config: TrainConfig, resume: bool) -> None:
    saved = out_dir / "config.yml"
    if not resume:
        if saved.exists() or any(out_dir.glob("*/checkpoints/latest")):
            raise OutputExistsError(f"{out_dir} already holds a run; pass --resume to continue it "
                                    f"or choose another --out")
        return
    if saved.is_file():
        old = yaml.safe_load(saved.read_text(encoding="utf-8"))
        new = config.to_dict()
        for key in ("network", "stages", "feed", "seed"):
            if old.get(key) != new.get(key):
                log.warning("--resume: %s differs from the run's saved config.yml; continuing with the new one", key)


def iter_stages(config: TrainConfig, names: Sequence[str] | None) -> Iterator[tuple[int, StageConfig]]:
    wanted = set(names) if names else None
    if wanted:
        unknown = sorted(wanted - {s.name for s in config.stages})
        if unknown:
            raise OptionError(f"unknown stage(s) {unknown}; this config has {[s.name for s in config.stages]}")
    for i, s in enumerate(config.stages):
        if wanted is None or s.name in wanted:
            yield i, s


def train(config: TrainConfig, out_dir: str | Path, *, resume: bool = False, stages: Sequence[str] | None = None,
          device: str = "auto", vgg_weights: str | Path | None = None, time_limit: float | None = None,
          progress: bool = True) -> TrainResult:
    """Run the configured stages (or the named ones) into ``out_dir``; see the module doc."""
    out_dir = Path(out_dir)
    started_at, t0 = utc_now(), time.perf_counter()
    if config.network.pretrained and config.network.net_scale is None:
        # e.g. animevideov3-x2 named in a YAML file: the x4 net it is, resized, not a x2 net.
        config = dataclasses.replace(config, network=with_pretrained(config.network, config.network.pretrained))
    selected = list(iter_stages(config, stages))
    dev, dist = setup_device(device)
    try:
        # Everything a user can get wrong is checked before the run folder is touched.
        vgg_state = None
        if any(s.losses.perceptual > 0 for _, s in selected):
            vgg_state = load_vgg19_state_dict(vgg_weights)
        files = find_media(config.data.paths)
        train_files, held = split_holdout(files, config.data.holdout)
        cache = config.data.cache_images
        sampler = PatchSampler(make_sources(train_files, cache_images=cache), config.data)
        val_sampler = PatchSampler(make_sources(held, cache_images=cache), config.data) if held else sampler
        if not held:
            log.warning("no files held out (data.holdout): validation crops come from the training files")
        degradation = load_config(config.feed.degradation)
        _check_out_dir(out_dir, config, resume)
        barrier(dist)
        if dist.main:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "config.yml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")

        val_pairs = None  # only rank 0 validates
        if dist.main:
            val_path = out_dir / VAL_PAIRS
            if val_path.is_file():
                val_pairs = ValPairs.load(val_path)
            else:
                val_pairs = make_val_pairs(val_sampler, degradation, config.validation,
                                           scale=config.network.scale, device=dev)
                val_pairs.save(val_path)

        results: list[StageResult] = []
        exports: tuple[Path, ...] = ()
        for i, stage in selected:
            stage_dir = out_dir / stage.name
            if resume and (stage_dir / DONE).is_file():
                done = json.loads((stage_dir / DONE).read_text(encoding="utf-8"))
                if int(done["steps"]) >= stage.steps:
                    exports = tuple(Path(p) for p in done["exports"])
                    log.info("stage %s already finished; skipping", stage.name)
                    continue
            init = None
            if i > 0:
                prev = config.stages[i - 1]
                if (out_dir / prev.name / f"{config.name}_{prev.name}.safetensors").is_file() \
                        or not config.network.pretrained:
                    init = _load_export(out_dir / prev.name, config, prev)
            remaining = None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - t0))
            with Trainer(config, stage, out_dir, device=dev, dist=dist, vgg_weights=vgg_weights, vgg_state=vgg_state,
                         init=init,
                         resume=resume, sampler=sampler, degradation=degradation, val_pairs=val_pairs,
                         progress=progress) as trainer:
                result = trainer.run(time_limit=remaining)
            results.append(result)
            exports = result.exports
            if not result.finished:
                break
        final: tuple[Path, ...] = ()
        if dist.main and exports:
            final = tuple(Path(shutil.copyfile(p, out_dir / f"{config.name}{p.suffix}")) for p in exports)
        barrier(dist)
        return TrainResult(out_dir=out_dir, stages=tuple(results), exports=final, started_at=started_at,
                           ended_at=utc_now(), rank=dist.rank)
    finally:
        leave_process_group(dist)


def replace_stage(config: TrainConfig, name: str, **changes: Any) -> TrainConfig:
    """A copy of ``config`` with one stage's fields changed (for scripts and tests)."""
    stages = tuple(dataclasses.replace(s, **changes) if s.name == name else s for s in config.stages)
    return dataclasses.replace(config, stages=stages)
