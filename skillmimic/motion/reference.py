"""Raw clip (T, 337) -> joint-space reference of one clip: the conversions, vectorised.

Why a separate module: the library, the FK report and the demo-clip generator must agree
on exactly one definition of "the reference" (which hinge angles, which velocities, how
missing frames are treated), and these pure functions are that definition.

Conventions (all along the time axis of one clip):

* missing frame: all 337 values zero. Its pose is filled with the last valid frame (the
  first valid one for leading gaps) so that interpolation and FK near a gap stay sane;
  ``valid`` marks it so callers can mask rewards (V2's treatment).
* hinge angles: each joint's exp-map converted to intrinsic Euler angles in the joint's
  hinge order (``Skeleton.hinge_orders``), frame by frame, so every angle lies in
  [-pi, pi] (the hinges' joint limits). With the table's orders the joints stay clear of
  their Euler singularity in the shared data, so the angles are also continuous: a
  reference hinge jumps by 1 rad between frames only where the recorded joint rotation
  itself does, bar 22 right-thumb-tip frames (``python -m skillmimic.motion.euler_report``,
  docs/joints.md). Under X-Y-Z (``hinge_order: xyz``) they jump at gimbal lock.
* quaternions (w, x, y, z) are sign-smoothed: consecutive frames have a positive dot.
* velocities: forward differences x fps (of hinge angles: the difference wrapped into
  [-pi, pi), so an angle passing +-pi has its true rate). A frame whose difference would
  touch a missing frame (the missing frame itself, the frame before and the frame just after one) and
  the last frame copy the previous frame's velocity (V2's convention).
* angular velocities are in the WORLD frame: q[t+1] = exp(w dt) q[t]. The original
  computed conj(q[t]) q[t+1] (a body-frame rate) and used it as a world rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from ..assets.skeleton import SKELETON_BALLPLAY, Skeleton
from ..rotations import expmap_to_hinge, expmap_to_quat, quat_conj, quat_mul, quat_to_expmap
from . import columns as C

TWO_PI = 2.0 * math.pi


def missing_frames(raw: torch.Tensor) -> torch.Tensor:
    """(T,) bool: frames whose values are all zero (V2's masked / missing frames)."""
    return (raw == 0).all(dim=-1)


def fill_index(valid: torch.Tensor) -> torch.Tensor:
    """Index of the last valid frame at or before each frame (first valid one for a
    leading gap). Used to carry poses and velocities over gaps without a frame loop."""
    t = torch.arange(valid.shape[0], device=valid.device)
    idx = torch.where(valid, t, torch.full_like(t, -1)).cummax(dim=0).values
    if valid.any():
        first = int(valid.nonzero()[0])
        idx = torch.where(idx < 0, torch.full_like(idx, first), idx)
    else:
        idx = t
    return idx


def wrap_angle(x: torch.Tensor) -> torch.Tensor:
    """Angles mapped into [-pi, pi)."""
    return torch.remainder(x + math.pi, TWO_PI) - math.pi


def sign_smooth(q: torch.Tensor) -> torch.Tensor:
    """Flip quaternions (T, ..., 4) so consecutive frames have a non-negative dot (q and
    -q are one rotation; interpolation and differences need one consistent hemisphere)."""
    if q.shape[0] < 2:
        return q.clone()
    dot = (q[1:] * q[:-1]).sum(dim=-1)
    step = torch.where(dot < 0, -1.0, 1.0).to(q.dtype)
    flip = torch.cat([torch.ones_like(step[:1]), step.cumprod(dim=0)], dim=0)
    return q * flip.unsqueeze(-1)


def hinge_angles(dof_expmap: torch.Tensor, skeleton: Skeleton = SKELETON_BALLPLAY) -> torch.Tensor:
    """(T, 156) per-joint exp-maps -> (T, 156) hinge angles in [-pi, pi] (see module doc)."""
    T = dof_expmap.shape[0]
    return expmap_to_hinge(dof_expmap.reshape(T, -1, 3), skeleton.hinge_orders).reshape(T, -1)


def finite_difference_ok(valid: torch.Tensor) -> torch.Tensor:
    """(T,) bool: frames whose forward difference is trusted (see module doc)."""
    ok = valid.clone()
    ok[-1] = False
    ok[:-1] &= valid[1:]
    ok[1:] &= valid[:-1]
    return ok


def _carry(vel: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """Replace untrusted rows by the last trusted row before them (the first trusted
    row for leading ones; zeros if none is trusted)."""
    if not ok.any():
        return torch.zeros_like(vel)
    return vel[fill_index(ok)]


def linear_velocity(x: torch.Tensor, valid: torch.Tensor, fps: float, angles: bool = False) -> torch.Tensor:
    """Forward-difference velocity (T, ...) of positions (or, with ``angles``, of angles in
    [-pi, pi], differences wrapped), V2's gap rule."""
    vel = torch.zeros_like(x)
    if x.shape[0] > 1:
        d = x[1:] - x[:-1]
        vel[:-1] = (wrap_angle(d) if angles else d) * fps
    return _carry(vel, finite_difference_ok(valid))


def angular_velocity(q: torch.Tensor, valid: torch.Tensor, fps: float) -> torch.Tensor:
    """World-frame angular velocity (T, ..., 3) of wxyz quaternions: exp-map of
    q[t+1] conj(q[t]) times fps, with the same gap rule as :func:`linear_velocity`."""
    vel = torch.zeros(*q.shape[:-1], 3, dtype=q.dtype, device=q.device)
    if q.shape[0] > 1:
        vel[:-1] = quat_to_expmap(quat_mul(q[1:], quat_conj(q[:-1]))) * fps
    return _carry(vel, finite_difference_ok(valid))


@dataclass
class ClipReference:
    """Joint-space reference of one clip; every field has T rows."""

    valid: torch.Tensor              # (T,) bool
    root_pos: torch.Tensor           # (T, 3)
    root_quat: torch.Tensor          # (T, 4) wxyz
    root_lin_vel: torch.Tensor       # (T, 3) world
    root_ang_vel: torch.Tensor       # (T, 3) world
    dof_pos: torch.Tensor            # (T, 156) hinge angles in [-pi, pi]
    dof_vel: torch.Tensor            # (T, 156)
    obj_pos: torch.Tensor           # (T, 3)
    obj_quat: torch.Tensor          # (T, 4) wxyz
    obj_lin_vel: torch.Tensor       # (T, 3)
    obj_ang_vel: torch.Tensor       # (T, 3) world
    contact: torch.Tensor            # (T,) {0, 1}
    recorded_body_pos: torch.Tensor  # (T, 53, 3) cols 165:324 as recorded (zeros at missing frames)

    @property
    def num_frames(self) -> int:
        return self.valid.shape[0]

    def to(self, device=None, dtype=None) -> "ClipReference":
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to(device=device, dtype=dtype if v.is_floating_point() else None)
        return ClipReference(**out)


def convert_clip(raw: torch.Tensor, fps: float = C.FPS, skeleton: Skeleton = SKELETON_BALLPLAY) -> ClipReference:
    """Convert a validated raw clip (T, 337) into its joint-space reference for ``skeleton``'s
    hinge orders.

    Computed in float64 whatever the input dtype: the Euler conversion and the
    differences lose visible precision in float32 near gimbal lock.
    """
    raw = raw.to(torch.float64)
    valid = ~missing_frames(raw)
    filled = raw[fill_index(valid)]
    root_pos = filled[:, C.ROOT_POS]
    root_quat = sign_smooth(expmap_to_quat(filled[:, C.ROOT_ROT]))
    dof_pos = hinge_angles(filled[:, C.DOF], skeleton)
    obj_pos = filled[:, C.OBJ_POS]
    # The original loader negates the object exp-map; the release stores zeros (identity).
    obj_quat = sign_smooth(expmap_to_quat(-filled[:, C.OBJ_ROT]))
    return ClipReference(
        valid=valid,
        root_pos=root_pos,
        root_quat=root_quat,
        root_lin_vel=linear_velocity(root_pos, valid, fps),
        root_ang_vel=angular_velocity(root_quat, valid, fps),
        dof_pos=dof_pos,
        dof_vel=linear_velocity(dof_pos, valid, fps, angles=True),
        obj_pos=obj_pos,
        obj_quat=obj_quat,
        obj_lin_vel=linear_velocity(obj_pos, valid, fps),
        obj_ang_vel=angular_velocity(obj_quat, valid, fps),
        contact=torch.round(filled[:, C.CONTACT]),
        recorded_body_pos=raw[:, C.BODY_POS].reshape(-1, C.NUM_BODIES, 3),
    )
