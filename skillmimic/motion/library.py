"""The motion library: every clip's reference, flat on one device, with batched sampling.

Why flat tensors: resets and reward computation look up thousands of (clip, time) pairs
per step; with all frames concatenated (plus per-clip start offsets and lengths) a batch
lookup is a handful of gathers on the device where the simulator's tensors live, with no
Python loop over worlds or clips.

Times are FRAME indices (float), not seconds: control runs at the data rate (60 Hz), so
an environment's progress counter is directly a time. Integer times give the recorded
frame exactly; fractional times interpolate between the floor and ceil frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterable, Sequence

import torch

from ..assets.skeleton import SKELETON_BALLPLAY, Skeleton
from ..kinematics import ForwardKinematics
from ..rotations import matrix_to_quat, quat_slerp, quat_to_expmap
from ..state import JointState
from . import columns as C
from .io import PathLike, clip_label, find_clips, load_clip, skill_name, warn_duplicate_clips
from .reference import ClipReference, convert_clip, sign_smooth, wrap_angle
from .skills import SKILLS

# Fields of the flat per-frame storage that are interpolated linearly / by slerp.
_LINEAR = ("root_pos", "root_lin_vel", "root_ang_vel", "dof_pos", "dof_vel", "obj_pos",
           "obj_lin_vel", "obj_ang_vel", "body_pos", "body_lin_vel", "body_ang_vel")
_ANGLES = ("dof_pos",)  # hinge angles in [-pi, pi]: interpolated the shorter way round
_SLERP = ("root_quat", "obj_quat", "body_quat")
_STATE_FIELDS = tuple(f.name for f in fields(JointState))

# Frames per FK call at load: bounds peak memory (float64 rotation matrices) on big sets.
_FK_CHUNK = 8192


_BODY_FIELDS = ("body_pos", "body_quat", "body_lin_vel", "body_ang_vel")


class _RowsOnRead(dict):
    """The per-body fields of exact frames, gathered from the library when first read: the
    env reads a reference every step and only ever uses its key bodies and joint state, so
    gathering 53 bodies x 13 numbers per env there was wasted work."""

    def __init__(self, library: "MotionLibrary", rows: torch.Tensor):
        super().__init__()
        self._library, self._rows = library, rows

    def __missing__(self, name: str) -> torch.Tensor:
        value = self[name] = getattr(self._library, name)[self._rows]
        return value


@dataclass
class ReferenceFrame:
    """Reference at a batch of (clip, time) pairs; all tensors have N rows.

    ``state`` is what a simulator is reset to; body quantities are the forward kinematics
    of that state (a simulator set to ``state`` reports these at integer times: exactly with
    ``sim.body_kinematics=torch``, to float32 rounding with the engine's own kinematics).
    ``body_pos``, ``body_quat``, ``body_lin_vel`` and ``body_ang_vel`` ((N, 53, 3 or 4), world
    frame, quaternions wxyz) are read-only properties, gathered on first read.
    """

    state: JointState
    key_body_pos: torch.Tensor   # (N, 17, 3)
    root_expmap: torch.Tensor    # (N, 3) root rotation as an exp-map (the reward's root term)
    contact: torch.Tensor        # (N,) hand-object contact flag {0, 1}
    valid: torch.Tensor          # (N,) bool: False if the frame (or an interpolated neighbour) is missing
    clip_ids: torch.Tensor       # (N,) long
    times: torch.Tensor          # (N,) frame index actually used (after clamping)
    labels: torch.Tensor         # (N,) long skill label of the clip
    bodies: dict = field(repr=False, default_factory=dict)   # body field name -> tensor (or gathered on read)

    body_pos = property(lambda self: self.bodies["body_pos"])
    body_quat = property(lambda self: self.bodies["body_quat"])
    body_lin_vel = property(lambda self: self.bodies["body_lin_vel"])
    body_ang_vel = property(lambda self: self.bodies["body_ang_vel"])

    @property
    def num_frames(self) -> int:
        return self.clip_ids.shape[0]


class MotionLibrary:
    """All clips of one or more paths (files or folders), converted once at construction.

    Per frame (flat, ``num_frames`` rows, on ``device``): ``root_pos``, ``root_quat``,
    ``root_lin_vel``, ``root_ang_vel``, ``dof_pos``, ``dof_vel``, ``obj_pos``, ``obj_quat``,
    ``obj_lin_vel``, ``obj_ang_vel``, ``contact``, ``valid``, ``body_pos``, ``body_quat``,
    ``body_lin_vel``, ``body_ang_vel`` (forward kinematics of the joint-space reference) and
    ``recorded_body_pos`` (columns 165:324 as recorded, for error reports).
    Per clip: ``clip_starts``, ``clip_lengths``, ``clip_labels``, ``clip_fps``,
    ``clip_weights`` (tensors) and ``files``, ``skill_names`` (lists).
    """

    def __init__(self, paths: PathLike | Iterable[PathLike], device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, fps: float = C.FPS, skeleton: Skeleton = SKELETON_BALLPLAY):
        self.device = torch.device(device)
        self.skeleton = skeleton     # its hinge orders define dof_pos; pass the simulator's
        self.dtype = dtype
        self.files: list[Path] = find_clips(paths)
        labels = [clip_label(f) for f in self.files]     # fail on a bad name before loading
        self.skill_names: list[str] = [skill_name(f) for f in self.files]
        clips = [load_clip(f) for f in self.files]
        warn_duplicate_clips(self.files, clips)
        refs = [convert_clip(c, fps, skeleton) for c in clips]
        del clips
        lengths = torch.tensor([r.num_frames for r in refs], dtype=torch.long)

        flat = {name: torch.cat([getattr(r, name) for r in refs]) for name in ClipReference.__dataclass_fields__}
        flat.update(self._body_kinematics(ForwardKinematics(skeleton), flat, refs))

        to = dict(device=self.device)
        for name, value in flat.items():
            setattr(self, name, value.to(**to, dtype=dtype if value.is_floating_point() else None))
        self.clip_lengths = lengths.to(**to)
        self.clip_starts = (torch.cumsum(lengths, 0) - lengths).to(**to)
        self.clip_labels = torch.tensor(labels, dtype=torch.long, device=self.device)
        self.clip_fps = torch.full((len(refs),), float(fps), dtype=dtype, device=self.device)
        self.clip_weights = self.default_clip_weights()
        self.key_body_ids = torch.tensor(skeleton.key_body_ids, device=self.device)
        # per frame, for the per-step lookup: the key bodies and the root exp-map (reward)
        self._key_body_pos = self.body_pos[:, self.key_body_ids].contiguous()
        self.root_expmap = quat_to_expmap(self.root_quat)

    @staticmethod
    def _body_kinematics(forward_kinematics: ForwardKinematics, flat: dict, refs: Sequence[ClipReference]) -> dict:
        """FK of the converted reference for all frames (float64, chunked); body quats are
        sign-smoothed per clip so that slerp between neighbours takes the short way."""
        out = {k: [] for k in ("body_pos", "body_quat", "body_lin_vel", "body_ang_vel")}
        n = flat["root_pos"].shape[0]
        for s in range(0, n, _FK_CHUNK):
            sl = slice(s, min(s + _FK_CHUNK, n))
            kin = forward_kinematics(flat["root_pos"][sl], flat["root_quat"][sl], flat["dof_pos"][sl],
                                     flat["root_lin_vel"][sl], flat["root_ang_vel"][sl], flat["dof_vel"][sl])
            out["body_pos"].append(kin.pos)
            out["body_quat"].append(matrix_to_quat(kin.rot))
            out["body_lin_vel"].append(kin.lin_vel)
            out["body_ang_vel"].append(kin.ang_vel)
        out = {k: torch.cat(v) for k, v in out.items()}
        quats = out["body_quat"].split([r.num_frames for r in refs])
        out["body_quat"] = torch.cat([sign_smooth(q) for q in quats])
        return out

    def check_skeleton(self, skeleton: Skeleton) -> None:
        """Raise unless the reference's hinge angles are those of ``skeleton`` (a simulator's)."""
        if tuple(skeleton.hinge_orders) != tuple(self.skeleton.hinge_orders):
            diff = [(n, a, b) for n, a, b in zip(skeleton.names[1:], self.skeleton.hinge_orders, skeleton.hinge_orders)
                    if a != b]
            raise ValueError(f"motion library converted with other hinge orders than the simulator's "
                             f"(joint, library, simulator): {diff[:4]}{' ...' if len(diff) > 4 else ''}; "
                             f"build it with MotionLibrary(..., skeleton=sim.skeleton)")

    # ------------------------------------------------------------------ per clip
    @property
    def num_clips(self) -> int:
        return self.clip_lengths.shape[0]

    @property
    def num_frames(self) -> int:
        return self.root_pos.shape[0]

    @property
    def key_body_pos(self) -> torch.Tensor:
        """(num_frames, 17, 3) key-body positions of every frame (from FK)."""
        return self._key_body_pos

    def __len__(self) -> int:
        return self.num_clips

    def __repr__(self) -> str:
        return (f"MotionLibrary({self.num_clips} clips, {self.num_frames} frames, "
                f"labels {sorted(set(self.clip_labels.tolist()))}, device={self.device})")

    def clip_ids_of_label(self, labels: int | Iterable[int]) -> torch.Tensor:
        """Ids (long, on the library device) of the clips whose label is in ``labels``."""
        labels = [labels] if isinstance(labels, int) else list(labels)
        wanted = torch.tensor(labels, dtype=torch.long, device=self.device)
        return torch.isin(self.clip_labels, wanted).nonzero().flatten()

    def default_clip_weights(self) -> torch.Tensor:
        """The original's clip weights: 1 / (clips sharing the label), times the skill table's
        ``clip_weight`` (pick-up x2), so every skill is drawn about equally however many clips it has."""
        _, inverse, counts = torch.unique(self.clip_labels, return_inverse=True, return_counts=True)
        w = 1.0 / counts[inverse].to(torch.float64)
        for s in SKILLS:
            if s.clip_weight != 1.0:
                w = torch.where(self.clip_labels == s.label, w * s.clip_weight, w)
        return w.to(self.dtype)

    def clip_fk_error(self) -> torch.Tensor:
        """(num_clips,) mean distance (m) between the reference bodies (FK of the converted
        pose) and the recorded body positions, over valid frames and all 53 bodies."""
        err = (self.body_pos - self.recorded_body_pos).norm(dim=-1).mean(dim=-1)
        err = torch.where(self.valid, err, torch.zeros_like(err))
        clip_of_frame = torch.repeat_interleave(torch.arange(self.num_clips, device=self.device), self.clip_lengths)
        total = torch.zeros(self.num_clips, dtype=err.dtype, device=self.device).index_add_(0, clip_of_frame, err)
        count = torch.zeros_like(total).index_add_(0, clip_of_frame, self.valid.to(err.dtype))
        return total / count.clamp_min(1)

    # ------------------------------------------------------------------ sampling
    def sample_clips(self, n: int, generator: torch.Generator | None = None,
                     weights: torch.Tensor | Sequence[float] | None = None) -> torch.Tensor:
        """``n`` clip ids drawn with replacement, proportional to ``weights`` (default
        :meth:`default_clip_weights`). A generator must live on the library device."""
        if weights is None:      # checked when they were set; checking again would sync every reset
            return torch.multinomial(self.clip_weights, n, replacement=True, generator=generator)
        w = torch.as_tensor(weights, dtype=self.dtype, device=self.device)
        if w.shape != (self.num_clips,):
            raise ValueError(f"weights must have shape ({self.num_clips},), got {tuple(w.shape)}")
        if (w < 0).any() or not torch.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
        return torch.multinomial(w, n, replacement=True, generator=generator)

    def sample_times(self, clip_ids: torch.Tensor, generator: torch.Generator | None = None,
                     min_frame: int = 2, end_margin: int = 2) -> torch.Tensor:
        """Start frames (long) uniform over the integers [min_frame, T - end_margin] of each
        clip (the original's reference-state init: [2, T-2]). The range is clamped into
        [0, T-1], so very short clips still give a valid frame."""
        T = self.clip_lengths[clip_ids]
        low = torch.clamp(torch.full_like(T, min_frame), max=T - 1).clamp_min(0)
        high = torch.maximum(torch.clamp(T - end_margin, max=T - 1), low)
        u = torch.rand(T.shape, generator=generator, device=self.device, dtype=torch.float64)
        return torch.minimum(low + (u * (high - low + 1)).long(), high)

    def fixed_times(self, clip_ids: torch.Tensor, frame: int) -> torch.Tensor:
        """The same start frame for every clip (``stateInit: k``), clamped to [0, T-1]."""
        return torch.clamp(torch.full_like(self.clip_lengths[clip_ids], frame), min=0).minimum(
            self.clip_lengths[clip_ids] - 1)

    def frame_index(self, clip_ids: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Flat row of integer ``frames`` of ``clip_ids`` (frames clamped into the clip)."""
        T = self.clip_lengths[clip_ids]
        frames = torch.minimum(frames.long().clamp_min(0), T - 1)
        return self.clip_starts[clip_ids] + frames

    # ------------------------------------------------------------------ lookup
    def get_frame_at(self, clip_ids: torch.Tensor, frames: torch.Tensor | int) -> ReferenceFrame:
        """Exact recorded frames (integer indices, clamped to [0, T-1]); no interpolation."""
        clip_ids, frames = self._broadcast(clip_ids, frames)
        T = self.clip_lengths[clip_ids]
        frames = torch.minimum(frames.long().clamp_min(0), T - 1)
        idx = self.clip_starts[clip_ids] + frames
        values = {name: getattr(self, name)[idx] for name in _STATE_FIELDS}
        return self._frame(values, self._key_body_pos[idx], self.root_expmap[idx], _RowsOnRead(self, idx),
                           self.contact[idx], self.valid[idx], clip_ids, frames.to(self.dtype))

    def get_frame(self, clip_ids: torch.Tensor, times: torch.Tensor | float) -> ReferenceFrame:
        """Reference at float frame indices, clamped to [0, T-1].

        Between floor and ceil frames: linear for positions, angles (continuous, so this
        is valid) and velocities; slerp for quaternions; ``contact`` is that of the nearest
        frame (ties go to the later frame); ``valid`` requires both frames used to be valid.
        Integer-dtype ``times`` take the exact path of :meth:`get_frame_at`.
        """
        clip_ids, times = self._broadcast(clip_ids, times)
        if not times.is_floating_point():
            return self.get_frame_at(clip_ids, times)
        T = self.clip_lengths[clip_ids]
        t = torch.minimum(times.to(torch.float64).clamp_min(0), (T - 1).to(torch.float64))
        f0 = t.floor().long()
        f1 = torch.minimum(f0 + 1, T - 1)
        w64 = t - f0
        start = self.clip_starts[clip_ids]
        i0, i1 = start + f0, start + f1
        w = w64.to(self.dtype)
        values = {}
        for name in _LINEAR:
            a, b = getattr(self, name)[i0], getattr(self, name)[i1]
            if name in _ANGLES:
                b = a + wrap_angle(b - a)
            values[name] = torch.lerp(a, b, w.reshape(-1, *([1] * (a.dim() - 1))))
        for name in _SLERP:
            a, b = getattr(self, name)[i0], getattr(self, name)[i1]
            values[name] = quat_slerp(a, b, w.reshape(-1, *([1] * (a.dim() - 2))).expand(a.shape[:-1]))
        nearest = torch.where(w64 >= 0.5, i1, i0)
        valid = self.valid[i0] & ((w64 == 0) | self.valid[i1])
        bodies = {name: values.pop(name) for name in _BODY_FIELDS}
        return self._frame(values, bodies["body_pos"][:, self.key_body_ids], quat_to_expmap(values["root_quat"]),
                           bodies, self.contact[nearest], valid, clip_ids, t.to(self.dtype))

    def clip_frames(self, clip_id: int) -> ReferenceFrame:
        """Every frame of one clip, in order."""
        n = int(self.clip_lengths[clip_id])
        ids = torch.full((n,), clip_id, dtype=torch.long, device=self.device)
        return self.get_frame_at(ids, torch.arange(n, device=self.device))

    # ------------------------------------------------------------------ helpers
    def _broadcast(self, clip_ids, times) -> tuple[torch.Tensor, torch.Tensor]:
        clip_ids = torch.as_tensor(clip_ids, device=self.device).long().reshape(-1)
        times = torch.as_tensor(times, device=self.device)
        if times.dim() == 0:
            times = times.expand(clip_ids.shape)
        times = times.reshape(-1)
        if times.shape != clip_ids.shape:
            raise ValueError(f"clip_ids ({clip_ids.shape[0]}) and times ({times.shape[0]}) differ in length")
        # Checked on CPU only: on an accelerator the check would cost a host sync per call
        # (indexing then fails with a device-side assert instead).
        if clip_ids.device.type == "cpu" and clip_ids.numel() and (
                clip_ids.min() < 0 or clip_ids.max() >= self.num_clips):
            raise IndexError(f"clip ids must lie in [0, {self.num_clips}), got "
                             f"[{int(clip_ids.min())}, {int(clip_ids.max())}]")
        return clip_ids, times

    def _frame(self, v: dict, key_body_pos, root_expmap, bodies, contact, valid, clip_ids, times) -> ReferenceFrame:
        state = JointState(**{name: v[name] for name in _STATE_FIELDS})
        return ReferenceFrame(
            state=state, key_body_pos=key_body_pos, root_expmap=root_expmap, contact=contact, valid=valid,
            clip_ids=clip_ids, times=times, labels=self.clip_labels[clip_ids], bodies=bodies)
