"""Output paths: defaults, refusal to clobber, and write-then-rename."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from vidsr.errors import OptionError, OutputExistsError
from vidsr.io.mux import FORMAT_BY_SUFFIX

_KEEP_VIDEO_SUFFIXES = frozenset(FORMAT_BY_SUFFIX)


def default_output(input_path: Path, scale: float, *, image: bool) -> Path:
    """clip.mp4 -> clip_x2.mp4; containers vidsr cannot write H.264 into become .mkv."""
    tag = f"x{scale:g}".replace(".", "_")
    suffix = input_path.suffix.lower()
    if not image and suffix not in _KEEP_VIDEO_SUFFIXES:
        suffix = ".mkv"
    return input_path.with_name(f"{input_path.stem}_{tag}{suffix}")


def check_output(input_path: Path, output: Path, *, overwrite: bool) -> None:
    if output.resolve() == input_path.resolve():
        raise OptionError(f"output would overwrite the input: {output}")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"output exists (use --overwrite to replace it): {output}")
    if not output.parent.exists():
        raise OptionError(f"output folder does not exist: {output.parent}")


def partial_path(output: Path, tag: str = "partial") -> Path:
    """A sibling name (same file system, so the final rename is atomic) that keeps the suffix."""
    return output.with_name(f".{output.stem}.{tag}-{os.getpid()}{output.suffix}")


@contextlib.contextmanager
def atomic_output(output: Path) -> Iterator[Path]:
    """Yield a temporary path; rename it to `output` only if the block completes."""
    tmp = partial_path(output)
    try:
        yield tmp
        os.replace(tmp, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
