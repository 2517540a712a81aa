#!/usr/bin/env python3
"""The device JPEG (vidsr.degrade.torch_jpeg) against libjpeg: how close, and how fast.

On real crops (tests/data images), at qualities 30..95: PSNR between the device JPEG's
output and libjpeg's (torchvision), each one's loss against the clean crop, and, on a
GPU, whether the GPU gives the CPU's result. Then the time per batch of 16 crops at 64
and 256 px of the device JPEG on ``--device`` against libjpeg-turbo on the CPU (one
thread, one image at a time, as the ``libjpeg`` codec runs without encoder threads).

    python scripts/bench_jpeg.py [--device cuda] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from vidsr.degrade import ops  # noqa: E402
from vidsr.degrade.torch_jpeg import jpeg_torch  # noqa: E402
from vidsr.train.data import find_media, image_tensor as read_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def crops(side: int, n: int) -> torch.Tensor:
    out = []
    files = find_media([REPO / "tests" / "data" / "images"])
    i = 0
    while len(out) < n:
        img = read_image(files[i % len(files)])
        h, w = img.shape[1:]
        k = i // len(files)
        top, left = (h - side) * (k % 3 + 1) // 4, (w - side) * ((k + 1) % 3 + 1) // 4
        out.append(img[:, top:top + side, left:left + side])
        i += 1
    return torch.stack(out).float() / 255


def timed(fn, device: torch.device, reps: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / reps * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
                    "torch": torch.__version__, "quality": {}, "ms_per_batch": {}}
    x = crops(64, 16)
    for q in (30, 50, 70, 95):
        ours = jpeg_torch(x.to(device), q).cpu()
        lib = ops.jpeg(x, q, codec="libjpeg")
        row = {"psnr_vs_libjpeg_mean": float(ops.psnr(ours, lib).mean()),
               "psnr_vs_libjpeg_min": float(ops.psnr(ours, lib).min()),
               "loss_db_device": float(ops.psnr(ours, x).mean()), "loss_db_libjpeg": float(ops.psnr(lib, x).mean())}
        if device.type == "cuda":
            row["gpu_equals_cpu"] = bool(torch.equal(ours, jpeg_torch(x, q)))
        report["quality"][q] = row
        print(f"q{q}: device vs libjpeg {row['psnr_vs_libjpeg_mean']:.1f} dB (min {row['psnr_vs_libjpeg_min']:.1f}); "
              f"against the clean crop {row['loss_db_device']:.2f} vs {row['loss_db_libjpeg']:.2f} dB"
              + (f"; GPU == CPU: {row['gpu_equals_cpu']}" if "gpu_equals_cpu" in row else ""))
    torch.set_num_threads(1)
    for side in (64, 256):
        batch = crops(side, 16)
        qs = list(range(40, 56))
        on_device = batch.to(device)
        t_dev = timed(lambda: jpeg_torch(on_device, qs), device, args.reps)
        t_lib = timed(lambda: ops.jpeg(batch, qs, codec="libjpeg"), torch.device("cpu"), args.reps)
        report["ms_per_batch"][side] = {"device_jpeg": t_dev, "libjpeg_1_thread": t_lib}
        print(f"16 x {side}x{side}: device JPEG on {device} {t_dev:.2f} ms, libjpeg-turbo (1 CPU thread) {t_lib:.2f} ms")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
