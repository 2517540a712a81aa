"""The job folder that makes segmented runs resumable, and the only place they write to.

vidsr makes one job folder per output: beside it by default, or inside `--work-dir`. It
holds one encoded file per finished segment plus a small JSON record of its frame
timestamps, written last (so a record means the segment is complete), and a manifest
that names the job by everything that changes its pixels.

Every name vidsr writes here comes from this module, and only those names are ever
removed: a rerun with another key deletes the old job's files by the names its manifest
lists, and a finished job deletes its own files, then the folder only if nothing else is
left in it. A folder that holds files without a manifest of ours is never used. A lock
keeps two runs from sharing one job folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from types import TracebackType

from vidsr.engine.segments import Segment
from vidsr.errors import OptionError
from vidsr.io.decode import DecodeReport

try:  # POSIX; elsewhere two runs on one job folder are not prevented
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

JOB_SUFFIX = ".vidsr-job"
_MANIFEST = "manifest.json"
_FORMAT = 1  # bump when the layout changes; an old job then starts afresh


def job_key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def job_folder(output: Path, work_dir: Path | None = None) -> Path:
    """The job folder for `output`: `.NAME.vidsr-job` beside it, or inside `work_dir`.

    In a work dir the name also carries a digest of the output's full path, so outputs of
    the same name in different folders never share a job.
    """
    if work_dir is None:
        return output.with_name(f".{output.name}{JOB_SUFFIX}")
    tag = hashlib.sha256(str(output.resolve()).encode()).hexdigest()[:8]
    return work_dir / f".{output.name}.{tag}{JOB_SUFFIX}"


def _video_name(index: int, suffix: str) -> str:
    return f"seg_{index:05d}{suffix}"


def _record_name(index: int) -> str:
    return f"seg_{index:05d}.json"


def _partial_name(index: int, suffix: str) -> str:
    return f".seg_{index:05d}.partial{suffix}"


def _tmp_name(name: str) -> str:
    return f".{name}.tmp"


def _job_files(suffix: str, count: int) -> list[str]:
    """Every name a job of `count` segments can have written, the manifest last."""
    names = []
    for i in range(count):
        names += [_video_name(i, suffix), _record_name(i), _tmp_name(_record_name(i)), _partial_name(i, suffix)]
    return names + [_tmp_name(_MANIFEST), _MANIFEST]


class JobDir:
    """An open job folder; held locked until `close()` (or the end of a `with` block)."""

    def __init__(self, path: Path, key: str, suffix: str, segments: list[Segment], lock_fd: int | None) -> None:
        self.path = path
        self.key = key
        self.suffix = suffix
        self.segments = segments
        self._lock_fd = lock_fd

    @classmethod
    def open(cls, path: Path, key: str, suffix: str, segments: list[Segment]) -> JobDir:
        """Reuse `path` if it holds the same job; start afresh if it holds another of ours; refuse anything else."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # a --work-dir that does not exist yet; never removed
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise OptionError(f"cannot make the job folder {path}: {exc.strerror or exc}") from exc
        lock_fd = _lock(path)
        try:
            old = _read_manifest(path)
            if old is None:
                strangers = sorted(p.name for p in path.iterdir() if p.name != _tmp_name(_MANIFEST))
                if strangers:
                    raise OptionError(f"{path} holds files vidsr did not write ({', '.join(strangers[:3])}"
                                      f"{', ...' if len(strangers) > 3 else ''}); move them elsewhere or use "
                                      "another --work-dir")
            else:
                same = old["key"] == key and old["suffix"] == suffix and old["segments"] == [
                    asdict(s) for s in segments]
                if same:
                    _unlink(path, [_partial_name(s.index, suffix) for s in segments])  # never complete
                else:
                    log.info("%s held another job (other settings or input); starting afresh", path)
                    _unlink(path, _job_files(old["suffix"], len(old["segments"])))
            _write_atomic(path / _MANIFEST, json.dumps(
                {"vidsr_job": _FORMAT, "key": key, "suffix": suffix, "segments": [asdict(s) for s in segments]},
                indent=1))
        except BaseException:
            _unlock(lock_fd)
            raise
        return cls(path, key, suffix, segments, lock_fd)

    def __enter__(self) -> JobDir:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def video(self, seg: Segment) -> Path:
        return self.path / _video_name(seg.index, self.suffix)

    def partial(self, seg: Segment) -> Path:
        """Where a segment is encoded before it is renamed to `video(seg)`."""
        return self.path / _partial_name(seg.index, self.suffix)

    def finished(self, seg: Segment) -> DecodeReport | None:
        record = self.path / _record_name(seg.index)
        if not (record.exists() and self.video(seg).exists()):
            return None
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            return None
        return DecodeReport(pts=data["pts"], concealed=data["concealed"], replaced=data["replaced"],
                            dropped=data["dropped"], resized=data.get("resized", 0), truncated=data["truncated"],
                            held=data.get("held", 0))

    def record(self, seg: Segment, report: DecodeReport) -> None:
        """Called once the segment's video is in place under `video(seg)`."""
        _write_atomic(self.path / _record_name(seg.index), json.dumps(asdict(report)))

    def discard_partials(self, segments: list[Segment]) -> None:
        """Remove what stopped encodes of `segments` left (they can never be completed)."""
        _unlink(self.path, [_partial_name(s.index, self.suffix) for s in segments])

    def remove(self) -> None:
        """Delete every file this job wrote (after success, or a failure before any segment was done),
        then the folder if nothing else is in it."""
        _unlink(self.path, _job_files(self.suffix, len(self.segments)))
        self.close()
        try:
            self.path.rmdir()
        except OSError:
            left = sorted(p.name for p in self.path.iterdir()) if self.path.is_dir() else []
            log.warning("kept %s: it holds files vidsr did not write (%s)", self.path, ", ".join(left[:3]))

    def close(self) -> None:
        """Release the lock; the files stay for a rerun."""
        _unlock(self._lock_fd)
        self._lock_fd = None


def _read_manifest(path: Path) -> dict | None:
    """The manifest of the job in `path`, None if there is none; an error if it is not ours."""
    manifest = path / _MANIFEST
    if not manifest.exists():
        return None
    try:
        data = json.loads(manifest.read_text())
        if data.get("vidsr_job") == _FORMAT and isinstance(data.get("key"), str) and isinstance(
                data.get("suffix"), str) and isinstance(data.get("segments"), list):
            return data
    except (OSError, ValueError, AttributeError):
        pass
    raise OptionError(f"{manifest} is not a job manifest this vidsr can read; remove {path} yourself "
                      "or use another --work-dir")


def _lock(path: Path) -> int | None:
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OptionError(f"another vidsr run is using {path}; wait for it to end") from None
    except OSError as exc:  # some network file systems cannot lock a folder: run unguarded
        os.close(fd)
        log.debug("cannot lock %s (%s); a second run on it would not be stopped", path, exc)
        return None
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the lock


def _unlink(folder: Path, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(_tmp_name(path.name))
    tmp.write_text(text)
    os.replace(tmp, path)
