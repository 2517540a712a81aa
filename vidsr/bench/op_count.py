"""Counting dispatched ATen operations: on a GPU each is at least one kernel launch paid on the host."""
from __future__ import annotations

from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode


class OpCounter(TorchDispatchMode):
    """`with OpCounter() as c: ...` then `c.count` is the number of operations dispatched inside."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:  # type: ignore[no-untyped-def]
        self.count += 1
        return func(*args, **(kwargs or {}))
