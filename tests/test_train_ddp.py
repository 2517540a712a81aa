"""Multi-GPU training as users launch it, on CPUs: `torchrun --nproc_per_node 2 -m vidsr train` (gloo)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from vidsr.train import checkpoint as ckpt


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VIDSR_DEBUG"}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vidsr", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def _train(media: Path, out: Path, *extra: str) -> None:
    done = torchrun("--config", "tiny_test", "--data", str(media / "images" / "anime"), "--holdout", "bg_meadow.jpg",
                    "--stage", "net", "--device", "cpu", "--out", str(out), "--quiet", *extra, cwd=out.parent)
    assert done.returncode == 0, done.stderr[-3000:]


def _state(step_dir: Path) -> dict:
    return torch.load(step_dir / "state.pt", weights_only=True)


def _equal(a: object, b: object) -> bool:
    """Deep equality of checkpoint contents, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_two_ranks_train_apart_checkpoint_once_and_resume_exactly(media: Path, tmp_path: Path) -> None:
    # An uninterrupted run: 4 steps, checkpoints at steps 2 and 4 (tiny_test: checkpoint_every 2).
    straight = tmp_path / "straight"
    _train(media, straight)
    root = straight / "net" / "checkpoints"
    two, four = ckpt.step_dir(root, 2), ckpt.step_dir(root, 4)

    # One checkpoint per step, written once: one state, one feed file per rank, one log line per step.
    for d in (two, four):
        assert sorted(p.name for p in d.iterdir()) == ["feed_rank0.pt", "feed_rank1.pt", "state.pt"]
    log = [json.loads(line) for line in (straight / "net" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["event"] == "train"] == [1, 2, 3, 4]
    assert all(r["samples_s"] > 0 and r["data_wait_s"] >= 0 and r["gpu_util"] is None
               for r in log if r["event"] == "train")
    assert [p.name for p in straight.glob("*.safetensors")] == ["tiny_test.safetensors"]
    assert _state(four)["step"] == 4

    # The ranks step on different data: each rank's pool of degraded pairs is its own.
    pools = [ckpt.load_feed(four, r)["pool"] for r in (0, 1)]
    assert pools[0]["gt"].shape == pools[1]["gt"].shape
    assert not torch.equal(pools[0]["gt"], pools[1]["gt"]) and not torch.equal(pools[0]["lr"], pools[1]["lr"])

    # A run stopped at step 2 and resumed (both ranks) ends where the uninterrupted one did.
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed, ignore=shutil.ignore_patterns("step_00000004", "done.json", "*.safetensors",
                                                                     "*.pth", "log.jsonl"))
    (resumed / "net" / "checkpoints" / "latest").write_text("step_00000002\n")
    _train(media, resumed, "--resume")
    again = ckpt.step_dir(resumed / "net" / "checkpoints", 4)
    a, b = _state(four), _state(again)
    assert {k for k in a if k not in ("rng", "elapsed")} <= set(b)
    for key in ("step", "net_g", "net_g_ema", "opt_g", "scaler"):
        assert _equal(a[key], b[key]), key
    for r in (0, 1):
        assert _equal(ckpt.load_feed(four, r), ckpt.load_feed(again, r)), r
    # and it did train from step 2: the weights moved since then
    assert not _equal(_state(two)["net_g"], b["net_g"])

