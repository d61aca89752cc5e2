"""Batched forward kinematics of the humanoid in torch (CPU or CUDA).

Why our own FK: the motion library must produce reference body positions that agree with
what the simulator will report for the same joint angles (so a perfect imitation scores
reward 1) from joint-space clips, batched on the device where the tensors already live; one
vectorised FK over (frames or worlds x bodies), computed level by level of the tree. The
simulators can report bodies from it too (``sim.body_kinematics=torch``; the default on
MuJoCo Warp) or from their engine's own kinematics, which agree to float32 rounding.

Conventions: root quaternion wxyz, hinge angles in DOF order (joint-major, then the joint's
three hinges in its hinge order, ``Skeleton.hinge_orders``),
velocities of body *origins* in the world frame, angular velocity in the world frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .assets.skeleton import SKELETON_BALLPLAY, Skeleton
from .rotations import hinge_angular_velocity, hinge_to_matrix, quat_to_matrix


@dataclass
class BodyKinematics:
    pos: torch.Tensor                  # (..., nbody, 3)
    rot: torch.Tensor                  # (..., nbody, 3, 3)
    lin_vel: torch.Tensor | None = None  # (..., nbody, 3)
    ang_vel: torch.Tensor | None = None  # (..., nbody, 3)


class ForwardKinematics:
    """FK for one skeleton; constant index tensors are cached per (device, dtype).

    Positions/rotations: one batched step per tree level (11 for this skeleton; measured
    ~2x faster on CPU than pointer jumping over all bodies), on level-major buffers where a
    level is one slice, with one product ``R_parent @ [R_local | offset]`` per level. Velocities: each joint adds
    ``d_j = R_parent(j) w_j`` (its hinge rates in world axes) to every descendant, so
    ``omega = omega_root + A d`` and ``v_i = v_root + omega_root x r_i + sum_j d_j x (r_i - r_j)``
    with the constant ancestor matrix ``A`` -- a few batched ops regardless of depth.
    """

    def __init__(self, skeleton: Skeleton = SKELETON_BALLPLAY):
        self.skeleton = skeleton
        nb = skeleton.num_bodies
        depth = skeleton.depth
        self._levels = [[i for i in range(nb) if depth[i] == d] for d in range(1, int(depth.max()) + 1)]
        ancestor = np.zeros((nb, nb - 1))
        for i in range(1, nb):
            j = i
            while j > 0:  # joints on the path root -> i (joint j-1 moves body j)
                ancestor[i, j - 1] = 1.0
                j = skeleton.parents[j]
        self._ancestor = ancestor
        self._cache: dict = {}

    def _tensors(self, device, dtype):
        key = (device, dtype)
        if key not in self._cache:
            sk = self.skeleton
            # Bodies in level order (root, then level by level): each level is one contiguous
            # slice of the level-major buffers, read and written without index scatter.
            order = [0] + [i for ids in self._levels for i in ids]
            slot = {b: k for k, b in enumerate(order)}
            levels, start = [], 1
            for ids in self._levels:
                levels.append((slice(start, start + len(ids)),
                               torch.tensor([slot[sk.parents[i]] for i in ids], device=device)))
                start += len(ids)
            joints = torch.tensor(order[1:], device=device) - 1          # joint of each non-root slot
            offsets = torch.as_tensor(sk.offsets, device=device, dtype=dtype)[order[1:]].unsqueeze(-1)
            to_body = torch.tensor([slot[b] for b in range(len(order))], device=device)
            parents = torch.tensor(sk.parents[1:], device=device)
            ancestor = torch.as_tensor(self._ancestor, device=device, dtype=dtype)
            self._cache[key] = (levels, joints, offsets, to_body, parents, ancestor)
        return self._cache[key]

    def __call__(
        self,
        root_pos: torch.Tensor,
        root_quat: torch.Tensor,
        dof_pos: torch.Tensor,
        root_lin_vel: torch.Tensor | None = None,
        root_ang_vel: torch.Tensor | None = None,
        dof_vel: torch.Tensor | None = None,
    ) -> BodyKinematics:
        batch = root_pos.shape[:-1]
        nb = self.skeleton.num_bodies
        levels, joints, offsets, to_body, parents, ancestor = self._tensors(root_pos.device, root_pos.dtype)
        angles = dof_pos.reshape(*batch, nb - 1, 3)
        local_rot = hinge_to_matrix(angles, self.skeleton.hinge_orders)
        # Level-major (slot, *batch, 3, 4) [R_local | offset] per non-root slot: one product
        # R_parent @ [R_local | offset] gives a level's rotations and rotated offsets at once.
        local = torch.movedim(local_rot, -3, 0)[joints]
        local = torch.cat([local, offsets.reshape(nb - 1, *([1] * len(batch)), 3, 1).expand(*local.shape[:-1], 1)], -1)
        rot_s = root_pos.new_empty(nb, *batch, 3, 3)
        pos_s = root_pos.new_empty(nb, *batch, 3)
        rot_s[0] = quat_to_matrix(root_quat)
        pos_s[0] = root_pos
        for sl, par in levels:
            r_par = rot_s[par]
            prod = r_par @ local[sl.start - 1:sl.stop - 1]
            rot_s[sl] = prod[..., :3]
            pos_s[sl] = pos_s[par] + prod[..., 3]
        rot = torch.movedim(rot_s[to_body], 0, -3).contiguous()
        pos = torch.movedim(pos_s[to_body], 0, -2).contiguous()
        if dof_vel is None:
            return BodyKinematics(pos, rot)
        qd = dof_vel.reshape(*batch, nb - 1, 3)
        local_w = hinge_angular_velocity(angles, qd, self.skeleton.hinge_orders)  # parent frame
        d = (rot[..., parents, :, :] @ local_w.unsqueeze(-1)).squeeze(-1)   # (..., nj, 3) world
        rel = pos - pos[..., :1, :]                                          # origins relative to root
        joint_ang = ancestor @ d                                             # (..., nb, 3) sum of d over ancestors
        ang = root_ang_vel.unsqueeze(-2) + joint_ang
        lin = (root_lin_vel.unsqueeze(-2) + torch.cross(root_ang_vel.unsqueeze(-2).expand_as(rel), rel, dim=-1)
               + torch.cross(joint_ang, rel, dim=-1) - ancestor @ torch.cross(d, rel[..., 1:, :], dim=-1))
        return BodyKinematics(pos, rot, lin, ang)


_FK_CACHE: dict = {}


def forward_kinematics(*args, skeleton: Skeleton = SKELETON_BALLPLAY, **kwargs) -> BodyKinematics:
    """FK of the BallPlay humanoid (with ``skeleton``'s hinge orders); see :class:`ForwardKinematics`."""
    key = (skeleton.names, skeleton.parents, skeleton.hinge_orders, skeleton.offsets.tobytes())
    if key not in _FK_CACHE:
        _FK_CACHE[key] = ForwardKinematics(skeleton)
    return _FK_CACHE[key](*args, **kwargs)
