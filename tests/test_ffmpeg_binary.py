"""Which ffmpeg binary vidsr encodes with: one it has checked (version, encoder, muxer, filters),
else imageio-ffmpeg's, else PyAV; `--debug` says which.

A broken `ffmpeg` first on PATH (as after a half-removed install) stands in for an unusable one;
an older release cannot be run here, so the version rule is checked on the real binary's
description with its version lowered.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import av
import imageio_ffmpeg
import pytest
from tiny_model import tiny_model_file

from vidsr.cli.main import main
from vidsr.io.encode import MIN_FFMPEG, inspect_ffmpeg, select_ffmpeg


@pytest.fixture
def broken_ffmpeg(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    exe = folder / "ffmpeg"
    exe.write_text("#!/bin/sh\necho 'error while loading shared libraries: libavdevice.so.58' >&2\nexit 127\n")
    exe.chmod(0o755)
    return exe


def test_the_binary_is_inspected_once(ffmpeg_exe: str) -> None:
    binary = inspect_ffmpeg(ffmpeg_exe, "imageio-ffmpeg")
    assert binary is not None
    assert binary.libavcodec >= (59, 37) and binary.version
    assert {"libx264", "libx265", "libsvtav1", "libvpx-vp9", "ffv1", "png", "mov_text"} <= binary.encoders
    assert {"mp4", "mov", "matroska", "webm"} <= binary.muxers
    assert {"scale", "setsar"} <= binary.filters
    assert binary.lacks(encoder="libx264", muxer="mp4", filters=("scale", "setsar")) is None
    assert inspect_ffmpeg(ffmpeg_exe, "imageio-ffmpeg") is binary  # probed once per process


def test_an_older_or_smaller_build_is_passed_over(ffmpeg_exe: str) -> None:
    binary = inspect_ffmpeg(ffmpeg_exe, "imageio-ffmpeg")
    assert binary is not None
    old = dataclasses.replace(binary, version="4.4.2", libavcodec=(58, 134))
    assert old.lacks() == f"FFmpeg 4.4.2 is older than {MIN_FFMPEG}"
    assert "no-such-encoder" in (binary.lacks(encoder="no-such-encoder") or "")
    assert "no-such-filter" in (binary.lacks(filters=("scale", "no-such-filter")) or "")


def test_a_broken_ffmpeg_on_path_falls_back_to_imageio(broken_ffmpeg: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, media: Path,
                                                       caplog: pytest.LogCaptureFixture,
                                                       capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("PATH", f"{broken_ffmpeg.parent}:{Path(imageio_ffmpeg.get_ffmpeg_exe()).parent}:/usr/bin:/bin")
    chosen = select_ffmpeg(encoder="libx264", muxer="mp4")
    assert chosen is not None and chosen.origin == "imageio-ffmpeg"
    caplog.set_level(logging.DEBUG, logger="vidsr")
    out = tmp_path / "out.mp4"
    with pytest.raises(SystemExit) as exit_:
        main(["upscale", str(media / "videos" / "bikes_640x272_3s.mp4"), "-o", str(out), "--frames", "2",
              "--model", str(tiny_model_file(tmp_path)), "--device", "cpu", "--preset", "ultrafast", "--quiet",
              "--debug"])
    assert exit_.value.code == 0, capsys.readouterr().err
    assert f"not using {broken_ffmpeg}" in caplog.text
    assert f"encoding with {chosen.path}" in caplog.text and "from imageio-ffmpeg" in caplog.text


def test_no_usable_binary_means_pyav(broken_ffmpeg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     media: Path, caplog: pytest.LogCaptureFixture,
                                     capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("PATH", f"{broken_ffmpeg.parent}:/usr/bin:/bin")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(broken_ffmpeg))  # imageio-ffmpeg's binary, as users can set it
    assert select_ffmpeg(encoder="libx264") is None
    caplog.set_level(logging.DEBUG, logger="vidsr")
    model = str(tiny_model_file(tmp_path))
    clip = str(media / "videos" / "bikes_640x272_3s.mp4")
    out = tmp_path / "out.mp4"
    with pytest.raises(SystemExit) as exit_:
        main(["upscale", clip, "-o", str(out), "--frames", "2", "--model", model, "--device", "cpu", "--quiet"])
    assert exit_.value.code == 0, capsys.readouterr().err
    assert "encoding in-process with PyAV" in caplog.text
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 2
    with pytest.raises(SystemExit) as exit_:
        main(["upscale", clip, "-o", str(tmp_path / "asked.mp4"), "--frames", "2", "--model", model,
              "--device", "cpu", "--quiet", "--encoder", "ffmpeg"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1
    assert len(err) == 1 and err[0].startswith("vidsr: error: --encoder ffmpeg: no usable ffmpeg binary"), err
    assert not (tmp_path / "asked.mp4").exists()
