"""The joint-space state of the humanoid+object scene, batched over worlds.

Why one type: the motion library samples reference frames as this type, every
simulator backend accepts it in ``set_state`` (resets) and reports it back, and V2's
state perturbations operate on it -- so resets are ``sim.set_state(ids, ref_state)``.
Quaternions are (w, x, y, z); all velocities, angular included, are in the world frame.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class JointState:
    root_pos: torch.Tensor       # (N, 3)
    root_quat: torch.Tensor      # (N, 4) wxyz
    root_lin_vel: torch.Tensor   # (N, 3)
    root_ang_vel: torch.Tensor   # (N, 3)
    dof_pos: torch.Tensor        # (N, 156) hinge angles, rad
    dof_vel: torch.Tensor        # (N, 156)
    obj_pos: torch.Tensor       # (N, 3)
    obj_quat: torch.Tensor      # (N, 4) wxyz
    obj_lin_vel: torch.Tensor   # (N, 3)
    obj_ang_vel: torch.Tensor   # (N, 3)

    def map(self, fn) -> "JointState":
        return JointState(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def __getitem__(self, index) -> "JointState":
        return self.map(lambda t: t[index])

    def to(self, device=None, dtype=None) -> "JointState":
        return self.map(lambda t: t.to(device=device, dtype=dtype))

    def clone(self) -> "JointState":
        return self.map(torch.clone)

    @property
    def num_worlds(self) -> int:
        return self.root_pos.shape[0]

    @classmethod
    def cat(cls, states: list["JointState"]) -> "JointState":
        return cls(**{f.name: torch.cat([getattr(s, f.name) for s in states]) for f in fields(cls)})
