"""Deterministic test-mode evaluation of a skill policy: per-skill success, tracking errors,
contact accuracy and NAR; skill-transition, robustness, random-pick and get-up scenarios.

Test mode (SkillMimic-V2's, facts §7): early termination is off and each round runs
``episode_length`` steps (600), past the clip's end -- the reference then holds its last
frame. The success criteria (:mod:`.success`) are updated every step; the tracking metrics
(:mod:`.metrics`) and NAR are averaged over the steps that still have a reference frame
(within the clip), since a comparison with a held or zero-padded frame measures nothing.

Where this differs from the original, and why:

* Episodes differ. The original started every episode at frame 2 of a clip; with a
  deterministic policy and deterministic physics, a skill with one clip was one episode
  repeated rounds x envs times. Here the episodes of a clip start at frames spread over
  its first ``start_spread`` (:func:`spread_start_frames`; the first at ``start_frame``),
  optionally with seeded start noise (``jitter``), and planned episodes that are identical
  (same clip and start frame, nothing random) are run once and counted once.
* Criteria are only scored when the round covers their time window
  (:func:`~.success.criterion_steps`): a 300-step round cannot tell a layup that holds
  from one that only got the ball up once. ``short_rounds`` omits, flags or refuses.

Scenarios:

* ``skill``: start in skill L's clips, conditioned on L, scored by L's criterion.
* ``transition`` A->B: start in A's clips, condition fixed to B, scored by B's criterion
  (run_no_object counts only steps >= ``switch_count_from``); tracking metrics are not
  reported (the reference is A's motion).
* ``perturbed``: the start state gets uniform noise on hinge angles, root velocities and
  object position.
* ``push``: every ``push.interval`` steps the root gets a horizontal velocity kick of
  ``push.speed`` m/s in a random direction (backend-independent: a state write, no force
  API needed).
* ``random_pick`` (V2's ``--test_random_pick``): pickup skills start with the ball placed
  0.5-3 m away at 0.1-1.1 m height with a small random velocity.
* ``getup`` (V2's unstable-start test): random hinge angles U(0, 1) rad and root
  velocities, the root lifted clear of the floor, conditioned and scored as getup (000).

:func:`evaluate` takes any :class:`~envs.skill.SkillEnv` and any ``policy(obs) -> action``
callable, so it works with a checkpoint (:func:`skillmimic.eval.policy.load_policy`), a
scripted controller, or a test double.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional

import torch

from ..motion.skills import check_label, label_of
from ..sampling import symmetric_uniform, uniform
from .metrics import nar_over_rounds, tracking_metrics
from .success import (
    CRITERIA, DEFAULT_SKILL_CRITERIA, SuccessThresholds, SuccessTracker, criterion_name, criterion_steps,
)

Policy = Callable[[torch.Tensor], torch.Tensor]
_METRICS = ("e_b_mm", "e_o_mm", "e_cg", "contact_correct", "acc")


@dataclass
class Perturbation:
    """Uniform noise U(-w, w) added to the start state (0 turns a term off)."""

    dof_pos: float = 0.1           # rad, every hinge
    root_lin_vel: float = 0.5      # m/s, per axis
    root_ang_vel: float = 0.5      # rad/s, per axis
    obj_pos: float = 0.05         # m, per axis

    @property
    def active(self) -> bool:
        return any(w > 0 for w in (self.dof_pos, self.root_lin_vel, self.root_ang_vel, self.obj_pos))


def _no_jitter() -> Perturbation:
    return Perturbation(dof_pos=0.0, root_lin_vel=0.0, root_ang_vel=0.0, obj_pos=0.0)


@dataclass
class Push:
    """Horizontal velocity kicks of the root during the episode."""

    interval: int = 120            # steps between kicks; 0: none
    speed: float = 1.0             # m/s


@dataclass
class RandomPick:
    """SkillMimic-V2's ``--test_random_pick`` (facts V2 §7): the ball starts at a random
    horizontal distance and height from the humanoid with a small random velocity."""

    radius_min: float = 0.5        # m, horizontal distance from the root, U(min, max), random direction
    radius_max: float = 3.0
    height_min: float = 0.1        # m, ball centre height, U(min, max)
    height_max: float = 1.1
    speed: float = 0.5             # m/s, ball velocity U(-speed, speed) per axis


@dataclass
class UnstableStart:
    """SkillMimic-V2's get-up test from an "unstable initial pose" (facts V2 §7): every hinge
    angle U(0, dof_max) rad and random root velocities; scored by the getup criterion."""

    dof_max: float = 1.0           # rad: every hinge U(0, dof_max), the original's U(0, 1)
    root_lin_vel: float = 1.0      # m/s, U(-w, w) per axis (amplitude not in the facts: our choice)
    root_ang_vel: float = 1.0      # rad/s, U(-w, w) per axis (idem)
    clearance: float = 0.05        # m: the root is lifted until the lowest body centre is this high
    label: int = label_of("getup") # condition and score label (000 getup)


#: Extra scenarios ``eval.scenarios`` can ask for.
EXTRA_SCENARIOS: tuple[str, ...] = ("random_pick", "getup")
#: What ``eval.short_rounds`` does with a criterion the round is too short to test.
SHORT_ROUNDS: tuple[str, ...] = ("omit", "flag", "error")


@dataclass
class EvalSettings:
    """Everything :func:`evaluate` does, with every default; ``cfg/eval.yaml``'s ``eval.*`` overrides it."""

    rounds: int = 10
    episode_length: int = 600
    start_frame: int = 2
    start_spread: float = 0.25                   # episodes of a clip start spread over this fraction of it
    jitter: Perturbation = field(default_factory=_no_jitter)   # seeded noise on every skill episode's start
    skills: Optional[List[int]] = None           # labels to test; None: every label in the motion library
    transitions: List[str] = field(default_factory=list)   # "A->B" or "A:B", e.g. "11->13"
    switch_count_from: int = 150                 # run_no_object in transitions: count steps from here
    robustness: bool = False
    robustness_rounds: int = 3
    perturb: Perturbation = field(default_factory=Perturbation)
    push: Push = field(default_factory=Push)
    scenarios: List[str] = field(default_factory=list)     # extra scenarios from EXTRA_SCENARIOS
    random_pick: RandomPick = field(default_factory=RandomPick)
    unstable_start: UnstableStart = field(default_factory=UnstableStart)
    short_rounds: str = "omit"                   # criterion not covered by the round: omit | flag | error
    nar_skip_first_round: bool = False           # drop batch 0 from NAR (the original's rounds 1..9 figure)
    thresholds: SuccessThresholds = field(default_factory=SuccessThresholds)
    criteria: List[str] = field(default_factory=list)   # extra "label:criterion" entries, e.g. "2:pickup"
    seed: int = 0
    progress: bool = True

    def skill_criteria(self) -> dict[int, str]:
        """The default label -> criterion table with the ``criteria`` entries applied."""
        table = dict(DEFAULT_SKILL_CRITERIA)
        for entry in self.criteria:
            label, sep, name = str(entry).replace(" ", "").partition(":")
            if not sep or not label.isdigit() or name not in CRITERIA:
                raise ValueError(f"criteria entry {entry!r} must look like 'label:criterion' with a criterion "
                                 f"from {CRITERIA}, e.g. '2:pickup'")
            table[check_label(label, f"eval.criteria entry {entry!r}: label")] = name
        return table

    def parsed_transitions(self) -> list[tuple[int, int]]:
        out = []
        for t in self.transitions:
            # "A:B" is accepted too: hydra's override grammar takes it unquoted, "A->B" needs quotes
            parts = str(t).replace(" ", "").replace("->", ":").split(":")
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise ValueError(f"transition {t!r} must look like 'A->B' or 'A:B' with skill labels, e.g. '11->13'")
            out.append(tuple(check_label(p, f"eval.transitions entry {t!r}: label") for p in parts))
        return out

    def check(self) -> None:
        """Fail on values that cannot work, before anything runs."""
        if self.rounds < 1 or self.episode_length < 1:
            raise ValueError(f"rounds and episode_length must be >= 1, got {self.rounds} and {self.episode_length}")
        if not 0.0 <= self.start_spread <= 1.0:
            raise ValueError(f"eval.start_spread must be a fraction in [0, 1], got {self.start_spread}")
        bad = [x for x in self.scenarios if x not in EXTRA_SCENARIOS]
        if bad:
            raise ValueError(f"eval.scenarios: unknown {bad}; choose from {list(EXTRA_SCENARIOS)}")
        for i, x in enumerate(self.skills or []):
            check_label(x, f"eval.skills[{i}]")
        check_label(self.unstable_start.label, "eval.unstable_start.label")
        if self.short_rounds not in SHORT_ROUNDS:
            raise ValueError(f"eval.short_rounds must be one of {SHORT_ROUNDS}, got {self.short_rounds!r}")
        rp = self.random_pick
        if not (0 <= rp.radius_min <= rp.radius_max and 0 <= rp.height_min <= rp.height_max):
            raise ValueError(f"eval.random_pick: need 0 <= radius_min <= radius_max and 0 <= height_min <= "
                             f"height_max, got {rp}")
        self.skill_criteria()
        self.parsed_transitions()


@dataclass
class ScenarioResult:
    """One scenario over all its episodes; rates in [0, 1], errors in mm, NaN where undefined."""

    scenario: str                  # skill | transition | perturbed | push | random_pick | getup
    start_label: int
    score_label: int
    skill: str                     # skill name of the start clips
    criterion: Optional[str]
    rounds: int                    # batches of num_envs episodes that were run
    episodes: int                  # distinct episodes run and scored
    success_rate: float
    success_per_round: List[float]
    duplicates: int = 0            # planned episodes identical to one already run (skipped, not counted)
    criterion_covered: bool = True  # the round is long enough for the criterion's time window
    criterion_steps: int = 0       # steps the criterion needs (its window); 0 without a criterion
    e_b_mm: float = math.nan
    e_o_mm: float = math.nan
    e_cg: float = math.nan
    contact_accuracy: float = math.nan
    acc: float = math.nan
    nar: float = math.nan
    nar_per_round: List[float] = field(default_factory=list)
    frames: int = 0                # env-steps that entered the tracking metrics
    nonfinite: int = 0             # episodes whose physics went non-finite (counted as failures)

    @property
    def name(self) -> str:
        if self.scenario == "transition":
            return f"{self.start_label:03d}->{self.score_label:03d}"
        return f"{self.score_label:03d} {self.skill}" + ("" if self.scenario == "skill" else f" [{self.scenario}]")


@dataclass
class EvalReport:
    results: List[ScenarioResult]
    meta: dict

    def of(self, scenario: str) -> list[ScenarioResult]:
        return [r for r in self.results if r.scenario == scenario]

    def summary(self) -> dict:
        skills = [r for r in self.of("skill") if not math.isnan(r.success_rate) and r.criterion_covered]
        def mean(key, rows):
            vals = [getattr(r, key) for r in rows if not math.isnan(getattr(r, key))]
            return sum(vals) / len(vals) if vals else math.nan
        rows = self.of("skill")
        return {"mean_success_rate": mean("success_rate", skills), "mean_e_b_mm": mean("e_b_mm", rows),
                "mean_e_o_mm": mean("e_o_mm", rows), "mean_contact_accuracy": mean("contact_accuracy", rows),
                "mean_acc": mean("acc", rows), "mean_nar": mean("nar", rows)}

    def to_dict(self) -> dict:
        def clean(x):
            if isinstance(x, float) and math.isnan(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x
        return clean({"meta": self.meta, "summary": self.summary(),
                      "results": [{"name": r.name, **asdict(r)} for r in self.results]})

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def notes(self) -> list[str]:
        """One line per criterion the rounds were too short to test (and what was done)."""
        out = {}
        for r in self.results:
            if r.criterion is not None and not r.criterion_covered:
                what = ("success not scored" if math.isnan(r.success_rate) else
                        "success marked * only means the first phase was reached")
                out.setdefault(r.criterion, f"{r.criterion}: rounds of {self.meta.get('episode_length', '?')} steps do "
                                            f"not cover its window (needs >= {r.criterion_steps} steps): {what}; "
                                            f"set eval.episode_length>={r.criterion_steps}")
        return list(out.values())

    def table(self) -> str:
        """Fixed-width console table, one row per scenario."""
        head = ("scenario", "criterion", "succ %", "E_b mm", "E_o mm", "contact %", "E_cg", "Acc %", "NAR",
                "episodes")
        rows = []
        pct = lambda v: "-" if math.isnan(v) else f"{100 * v:.1f}"
        num = lambda v, f="{:.1f}": "-" if math.isnan(v) else f.format(v)
        for r in self.results:
            succ = pct(r.success_rate)
            if r.criterion is not None and not r.criterion_covered:
                succ = "short" if math.isnan(r.success_rate) else succ + "*"
            rows.append((r.name, r.criterion or "-", succ, num(r.e_b_mm), num(r.e_o_mm),
                         pct(r.contact_accuracy), num(r.e_cg, "{:.3f}"), pct(r.acc), num(r.nar, "{:.3f}"),
                         str(r.episodes) + (f" ({r.nonfinite} nan)" if r.nonfinite else "")))
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        fmt = lambda row: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                                    for i, (c, w) in enumerate(zip(row, widths)))
        line = "-" * len(fmt(head))
        rate = self.summary()["mean_success_rate"]
        foot = ["mean success over skills with a tested criterion: " + ("-" if math.isnan(rate) else f"{100 * rate:.1f} %")]
        dup = sum(r.duplicates for r in self.results)
        episodes = sum(r.episodes for r in self.results)
        foot.append(f"{episodes} distinct episodes" + (f"; {dup} planned episodes were identical to one already run "
                                                        f"(same clip, start frame, no noise) and were not rerun"
                                                        if dup else ""))
        foot += [f"note: {n}" for n in self.notes()]
        return "\n".join([fmt(head), line, *map(fmt, rows), line, *foot])

    def plot(self, path: str | Path) -> Path:
        """PNG with four panels, one bar per scenario: success rate, body error E_b, object
        error E_o and contact accuracy -- the tracking figures move long before success does."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        rows = self.results
        colours = {"skill": "tab:blue", "transition": "tab:purple", "perturbed": "tab:orange", "push": "tab:red",
                   "random_pick": "tab:green", "getup": "tab:brown"}
        panels = (("success rate (%)", lambda r: 100 * r.success_rate, "{:.0f}"),
                  ("body error E_b (mm)", lambda r: r.e_b_mm, "{:.0f}"),
                  ("object error E_o (mm)", lambda r: r.e_o_mm, "{:.0f}"),
                  ("contact accuracy (%)", lambda r: 100 * r.contact_accuracy, "{:.0f}"))
        width = max(7.0, 0.45 * len(rows) * len(panels) + 2)
        fig, axes = plt.subplots(1, len(panels), figsize=(width, 4.2), dpi=100, squeeze=False)
        xs = list(range(len(rows)))
        for ax, (label, get, f) in zip(axes[0], panels):
            vals = [get(r) for r in rows]
            shown = [0.0 if math.isnan(v) else v for v in vals]
            bars = ax.bar(xs, shown, color=[colours.get(r.scenario, "tab:gray") for r in rows])
            top = max([v for v in shown if v > 0] + [1.0])
            for x, v, r, bar in zip(xs, vals, rows, bars):
                text = "n/a" if math.isnan(v) else f.format(v)
                if label.startswith("success") and r.criterion is not None and not r.criterion_covered:
                    text = "short" if math.isnan(v) else text + "*"
                    bar.set_hatch("//")
                ax.text(x, (0 if math.isnan(v) else v) + 0.02 * top, text, ha="center", va="bottom", fontsize=7)
            ax.set_xticks(xs, [r.name for r in rows], rotation=45, ha="right", fontsize=7)
            ax.set_ylim(0, 110 if "%" in label else 1.15 * top)
            ax.set_title(label, fontsize=9)
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for k, c in colours.items() if any(r.scenario == k for r in rows)]
        labels = [k for k in colours if any(r.scenario == k for r in rows)]
        if handles:
            axes[0][0].legend(handles, labels, fontsize=7, loc="upper right")
        title = Path(str(self.meta.get("checkpoint") or "policy")).name
        eps = sum(r.episodes for r in rows)
        fig.suptitle(f"{title}: {eps} episodes of {self.meta.get('episode_length', '?')} steps"
                     + ("  (* / short: round too short for the criterion)" if self.notes() else ""), fontsize=10)
        return save_figure(fig, path)


# ----------------------------------------------------------------------------- helpers
def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def clip_peak_ball_height(motion) -> torch.Tensor:
    """(num_clips,) highest ball z over each clip's valid frames (the shot criterion's target)."""
    clip_of_frame = torch.repeat_interleave(torch.arange(motion.num_clips, device=motion.device),
                                            motion.clip_lengths)
    z = torch.where(motion.valid, motion.obj_pos[:, 2], torch.full_like(motion.obj_pos[:, 2], -math.inf))
    out = torch.full((motion.num_clips,), -math.inf, dtype=z.dtype, device=motion.device)
    return out.scatter_reduce(0, clip_of_frame, z, reduce="amax")


def perturb_state_uniform(state, p: Perturbation, gen: torch.Generator):
    """A copy of ``state`` (JointState) with uniform noise U(-w, w) per :class:`Perturbation`
    (evaluation's jitter and perturbed starts; SkillMimic-V2's STF training noise is the
    label-dependent Gaussian :func:`skillmimic.augment.stf.perturb_state`). Draws on the CPU."""
    st = state.clone()
    for name in ("dof_pos", "root_lin_vel", "root_ang_vel", "obj_pos"):
        x = getattr(st, name)
        setattr(st, name, x + symmetric_uniform(getattr(p, name), x.shape, gen).to(x))
    return st


def push_state(state, speed: float, gen: torch.Generator):
    """A copy of ``state`` whose root moves ``speed`` m/s faster in a random horizontal direction."""
    st = state.clone()
    angle = torch.rand(st.num_worlds, generator=gen) * (2 * math.pi)
    kick = torch.stack([torch.cos(angle), torch.sin(angle)], -1) * speed
    st.root_lin_vel = st.root_lin_vel.clone()
    st.root_lin_vel[:, :2] += kick.to(st.root_lin_vel.device, st.root_lin_vel.dtype)
    return st


def random_pick_state(state, p: RandomPick, gen: torch.Generator):
    """A copy of ``state`` with the ball moved per :class:`RandomPick`: horizontal distance
    U(radius_min, radius_max) from the root in a uniform direction, height U(height_min,
    height_max), velocity U(-speed, speed) per axis, no spin."""
    st = state.clone()
    n = st.num_worlds
    like = st.obj_pos

    radius, angle, height = (uniform(lo, hi, n, gen).to(like) for lo, hi in
                             ((p.radius_min, p.radius_max), (0.0, 2 * math.pi), (p.height_min, p.height_max)))
    ball = st.root_pos.clone()
    ball[:, 0] += radius * torch.cos(angle)
    ball[:, 1] += radius * torch.sin(angle)
    ball[:, 2] = height
    st.obj_pos = ball
    st.obj_lin_vel = symmetric_uniform(p.speed, (n, 3), gen).to(like)
    st.obj_ang_vel = torch.zeros_like(st.obj_ang_vel)
    return st


def unstable_start_state(state, p: UnstableStart, gen: torch.Generator):
    """A copy of ``state`` in an unstable pose per :class:`UnstableStart`: every hinge
    U(0, dof_max), hinge velocities 0, root velocities U(-w, w). The root is not lifted here
    (that needs forward kinematics: :func:`lift_clear_of_floor`)."""
    st = state.clone()
    n = st.num_worlds
    st.dof_pos = uniform(0.0, p.dof_max, st.dof_pos.shape, gen).to(st.dof_pos)
    st.dof_vel = torch.zeros_like(st.dof_vel)
    st.root_lin_vel = symmetric_uniform(p.root_lin_vel, (n, 3), gen).to(st.root_lin_vel)
    st.root_ang_vel = symmetric_uniform(p.root_ang_vel, (n, 3), gen).to(st.root_ang_vel)
    return st


def lift_clear_of_floor(sim, ids: torch.Tensor, state, clearance: float):
    """Set ``state`` on worlds ``ids`` with the root raised so that the lowest body centre is at
    least ``clearance`` m above the floor (a random pose can put a limb under it); returns
    the state written."""
    sim.set_state(ids, state)
    low = sim.state.body_pos[ids, :, 2].amin(dim=1)
    lift = (clearance - low).clamp_min(0.0)
    st = state.clone()
    st.root_pos = st.root_pos.clone()
    st.root_pos[:, 2] += lift.to(st.root_pos.device, st.root_pos.dtype)
    sim.set_state(ids, st)
    return st


def begin_test_episodes(env, clips: torch.Tensor, start_frame: int | torch.Tensor, steps: int) -> None:
    """Reset every env at frame ``start_frame`` (one int, or one per env) of ``clips`` (one per
    env) so that the next ``steps`` steps run without a time-out, whatever the clip length
    (test mode; early termination is whatever ``env.set_test_mode`` said)."""
    ids = torch.arange(env.num_envs, device=env.device)
    clips = clips.to(env.motion.device)
    if isinstance(start_frame, torch.Tensor):
        frames = torch.minimum(start_frame.to(env.motion.device).long().clamp_min(0), env.motion.clip_lengths[clips] - 1)
    else:
        frames = env.motion.fixed_times(clips, int(start_frame))
    env.reset_envs(ids, clips, frames)
    env.hold_episodes(steps)


def spread_start_frames(motion, pool: torch.Tensor, slots: int, start_frame: int, spread: float):
    """(clips, frames) of ``slots`` planned episodes: clips round-robin over ``pool``; the
    episodes of one clip start at frames spread evenly from ``start_frame`` over the first
    ``spread`` of the rest of that clip (at most frame T-2, the original's last start frame).
    Episode 0 of every clip starts at ``start_frame``: round 0 is the original's test."""
    k = torch.arange(slots, device=pool.device)
    m = len(pool)
    clips = pool[k % m]
    nth = k // m
    count = (slots - (k % m) + m - 1) // m                 # planned episodes of this slot's clip
    T = motion.clip_lengths[clips]
    lo = torch.clamp(torch.full_like(T, int(start_frame)), max=T - 1).clamp_min(0)
    span = (float(spread) * (T - 1 - lo).double()).floor().long()
    hi = torch.maximum(lo, torch.minimum(lo + span, T - 2))
    frac = nth.double() / (count - 1).clamp_min(1).double()
    return clips, lo + (frac * (hi - lo).double()).round().long()


@dataclass
class _Round:
    success: torch.Tensor
    defined: torch.Tensor
    sums: dict
    frames: torch.Tensor
    reward: torch.Tensor
    nonfinite: torch.Tensor


@dataclass
class _Spec:
    """One scenario to run: where episodes start, how, what conditions and scores them."""

    kind: str
    start_label: Optional[int]     # clips of this label (None: ``pool`` given)
    score_label: int
    rounds: int
    condition: Optional[int] = None                # set_skill label (None: each clip's own)
    start: Optional[Callable] = None               # (JointState, Generator) -> JointState
    push: Optional[Push] = None
    lift: Optional[float] = None                   # clearance: lift the root clear of the floor
    pool: Optional[torch.Tensor] = None
    name: Optional[str] = None

    @property
    def deterministic(self) -> bool:
        """Episodes with the same clip and start frame are identical (no random start, no push)."""
        return self.start is None and (self.push is None or self.push.interval <= 0)


_SCENARIO_SEED = {"skill": 0, "transition": 1, "perturbed": 2, "push": 3, "random_pick": 4, "getup": 5}
#: Scenarios whose start state is the reference's (up to small noise): tracking errors mean something.
_TRACKED = ("skill", "perturbed", "push")


def _run_round(env, policy: Policy, clips: torch.Tensor, frames: torch.Tensor, steps: int, spec: _Spec,
               shot_targets: torch.Tensor, thresholds: SuccessThresholds, criteria: dict,
               gen: torch.Generator, bar=None) -> _Round:
    n, dev = env.num_envs, env.device
    ids = torch.arange(n, device=dev)
    motion = env.motion
    begin_test_episodes(env, clips, frames, steps)
    if spec.start is not None:
        st = spec.start(env.sim.state.joint, gen)
        if spec.lift is not None:
            st = lift_clear_of_floor(env.sim, ids, st, spec.lift)
        else:
            env.sim.set_state(ids, st)
    if spec.condition is not None:
        env.set_skill(spec.condition)
    env.obs = env.compute_obs()
    labels = torch.full_like(env.skill_labels, spec.score_label)
    tracker = SuccessTracker(labels, shot_targets.to(dev), thresholds, criteria)
    key_ids, contact_ids = env.key_body_ids, env.contact_body_ids
    clip_len = motion.clip_lengths.to(dev)[env.clip_ids]
    alive = torch.ones(n, dtype=torch.bool, device=dev)
    sums = {k: torch.zeros(n, dtype=torch.float64, device=dev) for k in _METRICS}
    counted = torch.zeros(n, dtype=torch.float64, device=dev)
    reward_sum = torch.zeros(n, dtype=torch.float64, device=dev)
    push = spec.push
    for k in range(steps):
        actions = policy(env.obs)
        _, reward, _, info = env.step(actions)
        bad = info["nonfinite"].to(dev)
        tracker.fail(bad)                # no-ops where nothing went non-finite; no host sync per step
        alive &= ~bad
        st = env.sim.state
        ref = env.reference()
        ref_t = env.reference_time()     # the frame reference() used, not clamped to the clip
        in_clip = alive & (ref_t < clip_len)
        m = tracking_metrics(ref.state.root_pos.to(dev), ref.key_body_pos.to(dev), ref.state.obj_pos.to(dev),
                             ref.contact.to(dev), st.joint.root_pos, st.body_pos[:, key_ids], st.joint.obj_pos,
                             st.contact_forces[:, contact_ids], st.obj_contact_force,
                             threshold=env.cfg.reward.contact_threshold)
        w = in_clip.double()
        for name in _METRICS:
            sums[name] += getattr(m, name).double() * w
        counted += w
        reward_sum += reward.double() * w
        tracker.update(k, st.joint.root_pos, st.joint.root_lin_vel, st.joint.obj_pos, st.joint.obj_lin_vel,
                       active=alive)
        if push is not None and push.interval > 0 and (k + 1) % push.interval == 0 and k + 1 < steps:
            env.sim.set_state(ids, push_state(st.joint, push.speed, gen))
            env.obs = env.compute_obs()
        if bar is not None:
            bar.update(1)
    return _Round(tracker.success, tracker.defined, sums, counted, reward_sum, ~alive)


@dataclass
class _Prepared:
    spec: _Spec
    pool: torch.Tensor
    clips: torch.Tensor            # (slots,) planned episodes
    frames: torch.Tensor
    order: list                    # slot indices to run (identical ones dropped)
    criterion: Optional[str]
    thresholds: SuccessThresholds
    steps_needed: int              # the criterion's window (0: none)
    episode_length: int

    @property
    def covered(self) -> bool:
        """The round is long enough to test the criterion as defined."""
        return self.criterion is None or self.episode_length >= self.steps_needed


def _prepare(env, spec: _Spec, s: EvalSettings, criteria: dict) -> _Prepared:
    motion = env.motion
    pool = spec.pool if spec.pool is not None else motion.clip_ids_of_label(spec.start_label)
    if len(pool) == 0:
        raise ValueError(f"the motion library has no clip of skill {spec.start_label:03d} "
                         f"(labels present: {sorted(set(motion.clip_labels.tolist()))})")
    slots = spec.rounds * env.num_envs
    clips, frames = spread_start_frames(motion, pool, slots, s.start_frame, s.start_spread)
    if spec.deterministic:
        seen, order = set(), []
        for k, key in enumerate(zip(clips.tolist(), frames.tolist())):
            if key not in seen:
                seen.add(key)
                order.append(k)
    else:
        order = list(range(slots))
    crit = criterion_name(spec.score_label, criteria)
    th = s.thresholds
    if spec.kind == "transition":
        th = replace(th, count_from=max(th.count_from, s.switch_count_from))
    return _Prepared(spec, pool, clips, frames, order, crit, th, criterion_steps(crit, th) if crit else 0,
                     s.episode_length)


def _scenario(env, policy, prep: _Prepared, s: EvalSettings, criteria: dict, bar=None) -> ScenarioResult:
    motion, spec, n = env.motion, prep.spec, env.num_envs
    peaks = clip_peak_ball_height(motion)
    target_z = None
    if spec.kind == "transition":
        targets_pool = motion.clip_ids_of_label(spec.score_label)
        if prep.criterion == "shot" and len(targets_pool) == 0:
            raise ValueError(f"transition {spec.start_label:03d}->{spec.score_label:03d}: scoring a shot needs a clip "
                             f"of skill {spec.score_label:03d} in the motion library (its peak ball height is the "
                             f"target)")
        target_z = peaks[targets_pool[0]] if len(targets_pool) else torch.tensor(math.nan)
    gen = torch.Generator().manual_seed(s.seed + 7919 * (spec.start_label or 0) + 104729 * spec.score_label
                                        + _SCENARIO_SEED[spec.kind])
    succ_rounds, nar_rounds, all_succ, all_def = [], [], [], []
    sums = {k: 0.0 for k in _METRICS}
    frames = reward = 0.0
    nonfinite = 0
    order = torch.tensor(prep.order, dtype=torch.long)
    for b in range(0, len(order), n):
        idx = order[b:b + n]
        used = len(idx)
        idx = torch.cat([idx, idx[-1:].expand(n - used)])      # a short last batch: pad, ignore the copies
        clips, starts = prep.clips[idx], prep.frames[idx]
        shot_t = peaks[clips] if target_z is None else target_z.expand(n)
        res = _run_round(env, policy, clips, starts, s.episode_length, spec, shot_t, prep.thresholds, criteria,
                         gen, bar)
        succ, dfn = res.success[:used].cpu(), res.defined[:used].cpu()
        all_succ.append(succ)
        all_def.append(dfn)
        succ_rounds.append(float(succ[dfn].float().mean()) if dfn.any() else math.nan)
        f = float(res.frames[:used].sum())
        rw = float(res.reward[:used].sum())
        nar_rounds.append(rw / f if f > 0 else math.nan)
        for k in _METRICS:
            sums[k] += float(res.sums[k][:used].sum())
        frames += f
        reward += rw
        nonfinite += int(res.nonfinite[:used].sum())
    succ, dfn = torch.cat(all_succ), torch.cat(all_def)
    covered = prep.covered
    rate = float(succ[dfn].float().mean()) if dfn.any() else math.nan
    if not covered and s.short_rounds == "omit":
        rate, succ_rounds = math.nan, [math.nan] * len(succ_rounds)
    skill = spec.name or motion.skill_names[int(prep.pool[0])]
    out = ScenarioResult(
        scenario=spec.kind, start_label=spec.start_label if spec.start_label is not None else spec.score_label,
        score_label=spec.score_label, skill=skill, criterion=prep.criterion, rounds=len(succ_rounds),
        episodes=len(prep.order), success_rate=rate, success_per_round=succ_rounds,
        duplicates=spec.rounds * n - len(prep.order), criterion_covered=covered, criterion_steps=prep.steps_needed,
        nonfinite=nonfinite)
    if spec.kind in _TRACKED and frames > 0:
        out.e_b_mm, out.e_o_mm, out.e_cg = (sums[k] / frames for k in ("e_b_mm", "e_o_mm", "e_cg"))
        out.contact_accuracy, out.acc = sums["contact_correct"] / frames, sums["acc"] / frames
        out.nar = nar_over_rounds(nar_rounds, True) if s.nar_skip_first_round else reward / frames
        out.nar_per_round = nar_rounds
        out.frames = int(frames)
    return out


def _specs(env, s: EvalSettings, labels: list[int], criteria: dict) -> list[_Spec]:
    """The scenarios of ``s``, in report order."""
    jitter = (lambda st, g: perturb_state_uniform(st, s.jitter, g)) if s.jitter.active else None
    specs = [_Spec("skill", lab, lab, s.rounds, start=jitter) for lab in labels]
    specs += [_Spec("transition", a, b, s.rounds, condition=b, start=jitter) for a, b in s.parsed_transitions()]
    if s.robustness:
        perturb = lambda st, g: perturb_state_uniform(st, s.perturb, g)      # noqa: E731
        specs += [_Spec("perturbed", lab, lab, s.robustness_rounds, start=perturb) for lab in labels]
        if s.push.interval > 0:
            specs += [_Spec("push", lab, lab, s.robustness_rounds, push=s.push) for lab in labels]
    if "random_pick" in s.scenarios:
        picks = [lab for lab in labels if criteria.get(lab) == "pickup"]
        if not picks:
            raise ValueError(f"eval.scenarios=[random_pick] needs a skill scored by the pickup criterion among "
                             f"{labels} (labels with it: {sorted(k for k, v in criteria.items() if v == 'pickup')})")
        specs += [_Spec("random_pick", lab, lab, s.rounds, start=lambda st, g: random_pick_state(st, s.random_pick, g))
                  for lab in picks]
    if "getup" in s.scenarios:
        u = s.unstable_start
        if criteria.get(u.label) != "getup":
            raise ValueError(f"eval.scenarios=[getup]: label {u.label:03d} (eval.unstable_start.label) is not scored "
                             f"by the getup criterion")
        own = env.motion.clip_ids_of_label(u.label)
        pool = own if len(own) else env.motion.clip_ids_of_label(labels)   # no getup clip: any evaluated clip
        specs.append(_Spec("getup", None, u.label, s.rounds, condition=u.label, pool=pool, name="getup",
                           start=lambda st, g: unstable_start_state(st, u, g), lift=u.clearance))
    return specs


def evaluate(env, policy: Policy, settings: EvalSettings | None = None, meta: dict | None = None) -> EvalReport:
    """Run every scenario of ``settings`` on ``env`` with ``policy``; returns an :class:`EvalReport`.

    The env is put in test mode for the duration (early termination off, no time-outs
    inside a round) and left reset afterwards. The policy gets ``env.obs`` and must return
    actions for all envs; it is called under ``torch.no_grad``. Planned episodes that are
    identical to one already run (same clip and start frame, nothing random) are run once.
    """
    s = settings or EvalSettings()
    s.check()
    present = sorted(set(env.motion.clip_labels.tolist()))
    labels = present if s.skills is None else [int(x) for x in s.skills]
    missing = [lab for lab in labels if lab not in present]
    if missing:
        raise ValueError(f"skills {missing} have no clip in the motion library (labels present: {present})")
    criteria = s.skill_criteria()
    plan = [_prepare(env, spec, s, criteria) for spec in _specs(env, s, labels, criteria)]
    short = sorted({(p.criterion, p.steps_needed) for p in plan if not p.covered})
    if short:
        what = ", ".join(f"{c} needs >= {k}" for c, k in short)
        msg = f"rounds of {s.episode_length} steps do not cover the time window of: {what}"
        if s.short_rounds == "error":
            raise ValueError(f"{msg} (eval.short_rounds=error); raise eval.episode_length")
        print(f"[skillmimic] warning: {msg}; their success is "
              + ("not scored" if s.short_rounds == "omit" else "flagged with *"), file=sys.stderr, flush=True)
    total = sum(-(-len(p.order) // env.num_envs) for p in plan) * s.episode_length
    from tqdm import tqdm

    old_et = env.early_termination
    env.set_test_mode(early_termination=False)
    t0 = time.perf_counter()
    results = []
    try:
        with torch.no_grad(), tqdm(total=total, desc="eval", unit="step", disable=not s.progress,
                                   dynamic_ncols=True, leave=False) as bar:
            for p in plan:
                a, b = p.spec.start_label, p.spec.score_label
                bar.set_postfix_str(f"{p.spec.kind} " + (f"{a:03d}->{b:03d}" if a is not None and a != b else f"{b:03d}"))
                results.append(_scenario(env, policy, p, s, criteria, bar))
    finally:
        env.set_test_mode(early_termination=old_et)
        env.reset()
    info = {"num_envs": env.num_envs, "rounds": s.rounds, "episode_length": s.episode_length,
            "start_frame": s.start_frame, "seconds": round(time.perf_counter() - t0, 2),
            "settings": asdict(s), **(meta or {})}
    return EvalReport(results, info)


__all__ = ["EvalSettings", "Perturbation", "Push", "RandomPick", "UnstableStart", "ScenarioResult", "EvalReport",
           "evaluate", "begin_test_episodes", "clip_peak_ball_height", "perturb_state_uniform", "push_state",
           "random_pick_state", "unstable_start_state", "lift_clear_of_floor", "spread_start_frames",
           "EXTRA_SCENARIOS", "SHORT_ROUNDS"]
