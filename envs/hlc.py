"""High-level controller (HLC) environments: a discrete policy that picks learned skills.

One env family for the four tasks of the original (heading, circling, throwing, layup
scoring); a task is a small strategy object (goal sampling, task observation, reward,
per-episode statistics) and everything else is shared:

* A frozen low-level skill policy (the LLC, a skill-training checkpoint with its observation
  normaliser) turns a skill label into joint targets. A high-level action ``a`` selects the
  label ``control_mapping[a]``; the LLC then runs ``llc_steps`` env steps (3: the HLC decides
  at 20 Hz), recomputing its deterministic mean from the new observation each step
  (``scene_obs`` + one-hot of the held label, mean clamped to [-1, 1]).
* The HLC reward is the mean of the per-step task rewards and the HLC step is done when any
  of its env steps ended the episode (steps after that one are not counted).
* Observation = :func:`skillmimic.observations.scene_obs` (838) + the task's features.
* Episodes start at a fixed frame (2) of a sampled clip, last ``episode_length`` env steps
  (800), and end early when the root falls below ``termination_height`` (0.25 m).

Deliberate differences from the original (see docs/hlc.md):

* The goal of a new episode is drawn right after its reset state is set and *before* its
  first observation is computed (the original drew it afterwards, so the first observation
  of every episode carried the previous episode's goal).
* Layup scoring uses a real hoop (backboard behind the rim facing the approach) placed at
  the goal each episode; a score is the ball passing down through the rim
  (:func:`skillmimic.scoring.rim_crossings`), not a predicted landing point. The rim is at
  ``hlc.layup.rim_height`` = 2.5 m by default (the original's target height): the recorded
  layups put the ball's apex at 2.73-2.93 m, so a regulation 3.05 m rim (still one config
  value away) cannot be reached by imitating them.
* The one ball-trajectory prediction kept (a layup shaping term) uses the exact time of the
  descending crossing of a height, :func:`ballistic_descent_time`.
* The goal bearing features (cos, sin) are those of the goal direction in the humanoid's
  heading frame; the original's formula reduced to the world-frame bearing.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, List, Optional, Protocol

import torch

from skillmimic.assets.mjcf import HoopConfig, SceneConfig, scene_skeleton
from skillmimic.motion import MotionLibrary
from skillmimic.rl.checkpoint import CheckpointError
from skillmimic.observations import BALL_OBS, HUMANOID_OBS, NUM_SKILLS, heading_rotation_inv, scene_obs, skill_one_hot
from skillmimic.scoring import rim_crossings
from skillmimic.sim import Simulator, make_simulator

log = logging.getLogger(__name__)

#: LLC observation size: humanoid + ball features + skill one-hot (the V1 skill policy's)
LLC_OBS = HUMANOID_OBS + BALL_OBS + NUM_SKILLS
#: a ball is in free flight when no component of its net contact force exceeds this (N)
BALL_CONTACT_THRESHOLD = 0.1
#: highest ball-centre apex of the shared layup and shot clips (m): BallPlay-M layup 2.82,
#: turnlayup 2.73 / 2.93, shot_style1-3 2.88 / 2.94 / 2.64, BallPlay-V2 sparse shot 2.94
#: (measured in docs/hlc.md). A rim at or above it is out of reach of the recorded skills.
RECORDED_BALL_APEX_MAX = 2.94


# --------------------------------------------------------------------------- configuration
@dataclass
class HeadingConfig:
    """Steer the ball to a point on the ground plane (held at ``goal_height``)."""

    goal_distance: List[float] = field(default_factory=lambda: [2.0, 8.0])   # [lo, hi) m from the start root
    goal_height: float = 1.0           # target point (goal_xy, goal_height) for the ball
    reach_distance: float = 0.5        # ball within this of the target point: reached (latched)


@dataclass
class CirclingConfig:
    """Dribble the ball around a circle centred on the start position."""

    radius: List[float] = field(default_factory=lambda: [2.0, 5.0])          # [lo, hi) m
    min_ball_speed: float = 0.5        # below it the reward is scaled by slow_scale
    slow_scale: float = 0.1
    reach_distance: float = 0.5        # ball within this of the circle: on the circle


@dataclass
class ThrowingConfig:
    """Throw the ball as close to ``target_height`` as possible."""

    target_height: float = 2.5


@dataclass
class LayupConfig:
    """Score in a real hoop placed at a goal ``goal_distance`` from the start, facing it."""

    goal_distance: List[float] = field(default_factory=lambda: [2.0, 8.0])
    # Rim centre height (m). 2.5: the original's target height, below every recorded layup and
    # shot apex (2.64-2.94 m) and above the highest hand point of the layup (2.25 m); the
    # regulation 3.05 m is above all of them (a warning says so). See docs/hlc.md.
    rim_height: float = 2.5
    min_root_speed: float = 0.5        # standing still scales the reward by slow_scale
    slow_scale: float = 0.1
    distance_scale: float = 0.5        # exp(-distance_scale * |ball - rim centre|)
    height_weight: float = 0.2         # + height_weight * exp(-|ball_z - rim_z|)
    score_bonus: float = 1.0           # + score_bonus once the ball went through the rim (latched)
    # + descent_weight * exp(-descent_scale * d) for a ball in free flight whose ballistic
    # path comes down through the rim plane at distance d from the rim centre
    descent_weight: float = 0.5
    descent_scale: float = 2.0


@dataclass
class HLCConfig:
    """The ``task.hlc`` node: which task, the skill vocabulary and the task's parameters."""

    task: str = "heading"              # heading | circling | throwing | layup
    control_mapping: List[int] = field(default_factory=lambda: [12, 13, 11])   # action -> skill label
    llc_steps: int = 3                 # env steps per high-level decision
    heading: HeadingConfig = field(default_factory=HeadingConfig)
    circling: CirclingConfig = field(default_factory=CirclingConfig)
    throwing: ThrowingConfig = field(default_factory=ThrowingConfig)
    layup: LayupConfig = field(default_factory=LayupConfig)

    def validate(self) -> None:
        """Raise ValueError naming the offending key."""
        if self.task not in TASKS:
            raise ValueError(f"hlc.task must be one of {sorted(TASKS)}, got {self.task!r}")
        if self.llc_steps < 1:
            raise ValueError(f"hlc.llc_steps must be >= 1, got {self.llc_steps}")
        if len(self.control_mapping) < 1:
            raise ValueError("hlc.control_mapping must list at least one skill label")
        bad = [int(x) for x in self.control_mapping if not 0 <= int(x) < NUM_SKILLS]
        if bad:
            raise ValueError(f"hlc.control_mapping labels must be in [0, {NUM_SKILLS}), got {bad}")
        if self.task == "layup":
            if self.layup.rim_height <= 0:
                raise ValueError(f"hlc.layup.rim_height must be > 0, got {self.layup.rim_height}")
            if self.layup.rim_height >= RECORDED_BALL_APEX_MAX:
                _warn_unreachable_rim(float(self.layup.rim_height))
        for key, rng in (("heading.goal_distance", self.heading.goal_distance),
                         ("circling.radius", self.circling.radius),
                         ("layup.goal_distance", self.layup.goal_distance)):
            if len(rng) != 2 or not 0 <= rng[0] <= rng[1]:
                raise ValueError(f"hlc.{key} must be [lo, hi] with 0 <= lo <= hi, got {list(rng)}")


@functools.lru_cache(maxsize=None)
def _warn_unreachable_rim(height: float) -> None:
    """Once per process and height."""
    log.warning("hlc.layup.rim_height=%.2f m: the shared BallPlay layups and shots never get the ball above "
                "%.2f m (layup apex 2.82 m), so a policy imitating them cannot score; 2.5 m is reachable "
                "(docs/hlc.md)", height, RECORDED_BALL_APEX_MAX)


@dataclass
class HLCEnvConfig:
    num_envs: int = 16
    episode_length: int = 800          # env steps
    state_init: str | int = 2          # start frame of the sampled clip, or "random" (RSI)
    enable_early_termination: bool = True
    termination_height: float = 0.25
    action_scale: float = math.pi      # LLC action -> PD target; the LLC run's own value wins
    seed: Optional[int] = None
    hlc: HLCConfig = field(default_factory=HLCConfig)


# --------------------------------------------------------------------------- the frozen LLC
class LowLevelPolicy(Protocol):
    """``policy(obs) -> actions`` in [-1, 1]; :class:`skillmimic.eval.policy.CheckpointPolicy` is one."""

    num_obs: int
    num_actions: int

    def __call__(self, obs: torch.Tensor) -> torch.Tensor: ...


class LLCCheckpointError(CheckpointError):
    """``llc_checkpoint`` cannot serve as the low-level controller; the message names the file."""


def load_llc(path: str | Path, device: str | torch.device = "cpu", num_actions: int = 156):
    """The frozen skill policy of checkpoint ``path`` (deterministic mean, normaliser inside).

    Checks what the HLC env will feed it -- ``LLC_OBS`` observations, ``num_actions``
    actions -- so a checkpoint trained with another observation layout (e.g. SkillMimic-V2
    history features) fails here with both sizes named, not deep inside a matmul."""
    from skillmimic.eval.policy import load_policy

    path = Path(path).expanduser()
    try:
        policy = load_policy(path, device=device)
    except CheckpointError as e:
        raise LLCCheckpointError(f"llc_checkpoint {path}: not usable as a skill policy: {e}") from e
    if policy.num_obs != LLC_OBS:
        raise LLCCheckpointError(
            f"llc_checkpoint {path}: the policy takes {policy.num_obs}-d observations but the HLC env feeds "
            f"{LLC_OBS} ({HUMANOID_OBS} humanoid + {BALL_OBS} ball + {NUM_SKILLS} skill one-hot); it was trained "
            f"with a different observation layout")
    if policy.num_actions != num_actions:
        raise LLCCheckpointError(f"llc_checkpoint {path}: the policy outputs {policy.num_actions} actions but the "
                                 f"humanoid has {num_actions} actuated DOFs")
    return policy


# --------------------------------------------------------------------------- shared task maths
def ballistic_descent_time(z0: torch.Tensor, vz: torch.Tensor, height: float | torch.Tensor,
                           g: float = 9.81) -> torch.Tensor:
    """Time until a projectile at height ``z0`` moving up at ``vz`` comes *down* through ``height``.

    z(t) = z0 + vz t - g t^2 / 2 = height has the roots (vz -+ sqrt(vz^2 + 2 g (z0 - height))) / g;
    the descending crossing is the larger one, (vz + sqrt(...)) / g. (The original used
    (sqrt(...) - vz) / g, which is that time only for vz = 0.) NaN where the path never
    comes down through ``height`` from above at t >= 0 (apex below it, or already below and falling).
    """
    disc = vz * vz + 2.0 * g * (z0 - height)
    t = (vz + torch.sqrt(disc.clamp_min(0.0))) / g
    valid = (disc >= 0) & (t >= 0) & ((z0 >= height) | (vz > 0))
    return torch.where(valid, t, torch.full_like(t, float("nan")))


def goal_features(root_pos: torch.Tensor, root_quat: torch.Tensor, goal_xy: torch.Tensor) -> torch.Tensor:
    """(N, 4): goal xy in the heading frame and (cos, sin) of its bearing in that frame."""
    inv = heading_rotation_inv(root_quat)[:, :2, :2]
    local = torch.einsum("nij,nj->ni", inv, goal_xy - root_pos[:, :2])
    bearing = torch.atan2(local[:, 1], local[:, 0])
    return torch.cat([local, torch.cos(bearing)[:, None], torch.sin(bearing)[:, None]], dim=-1)


def _uniform(lo_hi, n: int, gen: torch.Generator, device) -> torch.Tensor:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _polar_goal(root_xy: torch.Tensor, distance, gen: torch.Generator) -> torch.Tensor:
    """Goals at a uniform distance in ``distance`` and a uniform direction around ``root_xy``."""
    n, dev = root_xy.shape[0], root_xy.device
    d = _uniform(distance, n, gen, dev)
    theta = 2.0 * math.pi * torch.rand(n, generator=gen, device=dev)
    return root_xy + d[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], -1)


def _ball_in_flight(state) -> torch.Tensor:
    return state.ball_contact_force.abs().amax(-1) <= BALL_CONTACT_THRESHOLD


# --------------------------------------------------------------------------- tasks
class HLCTask:
    """One task: goals, task observation, per-step reward and per-episode statistics.

    ``stats`` holds per-env accumulators of the current episode, reset by :meth:`reset`;
    :meth:`step` updates them only where ``live`` (env steps after an episode's end within
    the same HLC step do not count)."""

    name: ClassVar[str]
    num_obs: ClassVar[int] = 0
    needs_hoop: ClassVar[bool] = False

    def __init__(self, cfg: HLCConfig, num_envs: int, device: torch.device):
        self.cfg = cfg
        self.goal = torch.zeros(num_envs, 2, device=device)     # xy; unused by throwing
        self.stats: dict[str, torch.Tensor] = {}

    def reset(self, env: "HLCEnv", ids: torch.Tensor) -> None:
        """Draw the new episodes' goals from their start state (already set in the sim)."""
        for v in self.stats.values():
            v[ids] = 0

    def obs(self, env: "HLCEnv", state) -> torch.Tensor:
        return torch.zeros(env.num_envs, 0, device=env.device)

    def step(self, env: "HLCEnv", prev_ball: torch.Tensor, state, live: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reward terms of this env step (``reward`` among them) and statistics update."""
        raise NotImplementedError

    @staticmethod
    def summarize(stats: dict[str, torch.Tensor], control_dt: float) -> dict[str, float]:
        """Task metrics over finished episodes (``stats``: one row per episode)."""
        raise NotImplementedError


class HeadingTask(HLCTask):
    name = "heading"
    num_obs = 4

    def __init__(self, cfg, num_envs, device):
        super().__init__(cfg, num_envs, device)
        self.stats = {"reached": torch.zeros(num_envs, dtype=torch.bool, device=device),
                      "min_distance": torch.zeros(num_envs, device=device)}

    def reset(self, env, ids):
        super().reset(env, ids)
        self.goal[ids] = _polar_goal(env.sim.state.joint.root_pos[ids, :2], self.cfg.heading.goal_distance,
                                     env.generator)
        self.stats["min_distance"][ids] = float("inf")

    def _target(self) -> torch.Tensor:
        return torch.cat([self.goal, torch.full_like(self.goal[:, :1], self.cfg.heading.goal_height)], -1)

    def obs(self, env, state):
        return goal_features(state.joint.root_pos, state.joint.root_quat, self.goal)

    def step(self, env, prev_ball, state, live):
        dist = (state.joint.ball_pos - self._target()).norm(dim=-1)
        s = self.stats
        s["reached"] |= live & (dist < self.cfg.heading.reach_distance)
        s["min_distance"] = torch.where(live, torch.minimum(s["min_distance"], dist), s["min_distance"])
        return {"reward": torch.exp(-dist), "goal_distance": dist}

    @staticmethod
    def summarize(stats, control_dt):
        return {"reach_rate": stats["reached"].float().mean().item(),
                "min_goal_distance_mean_m": stats["min_distance"].mean().item()}


class CirclingTask(HLCTask):
    name = "circling"
    num_obs = 5

    def __init__(self, cfg, num_envs, device):
        super().__init__(cfg, num_envs, device)
        self.radius = torch.zeros(num_envs, device=device)
        self.stats = {"reached": torch.zeros(num_envs, dtype=torch.bool, device=device),
                      "on_circle_steps": torch.zeros(num_envs, dtype=torch.long, device=device),
                      "swept_angle": torch.zeros(num_envs, device=device)}

    def reset(self, env, ids):
        super().reset(env, ids)
        self.goal[ids] = env.sim.state.joint.root_pos[ids, :2]
        self.radius[ids] = _uniform(self.cfg.circling.radius, len(ids), env.generator, env.device)

    def obs(self, env, state):
        return torch.cat([goal_features(state.joint.root_pos, state.joint.root_quat, self.goal),
                          self.radius[:, None]], -1)

    def step(self, env, prev_ball, state, live):
        c = self.cfg.circling
        rel = state.joint.ball_pos[:, :2] - self.goal
        off = (rel.norm(dim=-1) - self.radius).abs()
        fast = state.joint.ball_lin_vel.norm(dim=-1) >= c.min_ball_speed
        reward = torch.exp(-off) * torch.where(fast, 1.0, c.slow_scale)
        on = live & (off < c.reach_distance)
        prev_rel = prev_ball[:, :2] - self.goal
        dtheta = torch.atan2(rel[:, 1], rel[:, 0]) - torch.atan2(prev_rel[:, 1], prev_rel[:, 0])
        dtheta = torch.remainder(dtheta + math.pi, 2 * math.pi) - math.pi
        s = self.stats
        s["reached"] |= on
        s["on_circle_steps"] += on.long()
        s["swept_angle"] += torch.where(on, dtheta, torch.zeros_like(dtheta))
        return {"reward": reward, "circle_offset": off}

    @staticmethod
    def summarize(stats, control_dt):
        laps = stats["swept_angle"].abs() / (2 * math.pi)
        return {"reach_rate": stats["reached"].float().mean().item(),
                "lap_rate": (laps >= 1.0).float().mean().item(),
                "laps_mean": laps.mean().item(),
                "on_circle_fraction": (stats["on_circle_steps"].float() / stats["length"].clamp_min(1)).mean().item()}


class ThrowingTask(HLCTask):
    name = "throwing"

    def __init__(self, cfg, num_envs, device):
        super().__init__(cfg, num_envs, device)
        self.stats = {"max_ball_height": torch.zeros(num_envs, device=device)}

    def step(self, env, prev_ball, state, live):
        z = state.joint.ball_pos[:, 2]
        s = self.stats
        s["max_ball_height"] = torch.where(live, torch.maximum(s["max_ball_height"], z), s["max_ball_height"])
        return {"reward": torch.exp(-(z - self.cfg.throwing.target_height).abs()), "ball_height": z}

    @staticmethod
    def summarize(stats, control_dt):
        h = stats["max_ball_height"]
        return {"max_ball_height_mean_m": h.mean().item(),
                "max_ball_height_std_m": h.std(correction=0).item(),
                "max_ball_height_median_m": h.median().item(),
                "max_ball_height_min_m": h.min().item(),
                "max_ball_height_max_m": h.max().item()}


class LayupTask(HLCTask):
    name = "layup"
    num_obs = 5
    needs_hoop = True

    def __init__(self, cfg, num_envs, device):
        super().__init__(cfg, num_envs, device)
        self.stats = {"scores": torch.zeros(num_envs, dtype=torch.long, device=device)}

    def reset(self, env, ids):
        super().reset(env, ids)
        root_xy = env.sim.state.joint.root_pos[ids, :2]
        goal = _polar_goal(root_xy, self.cfg.layup.goal_distance, env.generator)
        self.goal[ids] = goal
        # rim centre over the goal; the hoop's +x (backboard -> court) points back at the start
        to_start = root_xy - goal
        yaw = torch.atan2(to_start[:, 1], to_start[:, 0])
        rim = torch.cat([goal, torch.full_like(goal[:, :1], self.cfg.layup.rim_height)], -1)
        env.sim.set_hoop_pose(ids, rim, yaw)

    @property
    def scored(self) -> torch.Tensor:
        return self.stats["scores"] > 0

    def obs(self, env, state):
        return torch.cat([goal_features(state.joint.root_pos, state.joint.root_quat, self.goal),
                          self.scored.float()[:, None]], -1)

    def step(self, env, prev_ball, state, live):
        c = self.cfg.layup
        j = state.joint
        rim = env.sim.hoop_pos
        crossed = live & rim_crossings(prev_ball, j.ball_pos, rim, env.hoop.rim_radius)
        self.stats["scores"] += crossed.long()
        dist = (j.ball_pos - rim).norm(dim=-1)
        t = ballistic_descent_time(j.ball_pos[:, 2], j.ball_lin_vel[:, 2], rim[:, 2], env.gravity)
        landing = j.ball_pos[:, :2] + j.ball_lin_vel[:, :2] * t.nan_to_num(0.0)[:, None]
        on_course = _ball_in_flight(state) & ~torch.isnan(t)
        descent = torch.where(on_course, torch.exp(-c.descent_scale * (landing - rim[:, :2]).norm(dim=-1)),
                              torch.zeros_like(dist))
        moving = j.root_lin_vel.norm(dim=-1) >= c.min_root_speed
        reward = torch.where(moving, 1.0, c.slow_scale) * (
            torch.exp(-c.distance_scale * dist) + c.score_bonus * self.scored.float()
            + c.height_weight * torch.exp(-(j.ball_pos[:, 2] - rim[:, 2]).abs()) + c.descent_weight * descent)
        return {"reward": reward, "rim_distance": dist, "descent_term": descent, "scores": crossed.float()}

    @staticmethod
    def summarize(stats, control_dt):
        minutes = stats["length"].sum().item() * control_dt / 60.0
        return {"success_rate": (stats["scores"] > 0).float().mean().item(),
                "scores_per_minute": stats["scores"].sum().item() / max(minutes, 1e-9),
                "scores_per_episode": stats["scores"].float().mean().item()}


TASKS: dict[str, type[HLCTask]] = {t.name: t for t in (HeadingTask, CirclingTask, ThrowingTask, LayupTask)}


# --------------------------------------------------------------------------- the env
class HLCEnv:
    """Vectorised HLC env over any :class:`~skillmimic.sim.Simulator`; discrete actions (N,)."""

    def __init__(self, cfg: HLCEnvConfig, motion: MotionLibrary, sim: Simulator, llc: LowLevelPolicy):
        cfg.hlc.validate()
        if sim.num_worlds != cfg.num_envs:
            raise ValueError(f"simulator has {sim.num_worlds} worlds, config asks for {cfg.num_envs} envs")
        if isinstance(cfg.state_init, str) and cfg.state_init != "random":
            raise ValueError(f"state_init must be 'random' or a frame index, got {cfg.state_init!r}")
        if llc.num_obs != LLC_OBS or llc.num_actions != sim.skeleton.num_dof:
            raise ValueError(f"the low-level policy maps {llc.num_obs} obs -> {llc.num_actions} actions; the HLC env "
                             f"needs {LLC_OBS} -> {sim.skeleton.num_dof}")
        motion.check_skeleton(sim.skeleton)
        self.cfg = cfg
        self.sim = sim
        self.motion = motion
        self.llc = llc
        self.device = sim.device
        self.num_envs = n = cfg.num_envs
        self.task: HLCTask = TASKS[cfg.hlc.task](cfg.hlc, n, self.device)
        if self.task.needs_hoop and not sim.has_hoop:
            raise ValueError(f"the {self.task.name} task needs a scene with a hoop (SceneConfig(hoop=HoopConfig()))")
        self.hoop: HoopConfig = sim.scene_cfg.hoop or HoopConfig()
        if self.task.needs_hoop and abs(self.hoop.rim_height - cfg.hlc.layup.rim_height) > 1e-9:
            raise ValueError(f"the scene's hoop was built for a rim at {self.hoop.rim_height} m but "
                             f"hlc.layup.rim_height={cfg.hlc.layup.rim_height}: build the scene with hlc_scene()")
        self.gravity = -float(sim.model.opt.gravity[2])
        self.control_dt = sim.control_dt
        self.control_mapping = torch.as_tensor([int(x) for x in cfg.hlc.control_mapping], dtype=torch.long,
                                               device=self.device)
        self.num_actions = len(self.control_mapping)
        self._fingertips = torch.tensor(sim.skeleton.fingertip_ids, device=self.device)
        self.generator = torch.Generator(device=motion.device)
        self.generator.manual_seed(cfg.seed if cfg.seed is not None else torch.seed() % (2**63))
        self.progress = torch.zeros(n, dtype=torch.long, device=self.device)
        self.nonfinite_resets = 0
        self.obs = torch.zeros(n, self.num_obs, device=self.device)

    @property
    def num_obs(self) -> int:
        return HUMANOID_OBS + BALL_OBS + self.task.num_obs

    @property
    def stats(self) -> dict[str, torch.Tensor]:
        """Current episode's statistics per env (task ones + ``length`` in env steps)."""
        return {**self.task.stats, "length": self.progress}

    @property
    def goal(self) -> torch.Tensor:
        return self.task.goal

    # ------------------------------------------------------------------ API
    def reset(self) -> torch.Tensor:
        self.reset_envs(torch.arange(self.num_envs, device=self.device))
        self.obs = self.compute_obs()
        return self.obs

    def reset_envs(self, env_ids: torch.Tensor) -> None:
        """New episodes for ``env_ids``: start state from the motion, then goals (and hoop)
        from that state -- all before any observation of the new episode exists."""
        n = len(env_ids)
        clips = self.motion.sample_clips(n, generator=self.generator)
        if self.cfg.state_init == "random":
            frames = self.motion.sample_times(clips, generator=self.generator)
        else:
            frames = self.motion.fixed_times(clips, int(self.cfg.state_init))
        state = self.motion.get_frame_at(clips, frames).state
        self.sim.set_state(env_ids, state.to(self.device))
        self.progress[env_ids] = 0
        self.task.reset(self, env_ids)

    def labels(self, actions: torch.Tensor) -> torch.Tensor:
        """Skill label of each high-level action."""
        actions = actions.to(self.device).long().reshape(self.num_envs)
        if ((actions < 0) | (actions >= self.num_actions)).any():      # one host sync per HLC step, not two
            raise ValueError(f"HLC actions must be in [0, {self.num_actions}), got {actions.tolist()}")
        return self.control_mapping[actions]

    @torch.no_grad()
    def step(self, actions: torch.Tensor):
        one_hot = skill_one_hot(self.labels(actions), NUM_SKILLS)
        scale = self.llc_action_scale
        n, dev = self.num_envs, self.device
        terminate = torch.zeros(n, dtype=torch.bool, device=dev)
        time_out = torch.zeros_like(terminate)
        nonfinite = torch.zeros_like(terminate)
        sums: dict[str, torch.Tensor] = {}
        counted = torch.zeros(n, device=dev)
        state = self.sim.state
        for _ in range(self.cfg.hlc.llc_steps):
            live = ~(terminate | time_out)
            mu = self.llc(torch.cat([scene_obs(state, self._fingertips), one_hot], -1)).clamp(-1.0, 1.0)
            prev_ball = state.joint.ball_pos.clone()
            self.sim.set_pd_targets(scale * mu.to(dev))
            state = self.sim.step()
            self.progress += live.long()
            terms = self.task.step(self, prev_ball, state, live)
            bad = self.sim.nonfinite & live
            terms["reward"] = torch.where(bad, torch.zeros_like(terms["reward"]), terms["reward"])
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + torch.where(live, v.float(), torch.zeros_like(v, dtype=torch.float32))
            counted += live.float()
            fell = (state.joint.root_pos[:, 2] < self.cfg.termination_height) & (self.progress > 1)
            ended = (fell & self.cfg.enable_early_termination) | bad
            terminate |= live & ended
            nonfinite |= bad
            time_out |= live & ~ended & (self.progress >= self.cfg.episode_length - 1)
        means = {k: v / counted.clamp_min(1) for k, v in sums.items()}
        reward = means["reward"]
        done = terminate | time_out
        info = {"terminate": terminate, "time_outs": time_out, "nonfinite": nonfinite, "reward_terms": means,
                "progress": self.progress.clone()}
        done_ids = done.nonzero().flatten()
        if len(done_ids):
            info["episodes"] = {"env_ids": done_ids, "terminated": terminate[done_ids],
                                **{k: v[done_ids].clone() for k, v in self.stats.items()}}
            self.nonfinite_resets += int(nonfinite.sum())
            self.reset_envs(done_ids)
        info["nonfinite_resets"] = self.nonfinite_resets
        self.obs = self.compute_obs()
        return self.obs, reward, done, info

    # ------------------------------------------------------------------ pieces
    @property
    def llc_action_scale(self) -> float:
        """PD target per LLC action unit: what the LLC was trained with, if its run config says."""
        run_cfg = getattr(self.llc, "run_config", None)
        return float(run_cfg.task.action_scale) if run_cfg is not None else float(self.cfg.action_scale)

    def compute_obs(self) -> torch.Tensor:
        state = self.sim.state
        return torch.cat([scene_obs(state, self._fingertips), self.task.obs(self, state)], dim=-1)

    def summarize(self, episodes: dict[str, torch.Tensor]) -> dict[str, float]:
        """Task metrics (and fall rate, mean length) over finished episodes (rows of ``episodes``)."""
        out = self.task.summarize(episodes, self.control_dt)
        out["fall_rate"] = episodes["terminated"].float().mean().item()
        out["episode_length_mean_s"] = episodes["length"].float().mean().item() * self.control_dt
        return out

    def close(self) -> None:
        self.sim.close()


def hlc_scene(scene: SceneConfig | None, hlc: HLCConfig) -> SceneConfig:
    """``scene`` with a hoop added when the task needs one, its rim at ``hlc.layup.rim_height``
    (the task's value is the one source of the rim height; the pole reaches the floor)."""
    scene = scene or SceneConfig()
    if not TASKS[hlc.task].needs_hoop:
        return scene
    rim = float(hlc.layup.rim_height)
    if scene.hoop is not None and scene.hoop.rim_height != HoopConfig.rim_height and scene.hoop.rim_height != rim:
        raise ValueError(f"sim.scene.hoop.rim_height={scene.hoop.rim_height} disagrees with "
                         f"task.hlc.layup.rim_height={rim}: set the layup rim height with task.hlc.layup.rim_height")
    return replace(scene, hoop=replace(scene.hoop or HoopConfig(), rim_height=rim))


def make_hlc_env(cfg: HLCEnvConfig, motion_path, llc_checkpoint: str | Path, sim_backend: str = "mujoco",
                 scene: SceneConfig | None = None, device: str = "cpu", llc: LowLevelPolicy | None = None,
                 **sim_kwargs) -> HLCEnv:
    """Load the LLC (first: a bad checkpoint fails before anything is built), then motion,
    simulator (with a hoop for the layup task) and env on one device. ``llc`` replaces
    the checkpoint (tests, scripted controllers)."""
    cfg.hlc.validate()
    if llc is None:
        llc = load_llc(llc_checkpoint, device=device)
    scene = hlc_scene(scene, cfg.hlc)
    _check_llc_scene(llc, scene, llc_checkpoint)
    motion = MotionLibrary(motion_path, device=device, skeleton=scene_skeleton(scene))
    sim = make_simulator(sim_backend, cfg.num_envs, scene=scene, device=device, **sim_kwargs)
    return HLCEnv(cfg, motion, sim, llc)


def _check_llc_scene(llc, scene: SceneConfig, path) -> None:
    """The LLC only knows the physics it was trained in: warn when the HLC's differs, and
    refuse another hinge order (its actions would drive other hinges)."""
    run_cfg = getattr(llc, "run_config", None)
    if run_cfg is None:
        return
    trained = run_cfg.sim.scene
    if trained.hinge_order != scene.hinge_order:
        raise ValueError(f"llc_checkpoint {path} was trained with sim.scene.hinge_order={trained.hinge_order!r}, "
                         f"this run has {scene.hinge_order!r}: its actions drive other hinges; "
                         f"set sim.scene.hinge_order={trained.hinge_order}")
    diff = [k for k in ("physics", "ball", "floor_friction", "self_collision")
            if getattr(trained, k) != getattr(scene, k)]
    if diff:
        log.warning("llc_checkpoint %s was trained with different sim.scene %s; the skills may not transfer",
                    path, ", ".join(diff))


__all__ = ["HLCConfig", "HLCEnvConfig", "HLCEnv", "HLCTask", "HeadingConfig", "CirclingConfig", "ThrowingConfig",
           "LayupConfig", "LLCCheckpointError", "LLC_OBS", "RECORDED_BALL_APEX_MAX", "TASKS", "ballistic_descent_time", "goal_features",
           "hlc_scene", "load_llc", "make_hlc_env"]
