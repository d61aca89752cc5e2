"""History encoder: a small 1-D conv net that summarises the last H frames as a 3-d embedding.

    python -m skillmimic.augment.history pretrain MOTION_DIR --out ckpt.pt --epochs N

Why: with sparse demonstrations one observation frame cannot tell which phase of a skill
(or which skill transition) the humanoid is in; a short learned summary of the recent past
can. The encoder is pre-trained offline to predict the next frame's features from
[embedding | current features | skill one-hot] (facts §5), then frozen; the env appends its
embedding of a FIFO buffer of the last H simulated frames to the observation.

Per-frame feature (316): root height | 52 non-root body positions relative to the root in
the heading frame | 52 joint rotations as exp-maps (converted from our hinge angles) |
object position in the heading frame (xy relative to the root, z absolute). The heading is
that of the TRUE root quaternion everywhere -- offline, at reset and at run time. (The
original passed the root exp-map as if it were a quaternion for its offline and reset
features, so the history the encoder was trained on did not match the one it saw.)

Conventions, identical in pretraining and in the env: the history of frame i is frames
[i-H, i) (the current frame is not part of it), features are normalised with the training
set's mean/std (stored in the checkpoint), and frames before a clip's start are zeros in
normalised space. Losses: MSE on the 313 humanoid dims, plus MSE on the 3 object dims for
skills other than getup/run-without-ball (labels 0 and 10), whose object dims are replaced by
U(-5, 5) at every fetch (their object is irrelevant; facts §5, R variant).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..observations import NUM_SKILLS, heading_rotation_inv, local_object_pos, local_body_pos
from ..assets.skeleton import SKELETON_BALLPLAY, Skeleton
from ..rotations import hinge_to_expmap
from ..safe_load import atomic_save, load_torch_file
from .similarity import LOCOMOTION_LABELS

FORMAT = "skillmimic-history-encoder"
VERSION = 1
FEATURE_DIM = 316
OBJECT_DIMS = slice(313, 316)
MIN_STD = 1e-2          # features that barely vary (finger joints) are not blown up to unit scale


# --------------------------------------------------------------------------- features
def history_features(body_pos: torch.Tensor, root_quat: torch.Tensor, dof_pos: torch.Tensor,
                     obj_pos: torch.Tensor, skeleton: Skeleton = SKELETON_BALLPLAY) -> torch.Tensor:
    """(N, 316) per-frame features from bodies (N, 53, 3), root quaternion (wxyz), hinge
    angles (N, 156, in ``skeleton``'s hinge orders) and object position (N, 3). The joints
    enter as exp-maps, so the features do not depend on the hinge orders."""
    n = body_pos.shape[0]
    inv = heading_rotation_inv(root_quat)
    root = body_pos[:, 0]
    local = local_body_pos(inv, body_pos)
    obj = local_object_pos(inv, obj_pos, root)
    expmap = hinge_to_expmap(dof_pos.reshape(n, -1, 3), skeleton.hinge_orders).reshape(n, -1)
    return torch.cat([root[:, 2:3], local.reshape(n, -1), expmap, obj], -1)


def library_history_features(motion, chunk: int = 8192) -> torch.Tensor:
    """(num_frames, 316) features of every library frame."""
    out = []
    for s in range(0, motion.num_frames, chunk):
        sl = slice(s, s + chunk)
        out.append(history_features(motion.body_pos[sl], motion.root_quat[sl], motion.dof_pos[sl], motion.obj_pos[sl],
                                    motion.skeleton))
    return torch.cat(out).to(torch.float32)


# --------------------------------------------------------------------------- networks
@dataclass
class EncoderConfig:
    feature_dim: int = FEATURE_DIM
    history_length: int = 60
    embedding_dim: int = 3
    channels: list[int] = field(default_factory=lambda: [128, 64, 32])
    kernel_size: int = 3
    num_skills: int = NUM_SKILLS
    head_units: list[int] = field(default_factory=lambda: [512, 256])


class HistoryEncoder(nn.Module):
    """(B, H, F) history -> (B, E): Conv1d stack over time (ReLU), flatten, linear."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        layers, c_in = [], cfg.feature_dim
        for c in cfg.channels:
            layers += [nn.Conv1d(c_in, c, cfg.kernel_size, padding=cfg.kernel_size // 2), nn.ReLU()]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(c_in * cfg.history_length, cfg.embedding_dim)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        return self.out(self.convs(history.transpose(1, 2)).flatten(1))


class StatePredictor(nn.Module):
    """Pretraining model: next-frame features from [embedding | current | skill one-hot]."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = HistoryEncoder(cfg)
        layers, d = [], cfg.embedding_dim + cfg.feature_dim + cfg.num_skills
        for u in cfg.head_units:
            layers += [nn.Linear(d, u), nn.ReLU()]
            d = u
        layers.append(nn.Linear(d, cfg.feature_dim))
        self.head = nn.Sequential(*layers)

    def forward(self, history, current, labels):
        onehot = nn.functional.one_hot(labels, self.cfg.num_skills).to(current.dtype)
        return self.head(torch.cat([self.encoder(history), current, onehot], -1))


# --------------------------------------------------------------------------- data
class HistoryData:
    """Training samples of a motion library, gathered per batch (memory O(batch), not O(data)).

    Sample i: history = frames [i-H, i) of its clip, current = i, target = i+1, for every
    frame with a successor; pairs touching a missing frame are left out."""

    def __init__(self, motion, history_length: int, mean=None, std=None):
        self.raw = library_history_features(motion)
        dev = self.raw.device
        clip_of = torch.repeat_interleave(torch.arange(motion.num_clips, device=dev), motion.clip_lengths)
        self.start = motion.clip_starts[clip_of]
        self.labels = motion.clip_labels[clip_of]
        end = self.start + motion.clip_lengths[clip_of] - 1
        idx = torch.arange(motion.num_frames, device=dev)
        ok = (idx < end) & motion.valid & motion.valid[torch.minimum(idx + 1, end)]
        self.samples = ok.nonzero().flatten()
        valid_rows = self.raw[motion.valid]
        self.mean = valid_rows.mean(0) if mean is None else mean.to(dev)
        self.std = valid_rows.std(0).clamp_min(MIN_STD) if std is None else std.to(dev)
        self.H = history_length
        self.loco = torch.isin(self.labels, torch.tensor(LOCOMOTION_LABELS, device=dev))

    def __len__(self) -> int:
        return self.samples.shape[0]

    def batch(self, rows: torch.Tensor, generator=None):
        """(history (B, H, F), current (B, F), target (B, F), labels (B,), obj_loss_mask (B,))."""
        i = self.samples[rows]
        hist_idx = i[:, None] - self.H + torch.arange(self.H, device=i.device)[None]
        pad = hist_idx < self.start[i, None]
        raw_h = self.raw[hist_idx.clamp_min(0)]
        cur, tgt = self.raw[i].clone(), self.raw[i + 1].clone()
        loco = self.loco[i]
        if loco.any():
            def rnd(shape):
                return torch.rand(shape, generator=generator, device=i.device) * 10 - 5
            raw_h[loco, :, OBJECT_DIMS] = rnd((int(loco.sum()), self.H, 3))
            cur[loco, OBJECT_DIMS] = rnd((int(loco.sum()), 3))
            tgt[loco, OBJECT_DIMS] = rnd((int(loco.sum()), 3))
        hist = ((raw_h - self.mean) / self.std).masked_fill(pad[..., None], 0.0)
        return hist, (cur - self.mean) / self.std, (tgt - self.mean) / self.std, self.labels[i], ~loco


def prediction_loss(pred, target, obj_mask) -> torch.Tensor:
    body = (pred[:, :OBJECT_DIMS.start] - target[:, :OBJECT_DIMS.start]).pow(2).mean()
    obj = ((pred[:, OBJECT_DIMS] - target[:, OBJECT_DIMS]).pow(2).mean(-1) * obj_mask).sum() / obj_mask.sum().clamp_min(1)
    return body + obj


@dataclass(frozen=True)
class PretrainConfig:
    """Pretraining settings (the original's: Adam lr 1e-3, ReduceLROnPlateau patience 5, batch
    128, 1000 epochs). ``min_lr`` adds a convergence stop the original lacks: once the plateau
    schedule has cut the learning rate below it (three cuts of x0.1 from 1e-3: the loss stopped
    improving three times in a row), further epochs change little. 0 runs every epoch."""

    epochs: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 5
    min_lr: float = 1e-6
    seed: int = 0


def pretrain(motion, settings: PretrainConfig | None = None, cfg: EncoderConfig | None = None,
             device: str | torch.device = "cpu", log=print) -> dict:
    """Train encoder + head on ``motion``; returns the checkpoint dict (see :func:`save_checkpoint`).
    Raises ValueError if the loss goes non-finite (nothing worth keeping or caching)."""
    settings = settings or PretrainConfig()
    epochs, batch_size, lr, patience, seed = (settings.epochs, settings.batch_size, settings.lr, settings.patience,
                                              settings.seed)
    cfg = cfg or EncoderConfig()
    torch.manual_seed(seed)
    device = torch.device(device)
    data = HistoryData(motion, cfg.history_length)
    data.raw, data.samples, data.start, data.labels, data.loco, data.mean, data.std = (
        t.to(device) for t in (data.raw, data.samples, data.start, data.labels, data.loco, data.mean, data.std))
    model = StatePredictor(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=patience)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    losses = []
    n = len(data)
    if n == 0:
        raise ValueError("no training samples (every clip is shorter than 2 frames?)")
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen, device=device)
        total = torch.zeros((), device=device)
        for s in range(0, n, batch_size):
            hist, cur, tgt, labels, obj_mask = data.batch(perm[s:s + batch_size], gen)
            loss = prediction_loss(model(hist, cur, labels), tgt, obj_mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * hist.shape[0]
        losses.append(float(total) / n)
        if not math.isfinite(losses[-1]):
            raise ValueError(f"history-encoder pretraining diverged: loss {losses[-1]} at epoch {epoch + 1}")
        sched.step(losses[-1])
        converged = opt.param_groups[0]["lr"] < settings.min_lr
        if log and (epoch < 3 or epoch == epochs - 1 or converged or (epoch + 1) % max(1, epochs // 20) == 0):
            # "step", not "epoch": passes of the encoder's own pretraining, not PPO epochs
            log(f"[v2] history encoder pretraining: step {epoch + 1}/{epochs}: loss {losses[-1]:.5f} "
                f"lr {opt.param_groups[0]['lr']:.2e} ({time.perf_counter() - t0:.1f} s)" + (" converged (lr below min_lr): stop" if converged else ""))
        if converged:
            break
    return {
        "format": FORMAT, "version": VERSION, "config": asdict(cfg),
        "encoder": {k: v.cpu() for k, v in model.encoder.state_dict().items()},
        "head": {k: v.cpu() for k, v in model.head.state_dict().items()},
        "feature_mean": data.mean.cpu(), "feature_std": data.std.cpu(),
        "train": {"epochs": epochs, "epochs_run": len(losses), "losses": losses, "lr": lr, "batch_size": batch_size,
                  "patience": patience, "min_lr": settings.min_lr, "seed": seed, "samples": n,
                  "clips": [str(f) for f in motion.files], "seconds": time.perf_counter() - t0},
    }


def save_checkpoint(ckpt: dict, path: str | Path) -> Path:
    """Tensors, numbers, strings and lists only: loads with ``weights_only=True``. Atomic, with
    a uniquely named temporary file, so a reader (or a concurrent writer of the same cache
    entry) never sees a partial file."""
    return atomic_save(ckpt, path, unique_tmp=True)


# --------------------------------------------------------------------------- frozen use
class HistoryCheckpointError(ValueError):
    """A history-encoder checkpoint cannot be used; the message names the file and why."""


class FrozenHistoryEncoder(nn.Module):
    """Pretrained encoder, frozen, with its feature normalisation."""

    def __init__(self, ckpt: dict):
        super().__init__()
        if ckpt.get("format") != FORMAT:
            raise ValueError(f"not a history-encoder checkpoint (format={ckpt.get('format')!r})")
        self.cfg = EncoderConfig(**ckpt["config"])
        self.encoder = HistoryEncoder(self.cfg)
        self.encoder.load_state_dict(ckpt["encoder"])
        self.register_buffer("mean", ckpt["feature_mean"].float())
        self.register_buffer("std", ckpt["feature_std"].float())
        self.eval()
        self.requires_grad_(False)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "FrozenHistoryEncoder":
        """Load a :func:`save_checkpoint` file (``weights_only=True``: no code from it runs), or
        raise :class:`HistoryCheckpointError` naming the file."""
        what = "history encoder checkpoint"
        ckpt = load_torch_file(path, what, HistoryCheckpointError)
        if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
            got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
            raise HistoryCheckpointError(f"{what} {path}: not a history-encoder checkpoint (format {got!r}, "
                                         f"expected {FORMAT!r}); make one with python -m skillmimic.augment.history "
                                         f"pretrain MOTION_DIR --out X.pt")
        try:
            return cls(ckpt).to(device)
        except (KeyError, TypeError, RuntimeError) as e:
            raise HistoryCheckpointError(f"{what} {path}: does not fit the encoder ({type(e).__name__}: {e})") from None

    def train(self, mode: bool = True):   # stays in eval mode: it is frozen
        return super().train(False)

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.mean) / self.std

    @torch.no_grad()
    def forward(self, history: torch.Tensor) -> torch.Tensor:
        return self.encoder(history)


class HistoryBuffer:
    """Per-env FIFO of the last H (normalised) frame features, and its embedding.

    ``fill`` at reset puts reference frames [t0-H, t0) of the env's clip in (zeros before
    the clip start); ``push`` appends one frame per env after each control step.

    Why the embedding streams: the encoder's convolutions ("same" padding, stride 1) would
    otherwise run over all H frames of every env each step although one frame entered the
    window. After a single ``push``, each layer's outputs are the previous ones shifted by one
    frame, except for the few columns next to the window's ends (the new frame, and the
    zero padding that now borders another frame): only those are recomputed (15 of 3 x 60
    for the default encoder), and rows refilled by ``fill`` are recomputed whole. Anything
    else (``fill_where``, several pushes, a replaced ``buf``) recomputes everything. The
    result equals the full encoder's to float rounding (tests/test_v2_history.py)."""

    def __init__(self, encoder: FrozenHistoryEncoder, num_envs: int, device):
        self.encoder = encoder.to(device)
        self.H = encoder.cfg.history_length
        self.buf = torch.zeros(num_envs, self.H, encoder.cfg.feature_dim, device=device)
        self._layers = _streamable_layers(self.encoder.encoder, self.H)
        self._acts: list[torch.Tensor] | None = None   # each conv layer's outputs for ``_acts_of``
        self._acts_of: torch.Tensor | None = None       # the buffer tensor they were computed for
        self._pushed_to: torch.Tensor | None = None     # the buffer tensor the last push made
        self._pushes = 0
        self._dirty: list[torch.Tensor] = []

    @property
    def embedding_dim(self) -> int:
        return self.encoder.cfg.embedding_dim

    def fill(self, env_ids: torch.Tensor, clip_starts: torch.Tensor, frames: torch.Tensor,
             library_features: torch.Tensor) -> None:
        """``library_features``: normalised (num_frames, F); ``clip_starts`` flat row of frame 0."""
        self.buf[env_ids] = self._reference_history(clip_starts, frames, library_features)
        self._dirty.append(torch.as_tensor(env_ids, device=self.buf.device).reshape(-1))

    def fill_where(self, mask: torch.Tensor, clip_starts: torch.Tensor, frames: torch.Tensor,
                   library_features: torch.Tensor) -> None:
        """:meth:`fill` of the envs where ``mask`` is set (one row of ``clip_starts`` and
        ``frames`` per env), by a masked select: no host sync."""
        hist = self._reference_history(clip_starts, frames, library_features)
        self.buf = torch.where(mask.to(self.buf.device)[:, None, None], hist, self.buf)
        self._acts = None                  # rows unknown without a sync: the next embed redoes all

    def _reference_history(self, clip_starts, frames, library_features) -> torch.Tensor:
        t = frames[:, None] - self.H + torch.arange(self.H, device=frames.device)[None]
        rows = clip_starts[:, None] + t.clamp_min(0)
        return library_features[rows].masked_fill((t < 0)[..., None], 0.0).to(self.buf.device)

    def push(self, raw_features: torch.Tensor) -> None:
        if self.buf is not (self._acts_of if self._pushes == 0 else self._pushed_to):
            self._acts = None                  # the buffer was replaced from outside
        self.buf = torch.cat([self.buf[:, 1:], self.encoder.normalize(raw_features)[:, None]], 1)
        self._pushed_to = self.buf
        self._pushes += 1

    @torch.no_grad()
    def embed(self) -> torch.Tensor:
        if self._layers is None:
            return self.encoder(self.buf)
        acts = self._acts
        current = self._acts_of if self._pushes == 0 else self._pushed_to
        if acts is None or self._pushes > 1 or self.buf is not current:
            acts = _conv_outputs(self._layers, self.buf)
        else:
            if self._pushes == 1:
                acts = _shifted_conv_outputs(self._layers, self.buf, acts)
            if self._dirty:
                rows = torch.cat(self._dirty)
                for a, full in zip(acts, _conv_outputs(self._layers, self.buf[rows])):
                    a[rows] = full
        self._acts, self._acts_of, self._pushes, self._dirty = acts, self.buf, 0, []
        return self.encoder.encoder.out(acts[-1].flatten(1))


def _streamable_layers(encoder: HistoryEncoder, H: int):
    """(conv, activation) pairs of the encoder when every conv is "same"-padded, stride 1,
    odd kernel, and the window is wide enough to keep an unchanged middle; else None."""
    mods = list(encoder.convs)
    pairs = list(zip(mods[0::2], mods[1::2]))
    if len(mods) % 2 or not all(isinstance(c, nn.Conv1d) for c, _ in pairs):
        return None
    edge = 1
    for conv, _ in pairs:
        k, p = conv.kernel_size[0], conv.padding[0] if isinstance(conv.padding, tuple) else None
        if k % 2 == 0 or p != k // 2 or conv.stride[0] != 1 or conv.dilation[0] != 1 or conv.groups != 1:
            return None
        edge += 2 * p
    return pairs if edge < H else None


def _conv_outputs(layers, history: torch.Tensor) -> list[torch.Tensor]:
    """Every conv layer's activated outputs (N, C, H) for ``history`` (N, H, F)."""
    x, out = history.transpose(1, 2), []
    for conv, act in layers:
        x = act(conv(x))
        out.append(x)
    return out


def _conv_columns(conv: nn.Conv1d, act, x: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """Output columns [a, b) of ``act(conv(x))`` with the conv's zero padding."""
    p, H = conv.padding[0], x.shape[-1]
    lo, hi = a - p, b + p
    xs = torch.nn.functional.pad(x[..., max(lo, 0):min(hi, H)], (max(0, -lo), max(0, hi - H)))
    # as one matrix product over the few windows: a convolution library's set-up for such a
    # narrow input costs more than the arithmetic
    windows = xs.unfold(-1, conv.kernel_size[0], 1).transpose(1, 2).flatten(2)      # (N, b - a, C_in * k)
    y = windows @ conv.weight.flatten(1).T
    if conv.bias is not None:
        y = y + conv.bias
    return act(y.transpose(1, 2))


def _shifted_conv_outputs(layers, history: torch.Tensor, previous: list[torch.Tensor]) -> list[torch.Tensor]:
    """The layers' outputs after one push, from ``previous`` (those before it): shifted by one
    column, with the columns whose inputs changed recomputed. Layer 1's input changed in its
    last column (the new frame) and, by the shift, next to its left padding; each layer
    widens the changed band by its padding on both sides."""
    x, out = history.transpose(1, 2), []
    H = x.shape[-1]
    left, right = 0, 1
    for (conv, act), old in zip(layers, previous):
        p = conv.padding[0]
        left, right = left + p, right + p
        y = torch.empty_like(old)
        y[..., :H - 1] = old[..., 1:]
        y[..., :left] = _conv_columns(conv, act, x, 0, left)
        y[..., H - right:] = _conv_columns(conv, act, x, H - right, H)
        out.append(y)
        x = y
    return out


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skillmimic.augment.history", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain", help="pretrain the encoder by next-frame prediction on a motion folder")
    p.add_argument("motion_dir", type=Path)
    p.add_argument("--out", type=Path, required=True)
    d = PretrainConfig()
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--min-lr", type=float, default=d.min_lr, help="stop once the plateau schedule cut lr below this")
    p.add_argument("--history-length", type=int, default=60)
    p.add_argument("--embedding-size", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=d.seed)
    args = parser.parse_args(argv)

    from ..motion import MotionFileError, MotionLibrary

    try:
        motion = MotionLibrary(args.motion_dir, device=args.device)
    except MotionFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = EncoderConfig(history_length=args.history_length, embedding_dim=args.embedding_size)
    print(f"{motion}; {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, device {args.device}")
    settings = PretrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=d.patience,
                              min_lr=args.min_lr, seed=args.seed)
    try:
        ckpt = pretrain(motion, settings, cfg, device=args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ckpt["train"]["motion_dir"] = str(args.motion_dir)
    path = save_checkpoint(ckpt, args.out)
    losses = ckpt["train"]["losses"]
    print(f"loss {losses[0]:.5f} -> {losses[-1]:.5f} over {len(losses)} epochs "
          f"({ckpt['train']['seconds']:.1f} s); saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
