"""The unified interaction reward of SkillMimic, as pure functions of tensors.

r = r_b * r_o * r_ig * r_cg1 * r_cg2 (multiplicative, in (0, 1]):
  r_b   body: key positions (root + 17 key bodies), root exp-map + hinge angles, smoothness
  r_o   object position
  r_ig  interaction graph: key-body-to-object vectors
  r_cg1 body contact: any contact on the penalised body set is a failure (reference: none)
  r_cg2 object contact: the object is touched (|F_x| or |F_y| > threshold) iff the reference says so
Each term is returned separately so training can log them. The simulated state at time t is
compared with the reference at the *same* t (the original V1 compared with t + 1).
Differences of angles are wrapped to [-pi, pi] so a hinge at +pi and one at -pi agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .rotations import quat_to_expmap


@dataclass
class RewardWeights:
    """Exponent weights (facts §3); 0 turns a term into a constant 1."""

    p: float = 20.0
    r: float = 20.0
    op: float = 1.0
    ig: float = 20.0
    cg1: float = 5.0
    cg2: float = 5.0
    smoothness: float = 0.1
    contact_threshold: float = 0.1


def wrap_angle(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


@dataclass
class RewardInputs:
    """Everything the reward needs for one side (simulation or reference)."""

    root_pos: torch.Tensor      # (N, 3)
    root_quat: torch.Tensor     # (N, 4)
    dof_pos: torch.Tensor       # (N, 156)
    dof_vel: torch.Tensor       # (N, 156)
    key_pos: torch.Tensor       # (N, 17, 3)
    obj_pos: torch.Tensor      # (N, 3)
    root_expmap: torch.Tensor | None = None   # (N, 3) exp-map of root_quat when known (the library keeps the reference's)


def _root_expmap(side: RewardInputs) -> torch.Tensor:
    return quat_to_expmap(side.root_quat) if side.root_expmap is None else side.root_expmap


def interaction_reward(
    sim: RewardInputs,
    ref: RewardInputs,
    prev_dof_vel: torch.Tensor,
    body_contact_forces: torch.Tensor,   # (N, nbody_penalised, 3)
    obj_contact_force: torch.Tensor,    # (N, 3)
    ref_contact: torch.Tensor,           # (N,) 0/1
    w: RewardWeights = RewardWeights(),
) -> dict[str, torch.Tensor]:
    """Per-term rewards and their product ``'reward'``, each (N,)."""
    k_sim = torch.cat([sim.root_pos[:, None], sim.key_pos], 1)
    k_ref = torch.cat([ref.root_pos[:, None], ref.key_pos], 1)
    e_p = (k_ref - k_sim).pow(2).flatten(1).mean(-1)
    rot_sim = torch.cat([_root_expmap(sim), sim.dof_pos], -1)
    rot_ref = torch.cat([_root_expmap(ref), ref.dof_pos], -1)
    e_r = wrap_angle(rot_ref - rot_sim).pow(2).mean(-1)
    # Penalises jerky DOF velocity changes where the reference is (almost exactly) still.
    e_s = ((sim.dof_vel - prev_dof_vel).pow(2) / ((ref.dof_vel.pow(2) + 1e-12) * 1e12)).mean(-1)
    r_p = torch.exp(-w.p * e_p)
    r_r = torch.exp(-w.r * e_r)
    r_s = torch.exp(-w.smoothness * e_s)

    r_o = torch.exp(-w.op * (ref.obj_pos - sim.obj_pos).pow(2).mean(-1))
    ig_sim = k_sim - sim.obj_pos[:, None]
    ig_ref = k_ref - ref.obj_pos[:, None]
    r_ig = torch.exp(-w.ig * (ig_ref - ig_sim).pow(2).flatten(1).mean(-1))

    body_contact = (body_contact_forces.abs() >= w.contact_threshold).flatten(1).any(-1).float()
    obj_contact = (obj_contact_force[:, :2].abs() > w.contact_threshold).any(-1).float()
    r_cg1 = torch.exp(-w.cg1 * body_contact)
    r_cg2 = torch.exp(-w.cg2 * (obj_contact - ref_contact.float()).abs())

    r_b = r_p * r_r * r_s
    reward = r_b * r_o * r_ig * r_cg1 * r_cg2
    return {"reward": reward, "r_p": r_p, "r_r": r_r, "r_s": r_s, "r_b": r_b, "r_o": r_o,
            "r_ig": r_ig, "r_cg1": r_cg1, "r_cg2": r_cg2}
