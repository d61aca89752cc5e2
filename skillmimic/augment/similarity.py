"""The state-similarity measure of SkillMimic-V2, shared by the graph (STG) and STF.

S = S_pose * S_obj * S_rel = exp(-E) with the cost

    E = w_p  MSE(key_pos) + w_pv MSE(key_vel) + w_r  mean_j theta_j^2 + w_rr theta_root^2
      + w_h  (d root_z)^2 + w_op MSE(obj_pos) + w_opv MSE(obj_vel) + w_rel MSE(key_pos - obj_pos)

(facts §2.1 and §3.2). theta_j is the angle of the relative rotation of joint j between the
two frames; our DOFs are hinge angles (intrinsic XYZ), so each joint's rotation is rebuilt
from its three hinges first. Every MSE is a mean over coordinates.

Why costs instead of similarities: the searches only need argmax S = argmin E, and E is
additive. The graph search further uses that all terms but the rotation angles are squared
Euclidean distances between per-frame vectors, and that theta^2 >= 2 (1 - cos theta) =
||R_a - R_b||_F^2 / 2: the whole cost has a Euclidean *lower bound*, computable for
millions of pairs with one matrix product (:func:`embedding`), and the exact cost is only
needed for the few candidates whose bound beats the best exact cost found so far.

Alignment (graph only): comparing after rotating the candidate by the heading difference
about its root and moving its root xy onto the source's (z kept) is the same as comparing
both frames in their own heading frames, xy relative to the root and absolute z
(:func:`FrameFeatures.heading_aligned`): the residual differs only by a rotation about z,
which leaves every squared norm unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch

from ..assets.skeleton import SKELETON_BALLPLAY, Skeleton
from ..kinematics import forward_kinematics
from ..motion.skills import BODY_ONLY_LABELS
from ..rotations import heading_yaw, hinge_to_matrix, matrix_to_quat, quat_to_matrix

# Locomotion classes (the skill table's body-only skills: getup, run without ball): pose-only
# similarity with a root-height term.
LOCOMOTION_LABELS = BODY_ONLY_LABELS
NUM_JOINTS = 52


@dataclass(frozen=True)
class SimilarityWeights:
    """Exponent weights of the cost terms; 0 drops a term."""

    p: float = 0.0      # key-body positions
    pv: float = 0.0     # key-body velocities
    r: float = 0.0      # joint rotations (mean over 52 joints of theta^2)
    rr: float = 0.0     # root rotation theta^2 (STF only: the graph aligns headings instead)
    h: float = 0.0      # root height difference squared
    op: float = 0.0     # object position
    opv: float = 0.0    # object velocity
    rel: float = 0.0    # key-body-to-object vectors

    def as_dict(self) -> dict:
        return asdict(self)


# Facts §2.1 (graph) and §3.2 (STF), BallPlay handler of the released code.
STG_BALL = SimilarityWeights(p=20, pv=0.1, r=20, op=1, opv=0.1, rel=20)
STG_LOCOMOTION = SimilarityWeights(p=10, pv=0.1, r=10, h=5)
STF_BALL = SimilarityWeights(p=2, pv=0.1, rr=2, r=2, op=1, opv=0.1, rel=2)
STF_LOCOMOTION = SimilarityWeights(p=1, pv=0.1, rr=1, h=1, r=1)


def weights_for_label(label: int, ball: SimilarityWeights, locomotion: SimilarityWeights) -> SimilarityWeights:
    """The source frame's class picks the weights (the original's per-class rule)."""
    return locomotion if int(label) in LOCOMOTION_LABELS else ball


@dataclass
class FrameFeatures:
    """What the measure compares, for a batch of frames (any leading batch shape)."""

    root_pos: torch.Tensor     # (..., 3)
    root_quat: torch.Tensor    # (..., 4) wxyz
    key_pos: torch.Tensor      # (..., 17, 3)
    key_vel: torch.Tensor      # (..., 17, 3)
    obj_pos: torch.Tensor     # (..., 3)
    obj_vel: torch.Tensor     # (..., 3)
    joint_quat: torch.Tensor   # (..., 52, 4) wxyz, per-joint local rotation

    def map(self, fn) -> "FrameFeatures":
        return FrameFeatures(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def __getitem__(self, index) -> "FrameFeatures":
        return self.map(lambda t: t[index])

    def unsqueeze(self, dim: int) -> "FrameFeatures":
        """Insert a batch axis at ``dim`` (counted among the leading batch axes)."""
        return self.map(lambda t: t.unsqueeze(dim))

    def to(self, device=None, dtype=None) -> "FrameFeatures":
        return self.map(lambda t: t.to(device=device, dtype=dtype))

    @property
    def num_frames(self) -> int:
        return self.root_pos.shape[0]

    def heading_aligned(self) -> "FrameFeatures":
        """Positions: xy relative to the root, rotated by -heading, z absolute; velocities
        rotated by -heading; joint rotations unchanged; root at (0, 0, z), identity heading.
        Two frames compared in this form are compared after the original's alignment."""
        yaw = heading_yaw(self.root_quat)
        c, s = torch.cos(yaw), torch.sin(yaw)

        def rot(v):  # rotate (..., k, 3) or (..., 3) by -yaw about z
            cc = c.reshape(*c.shape, *([1] * (v.dim() - c.dim() - 1)))
            ss = s.reshape(cc.shape)
            x, y, z = v.unbind(-1)
            return torch.stack([cc * x + ss * y, -ss * x + cc * y, z], -1)

        origin = torch.cat([self.root_pos[..., :2], torch.zeros_like(self.root_pos[..., 2:])], -1)
        root_pos = self.root_pos - origin
        obj = rot(self.obj_pos - origin)
        return FrameFeatures(
            root_pos=root_pos,
            root_quat=self.root_quat,   # the graph does not compare root rotations (w.rr = 0)
            key_pos=rot(self.key_pos - origin.unsqueeze(-2)),
            key_vel=rot(self.key_vel),
            obj_pos=obj,
            obj_vel=rot(self.obj_vel),
            joint_quat=self.joint_quat,
        )


def joint_quats(dof_pos: torch.Tensor, skeleton: Skeleton = SKELETON_BALLPLAY) -> torch.Tensor:
    """(..., 156) hinge angles (``skeleton``'s hinge orders) -> (..., 52, 4) per-joint rotations (wxyz)."""
    angles = dof_pos.reshape(*dof_pos.shape[:-1], NUM_JOINTS, 3)
    return matrix_to_quat(hinge_to_matrix(angles, skeleton.hinge_orders))


def library_features(motion, rows: torch.Tensor | None = None) -> FrameFeatures:
    """Features of library frames (all, or the flat ``rows``), from the library's FK."""
    idx = slice(None) if rows is None else rows
    key = motion.key_body_ids
    return FrameFeatures(
        root_pos=motion.root_pos[idx], root_quat=motion.root_quat[idx],
        key_pos=motion.body_pos[idx][:, key], key_vel=motion.body_lin_vel[idx][:, key],
        obj_pos=motion.obj_pos[idx], obj_vel=motion.obj_lin_vel[idx],
        joint_quat=joint_quats(motion.dof_pos[idx], motion.skeleton))


def state_features(state, key_body_ids, skeleton: Skeleton = SKELETON_BALLPLAY) -> FrameFeatures:
    """Features of a :class:`~skillmimic.state.JointState` batch (hinge angles in ``skeleton``'s
    orders), key bodies by forward kinematics *of that state* (so a perturbed state is
    compared as it is)."""
    kin = forward_kinematics(state.root_pos, state.root_quat, state.dof_pos,
                             state.root_lin_vel, state.root_ang_vel, state.dof_vel, skeleton=skeleton)
    return FrameFeatures(
        root_pos=state.root_pos, root_quat=state.root_quat,
        key_pos=kin.pos[:, key_body_ids], key_vel=kin.lin_vel[:, key_body_ids],
        obj_pos=state.obj_pos, obj_vel=state.obj_lin_vel,
        joint_quat=joint_quats(state.dof_pos, skeleton))


def rotation_angle_sq(qa: torch.Tensor, qb: torch.Tensor) -> torch.Tensor:
    """Squared angle of qa^-1 qb for unit quaternions (..., 4), broadcasting.

    theta = 4 atan2(||qa - s qb||, ||qa + s qb||) with s = sign(qa . qb): well conditioned
    at theta ~ 0, where 2 acos(|qa . qb|) loses half the digits (a frame compared with
    itself must give exactly S = 1)."""
    dot = (qa * qb).sum(-1, keepdim=True)
    qb = torch.where(dot < 0, -qb, qb)
    theta = 4.0 * torch.atan2((qa - qb).norm(dim=-1), (qa + qb).norm(dim=-1))
    return theta * theta


def euclidean_part(f: FrameFeatures, w: SimilarityWeights) -> torch.Tensor:
    """(..., De) vectors whose squared distance is exactly the cost of every term but the
    rotation angles: each term's coordinates scaled by sqrt(weight / coordinate count)."""
    batch = f.root_pos.shape[:-1]
    parts = []

    def add(weight: float, x: torch.Tensor, count: int):
        if weight:
            parts.append(math.sqrt(weight / count) * x.reshape(*batch, -1))

    nk = f.key_pos.shape[-2] * 3
    add(w.p, f.key_pos, nk)
    add(w.pv, f.key_vel, nk)
    add(w.op, f.obj_pos, 3)
    add(w.opv, f.obj_vel, 3)
    add(w.rel, f.key_pos - f.obj_pos.unsqueeze(-2), nk)
    add(w.h, f.root_pos[..., 2:3], 1)
    if not parts:
        return f.root_pos.new_zeros(*batch, 0)
    return torch.cat(parts, dim=-1)


def rotation_bound_part(f: FrameFeatures, w: SimilarityWeights) -> torch.Tensor:
    """(..., Dr) vectors whose squared distance is a lower bound of the rotation terms:
    theta^2 >= 2 (1 - cos theta) = ||R_a - R_b||_F^2 / 2, tight for small angles -- i.e.
    exactly where the best matches are."""
    batch = f.root_pos.shape[:-1]
    parts = []
    if w.r:
        nj = f.joint_quat.shape[-2]
        parts.append(math.sqrt(w.r / (2 * nj)) * quat_to_matrix(f.joint_quat).reshape(*batch, -1))
    if w.rr:
        parts.append(math.sqrt(w.rr / 2) * quat_to_matrix(f.root_quat).reshape(*batch, -1))
    if not parts:
        return f.root_pos.new_zeros(*batch, 0)
    return torch.cat(parts, dim=-1)


def embedding(f: FrameFeatures, w: SimilarityWeights) -> torch.Tensor:
    """(..., De + Dr): squared distances are lower bounds of :func:`similarity_cost`
    (exact in the first De columns, see :func:`euclidean_part`)."""
    return torch.cat([euclidean_part(f, w), rotation_bound_part(f, w)], dim=-1)


def rotation_angles(a: FrameFeatures, b: FrameFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean_j theta_j^2, theta_root^2) of ``a`` against ``b``: the rotation terms without their
    weights, the dearest part of the cost, computed once when the same pairs are compared
    under several weight sets (STF's ball and locomotion classes)."""
    return rotation_angle_sq(a.joint_quat, b.joint_quat).mean(-1), rotation_angle_sq(a.root_quat, b.root_quat)


def rotation_cost(joint_a: torch.Tensor, joint_b: torch.Tensor, root_a: torch.Tensor, root_b: torch.Tensor,
                  w: SimilarityWeights, angles: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """w_r mean_j theta_j^2 + w_rr theta_root^2 (broadcasting); ``angles``: the two, if
    :func:`rotation_angles` gave them already (the same numbers)."""
    out = 0.0
    if w.r:
        out = out + w.r * (angles[0] if angles is not None else rotation_angle_sq(joint_a, joint_b).mean(-1))
    if w.rr:
        out = out + w.rr * (angles[1] if angles is not None else rotation_angle_sq(root_a, root_b))
    return out


def similarity_cost(a: FrameFeatures, b: FrameFeatures, w: SimilarityWeights,
                    angles: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """E(a, b) >= 0 elementwise over the broadcast batch shape; S = exp(-E). ``angles``:
    :func:`rotation_angles` of the same pairs, if computed already."""
    if not any(w.as_dict().values()):
        raise ValueError("all similarity weights are zero")
    ea, eb = euclidean_part(a, w), euclidean_part(b, w)
    cost = (ea - eb).pow(2).sum(-1)
    return cost + rotation_cost(a.joint_quat, b.joint_quat, a.root_quat, b.root_quat, w, angles)


def similarity(a: FrameFeatures, b: FrameFeatures, w: SimilarityWeights) -> torch.Tensor:
    return torch.exp(-similarity_cost(a, b, w))


def masked_steps(sim: torch.Tensor, max_steps: int = 10) -> torch.Tensor:
    """Masked ("buffer node") steps implied by a similarity (facts §2.4):
    0 if S > 0.5, else min(-floor(log10 S), max_steps); S <= 0 gives ``max_steps``."""
    s = torch.as_tensor(sim).to(torch.float64)
    n = (-torch.floor(torch.log10(s.clamp_min(1e-300)))).clamp(0, max_steps).long()
    return torch.where(s > 0.5, torch.zeros_like(n), n)
