"""Circling: dribble the ball around a circle centred on the start position."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List

import torch

from skillmimic.sampling import uniform

from .task import HLCTask, check_range, goal_features, hlc_task


@dataclass
class CirclingConfig:
    """Dribble the ball around a circle centred on the start position."""

    radius: List[float] = field(default_factory=lambda: [2.0, 5.0])          # [lo, hi) m
    min_ball_speed: float = 0.5        # below it the reward is scaled by slow_scale
    slow_scale: float = 0.1
    reach_distance: float = 0.5        # ball within this of the circle: on the circle

    def validate(self) -> None:
        check_range("circling.radius", self.radius)


@hlc_task
class CirclingTask(HLCTask):
    name = "circling"
    config_type = CirclingConfig
    num_obs = 5
    histogram = ("swept_angle", "angle swept on the circle (rad)")
    per_env = ("goal", "radius")

    def __init__(self, cfg: CirclingConfig, num_envs, device):
        super().__init__(cfg, num_envs, device)
        self.radius = torch.zeros(num_envs, device=device)
        self.stats = {"reached": torch.zeros(num_envs, dtype=torch.bool, device=device),
                      "on_circle_steps": torch.zeros(num_envs, dtype=torch.long, device=device),
                      "swept_angle": torch.zeros(num_envs, device=device)}

    def reset(self, env, ids):
        super().reset(env, ids)
        self.goal[ids] = env.sim.state.joint.root_pos[ids, :2]
        lo, hi = self.cfg.radius
        self.radius[ids] = uniform(float(lo), float(hi), len(ids), env.generator, env.device)

    def obs(self, env, state):
        return torch.cat([goal_features(state.joint.root_pos, state.joint.root_quat, self.goal),
                          self.radius[:, None]], -1)

    def step(self, env, prev_ball, state, live):
        c = self.cfg
        rel = state.joint.obj_pos[:, :2] - self.goal
        off = (rel.norm(dim=-1) - self.radius).abs()
        fast = state.joint.obj_lin_vel.norm(dim=-1) >= c.min_ball_speed
        reward = torch.exp(-off) * torch.where(fast, 1.0, c.slow_scale)
        on = live & (off < c.reach_distance)
        prev_rel = prev_ball[:, :2] - self.goal
        dtheta = torch.atan2(rel[:, 1], rel[:, 0]) - torch.atan2(prev_rel[:, 1], prev_rel[:, 0])
        dtheta = torch.remainder(dtheta + math.pi, 2 * math.pi) - math.pi
        s = self.stats
        s["reached"] |= on
        s["on_circle_steps"] += on.long()
        s["swept_angle"] += torch.where(on, dtheta, torch.zeros_like(dtheta))
        return {"reward": reward, "circle_offset": off}

    @staticmethod
    def summarize(stats, control_dt):
        laps = stats["swept_angle"].abs() / (2 * math.pi)
        return {"reach_rate": stats["reached"].float().mean().item(),
                "lap_rate": (laps >= 1.0).float().mean().item(),
                "laps_mean": laps.mean().item(),
                "on_circle_fraction": (stats["on_circle_steps"].float() / stats["length"].clamp_min(1)).mean().item()}

