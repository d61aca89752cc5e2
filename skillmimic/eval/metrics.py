"""Tracking metrics of SkillMimic as pure functions of tensors (any device, any batch).

Why pure functions: the eval runner, tests and notebooks score a rollout from plain
tensors (simulated vs reference positions and contact flags) without an env, and the
numbers do not depend on how a simulator lays out its state.

Per env-frame (all from the same time step, state(t) against reference(t)):

* ``E_b-mpjpe`` (mm): mean over the 18 key points (root + 17 key bodies) of the
  Euclidean distance between reference and simulation.
* ``E_o-mpjpe`` (mm): distance between reference and simulated object centre.
* contact flags: *body contact* = any of the penalised bodies touches anything (the
  reference never does); *object contact* = the object's net contact force has an |x| or |y|
  component above the threshold (z ignored: the same test as the reward's r_cg2).
* ``E_cg`` = mean of the squared differences of the two flags, in {0, 0.5, 1};
  contact-correct means ``E_cg == 0``.
* ``Acc`` = E_b < 100 mm and E_o < 200 mm and contact-correct.

Fixes against the original ``compute_evaluation_metrics``: it sliced a 380-d vector with a
different layout (quat root at 3:7, ball at 313:316, keys from 323) and inverted the
meaning of the body flag on one side only; here every quantity is passed explicitly with
its own shape, both sides of each flag mean "in contact", and the reference body flag is
an input (0 for BallPlay) instead of a hidden constant.

Episode-level aggregate: the normalised accumulated reward NAR = sum(reward) / sum(steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

#: Thresholds of the per-frame success ``Acc`` (facts V1 §6).
BODY_ERROR_OK_MM = 100.0
OBJECT_ERROR_OK_MM = 200.0
#: Contact force threshold (N) shared with the reward's contact terms.
CONTACT_THRESHOLD = 0.1


def key_points(root_pos: torch.Tensor, key_body_pos: torch.Tensor) -> torch.Tensor:
    """(..., 18, 3): the root followed by the 17 key bodies, the points E_b averages over."""
    return torch.cat([root_pos.unsqueeze(-2), key_body_pos], dim=-2)


def body_mpjpe(ref_points: torch.Tensor, sim_points: torch.Tensor) -> torch.Tensor:
    """Mean per-point position error in millimetres, (..., K, 3) x 2 -> (...)."""
    return (ref_points - sim_points).norm(dim=-1).mean(dim=-1) * 1000.0


def object_mpjpe(ref_obj_pos: torch.Tensor, sim_obj_pos: torch.Tensor) -> torch.Tensor:
    """Object centre error in millimetres, (..., 3) x 2 -> (...)."""
    return (ref_obj_pos - sim_obj_pos).norm(dim=-1) * 1000.0


def body_contact_flag(body_contact_forces: torch.Tensor, threshold: float = CONTACT_THRESHOLD) -> torch.Tensor:
    """(..., B, 3) contact forces on the penalised bodies -> (...) bool: any component >= threshold."""
    return (body_contact_forces.abs() >= threshold).flatten(-2).any(-1)


def object_contact_flag(obj_contact_force: torch.Tensor, threshold: float = CONTACT_THRESHOLD) -> torch.Tensor:
    """(..., 3) net contact force on the object -> (...) bool: |F_x| or |F_y| > threshold."""
    return (obj_contact_force[..., :2].abs() > threshold).any(-1)


def contact_error(sim_body_contact: torch.Tensor, sim_obj_contact: torch.Tensor,
                  ref_obj_contact: torch.Tensor, ref_body_contact: torch.Tensor | bool = False) -> torch.Tensor:
    """E_cg per frame: mean squared difference of the [body, object] contact flags, in {0, .5, 1}."""
    sim = torch.stack(torch.broadcast_tensors(sim_body_contact.float(), sim_obj_contact.float()), -1)
    ref_body = torch.as_tensor(ref_body_contact, device=sim.device).float().expand(sim.shape[:-1])
    ref = torch.stack([ref_body, (ref_obj_contact > 0.5).float().expand(sim.shape[:-1])], -1)
    return (sim - ref).pow(2).mean(-1)


def frame_success(e_b_mm: torch.Tensor, e_o_mm: torch.Tensor, e_cg: torch.Tensor,
                  body_ok_mm: float = BODY_ERROR_OK_MM, object_ok_mm: float = OBJECT_ERROR_OK_MM) -> torch.Tensor:
    """Acc per frame: body and object close to the reference and both contact flags right."""
    return (e_b_mm < body_ok_mm) & (e_o_mm < object_ok_mm) & (e_cg == 0)


@dataclass
class FrameMetrics:
    """Per env-frame metrics, each (N,)."""

    e_b_mm: torch.Tensor
    e_o_mm: torch.Tensor
    e_cg: torch.Tensor
    contact_correct: torch.Tensor     # bool
    obj_contact_correct: torch.Tensor  # bool
    acc: torch.Tensor                 # bool

    def as_dict(self) -> dict[str, torch.Tensor]:
        return dict(vars(self))


def tracking_metrics(ref_root_pos: torch.Tensor, ref_key_pos: torch.Tensor, ref_obj_pos: torch.Tensor,
                     ref_obj_contact: torch.Tensor, sim_root_pos: torch.Tensor, sim_key_pos: torch.Tensor,
                     sim_obj_pos: torch.Tensor, sim_body_contact_forces: torch.Tensor,
                     sim_obj_contact_force: torch.Tensor, threshold: float = CONTACT_THRESHOLD,
                     ref_body_contact: torch.Tensor | bool = False) -> FrameMetrics:
    """All per-frame metrics of one time step from explicit reference and simulated quantities."""
    e_b = body_mpjpe(key_points(ref_root_pos, ref_key_pos), key_points(sim_root_pos, sim_key_pos))
    e_o = object_mpjpe(ref_obj_pos, sim_obj_pos)
    body_c = body_contact_flag(sim_body_contact_forces, threshold)
    obj_c = object_contact_flag(sim_obj_contact_force, threshold)
    e_cg = contact_error(body_c, obj_c, ref_obj_contact, ref_body_contact)
    return FrameMetrics(e_b_mm=e_b, e_o_mm=e_o, e_cg=e_cg, contact_correct=e_cg == 0,
                        obj_contact_correct=obj_c == (ref_obj_contact > 0.5),
                        acc=frame_success(e_b, e_o, e_cg))


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` holds (NaN where nothing is selected)."""
    m = mask.to(values.dtype if values.is_floating_point() else torch.float32)
    v = values.to(m.dtype)
    if dim is None:
        return (v * m).sum() / m.sum()
    return (v * m).sum(dim) / m.sum(dim)


def normalized_accumulated_reward(rewards: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """NAR = sum(reward) / number of steps counted, over all envs and steps of ``rewards``."""
    if mask is None:
        return rewards.float().mean()
    return masked_mean(rewards.float(), mask)


def nar_over_rounds(round_nars: Sequence[float], skip_first: bool = True) -> float:
    """The reported NAR: the mean of per-round NARs, dropping round 0 when there are others
    (the original's figure averages rounds 1-9 of 10). NaN rounds (nothing counted) are ignored."""
    vals = torch.tensor([float(x) for x in round_nars], dtype=torch.float64)
    if skip_first and len(vals) > 1:
        vals = vals[1:]
    vals = vals[~torch.isnan(vals)]
    return float(vals.mean()) if len(vals) else float("nan")


__all__ = [
    "BODY_ERROR_OK_MM", "OBJECT_ERROR_OK_MM", "CONTACT_THRESHOLD", "FrameMetrics", "key_points", "body_mpjpe",
    "object_mpjpe", "body_contact_flag", "object_contact_flag", "contact_error", "frame_success",
    "tracking_metrics", "masked_mean", "normalized_accumulated_reward", "nar_over_rounds",
]
