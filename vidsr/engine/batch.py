"""Many inputs, one queue: folders and lists of files upscaled one after another.

The queue never redoes finished work and never stops for one bad file:

* An output that exists is complete, because every output is written under a temporary
  name and renamed only when done; so it is skipped, and a rerun of the same command
  continues where the last one stopped (`overwrite` redoes everything instead).
* A file that fails is recorded with its reason and the queue goes on; the caller gets
  every file's status back (`BatchResult`) and decides what that means.

Which files of a folder are inputs: images by suffix (`IMAGE_SUFFIXES`, the list the
single-file path uses), videos by the container suffixes in `VIDEO_SUFFIXES`. Anything
else found in a folder (subtitles, .nfo, .txt next to the videos) is listed as skipped,
not failed: it is normal for such files to sit beside videos, and counting them as
failures would make every run of a tidy folder exit 1. A file with a video suffix that
does not decode is a failure. Files the user names one by one are always tried (as an
image by suffix, otherwise as a video). Hidden files and folders (a leading dot: vidsr's
own partial files and job folders among them) and the output folder are never scanned.

Outputs go under the output folder with the input's relative path and name; a video
whose container cannot hold the result gets the suffix `vidsr upscale` would give it
(usually .mkv). Without an output folder (a list of files), each output goes beside its
input under the usual default name (clip_x2.mp4).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from tqdm import tqdm

from vidsr.engine.chunked import ChunkOptions, upscale_video_chunked
from vidsr.engine.options import UpscaleOptions, UpscaleResult
from vidsr.engine.outputs import default_output
from vidsr.engine.still_image import upscale_image
from vidsr.engine.video import upscale_video
from vidsr.errors import InputError, OptionError, VidsrError
from vidsr.io.formats import resolve_encoding
from vidsr.io.mux import container_format_for
from vidsr.io.image import IMAGE_SUFFIXES
from vidsr.io.probe import VIDEO_SUFFIXES, probe_video
from vidsr.models import ModelDescriptor, load_model

log = logging.getLogger(__name__)

FileStatus = Literal["done", "skipped", "failed"]
Kind = Literal["image", "video", "other"]


@dataclass(frozen=True)
class FileResult:
    """What happened to one input of a queue."""

    input: Path
    output: Path | None            # None when no output name could be decided (e.g. unreadable input)
    status: FileStatus
    result: UpscaleResult | None = None   # for "done"
    reason: str = ""               # for "skipped" and "failed": one line

    @property
    def frames(self) -> int:
        return self.result.frames if self.result else 0

    @property
    def seconds(self) -> float:
        return self.result.seconds if self.result else 0.0

    @property
    def fps(self) -> float:
        return self.result.fps if self.result else 0.0


@dataclass(frozen=True)
class BatchResult:
    """Every input of a queue, in the order they were taken."""

    files: tuple[FileResult, ...]
    seconds: float

    def with_status(self, status: FileStatus) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if f.status == status)

    @property
    def done(self) -> tuple[FileResult, ...]:
        return self.with_status("done")

    @property
    def skipped(self) -> tuple[FileResult, ...]:
        return self.with_status("skipped")

    @property
    def failed(self) -> tuple[FileResult, ...]:
        return self.with_status("failed")

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class QueueItem:
    """One input: where it is, where it sits under the folder it was found in, and what it is."""

    input: Path
    relative: Path      # the name alone for a file named directly
    kind: Kind


def is_batch(inputs: Sequence[Path], output: Path | None) -> bool:
    """Several inputs, a folder, or an existing folder as the output: a queue, not one file."""
    return len(inputs) != 1 or inputs[0].is_dir() or (output is not None and output.is_dir())


def collect_inputs(inputs: Sequence[Path], *, recursive: bool = False, glob: str | None = None,
                   exclude: Path | None = None) -> list[QueueItem]:
    """Expand folders (sorted; `recursive` goes into subfolders; `glob` filters what folders hold)."""
    items: list[QueueItem] = []
    seen: set[Path] = set()
    skip = exclude.resolve() if exclude is not None else None
    for path in inputs:
        found = _scan(path, recursive, glob, skip) if path.is_dir() else [QueueItem(path, Path(path.name),
                                                                                   _kind(path, named=True))]
        for item in found:
            key = item.input.resolve()
            if key not in seen:
                seen.add(key)
                items.append(item)
    return items


def upscale_many(inputs: Sequence[Path], output_dir: Path | None, options: UpscaleOptions, *,
                 chunks: ChunkOptions | None = None, recursive: bool = False, glob: str | None = None,
                 on_file: Callable[[FileResult], None] | None = None) -> BatchResult:
    """Upscale every video and image of `inputs` (files and folders) into `output_dir`, one after another.

    Errors that concern the whole run (options, model, output folder, nothing to do) raise;
    a file that cannot be done is recorded as failed and the rest go on. `on_file` is called
    after each file. Videos go through `upscale_video_chunked` when `chunks` is given.
    """
    options = options.validated()
    inputs = [Path(p) for p in inputs]
    output_dir = Path(output_dir) if output_dir is not None else None
    if not inputs:
        raise OptionError("no input given")
    if output_dir is not None:
        _check_output_dir(inputs, output_dir)
    elif any(p.is_dir() for p in inputs):
        raise OptionError("a folder input needs an output folder (-o OUTDIR)")
    items = collect_inputs(inputs, recursive=recursive, glob=glob, exclude=output_dir)
    if not items:
        where = ", ".join(str(p) for p in inputs)
        nested = not recursive and any(d.is_dir() for p in inputs if p.is_dir() for d in p.iterdir())
        raise InputError(f"nothing to upscale in {where}" + (f" matching --glob {glob!r}" if glob else "")
                         + (" (add --recursive for subfolders)" if nested else ""))
    model = load_model(options.model)
    scale = options.scale or float(model.scale)
    claimed: dict[Path, Path] = {}
    kept = {} if output_dir is None else {(output_dir / i.relative).resolve(): i.input for i in items}
    results: list[FileResult] = []
    start = time.perf_counter()
    with tqdm(total=len(items), unit="file", desc="all files", disable=not options.progress,
              dynamic_ncols=True) as bar:
        for item in items:
            outcome = _one(item, output_dir, options, model, scale, chunks, claimed, kept)
            results.append(outcome)
            if outcome.status == "failed":
                log.debug("%s failed: %s", item.input, outcome.reason)
            if on_file is not None:
                on_file(outcome)
            counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
            bar.set_postfix(counts, refresh=False)
            bar.update(1)
    return BatchResult(tuple(results), time.perf_counter() - start)


# -- one file -------------------------------------------------------------------------------------


def _one(item: QueueItem, output_dir: Path | None, options: UpscaleOptions, model: ModelDescriptor, scale: float,
         chunks: ChunkOptions | None, claimed: dict[Path, Path], kept: dict[Path, Path]) -> FileResult:
    if item.kind == "other":
        what = item.input.suffix or "no suffix"
        return FileResult(item.input, None, "skipped", reason=f"not a video or image ({what})")
    output: Path | None = None
    try:
        output = _claim(_output_for(item, output_dir, options, scale), item, claimed, kept)
        if output.exists() and not options.overwrite:
            return FileResult(item.input, output, "skipped", reason="output exists")
        output.parent.mkdir(parents=True, exist_ok=True)
        if item.kind == "image":
            result = upscale_image(item.input, output, options, model)
        elif chunks is not None:
            result = upscale_video_chunked(item.input, output, options, chunks)
        else:
            result = upscale_video(item.input, output, options, model)
        return FileResult(item.input, result.output, "done", result)
    except VidsrError as exc:
        return FileResult(item.input, output, "failed", reason=_one_line(exc))
    except Exception as exc:  # a bug or an OS error on one file must not cost the rest of the queue
        log.debug("%s: unexpected error", item.input, exc_info=True)
        return FileResult(item.input, output, "failed", reason=f"{type(exc).__name__}: {_one_line(exc)}")


def _output_for(item: QueueItem, output_dir: Path | None, options: UpscaleOptions, scale: float) -> Path:
    image = item.kind == "image"
    if image:
        codec = None
    else:
        # The container a video can go in depends on the codec, which follows the input.
        info = probe_video(item.input)
        codec = resolve_encoding(info, options.encode, container_format_for(item.input)).codec
    default = default_output(item.input, scale, image=image, codec=codec)
    if output_dir is None:
        return default
    return output_dir / item.relative.with_name(item.relative.stem + default.suffix)


def _claim(output: Path, item: QueueItem, claimed: dict[Path, Path], kept: dict[Path, Path]) -> Path:
    """Make `output` unique in the queue.

    Two inputs can map to one name when a container changes (clip.avi -> clip.mkv beside a
    clip.mkv). The input whose name is unchanged keeps it (`kept`: the name each input gets
    when its container can hold the result); the other keeps its own suffix in its name
    (clip_avi.mkv). Inputs are taken in sorted order, so a rerun gives the same names.
    """
    key = output.resolve()
    if (key in claimed and claimed[key] != item.input) or kept.get(key, item.input) != item.input:
        tag = item.input.suffix.lstrip(".").lower() or "file"
        output = output.with_name(f"{output.stem}_{tag}{output.suffix}")
        key = output.resolve()
        if key in claimed or kept.get(key, item.input) != item.input:
            raise OptionError(f"output {output} would also be written for another input")
    claimed[key] = item.input
    return output


# -- finding inputs -------------------------------------------------------------------------------


def _scan(folder: Path, recursive: bool, glob: str | None, exclude: Path | None) -> list[QueueItem]:
    found: list[QueueItem] = []
    for top, dirs, files in os.walk(folder):
        here = Path(top)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != exclude) \
            if recursive else []
        for name in sorted(files):
            path = here / name
            relative = path.relative_to(folder)
            if name.startswith(".") or (glob and not _matches(relative, glob)):
                continue
            found.append(QueueItem(path, relative, _kind(path, named=False)))
    return sorted(found, key=lambda i: i.relative.as_posix())


def _matches(relative: Path, pattern: str) -> bool:
    """Glob on the path under the folder, from the right ('*.mkv', 's01/*.mp4'), ignoring case."""
    return PurePosixPath(relative.as_posix().lower()).match(pattern.lower())


def _kind(path: Path, *, named: bool) -> Kind:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if named or suffix in VIDEO_SUFFIXES:
        return "video"
    return "other"


def _check_output_dir(inputs: Sequence[Path], output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise OptionError(f"output {output_dir} is a file: several inputs need an output folder")
    if not output_dir.exists() and output_dir.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        raise OptionError(f"output {output_dir} looks like a file name: several inputs need an output folder")
    target = output_dir.resolve()
    for p in inputs:
        if p.is_dir() and p.resolve() == target:
            raise OptionError(f"the output folder is the input folder {p}: outputs would replace the inputs; "
                              "give another -o")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
