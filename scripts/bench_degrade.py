#!/usr/bin/env python3
"""How fast the degradation pipeline makes training pairs, against how fast a trainer eats them.

Degrades batches of 256x256 HR patches to x4 LR (64x64) with the shipped config, with the
codec stage off, at the config's probability, and always on, in the batched
(``draw: per_batch``) and the per-sample mode; then times training steps of an
SRVGGNetCompact-sized network (64 features, 16 convolutions, x4) on the same batch size,
forward + backward + Adam, and says whether the pipeline keeps up.

It also measures the fixed cost of a batch, which bounds the pipeline on a fast GPU:
the same batch of 32x32 HR patches (x4 to 8x8), where the arithmetic is negligible and
what is left is Python, operator dispatch and per-sample work, and the number of tensor
operations a 256x256 batch dispatches (on a GPU, each is at least one kernel launch).

    python scripts/bench_degrade.py [--device cpu|cuda] [--batch 16] [--iters N]
        [--draw per_batch|per_sample|both] [--same-params] [--threads N] [--json out.json]

The HR patches of these parts are synthetic (smooth multi-scale texture with sharp
edges), so the numbers do not depend on files that may be missing on a measuring machine.

``--feed`` (``--feed-only``: nothing else) measures the training feed as the trainer runs
it, with the training config's settings (``--train-config compact_x4``: the anime_video
degradations with the codec stage, 4 producer threads, the codec worker processes, batch
16 at GT 256) on real image crops (``--images``, default tests/data/images/anime), for
``--feed-seconds`` each:

* feed alone: fresh pairs per second delivered to a consumer that takes them at once;
* step alone: the bare L1 step of the same SRVGGNetCompact on the same batch shape;
* together, as in training (a step per fresh batch): samples/s achieved, the time spent
  waiting for data, the step rate with the wait taken out, the feed's rate from its
  producers' busy time (what the training log records as ``feed_samples_s``), and the
  GPU's utilisation (n/a on a CPU).

    python scripts/bench_degrade.py --device cuda --feed-only --feed-seconds 60 --json feed.json
    python scripts/bench_degrade.py --device cpu --feed-only --gt 64 --batch 4 --feed-threads 1 \
        --codec-workers 1 --feed-seconds 5     # a smoke run
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidsr.bench import OpCounter  # noqa: E402
from vidsr.degrade import HighOrderDegradation, available_codecs, load_config  # noqa: E402
from vidsr.degrade.codec_pool import usable_cores  # noqa: E402
from vidsr.degrade.degradation_config import DegradationConfig  # noqa: E402
from vidsr.train import load_train_config  # noqa: E402
from vidsr.train.data import PatchSampler, find_media, make_sources  # noqa: E402
from vidsr.train.degrade_feed import DegradationFeed  # noqa: E402
from vidsr.train.gpu_util import UtilizationSampler  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def synthetic_hr(n: int, size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """``[n, 3, size, size]`` in [0, 1]: smooth texture at several scales plus hard-edged shapes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 3, size, size)
    for cells, weight in ((4, 0.5), (16, 0.3), (64, 0.15)):
        coarse = torch.rand(n, 3, cells, cells, generator=g)
        x += weight * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    for _ in range(6):  # rectangles: edges for blur, ringing and blocking to act on
        top, left = torch.randint(0, size - 16, (2,), generator=g).tolist()
        h, w = torch.randint(8, size // 2, (2,), generator=g).tolist()
        x[:, :, top:top + h, left:left + w] = torch.rand(n, 3, 1, 1, generator=g)
    return x.clamp(0, 1).to(device)


class CompactNet(nn.Module):
    """SRVGGNetCompact's shape: conv + PReLU, 16 x (conv + PReLU), conv to 3*s^2, pixel shuffle, + nearest."""

    def __init__(self, feat: int = 64, convs: int = 16, scale: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, feat, 3, 1, 1), nn.PReLU(feat)]
        for _ in range(convs):
            layers += [nn.Conv2d(feat, feat, 3, 1, 1), nn.PReLU(feat)]
        layers += [nn.Conv2d(feat, 3 * scale * scale, 3, 1, 1), nn.PixelShuffle(scale)]
        self.body = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_degradation(cfg: DegradationConfig, hr: torch.Tensor, iters: int, warmup: int) -> dict:
    device = hr.device
    with HighOrderDegradation(cfg, seed=0) as pipeline:  # the same seed in every mode and run
        for _ in range(warmup):
            pipeline(hr, 4)
        sync(device)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            lr, _ = pipeline(hr, 4)
            sync(device)
            times.append(time.perf_counter() - t0)
    assert lr.shape[-2:] == (hr.shape[-2] // 4, hr.shape[-1] // 4)
    mean = sum(times) / len(times)
    return {"ms_per_batch": 1000 * mean, "samples_per_s": hr.shape[0] / mean, "best_ms": 1000 * min(times)}


def time_same_params(cfg: DegradationConfig, hr: torch.Tensor, iters: int, warmup: int) -> dict:
    """Batches drawn per batch, each degraded by both paths: the execution alone, without the
    variance of per-batch draws (one "up" resize makes a whole batch dearer)."""
    drawer = HighOrderDegradation(dataclasses.replace(cfg, draw="per_batch"), seed=0)
    batches = [drawer.sample(hr.shape[0], still=hr.dim() == 4) for _ in range(warmup + iters)]
    paths = {"per_sample": HighOrderDegradation(dataclasses.replace(cfg, draw="per_sample"), seed=0),
             "per_batch": HighOrderDegradation(dataclasses.replace(cfg, draw="per_batch"), seed=0)}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for i, params in enumerate(batches):
        for name, pipeline in paths.items():
            sync(hr.device)
            t0 = time.perf_counter()
            pipeline.apply(hr, params, scale=4)
            sync(hr.device)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    for pipeline in paths.values():
        pipeline.close()
    return {f"{name}_path_ms_per_batch": 1000 * sum(t) / len(t) for name, t in times.items()}


def count_ops(cfg: DegradationConfig, hr: torch.Tensor, batches: int = 3) -> float:
    """Mean ATen operations dispatched per batch."""
    with HighOrderDegradation(cfg, seed=0) as pipeline:
        counter = OpCounter()
        with counter:
            for _ in range(batches):
                pipeline(hr, 4)
    return counter.count / batches


def make_step(device: torch.device, amp: bool) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """A bare L1 training step of an SRVGGNetCompact-shaped net (x4), as the trainer's stage 1 takes it."""
    torch.manual_seed(0)
    net = CompactNet().to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step(lr: torch.Tensor, gt: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = net(lr.contiguous(memory_format=torch.channels_last))
        loss = F.l1_loss(out.float(), gt)
        loss.backward()
        opt.step()

    return step


def time_trainer(batch: int, device: torch.device, iters: int, warmup: int, amp: bool, hr_side: int = 256) -> dict:
    train_step = make_step(device, amp)
    lr = torch.rand(batch, 3, hr_side // 4, hr_side // 4, device=device)
    gt = torch.rand(batch, 3, hr_side, hr_side, device=device)

    def step() -> None:
        train_step(lr, gt)

    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    mean = (time.perf_counter() - t0) / iters
    return {"ms_per_step": 1000 * mean, "samples_per_s": batch / mean}


def measure_feed(args: argparse.Namespace, device: torch.device) -> dict:
    """The training feed against the training step: alone each, then together (see the module doc)."""
    tcfg = load_train_config(args.train_config)
    stage = tcfg.stages[0]
    batch = args.batch or stage.batch_size
    gt_side = args.gt or tcfg.data.gt_size
    threads = args.feed_threads or tcfg.feed.threads
    workers = args.codec_workers or tcfg.feed.codec_workers or usable_cores()
    degradation = load_config(tcfg.feed.degradation)
    files = find_media([args.images])
    sampler = PatchSampler(make_sources(files, cache_images=True),
                           dataclasses.replace(tcfg.data, paths=(str(args.images),), gt_size=gt_side))
    amp = device.type == "cuda" and stage.amp == "bf16"
    seconds = args.feed_seconds
    out: dict = {"train_config": args.train_config, "degradation": tcfg.feed.degradation, "images": str(args.images),
                 "image_files": len(files), "batch": batch, "gt": gt_side, "producer_threads": threads,
                 "codec_workers": workers, "codec_pool": args.codec_pool, "seconds_each": seconds,
                 "codec_prob": degradation.codec.prob, "jpeg": degradation.jpeg}

    def feed() -> DegradationFeed:
        return DegradationFeed(sampler, degradation, scale=4, chunk=batch, device=device, seed=0, threads=threads,
                               codec_workers=workers, codec_pool=args.codec_pool, prefetch=max(4, 2 * threads),
                               load_threads=tcfg.data.load_threads)

    # Feed alone: a consumer that takes every batch at once.
    with feed() as f:
        for _ in range(threads):  # warm-up: workers started, first batches through
            f.next()
        f.stats()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            gt, lr = f.next()
            n += gt.shape[0]
        sync(device)
        elapsed = time.perf_counter() - t0
        out["feed_alone_samples_s"] = n / elapsed
        out["feed_alone_busy_rate"] = f.stats().samples_per_s

    # Step alone.
    step = make_step(device, amp)
    lr_b = torch.rand(batch, 3, gt_side // 4, gt_side // 4, device=device)
    gt_b = torch.rand(batch, 3, gt_side, gt_side, device=device)
    for _ in range(3):
        step(lr_b, gt_b)
    sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(lr_b, gt_b)
        n += batch
        if device.type == "cuda" and n % (50 * batch) == 0:
            sync(device)
    sync(device)
    out["step_alone_samples_s"] = n / (time.perf_counter() - t0)
    out["feed_vs_step_alone"] = out["feed_alone_samples_s"] / out["step_alone_samples_s"]

    # Together, as the trainer runs: one step per fresh batch, waiting when none is ready.
    gpu = UtilizationSampler(device)
    with feed() as f:
        for _ in range(threads):
            gt, lr = f.next()
            step(lr.float() / 255, gt.float() / 255)
        sync(device)
        f.stats()
        gpu.interval()
        steps, waited, t0 = 0, 0.0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            tw = time.perf_counter()
            gt, lr = f.next()
            waited += time.perf_counter() - tw
            step(lr.float() / 255, gt.float() / 255)
            steps += 1
        sync(device)
        elapsed = time.perf_counter() - t0
        stats = f.stats()
    util = gpu.interval()
    gpu.close()
    stepping = max(elapsed - waited, 1e-9)
    out["together"] = {
        "steps": steps, "samples_s": steps * batch / elapsed, "data_wait_s": waited,
        "data_wait_frac": waited / elapsed, "step_samples_s": steps * batch / stepping,
        "feed_samples_s": stats.samples_per_s,
        "feed_vs_step": None if stats.samples_per_s is None else stats.samples_per_s / (steps * batch / stepping),
        "gpu_util": util, "gpu_util_source": gpu.source if device.type == "cuda" else "n/a (CPU)",
    }
    return out


def print_feed(r: dict) -> None:
    t = r["together"]
    print(f"training feed ({r['train_config']}: {r['degradation']}, codec p={r['codec_prob']:g}, jpeg {r['jpeg']}; "
          f"batch {r['batch']} at GT {r['gt']}; {r['producer_threads']} producer threads, {r['codec_workers']} codec "
          f"{r['codec_pool']}; {r['seconds_each']:g} s each)")
    print(f"  feed alone               {r['feed_alone_samples_s']:8.1f} samples/s")
    print(f"  step alone               {r['step_alone_samples_s']:8.1f} samples/s  "
          f"(feed/step {r['feed_vs_step_alone']:.2f}x)")
    feed = "n/a" if t["feed_samples_s"] is None else f"{t['feed_samples_s']:.1f}"
    ratio = "n/a" if t["feed_vs_step"] is None else f"{t['feed_vs_step']:.2f}x"
    util = "n/a" if t["gpu_util"] is None else f"{t['gpu_util']:.0f}%"
    print(f"  together                 {t['samples_s']:8.1f} samples/s achieved, waiting for data "
          f"{100 * t['data_wait_frac']:.0f}% of the time ({t['data_wait_s']:.1f} s); step rate without the wait "
          f"{t['step_samples_s']:.1f}, feed rate {feed} samples/s ({ratio}); GPU utilisation {util} "
          f"[{t['gpu_util_source']}]")


def with_codec_prob(cfg: DegradationConfig, prob: float) -> DegradationConfig:
    return dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, prob=prob))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size [default: 16; the feed: the training config's]")
    parser.add_argument("--iters", type=int, default=None, help="timed batches [default: 5 on CPU, 30 on CUDA]")
    parser.add_argument("--config", default="realesrgan_video", help="shipped config name or YAML path")
    parser.add_argument("--draw", default="both", choices=["per_batch", "per_sample", "both"],
                        help="which draw mode(s) to measure [default: both]")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads [default: torch's]; 1 on a machine shared with other jobs, "
                             "where a parallel region waits for a busy core")
    parser.add_argument("--same-params", action="store_true",
                        help="also degrade the same per-batch draws through both paths (the execution alone)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--feed", action="store_true", help="also measure the training feed against the step")
    parser.add_argument("--feed-only", action="store_true", help="measure only the training feed against the step")
    parser.add_argument("--train-config", default="compact_x4", help="training config of the feed measurement")
    parser.add_argument("--images", type=Path, default=REPO / "tests" / "data" / "images" / "anime",
                        help="images the feed crops from [default: tests/data/images/anime]")
    parser.add_argument("--gt", type=int, default=None, help="feed: HR crop side [default: the training config's]")
    parser.add_argument("--feed-threads", type=int, default=None, help="feed: producer threads [default: config's]")
    parser.add_argument("--codec-workers", type=int, default=None,
                        help="feed: codec workers [default: the config's, else one per core]")
    parser.add_argument("--codec-pool", default="processes", choices=["processes", "threads"])
    parser.add_argument("--feed-seconds", type=float, default=30.0, help="feed: seconds per measurement")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    iters = args.iters or (5 if device.type == "cpu" else 30)
    warmup = 2 if device.type == "cpu" else 5
    if args.feed_only:
        results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or "cpu", "torch": torch.__version__, "cpu_count": os.cpu_count(),
                   "cpu_threads": torch.get_num_threads(),
                   "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                   "feed": measure_feed(args, device)}
        print(f"device: {results['device']} (torch {torch.__version__}, {results['cpu_threads']} CPU threads, "
              f"load average {results['load_average']})")
        print_feed(results["feed"])
        if args.json:
            args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
        return
    cfg = load_config(args.config)
    have = set(available_codecs())
    missing = [c for c, p in cfg.codec.codec_probs.items() if p > 0 and c not in have]
    if missing:
        # Measure with the encoders this machine has rather than not at all; said in the output.
        kept = {c: p for c, p in cfg.codec.codec_probs.items() if c in have and p > 0}
        total = sum(kept.values())
        cfg = dataclasses.replace(cfg, codec=dataclasses.replace(
            cfg.codec, codec_probs={c: p / total for c, p in kept.items()}))
    modes = ["per_sample", "per_batch"] if args.draw == "both" else [args.draw]

    batch = args.batch or 16
    hr = synthetic_hr(batch, 256, device)
    tiny = synthetic_hr(batch, 32, device)
    results: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "batch": batch, "hr": 256, "scale": 4, "iters": iters, "config": args.config,
        "codecs_missing": missing,
    }
    stages = {"no_codec": 0.0, f"codec_p{cfg.codec.prob:g}": cfg.codec.prob, "codec_always": 1.0}
    for mode in modes:
        results[mode] = {}
    # Modes interleaved stage by stage, so that a change of load on a shared machine hits both alike.
    for stage, prob in stages.items():
        for mode in modes:
            c = dataclasses.replace(with_codec_prob(cfg, prob), draw=mode)
            results[mode][f"degrade_{stage}"] = time_degradation(c, hr, iters, warmup)
    for mode in modes:
        c = dataclasses.replace(with_codec_prob(cfg, 0.0), draw=mode)
        results[mode]["fixed_cost_32px"] = time_degradation(c, tiny, max(iters, 10), warmup)
        results[mode]["ops_per_batch"] = count_ops(c, hr)
    if args.same_params:
        results["same_params"] = {stage: time_same_params(with_codec_prob(cfg, prob), hr, iters, warmup)
                                  for stage, prob in stages.items()}
    trainer_iters = max(2, iters // 2) if device.type == "cpu" else 50
    results["trainer_fp32"] = time_trainer(batch, device, trainer_iters, warmup, amp=False)
    if device.type == "cuda":
        results["trainer_bf16"] = time_trainer(batch, device, trainer_iters, warmup, amp=True)

    print(f"device: {results['device']} (torch {torch.__version__}, {results['cpu_threads']} CPU threads, "
          f"load average {results['load_average']})")
    if missing:
        print(f"note: encoders {missing} missing here; their share went to the others")
    print(f"batch {batch} of 256x256 HR -> 64x64 LR, config {args.config}, {iters} timed batches")
    for mode in modes:
        print(f"draw: {mode}")
        for key, r in results[mode].items():
            if key.startswith("degrade_"):
                print(f"  {key:<24} {r['samples_per_s']:8.1f} samples/s  ({r['ms_per_batch']:.1f} ms/batch)")
        r = results[mode]["fixed_cost_32px"]
        print(f"  {'fixed cost (32x32 HR)':<24} {r['ms_per_batch']:8.2f} ms/batch (best {r['best_ms']:.2f})")
        print(f"  {'tensor ops per batch':<24} {results[mode]['ops_per_batch']:8.0f}")
    trainers = {k: v for k, v in results.items() if k.startswith("trainer_")}
    for key, r in trainers.items():
        print(f"  {key:<24} {r['samples_per_s']:8.1f} samples/s  ({r['ms_per_step']:.1f} ms/step, SRVGGNetCompact x4)")
    fastest = max(trainers.values(), key=lambda r: r["samples_per_s"])["samples_per_s"]
    verdict: dict = {}
    for mode in modes:
        for key, r in results[mode].items():
            if not key.startswith("degrade_"):
                continue
            ratio = r["samples_per_s"] / fastest
            keeps = ratio >= 1
            verdict[f"{mode}/{key}"] = {"keeps_up": keeps, "ratio": ratio}
            if keeps:
                print(f"  {mode}/{key}: keeps up ({ratio:.2f}x the fastest trainer)")
            else:
                print(f"  {mode}/{key}: does NOT keep up: {ratio:.2f}x the trainer, short by "
                      f"{fastest - r['samples_per_s']:.0f} samples/s ({1 / ratio:.1f}x slower)")
    for stage, r in results.get("same_params", {}).items():
        print(f"  same draws, {stage}: per-sample path {r['per_sample_path_ms_per_batch']:.1f} ms/batch, "
              f"batched path {r['per_batch_path_ms_per_batch']:.1f} ms/batch")
    if len(modes) == 2:
        for stage in stages:
            key = f"degrade_{stage}"
            speedup = results["per_batch"][key]["samples_per_s"] / results["per_sample"][key]["samples_per_s"]
            print(f"  per_batch vs per_sample, {stage}: {speedup:.2f}x")
    results["verdict"] = verdict
    if args.feed:
        results["feed"] = measure_feed(args, device)
        print_feed(results["feed"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
