"""What every HLC task is made of (:class:`HLCTask`), the table of tasks by name, and the
goal maths the tasks share."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from skillmimic.observations import heading_rotation_inv
from skillmimic.sampling import uniform

#: a ball is in free flight when no component of its net contact force exceeds this (N)
BALL_CONTACT_THRESHOLD = 0.1


class HLCTask:
    """One task: goals, task observation, per-step reward and per-episode statistics.

    ``env`` in the methods is the :class:`~envs.hlc.env.HLCEnv` running the task.

    ``cfg`` is the task's own config node (``task.hlc.<name>``). ``stats`` holds per-env
    accumulators of the current episode, reset by :meth:`reset`; :meth:`step` updates them
    only where ``live`` (env steps after an episode's end within the same HLC step do not
    count). ``histogram``: the per-episode statistic eval plots, and its axis label.
    ``per_env``: the names of the task's other per-env tensors that :meth:`reset` draws
    (:meth:`reset_where` keeps them where no episode starts)."""

    name: ClassVar[str]
    config_type: ClassVar[type]
    num_obs: ClassVar[int] = 0
    needs_hoop: ClassVar[bool] = False
    histogram: ClassVar[tuple[str, str]]
    per_env: ClassVar[tuple[str, ...]] = ("goal",)

    def __init__(self, cfg, num_envs: int, device: torch.device):
        self.cfg = cfg
        self.goal = torch.zeros(num_envs, 2, device=device)     # xy; unused by throwing
        self.stats: dict[str, torch.Tensor] = {}

    def reset(self, env, ids: torch.Tensor) -> None:
        """Draw the new episodes' goals from their start state (already set in the sim)."""
        for v in self.stats.values():
            v[ids] = 0

    def reset_where(self, env, mask: torch.Tensor) -> None:
        """:meth:`reset` of the envs where ``mask`` is set, without host sync: goals are drawn
        for every env by :meth:`reset` and the old values are kept where ``mask`` is not set."""
        old = self._per_env_values()
        self.reset(env, torch.arange(env.num_envs, device=env.device))
        for key, new in self._per_env_values().items():
            kept = torch.where(mask.view(-1, *([1] * (new.dim() - 1))), new, old[key])
            if key in self.stats:
                self.stats[key] = kept
            else:
                setattr(self, key, kept)

    def _per_env_values(self) -> dict[str, torch.Tensor]:
        return {**{k: getattr(self, k).clone() for k in self.per_env}, **{k: v.clone() for k, v in self.stats.items()}}

    def obs(self, env, state) -> torch.Tensor:
        return torch.zeros(env.num_envs, 0, device=env.device)

    def step(self, env, prev_ball: torch.Tensor, state, live: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reward terms of this env step (``reward`` among them) and statistics update."""
        raise NotImplementedError

    @staticmethod
    def summarize(stats: dict[str, torch.Tensor], control_dt: float) -> dict[str, float]:
        """Task metrics over finished episodes (``stats``: one row per episode)."""
        raise NotImplementedError


#: HLC tasks by name; a task module adds its class with :func:`hlc_task`
TASKS: dict[str, type[HLCTask]] = {}


def hlc_task(cls: type[HLCTask]) -> type[HLCTask]:
    """Class decorator: make an :class:`HLCTask` known by its ``name``."""
    if cls.name in TASKS:
        raise ValueError(f"HLC task {cls.name!r} is registered twice")
    TASKS[cls.name] = cls
    return cls


# --------------------------------------------------------------------------- shared task maths
def ballistic_descent_time(z0: torch.Tensor, vz: torch.Tensor, height: float | torch.Tensor,
                           g: float = 9.81) -> torch.Tensor:
    """Time until a projectile at height ``z0`` moving up at ``vz`` comes *down* through ``height``.

    z(t) = z0 + vz t - g t^2 / 2 = height has the roots (vz -+ sqrt(vz^2 + 2 g (z0 - height))) / g;
    the descending crossing is the larger one, (vz + sqrt(...)) / g. (The original used
    (sqrt(...) - vz) / g, which is that time only for vz = 0.) NaN where the path never
    comes down through ``height`` from above at t >= 0 (apex below it, or already below and falling).
    """
    disc = vz * vz + 2.0 * g * (z0 - height)
    t = (vz + torch.sqrt(disc.clamp_min(0.0))) / g
    valid = (disc >= 0) & (t >= 0) & ((z0 >= height) | (vz > 0))
    return torch.where(valid, t, torch.full_like(t, float("nan")))


def goal_features(root_pos: torch.Tensor, root_quat: torch.Tensor, goal_xy: torch.Tensor) -> torch.Tensor:
    """(N, 4): goal xy in the heading frame and (cos, sin) of its bearing in that frame."""
    inv = heading_rotation_inv(root_quat)[:, :2, :2]
    local = torch.einsum("nij,nj->ni", inv, goal_xy - root_pos[:, :2])
    bearing = torch.atan2(local[:, 1], local[:, 0])
    return torch.cat([local, torch.cos(bearing)[:, None], torch.sin(bearing)[:, None]], dim=-1)


def polar_goal(root_xy: torch.Tensor, distance, gen: torch.Generator) -> torch.Tensor:
    """Goals at a uniform distance in ``distance`` and a uniform direction around ``root_xy``."""
    n, dev = root_xy.shape[0], root_xy.device
    d = uniform(float(distance[0]), float(distance[1]), n, gen, dev)
    theta = 2.0 * math.pi * torch.rand(n, generator=gen, device=dev)
    return root_xy + d[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], -1)


def ball_in_flight(state) -> torch.Tensor:
    return state.obj_contact_force.abs().amax(-1) <= BALL_CONTACT_THRESHOLD


def check_range(key: str, rng) -> None:
    """``rng`` must be [lo, hi] with 0 <= lo <= hi (ValueError naming ``hlc.<key>``)."""
    if len(rng) != 2 or not 0 <= rng[0] <= rng[1]:
        raise ValueError(f"hlc.{key} must be [lo, hi] with 0 <= lo <= hi, got {list(rng)}")
