#!/usr/bin/env python3
"""Does fine-tuning the official network on your footage beat it there? Both stages, then scores.

Runs what ``vidsr train --config compact_x4 --pretrained animevideov3 --data DIR
--holdout ...`` runs (the library's :func:`vidsr.train.train`, the same degradations),
with a wall-time (``--minutes-net``, ``--minutes-gan``) or step budget per stage, then
scores on the run's held-out degraded crops (``val_pairs.pt``: crops of the held-out
files, degraded once with a fixed seed by the same pipeline) the PSNR and SSIM on Y of:
bicubic, the official model, the L1 stage's EMA net and the GAN stage's EMA net. Also
reports each stage's steps/s, how long it waited for data, the feed's rate against the
step rate, and the GPU utilisation, from the run's log. Everything goes to JSON.

On the GPU machine (the official weights converted beforehand, the package is not there;
no VGG19 weights there either, so the GAN stage runs without the perceptual loss unless
``--vgg-weights`` is given):

    python scripts/finetune_check.py --device cuda --official .weights/animevideov3.safetensors \\
        --data .media/images/anime --minutes-net 3 --minutes-gan 1.5 --json $OUT/finetune.json

On a CPU, a short run by steps (deterministic, so the scores do not depend on the load):

    python scripts/finetune_check.py --device cpu --gt-size 128 --batch 8 --steps-net 300 --steps-gan 20

x2: ``--config compact_x2 --official animevideov3-x2`` (the x4 net through the official
x2 export's bicubic half-size resize).
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import vidsr  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from _report import emit, rounded_scores  # noqa: E402  (scripts/, beside this file)

from vidsr.engine.device import pick_device  # noqa: E402
from vidsr.errors import VidsrError  # noqa: E402
from vidsr.models import load_model  # noqa: E402
from vidsr.train import load_train_config, train, with_overrides, with_pretrained  # noqa: E402
from vidsr.train.log_summary import summarize_train_log  # noqa: E402
from vidsr.train.validate import ValPairs, bicubic, run_net, score  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The files held out of every training check so far (docs/benchmarks.md): anime ones.
DEFAULT_HOLDOUT = ("bg_meadow.jpg", "sylvie_green_smile.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "media" / "images" / "anime",
                   help="folder of the show's frames or clips (default: ../shared/media/images/anime)")
    p.add_argument("--holdout", nargs="*", default=list(DEFAULT_HOLDOUT), help="file names held out for scoring")
    p.add_argument("--config", default="compact_x4")
    p.add_argument("--official", default="animevideov3",
                   help="the official model to start from and to beat: a name or a weights file")
    p.add_argument("--device", default="auto")
    p.add_argument("--minutes-net", type=float, default=3.0, help="L1 stage wall time (default 3)")
    p.add_argument("--minutes-gan", type=float, default=1.5, help="GAN stage wall time (default 1.5)")
    p.add_argument("--steps-net", type=int, default=None, help="L1 stage steps instead of a wall time")
    p.add_argument("--steps-gan", type=int, default=None, help="GAN stage steps instead of a wall time")
    p.add_argument("--gt-size", type=int, default=None, help="HR crop side [default: the config's]")
    p.add_argument("--batch", type=int, default=None, help="batch size [default: the config's]")
    p.add_argument("--lr", type=float, default=None, help="L1 stage learning rate [default: the config's]")
    p.add_argument("--val-pairs", type=int, default=32, help="held-out degraded crops to score")
    p.add_argument("--vgg-weights", type=Path, default=None,
                   help="VGG19 weights for the GAN stage's perceptual loss (without: perceptual loss off)")
    p.add_argument("--out", type=Path, default=None, help="run folder [default: a temporary folder]")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)

    try:
        device = pick_device(args.device)
        cfg = with_overrides(load_train_config(args.config), data=[args.data], holdout=args.holdout)
        cfg = dataclasses.replace(cfg, network=with_pretrained(cfg.network, args.official))
        gt = args.gt_size or cfg.data.gt_size
        stages = []
        for s in cfg.stages:
            batch = args.batch or s.batch_size
            steps = {"net": args.steps_net, "gan": args.steps_gan}.get(s.name)
            losses = s.losses
            if s.name == "gan" and args.vgg_weights is None:
                losses = dataclasses.replace(losses, perceptual=0.0)
            lr_g = args.lr if (args.lr is not None and s.name == "net") else s.lr_g
            stages.append(dataclasses.replace(s, batch_size=batch, steps=steps or 10**9, losses=losses, lr_g=lr_g,
                                              checkpoint_every=10**9, validate_every=10**9, log_every=25))
        fresh = cfg.feed.fresh_per_step or stages[0].batch_size
        pool = max(cfg.feed.pool_size if args.batch is None else 12 * stages[0].batch_size, stages[0].batch_size)
        cfg = dataclasses.replace(
            cfg, stages=tuple(stages),
            data=dataclasses.replace(cfg.data, gt_size=gt),
            feed=dataclasses.replace(cfg.feed, pool_size=-(-pool // fresh) * fresh),
            validation=dataclasses.replace(cfg.validation, gt_size=gt, pairs=args.val_pairs))
        out = args.out or Path(tempfile.mkdtemp(prefix="finetune_check_"))
        if args.out is not None and out.exists():
            shutil.rmtree(out)

        report: dict[str, Any] = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "python": platform.python_version(), "config": args.config,
            "official": str(args.official), "net_scale": cfg.network.net_scale, "data": str(args.data),
            "holdout": list(cfg.data.holdout), "gt_size": gt, "degradation": cfg.feed.degradation,
            "perceptual_loss": args.vgg_weights is not None, "stages": {}, "run_dir": str(out),
            "command": ("vidsr train --config " + args.config + " --pretrained " + str(args.official)
                        + " --data " + str(args.data) + "".join(f" --holdout {h}" for h in args.holdout)),
        }
        budgets = {"net": (args.steps_net, args.minutes_net), "gan": (args.steps_gan, args.minutes_gan)}
        t_all = time.perf_counter()
        for s in cfg.stages:
            steps, minutes = budgets.get(s.name, (None, 1.0))
            limit = None if steps is not None else minutes * 60
            result = train(cfg, out, stages=[s.name], resume=s.name != cfg.stages[0].name, device=str(device),
                           vgg_weights=args.vgg_weights, time_limit=limit, progress=True)
            r = result.stages[0]
            report["stages"][s.name] = {
                "steps": r.steps, "seconds": round(r.seconds, 1), "steps_per_s": round(r.steps_per_s, 3),
                "batch": s.batch_size, "data_wait_s": round(r.data_wait_s, 1), "gpu_util": r.gpu_util,
                "log": summarize_train_log(out / s.name / "log.jsonl")}
        report["total_s"] = round(time.perf_counter() - t_all, 1)

        pairs = ValPairs.load(out / "val_pairs.pt")
        scale = cfg.network.scale
        official = load_model(Path(args.official) if Path(args.official).exists() else args.official)
        outputs = {"bicubic": bicubic(pairs.lr, scale),
                   "official": run_net(official.module.to(device).eval(), pairs.lr, device=device)}
        for s in cfg.stages:
            net = load_model(out / s.name / f"{cfg.name}_{s.name}.safetensors").module.to(device).eval()
            outputs[f"after_{s.name}"] = run_net(net, pairs.lr, device=device)
        scores = {k: score(v, pairs.gt, crop_border=scale) for k, v in outputs.items()}
        report.update({
            "val_pairs": int(pairs.gt.shape[0]), "val_sources": sorted(set(pairs.sources)),
            **rounded_scores(scores),
        })
        first = cfg.stages[0].name
        report["l1_stage_beats_official"] = (scores[f"after_{first}"]["psnr_y"] > scores["official"]["psnr_y"]
                                             and scores[f"after_{first}"]["ssim_y"] > scores["official"]["ssim_y"])
    except VidsrError as exc:
        print(f"finetune_check: error: {exc}", file=sys.stderr)
        return 1
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
