"""High-level controller (HLC) environments: a discrete policy that picks learned skills.

One env (:mod:`.env`) for the four tasks of the original -- heading, circling, throwing,
layup scoring -- each a small strategy object in its own module (goal sampling, task
observation, reward, per-episode statistics, its config node); :mod:`.llc` says what the
frozen low-level skill policy must look like. Each task is registered as ``hlc_<name>``
(:mod:`envs.registry`).

* Episodes start at a fixed frame (2) of a sampled clip, last ``episode_length`` env steps
  (800), and end early when the root falls below ``termination_height`` (0.25 m).

Deliberate differences from the original (see docs/hlc.md):

* The goal of a new episode is drawn right after its reset state is set and *before* its
  first observation is computed (the original drew it afterwards, so the first observation
  of every episode carried the previous episode's goal).
* Layup scoring uses a real hoop placed at the goal each episode (:mod:`.layup`).
* The goal bearing features (cos, sin) are those of the goal direction in the humanoid's
  heading frame; the original's formula reduced to the world-frame bearing.
"""

from __future__ import annotations

from ..registry import TaskSpec, register_task
from .circling import CirclingConfig, CirclingTask
from .config import HLCConfig, HLCEnvConfig
from .env import HLCEnv, finished_episodes, hlc_scene, make_hlc_env
from .heading import HeadingConfig, HeadingTask
from .layup import RECORDED_BALL_APEX_MAX, LayupConfig, LayupTask
from .llc import LLC_OBS, LLCCheckpointError, LowLevelPolicy, check_llc_checkpoint
from .task import TASKS, HLCTask, ballistic_descent_time, goal_features, hlc_task
from .throwing import ThrowingConfig, ThrowingTask


def _make_env(env_cfg, motion_path, *, sim_backend="mujoco", scene=None, device="cpu", sim_kwargs=None, llc=None):
    if llc is None:
        raise ValueError("an HLC env needs its low-level policy (llc=...)")
    return make_hlc_env(env_cfg, motion_path, llc, sim_backend=sim_backend, scene=scene, device=device,
                        **(sim_kwargs or {}))


for _name in TASKS:
    register_task(TaskSpec(name=f"hlc_{_name}", config_type=HLCEnvConfig, make_env=_make_env, policy="discrete",
                           evaluation="episodes", needs_llc=True, config_values={"task": _name},
                           description=f"high-level controller over a frozen skill policy: {_name}"))

__all__ = ["CirclingConfig", "CirclingTask", "HLCConfig", "HLCEnv", "HLCEnvConfig", "HLCTask", "HeadingConfig",
           "HeadingTask", "LLCCheckpointError", "LLC_OBS", "LayupConfig", "LayupTask", "LowLevelPolicy",
           "RECORDED_BALL_APEX_MAX", "TASKS", "ThrowingConfig", "ThrowingTask", "ballistic_descent_time",
           "check_llc_checkpoint", "finished_episodes", "goal_features", "hlc_scene", "hlc_task", "make_hlc_env"]
