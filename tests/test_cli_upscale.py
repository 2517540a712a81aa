"""`vidsr upscale` end to end on real clips: size, frame count, audio untouched."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from conftest import run_cli


def audio_packets(path: Path) -> list[list[tuple[bytes, int | None, int | None]]]:
    """Per audio stream: each packet's bytes and timestamps (in seconds x 1e6, container independent)."""
    with av.open(str(path)) as c:
        out: list[list] = [[] for _ in c.streams.audio]
        index = {s.index: i for i, s in enumerate(c.streams.audio)}
        for p in c.demux(c.streams.audio):
            if p.size:
                out[index[p.stream.index]].append(
                    (bytes(p), round(p.pts * p.time_base * 1_000_000), round(p.dts * p.time_base * 1_000_000)))
    return out


def video_summary(path: Path) -> tuple[int, int, int, list[str]]:
    with av.open(str(path)) as c:
        langs = [s.metadata.get("language", "") for s in c.streams.audio]
        n = sum(1 for _ in c.decode(video=0))
        s = c.streams.video[0]
        return s.codec_context.width, s.codec_context.height, n, langs


@pytest.mark.parametrize("encoder", ["ffmpeg", "pyav"])
def test_upscale_video_x2_keeps_frames_and_audio(tiny_clip: Path, tmp_path: Path, encoder: str) -> None:
    out = tmp_path / "out.mp4"
    r = run_cli("upscale", str(tiny_clip), "--model", "animevideov3", "-s", "2", "-o", str(out),
                "--device", "cpu", "--encoder", encoder, "--preset", "ultrafast", "--quiet")
    assert r.returncode == 0, r.stderr
    w, h, n, langs = video_summary(out)
    w0, h0, n0, langs0 = video_summary(tiny_clip)
    assert (w, h) == (2 * w0, 2 * h0)
    assert n == n0 > 0
    assert langs == langs0 == ["jpn", "eng"]
    assert audio_packets(out) == audio_packets(tiny_clip)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no partial files left


def test_upscale_video_fractional_scale_even_size(tiny_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    r = run_cli("upscale", str(tiny_clip), "-s", "1.5", "-o", str(out), "--device", "cpu",
                "--preset", "ultrafast", "--quiet")
    assert r.returncode == 0, r.stderr
    w, h, n, _ = video_summary(out)
    # 96x54 x1.5 = 144x81; yuv420p needs even sizes, so 81 goes to the nearest even number.
    assert (w, h) == (144, 82)
    assert n == video_summary(tiny_clip)[2]


def test_upscale_video_pixels_follow_the_network(tiny_clip: Path, tmp_path: Path) -> None:
    """The encoded output is close to the network run directly on the decoded frames."""
    import torch

    from vidsr.models import load_model

    out = tmp_path / "out.mp4"
    r = run_cli("upscale", str(tiny_clip), "-s", "4", "-o", str(out), "--device", "cpu", "--crf", "10",
                "--pix-fmt", "yuv444p", "--quiet")
    assert r.returncode == 0, r.stderr
    with av.open(str(tiny_clip)) as c:
        frame = next(c.decode(video=0)).reformat(format="rgb24", src_colorspace="SMPTE170M",
                                                 src_color_range="MPEG", dst_color_range="JPEG").to_ndarray()
    with av.open(str(out)) as c:
        f = next(c.decode(video=0))
        got = f.reformat(format="rgb24", src_colorspace="SMPTE170M", src_color_range="MPEG",
                         dst_color_range="JPEG").to_ndarray().astype(np.float64)
        assert f.colorspace == 6  # tagged with the matrix that was used (smpte170m for SD)
    model = load_model("animevideov3")
    with torch.no_grad():
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
        ref = model.module(x).clamp(0, 1)[0].permute(1, 2, 0).mul(255).round().numpy()
    mse = np.mean((got - ref) ** 2)
    psnr = 10 * np.log10(255**2 / mse)
    assert psnr >= 35, psnr


def test_existing_output_is_kept_without_overwrite(tiny_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    r = run_cli("upscale", str(tiny_clip), "-o", str(out), "--device", "cpu", "--quiet")
    assert r.returncode == 1
    assert "--overwrite" in r.stderr
    assert out.read_bytes() == b"precious"


def test_upscale_with_two_cpu_workers(tiny_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    r = run_cli("upscale", str(tiny_clip), "-s", "2", "-o", str(out), "--devices", "cpu,cpu",
                "--segment-seconds", "0.1", "--preset", "ultrafast", "--quiet")
    assert r.returncode == 0, r.stderr
    w, h, n, langs = video_summary(out)
    assert (w, h, n) == (192, 108, video_summary(tiny_clip)[2])
    assert audio_packets(out) == audio_packets(tiny_clip)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
