"""One codec worker process: clips through real encoders, frames in shared memory.

Started by :class:`vidsr.degrade.codec_pool.CodecPool` as a fresh interpreter that loads
this file, and ``encoders.py`` beside it, by path rather than as part of the vidsr
package: it imports neither torch nor vidsr, only the standard library, NumPy and PyAV,
so it starts in about a second and stays small.

Protocol, on two pipes (``multiprocessing.connection`` framing): the parent sends
``(job_id, segment_name, offset, (T, H, W, 3), params_dict)``, or ``None`` to stop; the
worker compresses the clip found at ``offset`` in the shared-memory segment, writes the
decoded frames back in its place, and answers ``(job_id, None, "")`` or
``(job_id, error_kind, message)``. End of file on the job pipe (the parent is gone)
also stops it.
"""
from __future__ import annotations

import importlib.util
import sys
from multiprocessing import resource_tracker, shared_memory
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np


def _load_encoders() -> Any:
    path = Path(__file__).with_name("encoders.py")
    spec = importlib.util.spec_from_file_location("vidsr_codec_encoders", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _attach(name: str) -> shared_memory.SharedMemory:
    """Open the parent's segment without registering it with a resource tracker.

    The parent creates and unlinks every segment. Before Python 3.13, attaching
    registers the name with this process's own resource tracker, which unlinks it
    (under the parent's feet) when this process exits; 3.13 has ``track=False`` for this.
    """
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]
    register = resource_tracker.register
    resource_tracker.register = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register  # type: ignore[assignment]


def serve(jobs: Connection, results: Connection) -> None:
    encoders = _load_encoders()
    while True:
        try:
            msg = jobs.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        job_id, name, offset, shape, params = msg
        error: tuple[str | None, str] = (None, "")
        try:
            shm = _attach(name)
            try:
                view = np.ndarray(shape, dtype=np.uint8, buffer=shm.buf, offset=offset)
                view[...] = encoders.compress_frames(view, encoders.CodecParams(**params))
                del view  # a live view would keep the segment from closing
            finally:
                shm.close()
        except encoders.EncodeFailed as exc:
            error = ("encoder", str(exc))
        except ValueError as exc:
            error = ("option", str(exc))
        except Exception as exc:  # anything else is reported to the parent, which raises it there
            error = ("internal", f"{type(exc).__name__}: {exc}")
        try:
            results.send((job_id, *error))
        except (BrokenPipeError, OSError):
            return


def main(job_fd: int, result_fd: int) -> None:
    serve(Connection(job_fd, writable=False), Connection(result_fd, readable=False))
