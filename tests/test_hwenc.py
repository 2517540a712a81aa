"""Hardware encoders: refused in one line before any work where the machine cannot run them."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import HARDWARE_SKIP
from vidsr.errors import OptionError
from vidsr.io.color import ColorInfo
from vidsr.io.encode import EncodeSettings, open_encoder
from vidsr.io.hwenc import (OpenAttempt, check_hardware_encoder, cuda_gpu_names, family_of, is_hardware_encoder,
                            open_with_ffmpeg, open_with_pyav)

NO_SESSION = "OpenEncodeSessionEx failed: unsupported device (2): (no details)"


def _refused(**kwargs) -> str:
    with pytest.raises(OptionError) as err:
        check_hardware_encoder(**kwargs)
    text = str(err.value)
    assert "\n" not in text
    return text


def _never(*_args) -> OpenAttempt:
    raise AssertionError("the encoder should not have been opened")


@pytest.mark.parametrize("gpu", ["NVIDIA H200", "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"])
def test_nvenc_on_a_gpu_without_nvenc(gpu: str) -> None:
    text = _refused(encoder="h264_nvenc", try_open=lambda e, f: OpenAttempt(False, NO_SESSION), gpus=lambda: [gpu])
    assert text.startswith("h264_nvenc needs an NVIDIA GPU with NVENC; this machine has none")
    assert gpu in text and "libx264" in text


def test_nvenc_without_any_nvidia_gpu() -> None:
    text = _refused(encoder="hevc_nvenc", try_open=lambda e, f: OpenAttempt(False, "Cannot load libcuda.so.1"),
                    gpus=lambda: [])
    assert text == ("hevc_nvenc needs an NVIDIA GPU with NVENC; this machine has none "
                    "(FFmpeg: Cannot load libcuda.so.1); use libx264, libx265 or libsvtav1")


def test_nvenc_failing_on_a_gpu_that_has_it_says_why() -> None:
    text = _refused(encoder="av1_nvenc", try_open=lambda e, f: OpenAttempt(False, "No capable devices found"),
                    gpus=lambda: ["NVIDIA GeForce RTX 3090"])
    assert text == "av1_nvenc could not be opened on NVIDIA GeForce RTX 3090 (FFmpeg: No capable devices found)"


def test_h20_is_not_taken_for_an_h200() -> None:
    text = _refused(encoder="h264_nvenc", try_open=lambda e, f: OpenAttempt(False, NO_SESSION),
                    gpus=lambda: ["NVIDIA H20", "NVIDIA L4"])
    assert "could not be opened on NVIDIA H20, NVIDIA L4" in text


def test_other_families_say_what_they_need() -> None:
    text = _refused(encoder="h264_qsv", try_open=lambda e, f: OpenAttempt(False, "Error creating a MFX session: -9."))
    assert text == ("h264_qsv needs an Intel GPU with Quick Sync Video and the oneVPL runtime; it could not be "
                    "opened on this machine (FFmpeg: Error creating a MFX session: -9.)")


def test_encoders_that_need_uploaded_frames_are_refused_without_trying() -> None:
    text = _refused(encoder="h264_vaapi", try_open=_never)
    assert "hwupload" in text and "*_nvenc" in text


def test_an_encoder_that_opens_passes_and_the_gpus_are_not_asked() -> None:
    seen = []
    check_hardware_encoder("h264_nvenc", try_open=lambda e, f: seen.append((e, f)) or OpenAttempt(True),
                           gpus=lambda: _never())
    assert seen == [("h264_nvenc", "yuv420p")]


def test_qsv_is_opened_with_a_format_it_takes() -> None:
    seen = []
    check_hardware_encoder("h264_qsv", try_open=lambda e, f: seen.append(f) or OpenAttempt(True))
    assert seen == ["nv12"]  # h264_qsv takes nv12, not yuv420p


@pytest.mark.parametrize("encoder", ["libx264", "libx265", "libsvtav1", "png", "ffv1"])
def test_software_encoders_cost_nothing(encoder: str) -> None:
    assert not is_hardware_encoder(encoder) and family_of(encoder) is None
    check_hardware_encoder(encoder, try_open=_never, gpus=_never)


def test_hardware_encoders_are_known_by_name_and_by_capability() -> None:
    assert all(is_hardware_encoder(e) for e in ("h264_nvenc", "hevc_qsv", "av1_amf", "h264_vaapi", "h264_videotoolbox"))
    if "h264_v4l2m2m" in av.codecs_available:  # FFmpeg marks it a hardware encoder
        assert av.codec.Codec("h264_v4l2m2m", "w").capabilities & (1 << 18)


# -- the real check on this machine -----------------------------------------------------------


def _has_nvenc() -> bool:
    return open_with_pyav("h264_nvenc", "yuv420p").opened


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_nvenc_really_refused_here(backend: str, ffmpeg_exe: str) -> None:
    """Whether or not the FFmpeg build has NVENC, a machine without it gets one line, before any work."""
    if _has_nvenc():
        pytest.skip(f"{HARDWARE_SKIP} this machine has NVENC (see test_nvenc_encodes_where_present)")
    exe = ffmpeg_exe if backend == "ffmpeg" else None
    text = _refused(encoder="h264_nvenc", ffmpeg_exe=exe)
    assert text.startswith("h264_nvenc ")
    if not cuda_gpu_names():
        assert "this machine has none" in text and "(FFmpeg: " in text


def test_the_ffmpeg_probe_opens_a_software_encoder(ffmpeg_exe: str) -> None:
    assert open_with_ffmpeg(ffmpeg_exe, "libx264", "yuv420p").opened
    missing = open_with_ffmpeg(ffmpeg_exe, "no_such_encoder", "yuv420p")
    assert not missing.opened and "no_such_encoder" in missing.detail


def test_nvenc_encodes_where_present(tmp_path: Path) -> None:
    if not _has_nvenc():
        pytest.skip(f"{HARDWARE_SKIP} no NVENC on this machine (h264_nvenc does not open)")
    check_hardware_encoder("h264_nvenc")
    out = tmp_path / "nvenc.mp4"
    enc = open_encoder(out, width=256, height=144, rate=Fraction(25), color=ColorInfo("ITU709", False, 1, 1),
                       settings=EncodeSettings(codec="h264_nvenc", pix_fmt="yuv420p", backend="pyav"),
                       container_format="mp4")
    enc.write(np.full((5, 144, 256, 3), 128, np.uint8))
    enc.close()
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5


# -- the refusal through `vidsr upscale`, with the capability query faked ---------------------


@pytest.mark.parametrize(("codec", "chunked"), [("h264_nvenc", False), ("hevc_nvenc", False), ("av1_nvenc", False),
                                                ("hevc_nvenc", True)])
def test_upscale_refuses_nvenc_on_an_h200_before_any_work(codec: str, chunked: bool, tiny_clip: Path,
                                                          tmp_path: Path, monkeypatch, capsys) -> None:
    """An H200 as torch would name it, and an encoder that fails to open as NVENC does there."""
    from vidsr.cli.main import main
    from vidsr.io import hwenc

    opened = []

    def fails(*args) -> OpenAttempt:
        opened.append(args)
        return OpenAttempt(False, NO_SESSION)

    monkeypatch.setattr(hwenc, "open_with_pyav", fails)
    monkeypatch.setattr(hwenc, "open_with_ffmpeg", fails)
    monkeypatch.setattr(hwenc, "cuda_gpu_names", lambda: ["NVIDIA H200"])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["upscale", str(tiny_clip), "-o", str(out_dir / "up.mp4"), "--device", "cpu", "--codec", codec, "-q"]
    if chunked:
        args += ["--devices", "cpu,cpu", "--work-dir", str(out_dir)]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"vidsr: error: {codec} needs an NVIDIA GPU with NVENC; this machine has none "
                               "(NVIDIA H200: "), lines[0]
    assert len(opened) == 1           # asked once, with a tiny encoder
    assert list(out_dir.iterdir()) == []  # nothing written, not even a job folder


def test_crf_and_preset_become_each_hardware_encoders_own_terms() -> None:
    """A hardware encoder has no CRF: --crf asks for its constant-quality mode, --preset for its own names."""
    from vidsr.io.encode import EncodeSettings

    nvenc = EncodeSettings(codec="h264_nvenc", crf=20, preset="medium").codec_options()
    assert nvenc == {"rc": "vbr", "cq": "20", "b": "0", "preset": "p4"}
    assert EncodeSettings(codec="hevc_nvenc", crf=18, preset="veryslow").codec_options()["preset"] == "p7"
    assert EncodeSettings(codec="av1_qsv", crf=25, preset="ultrafast").codec_options() == {
        "global_quality": "25", "preset": "veryfast"}
    assert EncodeSettings(codec="h264_amf", crf=22, preset="slow").codec_options() == {
        "rc": "cqp", "qp_i": "22", "qp_p": "22", "qp_b": "22", "quality": "quality"}
    assert EncodeSettings(codec="h264_vaapi", crf=24, preset="medium").codec_options() == {"rc_mode": "CQP", "qp": "24"}
    assert "rc" not in EncodeSettings(codec="libx264", crf=18).codec_options()
