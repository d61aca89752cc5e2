"""Heading: steer the ball to a point on the ground plane."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import torch

from .task import HLCTask, check_range, goal_features, hlc_task, polar_goal


@dataclass
class HeadingConfig:
    """Steer the ball to a point on the ground plane (held at ``goal_height``)."""

    goal_distance: List[float] = field(default_factory=lambda: [2.0, 8.0])   # [lo, hi) m from the start root
    goal_height: float = 1.0           # target point (goal_xy, goal_height) for the ball
    reach_distance: float = 0.5        # ball within this of the target point: reached (latched)

    def validate(self) -> None:
        check_range("heading.goal_distance", self.goal_distance)


@hlc_task
class HeadingTask(HLCTask):
    name = "heading"
    config_type = HeadingConfig
    num_obs = 4
    histogram = ("min_distance", "closest ball-goal distance (m)")

    def __init__(self, cfg: HeadingConfig, num_envs, device):
        super().__init__(cfg, num_envs, device)
        self.stats = {"reached": torch.zeros(num_envs, dtype=torch.bool, device=device),
                      "min_distance": torch.zeros(num_envs, device=device)}

    def reset(self, env, ids):
        super().reset(env, ids)
        self.goal[ids] = polar_goal(env.sim.state.joint.root_pos[ids, :2], self.cfg.goal_distance, env.generator)
        self.stats["min_distance"][ids] = float("inf")

    def _target(self) -> torch.Tensor:
        return torch.cat([self.goal, torch.full_like(self.goal[:, :1], self.cfg.goal_height)], -1)

    def obs(self, env, state):
        return goal_features(state.joint.root_pos, state.joint.root_quat, self.goal)

    def step(self, env, prev_ball, state, live):
        dist = (state.joint.obj_pos - self._target()).norm(dim=-1)
        s = self.stats
        s["reached"] |= live & (dist < self.cfg.reach_distance)
        s["min_distance"] = torch.where(live, torch.minimum(s["min_distance"], dist), s["min_distance"])
        return {"reward": torch.exp(-dist), "goal_distance": dist}

    @staticmethod
    def summarize(stats, control_dt):
        return {"reach_rate": stats["reached"].float().mean().item(),
                "min_goal_distance_mean_m": stats["min_distance"].mean().item()}
