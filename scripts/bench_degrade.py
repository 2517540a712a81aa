#!/usr/bin/env python3
"""How fast the degradation pipeline makes training pairs, against how fast a trainer eats them.

Degrades batches of 256x256 HR patches to x4 LR (64x64) with the shipped config, with the
codec stage off, at the config's probability, and always on; then times training steps
of an SRVGGNetCompact-sized network (64 features, 16 convolutions, x4) on the same batch
size, forward + backward + Adam, and says whether the pipeline keeps up.

    python scripts/bench_degrade.py [--device cpu|cuda] [--batch 16] [--iters N] [--json out.json]

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
    with HighOrderDegradation(cfg, seed=0) as pipeline:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=None, help="timed batches [default: 3 on CPU, 30 on CUDA]")
    parser.add_argument("--config", default="realesrgan_video", help="shipped config name or YAML path")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device")
    iters = args.iters or (3 if device.type == "cpu" else 30)
    warmup = 1 if device.type == "cpu" else 5
    cfg = load_config(args.config)
    have = set(available_codecs())
    missing = [c for c, p in cfg.codec.codec_probs.items() if p > 0 and c not in have]
    if missing:
        # Measure with the encoders this machine has rather than not at all; said in the output.
        kept = {c: p for c, p in cfg.codec.codec_probs.items() if c in have and p > 0}
        total = sum(kept.values())
        cfg = dataclasses.replace(cfg, codec=dataclasses.replace(
            cfg.codec, codec_probs={c: p / total for c, p in kept.items()}))

    hr = synthetic_hr(args.batch, 256, device)
    off = dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, prob=0.0))
    always = dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, prob=1.0))
    results: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "batch": args.batch, "hr": 256, "scale": 4, "iters": iters, "config": args.config,
        "codecs_missing": missing,
    }
    results["degrade_no_codec"] = time_degradation(off, hr, iters, warmup)
    results[f"degrade_codec_p{cfg.codec.prob:g}"] = time_degradation(cfg, hr, iters, warmup)
    results["degrade_codec_always"] = time_degradation(always, hr, iters, warmup)
    trainer_iters = max(2, iters // 2) if device.type == "cpu" else 50
    results["trainer_fp32"] = time_trainer(args.batch, device, trainer_iters, warmup, amp=False)
    if device.type == "cuda":
        results["trainer_bf16"] = time_trainer(args.batch, device, trainer_iters, warmup, amp=True)

    print(f"device: {results['device']} (torch {torch.__version__}, {results['cpu_threads']} CPU threads)")
    if missing:
        print(f"note: encoders {missing} missing here; their share went to the others")
    print(f"batch {args.batch} of 256x256 HR -> 64x64 LR, config {args.config}, {iters} timed batches")
    for key, r in results.items():
        if key.startswith("degrade_"):
            print(f"  {key:<24} {r['samples_per_s']:8.1f} samples/s  ({r['ms_per_batch']:.1f} ms/batch)")
    trainers = {k: v for k, v in results.items() if k.startswith("trainer_")}
    for key, r in trainers.items():
        print(f"  {key:<24} {r['samples_per_s']:8.1f} samples/s  ({r['ms_per_step']:.1f} ms/step, SRVGGNetCompact x4)")
    fastest = max(trainers.values(), key=lambda r: r["samples_per_s"])["samples_per_s"]
    verdict = {}
    for key, r in results.items():
        if key.startswith("degrade_"):
            ratio = r["samples_per_s"] / fastest
            keeps = ratio >= 1
            verdict[key] = {"keeps_up": keeps, "ratio": ratio}
            if keeps:
                print(f"  {key}: keeps up ({ratio:.2f}x the fastest trainer)")
            else:
                print(f"  {key}: does NOT keep up: {ratio:.2f}x the trainer, short by "
                      f"{fastest - r['samples_per_s']:.0f} samples/s ({1 / ratio:.1f}x slower)")
    results["verdict"] = verdict
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
