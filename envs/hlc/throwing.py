"""Throwing: throw the ball as close to a target height as possible."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .task import HLCTask, hlc_task


@dataclass
class ThrowingConfig:
    """Throw the ball as close to ``target_height`` as possible."""

    target_height: float = 2.5

    def validate(self) -> None:
        pass


@hlc_task
class ThrowingTask(HLCTask):
    name = "throwing"
    config_type = ThrowingConfig
    histogram = ("max_ball_height", "max ball height (m)")

    def __init__(self, cfg: ThrowingConfig, num_envs, device):
        super().__init__(cfg, num_envs, device)
        self.stats = {"max_ball_height": torch.zeros(num_envs, device=device)}

    def step(self, env, prev_ball, state, live):
        z = state.joint.obj_pos[:, 2]
        s = self.stats
        s["max_ball_height"] = torch.where(live, torch.maximum(s["max_ball_height"], z), s["max_ball_height"])
        return {"reward": torch.exp(-(z - self.cfg.target_height).abs()), "ball_height": z}

    @staticmethod
    def summarize(stats, control_dt):
        h = stats["max_ball_height"]
        return {"max_ball_height_mean_m": h.mean().item(),
                "max_ball_height_std_m": h.std(correction=0).item(),
                "max_ball_height_median_m": h.median().item(),
                "max_ball_height_min_m": h.min().item(),
                "max_ball_height_max_m": h.max().item()}
