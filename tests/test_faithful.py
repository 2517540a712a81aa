"""Only the picture changes: timestamps, streams, colour, geometry, formats, damage, cuts.

Each test builds its own small case from the real media with ffmpeg, runs the library
(`upscale_video`) and compares the result with its input.
"""
from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import EARTH, ffmpeg

from vidsr.engine.options import UpscaleOptions
from vidsr.engine.video import upscale_video
from vidsr.errors import InputError
from vidsr.io.decode import Window
from vidsr.io.encode import EncodeSettings
from vidsr.models import ModelDescriptor, load_model

FAST = EncodeSettings(preset="ultrafast")


@pytest.fixture(scope="module")
def model() -> ModelDescriptor:
    return load_model("animevideov3")


def run(src: Path, out: Path, model: ModelDescriptor, **kw) -> None:  # type: ignore[no-untyped-def]
    opts = dict(scale=2.0, device="cpu", progress=False, encode=FAST)
    opts.update(kw)
    upscale_video(src, out, UpscaleOptions(**opts), model=model)


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [float(f.pts * s.time_base) for f in c.decode(s)]


def packets(path: Path, kind: str) -> list[tuple[str, list[bytes]]]:
    """Per stream of `kind`: (language, packet payloads)."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        out = {s.index: [] for s in streams}
        for p in c.demux(streams):
            if p.size:
                out[p.stream.index].append(bytes(p))
        return [(s.metadata.get("language", ""), out[s.index]) for s in streams]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, media: Path, ffmpeg_exe: str) -> Path:
    """1 s of the NASA clip at 96x54, 30 fps, with its AAC track."""
    out = tmp_path_factory.mktemp("faithful") / "base.mp4"
    ffmpeg(ffmpeg_exe, "-i", str(EARTH), "-t", "1", "-vf", "scale=96:54",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(out))
    return out


def test_variable_frame_rate_timestamps_kept(base: Path, tmp_path: Path, ffmpeg_exe: str,
                                             model: ModelDescriptor) -> None:
    vfr = tmp_path / "vfr.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(base), "-vf", "select='not(eq(n\\,3)+eq(n\\,4)+eq(n\\,9)+between(n\\,15\\,18))'",
           "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-an", str(vfr))
    src = frame_times(vfr)
    gaps = np.diff(src)
    assert gaps.max() > 1.5 * gaps.min()  # really variable
    out = tmp_path / "out.mkv"
    run(vfr, out, model)
    got = frame_times(out)
    assert len(got) == len(src)
    with av.open(str(out)) as c:
        tick = float(c.streams.video[0].time_base)
    assert np.abs(np.array(got) - np.array(src)).max() <= tick


def test_start_offset_kept(base: Path, tmp_path: Path, ffmpeg_exe: str, model: ModelDescriptor) -> None:
    shifted = tmp_path / "shifted.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(base), "-output_ts_offset", "1.5", "-c", "copy", str(shifted))
    out = tmp_path / "out.mkv"
    run(shifted, out, model)
    assert frame_times(out)[0] == pytest.approx(frame_times(shifted)[0], abs=0.002)
    assert packets(out, "audio") == packets(shifted, "audio")


def _font(tmp: Path) -> Path:
    for candidate in sorted(Path("/usr/share/fonts").rglob("*.ttf")) if Path("/usr/share/fonts").exists() else []:
        return candidate
    fake = tmp / "font.ttf"  # the test is about carrying the bytes, which any file shows
    fake.write_bytes(bytes(range(256)) * 8)
    return fake


def test_every_stream_chapter_and_attachment_kept(base: Path, tmp_path: Path, media: Path, ffmpeg_exe: str,
                                                  model: ModelDescriptor) -> None:
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,600\nHello\n\n2\n00:00:00,600 --> 00:00:00,900\nWorld\n")
    ass = tmp_path / "subs.ass"
    ass.write_text("[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize\n"
                   "Style: Default,DejaVu Sans,20\n\n[Events]\nFormat: Layer, Start, End, Style, Text\n"
                   "Dialogue: 0,0:00:00.10,0:00:00.80,Default,Bonjour\n")
    chapters = tmp_path / "chapters.txt"
    chapters.write_text(";FFMETADATA1\ntitle=Test\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle=One\n"
                        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=500\nEND=1000\ntitle=Two\n")
    font = _font(tmp_path)
    src = tmp_path / "rich.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(base), "-i", str(media / "audio" / "upgrade1.wav"), "-i", str(srt), "-i", str(ass),
           "-i", str(chapters), "-map", "0:v", "-map", "0:a", "-map", "1:a", "-map", "2", "-map", "3",
           "-map_metadata", "4", "-map_chapters", "4", "-c:v", "copy", "-c:a:0", "copy", "-c:a:1", "flac",
           "-c:s", "copy", "-metadata:s:a:0", "language=jpn", "-metadata:s:a:1", "language=fra",
           "-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=fre", "-disposition:s:1", "forced",
           "-attach", str(font), "-metadata:s:t", "mimetype=font/ttf", "-t", "1", str(src))
    out = tmp_path / "out.mkv"
    run(src, out, model)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        kinds = lambda c: [(s.type, s.codec_context.name if s.type != "attachment" else "att",  # noqa: E731
                            s.metadata.get("language"), int(s.disposition)) for s in c.streams if s.type != "video"]
        assert kinds(b) == kinds(a)
        assert [ch["metadata"].get("title") for ch in b.chapters()] == ["One", "Two"]
        assert b.metadata.get("title") == "Test"
        att_a = [s for s in a.streams if s.type == "attachment"]
        att_b = [s for s in b.streams if s.type == "attachment"]
        assert len(att_b) == 1 and att_b[0].name == att_a[0].name
        assert hashlib.sha256(bytes(att_b[0].data)).digest() == hashlib.sha256(font.read_bytes()).digest()
    assert packets(out, "audio") == packets(src, "audio")  # both tracks, bit-exact, in order, with languages
    assert packets(out, "subtitle") == packets(src, "subtitle")


def test_srt_into_mp4_becomes_mov_text(base: Path, tmp_path: Path, ffmpeg_exe: str, model: ModelDescriptor) -> None:
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,600\nHello\n")
    src = tmp_path / "with_srt.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(base), "-i", str(srt), "-map", "0", "-map", "1", "-c", "copy", str(src))
    out = tmp_path / "out.mp4"
    run(src, out, model)
    with av.open(str(out)) as c:
        assert [s.codec_context.name for s in c.streams if s.type == "subtitle"] == ["mov_text"]
    assert [p for _lang, p in packets(out, "audio")] == [p for _lang, p in packets(src, "audio")]


def test_ten_bit_hevc_stays_ten_bit_with_tags(base: Path, tmp_path: Path, ffmpeg_exe: str,
                                              model: ModelDescriptor) -> None:
    src = tmp_path / "hdr10bit.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(base), "-t", "0.2", "-vf", "scale=out_color_matrix=bt709:out_range=tv,"
           "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv",
           "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p10le",
           "-an", str(src))
    out = tmp_path / "out.mkv"
    run(src, out, model)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        ca, cb = a.streams.video[0].codec_context, b.streams.video[0].codec_context
        assert cb.pix_fmt == "yuv420p10le" and cb.name == "hevc"
        assert (cb.colorspace, cb.color_primaries, cb.color_trc, cb.color_range) == \
            (ca.colorspace, ca.color_primaries, ca.color_trc, ca.color_range) == (1, 1, 1, 1)
        frame = next(b.decode(video=0)).to_ndarray()
        assert frame.dtype == np.uint16 and (frame % 4 != 0).any()  # real 10-bit values, not 8-bit shifted


def test_rotation_kept(base: Path, tmp_path: Path, ffmpeg_exe: str, model: ModelDescriptor) -> None:
    src = tmp_path / "rot.mp4"
    ffmpeg(ffmpeg_exe, "-display_rotation", "90", "-i", str(base), "-c", "copy", str(src))
    out = tmp_path / "out.mp4"
    run(src, out, model)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        ra = next(a.decode(video=0)).rotation
        fb = next(b.decode(video=0))
        assert ra in (90, -90, 270) and fb.rotation == ra
        assert (fb.width, fb.height) == (192, 108)  # stored unrotated, displayed rotated, as the input


@pytest.mark.parametrize("scale,size", [(2.0, (854, 482)), (1.5, (640, 362))])
def test_odd_size(base: Path, tmp_path: Path, ffmpeg_exe: str, model: ModelDescriptor, scale: float,
                  size: tuple[int, int]) -> None:
    src = tmp_path / "odd.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(base), "-frames:v", "2", "-vf", "scale=427:241", "-c:v", "libx264", "-preset",
           "ultrafast", "-pix_fmt", "yuv444p", "-an", str(src))
    out = tmp_path / "out.mkv"
    run(src, out, model, scale=scale, encode=EncodeSettings(preset="ultrafast", pix_fmt="yuv420p"))
    with av.open(str(out)) as c:
        s = c.streams.video[0].codec_context
        # 427x241 x2 = 854x482; x1.5 = 640.5x361.5 -> nearest even for yuv420p: 640x362.
        assert (s.width, s.height) == size
        assert sum(1 for _ in c.decode(video=0)) == 2


def test_gray_video_stays_gray(base: Path, tmp_path: Path, ffmpeg_exe: str, model: ModelDescriptor) -> None:
    src = tmp_path / "gray.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(base), "-frames:v", "3", "-c:v", "ffv1", "-pix_fmt", "gray", "-an", str(src))
    out = tmp_path / "out.mkv"
    run(src, out, model)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "gray"
        assert sum(1 for _ in c.decode(video=0)) == 3


def test_alpha_video_keeps_alpha(tmp_path: Path, media: Path, ffmpeg_exe: str, model: ModelDescriptor) -> None:
    sprite = media / "images" / "anime" / "sylvie_blue_normal.png"
    src = tmp_path / "alpha.mov"
    ffmpeg(ffmpeg_exe, "-loop", "1", "-i", str(sprite), "-frames:v", "3", "-vf", "crop=48:64:200:0",
           "-c:v", "qtrle", "-pix_fmt", "argb", str(src))
    out = tmp_path / "out.mov"
    run(src, out, model)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert b.streams.video[0].codec_context.name == "qtrle"
        fa = next(a.decode(video=0)).to_ndarray(format="rgba")
        fb = next(b.decode(video=0)).to_ndarray(format="rgba")
        assert fb.shape == (128, 96, 4)
        alpha_a, alpha_b = fa[..., 3], fb[..., 3]
        assert alpha_a.min() == 0 and alpha_a.max() == 255  # the crop really has transparency
        # The upscaled alpha is the input's alpha, larger: compare at input size.
        small = torch.nn.functional.avg_pool2d(torch.from_numpy(alpha_b).float()[None, None], 2)[0, 0].numpy()
        assert np.abs(small - alpha_a).mean() < 8


def test_truncated_clip_warns_and_keeps_what_decodes(base: Path, tmp_path: Path, ffmpeg_exe: str,
                                                     model: ModelDescriptor, caplog: pytest.LogCaptureFixture) -> None:
    whole = tmp_path / "whole.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(base), "-c", "copy", str(whole))
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "out.mkv"
    run(cut, out, model)
    n = len(frame_times(out))
    assert 0 < n < len(frame_times(whole))
    assert "ends early" in caplog.text
    with pytest.raises(InputError, match="damaged"):
        run(cut, tmp_path / "strict.mkv", model, strict=True)
    assert not (tmp_path / "strict.mkv").exists()


def test_start_and_duration_keep_audio_in_sync(base: Path, tmp_path: Path, model: ModelDescriptor) -> None:
    out = tmp_path / "part.mp4"
    run(base, out, model, window=Window(start=0.4, duration=0.3))
    times = frame_times(out)
    assert len(times) == 9 and times[0] == pytest.approx(0.0, abs=0.002)  # 0.3 s at 30 fps, starting at 0
    with av.open(str(base)) as c:
        src_audio = [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(audio=0) if p.size]
    with av.open(str(out)) as c:
        got_audio = [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(audio=0) if p.size]
    assert got_audio
    for t, payload in got_audio:  # each output packet is the source packet that played at t + start
        src_t = [st for st, sp in src_audio if sp == payload]
        assert src_t and min(abs(st - (t + 0.4)) for st in src_t) < 0.022


@pytest.mark.parametrize("matrix", ["bt709", "smpte170m"])
def test_colour_path_matches_network_on_correct_rgb(tmp_path: Path, media: Path, ffmpeg_exe: str,
                                                    model: ModelDescriptor, matrix: str) -> None:
    src = tmp_path / f"{matrix}.mkv"
    primaries = "bt709" if matrix == "bt709" else "smpte170m"
    meadow = media / "images" / "anime" / "bg_meadow.jpg"  # saturated colours: the matrices differ visibly
    ffmpeg(ffmpeg_exe, "-i", str(meadow), "-frames:v", "1", "-vf", "crop=96:54:560:300,"
           f"scale=out_color_matrix={matrix}:out_range=tv,"
           f"setparams=color_primaries={primaries}:color_trc=bt709:colorspace={matrix}:range=tv",
           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "0", "-pix_fmt", "yuv444p", "-an", str(src))
    out = tmp_path / "out.mkv"
    run(src, out, model, scale=4.0, encode=EncodeSettings(preset="ultrafast", crf=8, pix_fmt="yuv444p"))
    sws = {"bt709": "ITU709", "smpte170m": "SMPTE170M"}[matrix]

    def rgb(path: Path) -> np.ndarray:
        with av.open(str(path)) as c:
            f = next(c.decode(video=0))
            assert f.colorspace == {"bt709": 1, "smpte170m": 6}[matrix]  # tagged as the input
            return f.reformat(format="rgb24", src_colorspace=sws, src_color_range="MPEG",
                              dst_color_range="JPEG").to_ndarray()

    with torch.no_grad():
        x = torch.from_numpy(rgb(src)).permute(2, 0, 1)[None].float() / 255
        ref = model.module(x).clamp(0, 1)[0].permute(1, 2, 0).mul(255).round().numpy()
    got = rgb(out).astype(np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((got - ref) ** 2))
    assert psnr >= 35, psnr
    # The wrong matrix would be visibly off: the check can tell them apart.
    wrong = {"ITU709": "SMPTE170M", "SMPTE170M": "ITU709"}[sws]
    with av.open(str(out)) as c:
        bad = next(c.decode(video=0)).reformat(format="rgb24", src_colorspace=wrong, src_color_range="MPEG",
                                               dst_color_range="JPEG").to_ndarray().astype(np.float64)
    assert 10 * np.log10(255**2 / np.mean((bad - ref) ** 2)) < psnr - 3


def test_sample_aspect_ratio_kept(base: Path, tmp_path: Path, ffmpeg_exe: str, model: ModelDescriptor) -> None:
    src = tmp_path / "anamorphic.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(base), "-frames:v", "2", "-vf", "setsar=4/3", "-c:v", "libx264", "-preset",
           "ultrafast", "-an", str(src))
    out = tmp_path / "out.mkv"
    run(src, out, model)
    with av.open(str(out)) as c:
        assert Fraction(c.streams.video[0].sample_aspect_ratio) == Fraction(4, 3)


def test_corrupt_frames_in_the_middle_keep_the_count(base: Path, tmp_path: Path, ffmpeg_exe: str,
                                                     model: ModelDescriptor, caplog: pytest.LogCaptureFixture) -> None:
    clean = tmp_path / "clean.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(base), "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-c:a", "copy",
           str(clean))
    data = bytearray(clean.read_bytes())
    with av.open(str(clean)) as c:
        spans = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    noise = np.random.default_rng(7)
    for pos, size in spans[12:15]:  # garble the back two thirds of three P-frames
        data[pos + size // 3: pos + size] = noise.integers(0, 256, size - size // 3, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.mkv"
    run(bad, out, model)
    assert frame_times(out) == frame_times(clean)  # same count, same timestamps
    assert "repeat the frame before them" in caplog.text or "concealed" in caplog.text
    assert packets(out, "audio") == packets(clean, "audio")
    with pytest.raises(InputError, match="--strict"):
        run(bad, tmp_path / "strict.mkv", model, strict=True)


@pytest.mark.parametrize("encoder", ["ffmpeg", "pyav"])
def test_hdr10_keeps_tags_and_mastering_metadata(base: Path, tmp_path: Path, ffmpeg_exe: str,
                                                 model: ModelDescriptor, encoder: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "pq.mkv"
    ffmpeg(ffmpeg_exe, "-i", str(base), "-frames:v", "2", "-vf", "setparams=color_primaries=bt2020:"
           "color_trc=smpte2084:colorspace=bt2020nc:range=tv", "-c:v", "libx265", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error:hdr10=1:master-display="
           "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50):max-cll=1000,400", "-an", str(src))
    out = tmp_path / "out.mkv"
    run(src, out, model, encode=EncodeSettings(preset="ultrafast", backend=encoder))  # type: ignore[arg-type]

    def hdr(path: Path) -> tuple:
        with av.open(str(path)) as c:
            ctx = c.streams.video[0].codec_context
            f = next(c.decode(video=0))
            side = {s.type.name: bytes(s) for s in f.side_data
                    if s.type.name in ("MASTERING_DISPLAY_METADATA", "CONTENT_LIGHT_LEVEL")}
            return ctx.pix_fmt, ctx.color_primaries, ctx.color_trc, ctx.colorspace, side

    got, want = hdr(out), hdr(src)
    assert want[1:4] == (9, 16, 9) and len(want[4]) == 2  # the case really is HDR10
    assert got == want
    assert "HDR" in caplog.text and "SDR" in caplog.text
