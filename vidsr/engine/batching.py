"""How many frames to give the network at once."""
from __future__ import annotations

import logging

import torch

from vidsr.engine.upscaler import FrameUpscaler

log = logging.getLogger(__name__)

CPU_BATCH = 4
MAX_BATCH = 16
_MEMORY_SHARE = 0.6  # of the free memory; the rest is headroom for fragmentation and other users


def choose_batch(upscaler: FrameUpscaler, height: int, width: int) -> int:
    """On CUDA, from a one-frame trial run's peak memory and the free memory; a fixed size on CPU."""
    if not upscaler.is_cuda:
        return CPU_BATCH
    device = upscaler.device
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    x = torch.zeros((1, 3, height, width), device=device, dtype=upscaler.dtype)
    upscaler.process_eager(x)
    torch.cuda.synchronize(device)
    per_frame = max(1, torch.cuda.max_memory_allocated(device) - base)
    del x
    free, _total = torch.cuda.mem_get_info(device)
    batch = int(max(1, min(MAX_BATCH, free * _MEMORY_SHARE // per_frame)))
    log.info("batch %d (%.0f MiB per frame, %.0f MiB free)", batch, per_frame / 2**20, free / 2**20)
    return batch
