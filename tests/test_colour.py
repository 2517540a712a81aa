"""Colour conventions: untagged video follows the players' rule, RGB stays RGB, chroma siting is
tagged as produced, alpha finds a container that holds it.

The network here is SRVGGNetCompact with its residual zeroed (tests/tiny_model.py): an exact
nearest-neighbour x2, so the output's colours can be compared with the input's exactly.
"""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import ffmpeg
from tiny_model import one_torch_thread, tiny_model

from vidsr.cli.main import main
from vidsr.engine.device_formatter import DeviceFormatter
from vidsr.engine.options import UpscaleOptions
from vidsr.engine.video import upscale_video
from vidsr.errors import OptionError
from vidsr.io.color import ColorInfo
from vidsr.io.encode import EncodeSettings
from vidsr.io.probe import probe_video

LOSSLESS = EncodeSettings(preset="ultrafast", crf=0, pix_fmt="yuv444p")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def run(src: Path, out: Path, **kw) -> None:  # type: ignore[no-untyped-def]
    opts = dict(scale=2.0, device="cpu", progress=False, encode=EncodeSettings(preset="ultrafast"))
    opts.update(kw)
    upscale_video(src, out, UpscaleOptions(**opts), model=tiny_model(nearest=True))


def stream_line(ffmpeg_exe: str, path: Path) -> str:
    """ffmpeg's own description of the video stream (it shows the chroma location, which PyAV does not)."""
    err = subprocess.run([ffmpeg_exe, "-hide_banner", "-v", "verbose", "-i", str(path)], capture_output=True,
                         text=True).stderr
    return next(line for line in err.splitlines() if "Video:" in line)


def to_rgb(frame: av.VideoFrame, matrix: str) -> np.ndarray:
    return frame.reformat(format="rgb24", src_colorspace=matrix, src_color_range="MPEG",
                          dst_color_range="JPEG").to_ndarray().astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-9)))


def test_untagged_wide_film_is_bt709(tmp_path: Path, media: Path, ffmpeg_exe: str) -> None:
    """1280x536 (a 2.39:1 film) is HD to every player (width >= 1280), though it has fewer than 720 lines."""
    src = tmp_path / "scope.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(media / "images" / "anime" / "bg_meadow.jpg"), "-frames:v", "1",
           "-vf", "crop=1280:536:0:92,scale=out_color_matrix=bt709:out_range=tv,format=yuv444p,"
           "setparams=colorspace=unknown:color_primaries=unknown:color_trc=unknown:range=tv",
           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "0", "-an", str(src))
    with av.open(str(src)) as c:
        assert c.streams.video[0].codec_context.colorspace == 2  # really untagged
    info = probe_video(src)
    assert (info.color.matrix, info.color.primaries) == ("ITU709", 1)
    out = tmp_path / "out.mkv"
    run(src, out, encode=LOSSLESS)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        fa, fb = next(a.decode(video=0)), next(b.decode(video=0))
        assert (fb.colorspace, fb.color_primaries) == (1, 1)  # tagged as what it was converted with
        as_709 = np.repeat(np.repeat(to_rgb(fa, "ITU709"), 2, axis=0), 2, axis=1)
        as_601 = np.repeat(np.repeat(to_rgb(fa, "SMPTE170M"), 2, axis=0), 2, axis=1)
        shown = to_rgb(fb, "ITU709")
    # What a player shows of the output is what it showed of the input; BT.601 would be visibly off.
    assert psnr(shown, as_709) > 45
    assert psnr(shown, as_601) < psnr(shown, as_709) - 10


@pytest.mark.parametrize("size,expected", [
    ((720, 576), ("SMPTE170M", 5)),    # PAL SD: BT.601 matrix, BT.470BG primaries
    ((720, 480), ("SMPTE170M", 6)),    # NTSC SD: SMPTE 170M primaries
    ((640, 360), ("SMPTE170M", 1)),    # small web video: BT.601 matrix, BT.709 primaries (mpv's rule)
    ((1024, 578), ("ITU709", 1)),      # more than 576 lines: HD
])
def test_untagged_video_follows_the_players_rule(size: tuple[int, int], expected: tuple[str, int], tmp_path: Path,
                                                 ffmpeg_exe: str) -> None:
    src = tmp_path / "untagged.mkv"
    w, h = size
    ffmpeg(ffmpeg_exe, "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=25", "-frames:v", "1",
           "-c:v", "libx264", "-preset", "ultrafast", str(src))
    info = probe_video(src)
    assert (info.color.matrix, info.color.primaries) == expected


@pytest.fixture(scope="module")
def alpha_mov(tmp_path_factory: pytest.TempPathFactory, media: Path, ffmpeg_exe: str) -> Path:
    """3 frames of a real sprite with transparency, PNG in QuickTime."""
    out = tmp_path_factory.mktemp("alpha") / "alpha.mov"
    ffmpeg(ffmpeg_exe, "-loop", "1", "-i", str(media / "images" / "anime" / "sylvie_blue_normal.png"),
           "-frames:v", "3", "-vf", "crop=48:64:200:0", "-c:v", "png", "-pix_fmt", "rgba", str(out))
    return out


@pytest.mark.parametrize("backend", ["ffmpeg", "pyav"])
def test_alpha_mov_into_mkv_keeps_alpha_in_ffv1(alpha_mov: Path, tmp_path: Path, backend: str) -> None:
    out = tmp_path / "out.mkv"
    run(alpha_mov, out, encode=EncodeSettings(preset="ultrafast", backend=backend))  # type: ignore[arg-type]
    with av.open(str(alpha_mov)) as a, av.open(str(out)) as b:
        ctx = b.streams.video[0].codec_context
        assert ctx.name == "ffv1" and ctx.pix_fmt == "bgra"  # lossless RGBA, as the PNG was
        assert ctx.colorspace == 0  # RGB stays RGB-tagged
        fa = [f.to_ndarray(format="rgba") for f in a.decode(video=0)]
        fb = [f.to_ndarray(format="rgba") for f in b.decode(video=0)]
    assert len(fb) == len(fa) == 3
    assert fa[0][..., 3].min() == 0 and fa[0][..., 3].max() == 255  # the crop really has transparency
    # Nearest x2 of the colour, and the alpha resized alongside: the same picture, larger.
    assert np.array_equal(fb[0][::2, ::2, :3], fa[0][..., :3])
    assert np.abs(fb[0][::2, ::2, 3].astype(int) - fa[0][..., 3]).mean() < 8


def test_alpha_codec_the_container_cannot_hold_names_one_that_can(alpha_mov: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["upscale", str(alpha_mov), "-o", str(tmp_path / "out.mkv"), "--codec", "png", "--device", "cpu",
              "--quiet"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vidsr: error:") and "png" in err[0] and ".mov" in err[0], err
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OptionError, match="libx264 cannot go into webm"):
        run(alpha_mov, tmp_path / "out.webm", encode=EncodeSettings(codec="libx264"))


@pytest.mark.parametrize("backend", ["ffmpeg", "pyav"])
def test_rgb_input_stays_rgb_tagged(alpha_mov: Path, tmp_path: Path, ffmpeg_exe: str, backend: str) -> None:
    out = tmp_path / "out.mov"
    run(alpha_mov, out, encode=EncodeSettings(preset="ultrafast", backend=backend))  # type: ignore[arg-type]
    with av.open(str(out)) as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.name, ctx.colorspace) == ("png", 0)
    rgb = tmp_path / "rgb.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(alpha_mov), "-pix_fmt", "bgr0", "-c:v", "ffv1", str(rgb))
    kept = tmp_path / "kept.mkv"
    run(rgb, kept, encode=EncodeSettings(codec="ffv1", pix_fmt="bgr0", backend=backend))  # type: ignore[arg-type]
    with av.open(str(kept)) as c:
        assert (c.streams.video[0].codec_context.pix_fmt, c.streams.video[0].codec_context.colorspace) == ("bgr0", 0)
    # Into H.264, RGB becomes YUV at full chroma resolution (the input's), tagged with the matrix used.
    yuv = tmp_path / "yuv.mkv"
    run(rgb, yuv, encode=EncodeSettings(preset="ultrafast", backend=backend))  # type: ignore[arg-type]
    with av.open(str(yuv)) as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.pix_fmt, ctx.colorspace) == ("yuv444p", 6)


def test_device_420_chroma_is_centre_sited_like_swscale() -> None:
    """Centre and left siting differ horizontally (both put 4:2:0 chroma between two rows), so one-pixel
    vertical lines tell them apart: the device's box average must match swscale's default conversion,
    which the encoders use on the other path, and not a left-sited filter."""
    rgb = np.full((32, 64, 3), 128, np.uint8)
    rgb[:, 9] = rgb[:, 20] = rgb[:, 41] = (230, 20, 20)
    color = ColorInfo(matrix="ITU709", full_range=False, primaries=1, trc=1)
    ours = DeviceFormatter.for_encoder("yuv420p", 64, 32, color)(
        torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0].numpy().astype(int)
    ref = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG",
        interpolation="BICUBIC").to_ndarray().astype(int)
    chroma = slice(32, None)
    assert np.abs(ours[chroma] - ref[chroma]).max() <= 1
    # The same chroma sited left (MPEG-2: on the even columns, [1 2 1] / 4) is far from it.
    full = DeviceFormatter.for_encoder("yuv444p", 64, 32, color)(
        torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0].numpy().astype(float)
    cr = np.pad(full[2], ((0, 0), (1, 1)), mode="edge")
    left = (cr[:, 0:-2:2] + 2 * cr[:, 1:-1:2] + cr[:, 2::2]) / 4
    left = (left[0::2] + left[1::2]) / 2
    assert np.abs(left - ref[40:48].reshape(16, 32)).max() > 20  # Cr: 16x32 packed into rows 40-47


@pytest.mark.parametrize("backend", ["ffmpeg", "pyav"])
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "nv12"])
def test_chroma_siting_is_tagged_as_produced(tmp_path: Path, ffmpeg_exe: str, backend: str, pix_fmt: str) -> None:
    """yuv420p comes from the device (box average), nv12 from the encoder's own conversion: both centre."""
    src = tmp_path / "lines.mkv"
    ffmpeg(ffmpeg_exe, "-f", "lavfi", "-i", "testsrc2=size=64x36:rate=25", "-frames:v", "2", "-c:v", "libx264",
           "-preset", "ultrafast", str(src))
    for suffix in (".mkv", ".mp4"):
        out = tmp_path / f"out{suffix}"
        settings = EncodeSettings(preset="ultrafast", pix_fmt=pix_fmt, backend=backend)  # type: ignore[arg-type]
        run(src, out, encode=settings)
        line = stream_line(ffmpeg_exe, out)
        assert "center" in line, line
    with av.open(str(src)) as c:
        assert "center" not in stream_line(ffmpeg_exe, src)  # the check can tell
