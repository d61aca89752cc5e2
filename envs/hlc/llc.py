"""The frozen low-level controller (LLC) the HLC env drives: what it must look like.

The env receives it as any object of the :class:`LowLevelPolicy` protocol; loading one from
a training checkpoint (an rl-games model) is the trainer's and the evaluator's job
(:func:`skillmimic.rl.policy.load_llc`). What can be checked without building a model --
the file exists, it is a training checkpoint of a continuous skill policy, its sizes fit the
HLC env -- is :func:`check_llc_checkpoint`, which config validation calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from skillmimic.checkpoint import POLICY_HEADS, CheckpointError, checkpoint_weights, load_checkpoint, policy_shapes
from skillmimic.observations import HUMANOID_OBS, NUM_SKILLS, OBJECT_OBS, skill_obs_size

#: LLC observation size: humanoid + object features + skill one-hot (the V1 skill policy's)
LLC_OBS = skill_obs_size()     # 902 for the BallPlay humanoid


class LowLevelPolicy(Protocol):
    """``policy(obs) -> actions`` in [-1, 1] for ``LLC_OBS`` observations.

    Optional: ``action_scale`` (float), the PD target per action unit the policy was trained
    with; the HLC env uses it instead of its own ``cfg.action_scale`` when present."""

    num_obs: int
    num_actions: int

    def __call__(self, obs: torch.Tensor) -> torch.Tensor: ...


class LLCCheckpointError(CheckpointError):
    """``llc_checkpoint`` cannot serve as the low-level controller; the message names the file."""


def check_llc_sizes(path, num_obs: int, num_actions: int, humanoid_dofs: int = 156) -> None:
    """A policy of ``num_obs`` -> ``num_actions`` fits the HLC env, or LLCCheckpointError naming
    both sizes (e.g. a SkillMimic-V2 policy with history features)."""
    if num_obs != LLC_OBS:
        raise LLCCheckpointError(
            f"llc_checkpoint {path}: the policy takes {num_obs}-d observations but the HLC env feeds "
            f"{LLC_OBS} ({HUMANOID_OBS} humanoid + {OBJECT_OBS} object + {NUM_SKILLS} skill one-hot); it was trained "
            f"with a different observation layout")
    if num_actions != humanoid_dofs:
        raise LLCCheckpointError(f"llc_checkpoint {path}: the policy outputs {num_actions} actions but the "
                                 f"humanoid has {humanoid_dofs} actuated DOFs")


def check_llc_checkpoint(path: str | Path, humanoid_dofs: int = 156) -> dict:
    """Check that ``path`` can serve as the LLC, reading the file only (no model is built);
    returns the loaded checkpoint. Raises :class:`CheckpointError` (LLCCheckpointError for
    the LLC-specific problems) naming the file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise LLCCheckpointError(f"llc_checkpoint {path}: file does not exist")
    try:
        state = load_checkpoint(path, map_location="cpu")
        num_obs, num_actions, _ = policy_shapes(checkpoint_weights(state), POLICY_HEADS["continuous"])
    except KeyError as e:
        raise LLCCheckpointError(f"llc_checkpoint {path}: not usable as a skill policy: checkpoint {path}: "
                                 f"not a skillmimic_mlp policy ({e})") from None
    except CheckpointError as e:
        raise LLCCheckpointError(f"llc_checkpoint {path}: not usable as a skill policy: {e}") from e
    check_llc_sizes(path, num_obs, num_actions, humanoid_dofs)
    return state


__all__ = ["LLC_OBS", "LLCCheckpointError", "LowLevelPolicy", "check_llc_checkpoint", "check_llc_sizes"]
