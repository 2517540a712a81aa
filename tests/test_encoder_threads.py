"""Encoder threading: frame threads in both back ends, and a thread count that fits the run.

x264 writes the threading it ran with into the stream (its SEI "options" string), which
is what these tests read: `sliced_threads=1` is what PyAV's default SLICE threading gave.
"""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tiny_model import one_torch_thread, tiny_model
from vidsr.choices import EncoderBackend
from vidsr.engine.thread_budget import budget_for
from vidsr.engine.video import UpscaleOptions, upscale_video
from vidsr.io.color import ColorInfo
from vidsr.io.encode import EncodeSettings, open_encoder


def x264_options(path: Path) -> dict[str, str]:
    with av.open(str(path)) as c:
        for packet in c.demux(c.streams.video[0]):
            m = re.search(rb"options: ([^\x00]*)", bytes(packet))
            if m:
                return dict(o.split("=", 1) for o in m.group(1).decode(errors="replace").split() if "=" in o)
    raise AssertionError("no x264 options in the stream")


def _encode(path: Path, backend: EncoderBackend, threads: int) -> dict[str, str]:
    settings = EncodeSettings(codec="libx264", pix_fmt="yuv420p", preset="ultrafast", backend=backend, threads=threads)
    enc = open_encoder(path, width=128, height=72, rate=Fraction(25), color=ColorInfo("ITU709", False, 1, 1),
                       settings=settings, container_format="mp4")
    rng = np.random.default_rng(0)
    enc.write(rng.integers(0, 256, (8, 72, 128, 3), dtype=np.uint8))
    enc.close()
    return x264_options(path)


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_both_back_ends_use_frame_threads(tmp_path: Path, backend: EncoderBackend) -> None:
    opts = _encode(tmp_path / "auto.mp4", backend, threads=0)
    assert opts["sliced_threads"] == "0"


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_both_back_ends_take_a_thread_count(tmp_path: Path, backend: EncoderBackend) -> None:
    assert _encode(tmp_path / "two.mp4", backend, threads=2)["threads"] == "2"
    assert _encode(tmp_path / "one.mp4", backend, threads=1)["threads"] == "1"


def test_a_cpu_run_gives_the_encoder_its_budget(tiny_clip: Path, tmp_path: Path) -> None:
    """The network has the cores: the encoder gets one thread per 16 of them, not x264's 1.5 per core."""
    out = tmp_path / "cpu.mp4"
    with one_torch_thread():
        upscale_video(tiny_clip, out, UpscaleOptions(device="cpu", progress=False,
                                                     encode=EncodeSettings(preset="ultrafast")), model=tiny_model())
    assert x264_options(out)["threads"] == str(budget_for(torch.device("cpu")).encode)
