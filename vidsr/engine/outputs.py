"""Output paths: defaults, refusal to clobber, and write-then-rename."""
from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from vidsr.errors import OptionError, OutputExistsError
from vidsr.io.mux import FORMAT_BY_SUFFIX

log = logging.getLogger(__name__)

_KEEP_VIDEO_SUFFIXES = frozenset(FORMAT_BY_SUFFIX)
# Tags of the temporary files a run writes beside its output (see partial_path).
_PARTIAL_TAGS = ("partial", "video", r"lane\d+")  # lane<N>: a segment of several encoders at once (lanes.py)


# Codecs a container cannot hold (where vidsr would otherwise keep the input's container).
_WEBM_CODECS = frozenset({"libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"})
_MOV_ONLY_CODECS = frozenset({"png", "qtrle", "prores_ks", "prores"})


def default_output(input_path: Path, scale: float, *, image: bool, codec: str | None = None) -> Path:
    """clip.mp4 -> clip_x2.mp4: the input's container where it can hold the result, else Matroska."""
    tag = f"x{scale:g}".replace(".", "_")
    suffix = input_path.suffix.lower()
    if not image:
        if suffix not in _KEEP_VIDEO_SUFFIXES or (suffix == ".webm" and codec not in _WEBM_CODECS):
            suffix = ".mkv"
        if codec in _MOV_ONLY_CODECS and suffix != ".mov":
            suffix = ".mov"
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


def remove_stale_partials(output: Path) -> list[Path]:
    """Delete temporary files an earlier run for `output` left behind when it was killed.

    Only names vidsr itself gives (".{stem}.{tag}-{pid}{suffix}", optionally with the ".mkv"
    of a subtitle conversion) whose process no longer exists are removed: never a file of a
    run still going, nor anything a user named.
    """
    pattern = re.compile(rf"\.{re.escape(output.stem)}\.(?:{'|'.join(_PARTIAL_TAGS)})-(\d+)"
                         rf"{re.escape(output.suffix)}(?:\.mkv)?")
    removed = []
    if not output.parent.is_dir():
        return removed
    for path in output.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match is None or not path.is_file() or _running(int(match.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
            log.info("removed %s, left by an interrupted run", path)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":  # elsewhere os.kill(pid, 0) is not a harmless probe
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
