"""Basket scoring from the ball trajectory, as a pure function of tensors.

A score is the ball centre passing *downward* through the rim's plane inside the rim circle
between two consecutive control steps (the crossing point is interpolated linearly). With a
real, colliding rim in the scene (``HoopConfig``) a ball can only get there by going through
the hoop, so this replaces the original's "predicted landing point near a virtual target".
An upward pass (a ball bouncing back up) never counts, and a ball resting in the rim plane
cannot count twice because the test needs a strict crossing.
"""

from __future__ import annotations

import torch



def rim_crossings(prev_obj_pos: torch.Tensor, obj_pos: torch.Tensor, rim_pos: torch.Tensor,
                  rim_radius: float) -> torch.Tensor:
    """(N,) bool: the ball centre went down through the rim disc during this step."""
    z0 = prev_obj_pos[:, 2] - rim_pos[:, 2]
    z1 = obj_pos[:, 2] - rim_pos[:, 2]
    down = (z0 > 0) & (z1 <= 0)
    s = (z0 / (z0 - z1).clamp_min(1e-9)).clamp(0, 1).unsqueeze(-1)
    xy = prev_obj_pos[:, :2] + s * (obj_pos[:, :2] - prev_obj_pos[:, :2])
    inside = (xy - rim_pos[:, :2]).norm(dim=-1) < rim_radius
    return down & inside
