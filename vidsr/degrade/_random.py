"""Scalar draws from a ``torch.Generator``: the one source of randomness for parameters.

Parameters are drawn on the CPU from one generator so that a seed fixes every choice on
any device; only per-pixel noise is drawn on the tensor's device, from a recorded seed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import torch

T = TypeVar("T")


def uniform(g: torch.Generator, low: float, high: float) -> float:
    u = torch.rand((), generator=g, dtype=torch.float64).item()
    return low + (high - low) * u


def bernoulli(g: torch.Generator, p: float) -> bool:
    # Always consume one draw, so that changing a probability never shifts later draws.
    return torch.rand((), generator=g, dtype=torch.float64).item() < p


def randint(g: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high], both included."""
    return int(torch.randint(low, high + 1, (), generator=g).item())


def choice(g: torch.Generator, options: Sequence[T]) -> T:
    return options[randint(g, 0, len(options) - 1)]


def weighted_choice(g: torch.Generator, probs: Mapping[str, float]) -> str:
    names = list(probs)
    u = torch.rand((), generator=g, dtype=torch.float64).item() * sum(probs.values())
    acc = 0.0
    for name in names:
        acc += probs[name]
        if u < acc:
            return name
    # Only reached through rounding when u lands on the total: take the last possible choice.
    return next(n for n in reversed(names) if probs[n] > 0)


def odd_size(g: torch.Generator, sizes: tuple[int, int]) -> int:
    """An odd kernel side drawn uniformly from the odd numbers in [sizes[0], sizes[1]]."""
    lo, hi = sizes
    return lo + 2 * randint(g, 0, (hi - lo) // 2)


def seed(g: torch.Generator) -> int:
    """A fresh 62-bit seed for a per-sample noise generator."""
    return int(torch.randint(0, 2**62, (), generator=g).item())
