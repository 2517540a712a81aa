"""Segmented upscaling with 1 vs N workers on the same device(s), timed in one run.

    python scripts/bench_workers.py --model .weights/animevideov3.safetensors --devices cuda:0 --workers 1,2

Each configuration runs `vidsr upscale --devices ...` (segments at keyframes; one worker
runs in this process, more run one worker process each) on the same input: the sample
clip looped and resized like `vidsr bench`.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from vidsr.bench import BenchConfig, make_input
from vidsr.engine.chunked import ChunkOptions, upscale_video_chunked
from vidsr.engine.options import UpscaleOptions
from vidsr.io.encode import EncodeSettings

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "earth_3s.mp4"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="animevideov3")
    ap.add_argument("--devices", default="cuda:0", help="device each worker uses, e.g. cuda:0 or cpu")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare")
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--segment-seconds", type=float, default=2.0)
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidsr-workers-") as tmp:
        clip = make_input(BenchConfig(source=SAMPLE, size=(w, h), frames=args.frames), Path(tmp))
        opts = UpscaleOptions(model=args.model, scale=args.scale, progress=False, overwrite=True,
                              encode=EncodeSettings(preset=args.preset))
        for n in (int(x) for x in args.workers.split(",")):
            chunks = ChunkOptions(devices=(args.devices,) * n, segment_seconds=args.segment_seconds,
                                  work_dir=Path(tmp) / f"job{n}")
            t0 = time.perf_counter()
            result = upscale_video_chunked(clip, Path(tmp) / f"out{n}.mp4", opts, chunks)
            seconds = time.perf_counter() - t0
            rows.append({"workers": n, "device": args.devices, "frames": result.frames, "seconds": seconds,
                         "fps": result.frames / seconds})
            print(f"{n} worker(s) on {args.devices}: {result.frames} frames in {seconds:.1f} s = "
                  f"{result.frames / seconds:.1f} fps (worker start-up included)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
