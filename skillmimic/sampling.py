"""Random draws shared by the envs, the V2 hook and evaluation.

Why one module: goal sampling, evaluation's start-state noise and its scenarios all draw
uniform numbers from an explicit ``torch.Generator``; one pair of helpers keeps the formula
(and so the exact numbers a seed gives) the same everywhere. The uniform pair draws float32 on
``device`` (the generator's device) in one ``torch.rand`` call; move the result with
``.to(tensor)``. :func:`categorical` draws indices without a host sync (ATS on CUDA).
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


def categorical(weights: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of ``weights`` (..., K), drawn with probability proportional to the
    row's (non-negative) weights, by inverse CDF: one ``torch.rand`` per row and a search.

    Why not ``torch.multinomial``: drawing one sample per row it checks its input on the host
    (a host sync on CUDA every call); this draws from the same distribution without reading
    anything back. A zero weight is never drawn; a row of zeros gives its last index."""
    cdf = weights.to(torch.float64).cumsum(-1)
    u = torch.rand(cdf.shape[:-1] + (1,), generator=generator, device=cdf.device, dtype=torch.float64)
    idx = torch.searchsorted(cdf, u * cdf[..., -1:], right=True)
    return idx.squeeze(-1).clamp_max(weights.shape[-1] - 1)


__all__ = ["uniform", "symmetric_uniform", "categorical"]
