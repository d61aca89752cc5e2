"""Rotation helpers on torch tensors (any device), quaternions in MuJoCo's (w, x, y, z) order.

Why one module: the data stores exp-maps, MuJoCo and Warp use wxyz quaternions, the
hinge chain needs intrinsic XYZ Euler angles and the observations use tan-norm
(R x, R z) 6-d rotations. Conversions are delegated to ``roma`` (xyzw) and wrapped
here so that the wxyz/xyzw swap happens in exactly one place.
"""

from __future__ import annotations

import roma
import torch


def wxyz_to_xyzw(q: torch.Tensor) -> torch.Tensor:
    return q[..., [1, 2, 3, 0]]


def xyzw_to_wxyz(q: torch.Tensor) -> torch.Tensor:
    return q[..., [3, 0, 1, 2]]


def expmap_to_quat(v: torch.Tensor) -> torch.Tensor:
    return xyzw_to_wxyz(roma.rotvec_to_unitquat(v))


def quat_to_expmap(q: torch.Tensor) -> torch.Tensor:
    return roma.unitquat_to_rotvec(wxyz_to_xyzw(quat_normalize(q)))


def expmap_to_matrix(v: torch.Tensor) -> torch.Tensor:
    return roma.rotvec_to_rotmat(v)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    return roma.unitquat_to_rotmat(wxyz_to_xyzw(quat_normalize(q)))


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    return xyzw_to_wxyz(roma.rotmat_to_unitquat(m))


def quat_normalize(q: torch.Tensor) -> torch.Tensor:
    return q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return xyzw_to_wxyz(roma.quat_product(wxyz_to_xyzw(a), wxyz_to_xyzw(b)))


def quat_conj(q: torch.Tensor) -> torch.Tensor:
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors by unit quaternions: v + 2w (u x v) + 2 u x (u x v), u = q.xyz."""
    w, u = q[..., :1], q[..., 1:]
    uv = torch.cross(u, v.expand_as(u) if v.dim() < u.dim() else v, dim=-1)
    return v + 2.0 * (w * uv + torch.cross(u, uv, dim=-1))


def quat_slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-element slerp; ``t`` broadcasts against the batch (shape (...,) or (..., 1))."""
    if t.dim() == a.dim():
        t = t[..., 0]
    dot = (a * b).sum(-1, keepdim=True)
    b = torch.where(dot < 0, -b, b)          # shortest arc
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin = torch.sin(theta)
    tt = t.unsqueeze(-1)
    small = sin < 1e-6
    wa = torch.where(small, 1 - tt, torch.sin((1 - tt) * theta) / sin.clamp_min(1e-12))
    wb = torch.where(small, tt, torch.sin(tt * theta) / sin.clamp_min(1e-12))
    return quat_normalize(wa * a + wb * b)


def expmap_to_hinge_xyz(v: torch.Tensor) -> torch.Tensor:
    """Per-joint rotation vectors -> the angles of three hinges about x, then y, then z.

    A body with hinges x, y, z (in kinematic order) rotates by Rx(a) Ry(b) Rz(c): the
    intrinsic XYZ Euler decomposition. This is the conversion the original code skipped.
    """
    return roma.rotmat_to_euler("XYZ", roma.rotvec_to_rotmat(v))


def hinge_xyz_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rx(a) Ry(b) Rz(c) written out: this sits on the simulator's per-step FK path, where
    the closed form is ~8x faster than composing three matrices."""
    c, s = torch.cos(angles), torch.sin(angles)
    ca, cb, cc = c.unbind(-1)
    sa, sb, sc = s.unbind(-1)
    m = torch.stack([
        cb * cc, -cb * sc, sb,
        sa * sb * cc + ca * sc, -sa * sb * sc + ca * cc, -sa * cb,
        -ca * sb * cc + sa * sc, ca * sb * sc + sa * cc, ca * cb,
    ], dim=-1)
    return m.reshape(*angles.shape[:-1], 3, 3)


def hinge_xyz_to_expmap(angles: torch.Tensor) -> torch.Tensor:
    return roma.rotmat_to_rotvec(hinge_xyz_to_matrix(angles))


def heading_yaw(q: torch.Tensor) -> torch.Tensor:
    """Yaw of the rotated world x-axis (the original's heading), from wxyz quaternions."""
    w, x, y, z = q.unbind(-1)
    return torch.atan2(2.0 * (x * y + w * z), 1.0 - 2.0 * (y * y + z * z))


def yaw_quat(yaw: torch.Tensor) -> torch.Tensor:
    half = 0.5 * yaw
    zeros = torch.zeros_like(half)
    return torch.stack([torch.cos(half), zeros, zeros, torch.sin(half)], dim=-1)


def matrix_to_tan_norm(m: torch.Tensor) -> torch.Tensor:
    """6-d rotation feature: the rotated x and z axes (first and last matrix columns)."""
    return torch.cat([m[..., :, 0], m[..., :, 2]], dim=-1)
