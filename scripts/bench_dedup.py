"""`--dedup` on anime drawn on twos and threes: frames per second with and without, and how close.

The clip is real anime art (tests/data/images/anime) animated the way anime is drawn
(tests/anime_clip.py): shots on twos, on threes, a close-up whose lips move on threes,
and a pan on ones under a character on twos; encoded with x264 at CRF 20. Each run is
`vidsr upscale` as a library call on the same clip, same model and settings, without
and with --dedup, alternating for `--pairs` pairs; fps is frames / the run's own seconds
(model loading excluded, as in `vidsr bench`). Every output frame of the --dedup run is
compared with the same frame of the run without it (PSNR over RGB).

    python scripts/bench_dedup.py [--size 480x270] [--device cpu] [--pairs 1] [--json docs/bench/cpu_dedup.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import av  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from anime_clip import Shot, encode, held_truth, render  # noqa: E402
from vidsr.engine.cpu_memory import keep_freed_memory  # noqa: E402
from vidsr.engine.device import pick_device  # noqa: E402
from vidsr.engine.video import UpscaleOptions, upscale_video  # noqa: E402
from vidsr.io.encode import EncodeSettings  # noqa: E402
from vidsr.models import load_model  # noqa: E402

# About 3.5 s at 24 fps, as a TV episode mixes its shots.
SHOTS = [
    Shot(24, pan_px=0.5, pan_every=2, sprite_px=1, sprite_every=2, poses_every=6),
    Shot(24, pan_px=0.25, pan_every=3, sprite_px=0.5, sprite_every=3, poses_every=9),
    Shot(24, sprite_every=3, poses_every=3),
    Shot(12, pan_px=0.25, sprite_every=2, sprite_px=1),
]


def rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255**2 / mse) if mse else float("inf")


def cpu_times() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="480x270")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="animevideov3")
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    device = pick_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()  # as `vidsr upscale` does on the CPU
    folder = Path(tempfile.mkdtemp(prefix="vidsr-dedup-bench-"))
    frames = render(ROOT / "tests" / "data" / "images" / "anime", SHOTS, width=w, height=h)
    clip = encode(frames, folder / "anime.mp4", crf=20, keyint=48)
    model = load_model(args.model)
    base = UpscaleOptions(model=args.model, scale=args.scale, device=args.device, batch=args.batch, progress=False,
                          overwrite=True, encode=EncodeSettings(preset=args.preset))
    runs = []
    load_before = os.getloadavg()
    for pair in range(args.pairs):
        order = [False, True] if pair % 2 == 0 else [True, False]
        for dedup in order:
            out = folder / f"{'dedup' if dedup else 'plain'}_{pair}.mp4"
            u0, s0 = cpu_times()
            t0 = time.perf_counter()
            result = upscale_video(clip, out, dataclasses.replace(base, dedup=dedup), model=model)
            wall = time.perf_counter() - t0
            u1, s1 = cpu_times()
            runs.append({"pair": pair, "dedup": dedup, "frames": result.frames, "reused": result.reused,
                         "seconds": round(result.seconds, 3), "fps": round(result.fps, 3), "wall_s": round(wall, 3),
                         "user_s": round(u1 - u0, 2), "sys_s": round(s1 - s0, 2),
                         "sys_share": round((s1 - s0) / ((u1 - u0) + (s1 - s0)), 4)})
            print(f"pair {pair} dedup={dedup}: {result.frames} frames, {result.reused} reused, "
                  f"{result.fps:.2f} fps", file=sys.stderr, flush=True)
    plain, dedup = rgb_frames(folder / "plain_0.mp4"), rgb_frames(folder / "dedup_0.mp4")
    db = [psnr(a, b) for a, b in zip(dedup, plain)]
    speedups = [next(r["fps"] for r in runs if r["pair"] == p and r["dedup"]) /
                next(r["fps"] for r in runs if r["pair"] == p and not r["dedup"]) for p in range(args.pairs)]
    report = {
        "machine": {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                    or platform.machine(), "cores": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg(), "torch": torch.__version__},
        "config": {"size": [w, h], "frames": len(frames), "held_in_drawing": int(sum(held_truth(frames))),
                   "model": args.model, "scale": args.scale, "device": str(device), "batch": args.batch,
                   "encode": f"libx264 {args.preset} CRF 18", "source": "tests/anime_clip.py, x264 CRF 20"},
        "runs": runs,
        "speedup_per_pair": [round(s, 3) for s in speedups],
        "psnr_db": {"min": round(float(min(db)), 2), "frames_below_40": int(sum(d < 40 for d in db)),
                    "frames": len(db), "equal_counts": len(dedup) == len(plain)},
    }
    print(f"{w}x{h} -> x{args.scale:g}, {len(frames)} frames ({report['config']['held_in_drawing']} held in the "
          f"drawing), {args.model} on {device}; load {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}\n")
    print("| pair | --dedup | frames | reused | fps | sys share |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for r in runs:
        print(f"| {r['pair']} | {'on' if r['dedup'] else 'off'} | {r['frames']} | {r['reused']} | {r['fps']:.2f} | "
              f"{100 * r['sys_share']:.1f}% |")
    print(f"\nspeed-up per pair: {', '.join(f'{s:.2f}x' for s in speedups)}; every --dedup frame against the run "
          f"without: min {min(db):.1f} dB, {report['psnr_db']['frames_below_40']} below 40 dB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
