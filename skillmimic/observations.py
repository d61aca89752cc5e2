"""Observation features as pure functions of tensors (any device).

Why pure functions: the skill env, the HLC envs, the history encoder and eval all need
the same features of a :class:`~skillmimic.sim.SceneState`; keeping them free of env state
makes them testable on synthetic inputs and identical across backends.

Layout (902 = 823 humanoid + 15 object + 64 skill one-hot, as in the original, whose
object is the ball): root height 1 | bodies 1..52 relative to root, heading frame 156 |
53 body rotations, heading frame, tan-norm 318 | 53 body linear velocities 159 | 53 angular
velocities 159 | fingertip contact forces (world, N) 30 | object position 3 (xy relative to
root, z absolute, heading frame) | object rotation tan-norm 6 | object linear + angular
velocity 6 | one-hot 64.

The sizes are defined here only (:func:`humanoid_obs_size`, :data:`OBJECT_OBS`,
:func:`scene_obs_size`): they follow from the skeleton (bodies, fingertips) and from the
object entity's features, which are the same for every shape (a pose and a velocity).
"""

from __future__ import annotations

import torch

from .assets.skeleton import SKELETON_BALLPLAY, Skeleton
from .motion.columns import NUM_SKILLS  # the skill labels' one-hot width (part of the data format)
from .rotations import heading_yaw, matrix_to_tan_norm, quat_to_matrix


def humanoid_obs_size(skeleton: Skeleton = SKELETON_BALLPLAY) -> int:
    """Width of :func:`humanoid_obs`: root height, non-root body positions (3 each), body
    rotations (tan-norm, 6), linear and angular velocities (3 + 3), fingertip forces (3)."""
    nb = skeleton.num_bodies
    return 1 + 3 * (nb - 1) + 6 * nb + 3 * nb + 3 * nb + 3 * len(skeleton.fingertip_ids)


#: width of :func:`object_obs`: position 3, rotation tan-norm 6, linear + angular velocity 6
OBJECT_OBS = 3 + 6 + 3 + 3
HUMANOID_OBS = humanoid_obs_size()          # 823 for the BallPlay humanoid


def scene_obs_size(skeleton: Skeleton = SKELETON_BALLPLAY) -> int:
    """Width of :func:`scene_obs`: humanoid + object features (838 for the BallPlay humanoid)."""
    return humanoid_obs_size(skeleton) + OBJECT_OBS


def skill_obs_size(skeleton: Skeleton = SKELETON_BALLPLAY, num_skills: int = NUM_SKILLS) -> int:
    """Width of a skill policy's observation: scene features + the skill one-hot (902)."""
    return scene_obs_size(skeleton) + num_skills


def heading_rotation_inv(root_quat: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) rotation by -yaw about z, yaw of the root-rotated world x axis."""
    yaw = heading_yaw(root_quat)
    c, s = torch.cos(yaw), torch.sin(yaw)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, s, zero, -s, c, zero, zero, zero, one], -1).reshape(*yaw.shape, 3, 3)


def _apply(rot: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Apply (N, 3, 3) rotations to (N, ..., 3) vectors."""
    shape = v.shape
    flat = v.reshape(shape[0], -1, 3)
    return torch.einsum("nij,nkj->nki", rot, flat).reshape(shape)


def local_body_pos(inv: torch.Tensor, body_pos: torch.Tensor) -> torch.Tensor:
    """(N, nbody - 1, 3) non-root body positions relative to the root, in the heading frame
    ``inv`` (:func:`heading_rotation_inv`)."""
    return _apply(inv, body_pos[:, 1:] - body_pos[:, :1])


def local_object_pos(inv: torch.Tensor, obj_pos: torch.Tensor, root_pos: torch.Tensor) -> torch.Tensor:
    """(N, 3) object position in the heading frame ``inv``: xy relative to the root, z absolute."""
    return _apply(inv, torch.cat([obj_pos[:, :2] - root_pos[:, :2], obj_pos[:, 2:3]], -1))


def humanoid_obs(body_pos, body_rot, body_lin_vel, body_ang_vel, fingertip_forces, root_quat,
                 inv: torch.Tensor | None = None) -> torch.Tensor:
    """(N, :func:`humanoid_obs_size`) humanoid features; ``fingertip_forces`` (N, 10, 3) in the world frame.
    ``inv``: :func:`heading_rotation_inv` of ``root_quat`` when the caller has it already."""
    n, nb = body_pos.shape[:2]
    inv = heading_rotation_inv(root_quat) if inv is None else inv
    # positions relative to the root, linear and angular velocities: one rotation into the
    # heading frame for all three (one batched product instead of three small ones)
    local = _apply(inv, torch.cat([body_pos[:, 1:] - body_pos[:, :1], body_lin_vel, body_ang_vel], 1))
    local_pos, lin_vel, ang_vel = local.split([nb - 1, nb, nb], 1)
    local_rot = matrix_to_tan_norm(inv[:, None] @ body_rot)
    return torch.cat([
        body_pos[:, 0, 2:3],
        local_pos.reshape(n, -1),
        local_rot.reshape(n, -1),
        lin_vel.reshape(n, -1),
        ang_vel.reshape(n, -1),
        fingertip_forces.reshape(n, -1),
    ], dim=-1)


def object_obs(obj_pos, obj_quat, obj_lin_vel, obj_ang_vel, root_pos, root_quat,
               inv: torch.Tensor | None = None) -> torch.Tensor:
    """(N, :data:`OBJECT_OBS`) object features in the humanoid's heading frame (``inv`` as in
    :func:`humanoid_obs`)."""
    inv = heading_rotation_inv(root_quat) if inv is None else inv
    return torch.cat([
        local_object_pos(inv, obj_pos, root_pos),
        matrix_to_tan_norm(inv @ quat_to_matrix(obj_quat)),
        _apply(inv, obj_lin_vel),
        _apply(inv, obj_ang_vel),
    ], dim=-1)


def skill_one_hot(labels: torch.Tensor, num_skills: int = NUM_SKILLS) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels.long(), num_skills).to(torch.float32)


def scene_obs(state, fingertip_ids) -> torch.Tensor:
    """(N, :func:`scene_obs_size`) humanoid + object features of a :class:`~skillmimic.sim.SceneState`."""
    j = state.joint
    inv = heading_rotation_inv(j.root_quat)      # one heading frame for both parts
    return torch.cat([
        humanoid_obs(state.body_pos, state.body_rot, state.body_lin_vel, state.body_ang_vel,
                     state.contact_forces[:, fingertip_ids], j.root_quat, inv),
        object_obs(j.obj_pos, j.obj_quat, j.obj_lin_vel, j.obj_ang_vel, j.root_pos, j.root_quat, inv),
    ], dim=-1)
