"""Uniform random draws shared by the envs and evaluation.

Why one module: goal sampling, evaluation's start-state noise and its scenarios all draw
uniform numbers from an explicit ``torch.Generator``; one pair of helpers keeps the formula
(and so the exact numbers a seed gives) the same everywhere. Both draw float32 on
``device`` (the generator's device) in one ``torch.rand`` call; move the result with
``.to(tensor)``.
"""

from __future__ import annotations

import torch


def uniform(lo: float, hi: float, shape, generator: torch.Generator | None = None,
            device: torch.device | str | None = None) -> torch.Tensor:
    """U(lo, hi) samples, computed as ``lo + (hi - lo) * U(0, 1)``."""
    return lo + (hi - lo) * torch.rand(shape, generator=generator, device=device)


def symmetric_uniform(width: float, shape, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """U(-width, width) samples, computed as ``(2 U(0, 1) - 1) * width`` (0 where width is 0)."""
    return (2 * torch.rand(shape, generator=generator, device=device) - 1) * width


__all__ = ["uniform", "symmetric_uniform"]
