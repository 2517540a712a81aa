#!/usr/bin/env python3
"""Stage 1 of the compact x4 config for a fixed wall time, then PSNR on held-out degraded crops.

Trains the L1 stage ("net") of ``configs/train/compact_x4.yml`` from scratch (or from
``--pretrained NAME``) on a folder of images for ``--minutes``, holding a few images out
by name. Then scores, on degraded crops of the held-out images (made once with a fixed
seed by the same degradation pipeline the training used), the PSNR and SSIM on Y of:
bicubic upscaling, the official animevideov3 (``--official``), and the trained EMA net.
Reports steps/s, the time spent waiting for data, the feed's rate against the step rate
(per logging interval, from the training log) and GPU utilisation (sampled twice a second
by the trainer; n/a on a CPU), and writes everything as JSON.

    python scripts/train_check.py --data .media/images --minutes 5 \\
        --official .weights/animevideov3.safetensors --json $OUT/train_check.json
    python scripts/train_check.py --device cpu --minutes 0.2 --gt-size 64 --batch 2   # smoke test
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

try:
    import vidsr  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from _report import emit, rounded_scores  # noqa: E402  (scripts/, beside this file)

from vidsr.engine.device import pick_device  # noqa: E402
from vidsr.errors import VidsrError  # noqa: E402
from vidsr.models import load_model  # noqa: E402
from vidsr.train import Trainer, load_train_config, with_overrides  # noqa: E402
from vidsr.train.data import find_media  # noqa: E402
from vidsr.train.log_summary import summarize_train_log  # noqa: E402
from vidsr.train.validate import bicubic, run_net, score  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_HOLDOUT = ("bg_meadow.jpg", "sylvie_green_smile.png", "lomiri1604_Wine_by_Jakkub_Mede.jpg")


def _holdout(data: Path, names: list[str] | None) -> list[str]:
    files = find_media([data])
    if names:
        return names
    present = [n for n in DEFAULT_HOLDOUT if any(f.name == n for f in files)]
    return present or [f.name for f in files[::8]][:3]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "media" / "images",
                   help="folder of training images (default: ../shared/media/images)")
    p.add_argument("--minutes", type=float, default=3.0, help="training wall time (default 3)")
    p.add_argument("--official", default="animevideov3",
                   help="official animevideov3 weights: a path (.safetensors/.pth/.param) or a model name")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--device", default="auto")
    p.add_argument("--config", default="compact_x4")
    p.add_argument("--gt-size", type=int, default=None, help="HR crop side for training and validation")
    p.add_argument("--batch", type=int, default=None, help="batch size [default: the config's]")
    p.add_argument("--holdout", nargs="*", default=None, help="file names held out for validation")
    p.add_argument("--val-pairs", type=int, default=32, help="held-out degraded crops to score")
    p.add_argument("--pretrained", default=None, help="fine-tune from this model instead of training from scratch")
    p.add_argument("--threads", type=int, default=None, help="producer threads [default: the config's]")
    p.add_argument("--codec-workers", type=int, default=None, help="encoder threads [default: the config's]")
    p.add_argument("--fresh", type=int, default=None,
                   help="fresh pairs per step (< batch reuses pool samples) [default: the batch size]")
    p.add_argument("--out", type=Path, default=None, help="run folder [default: a temporary folder]")
    args = p.parse_args(argv)

    try:
        device = pick_device(args.device)
        cfg = with_overrides(load_train_config(args.config), data=[args.data],
                             holdout=_holdout(args.data, args.holdout))
        stage = cfg.stage("net")
        batch = args.batch or stage.batch_size
        gt = args.gt_size or cfg.data.gt_size
        fresh = args.fresh or cfg.feed.fresh_per_step or batch
        pool = 12 * batch if args.batch is not None else cfg.feed.pool_size
        pool = -(-max(pool, batch) // fresh) * fresh  # a multiple of fresh, at least one batch
        cfg = dataclasses.replace(
            cfg,
            network=dataclasses.replace(cfg.network, pretrained=args.pretrained),
            data=dataclasses.replace(cfg.data, gt_size=gt),
            feed=dataclasses.replace(cfg.feed, pool_size=pool, fresh_per_step=fresh,
                                     threads=args.threads or cfg.feed.threads,
                                     codec_workers=args.codec_workers or cfg.feed.codec_workers),
            validation=dataclasses.replace(cfg.validation, gt_size=gt, pairs=args.val_pairs, samples=4),
            stages=(dataclasses.replace(stage, batch_size=batch, steps=10**9, checkpoint_every=10**9,
                                        validate_every=10**9, log_every=50),))
        out = args.out or Path(tempfile.mkdtemp(prefix="train_check_"))
        if args.out is not None and out.exists():
            shutil.rmtree(out)

        t_setup = time.perf_counter()
        with Trainer(cfg, "net", out, device=device, progress=True) as trainer:
            pairs = trainer.val_pairs  # made before the clock starts
            setup_s = time.perf_counter() - t_setup
            result = trainer.run(time_limit=args.minutes * 60)
            ema = trainer.ema.module.eval()
            scale = cfg.network.scale
            outputs = {"bicubic": bicubic(pairs.lr, scale)}
            official = load_model(Path(args.official) if Path(args.official).exists() else args.official)
            outputs["official"] = run_net(official.module.to(device).eval(), pairs.lr, device=device)
            outputs["trained"] = run_net(ema, pairs.lr, device=device)
        scores = {k: score(v, pairs.gt, crop_border=scale) for k, v in outputs.items()}
        log = summarize_train_log(out / "net" / "log.jsonl")
        report = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "python": platform.python_version(),
            "config": args.config, "from": args.pretrained or "scratch", "minutes": args.minutes,
            "gt_size": gt, "batch": batch, "fresh_per_step": fresh, "pool_size": pool,
            "degradation": cfg.feed.degradation,
            "feed_threads": cfg.feed.threads, "codec_workers": cfg.feed.codec_workers,
            "train_images": len(trainer.sampler.sources), "holdout": list(cfg.data.holdout),
            "val_pairs": int(pairs.gt.shape[0]), "val_sources": sorted(set(pairs.sources)),
            "setup_s": round(setup_s, 2), "train_s": round(result.seconds, 2), "steps": result.steps,
            "steps_per_s": round(result.steps_per_s, 3), "steps_per_s_steady": log["it_s"],
            "samples_per_s": round(result.steps_per_s * batch, 2),
            "data_wait_s": round(result.data_wait_s, 1),
            # per logging interval, after the first: the feed's rate against the step rate, the wait, the GPU
            "feed_vs_step": log["feed_vs_step"], "feed_samples_s": log["feed_samples_s"],
            "step_samples_s": log["step_samples_s"], "data_wait_frac": log["data_wait_frac"],
            "gpu_util_percent": result.gpu_util if device.type == "cuda" else "n/a (CPU)",
            "log": log,
            **rounded_scores(scores),
            "export": [str(x) for x in result.exports], "run_dir": str(out),
        }
    except VidsrError as exc:
        print(f"train_check: error: {exc}", file=sys.stderr)
        return 1
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
