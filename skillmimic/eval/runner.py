"""Deterministic test-mode evaluation of a skill policy: per-skill success, tracking errors,
contact accuracy and NAR; skill-transition and robustness scenarios.

Test mode (SkillMimic-V2's, facts §7): every env starts at a fixed frame (2) of a clip of
the skill, early termination is off and each round runs ``episode_length`` steps (600),
past the clip's end -- the reference then holds its last frame. The success criteria
(:mod:`.success`) are updated every step; the tracking metrics (:mod:`.metrics`) and NAR
are averaged over the steps that still have a reference frame (within the clip), since
a comparison with a held or zero-padded frame measures nothing. Rounds differ by which
clip each env gets (round-robin over the skill's clips) and by the random perturbations;
MuJoCo itself is deterministic.

Scenarios:

* ``skill``: start in skill L's clips, conditioned on L, scored by L's criterion.
* ``transition`` A->B: start in A's clips, condition fixed to B, scored by B's criterion
  (run_no_object counts only steps >= ``switch_count_from``); tracking metrics are not
  reported (the reference is A's motion).
* ``perturbed``: the start state gets uniform noise on hinge angles, root velocities and
  ball position.
* ``push``: every ``push.interval`` steps the root gets a horizontal velocity kick of
  ``push.speed`` m/s in a random direction (backend-independent: a state write, no force
  API needed).

:func:`evaluate` takes any :class:`~envs.skill.SkillEnv` and any ``policy(obs) -> action``
callable, so it works with a checkpoint (:func:`skillmimic.eval.policy.load_policy`), a
scripted controller, or a test double.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional

import torch

from .metrics import nar_over_rounds, tracking_metrics
from .success import CRITERIA, DEFAULT_SKILL_CRITERIA, SuccessThresholds, SuccessTracker, criterion_name

Policy = Callable[[torch.Tensor], torch.Tensor]
_METRICS = ("e_b_mm", "e_o_mm", "e_cg", "contact_correct", "acc")


@dataclass
class Perturbation:
    """Uniform noise U(-w, w) added to the start state (0 turns a term off)."""

    dof_pos: float = 0.1           # rad, every hinge
    root_lin_vel: float = 0.5      # m/s, per axis
    root_ang_vel: float = 0.5      # rad/s, per axis
    ball_pos: float = 0.05         # m, per axis


@dataclass
class Push:
    """Horizontal velocity kicks of the root during the episode."""

    interval: int = 120            # steps between kicks; 0: none
    speed: float = 1.0             # m/s


@dataclass
class EvalSettings:
    """Everything :func:`evaluate` does; ``cfg/eval.yaml`` maps onto it (``eval.*``)."""

    rounds: int = 10
    episode_length: int = 600
    start_frame: int = 2
    skills: Optional[List[int]] = None           # labels to test; None: every label in the motion library
    transitions: List[str] = field(default_factory=list)   # "A->B" or "A:B", e.g. "11->13"
    switch_count_from: int = 150                 # run_no_object in transitions: count steps from here
    robustness: bool = False
    robustness_rounds: int = 3
    perturb: Perturbation = field(default_factory=Perturbation)
    push: Push = field(default_factory=Push)
    nar_skip_first_round: bool = True            # the original's NAR figure averages rounds 1..9
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
            table[int(label)] = name
        return table

    def parsed_transitions(self) -> list[tuple[int, int]]:
        out = []
        for t in self.transitions:
            # "A:B" is accepted too: hydra's override grammar takes it unquoted, "A->B" needs quotes
            parts = str(t).replace(" ", "").replace("->", ":").split(":")
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise ValueError(f"transition {t!r} must look like 'A->B' or 'A:B' with skill labels, e.g. '11->13'")
            out.append((int(parts[0]), int(parts[1])))
        return out


@dataclass
class ScenarioResult:
    """One scenario over all its rounds; rates in [0, 1], errors in mm, NaN where undefined."""

    scenario: str                  # skill | transition | perturbed | push
    start_label: int
    score_label: int
    skill: str                     # skill name of the start clips
    criterion: Optional[str]
    rounds: int
    envs: int                      # env-episodes scored (rounds x num_envs)
    success_rate: float
    success_per_round: List[float]
    e_b_mm: float = math.nan
    e_o_mm: float = math.nan
    e_cg: float = math.nan
    contact_accuracy: float = math.nan
    acc: float = math.nan
    nar: float = math.nan
    nar_per_round: List[float] = field(default_factory=list)
    frames: int = 0                # env-steps that entered the tracking metrics
    nonfinite: int = 0             # env-episodes whose physics went non-finite (counted as failures)

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
        skills = [r for r in self.of("skill") if not math.isnan(r.success_rate)]
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

    def table(self) -> str:
        """Fixed-width console table, one row per scenario."""
        head = ("scenario", "criterion", "succ %", "E_b mm", "E_o mm", "contact %", "E_cg", "Acc %", "NAR", "envs")
        rows = []
        for r in self.results:
            pct = lambda v: "-" if math.isnan(v) else f"{100 * v:.1f}"
            num = lambda v, f="{:.1f}": "-" if math.isnan(v) else f.format(v)
            rows.append((r.name, r.criterion or "-", pct(r.success_rate), num(r.e_b_mm), num(r.e_o_mm),
                         pct(r.contact_accuracy), num(r.e_cg, "{:.3f}"), pct(r.acc), num(r.nar, "{:.3f}"),
                         str(r.envs) + (f" ({r.nonfinite} nan)" if r.nonfinite else "")))
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        fmt = lambda row: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                                    for i, (c, w) in enumerate(zip(row, widths)))
        line = "-" * len(fmt(head))
        rate = self.summary()["mean_success_rate"]
        foot = "mean success over skills with a criterion: " + ("-" if math.isnan(rate) else f"{100 * rate:.1f} %")
        return "\n".join([fmt(head), line, *map(fmt, rows), line, foot])

    def plot(self, path: str | Path) -> Path:
        """PNG bar chart of the success rate of every scenario with a criterion, grouped by kind."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        rows = [r for r in self.results if r.criterion is not None]
        colours = {"skill": "tab:blue", "transition": "tab:purple", "perturbed": "tab:orange", "push": "tab:red"}
        fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(rows) + 2), 4.0), dpi=100)
        xs = range(len(rows))
        vals = [0.0 if math.isnan(r.success_rate) else 100 * r.success_rate for r in rows]
        ax.bar(xs, vals, color=[colours[r.scenario] for r in rows])
        for x, v in zip(xs, vals):
            ax.text(x, v + 1, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(xs), [r.name for r in rows], rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 110)
        ax.set_ylabel("success rate (%)")
        title = self.meta.get("checkpoint") or "policy"
        ax.set_title(f"per-skill success: {Path(str(title)).name}", fontsize=10)
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for k, c in colours.items()
                   if any(r.scenario == k for r in rows)]
        labels = [k for k in colours if any(r.scenario == k for r in rows)]
        if handles:
            ax.legend(handles, labels, fontsize=8, loc="upper right")
        if not rows:
            ax.text(0.5, 0.5, "no scenario has a success criterion", ha="center", transform=ax.transAxes)
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
    z = torch.where(motion.valid, motion.ball_pos[:, 2], torch.full_like(motion.ball_pos[:, 2], -math.inf))
    out = torch.full((motion.num_clips,), -math.inf, dtype=z.dtype, device=motion.device)
    return out.scatter_reduce(0, clip_of_frame, z, reduce="amax")


def _uniform(gen: torch.Generator, shape, width: float, like: torch.Tensor) -> torch.Tensor:
    u = torch.rand(shape, generator=gen, dtype=torch.float32)
    return ((2 * u - 1) * width).to(like.device, like.dtype)


def perturb_state(state, p: Perturbation, gen: torch.Generator):
    """A copy of ``state`` (JointState) with uniform noise per :class:`Perturbation`."""
    st = state.clone()
    n = st.num_worlds
    st.dof_pos = st.dof_pos + _uniform(gen, st.dof_pos.shape, p.dof_pos, st.dof_pos)
    st.root_lin_vel = st.root_lin_vel + _uniform(gen, (n, 3), p.root_lin_vel, st.root_lin_vel)
    st.root_ang_vel = st.root_ang_vel + _uniform(gen, (n, 3), p.root_ang_vel, st.root_ang_vel)
    st.ball_pos = st.ball_pos + _uniform(gen, (n, 3), p.ball_pos, st.ball_pos)
    return st


def push_state(state, speed: float, gen: torch.Generator):
    """A copy of ``state`` whose root moves ``speed`` m/s faster in a random horizontal direction."""
    st = state.clone()
    angle = torch.rand(st.num_worlds, generator=gen) * (2 * math.pi)
    kick = torch.stack([torch.cos(angle), torch.sin(angle)], -1) * speed
    st.root_lin_vel = st.root_lin_vel.clone()
    st.root_lin_vel[:, :2] += kick.to(st.root_lin_vel.device, st.root_lin_vel.dtype)
    return st


def begin_test_episodes(env, clips: torch.Tensor, start_frame: int, steps: int) -> None:
    """Reset every env at frame ``start_frame`` of ``clips`` (one per env) so that the next
    ``steps`` steps run without a time-out, whatever the clip length (test mode; early
    termination is whatever ``env.cfg`` says)."""
    ids = torch.arange(env.num_envs, device=env.device)
    clips = clips.to(env.motion.device)
    env.reset_envs(ids, clips, env.motion.fixed_times(clips, int(start_frame)))
    # SkillEnv times out at progress >= segment_length - 1; +2 keeps the last step in this episode
    env.segment_length[:] = int(steps) + 2


@dataclass
class _Round:
    success: torch.Tensor
    defined: torch.Tensor
    sums: dict
    frames: torch.Tensor
    reward: torch.Tensor
    nonfinite: torch.Tensor


def _run_round(env, policy: Policy, clips: torch.Tensor, steps: int, start_frame: int, score_label: Optional[int],
               shot_targets: torch.Tensor, thresholds: SuccessThresholds, criteria: dict,
               perturb: Optional[Perturbation], push: Optional[Push], gen: torch.Generator, bar=None) -> _Round:
    n, dev = env.num_envs, env.device
    ids = torch.arange(n, device=dev)
    motion = env.motion
    begin_test_episodes(env, clips, start_frame, steps)
    if perturb is not None:
        st = perturb_state(env.sim.state.joint, perturb, gen)
        env.sim.set_state(ids, st)
        env.prev_dof_vel = st.dof_vel.to(dev).clone()
    if score_label is not None:
        env.set_skill(score_label)
    env.obs = env.compute_obs()
    labels = env.skill_labels.clone()
    tracker = SuccessTracker(labels, shot_targets.to(dev), thresholds, criteria)
    key_ids, contact_ids = env._key_bodies, env._contact_bodies
    clip_len = motion.clip_lengths.to(dev)[env.clip_ids]
    alive = torch.ones(n, dtype=torch.bool, device=dev)
    sums = {k: torch.zeros(n, dtype=torch.float64, device=dev) for k in _METRICS}
    counted = torch.zeros(n, dtype=torch.float64, device=dev)
    reward_sum = torch.zeros(n, dtype=torch.float64, device=dev)
    for k in range(steps):
        actions = policy(env.obs)
        _, reward, _, info = env.step(actions)
        bad = info["nonfinite"].to(dev)
        tracker.fail(bad)                # no-ops where nothing went non-finite; no host sync per step
        alive &= ~bad
        st = env.sim.state
        ref = env.reference()
        # the frame reference() used, unclamped (an env may hold its reference for ref_delay steps)
        ref_t = env.start_frames + (env.progress - getattr(env, "ref_delay", 0)).clamp_min(0)
        in_clip = alive & (ref_t < clip_len)
        m = tracking_metrics(ref.state.root_pos.to(dev), ref.key_body_pos.to(dev), ref.state.ball_pos.to(dev),
                             ref.contact.to(dev), st.joint.root_pos, st.body_pos[:, key_ids], st.joint.ball_pos,
                             st.contact_forces[:, contact_ids], st.ball_contact_force,
                             threshold=env.cfg.reward.contact_threshold)
        w = in_clip.double()
        for name in _METRICS:
            sums[name] += getattr(m, name).double() * w
        counted += w
        reward_sum += reward.double() * w
        tracker.update(k, st.joint.root_pos, st.joint.root_lin_vel, st.joint.ball_pos, st.joint.ball_lin_vel,
                       active=alive)
        if push is not None and push.interval > 0 and (k + 1) % push.interval == 0 and k + 1 < steps:
            env.sim.set_state(ids, push_state(st.joint, push.speed, gen))
            env.obs = env.compute_obs()
        if bar is not None:
            bar.update(1)
    return _Round(tracker.success, tracker.defined, sums, counted, reward_sum, ~alive)


def _scenario(env, policy, scenario: str, start_label: int, score_label: int, rounds: int, s: EvalSettings,
              perturb=None, push=None, bar=None) -> ScenarioResult:
    motion = env.motion
    criteria = s.skill_criteria()
    pool = motion.clip_ids_of_label(start_label)
    if len(pool) == 0:
        raise ValueError(f"the motion library has no clip of skill {start_label:03d} "
                         f"(labels present: {sorted(set(motion.clip_labels.tolist()))})")
    crit = criterion_name(score_label, criteria)
    peaks = clip_peak_ball_height(motion)
    if scenario == "transition":
        targets_pool = motion.clip_ids_of_label(score_label)
        if crit == "shot" and len(targets_pool) == 0:
            raise ValueError(f"transition {start_label:03d}->{score_label:03d}: scoring a shot needs a clip of "
                             f"skill {score_label:03d} in the motion library (its peak ball height is the target)")
        target_z = peaks[targets_pool[0]] if len(targets_pool) else torch.tensor(math.nan)
        thresholds = replace(s.thresholds, count_from=max(s.thresholds.count_from, s.switch_count_from))
    else:
        target_z, thresholds = None, s.thresholds
    gen = torch.Generator().manual_seed(s.seed + 7919 * start_label + 104729 * score_label
                                        + {"skill": 0, "transition": 1, "perturbed": 2, "push": 3}[scenario])
    n = env.num_envs
    succ_rounds, nar_rounds = [], []
    all_succ, all_def = [], []
    sums = {k: 0.0 for k in _METRICS}
    frames = 0.0
    nonfinite = 0
    for r in range(rounds):
        clips = pool[(torch.arange(n, device=pool.device) + r * n) % len(pool)]
        shot_t = peaks[clips] if target_z is None else target_z.expand(n)
        res = _run_round(env, policy, clips, s.episode_length, s.start_frame,
                         score_label if scenario == "transition" else None, shot_t, thresholds, criteria,
                         perturb, push, gen, bar)
        all_succ.append(res.success.cpu())
        all_def.append(res.defined.cpu())
        d = res.defined
        succ_rounds.append(float(res.success[d].float().mean()) if d.any() else math.nan)
        f = float(res.frames.sum())
        nar_rounds.append(float(res.reward.sum()) / f if f > 0 else math.nan)
        for k in _METRICS:
            sums[k] += float(res.sums[k].sum())
        frames += f
        nonfinite += int(res.nonfinite.sum())
    succ, dfn = torch.cat(all_succ), torch.cat(all_def)
    out = ScenarioResult(
        scenario=scenario, start_label=start_label, score_label=score_label,
        skill=motion.skill_names[int(pool[0])], criterion=crit, rounds=rounds, envs=rounds * n,
        success_rate=float(succ[dfn].float().mean()) if dfn.any() else math.nan,
        success_per_round=succ_rounds, nonfinite=nonfinite)
    if scenario != "transition" and frames > 0:
        out.e_b_mm, out.e_o_mm, out.e_cg = (sums[k] / frames for k in ("e_b_mm", "e_o_mm", "e_cg"))
        out.contact_accuracy, out.acc = sums["contact_correct"] / frames, sums["acc"] / frames
        out.nar = nar_over_rounds(nar_rounds, s.nar_skip_first_round)
        out.nar_per_round = nar_rounds
        out.frames = int(frames)
    return out


def evaluate(env, policy: Policy, settings: EvalSettings | None = None, meta: dict | None = None) -> EvalReport:
    """Run every scenario of ``settings`` on ``env`` with ``policy``; returns an :class:`EvalReport`.

    The env is put in test mode for the duration (early termination off, no time-outs
    inside a round) and left reset afterwards. The policy gets ``env.obs`` and must return
    actions for all envs; it is called under ``torch.no_grad``.
    """
    s = settings or EvalSettings()
    if s.rounds < 1 or s.episode_length < 1:
        raise ValueError(f"rounds and episode_length must be >= 1, got {s.rounds} and {s.episode_length}")
    present = sorted(set(env.motion.clip_labels.tolist()))
    labels = present if s.skills is None else [int(x) for x in s.skills]
    missing = [lab for lab in labels if lab not in present]
    if missing:
        raise ValueError(f"skills {missing} have no clip in the motion library (labels present: {present})")
    transitions = s.parsed_transitions()
    s.skill_criteria()                   # a bad criteria entry fails before anything runs
    plan = [("skill", lab, lab, s.rounds, None, None) for lab in labels]
    plan += [("transition", a, b, s.rounds, None, None) for a, b in transitions]
    if s.robustness:
        plan += [("perturbed", lab, lab, s.robustness_rounds, s.perturb, None) for lab in labels]
        if s.push.interval > 0:
            plan += [("push", lab, lab, s.robustness_rounds, None, s.push) for lab in labels]
    total = sum(p[3] for p in plan) * s.episode_length
    from tqdm import tqdm

    old_et = env.cfg.enable_early_termination
    env.cfg.enable_early_termination = False
    t0 = time.perf_counter()
    results = []
    try:
        with torch.no_grad(), tqdm(total=total, desc="eval", unit="step", disable=not s.progress,
                                   dynamic_ncols=True, leave=False) as bar:
            for scenario, a, b, rounds, perturb, push in plan:
                bar.set_postfix_str(f"{scenario} {a:03d}" + (f"->{b:03d}" if a != b else ""))
                results.append(_scenario(env, policy, scenario, a, b, rounds, s, perturb, push, bar))
    finally:
        env.cfg.enable_early_termination = old_et
        env.reset()
    info = {"num_envs": env.num_envs, "rounds": s.rounds, "episode_length": s.episode_length,
            "start_frame": s.start_frame, "seconds": round(time.perf_counter() - t0, 2),
            "settings": asdict(s), **(meta or {})}
    return EvalReport(results, info)


__all__ = ["EvalSettings", "Perturbation", "Push", "ScenarioResult", "EvalReport", "evaluate", "begin_test_episodes",
           "clip_peak_ball_height", "perturb_state", "push_state"]
