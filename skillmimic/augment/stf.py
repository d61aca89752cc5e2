"""State Transition Field (STF, "epsilon-neighbourhood state init"): perturbed start states,
re-targeted to the reference frame of the same clip they are nearest to.

An episode that starts from a perturbed reference state teaches the policy to return to
the demonstration from states it never shows. Re-targeting (facts §3.2) picks the frame
t* of the same clip (t* not in {0, 1, L-1}, not missing) that maximises S_noise, the
similarity of :mod:`.similarity` without alignment and with a root-rotation term
(:data:`~.similarity.STF_BALL`, :data:`~.similarity.STF_LOCOMOTION`); the env then imitates
from t* and masks the first N(S(t*)) steps (facts §2.4).

Deliberate choices where the original is flagged (facts §3.2):

* (a) The noisy state's key-body positions and velocities are the forward kinematics *of
  the noised state itself* (:func:`~.similarity.state_features`). The original read the
  simulator's pre-reset bodies -- the end of the previous episode -- so its "nearest
  frame" was nearest to a state the env never starts from.
* (b) The pose term is a proper MSE (mean of squared coordinate differences), the same
  measure as every other term and as the graph; the original's ||x_noisy - x_ref^2||
  (a norm against the *squared* reference) is not a distance and is minimised by
  frames with large coordinates, not near ones.
* Quaternions (root, object) get per-component Gaussian noise and are then renormalised.
  The simulator normalises on ``set_state`` anyway, so renormalising here makes the state
  we search with exactly the state that is simulated. (The component noise then is a
  random rotation of ~0.1 rad per axis, 1 rad for getup, as in the original.)
* Noise on the hinge angles replaces the original's noise on per-joint exp-maps: the
  same scale (0.1 rad) in the coordinates the simulator uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..motion.skills import label_of
from ..rotations import quat_normalize
from ..state import JointState
from .similarity import (
    LOCOMOTION_LABELS, STF_BALL, STF_LOCOMOTION, FrameFeatures, SimilarityWeights, library_features,
    rotation_angles, similarity_cost, state_features,
)

GETUP_LABEL = label_of("getup")


@dataclass
class STFNoise:
    """Per-component noise (facts §3.1, R column). ``*_z`` are uniform U(0, a) offsets
    (upward only, so noise never starts a body inside the floor); the rest are N(0, sigma)."""

    root_z: float = 0.1
    root_quat: float = 0.1
    root_lin_vel: float = 0.1
    root_ang_vel: float = 0.1
    dof_pos: float = 0.1
    dof_vel: float = 0.1
    ball_z: float = 0.1
    obj_quat: float = 0.1
    obj_lin_vel: float = 0.1
    obj_ang_vel: float = 0.1

    def as_dict(self) -> dict:
        return asdict(self)


def default_getup_noise() -> STFNoise:
    """Getup (label 0) starts are noised much harder in height and orientation (facts §3.1)."""
    return STFNoise(root_z=1.0, root_quat=1.0)


def _scale(labels: torch.Tensor, noise: STFNoise, getup: STFNoise, name: str, dtype) -> torch.Tensor:
    """(n, 1) per-env scale of one component: the getup value where the label is 0."""
    a = torch.full(labels.shape, getattr(noise, name), dtype=dtype, device=labels.device)
    return torch.where(labels == GETUP_LABEL, torch.full_like(a, getattr(getup, name)), a).unsqueeze(-1)


def perturb_state(state: JointState, labels: torch.Tensor, noise: STFNoise | None = None,
                  getup_noise: STFNoise | None = None, generator: torch.Generator | None = None) -> JointState:
    """A perturbed copy of ``state`` (one row per env); ``labels`` pick the getup scales."""
    noise = noise or STFNoise()
    getup_noise = getup_noise or default_getup_noise()
    labels = labels.to(state.root_pos.device)
    dt = state.root_pos.dtype

    def gauss(x, name):
        return x + _scale(labels, noise, getup_noise, name, dt) * torch.randn(
            x.shape, generator=generator, device=x.device, dtype=dt)

    def up(x, name):
        u = torch.rand(x.shape[0], 1, generator=generator, device=x.device, dtype=dt)
        offset = torch.zeros_like(x)
        offset[:, 2:3] = u * _scale(labels, noise, getup_noise, name, dt)
        return x + offset

    return JointState(
        root_pos=up(state.root_pos, "root_z"),
        root_quat=quat_normalize(gauss(state.root_quat, "root_quat")),
        root_lin_vel=gauss(state.root_lin_vel, "root_lin_vel"),
        root_ang_vel=gauss(state.root_ang_vel, "root_ang_vel"),
        dof_pos=gauss(state.dof_pos, "dof_pos"),
        dof_vel=gauss(state.dof_vel, "dof_vel"),
        obj_pos=up(state.obj_pos, "ball_z"),
        obj_quat=quat_normalize(gauss(state.obj_quat, "obj_quat")),
        obj_lin_vel=gauss(state.obj_lin_vel, "obj_lin_vel"),
        obj_ang_vel=gauss(state.obj_ang_vel, "obj_ang_vel"),
    )


def retarget(motion, clip_ids: torch.Tensor, state: JointState, labels: torch.Tensor,
             ball_weights: SimilarityWeights = STF_BALL, locomotion_weights: SimilarityWeights = STF_LOCOMOTION,
             frame_features: FrameFeatures | None = None, chunk_bytes: int = 64 << 20,
             max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest frame of each env's own clip to its (noisy) state by S_noise -> (frames, S).

    ``frame_features``: :func:`~.similarity.library_features` of the whole library, if the
    caller keeps them (recomputed otherwise). Candidates are frames 2..L-2 that are not
    missing; a clip without any keeps frame 2 (clamped) with S computed there.
    ``max_length``: at least the longest of these clips (the library's longest will do);
    None reads it from the clips, a host sync on CUDA."""
    dev = motion.device
    clip_ids = clip_ids.to(dev).long()
    labels = labels.to(dev)
    n = clip_ids.shape[0]
    feats = frame_features if frame_features is not None else library_features(motion)
    noisy = state_features(state.to(dev, feats.root_pos.dtype), motion.key_body_ids, motion.skeleton)
    T = motion.clip_lengths[clip_ids]
    if max_length is None:
        max_length = int(T.max()) if n else 0
    t = torch.arange(max_length, device=dev)
    rows = motion.clip_starts[clip_ids, None] + torch.minimum(t[None], T[:, None] - 1)
    ok = (t[None] >= 2) & (t[None] <= T[:, None] - 2) & motion.valid[rows]
    ok = torch.where(ok.any(1, keepdim=True), ok, t[None] == torch.clamp(T[:, None] - 1, max=2))
    loco = torch.zeros_like(labels, dtype=torch.bool)
    for label in LOCOMOTION_LABELS:        # not isin(labels, tensor(...)): no host-to-device copy
        loco |= labels == label
    cost = torch.empty(n, t.shape[0], dtype=feats.root_pos.dtype, device=dev)
    per_env = max(1, t.shape[0]) * feats.joint_quat.shape[-2] * 4 * 4 * feats.root_pos.element_size()
    step = max(1, chunk_bytes // per_env)
    for s in range(0, n, step):
        sl = slice(s, s + step)
        a, b = noisy[sl].unsqueeze(1), feats[rows[sl]]
        angles = rotation_angles(a, b)            # shared by both classes' costs
        c_ball = similarity_cost(a, b, ball_weights, angles)
        c_loco = similarity_cost(a, b, locomotion_weights, angles)
        cost[sl] = torch.where(loco[sl, None], c_loco, c_ball)
    cost = torch.where(ok, cost, torch.full_like(cost, float("inf")))
    best, frames = cost.min(dim=1)
    return frames, torch.exp(-best)
