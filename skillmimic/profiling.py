"""Opt-in stage timers for the training hot path (physics, env work, inference, update).

Why not ``time.perf_counter`` around each stage: on CUDA the host only queues work, so a
host clock measures launch time unless every stage synchronises -- and a per-step sync is
exactly what the hot path must not do. Here each stage records a pair of CUDA events on
the current stream (no sync); :meth:`StageTimer.totals` synchronises once and sums their
elapsed times, so it belongs at epoch boundaries. On the CPU the clock is exact already.

Disabled (the default) a stage costs one attribute check and a shared null context.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

import torch

_NULL = contextlib.nullcontext()


class StageTimer:
    """Accumulated time per named stage on one device; ``enabled=False`` records nothing."""

    def __init__(self, device: str | torch.device = "cpu", enabled: bool = False):
        self.device = torch.device(device)
        self.enabled = bool(enabled)
        self._cuda = self.device.type == "cuda"
        self._host: dict[str, float] = defaultdict(float)
        self._events: dict[str, list] = defaultdict(list)

    def stage(self, name: str):
        """Context manager timing one occurrence of stage ``name``."""
        if not self.enabled:
            return _NULL
        return self._cuda_stage(name) if self._cuda else self._host_stage(name)

    @contextlib.contextmanager
    def _host_stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._host[name] += time.perf_counter() - t0

    @contextlib.contextmanager
    def _cuda_stage(self, name: str):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        try:
            yield
        finally:
            end.record()
            self._events[name].append((start, end))

    def totals(self) -> dict[str, float]:
        """Seconds per stage since the last :meth:`reset` (synchronises on CUDA)."""
        out = dict(self._host)
        if self._events:
            torch.cuda.synchronize(self.device)
            for name, pairs in self._events.items():
                out[name] = out.get(name, 0.0) + sum(s.elapsed_time(e) for s, e in pairs) / 1000.0
        return out

    def reset(self) -> None:
        self._host.clear()
        self._events.clear()


__all__ = ["StageTimer"]
