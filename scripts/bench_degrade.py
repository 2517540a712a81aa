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

The HR patches are synthetic (smooth multi-scale texture with sharp edges), so the
numbers do not depend on files that may be missing on a measuring machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidsr.bench.op_count import OpCounter  # noqa: E402
from vidsr.degrade import HighOrderDegradation, available_codecs, load_config  # noqa: E402
from vidsr.degrade.config import DegradationConfig  # noqa: E402


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


def time_trainer(batch: int, device: torch.device, iters: int, warmup: int, amp: bool) -> dict:
    torch.manual_seed(0)
    net = CompactNet().to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    lr = torch.rand(batch, 3, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    gt = torch.rand(batch, 3, 256, 256, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = net(lr)
        loss = F.l1_loss(out.float(), gt)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    mean = (time.perf_counter() - t0) / iters
    return {"ms_per_step": 1000 * mean, "samples_per_s": batch / mean}


def with_codec_prob(cfg: DegradationConfig, prob: float) -> DegradationConfig:
    return dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, prob=prob))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=16)
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
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    iters = args.iters or (5 if device.type == "cpu" else 30)
    warmup = 2 if device.type == "cpu" else 5
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

    hr = synthetic_hr(args.batch, 256, device)
    tiny = synthetic_hr(args.batch, 32, device)
    results: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "batch": args.batch, "hr": 256, "scale": 4, "iters": iters, "config": args.config,
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
    results["trainer_fp32"] = time_trainer(args.batch, device, trainer_iters, warmup, amp=False)
    if device.type == "cuda":
        results["trainer_bf16"] = time_trainer(args.batch, device, trainer_iters, warmup, amp=True)

    print(f"device: {results['device']} (torch {torch.__version__}, {results['cpu_threads']} CPU threads, "
          f"load average {results['load_average']})")
    if missing:
        print(f"note: encoders {missing} missing here; their share went to the others")
    print(f"batch {args.batch} of 256x256 HR -> 64x64 LR, config {args.config}, {iters} timed batches")
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
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
