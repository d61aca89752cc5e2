"""Batched forward kinematics of the humanoid in torch (CPU or CUDA).

Why our own FK: the motion library must produce reference body positions that agree
exactly with what the simulator will report for the same joint angles (so a perfect
imitation scores reward 1), and both engines hand back joint-space state; one
vectorised FK over (worlds x bodies), computed level by level of the tree, serves both
and runs on the device where the tensors already live.

Conventions: root quaternion wxyz, hinge angles in DOF order (joint-major, x/y/z minor),
velocities of body *origins* in the world frame, angular velocity in the world frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .assets.skeleton import SKELETON_BALLPLAY, Skeleton
from .rotations import hinge_xyz_to_matrix, quat_to_matrix


@dataclass
class BodyKinematics:
    pos: torch.Tensor                  # (..., nbody, 3)
    rot: torch.Tensor                  # (..., nbody, 3, 3)
    lin_vel: torch.Tensor | None = None  # (..., nbody, 3)
    ang_vel: torch.Tensor | None = None  # (..., nbody, 3)


class ForwardKinematics:
    """FK for one skeleton; tensors of the tree are cached per (device, dtype)."""

    def __init__(self, skeleton: Skeleton = SKELETON_BALLPLAY):
        self.skeleton = skeleton
        depth = skeleton.depth
        self._levels = [
            [i for i in range(skeleton.num_bodies) if depth[i] == d] for d in range(1, int(depth.max()) + 1)
        ]
        self._cache: dict = {}

    def _tensors(self, device, dtype):
        key = (device, dtype)
        if key not in self._cache:
            sk = self.skeleton
            offsets = torch.as_tensor(sk.offsets, device=device, dtype=dtype)
            levels = []
            for ids in self._levels:
                ids_t = torch.tensor(ids, device=device)
                parents = torch.tensor([sk.parents[i] for i in ids], device=device)
                levels.append((ids_t, parents, ids_t - 1))  # joint index = body index - 1
            self._cache[key] = (offsets, levels)
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
        offsets, levels = self._tensors(root_pos.device, root_pos.dtype)
        angles = dof_pos.reshape(*batch, nb - 1, 3)
        local_rot = hinge_xyz_to_matrix(angles)  # (..., nj, 3, 3)
        pos = root_pos.new_zeros(*batch, nb, 3)
        rot = root_pos.new_zeros(*batch, nb, 3, 3)
        pos[..., 0, :] = root_pos
        rot[..., 0, :, :] = quat_to_matrix(root_quat)
        with_vel = dof_vel is not None
        if with_vel:
            qd = dof_vel.reshape(*batch, nb - 1, 3)
            # Angular velocity of the joint in the parent frame: x-hinge axis, then the
            # y axis after the x rotation, then the z axis after x and y.
            ca, sa = torch.cos(angles[..., 0]), torch.sin(angles[..., 0])
            cb, sb = torch.cos(angles[..., 1]), torch.sin(angles[..., 1])
            ex = torch.stack([torch.ones_like(ca), torch.zeros_like(ca), torch.zeros_like(ca)], -1)
            ey = torch.stack([torch.zeros_like(ca), ca, sa], -1)
            ez = torch.stack([sb, -sa * cb, ca * cb], -1)
            local_w = ex * qd[..., 0:1] + ey * qd[..., 1:2] + ez * qd[..., 2:3]
            lin = root_pos.new_zeros(*batch, nb, 3)
            ang = root_pos.new_zeros(*batch, nb, 3)
            lin[..., 0, :] = root_lin_vel
            ang[..., 0, :] = root_ang_vel
        for ids, parents, joints in levels:
            r_par = rot[..., parents, :, :]
            off_world = torch.einsum("...ij,...j->...i", r_par, offsets[ids].expand(*batch, -1, -1))
            pos[..., ids, :] = pos[..., parents, :] + off_world
            rot[..., ids, :, :] = r_par @ local_rot[..., joints, :, :]
            if with_vel:
                w_par = ang[..., parents, :]
                ang[..., ids, :] = w_par + torch.einsum("...ij,...j->...i", r_par, local_w[..., joints, :])
                lin[..., ids, :] = lin[..., parents, :] + torch.cross(w_par, off_world, dim=-1)
        if with_vel:
            return BodyKinematics(pos, rot, lin, ang)
        return BodyKinematics(pos, rot)


_DEFAULT_FK: ForwardKinematics | None = None


def forward_kinematics(*args, **kwargs) -> BodyKinematics:
    """FK of the BallPlay humanoid; see :class:`ForwardKinematics`."""
    global _DEFAULT_FK
    if _DEFAULT_FK is None:
        _DEFAULT_FK = ForwardKinematics()
    return _DEFAULT_FK(*args, **kwargs)
