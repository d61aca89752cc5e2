"""Checkpoint files: atomic writes, loads that fail with a message naming the file, and what
can be read off a checkpoint without building its model (policy sizes, the run config).

Why at the bottom floor: the trainer writes checkpoints, evaluation and the viewers read
them, config validation checks them and the HLC env's low-level policy comes from one; none
of these may need the others, and none of this needs rl-games.

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

from .safe_load import atomic_save, load_torch_file  # noqa: F401  (atomic_save: re-exported)

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


#: prefix ``torch.compile`` puts before every weight name of a compiled model
_COMPILED_PREFIX = "_orig_mod."
#: the output layer of each policy kind in rl-games' model layout (``a2c_network`` = our network)
POLICY_HEADS = {"continuous": "a2c_network.mu.weight", "discrete": "a2c_network.logits.weight"}


def checkpoint_weights(state: dict) -> dict:
    """The model weights of a loaded checkpoint, with ``torch.compile``'s key prefix removed."""
    return {k.removeprefix(_COMPILED_PREFIX): v for k, v in state["model"].items()}


def policy_shapes(weights: dict, head: str = POLICY_HEADS["continuous"]) -> tuple[int, int, list[int]]:
    """(obs size, action size, hidden units) read off the actor's and the ``head``'s weight
    matrices; KeyError when the weights have no actor MLP or no such head."""
    layers = sorted((int(k.split(".")[2]), v) for k, v in weights.items()
                    if k.startswith("a2c_network.actor_mlp.") and k.endswith(".weight"))
    out = weights.get(head)
    if not layers or out is None:
        raise KeyError(f"no a2c_network.actor_mlp.*.weight / {head}")
    return int(layers[0][1].shape[1]), int(out.shape[0]), [int(w.shape[0]) for _, w in layers]


def run_config_text(state: dict) -> str | None:
    """The resolved YAML of the run that wrote a loaded checkpoint (None if it carries none)."""
    text = state.get("run_config")
    return str(text) if text else None
