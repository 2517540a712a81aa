"""How many threads each stage of a run gets, so that together they fit the cores.

On a GPU the network costs the host little, and decoding and encoding should have every
core: FFmpeg's own choices (0) are right. On the CPU the network takes nearly all the
time (animevideov3 spends about a second per 480x270 frame on 2 cores, where x264 and the
decoder spend a few milliseconds), and torch's intra-op threads already fill every core;
x264's frame threads (1.5 per core) and FFmpeg's decoder threads would only wake up to
preempt them, and an OpenMP team waits at each barrier for its slowest thread. So on
the CPU decoding gets one thread and encoding one per 16 cores (a many-core CPU runs the
network fast enough for one x264 thread at medium to fall behind at 1080p output).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ThreadBudget:
    decode: int = 0     # FFmpeg decoder threads; 0: FFmpeg picks
    encode: int = 0     # encoder threads; 0: the encoder picks


def available_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def budget_for(device: torch.device, cores: int | None = None) -> ThreadBudget:
    """The budget of a run whose network runs on `device`, on `cores` cores (default: this process's)."""
    if device.type != "cpu":
        return ThreadBudget(decode=0, encode=0)
    return ThreadBudget(decode=1, encode=max(1, (cores or available_cores()) // 16))
