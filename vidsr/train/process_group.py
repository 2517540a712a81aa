"""Where this process sits in a torchrun launch, and what the ranks agree on.

Without torchrun (no ``WORLD_SIZE`` > 1 in the environment) a run is rank 0 of 1 and every
function here is a no-op; under torchrun each process trains on its own GPU with DDP.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from vidsr.engine.device import pick_device
from vidsr.train.degrade_feed import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a torchrun launch (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup_device(spec: str = "auto") -> tuple[torch.device, DistInfo]:
    """The device to train on; under torchrun also joins the process group (NCCL on CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return resolve_device(pick_device(spec)), DistInfo()
    info = DistInfo(rank=int(os.environ.get("RANK", "0")), world=world,
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = torch.cuda.is_available() and spec.strip().lower() != "cpu"
    if use_cuda:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if use_cuda else "gloo")
    return device, info


def barrier(dist: DistInfo) -> None:
    if dist.enabled:
        tdist.barrier()


def any_rank(dist: DistInfo, device: torch.device, *flags: bool) -> tuple[bool, ...]:
    """Each flag, true when any rank has it true (so every rank stops at the same step)."""
    if not dist.enabled:
        return flags
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return tuple(bool(v > 0) for v in t.tolist())


def leave_process_group(dist: DistInfo) -> None:
    """Tear down what setup_device joined (nothing without torchrun)."""
    if dist.enabled and tdist.is_initialized():
        tdist.destroy_process_group()
