"""Checkpoints: everything needed to continue a stage exactly where it stopped.

Layout, per stage::

    <stage>/checkpoints/step_00001000/state.pt        G, EMA, D, optimisers, scaler, step, RNG states
    <stage>/checkpoints/step_00001000/feed_rank0.pt   shuffle pool and next batch index, one per rank
    <stage>/checkpoints/latest                        name of the newest complete checkpoint

Files are written under temporary names and renamed, and ``latest`` is written last, so
a run killed mid-save resumes from the previous checkpoint. Everything is stored as
tensors and plain Python values and read back with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import contextlib
import os
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsr.errors import InputError

LATEST = "latest"


def rng_state() -> dict[str, Any]:
    """The global random states (torch CPU and CUDA, Python, NumPy) as loadable plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": _to_lists(random.getstate()),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, tuple) else x


def _to_tuples(x: Any) -> Any:
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# The files save_state and save_feed write (and _atomic_save's temporary names for them).
_CHECKPOINT_FILE = re.compile(r"(state|feed_rank\d+)\.pt(\.tmp)?")


def step_dir(root: Path, step: int) -> Path:
    return root / f"step_{step:08d}"


def save_state(root: Path, step: int, state: Mapping[str, Any]) -> Path:
    d = step_dir(root, step)
    d.mkdir(parents=True, exist_ok=True)
    _atomic_save(dict(state), d / "state.pt")
    return d


def save_feed(root: Path, step: int, rank: int, state: Mapping[str, Any]) -> None:
    d = step_dir(root, step)
    d.mkdir(parents=True, exist_ok=True)
    _atomic_save(dict(state), d / f"feed_rank{rank}.pt")


def mark_latest(root: Path, step: int, keep: int) -> None:
    """Point ``latest`` at ``step`` and delete all but the ``keep`` newest checkpoints."""
    tmp = root / (LATEST + ".tmp")
    tmp.write_text(step_dir(root, step).name + "\n", encoding="utf-8")
    os.replace(tmp, root / LATEST)
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        _remove_checkpoint(old)


def _remove_checkpoint(d: Path) -> None:
    """Delete the files vidsr writes into a checkpoint folder (state.pt, feed_rank<N>.pt and their
    .tmp leftovers), then the folder if that left it empty: anything else put there stays."""
    for f in d.iterdir():
        if f.is_file() and _CHECKPOINT_FILE.fullmatch(f.name):
            f.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: someone else's file is in it
        d.rmdir()


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    marker = root / LATEST
    if not marker.is_file():
        return None
    d = root / marker.read_text(encoding="utf-8").strip()
    if not (d / "state.pt").is_file():
        raise InputError(f"{marker} points at {d}, which holds no state.pt")
    return d


def load_state(d: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(d / "state.pt", map_location=map_location, weights_only=True)


def load_feed(d: Path, rank: int) -> dict[str, Any]:
    path = d / f"feed_rank{rank}.pt"
    if not path.is_file():
        raise InputError(f"{d} has no {path.name}: was it written by a run with a different number of GPUs?")
    return torch.load(path, map_location="cpu", weights_only=True)
