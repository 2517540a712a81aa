"""--preset: the default works for every encoder that takes presets, and a wrong one is refused before work."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import run_cli
from vidsr.choices import EncoderBackend
from vidsr.errors import OptionError
from vidsr.io.color import ColorInfo
from vidsr.io.encode import EncodeSettings, open_encoder, validate_settings


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
@pytest.mark.parametrize("codec", ["libx264", "libx265", "libsvtav1"])
def test_the_default_preset_opens_every_encoder(tmp_path: Path, codec: str, backend: EncoderBackend) -> None:
    # EncodeSettings' default preset is x264's name "medium"; SVT-AV1 refused it before the mapping.
    settings = EncodeSettings(codec=codec, pix_fmt="yuv420p", backend=backend)
    policy = os.sched_getscheduler(0)
    out = tmp_path / "out.mp4"
    enc = open_encoder(out, width=64, height=64, rate=Fraction(25), color=ColorInfo("ITU709", False, 1, 1),
                       settings=settings, container_format="mp4")
    enc.write(np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8))
    enc.close()
    # SVT-AV1 in-process switches its caller to real-time scheduling where it may (as root); the
    # encoder puts it back, or every later thread and child process of this one runs real-time.
    assert os.sched_getscheduler(0) == policy
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3


def test_svt_av1_takes_names_and_numbers() -> None:
    assert EncodeSettings(codec="libsvtav1", preset="medium").codec_options()["preset"] == "7"
    assert EncodeSettings(codec="libsvtav1", preset="veryfast").codec_options()["preset"] == "10"
    assert EncodeSettings(codec="libsvtav1", preset="12").codec_options()["preset"] == "12"
    assert EncodeSettings(codec="libx264", preset="slow").codec_options()["preset"] == "slow"


@pytest.mark.parametrize(("codec", "preset"), [("libsvtav1", "fastest"), ("libsvtav1", "14"), ("libx264", "7"),
                                               ("libx265", "quick"), (None, "8")])
def test_a_preset_the_encoder_does_not_take_is_an_option_error(codec: str | None, preset: str) -> None:
    with pytest.raises(OptionError, match="--preset"):
        validate_settings(EncodeSettings(codec=codec, preset=preset))


def test_cli_refuses_a_wrong_preset_in_one_line_before_work(tiny_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    r = run_cli("upscale", str(tiny_clip), "-o", str(out), "--device", "cpu", "--codec", "libsvtav1",
                "--preset", "fastest")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "--preset 'fastest'" in lines[0], r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []
