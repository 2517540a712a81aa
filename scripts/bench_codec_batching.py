#!/usr/bin/env python3
"""Would batching small clips into one encoder call keep the codec damage the same?

The codec stage encodes each training clip (5 frames of 32..80 px at the LR size) with
its own encoder. Opening an encoder costs about as much as encoding such a clip, so
packing many clips into one call would be cheaper, if the damage stayed the same. Two
ways, both with the same settings for every clip packed (the feed draws settings per
clip, so batching would also mean drawing them per group):

* ``tile``: clips side by side in one larger frame (2x2, 4x4);
* ``concat``: clips one after another in one stream, a key frame at each clip's start
  (the GOP is the clip length).

For each codec setting and packing, the script compares every clip's damage (PSNR of
the decoded clip against the clean one) with the damage it gets when encoded alone, and
times both (seconds per clip). Crops come from real images, moved by sub-pixel camera
pans as the pipeline does for stills; the damage figures are deterministic, the times
depend on the machine's load.

    python scripts/bench_codec_batching.py [--images DIR] [--clips 32] [--size 64] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from vidsr.degrade.codec import MotionParams, synthesize_motions  # noqa: E402
from vidsr.degrade.encoders import CodecParams, compress_frames  # noqa: E402
from vidsr.train.data import find_media, image_tensor as read_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

SETTINGS = {
    "x264 crf28 veryfast bf2": CodecParams("libx264", "crf", crf=28, preset="veryfast", gop=5, bframes=2),
    "x264 crf35 medium": CodecParams("libx264", "crf", crf=35, preset="medium", gop=5, bframes=0),
    "x264 0.15bpp veryfast": CodecParams("libx264", "bitrate", bitrate_bpp=0.15, preset="veryfast", gop=5),
    "x265 crf32 fast": CodecParams("libx265", "crf", crf=32, preset="fast", gop=5, bframes=1),
    "mpeg4 q8": CodecParams("mpeg4", "crf", crf=8, gop=5, bframes=1),
    "vp9 crf45": CodecParams("libvpx-vp9", "crf", crf=45, gop=5),
}


def make_clips(images: Path, n: int, size: int, frames: int, seed: int) -> np.ndarray:
    """``[n, T, size, size, 3]`` uint8: HR crops at 4x the size, panned and zoomed, area-downscaled by 4."""
    files = [f for f in find_media([images]) if f.suffix.lower() in (".png", ".jpg", ".jpeg")]
    g = torch.Generator().manual_seed(seed)
    hr_side = 4 * size
    crops, motions = [], []
    while len(crops) < n:
        img = read_image(files[int(torch.randint(len(files), (1,), generator=g))])
        h, w = img.shape[1:]
        if h < hr_side or w < hr_side:
            continue
        top = int(torch.randint(h - hr_side + 1, (1,), generator=g))
        left = int(torch.randint(w - hr_side + 1, (1,), generator=g))
        crop = img[:, top:top + hr_side, left:left + hr_side].float() / 255
        if crop.std() < 0.03:  # flat: nothing for a codec to damage
            continue
        crops.append(crop)
        angle = float(torch.rand((), generator=g)) * 2 * math.pi
        speed = 4 * float(torch.rand((), generator=g))
        motions.append(MotionParams(frames=frames, ref=frames // 2, dx=speed * math.cos(angle),
                                    dy=speed * math.sin(angle), zoom=0.004 * (float(torch.rand((), generator=g)) - 0.5)))
    clips = synthesize_motions(torch.stack(crops), motions)
    lr = [torch.nn.functional.avg_pool2d(c, 4) for c in clips]
    return np.stack([(c.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy() for c in lr])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


def alone(clips: np.ndarray, p: CodecParams) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = np.stack([compress_frames(c, p) for c in clips])
    return out, time.perf_counter() - t0


def tiled(clips: np.ndarray, p: CodecParams, k: int) -> tuple[np.ndarray, float]:
    """Groups of k*k clips as the tiles of one k-times larger frame."""
    n, t, s, _, c = clips.shape
    out = np.empty_like(clips)
    t0 = time.perf_counter()
    for start in range(0, n - k * k + 1, k * k):
        group = clips[start:start + k * k].reshape(k, k, t, s, s, c)
        mosaic = np.ascontiguousarray(group.transpose(2, 0, 3, 1, 4, 5).reshape(t, k * s, k * s, c))
        dec = compress_frames(mosaic, p).reshape(t, k, s, k, s, c).transpose(1, 3, 0, 2, 4, 5)
        out[start:start + k * k] = dec.reshape(k * k, t, s, s, c)
    return out, time.perf_counter() - t0


def concatenated(clips: np.ndarray, p: CodecParams, m: int) -> tuple[np.ndarray, float]:
    """Groups of m clips one after another in one stream; GOP = clip length, so each clip starts a GOP."""
    n, t = clips.shape[:2]
    q = CodecParams(**{**p.__dict__, "gop": t})
    out = np.empty_like(clips)
    t0 = time.perf_counter()
    for start in range(0, n - m + 1, m):
        stream = np.ascontiguousarray(clips[start:start + m].reshape(m * t, *clips.shape[2:]))
        out[start:start + m] = compress_frames(stream, q).reshape(m, t, *clips.shape[2:])
    return out, time.perf_counter() - t0


def compare(clean: np.ndarray, ref: np.ndarray, other: np.ndarray) -> dict[str, float]:
    a = np.array([psnr(r, c) for r, c in zip(ref, clean)])
    b = np.array([psnr(o, c) for o, c in zip(other, clean)])
    d = b - a
    return {"psnr_alone": float(a.mean()), "psnr_packed": float(b.mean()), "mean_shift_db": float(d.mean()),
            "mean_abs_shift_db": float(np.abs(d).mean()), "max_abs_shift_db": float(np.abs(d).max()),
            "clips_shifted_over_0.5db": int((np.abs(d) > 0.5).sum()),
            "psnr_between_db": float(statistics.fmean(psnr(x, y) for x, y in zip(ref, other)))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=REPO / "tests" / "data" / "images")
    ap.add_argument("--clips", type=int, default=32, help="clips per setting (a multiple of 16)")
    ap.add_argument("--size", type=int, default=64, help="LR clip side")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    clips = make_clips(args.images, args.clips, args.size, args.frames, seed=0)
    report: dict = {"machine": platform.node(), "cpu": platform.processor(), "clips": args.clips,
                    "size": args.size, "frames": args.frames, "settings": {}}
    for name, p in SETTINGS.items():
        ref, t_alone = alone(clips, p)
        row: dict = {"s_per_clip_alone": t_alone / len(clips)}
        for label, fn in (("tile 2x2", lambda: tiled(clips, p, 2)), ("tile 4x4", lambda: tiled(clips, p, 4)),
                          ("concat 4", lambda: concatenated(clips, p, 4))):
            if label.startswith("concat"):
                ref_c, _ = alone(clips, CodecParams(**{**p.__dict__, "gop": args.frames}))  # the same GOP alone
                out, secs = fn()
                row[label] = {**compare(clips, ref_c, out), "s_per_clip": secs / len(clips)}
            else:
                out, secs = fn()
                row[label] = {**compare(clips, ref, out), "s_per_clip": secs / len(clips)}
        report["settings"][name] = row
        print(f"{name:<26} alone {row['tile 2x2']['psnr_alone']:6.2f} dB  "
              + "  ".join(f"{k}: shift {v['mean_shift_db']:+.2f} (|.| {v['mean_abs_shift_db']:.2f}, max "
                          f"{v['max_abs_shift_db']:.2f}) {v['s_per_clip'] * 1e3:.1f} ms/clip"
                          for k, v in row.items() if isinstance(v, dict))
              + f"  [alone {row['s_per_clip_alone'] * 1e3:.1f} ms/clip]")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
