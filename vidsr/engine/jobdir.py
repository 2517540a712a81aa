"""The job directory that makes segmented runs resumable.

It holds one encoded file per finished segment plus a small JSON record of its frame
timestamps, written last (so a record means the segment is complete). A manifest names
the job by everything that changes its pixels; a rerun with another key starts afresh.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from vidsr.engine.segments import Segment
from vidsr.io.decode import DecodeReport

_MANIFEST = "manifest.json"


def job_key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


class JobDir:
    def __init__(self, path: Path, key: str, suffix: str) -> None:
        self.path = path
        self.key = key
        self.suffix = suffix

    @classmethod
    def open(cls, path: Path, key: str, suffix: str, segments: list[Segment]) -> JobDir:
        """Reuse `path` if it belongs to the same job; otherwise clear what vidsr left there and start again."""
        manifest = path / _MANIFEST
        if manifest.exists():
            try:
                same = json.loads(manifest.read_text()).get("key") == key
            except (OSError, ValueError):
                same = False
            if not same:
                for leftover in path.glob("seg_*"):
                    leftover.unlink()
        for partial in path.glob(".seg_*"):  # from a run that was stopped: never complete
            partial.unlink()
        path.mkdir(parents=True, exist_ok=True)
        _write_atomic(manifest, json.dumps({"key": key, "segments": [asdict(s) for s in segments]}, indent=1))
        return cls(path, key, suffix)

    def video(self, seg: Segment) -> Path:
        return self.path / f"seg_{seg.index:05d}{self.suffix}"

    def partial(self, seg: Segment) -> Path:
        return self.path / f".seg_{seg.index:05d}.partial-{os.getpid()}{self.suffix}"

    def finished(self, seg: Segment) -> DecodeReport | None:
        record = self.path / f"seg_{seg.index:05d}.json"
        if not (record.exists() and self.video(seg).exists()):
            return None
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            return None
        return DecodeReport(pts=data["pts"], concealed=data["concealed"], replaced=data["replaced"],
                            dropped=data["dropped"], truncated=data["truncated"])

    def record(self, seg: Segment, report: DecodeReport) -> None:
        """Called once the segment's video is in place under `video(seg)`."""
        _write_atomic(self.path / f"seg_{seg.index:05d}.json", json.dumps(asdict(report)))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
