"""Rotation helpers on torch tensors (any device), quaternions in MuJoCo's (w, x, y, z) order.

Why one module: the data stores exp-maps, MuJoCo and Warp use wxyz quaternions, the
hinge chains need intrinsic Euler angles (one Tait-Bryan order per joint) and the
observations use tan-norm (R x, R z) 6-d rotations. Conversions are delegated to ``roma`` (xyzw) and wrapped
here so that the wxyz/xyzw swap happens in exactly one place.
"""

from __future__ import annotations

import functools

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


EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
"""The six Tait-Bryan orders a joint's three hinges can take (intrinsic, outermost first)."""


def _check_order(order: str) -> str:
    if order not in EULER_ORDERS:
        raise ValueError(f"unknown hinge order {order!r}; one of {', '.join(EULER_ORDERS)}")
    return order


@functools.lru_cache(maxsize=64)
def _order_tables(orders: tuple[str, ...], device: torch.device):
    """Per joint: sign s = det(P) and the index maps that turn an X-Y-Z chain into this order.

    With P the permutation matrix sending x, y, z to the order's first, second and third
    axis, R_order(a, b, c) = P R_xyz(s a, s b, s c) P^T (conjugating by an odd permutation
    flips rotation senses). So one closed form serves every order, plus a constant gather:
    ``mat_idx`` (J, 9) gathers P M P^T from a flat M, ``inv_idx`` (J, 9) gathers P^T M P, and
    ``vec_idx`` (J, 3) gathers P w. Returns None when every joint is X-Y-Z (no gather).
    Cached per device, so the per-step FK path makes no host-to-device copies."""
    for o in orders:
        _check_order(o)
    if all(o == "XYZ" for o in orders):
        return None
    sign, mat_idx, inv_idx, vec_idx = [], [], [], []
    for o in orders:
        perm = ["XYZ".index(c) for c in o]            # chain slot r -> axis perm[r]
        inv = [perm.index(p) for p in range(3)]       # axis p -> chain slot
        even = sum(perm[i] > perm[j] for i in range(3) for j in range(i + 1, 3)) % 2 == 0
        sign.append(1.0 if even else -1.0)
        mat_idx.append([inv[p] * 3 + inv[q] for p in range(3) for q in range(3)])
        inv_idx.append([perm[r] * 3 + perm[t] for r in range(3) for t in range(3)])
        vec_idx.append(inv)
    return tuple(torch.tensor(t, device=device) for t in (sign, mat_idx, inv_idx, vec_idx))


def _tables(orders, num_joints: int, device):
    """``orders``: one order for every joint, or a sequence with one order per joint."""
    orders = (orders,) * num_joints if isinstance(orders, str) else tuple(orders)
    if len(orders) != num_joints:
        raise ValueError(f"{len(orders)} hinge orders for {num_joints} joints")
    return _order_tables(orders, device)


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (..., J, k) -> x[..., j, idx[j, i]] for a constant (J, k) index."""
    return torch.gather(x, -1, idx.expand(*x.shape[:-2], *idx.shape))


def _hinge_xyz_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rx(a) Ry(b) Rz(c) written out, flat (..., 9): this sits on the simulator's per-step FK
    path, where the closed form is ~8x faster than composing three matrices."""
    c, s = torch.cos(angles), torch.sin(angles)
    ca, cb, cc = c.unbind(-1)
    sa, sb, sc = s.unbind(-1)
    return torch.stack([
        cb * cc, -cb * sc, sb,
        sa * sb * cc + ca * sc, -sa * sb * sc + ca * cc, -sa * cb,
        -ca * sb * cc + sa * sc, ca * sb * sc + sa * cc, ca * cb,
    ], dim=-1)


def hinge_to_matrix(angles: torch.Tensor, orders="XYZ") -> torch.Tensor:
    """Hinge angles (..., J, 3) -> joint rotations (..., J, 3, 3).

    A joint with hinge order ``"YXZ"`` has hinges about y, then x, then z (in kinematic
    order, as listed in its MJCF body) and rotates by Ry(a) Rx(b) Rz(c): intrinsic Euler
    angles in that order. ``orders`` is one order for all joints or one per joint.
    """
    tables = _tables(orders, angles.shape[-2], angles.device)
    if tables is None:
        return _hinge_xyz_to_matrix(angles).reshape(*angles.shape, 3)
    sign, mat_idx, _, _ = tables
    flat = _hinge_xyz_to_matrix(angles * sign.to(angles.dtype).unsqueeze(-1))
    return _gather(flat, mat_idx).reshape(*angles.shape, 3)


def matrix_to_hinge(m: torch.Tensor, orders="XYZ") -> torch.Tensor:
    """Joint rotations (..., J, 3, 3) -> hinge angles (..., J, 3), the inverse of
    :func:`hinge_to_matrix`: outer angles in [-pi, pi], the middle one in [-pi/2, pi/2]."""
    tables = _tables(orders, m.shape[-3], m.device)
    if tables is None:
        return roma.rotmat_to_euler("XYZ", m)
    sign, _, inv_idx, _ = tables
    xyz = _gather(m.flatten(-2), inv_idx).reshape(m.shape)
    return roma.rotmat_to_euler("XYZ", xyz) * sign.to(m.dtype).unsqueeze(-1)


def expmap_to_hinge(v: torch.Tensor, orders="XYZ") -> torch.Tensor:
    """Per-joint rotation vectors (..., J, 3) -> hinge angles in each joint's order."""
    return matrix_to_hinge(roma.rotvec_to_rotmat(v), orders)


def hinge_to_expmap(angles: torch.Tensor, orders="XYZ") -> torch.Tensor:
    return roma.rotmat_to_rotvec(hinge_to_matrix(angles, orders))


def hinge_angular_velocity(angles: torch.Tensor, rates: torch.Tensor, orders="XYZ") -> torch.Tensor:
    """Angular velocity (..., J, 3) of each joint in its parent's frame, from hinge angles and
    rates: the first hinge's axis, the second's after the first rotation, the third's after
    both (for X-Y-Z: x, Rx y, Rx Ry z)."""
    tables = _tables(orders, angles.shape[-2], angles.device)
    if tables is not None:
        sign = tables[0].to(angles.dtype).unsqueeze(-1)
        angles, rates = angles * sign, rates * sign
    ca, sa = torch.cos(angles[..., 0]), torch.sin(angles[..., 0])
    cb, sb = torch.cos(angles[..., 1]), torch.sin(angles[..., 1])
    w = torch.stack([
        rates[..., 0] + sb * rates[..., 2],
        ca * rates[..., 1] - sa * cb * rates[..., 2],
        sa * rates[..., 1] + ca * cb * rates[..., 2],
    ], dim=-1)
    if tables is None:
        return w
    return _gather(w, tables[3]) * sign


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
