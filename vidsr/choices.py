"""The fixed sets of values some options take, in a module that imports nothing heavy.

The Enums are the lists: the CLI offers them as choices (typer checks the value and shows the
choices in --help) without loading torch or FFmpeg, and the library checks its arguments against
the same members. The Literal aliases spell the same values for type checkers, which cannot read
them from an Enum.
"""
from __future__ import annotations

from enum import Enum
from typing import Literal


class PrecisionChoice(str, Enum):
    """The arithmetic the network runs in; auto is fp16 on CUDA (bf16/fp32 where a model needs it), fp32 on CPU."""

    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class EncoderBackendChoice(str, Enum):
    """Who encodes: an ffmpeg process, PyAV in-process, or auto (ffmpeg when a usable binary exists)."""

    auto = "auto"
    ffmpeg = "ffmpeg"
    pyav = "pyav"


class SegmentBackendChoice(str, Enum):
    """Where the segments of a segmented run go: worker processes here, or tasks on a Ray cluster."""

    local = "local"
    ray = "ray"


Precision = Literal["auto", "fp32", "fp16", "bf16"]
EncoderBackend = Literal["auto", "ffmpeg", "pyav"]
SegmentBackend = Literal["local", "ray"]
PRECISIONS: tuple[str, ...] = tuple(p.value for p in PrecisionChoice)
ENCODER_BACKENDS: tuple[str, ...] = tuple(b.value for b in EncoderBackendChoice)
