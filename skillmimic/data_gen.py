"""Generate small demo clips in the exact BallPlay format, so a fresh clone has data.

Why generated and not copied: the BallPlay clips may not be redistributed, yet training
and the tests need at least one clip. The clips here are built from one standing
two-hand-hold pose, a few numbers taken from a real frame (below), plus physics and
inverse kinematics:

* ``001_demo_hold_1.pt``: the pose held still for 2 s, with the ball held in both hands
  and contact flag 1 throughout. An arm IK closes the palms onto the ball.
* ``013_demo_dribble_1.pt``: an in-place right-hand dribble from a slight crouch, three
  cycles of 0.8 s. The ball is ballistic between release and catch (g = 9.81, one floor
  bounce with the restitution of ``ObjectConfig``). While in contact it rides under the
  palm, on a smooth curve from the catch up to the top and down to the release, and the
  contact flag is 1 there. The arm and spine angles come from a damped least-squares IK:
  the right palm sits on top of the ball facing down, the forearm stays clear of the
  ball, and the left hand holds a guard position. The crouch is a leg IK that keeps
  the feet planted.

The IK works on X-Y-Z hinge angles (its own parameterisation, whatever the simulator's
hinge orders: a clip stores exp-maps); the joints it changes are written back as exp-maps
and every other joint keeps its source exp-map.

* ``demo_box/050_demo_boxlift_1.pt``: not a ball: the humanoid crouches over a box on the
  floor, lifts it with a palm flat on each side face and holds it at the waist
  (:func:`box_lift_clip`, object :func:`box_object`). Object pose in the object columns.

Every clip is a (T, 337) float32 tensor at 60 fps (layout in
``skillmimic.motion.columns``). Its body positions are the forward kinematics of its
own pose, and the root exp-map is duplicated in columns 6:9. The output is
deterministic: float64 throughout, a fixed number of IK iterations, no random numbers,
and one torch thread (also the fastest setting for these small batches).

    python -m skillmimic.data_gen                        # data/motions/demo
    python -m skillmimic.data_gen --dataset demo_box     # data/motions/demo_box
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import pathlib
from dataclasses import dataclass

import torch

from .assets.objects import ObjectConfig
from .assets.skeleton import SKELETON_BALLPLAY
from .kinematics import forward_kinematics
from .motion import columns as C
from .motion.skills import clip_file_name
from .rotations import (
    expmap_to_hinge, expmap_to_quat, heading_yaw, hinge_to_expmap, quat_mul, quat_rotate, quat_slerp,
    quat_to_expmap, yaw_quat,
)

GRAVITY = 9.81
SKEL = SKELETON_BALLPLAY.with_hinge_order("XYZ")
forward_kinematics = functools.partial(forward_kinematics, skeleton=SKEL)
expmap_to_hinge_xyz = functools.partial(expmap_to_hinge, orders="XYZ")
hinge_xyz_to_expmap = functools.partial(hinge_to_expmap, orders="XYZ")

# Source pose: the last frame of BallPlay-M/pick_40/001_007pickle_pick_000.pt, where the
# person stands still after the pick with the ball in both hands (exp-maps rounded to 1e-4).
# Joints not listed are zero in that frame (the fingers, for example, are straight).
_SOURCE_ROOT_HEIGHT = 0.9634
_SOURCE_ROOT_EXPMAP = (1.3502, 0.0581, 0.0680)
_SOURCE_BALL_FROM_ROOT = (0.0007, -0.2980, 0.1465)     # world frame, source heading
_SOURCE_JOINTS = {
    "L_Hip": (0.3908, 0.1731, 0.0768), "L_Knee": (-0.1121, 0.0, 0.0),
    "L_Ankle": (0.0218, -0.0031, -0.0818), "L_Toe": (-0.0963, 0.0, 0.0),
    "R_Hip": (0.3758, -0.2419, -0.0718), "R_Knee": (-0.0983, 0.0, 0.0),
    "R_Ankle": (0.0295, -0.0722, 0.0845), "R_Toe": (-0.0900, 0.0, 0.0),
    "Torso": (0.0695, -0.0013, -0.0025), "Spine": (0.0776, -0.0032, -0.0009),
    "Spine2": (0.0860, -0.0061, 0.0001), "Chest": (0.0948, -0.0065, 0.0014),
    "Neck": (-0.0143, -0.1505, -0.0158), "Head": (-0.0910, -0.0664, 0.1186),
    "L_Thorax": (0.3331, 0.3259, -0.0641), "L_Shoulder": (0.5045, -1.2982, -0.7944),
    "L_Elbow": (-0.4272, -1.1832, 0.4249), "L_Wrist": (-0.3510, 0.0214, 0.2032),
    "R_Thorax": (0.3322, -0.2681, 0.0512), "R_Shoulder": (0.5892, 1.1492, 0.7668),
    "R_Elbow": (-0.2840, 1.2228, -0.5522), "R_Wrist": (-0.4874, -0.0072, -0.4406),
}


@dataclass
class DribbleParams:
    """Vertical dribble cycle. Heights are of the ball centre; ``period_frames`` fixes the
    time in contact (the free flight follows from the release speed and the bounce)."""

    release_height: float = 0.85        # the hand lets go, ball moving down
    catch_height: float = 0.80          # the rising ball meets the hand again
    release_speed: float = 3.0          # m/s downward
    period_frames: int = 48             # 0.8 s per bounce
    cycles: int = 3                     # 2.4 s
    hand_brake: float = 40.0            # m/s^2, the hand's deceleration after the push
    forward: float = 0.30               # ball position in the body's heading frame (m)
    right: float = 0.25
    palm_clearance: float = 0.005       # palm centre (inside the hand) to the ball surface: touching
    crouch: float = 0.07                # pelvis lowered by bending the legs, feet planted
    left_hand: tuple = (0.20, 0.25, 0.95)   # guard position: forward, left, height (m)


# --------------------------------------------------------------------------- pose helpers

def source_pose() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source pose turned to heading 0 at the origin, standing on the floor.

    Heading 0 is the original's convention (the root-rotated x axis, the body's left,
    points along +x), so the body faces -y. The mocap feet sink ~2.5 cm into the floor
    with this skeleton's foot boxes; the pose is lifted until the lowest geom touches
    z = 0, so a world reset onto these frames starts without a contact kick.
    Returns (root_pos (3,), root_quat wxyz (4,), joint exp-maps (52, 3), obj_pos (3,)).
    """
    q = expmap_to_quat(torch.tensor(_SOURCE_ROOT_EXPMAP, dtype=torch.float64))
    turn = yaw_quat(-heading_yaw(q))
    joints = torch.zeros(SKEL.num_joints, 3, dtype=torch.float64)
    for name, value in _SOURCE_JOINTS.items():
        joints[SKEL.index(name) - 1] = torch.tensor(value, dtype=torch.float64)
    root_quat = quat_mul(turn, q)
    root_pos = torch.tensor([0.0, 0.0, _SOURCE_ROOT_HEIGHT], dtype=torch.float64)
    fk = forward_kinematics(root_pos, root_quat, expmap_to_hinge_xyz(joints).reshape(-1))
    root_pos[2] -= lowest_point(fk.pos, fk.rot)
    ball = root_pos + quat_rotate(turn, torch.tensor(_SOURCE_BALL_FROM_ROOT, dtype=torch.float64))
    return root_pos, root_quat, joints, ball


def _geom_points(pos: torch.Tensor, rot: torch.Tensor, body: int, local) -> torch.Tensor:
    """World positions of points given in a body's frame: (..., k, 3)."""
    pts = torch.as_tensor(local, dtype=pos.dtype).reshape(-1, 3)
    return pos[..., body, None, :] + (rot[..., body, None, :, :] @ pts[..., None]).squeeze(-1)


def lowest_point(pos: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Height of the lowest point of any collision geom of the skeleton: (...,)."""
    lows = []
    for b, (gtype, size, where, _) in enumerate(SKEL.geoms):
        if gtype == "box":
            corners = [[where[0] + sx * size[0], where[1] + sy * size[1], where[2] + sz * size[2]]
                       for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
            lows.append(_geom_points(pos, rot, b, corners)[..., 2].amin(-1))
        else:   # sphere at ``where``, capsule between the two ends of ``where``
            lows.append(_geom_points(pos, rot, b, where)[..., 2].amin(-1) - size[0])
    return torch.stack(lows, -1).amin(-1)


def segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance from points ``p`` to segments ``a``-``b`` (broadcast over leading dims)."""
    ab = b - a
    t = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1)).clamp(0.0, 1.0)
    return (p - a - t[..., None] * ab).norm(dim=-1)


def _hand_ids(side: str) -> tuple[int, list[int], int, int]:
    wrist = SKEL.index(f"{side}_Wrist")
    knuckles = SKEL.indices([f"{side}_{f}1" for f in ("Index", "Middle", "Ring", "Pinky")])
    return wrist, knuckles, SKEL.index(f"{side}_Index1"), SKEL.index(f"{side}_Pinky1")


def palm_frame(pos: torch.Tensor, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Palm centre (halfway from the wrist to the knuckles) and unit palm normal.

    ``pos``: (..., 53, 3) body positions. The normal's sign is fixed by ``_PALM_SIGN`` so it
    points out of the palm (towards the ball in the source two-hand hold).
    """
    wrist, knuckles, index1, pinky1 = _hand_ids(side)
    knuckle = pos[..., knuckles, :].mean(-2)
    centre = 0.5 * (pos[..., wrist, :] + knuckle)
    normal = torch.cross(knuckle - pos[..., wrist, :], pos[..., index1, :] - pos[..., pinky1, :], dim=-1)
    normal = normal / normal.norm(dim=-1, keepdim=True)
    return centre, normal * _PALM_SIGN[side]


_PALM_SIGN = {"L": 1.0, "R": 1.0}


def _calibrate_palm_sign() -> None:
    root_pos, root_quat, joints, ball = source_pose()
    pos = forward_kinematics(root_pos, root_quat, expmap_to_hinge_xyz(joints).reshape(-1)).pos
    for side in "LR":
        centre, normal = palm_frame(pos, side)
        _PALM_SIGN[side] = 1.0 if float((normal * (ball - centre)).sum()) > 0 else -1.0


_calibrate_palm_sign()


def body_axes(pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal unit (forward, right) of a pose, from the shoulder line: the skeleton's
    own axes say nothing about facing once the root is turned (heading 0 faces -y)."""
    right = pos[SKEL.index("R_Shoulder"), :2] - pos[SKEL.index("L_Shoulder"), :2]
    right = right / right.norm()
    forward = torch.stack([-right[1], right[0]])      # up x right, in the plane
    return forward, right


# --------------------------------------------------------------------------- clip assembly

def assemble_clip(root_pos: torch.Tensor, root_quat: torch.Tensor, joint_exp: torch.Tensor,
                  obj_pos: torch.Tensor, contact: torch.Tensor) -> torch.Tensor:
    """(T, 337) float32 clip; body positions are the FK of the converted pose."""
    T = root_pos.shape[0]
    hinge = expmap_to_hinge_xyz(joint_exp).reshape(T, -1)
    body = forward_kinematics(root_pos, root_quat, hinge).pos
    clip = torch.zeros(T, C.NUM_COLUMNS, dtype=torch.float64)
    clip[:, C.ROOT_POS] = root_pos
    clip[:, C.ROOT_ROT] = quat_to_expmap(root_quat)
    clip[:, C.ROOT_ROT_DUP] = clip[:, C.ROOT_ROT]
    clip[:, C.DOF] = joint_exp.reshape(T, -1)
    clip[:, C.BODY_POS] = body.reshape(T, -1)
    clip[:, C.OBJ_POS] = obj_pos
    clip[:, C.CONTACT] = contact
    return clip.float()


# --------------------------------------------------------------------------- dribble

def _hermite(p0, v0, p1, v1, duration, s):
    """Cubic Hermite position at normalised time(s) ``s`` in [0, 1]."""
    s2, s3 = s * s, s * s * s
    return ((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * duration * v0
            + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * duration * v1)


def ball_cycle(p: DribbleParams, radius: float, restitution: float):
    """Ball height, contact flag and palm height over one period, sampled at 60 fps.

    Time 0 is the release. Free flight: down at ``release_speed``, one bounce with
    ``restitution``, up to ``catch_height``. Contact: a cubic from the catch (ball
    velocity) to the next release (matching the release speed), palm on top of the ball.
    In flight the palm brakes at ``hand_brake`` and comes back up to meet the ball at the
    ball's speed, so palm and ball velocities agree at release and at catch.
    Returns (ball_z, contact, palm_z), each of ``period_frames`` samples.
    """
    g, e = GRAVITY, restitution
    v_impact = math.sqrt(p.release_speed**2 + 2 * g * (p.release_height - radius))
    v_up = e * v_impact
    rise = 2 * g * (p.catch_height - radius)
    if v_up**2 <= rise:
        raise ValueError(f"a {p.release_speed} m/s release bounces below the catch height {p.catch_height} m")
    v_catch = math.sqrt(v_up**2 - rise)
    t_down = (v_impact - p.release_speed) / g
    t_flight = t_down + (v_up - v_catch) / g
    t_contact = p.period_frames / C.FPS - t_flight
    t_brake = p.release_speed / p.hand_brake
    if t_contact < 0.15 or t_brake > 0.5 * t_flight:
        raise ValueError(f"period of {p.period_frames} frames leaves {t_contact:.3f} s of contact "
                         f"and {t_flight:.3f} s of flight; adjust period_frames or hand_brake")
    t = torch.arange(p.period_frames, dtype=torch.float64) / C.FPS
    contact = (t >= t_flight).double()
    td = t - t_down
    free_z = torch.where(t < t_down, p.release_height - p.release_speed * t - 0.5 * g * t * t,
                         radius + v_up * td - 0.5 * g * td * td)
    s = ((t - t_flight) / t_contact).clamp(0.0, 1.0)
    held_z = _hermite(p.catch_height, v_catch, p.release_height, -p.release_speed, t_contact, s)
    ball_z = torch.where(contact > 0, held_z, free_z)

    lift = radius + p.palm_clearance
    low = p.release_height - p.release_speed**2 / (2 * p.hand_brake)
    braking = p.release_height - p.release_speed * t + 0.5 * p.hand_brake * t * t
    sr = ((t - t_brake) / (t_flight - t_brake)).clamp(0.0, 1.0)
    rising = _hermite(low, 0.0, p.catch_height, v_catch, t_flight - t_brake, sr)
    palm_z = torch.where(contact > 0, held_z, torch.where(t < t_brake, braking, rising)) + lift
    return ball_z, contact, palm_z


def solve_ik(root_pos, root_quat, hinge0, joint_names, reg, task, iterations: int = 25,
             batched_jacobian: bool = False, start=None):
    """Levenberg-Marquardt on the hinges of ``joint_names``, every frame at once.

    ``joint_names`` may give ``"Name:axes"`` to free only some hinges (a knee bends about x).
    ``task(pos, rot) -> (T, m)`` gives the weighted task residuals from the body positions
    (T, 53, 3) and rotations (T, 53, 3, 3); ``reg`` (per joint, residual weight per radian)
    pulls towards ``hinge0`` so redundant joints stay near the source pose. The damping is
    adapted per frame (a step that does not lower the cost is refused), which keeps a
    far target from throwing the arm into a poor local minimum. The Jacobian of the task
    residuals comes from autograd through the batched FK (``batched_jacobian``: one vmapped
    backward pass for all rows). ``start`` (T, 156): per-frame initial angles instead of
    ``hinge0`` (a warm start keeps neighbouring frames on one branch). Returns the (T, 156) angles.
    """
    T = root_pos.shape[0]
    cols, w = [], []
    for spec in joint_names:
        name, _, axes = spec.partition(":")
        for axis in axes or "xyz":
            cols.append(3 * (SKEL.index(name) - 1) + "xyz".index(axis))
            w.append(reg[name])
    cols = torch.tensor(cols)
    w = torch.tensor(w, dtype=torch.float64)
    x0 = hinge0[cols]
    eye = torch.eye(x0.numel(), dtype=torch.float64)

    def pose(x):
        h = hinge0.expand(T, -1).clone()
        h[:, cols] = x
        return h

    def evaluate(x):
        """Cost (T,), task residual (T, m) and its Jacobian (T, m, n) at x."""
        xg = x.detach().requires_grad_(True)
        fk = forward_kinematics(root_pos, root_quat, pose(xg))
        r = task(fk.pos, fk.rot)
        m = r.shape[1]
        if batched_jacobian:   # one vmapped backward pass for all m rows
            eye_m = torch.eye(m, dtype=r.dtype)[:, None, :].expand(m, T, m)
            J = torch.autograd.grad(r, xg, grad_outputs=eye_m, is_grads_batched=True)[0].permute(1, 0, 2)
        else:
            J = torch.stack([torch.autograd.grad(r[:, k].sum(), xg, retain_graph=k < m - 1)[0]
                             for k in range(m)], dim=1)
        r = r.detach()
        return (r * r).sum(-1) + ((w * (x - x0)) ** 2).sum(-1), r, J

    x = x0.expand(T, -1).clone() if start is None else start[:, cols].clone()
    cost, r, J = evaluate(x)
    lam = torch.full((T, 1, 1), 1e-2, dtype=torch.float64)
    for _ in range(iterations):
        JT = J.transpose(1, 2)
        grad = (JT @ r.unsqueeze(-1)).squeeze(-1) + w * w * (x - x0)
        step = torch.linalg.solve(JT @ J + torch.diag(w * w) + lam * eye, grad)
        cost_new, r_new, J_new = evaluate(x - step)
        # a relative margin keeps accept/refuse decisions away from rounding-level ties,
        # so the result does not depend on the platform's last bits
        better = cost_new < cost * (1.0 - 1e-10)
        b = better[:, None]
        x = torch.where(b, x - step, x)
        cost = torch.where(better, cost_new, cost)
        r = torch.where(b, r_new, r)
        J = torch.where(b[:, :, None], J_new, J)
        lam = torch.where(better[:, None, None], lam / 3, lam * 3).clamp(1e-8, 1e4)
    return pose(x).detach()


_LEGS = ("L_Hip", "L_Knee", "L_Ankle", "R_Hip", "R_Knee", "R_Ankle")
_LEG_DOFS = ("L_Hip", "L_Knee:x", "L_Ankle", "R_Hip", "R_Knee:x", "R_Ankle")    # knees are hinges
_FEET = SKEL.indices(("L_Ankle", "L_Toe", "R_Ankle", "R_Toe"))
_SPINE = ("Torso", "Spine", "Spine2", "Chest")
_ARMS = ("R_Thorax", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Thorax", "L_Shoulder", "L_Elbow", "L_Wrist")
# Residual weight per radian away from the source pose: the spine bends only as much as
# the reach needs, thorax (shoulder girdle) a little, shoulder/elbow/wrist freely.
_REG = {**{j: 0.02 for j in _LEGS + _ARMS}, **{j: 0.15 for j in _SPINE}, "R_Thorax": 0.1, "L_Thorax": 0.1}


def crouch_pose(depth: float):
    """The source pose with the pelvis ``depth`` lower and both feet where they were."""
    root_pos, root_quat, joints, _ = source_pose()
    hinge0 = expmap_to_hinge_xyz(joints).reshape(1, -1)[0]
    feet = forward_kinematics(root_pos, root_quat, hinge0).pos[_FEET]
    low = (root_pos - torch.tensor([0.0, 0.0, depth], dtype=torch.float64))[None]
    hinge = solve_ik(low, root_quat[None], hinge0, _LEG_DOFS, _REG,
                     lambda pos, rot: (pos[:, _FEET] - feet).reshape(1, -1))[0]
    return low[0], root_quat, hinge


def dribble_clip(p: DribbleParams | None = None, ball: ObjectConfig | None = None) -> torch.Tensor:
    """In-place right-hand dribble (label 013) from a slight crouch."""
    p = p or DribbleParams()
    ball = ball or ObjectConfig()
    ball_z, contact, palm_z = ball_cycle(p, ball.size[0], ball.restitution)
    root_pos, root_quat, hinge0 = crouch_pose(p.crouch)
    forward, right = body_axes(forward_kinematics(root_pos, root_quat, hinge0).pos)
    N = p.period_frames
    xy = (root_pos[:2] + p.forward * forward + p.right * right).expand(N, 2)
    palm_target = torch.cat([xy, palm_z[:, None]], dim=-1)
    lf, ll, lz = p.left_hand
    left_target = torch.cat([root_pos[:2] + lf * forward - ll * right, root_pos.new_tensor([lz])])
    obj_pos = torch.cat([xy, ball_z[:, None]], dim=-1)
    down = root_pos.new_tensor([0.0, 0.0, -1.0])
    elbow = SKEL.index("R_Elbow")
    _, _, forearm, _ = SKEL.geoms[elbow]
    forearm_clear = ball.size[0] + SKEL.geoms[elbow][1][0]

    def task(pos, rot):
        r_centre, r_normal = palm_frame(pos, "R")
        l_centre, _ = palm_frame(pos, "L")
        ends = _geom_points(pos, rot, elbow, forearm)
        # keep the forearm capsule off the ball: only the palm touches it
        gap = torch.relu(forearm_clear - segment_distance(obj_pos, ends[:, 0], ends[:, 1]))
        return torch.cat([r_centre - palm_target, 0.1 * (r_normal - down), 0.5 * (l_centre - left_target),
                          2.0 * gap[:, None]], -1)

    hinge = solve_ik(root_pos.expand(N, 3), root_quat.expand(N, 4), hinge0, _SPINE + _ARMS, _REG, task)
    # exp-maps: the joints IK or crouch changed are converted back; the rest keep the source values
    joint_exp = _with_joints(source_pose()[2], hinge, _LEGS + _SPINE + _ARMS)
    k = p.cycles
    return assemble_clip(root_pos.expand(N * k, 3), root_quat.expand(N * k, 4), joint_exp.repeat(k, 1, 1),
                         obj_pos.repeat(k, 1), contact.repeat(k))


def _with_joints(joints: torch.Tensor, hinge: torch.Tensor, names) -> torch.Tensor:
    """Source exp-maps (T, 52, 3) with the joints in ``names`` replaced by ``hinge``'s."""
    T = hinge.shape[0]
    out = joints.expand(T, -1, -1).clone()
    idx = [SKEL.index(j) - 1 for j in names]
    out[:, idx] = hinge_xyz_to_expmap(hinge.reshape(T, -1, 3)[:, idx])
    return out


def hold_clip(duration: float = 2.0, palm_clearance: float = DribbleParams.palm_clearance) -> torch.Tensor:
    """Standing still with the ball held in both hands (label 001).

    In the source frame the palms stand ~1 cm off the ball; an arm IK closes them onto
    its surface (palm normals towards the centre) so the hold is a real two-hand contact.
    """
    T = int(round(duration * C.FPS))
    root_pos, root_quat, joints, ball = source_pose()
    hinge0 = expmap_to_hinge_xyz(joints).reshape(-1)
    pos0 = forward_kinematics(root_pos, root_quat, hinge0).pos
    reach = ObjectConfig().size[0] + palm_clearance
    targets = {}
    for side in "LR":
        centre, _ = palm_frame(pos0, side)
        out = (centre - ball) / (centre - ball).norm()
        targets[side] = (ball + reach * out, -out)

    def task(pos, rot):
        res = []
        for side, (target, normal) in targets.items():
            centre, n = palm_frame(pos, side)
            res += [centre - target, 0.1 * (n - normal)]
        return torch.cat(res, -1)

    hinge = solve_ik(root_pos[None], root_quat[None], hinge0, _ARMS, _REG, task)
    return assemble_clip(root_pos.expand(T, 3), root_quat.expand(T, 4),
                         _with_joints(joints, hinge, _ARMS).expand(T, -1, -1), ball.expand(T, 3), torch.ones(T))


@dataclass
class BoxLiftParams:
    """Lift a box from the floor with both hands and hold it at the waist (label 050).

    The box (axis-aligned, identity rotation) stands ``reach`` ahead of the pelvis; the
    humanoid starts crouched over it (pelvis ``crouch`` lower, leaning ``lean`` rad
    forward about its right axis) with a palm flat on each side face, rises over
    ``lift_frames`` (smoothstep) while the box follows to ``carry_height`` and
    ``carry_reach``, then holds. Feet stay planted (leg IK); spine and arms come from an IK
    that puts the palms on the faces, normals into the box. Contact flag 1 throughout.
    """

    half_size: tuple = (0.18, 0.15, 0.22)   # box half extents: across the body (x), depth (y), height (z)
    mass: float = 3.0                       # kg: a light parcel
    crouch: float = 0.35                    # m, pelvis lowered at the pick-up
    lean: float = 0.7                       # rad, forward lean of the pelvis at the pick-up
    reach: float = 0.45                     # m, box centre ahead of the pelvis at the pick-up
    carry_reach: float = 0.30               # ... and when held
    carry_height: float = 0.95              # m, box centre when held
    grip_frames: int = 30                   # crouched, gripping
    lift_frames: int = 60                   # rising with the box
    hold_frames: int = 60                   # standing, holding it
    palm_clearance: float = 0.005
    key_every: int = 4                      # IK key frames of the lift (divides lift_frames)
    iterations: int = 50                    # IK iterations of the crouch (from the standing pose)
    refine_iterations: int = 8              # ... of every key frame (warm-started)


_BOX_CLEAR = SKEL.indices(("L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Shoulder", "R_Shoulder",
                           "L_Elbow", "R_Elbow", "Torso", "Spine", "Spine2", "Chest"))


_LEG_CHAINS = [SKEL.indices((f"{side}_Hip", f"{side}_Knee", f"{side}_Ankle")) for side in "LR"]


def _box_clearance_depth(pos, rot, centre, half, margin: float) -> torch.Tensor:
    """(T, k) how deep (m) each collision geom of :data:`_BOX_CLEAR` reaches into an
    axis-aligned box grown by ``margin``: the deepest of its sample points (sphere centre,
    five points on a capsule axis, box corners) minus the geom's radius; <= 0 outside."""
    out = []
    for b in _BOX_CLEAR:
        gtype, size, where, _ = SKEL.geoms[b]
        if gtype == "box":
            local, radius = [[where[0] + sx * size[0], where[1] + sy * size[1], where[2] + sz * size[2]]
                             for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], 0.0
        else:
            ends = torch.as_tensor(where, dtype=pos.dtype).reshape(-1, 3)
            local = ends if gtype == "sphere" else \
                torch.stack([ends[0] + f * (ends[1] - ends[0]) for f in (0.0, 0.25, 0.5, 0.75, 1.0)])
            radius = size[0]
        q = (_geom_points(pos, rot, b, local) - centre[:, None]).abs() - half
        sdf = q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)
        out.append((radius + margin - sdf).amax(-1))
    return torch.stack(out, -1)


def box_object(p: BoxLiftParams | None = None) -> ObjectConfig:
    """The box of :func:`box_lift_clip` as a scene object (``cfg/object/box_demo.yaml``).

    Contact: the ball's calibrated solref, uncalibrated for a box (a carried box does not
    bounce; see :mod:`skillmimic.assets.objects`); a cardboard-on-skin friction of 1."""
    p = p or BoxLiftParams()
    return ObjectConfig(name="box", shape="box", size=list(p.half_size), mass=p.mass)


def box_lift_clip(p: BoxLiftParams | None = None) -> torch.Tensor:
    """Crouch over a box on the floor, lift it with both hands, hold it (label 050)."""
    p = p or BoxLiftParams()
    root0, quat0, joints, _ = source_pose()
    hinge0 = expmap_to_hinge_xyz(joints).reshape(-1)
    fk0 = forward_kinematics(root0, quat0, hinge0)
    pos0 = fk0.pos
    feet, feet_up = pos0[_FEET], fk0.rot[_FEET, :, 2]
    forward, right = body_axes(pos0)
    right3 = torch.cat([right, right.new_zeros(1)])
    forward3 = torch.cat([forward, forward.new_zeros(1)])
    half = torch.tensor(p.half_size, dtype=torch.float64)

    def path(frame: torch.Tensor):
        """Root position, root rotation and box centre at lift frames ``frame`` (smoothstep)."""
        s = frame.double() / p.lift_frames
        s = s * s * (3.0 - 2.0 * s)
        root_pos = root0.expand(len(s), 3).clone()
        root_pos[:, 2] -= p.crouch * (1.0 - s)
        half_lean = 0.5 * p.lean * (1.0 - s)
        lean = torch.cat([torch.cos(half_lean)[:, None], torch.sin(half_lean)[:, None] * right3], -1)
        box = root0.new_zeros(len(s), 3)
        box[:, :2] = root0[:2] + (p.reach + (p.carry_reach - p.reach) * s)[:, None] * forward
        box[:, 2] = half[2] + (p.carry_height - half[2]) * s
        return root_pos, quat_mul(lean, quat0.expand(len(s), 4)), box

    # IK at key frames of the lift (its cost is per call, not per frame); the joint rotations
    # are interpolated (slerp) between them
    keys = torch.arange(0, p.lift_frames + 1, p.key_every)
    root_pos, root_quat, box = path(keys)
    # the side faces are the box's +-x faces; the right hand is on the -x side (right ~ -x)
    across = root0.new_tensor([1.0, 0.0, 0.0]) * (1.0 if float(right[0]) > 0 else -1.0)

    def task_for(rows):
        """IK residuals for the key frames ``rows``."""
        centre_box = box[rows]
        grip = {"R": (centre_box + (half[0] + p.palm_clearance) * across, -across),
                "L": (centre_box - (half[0] + p.palm_clearance) * across, across)}

        def task(pos, rot):
            # feet planted where and as they were, knees bending forward (not folded backwards)
            res = [3.0 * (pos[:, _FEET] - feet).reshape(pos.shape[0], -1),
                   (rot[:, _FEET, :, 2] - feet_up).reshape(pos.shape[0], -1)]
            for hip, knee, ankle in _LEG_CHAINS:
                ahead = ((pos[:, knee] - 0.5 * (pos[:, hip] + pos[:, ankle])) * forward3).sum(-1)
                # the knee bends one way only: sin of its x-hinge angle, rel[2, 1] of the thigh-to-shin turn, >= 0
                bend = (rot[:, hip].transpose(-1, -2) @ rot[:, knee])[:, 2, 1]
                res += [5.0 * torch.relu(0.02 - ahead)[:, None], 5.0 * torch.relu(-bend)[:, None]]
            for side, (target, normal) in grip.items():
                centre, nrm = palm_frame(pos, side)
                wrist, knuckles, _, _ = _hand_ids(side)
                fingers = pos[:, knuckles].mean(1) - pos[:, wrist]
                # fingers forward: fixes the hand's turn about the palm normal, which the grip leaves free
                res += [10.0 * (centre - target), 0.5 * (nrm - normal),
                        0.2 * (fingers / fingers.norm(dim=-1, keepdim=True) - forward3)]
            # only the hands touch the box: thighs, forearms and the spine stay outside it
            res.append(5.0 * torch.relu(_box_clearance_depth(pos, rot, centre_box, half, p.palm_clearance)))
            res.append(5.0 * torch.relu(-lowest_point(pos, rot))[:, None])     # and nothing sinks into the floor
            return torch.cat(res, -1)

        return task

    # From the standing pose the solver reaches a deep crouch on different branches for
    # neighbouring frames; so the crouch (key 0) is solved first, and every key starts from
    # the blend of it and the standing pose that matches its progress.
    dofs = _LEG_DOFS + _SPINE + _ARMS
    crouched = solve_ik(root_pos[:1], root_quat[:1], hinge0, dofs, _REG, task_for(slice(0, 1)),
                        iterations=p.iterations, batched_jacobian=True)[0]
    s_keys = keys.double() / p.lift_frames
    s_keys = (s_keys * s_keys * (3.0 - 2.0 * s_keys))[:, None]
    hinge = solve_ik(root_pos, root_quat, hinge0, dofs, _REG, task_for(slice(None)), iterations=p.refine_iterations,
                     batched_jacobian=True, start=crouched + s_keys * (hinge0 - crouched))
    # every frame's place in the lift: the grip repeats its start, the hold its end
    frame = (torch.arange(p.grip_frames + p.lift_frames + p.hold_frames) - p.grip_frames).clamp(0, p.lift_frames)
    k0 = (frame // p.key_every).clamp(max=len(keys) - 2)
    w = ((frame - keys[k0]).double() / p.key_every)[:, None, None]
    # per joint rotation (neighbouring keys may sit on different Euler branches of one rotation)
    key_quat = expmap_to_quat(_with_joints(joints, hinge, _LEGS + _SPINE + _ARMS))
    joint_exp = quat_to_expmap(quat_slerp(key_quat[k0], key_quat[k0 + 1], w))
    root_pos, root_quat, box = path(frame)
    return assemble_clip(root_pos, root_quat, joint_exp, box, torch.ones(len(frame)))


#: generated data sets: output folder name -> {file name: generator}
DATASETS = {
    "demo": {
        clip_file_name("pickup", "demo_hold_1"): hold_clip,
        clip_file_name("run", "demo_dribble_1"): dribble_clip,
    },
    # the non-ball object demo: train it with task=box_carry (envs/box_carry.py)
    "demo_box": {
        "050_demo_boxlift_1.pt": box_lift_clip,
    },
}
CLIPS = DATASETS["demo"]


@contextlib.contextmanager
def _one_thread():
    """Small batched FK/IK: thread hand-offs cost more than they save, and a fixed thread
    count keeps the reductions, hence the committed files, bit-stable."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def build_clips(dataset: str = "demo") -> dict[str, torch.Tensor]:
    """The clips of data set ``dataset`` (:data:`DATASETS`) by file name, freshly generated."""
    with _one_thread():
        return {name: make().contiguous() for name, make in DATASETS[dataset].items()}


def generate(out_dir: str | pathlib.Path, dataset: str = "demo") -> list[pathlib.Path]:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, clip in build_clips(dataset).items():
        path = out / name
        torch.save(clip, path)
        paths.append(path)
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="demo", choices=sorted(DATASETS), help="which clips")
    parser.add_argument("--out", default=None, help="output folder (default: data/motions/<dataset>)")
    args = parser.parse_args(argv)
    for path in generate(args.out or f"data/motions/{args.dataset}", args.dataset):
        clip = torch.load(path, weights_only=True)
        print(f"wrote {path}  {tuple(clip.shape)}  {clip.shape[0] / C.FPS:.2f} s  "
              f"contact frames {int(clip[:, C.CONTACT].sum())}")


if __name__ == "__main__":
    main()
