"""Adaptive Trajectory Sampling (ATS): start episodes more often where the policy does badly.

Bookkeeping (facts §4): ``R[m, t0 - 2]`` holds a running score of episodes that started at
frame t0 of clip m, updated at every episode end with that episode's mean reward r:
``R <- (R + r) / 2`` (R starts at 0, so unvisited start frames look hardest and are drawn
first). Every ``interval`` env steps the weights are recomputed:

* clip m:  w_m = (1 - alpha) / M + alpha * softmax_k(-5 c_k)[k(m)] * softmax_{m' in k}(-5 r_m)[m]
  with c_k the mean of r_m over the clips of class k;
* start frame t of clip m: p_m(t) = (1 - alpha) / n_m + alpha * softmax_t(-10 R[m, t]) over
  the clip's n_m valid start frames (2..L-2, not missing).

Both are normalised distributions by construction. Deliberate choices:

* **r_m is history based**: the mean of R[m, t] over the clip's valid start frames
  (unvisited frames count as 0, like in the time level). The released code used the mean
  *current-step* reward of the envs that happen to be on clip m at the update step: a
  one-step sample of a few envs, undefined for clips no env is on.
* The time softmax runs over each clip's own valid frames. The original normalised over
  the longest clip's width (padded columns included) and renormalised implicitly when
  sampling; that only changes how alpha mixes, and mixing exactly as written is clearer.
* Several episodes ending in one step at the same (m, t0) enter as their mean, in one
  update (the original applied them one after another in unspecified order).
"""

from __future__ import annotations

import torch

from ..sampling import categorical


class AdaptiveSampler:
    """ATS weights over the clips and start frames of a motion library (on its device)."""

    def __init__(self, motion, alpha: float = 1.0, time_reweight: bool = True, clip_temperature: float = 5.0,
                 time_temperature: float = 10.0, min_frame: int = 2, end_margin: int = 2):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"ATS alpha must be in [0, 1], got {alpha}")
        self.device = motion.device
        self.alpha = float(alpha)
        self.time_reweight = bool(time_reweight)
        self.clip_temperature = float(clip_temperature)
        self.time_temperature = float(time_temperature)
        self.min_frame = int(min_frame)
        self.labels = motion.clip_labels.clone()
        lengths = motion.clip_lengths
        self.num_clips = int(lengths.shape[0])
        width = max(1, int(lengths.max()) - min_frame - end_margin + 1)
        t = torch.arange(width, device=self.device) + min_frame           # start frame of each column
        rows = motion.clip_starts[:, None] + torch.minimum(t[None], lengths[:, None] - 1)
        self.start_mask = (t[None] <= lengths[:, None] - end_margin) & motion.valid[rows]
        if not self.start_mask.any(1).all():
            bad = (~self.start_mask.any(1)).nonzero().flatten().tolist()
            raise ValueError(f"ATS: clips {bad} have no valid start frame in [{min_frame}, L-{end_margin}]")
        self.scores = torch.zeros(self.num_clips, width, dtype=torch.float64, device=self.device)
        self.visits = torch.zeros(self.num_clips, width, dtype=torch.long, device=self.device)
        base = motion.clip_weights.to(torch.float64)
        self.clip_weights = base / base.sum()
        self.time_weights = self._uniform_time()
        _, self._class_of, counts = torch.unique(self.labels, return_inverse=True, return_counts=True)
        self.num_classes = int(counts.shape[0])
        self.updates = 0

    def _uniform_time(self) -> torch.Tensor:
        m = self.start_mask.to(torch.float64)
        return m / m.sum(1, keepdim=True)

    # ------------------------------------------------------------------ record / update
    def record(self, clip_ids: torch.Tensor, start_frames: torch.Tensor, mean_rewards: torch.Tensor,
               mask: torch.Tensor | None = None) -> None:
        """Episode ends: ``R[m, t0] <- (R[m, t0] + r) / 2`` (duplicates enter as their mean).
        ``mask``: only these rows ended (masked, not indexed: no host sync on an accelerator)."""
        col = start_frames.to(self.device).long() - self.min_frame
        m = clip_ids.to(self.device).long()
        keep = (col >= 0) & (col < self.scores.shape[1])
        if mask is not None:
            keep &= mask.to(self.device)
        flat = torch.where(keep, m * self.scores.shape[1] + col, 0)
        r = torch.where(keep, mean_rewards.to(self.device, torch.float64), 0.0)
        total = torch.zeros(self.scores.numel(), dtype=torch.float64, device=self.device).index_add_(0, flat, r)
        count = torch.zeros(self.scores.numel(), dtype=torch.long, device=self.device).index_add_(
            0, flat, keep.long())
        hit = count > 0
        s = self.scores.view(-1)
        s[:] = torch.where(hit, 0.5 * (s + total / count.clamp_min(1)), s)
        self.visits.view(-1).add_(count)

    def clip_scores(self) -> torch.Tensor:
        """r_m: mean score over each clip's valid start frames."""
        m = self.start_mask.to(torch.float64)
        return (self.scores * m).sum(1) / m.sum(1)

    def update(self) -> None:
        """Recompute clip and start-frame weights from the scores."""
        r = self.clip_scores()
        class_sum = torch.zeros(self.num_classes, dtype=torch.float64, device=self.device).index_add_(0, self._class_of, r)
        class_n = torch.zeros_like(class_sum).index_add_(0, self._class_of, torch.ones_like(r))
        p_class = torch.softmax(-self.clip_temperature * class_sum / class_n, 0)
        # softmax of -5 r_m within each class
        logits = -self.clip_temperature * r
        shift = torch.full_like(class_sum, -torch.inf).scatter_reduce(0, self._class_of, logits, "amax")
        e = torch.exp(logits - shift[self._class_of])
        within = e / torch.zeros_like(class_sum).index_add_(0, self._class_of, e)[self._class_of]
        a = self.alpha
        self.clip_weights = (1 - a) / self.num_clips + a * p_class[self._class_of] * within
        if self.time_reweight:
            logits = torch.where(self.start_mask, -self.time_temperature * self.scores,
                                 torch.full_like(self.scores, -torch.inf))
            n_valid = self.start_mask.sum(1, keepdim=True).to(torch.float64)
            uniform = self.start_mask.to(torch.float64) / n_valid
            self.time_weights = (1 - a) * uniform + a * torch.softmax(logits, 1)
        self.updates += 1

    # ------------------------------------------------------------------ sample
    def sample(self, n: int, generator: torch.Generator | None = None,
               sync_free: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` (clip, start frame) pairs drawn from the current weights.

        ``sync_free``: draw by inverse CDF (:func:`skillmimic.sampling.categorical`) instead
        of ``torch.multinomial``, which reads its input on the host when it draws one frame
        per clip (a sync per reset on CUDA). Same distribution, other numbers for a seed."""
        if n == 0:
            empty = torch.zeros(0, dtype=torch.long, device=self.device)
            return empty, empty.clone()
        if sync_free:
            clips = categorical(self.clip_weights.expand(n, -1), generator)
            cols = categorical(self.time_weights[clips], generator)
        else:
            clips = torch.multinomial(self.clip_weights, n, replacement=True, generator=generator)
            cols = torch.multinomial(self.time_weights[clips], 1, generator=generator).squeeze(1)
        return clips, cols + self.min_frame

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"scores": self.scores.cpu(), "visits": self.visits.cpu(), "clip_weights": self.clip_weights.cpu(),
                "time_weights": self.time_weights.cpu(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["scores"].shape) != tuple(self.scores.shape):
            raise ValueError(f"ATS state for {tuple(state['scores'].shape)} scores, this library has "
                             f"{tuple(self.scores.shape)}")
        for name in ("scores", "visits", "clip_weights", "time_weights"):
            setattr(self, name, state[name].to(self.device))
        self.updates = int(state["updates"])
