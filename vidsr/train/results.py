"""What a training run reports: per stage, and for the whole run."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StageResult:
    name: str
    steps: int  #: steps done in this stage so far (all sessions)
    finished: bool  #: reached the configured number of steps
    seconds: float  #: wall time of this session's steps
    steps_this_session: int
    started_at: str
    ended_at: str
    validation: Mapping[str, float] | None  #: the last validation's scores
    exports: tuple[Path, ...]
    data_wait_s: float = 0.0  #: of ``seconds``, the time spent waiting for training pairs
    gpu_util: Mapping[str, Any] | None = None  #: utilisation readings of this session (CUDA only)

    @property
    def steps_per_s(self) -> float:
        return self.steps_this_session / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    stages: tuple[StageResult, ...]
    exports: tuple[Path, ...]  #: the final EMA generator: .safetensors and .pth (rank 0 only)
    started_at: str
    ended_at: str
    rank: int = 0  #: this process's rank under torchrun
