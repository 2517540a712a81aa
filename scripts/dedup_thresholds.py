"""Measure the held-frame statistics on real anime art, to check or re-derive the thresholds.

Renders tests/data/images/anime art animated on twos and threes (plus slow pans, a lip
flap and a fade), encodes it with x264 and x265 at several CRFs with a keyframe every
12 frames, decodes it as vidsr does, and prints, per encode, the largest value of each
statistic over the truly held frames against the smallest over each kind of real change,
then what the detector with its default thresholds finds. Markdown on stdout.

    python scripts/dedup_thresholds.py [--size 480x270] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from anime_clip import Shot, decode, encode, held_truth, render  # noqa: E402
from vidsr.engine.dedup import HeldFrameDetector, HeldThresholds, _Reference, compare, half_size  # noqa: E402

SHOTS = {
    "twos": Shot(36, pan_px=0.5, pan_every=2, sprite_px=1, sprite_every=2, poses_every=6),
    "threes": Shot(36, pan_px=0.25, pan_every=3, sprite_px=0.5, sprite_every=3),
    "pan 1s + char 2s": Shot(24, pan_px=0.25, pan_every=1, sprite_every=2, sprite_px=1),
    "lips on 3s": Shot(24, sprite_every=3, poses_every=3),
    "fade 3 s": Shot(24, sprite_every=2, fade=1 / 72),
    "pan 0.1 px": Shot(24, pan_px=0.1),
    "pan 0.25 px": Shot(24, pan_px=0.25),
}
ENCODES = [("libx264", 18, "medium"), ("libx264", 23, "veryfast"), ("libx264", 23, "slow"),
           ("libx264", 28, "medium"), ("libx265", 23, "medium"), ("libx265", 28, "fast"),
           ("libx265", 28, "medium")]
STATS = ["local", "mean", "tile_mean", "motion_px"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="480x270")
    ap.add_argument("--out", type=Path, default=None, help="keep the encoded clips here")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    names = list(SHOTS)
    kind: list[str] = []
    first: set[int] = set()
    for name, shot in SHOTS.items():
        first.add(len(kind))
        kind += [name] * shot.frames
    frames = render(ROOT / "tests" / "data" / "images" / "anime", list(SHOTS.values()), width=w, height=h)
    truth = held_truth(frames)
    out = args.out or Path(tempfile.mkdtemp(prefix="vidsr-dedup-"))
    out.mkdir(parents=True, exist_ok=True)
    t = HeldThresholds()
    print(f"{w}x{h}, {len(frames)} frames, {sum(truth)} held; thresholds {t}\n")
    print("| encode | statistic | held: max | " + " | ".join(f"{n}: min" for n in names) + " |")
    print("| --- | --- | ---: | " + " | ".join("---:" for _ in names) + " |")
    results = []
    for codec, crf, preset in ENCODES:
        path = encode(frames, out / f"{codec}_crf{crf}_{preset}.mp4", codec=codec, crf=crf, preset=preset, keyint=12)
        dec = decode(path)
        halves = [half_size(f) for f in dec]
        diffs = {i: compare(_Reference(halves[i - 1]), halves[i]) for i in range(1, len(dec)) if i not in first}
        for stat in STATS:
            held = [abs(getattr(d, stat)) for i, d in diffs.items() if truth[i]]
            cells = []
            for n in names:
                moving = [abs(getattr(d, stat)) for i, d in diffs.items() if not truth[i] and kind[i] == n]
                cells.append(f"{min(moving):.3g}" if moving else "-")
            print(f"| {codec} CRF {crf} {preset} | {stat} | {max(held):.3g} | " + " | ".join(cells) + " |")
        det = HeldFrameDetector()
        start = time.perf_counter()
        got = [det.is_held(f) for f in dec]
        ms = (time.perf_counter() - start) / len(dec) * 1000
        wrong = [i for i, g in enumerate(got) if g and not truth[i]]
        found = sum(g and tr for g, tr in zip(got, truth))
        results.append((f"{codec} CRF {crf} {preset}", found, wrong, ms))
    print("\n| encode | held frames found | changed frames reused (by shot) | detector ms/frame |")
    print("| --- | ---: | --- | ---: |")
    for label, found, wrong, ms in results:
        by_shot = {n: sum(kind[i] == n for i in wrong) for n in names}
        text = ", ".join(f"{n} {c}" for n, c in by_shot.items() if c) or "none"
        print(f"| {label} | {found}/{sum(truth)} | {text} | {ms:.2f} |")
    print(f"\nclips in {out}; numbers from one run on {np.__name__} {np.__version__}")


if __name__ == "__main__":
    main()
