"""skillmimic: physics-based humanoid basketball skills from human+ball demonstrations.

The public API, one import away (loaded lazily, so ``import skillmimic`` stays cheap)::

    from skillmimic import MotionLibrary, make_simulator, SceneConfig, JointState
    from skillmimic import forward_kinematics, interaction_reward, scene_obs

Task environments live in the ``envs`` package (``envs.SkillEnv``, ``envs.hlc``); training,
evaluation and tools are ``train.py``, ``eval.py`` and ``python -m skillmimic.<module>``.
"""

from __future__ import annotations

import importlib
import os

# Torch's OpenMP workers and MuJoCo's rollout threads share the cores (torch uses several only
# during the PPO update, see Config.torch_update_threads). Spinning OpenMP workers would keep
# the cores busy after each parallel region, starving the simulator -- measured 2.6x slower
# end to end on a loaded 2-core machine. Takes effect when skillmimic is imported before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_EXPORTS = {
    "MotionLibrary": "skillmimic.motion",
    "ReferenceFrame": "skillmimic.motion",
    "MotionFileError": "skillmimic.motion",
    "load_clip": "skillmimic.motion",
    "find_clips": "skillmimic.motion",
    "Simulator": "skillmimic.sim",
    "SceneState": "skillmimic.sim",
    "make_simulator": "skillmimic.sim",
    "available_backends": "skillmimic.sim",
    "SceneConfig": "skillmimic.assets.mjcf",
    "PhysicsConfig": "skillmimic.assets.mjcf",
    "ObjectConfig": "skillmimic.assets.objects",
    "HoopConfig": "skillmimic.assets.mjcf",
    "build_scene_xml": "skillmimic.assets.mjcf",
    "SKELETON_BALLPLAY": "skillmimic.assets.skeleton",
    "JointState": "skillmimic.state",
    "forward_kinematics": "skillmimic.kinematics",
    "ForwardKinematics": "skillmimic.kinematics",
    "interaction_reward": "skillmimic.rewards",
    "RewardWeights": "skillmimic.rewards",
    "RewardInputs": "skillmimic.rewards",
    "scene_obs": "skillmimic.observations",
    "rim_crossings": "skillmimic.scoring",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'skillmimic' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
