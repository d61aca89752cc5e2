"""Per-skill success criteria (SkillMimic-V2 test mode) as vectorised per-env state machines.

Why state machines: the criteria are temporal ("ever reached X in the first 300 steps and
then kept Y", "more than 60 steps with Z"), and evaluation runs thousands of envs with
mixed skills in one batch. :class:`SuccessTracker` keeps the state of every criterion for
every env as a few (N,) tensors, updates them all with one call per step (no Python loop
over envs), and each env reads out the criterion of its own skill at the end.

Criteria (n = 0-based step index of the episode, root_z = root height in m; facts V2 §7):

================ =====================================================================
run (lrun, rrun)  C = root_z > .5 & |ball - root| < 1.5 & |ball_vz| > 1e-5: latched (ever)
                  while n < 100, then C must hold at every later step.
layup, turnlayup  ever (root_z > .5 & ball_z > 1.8) while n < 300, then
                  root_z > .5 & |ball_vz| > 1e-5 at every later step.
shot              ever (root_z > .5 & |ball_z - z_target| < .2) while n < 300, then
                  root_z > .5 at every later step. z_target = the clip's highest ball point.
pickup            more than 60 steps with root_z > .5 & |ball - root| < .5.
getup             more than 60 steps with root_z > .7 & |root_vel| < 1.
run_no_object     more than 80 % of the counted steps (n >= count_from; 150 in skill
                  switch tests) with root_z > .7 & |root_vel| > 1.
================ =====================================================================

Each criterion has a time window: a round shorter than :func:`criterion_steps` (101 for
run, 301 for layup/shot, 61 for pickup/getup) tests only part of it, e.g. a 300-step
layup round only asks whether the ball was once above 1.8 m.

Which criterion applies is keyed by skill label (:data:`DEFAULT_SKILL_CRITERIA`); labels
without one (rebound, catch, pass in BallPlay-M) are reported as undefined, not failed.
An env can also be failed outright (:meth:`SuccessTracker.fail`), e.g. when its physics
went non-finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from ..motion.skills import SKILL_CRITERIA

CRITERIA: tuple[str, ...] = ("run", "layup", "shot", "pickup", "getup", "run_no_object")

#: Skill label -> criterion, from the skill table (skillmimic/motion/skills.py): V2's labels
#: (000 getup, 001 pickup, 009 shot, 010 run without ball, 011/012/013 dribble left/right/forward,
#: 031 layup, 034 turnaround layup), plus BallPlay-M's three shot styles (005-007), which are
#: shots scored like V2's 009.
DEFAULT_SKILL_CRITERIA: dict[int, str] = dict(SKILL_CRITERIA)


@dataclass
class SuccessThresholds:
    """Numbers of the criteria; the defaults are the original's."""

    min_root_z: float = 0.5          # "not fallen"
    upright_root_z: float = 0.7      # getup / run_no_object "standing"
    run_ball_dist: float = 1.5
    run_latch_steps: int = 100
    ball_moving_vz: float = 1e-5
    layup_ball_z: float = 1.8
    shot_tolerance: float = 0.2
    throw_latch_steps: int = 300     # layup / shot
    pickup_ball_dist: float = 0.5
    hold_steps: int = 60             # pickup / getup need MORE than this many steps
    still_root_speed: float = 1.0    # getup
    moving_root_speed: float = 1.0   # run_no_object
    moving_fraction: float = 0.8     # run_no_object
    count_from: int = 0              # run_no_object counts steps n >= count_from


def criterion_steps(name: str, thresholds: SuccessThresholds | None = None) -> int:
    """Steps a round needs for criterion ``name`` to be tested as defined: past the latch
    window of run (100) and layup/shot (300) -- shorter rounds only test "was reached once"
    -- more than ``hold_steps`` (60) for pickup/getup, past ``count_from`` for run_no_object."""
    th = thresholds or SuccessThresholds()
    steps = {"run": th.run_latch_steps + 1, "layup": th.throw_latch_steps + 1, "shot": th.throw_latch_steps + 1,
             "pickup": th.hold_steps + 1, "getup": th.hold_steps + 1, "run_no_object": th.count_from + 1}
    if name not in steps:
        raise ValueError(f"unknown success criterion {name!r}; choose from {CRITERIA}")
    return steps[name]


def criterion_codes(labels: torch.Tensor, skill_criteria: Mapping[int, str] | None = None) -> torch.Tensor:
    """(N,) long index into :data:`CRITERIA` per env label, -1 where the label has none."""
    table = DEFAULT_SKILL_CRITERIA if skill_criteria is None else skill_criteria
    codes = torch.full_like(labels, -1, dtype=torch.long)
    for label, name in table.items():
        if name not in CRITERIA:
            raise ValueError(f"unknown success criterion {name!r} for label {label}; choose from {CRITERIA}")
        codes = torch.where(labels == int(label), CRITERIA.index(name), codes)
    return codes


def criterion_name(label: int, skill_criteria: Mapping[int, str] | None = None) -> str | None:
    table = DEFAULT_SKILL_CRITERIA if skill_criteria is None else skill_criteria
    return table.get(int(label))


class SuccessTracker:
    """Success state of N envs, each scored by the criterion of its skill label.

    ``labels`` are the skill labels the envs are *scored* as (the condition label in a skill
    transition test); ``shot_target_z`` (N,) is needed only for envs scored as shots.
    Call :meth:`update` once per step with the post-step state, then read :attr:`success`.
    """

    def __init__(self, labels: torch.Tensor, shot_target_z: torch.Tensor | None = None,
                 thresholds: SuccessThresholds | None = None, skill_criteria: Mapping[int, str] | None = None):
        self.th = thresholds or SuccessThresholds()
        self.labels = torch.as_tensor(labels).long().reshape(-1)
        dev = self.labels.device
        n = self.labels.shape[0]
        self.codes = criterion_codes(self.labels, skill_criteria)
        if shot_target_z is None:
            shot_target_z = torch.full((n,), float("nan"), device=dev)
        self.shot_target_z = torch.as_tensor(shot_target_z, dtype=torch.float32, device=dev).reshape(-1)
        if self.shot_target_z.shape[0] != n:
            raise ValueError(f"shot_target_z has {self.shot_target_z.shape[0]} entries for {n} envs")
        shot = self.codes == CRITERIA.index("shot")
        if torch.isnan(self.shot_target_z[shot]).any():
            raise ValueError("envs scored as shots need a finite shot_target_z")
        zeros_b = torch.zeros(n, dtype=torch.bool, device=dev)
        zeros_i = torch.zeros(n, dtype=torch.long, device=dev)
        self.run = zeros_b.clone()
        self.layup = zeros_b.clone()
        self.shot = zeros_b.clone()
        self.pickup_steps = zeros_i.clone()
        self.getup_steps = zeros_i.clone()
        self.moving_steps = zeros_i.clone()
        self.counted_steps = zeros_i.clone()
        self.failed = zeros_b.clone()
        self.steps = zeros_i.clone()

    @property
    def num_envs(self) -> int:
        return self.labels.shape[0]

    @property
    def defined(self) -> torch.Tensor:
        """(N,) bool: the env's label has a success criterion."""
        return self.codes >= 0

    def fail(self, mask: torch.Tensor) -> None:
        """Mark envs as failed for the rest of the episode (e.g. non-finite physics)."""
        self.failed |= mask.to(self.failed.device)

    def update(self, step: torch.Tensor | int, root_pos: torch.Tensor, root_lin_vel: torch.Tensor,
               obj_pos: torch.Tensor, obj_lin_vel: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """Advance every criterion by one step. ``step``: 0-based step index (scalar or (N,));
        ``active``: envs to update (others keep their state, e.g. envs already done)."""
        th = self.th
        n_idx = torch.as_tensor(step, device=self.labels.device).long().expand(self.num_envs)
        act = torch.ones_like(self.failed) if active is None else active.to(self.failed.device).bool()
        z = root_pos[:, 2]
        up = z > th.min_root_z
        upright = z > th.upright_root_z
        ball_root = (obj_pos - root_pos).norm(dim=-1)
        ball_moving = obj_lin_vel[:, 2].abs() > th.ball_moving_vz
        speed = root_lin_vel.norm(dim=-1)

        def latch_then_hold(state, hit, keep, latch_steps):
            new = torch.where(n_idx < latch_steps, state | hit, state & keep)
            return torch.where(act, new, state)

        run_ok = up & (ball_root < th.run_ball_dist) & ball_moving
        self.run = latch_then_hold(self.run, run_ok, run_ok, th.run_latch_steps)
        self.layup = latch_then_hold(self.layup, up & (obj_pos[:, 2] > th.layup_ball_z), up & ball_moving,
                                     th.throw_latch_steps)
        near_target = (obj_pos[:, 2] - self.shot_target_z).abs() < th.shot_tolerance
        self.shot = latch_then_hold(self.shot, up & near_target, up, th.throw_latch_steps)

        self.pickup_steps += (act & up & (ball_root < th.pickup_ball_dist)).long()
        self.getup_steps += (act & upright & (speed < th.still_root_speed)).long()
        counted = act & (n_idx >= th.count_from)
        self.counted_steps += counted.long()
        self.moving_steps += (counted & upright & (speed > th.moving_root_speed)).long()
        self.steps += act.long()

    @property
    def per_criterion(self) -> dict[str, torch.Tensor]:
        """Every criterion's verdict for every env (whatever its label), (N,) bool each."""
        th = self.th
        frac = self.moving_steps.float() / self.counted_steps.clamp_min(1).float()
        return {
            "run": self.run, "layup": self.layup, "shot": self.shot,
            "pickup": self.pickup_steps > th.hold_steps,
            "getup": self.getup_steps > th.hold_steps,
            "run_no_object": (self.counted_steps > 0) & (frac > th.moving_fraction),
        }

    @property
    def success(self) -> torch.Tensor:
        """(N,) bool: each env's own criterion (False where undefined or failed)."""
        verdicts = torch.stack([self.per_criterion[c] for c in CRITERIA], -1)
        own = verdicts.gather(-1, self.codes.clamp_min(0)[:, None]).squeeze(-1)
        return own & self.defined & ~self.failed


def success_rate(success: torch.Tensor, defined: torch.Tensor) -> float:
    """Fraction of envs with a defined criterion that succeeded (NaN if none is defined)."""
    d = defined.bool()
    return float(success[d].float().mean()) if d.any() else float("nan")


def rates_by_label(labels: Sequence[int] | torch.Tensor, success: torch.Tensor, defined: torch.Tensor) -> dict[int, float]:
    labels = torch.as_tensor(labels).reshape(-1)
    return {int(lab): success_rate(success[labels == lab], defined[labels == lab]) for lab in labels.unique()}


__all__ = ["CRITERIA", "DEFAULT_SKILL_CRITERIA", "SuccessThresholds", "SuccessTracker", "criterion_codes",
           "criterion_name", "criterion_steps", "success_rate", "rates_by_label"]
