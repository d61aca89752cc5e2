"""Plain helpers shared by the test files (the fixtures built on them are in ``conftest.py``).

Why a module and not only fixtures: paths and ``skipif`` marks are needed at collection time,
and some helpers are called with arguments (states, compositions); fixtures cannot be.
Test files import them with ``from helpers import ...`` (pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
#: The shared data beside the repository (never copied into it); tests skip cleanly without it.
SHARED_MOTIONS = REPO.parent / "shared" / "data" / "motions"
SPARSE = SHARED_MOTIONS / "BallPlay-V2" / "sparse"           # the V2 tests' data
DEMO = REPO / "data" / "motions" / "demo"                     # generated, shipped with the repository

needs_sparse = pytest.mark.skipif(not SPARSE.exists(), reason="shared BallPlay-V2 data not present")


def shared_motion(*parts: str) -> Path:
    """A path under the shared motion folder; the calling test is skipped when it is absent."""
    path = SHARED_MOTIONS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared motion data not found at {path}")
    return path


def compose(overrides: list[str], config: str = "config"):
    """hydra's composition of ``cfg/<config>.yaml`` (training or eval schema) with ``overrides``."""
    from hydra import compose as hydra_compose, initialize_config_dir

    from skillmimic.eval.app import register_eval_config
    from skillmimic.rl.config import CONFIG_DIR, register_configs

    register_configs()
    register_eval_config()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config, overrides=overrides)


# --------------------------------------------------------------------------- fast training runs
FAST_NUM_ENVS, FAST_MINIBATCH = 4, 64


def _train_motion() -> Path | None:
    for p in (DEMO, SHARED_MOTIONS / "BallPlay-M" / "layup"):
        if p.exists() and any(p.rglob("*.pt")):
            return p
    return None


#: Clips the training tests run on: the demo clips, else the shared layup.
MOTION = _train_motion()
needs_motion = pytest.mark.skipif(MOTION is None, reason="neither the demo clips nor the shared BallPlay data present")


def fast_overrides(output_dir: Path, experiment: str, **extra) -> list[str]:
    """Overrides of a fast training run (4 envs, a [64, 64] network) writing into ``output_dir``."""
    ov = {"motion.path": str(MOTION), "num_envs": FAST_NUM_ENVS, "train.network.units": "[64,64]",
          "train.minibatch_size": FAST_MINIBATCH, "output_dir": str(output_dir), "experiment": experiment,
          "print_stats": "false", "torch_update_threads": 1, **extra}
    return [f"{k}={v}" for k, v in ov.items()]


# --------------------------------------------------------------------------- simulator states
def random_state(n: int, seed: int = 0):
    """A seeded, physically loose JointState of ``n`` worlds (root 1-2 m up, ball aside)."""
    from skillmimic.state import JointState

    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g)
    return JointState(
        root_pos=torch.rand(n, 3, generator=g) + torch.tensor([0.0, 0.0, 1.0]),
        root_quat=q / q.norm(dim=-1, keepdim=True),
        root_lin_vel=torch.randn(n, 3, generator=g),
        root_ang_vel=torch.randn(n, 3, generator=g),
        dof_pos=torch.rand(n, 156, generator=g) * 2 - 1,
        dof_vel=torch.randn(n, 156, generator=g),
        obj_pos=torch.rand(n, 3, generator=g) + torch.tensor([2.0, 0.0, 1.0]),
        obj_quat=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
        obj_lin_vel=torch.randn(n, 3, generator=g),
        obj_ang_vel=torch.randn(n, 3, generator=g),
    )


def standing_state(n: int, ball_height: float = 1.5):
    """The zero pose standing upright (root 0.96 m), the ball at rest 1.5 m aside at ``ball_height``."""
    from skillmimic.state import JointState

    z = torch.zeros(n, 3)
    return JointState(
        root_pos=torch.tensor([0.0, 0.0, 0.96]).repeat(n, 1),
        root_quat=torch.tensor([math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0]).repeat(n, 1),
        root_lin_vel=z, root_ang_vel=z, dof_pos=torch.zeros(n, 156), dof_vel=torch.zeros(n, 156),
        obj_pos=torch.tensor([1.5, 1.5, ball_height]).repeat(n, 1),
        obj_quat=torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1), obj_lin_vel=z, obj_ang_vel=z,
    )
