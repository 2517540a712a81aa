"""x264 inside vidsr against x264 alone, on the same frames and settings (issue 13, item 2).

Frames are decoded once from a real clip, scaled to the output size in yuv420p (what
vidsr's device formatter hands the encoder) and kept in memory; then each way of
encoding them is timed:

- vidsr-pyav: vidsr's PyAVEncoder as it is (open_encoder(backend="pyav")), fed batches.
- pyav-slice: plain PyAV calls with PyAV's default thread_type (SLICE), which is what
  vidsr's PyAVEncoder used before it set AUTO: x264 then runs sliced threads.
- pyav-auto: the same PyAV calls with the codec context's thread_type set to AUTO.
- pyav-auto-thread: pyav-auto in a consumer thread, fed through a bounded queue by a
  producer thread copying each batch out of a buffer (the pipeline's shape), to show
  the cost of the hand-off and the GIL.
- vidsr-ffmpeg: vidsr's FfmpegProcessEncoder (raw frames piped to an ffmpeg process).
- ffmpeg-file: the ffmpeg binary alone, reading the same frames from a raw file.

Each row gives frames per second, CPU seconds per frame (this process's, or the
children's for ffmpeg) and the threading x264 reports in its SEI (threads,
lookahead_threads, sliced_threads). The ffmpeg rows need an ffmpeg binary (none on
the GPU machine: they are skipped there).

    python scripts/bench_encoder_gap.py [--size 1920x1080] [--frames 240] [--preset veryfast] [--crf 18]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402

from vidsr.io.color import ColorInfo  # noqa: E402
from vidsr.io.encode import EncodeSettings, find_ffmpeg, open_encoder  # noqa: E402

COLOR = ColorInfo("ITU709", False, 1, 1)
BATCH = 8


def frames_at(clip: Path, width: int, height: int, count: int) -> list[np.ndarray]:
    """`count` yuv420p frames [h*3/2, w] of the clip scaled to width x height, looping the clip if short."""
    out: list[np.ndarray] = []
    with av.open(str(clip)) as c:
        for f in c.decode(video=0):
            out.append(f.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC").to_ndarray())
    return [out[i % len(out)] for i in range(count)]


def x264_threads(path: Path) -> str:
    with av.open(str(path)) as c:
        for p in c.demux(c.streams.video[0]):
            m = re.search(rb"options: ([^\x00]*)", bytes(p))
            if m:
                keep = ("threads", "lookahead_threads", "sliced_threads")
                return " ".join(o for o in m.group(1).decode(errors="replace").split() if o.split("=")[0] in keep)
    return "?"


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_vidsr(frames: list[np.ndarray], path: Path, settings: EncodeSettings, w: int, h: int) -> None:
    enc = open_encoder(path, width=w, height=h, rate=Fraction(25), color=COLOR, settings=settings,
                       container_format="mp4", input_pix_fmt="yuv420p")
    for i in range(0, len(frames), BATCH):
        enc.write(np.stack(frames[i:i + BATCH]))
    enc.close()


def pyav_encoder(path: Path, settings: EncodeSettings, w: int, h: int, thread_type: str | None):
    out = av.open(str(path), "w", format="mp4")
    stream = out.add_stream(settings.codec, rate=Fraction(25), options=settings.codec_options())
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    if thread_type:
        stream.codec_context.thread_type = thread_type
    return out, stream


def run_pyav(frames: list[np.ndarray], path: Path, settings: EncodeSettings, w: int, h: int,
             thread_type: str | None = "AUTO") -> None:
    out, stream = pyav_encoder(path, settings, w, h, thread_type)
    for i, img in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
    out.close()


def run_pyav_threaded(frames: list[np.ndarray], path: Path, settings: EncodeSettings, w: int, h: int) -> None:
    out, stream = pyav_encoder(path, settings, w, h, "AUTO")
    q: queue.Queue = queue.Queue(maxsize=2)

    def consume() -> None:
        k = 0
        while (batch := q.get()) is not None:
            for img in batch:
                frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
                frame.pts = k
                k += 1
                out.mux(stream.encode(frame))

    t = threading.Thread(target=consume)
    t.start()
    buf = np.empty((BATCH, *frames[0].shape), np.uint8)
    for i in range(0, len(frames), BATCH):
        n = len(frames[i:i + BATCH])
        np.copyto(buf[:n], np.stack(frames[i:i + BATCH]))  # the pipeline's download into a host buffer
        q.put(buf[:n].copy())
    q.put(None)
    t.join()
    out.mux(stream.encode(None))
    out.close()


def run_ffmpeg_file(frames: list[np.ndarray], path: Path, settings: EncodeSettings, w: int, h: int,
                    exe: str, raw: Path) -> None:
    opts = [x for k, v in settings.codec_options().items() for x in (f"-{k}", v)]
    subprocess.run([exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt",
                    "yuv420p", "-s", f"{w}x{h}", "-framerate", "25", "-i", str(raw), "-c:v", settings.codec, *opts,
                    "-pix_fmt", "yuv420p", str(path)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=ROOT / "vidsr" / "assets" / "earth_1s.mp4")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--codec", default="libx264")
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--crf", type=float, default=18)
    ap.add_argument("--repeat", type=int, default=2, help="rounds; each row's best round is kept")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    frames = frames_at(args.clip, w, h, args.frames)
    settings = EncodeSettings(codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt="yuv420p")
    exe = find_ffmpeg()
    folder = Path(tempfile.mkdtemp(prefix="vidsr-encgap-"))
    raw = folder / "frames.yuv"
    if exe:
        with raw.open("wb") as f:
            for img in frames:
                f.write(img.tobytes())
    rows: dict[str, list] = {
        "vidsr-pyav": [lambda p: run_vidsr(frames, p, EncodeSettings(**{**settings.__dict__, "backend": "pyav"}), w, h),
                       cpu_self],
        "pyav-slice": [lambda p: run_pyav(frames, p, settings, w, h, thread_type=None), cpu_self],
        "pyav-auto": [lambda p: run_pyav(frames, p, settings, w, h), cpu_self],
        "pyav-auto-thread": [lambda p: run_pyav_threaded(frames, p, settings, w, h), cpu_self],
    }
    if exe:
        rows["vidsr-ffmpeg"] = [lambda p: run_vidsr(frames, p, EncodeSettings(**{**settings.__dict__,
                                                                                  "backend": "ffmpeg"}), w, h),
                                lambda: cpu_self() + cpu_children()]
        rows["ffmpeg-file"] = [lambda p: run_ffmpeg_file(frames, p, settings, w, h, exe, raw), cpu_children]
    results: dict[str, dict] = {}
    load_before = os.getloadavg()
    for _ in range(args.repeat):
        for name, (fn, cpu) in rows.items():
            path = folder / f"{name}.mp4"
            c0, t0 = cpu(), time.perf_counter()
            fn(path)
            wall, cpu_s = time.perf_counter() - t0, cpu() - c0
            best = results.get(name)
            if best is None or wall < best["wall_s"]:
                results[name] = {"wall_s": round(wall, 3), "fps": round(len(frames) / wall, 1),
                                 "cpu_ms_per_frame": round(1000 * cpu_s / len(frames), 2),
                                 "x264": x264_threads(path) if args.codec == "libx264" else "",
                                 "bytes": path.stat().st_size}
    base = results.get("ffmpeg-file") or results["pyav-auto"]
    for r in results.values():
        r["vs_alone"] = round(r["fps"] / base["fps"], 3)
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
              "versions": {"av": av.__version__, "ffmpeg": exe or "none"},
              "config": {"clip": str(args.clip), "size": [w, h], "frames": len(frames), "codec": args.codec,
                         "preset": args.preset, "crf": args.crf, "alone": "ffmpeg-file" if exe else "pyav-auto"},
              "rows": results}
    print(f"{args.codec} {args.preset} CRF {args.crf:g}, {w}x{h}, {len(frames)} frames; {os.cpu_count()} cores, "
          f"load {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}; 'alone' = {report['config']['alone']}\n")
    print("| way | fps | CPU ms/frame | x264 threading | vs alone | bytes |")
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['fps']} | {r['cpu_ms_per_frame']} | {r['x264']} | {r['vs_alone']:.2f}x | {r['bytes']} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
