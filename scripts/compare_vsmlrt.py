"""vidsr against VapourSynth + vs-mlrt (ONNX Runtime, CPU) on the same clip, network and scale.

Run through scripts/compare_vsmlrt.sh, which sets up the VapourSynth side. Both sides
decode the clip, run animevideov3 in float32 on the CPU (vs-mlrt on an ONNX export of
vidsr's own module), resize to the requested scale, and encode with the same ffmpeg
binary and x264 settings (vs-mlrt as `vspipe -c y4m | ffmpeg`, the way it is used).
Each run's wall time, user and system CPU time, minor/major page faults and peak RSS
come from wait4() on the processes (their waited-for children included: vidsr's
encoder, the ffmpeg after vspipe). Runs alternate, so each vidsr run has a vs-mlrt run
next to it; ratios are per pair. JSON and a Markdown table are written.

Numbers only mean something on a quiet machine: nothing else running.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402

from vidsr.engine.upscaler import output_size  # noqa: E402
from vidsr.io.encode import find_ffmpeg  # noqa: E402
from vidsr.io.probe import probe_video  # noqa: E402

_ZIMG_MATRIX = {"ITU709": "709", "ITU601": "470bg", "SMPTE170M": "170m", "SMPTE240M": "240m", "BT2020": "2020ncl"}


@dataclass
class Run:
    tool: str
    pair: int
    wall_s: float
    user_s: float
    sys_s: float
    minor_faults: int
    major_faults: int
    max_rss_mib: float
    frames_out: int
    returncode: int

    @property
    def sys_share(self) -> float:
        cpu = self.user_s + self.sys_s
        return self.sys_s / cpu if cpu else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vspipe", required=True, help="vspipe of the VapourSynth environment (set by the .sh)")
    ap.add_argument("--input", type=Path, default=ROOT / "samples" / "earth_3s.mp4")
    ap.add_argument("--model", default="animevideov3")
    ap.add_argument("-s", "--scale", type=float, default=2.0)
    ap.add_argument("--frames", type=int, default=0, help="first N frames only (0: all)")
    ap.add_argument("--crf", type=float, default=18)
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--streams", type=int, default=1, help="vs-mlrt num_streams")
    ap.add_argument("--pairs", type=int, default=1, help="alternating vs-mlrt/vidsr pairs")
    ap.add_argument("--variant", action="append", default=[],
                    help="another vidsr row run with extra environment, NAME:KEY=VALUE,KEY=VALUE "
                         "(e.g. omp1:OMP_NUM_THREADS=1; `vidsr upscale` sets malloc's thresholds itself on the CPU)")
    ap.add_argument("--out", type=Path, default=Path("vsmlrt-compare"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    info = probe_video(args.input)
    out_w, out_h = output_size(info.width, info.height, args.scale, "yuv420p")
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        sys.exit("no ffmpeg binary (PATH or imageio-ffmpeg)")
    onnx = export_onnx(args.model, info.height, info.width, args.out)
    variants = [("vidsr", {})] + [parse_variant(v) for v in args.variant]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    vs_args = ["-a", f"src={args.input.resolve()}", "-a", f"onnx={onnx}", "-a", f"width={out_w}",
               "-a", f"height={out_h}", "-a", f"matrix={_ZIMG_MATRIX[info.color.matrix]}",
               "-a", f"range={'full' if info.color.full_range else 'limited'}", "-a", f"frames={args.frames}",
               "-a", f"streams={args.streams}"]
    vpy = str(ROOT / "scripts" / "vsmlrt_upscale.vpy")
    # Index the source once, untimed (bestsource caches it), so the timed runs compare steady states.
    subprocess.run([args.vspipe, "--info", *vs_args, vpy, "-"], env=env, check=True, capture_output=True)
    x264 = ["-c:v", "libx264", "-crf", f"{args.crf:g}", "-preset", args.preset, "-pix_fmt", "yuv420p"]

    load_before = os.getloadavg()
    runs: list[Run] = []
    for pair in range(args.pairs):
        order = ["vs-mlrt"] + [name for name, _ in variants]
        if pair % 2:
            order.reverse()  # alternate who goes first, so drift in the machine's state hits both
        for tool in order:
            out = args.out / f"{tool}_{pair}.mp4"
            out.unlink(missing_ok=True)
            if tool == "vs-mlrt":
                runs.append(measure(tool, pair, [
                    [args.vspipe, "-c", "y4m", *vs_args, vpy, "-"],
                    [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "yuv4mpegpipe", "-i", "-",
                     *x264, str(out)]], env, out))
            else:
                extra = dict(variants)[tool]
                cmd = [sys.executable, "-m", "vidsr", "upscale", str(args.input), "-o", str(out), "-m", args.model,
                       "-s", f"{args.scale:g}", "--device", "cpu", "--crf", f"{args.crf:g}", "--preset",
                       args.preset, "--encoder", "ffmpeg", "-y", "-q"]
                if args.frames:
                    cmd += ["--frames", str(args.frames)]
                runs.append(measure(tool, pair, [cmd], {**env, **extra}, out))
            r = runs[-1]
            print(f"pair {pair} {tool}: {r.wall_s:.1f} s wall, {r.user_s:.1f} user, {r.sys_s:.1f} sys, "
                  f"{r.minor_faults} minor faults, {r.frames_out} frames", file=sys.stderr, flush=True)
    report = {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "versions": versions(args.vspipe),
        "config": {"input": str(args.input), "frames_in": args.frames or info.frames, "size": [info.width, info.height],
                   "out_size": [out_w, out_h], "scale": args.scale, "model": args.model, "crf": args.crf,
                   "preset": args.preset, "vsmlrt_streams": args.streams, "ffmpeg": ffmpeg,
                   "variants": {name: extra for name, extra in variants}},
        "runs": [{**asdict(r), "sys_share": round(r.sys_share, 4)} for r in runs],
        "summary": summarize(runs, [name for name, _ in variants]),
        "agreement_psnr_db": agreement(args.out / "vidsr_0.mp4", args.out / "vs-mlrt_0.mp4"),
    }
    (args.out / "compare_vsmlrt.json").write_text(json.dumps(report, indent=1))
    table = format_table(report)
    (args.out / "compare_vsmlrt.md").write_text(table)
    print(table)


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    name, _, pairs = spec.partition(":")
    env = dict(p.split("=", 1) for p in pairs.split(",") if p)
    return f"vidsr[{name}]", env


def export_onnx(model_name: str, height: int, width: int, folder: Path) -> Path:
    """vidsr's own module as ONNX at the clip's size, float32 (what vs-mlrt gets as RGBS)."""
    import torch

    from vidsr.models import load_model

    path = folder / f"{model_name}_{width}x{height}.onnx"
    if path.exists():
        return path.resolve()
    model = load_model(model_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model.module.float().eval(), torch.rand(1, 3, height, width), str(path),
                          input_names=["input"], output_names=["output"], opset_version=17, dynamo=False)
    return path.resolve()


def measure(tool: str, pair: int, commands: list[list[str]], env: dict[str, str], out: Path) -> Run:
    """Run `commands` as a pipeline; totals of wait4() over its processes."""
    procs: list[subprocess.Popen] = []
    start = time.perf_counter()
    for i, cmd in enumerate(commands):
        stdin = procs[-1].stdout if procs else subprocess.DEVNULL
        stdout = subprocess.PIPE if i < len(commands) - 1 else subprocess.DEVNULL
        procs.append(subprocess.Popen(cmd, stdin=stdin, stdout=stdout, env=env))
        if i:
            procs[-2].stdout.close()  # the next process owns the pipe now
    user = sys_ = 0.0
    minflt = majflt = 0
    rss = 0
    rc = 0
    for p in procs:
        _pid, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        rc = rc or p.returncode
        user += ru.ru_utime
        sys_ += ru.ru_stime
        minflt += ru.ru_minflt
        majflt += ru.ru_majflt
        rss = max(rss, ru.ru_maxrss)
    wall = time.perf_counter() - start
    if rc:
        sys.exit(f"{tool} failed (exit {rc}): {' | '.join(' '.join(c) for c in commands)}")
    return Run(tool, pair, round(wall, 3), round(user, 3), round(sys_, 3), minflt, majflt, round(rss / 1024, 1),
               count_frames(out), rc)


def count_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)


def agreement(a: Path, b: Path) -> float | None:
    """Mean luma PSNR between the two outputs: the same network should agree closely."""
    if not (a.exists() and b.exists()):
        return None
    values = []
    with av.open(str(a)) as ca, av.open(str(b)) as cb:
        for fa, fb in zip(ca.decode(video=0), cb.decode(video=0)):
            ya = fa.to_ndarray(format="gray").astype(np.float64)
            yb = fb.to_ndarray(format="gray").astype(np.float64)
            mse = float(np.mean((ya - yb) ** 2))
            values.append(10 * np.log10(255**2 / mse) if mse else 100.0)
    return round(statistics.fmean(values), 2) if values else None


def summarize(runs: list[Run], vidsr_tools: list[str]) -> dict:
    out: dict = {}
    for tool in ["vs-mlrt", *vidsr_tools]:
        mine = [r for r in runs if r.tool == tool]
        out[tool] = {k: round(statistics.median(getattr(r, k) for r in mine), 3)
                     for k in ("wall_s", "user_s", "sys_s", "minor_faults", "max_rss_mib")}
        out[tool]["sys_share"] = round(statistics.median(r.sys_share for r in mine), 4)
        if tool != "vs-mlrt":
            ratios = [r.wall_s / v.wall_s for r in mine for v in runs if v.tool == "vs-mlrt" and v.pair == r.pair]
            out[tool]["wall_vs_vsmlrt_per_pair"] = [round(x, 3) for x in ratios]
    return out


def format_table(report: dict) -> str:
    m, c = report["machine"], report["config"]
    lines = [f"{c['input']} {c['size'][0]}x{c['size'][1]} -> {c['out_size'][0]}x{c['out_size'][1]}, "
             f"{c['model']}, x264 {c['preset']} CRF {c['crf']:g}; {m['cpu']}, {m['cores']} cores, "
             f"load {m['loadavg_before'][0]:.2f} before / {m['loadavg_after'][0]:.2f} after",
             "", "| run | tool | wall s | user s | sys s | sys share | minor faults | peak RSS MiB | frames out |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["runs"]:
        lines.append(f"| {r['pair']} | {r['tool']} | {r['wall_s']:.1f} | {r['user_s']:.1f} | {r['sys_s']:.1f} | "
                     f"{100 * r['sys_share']:.1f}% | {r['minor_faults']} | {r['max_rss_mib']:.0f} | "
                     f"{r['frames_out']} |")
    lines.append("")
    for tool, s in report["summary"].items():
        if "wall_vs_vsmlrt_per_pair" in s:
            lines.append(f"- {tool} wall / vs-mlrt wall, per pair: "
                         + ", ".join(f"{x:.2f}x" for x in s["wall_vs_vsmlrt_per_pair"]))
    lines.append(f"- outputs agree at {report['agreement_psnr_db']} dB luma PSNR (vidsr vs vs-mlrt, pair 0)")
    return "\n".join(lines) + "\n"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(vspipe: str) -> dict[str, str]:
    import torch

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    peers_pip = Path(vspipe).with_name("pip")
    freeze = subprocess.run([str(peers_pip), "freeze"], capture_output=True, text=True).stdout.split()
    return {"python": platform.python_version(), "torch": torch.__version__, "av": av.__version__,
            "vidsr_commit": commit or "?", "torch_threads": str(torch.get_num_threads()),
            "peers": ", ".join(f for f in freeze if f.lower().startswith("vapoursynth"))}


if __name__ == "__main__":
    main()
