"""Checkpoint files: atomic writes and loads that fail with a message naming the file.

Why atomic: training is killed (SIGKILL, OOM killer, preempted node) at arbitrary times;
if that happens during ``torch.save`` onto the live checkpoint, the only copy of the run
is gone. Here the bytes go to a temporary file in the same directory (same filesystem,
so the rename is atomic), are fsynced, and only then replace the old file with
``os.replace``: a reader sees the complete old checkpoint or the complete new one.

Loads go through :func:`skillmimic.safe_load.load_torch_file` (``weights_only=True``), so a
checkpoint from anywhere can be opened without running code from it; checkpoints therefore
hold only tensors, numbers, strings and plain containers (see ``RunManagement``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..safe_load import atomic_save, load_torch_file  # noqa: F401  (atomic_save: re-exported)

#: keys every training checkpoint has (rl-games' full state plus ours)
REQUIRED_KEYS = ("model", "optimizer", "epoch", "frame")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names the file and the reason."""


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a training checkpoint (``weights_only=True``: no code from the file runs) or raise
    :class:`CheckpointError` saying what is wrong. Legacy pickled checkpoints: see
    :mod:`skillmimic.safe_load` (``SKILLMIMIC_TRUST_LEGACY_CHECKPOINTS=1``)."""
    path = Path(path)
    state = load_torch_file(path, "checkpoint", CheckpointError, map_location=map_location, allow_legacy=True)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict of training state, got {type(state).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path}: not a training checkpoint, missing keys {missing}")
    return state
