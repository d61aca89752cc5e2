"""SkillMimic skill-imitation environment: N humanoid+object worlds imitating reference clips.

Per step: action in [-1, 1]^156 -> PD targets pi * a (the original's joint-range mapping),
one 60 Hz control step of the simulator, progress += 1, then the unified interaction reward
compares the simulated state with the reference at the same progress (state(t) vs ref(t)).
Episodes start from a reference state (random start frame, or a fixed one), end at the end of
their reference segment or ``episode_length`` (time-out, bootstrapped), on a fall (root below
``termination_height`` after step 1; not bootstrapped) or when the simulator flags the world
non-finite (counted, not bootstrapped). Finished worlds are reset inside ``step`` and the
returned observation is the first one of their new episode.

Observations (902): :func:`skillmimic.observations.scene_obs` + the skill one-hot (64). The
skill label comes from each env's clip at reset; :meth:`set_skill` overrides it until that
env's next reset (keyboard skill switching).

Optional ``augment`` hook (SkillMimic-V2, :class:`skillmimic.augment.V2Augment`): it may draw
the episode starts (``sample_starts``), change how an episode starts (``on_reset`` returns a
plan: clip, start frame, initial state and a number of masked steps, during which the
reference is held at the start frame), post-process the reward (``on_step``) and append
observation features (``extra_obs``, ``num_extra_obs``). Without it the env is V1's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from skillmimic.assets.mjcf import SceneConfig, scene_skeleton
from skillmimic.motion import MotionLibrary, ReferenceFrame
from skillmimic.motion.skills import BODY_ONLY_LABELS, NO_TERMINATION_LABELS
from skillmimic.observations import NUM_SKILLS, scene_obs, scene_obs_size, skill_one_hot
from skillmimic.profiling import StageTimer
from skillmimic.rewards import RewardInputs, RewardWeights, interaction_reward
from skillmimic.sim import Simulator, make_simulator
from skillmimic.state import JointState

from .base import EpisodeEnv
from .registry import TaskSpec, register_task


@dataclass
class SkillEnvConfig:
    num_envs: int = 16
    episode_length: int = 60
    state_init: str | int = "random"        # "random" (RSI in [2, T-2]) or a fixed start frame
    enable_early_termination: bool = True
    termination_height: float = 0.3
    reward: RewardWeights = field(default_factory=RewardWeights)
    action_scale: float = math.pi
    seed: int | None = None
    # SkillMimic-V2's label rules (skillmimic/motion/skills.py): skills without the object (getup,
    # run without ball) are rewarded by the body term alone and start with the object on the floor
    # 1.5-5 m away; getup has no early termination (it starts on the floor). Read when the env is built.
    body_only_labels: tuple[int, ...] = BODY_ONLY_LABELS
    no_termination_labels: tuple[int, ...] = NO_TERMINATION_LABELS
    # Reset finished worlds by mask (no host sync; every step draws starts for all worlds and
    # keeps those of the finished ones) or by ids (``done.nonzero()``: the host waits for the
    # device, but only finished worlds are redrawn). None: masks on CUDA, ids on the CPU, where
    # reading the mask costs nothing (EpisodeEnv.masked_resets). The V2 hook does either.
    masked_resets: bool | None = None


class SkillEnv(EpisodeEnv):
    """Vectorised skill-imitation env over any :class:`~skillmimic.sim.Simulator`."""

    num_skills = NUM_SKILLS

    def __init__(self, cfg: SkillEnvConfig, motion: MotionLibrary, sim: Simulator, augment=None):
        super().__init__(cfg, motion, sim)
        self.num_actions = sim.skeleton.num_dof
        n, dev = self.num_envs, self.device
        self.clip_ids = torch.zeros(n, dtype=torch.long, device=dev)
        self.start_frames = torch.zeros(n, dtype=torch.long, device=dev)
        self.segment_length = torch.ones(n, dtype=torch.long, device=dev)
        self.ref_delay = torch.zeros(n, dtype=torch.long, device=dev)     # reference held for these steps
        self.skill_labels = torch.zeros(n, dtype=torch.long, device=dev)
        self.prev_dof_vel = torch.zeros(n, self.num_actions, device=dev)
        # Per-clip label rules, looked up by clip id on the hot path.
        clip_labels = motion.clip_labels.to(dev)
        self._clip_body_only = self._labels_in(clip_labels, cfg.body_only_labels)
        self._clip_no_termination = self._labels_in(clip_labels, cfg.no_termination_labels)
        self.timer = StageTimer(dev)     # opt-in: env.timer.enabled = True times the physics stage
        self.augment = augment
        if augment is not None:
            augment.attach(self)
        self.obs = torch.zeros(n, self.num_obs, device=dev)

    # ------------------------------------------------------------------ sizes
    @property
    def num_obs(self) -> int:
        extra = self.augment.num_extra_obs if self.augment is not None else 0
        return scene_obs_size(self.sim.skeleton) + self.num_skills + extra

    # ------------------------------------------------------------------ API
    def set_skill(self, label: int, env_ids: torch.Tensor | None = None) -> None:
        """Condition envs (all if None) on skill ``label`` until each one's next reset."""
        if not 0 <= int(label) < self.num_skills:
            raise ValueError(f"skill label must be in [0, {self.num_skills}), got {label}")
        ids = slice(None) if env_ids is None else env_ids
        self.skill_labels[ids] = int(label)
        self.obs = self.compute_obs()

    def step(self, actions: torch.Tensor):
        actions = actions.to(self.device).clamp(-1.0, 1.0)
        self.prev_dof_vel = self.sim.state.joint.dof_vel.clone()
        self.sim.set_pd_targets(self.cfg.action_scale * actions)
        with self.timer.stage("physics"):
            state = self.sim.step()
        self.progress += 1
        ref = self.reference()
        terms = self.compute_reward(state, ref)
        reward = terms["reward"]

        nonfinite = self.sim.nonfinite.clone()
        terminate = (self.fell(state.joint.root_pos[:, 2]) & ~self._clip_no_termination[self.clip_ids]) | nonfinite
        time_out = (self.progress >= self.segment_length - 1) & ~terminate
        done = terminate | time_out
        reward = torch.where(nonfinite, torch.zeros_like(reward), reward)

        info = {"terminate": terminate, "time_outs": time_out, "reward_terms": terms,
                "nonfinite": nonfinite, "progress": self.progress.clone()}
        if self.augment is not None:
            reward = self.augment.on_step(self, reward, done, ref, info)
        nonfinite_resets = self.count_nonfinite(nonfinite)
        if self.masked_resets:
            self.reset_where(done)
        else:
            done_ids = done.nonzero().flatten()
            if len(done_ids):
                self.reset_envs(done_ids)
        info["nonfinite_resets"] = nonfinite_resets
        self.obs = self.compute_obs()
        return self.obs, reward, done, info

    def epoch_stats(self) -> dict[str, torch.Tensor]:
        """The V2 hook's counters and per-epoch rates (:meth:`~skillmimic.augment.V2Augment.epoch_stats`),
        nothing without one."""
        return self.augment.epoch_stats() if self.augment is not None else {}

    # ------------------------------------------------------------------ pieces
    def reference(self, env_ids: torch.Tensor | None = None) -> ReferenceFrame:
        """The reference frame each env imitates now (start frame + progress, held at the
        start frame for the first ``ref_delay`` steps)."""
        ids = slice(None) if env_ids is None else env_ids
        t = self.reference_time(env_ids)
        return self.motion.get_frame_at(self.clip_ids[ids].to(self.motion.device), t.to(self.motion.device))

    def reference_time(self, env_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The clip frame each env imitates now, not clamped to the clip (past its end the
        library holds the last frame): start frame + progress - the held ``ref_delay`` steps."""
        ids = slice(None) if env_ids is None else env_ids
        return self.start_frames[ids] + (self.progress[ids] - self.ref_delay[ids]).clamp_min(0)

    def hold_episodes(self, steps: int) -> None:
        """Test mode: the current episodes run ``steps`` more steps without a time-out, whatever
        their clip's length (the reference holds the clip's last frame past its end)."""
        # a time-out comes at progress >= segment_length - 1; +2 keeps the last step inside
        self.segment_length[:] = self.progress + int(steps) + 2

    def sample_starts(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.augment is not None:
            drawn = self.augment.sample_starts(self, n)
            if drawn is not None:
                return drawn
        return super().sample_starts(n)

    def reset_envs(self, env_ids: torch.Tensor, clips: torch.Tensor | None = None,
                   frames: torch.Tensor | None = None) -> None:
        """Start new episodes for ``env_ids`` at (clip, frame) -- sampled unless given."""
        if clips is None:
            clips, frames = self.sample_starts(len(env_ids))
        self._start_segment(env_ids, clips, frames)
        ref = self.reference(env_ids)
        state = ref.state
        if self.augment is not None:
            plan = self.augment.on_reset(self, env_ids, ref)
            self._start_segment(env_ids, plan.clips, plan.frames)
            self.ref_delay[env_ids] = plan.masked_steps.to(self.device)
            state = plan.state
        state = self._object_away_for_body_only(env_ids, state.to(self.device))
        self.sim.set_state(env_ids, state)
        self.prev_dof_vel[env_ids] = state.dof_vel

    def reset_where(self, mask: torch.Tensor) -> None:
        """Start new episodes for the envs where ``mask`` is true, without host sync: starts
        (and the V2 hook's plan, :meth:`~skillmimic.augment.V2Augment.plan_where`) are drawn
        for every env and written where the mask is set."""
        self._start_segment_where(mask, *self.sample_starts(self.num_envs))
        ref = self.reference()
        state = ref.state
        if self.augment is not None:
            plan = self.augment.plan_where(self, mask, ref)
            self._start_segment_where(mask, plan.clips, plan.frames)
            self.ref_delay = torch.where(mask, plan.masked_steps.to(self.device), self.ref_delay)
            state = plan.state
        state = self._object_away_for_body_only(None, state.to(self.device))
        self.sim.set_state_where(mask, state)
        self.prev_dof_vel = torch.where(mask[:, None], state.dof_vel, self.prev_dof_vel)

    def _segments(self, clips: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(segment length, skill label) of episodes starting at ``frames`` of ``clips``: the rest
        of the clip, at most ``episode_length`` and at least 2 steps."""
        remaining = self.motion.clip_lengths.to(self.device)[clips] - frames
        return (remaining.clamp(max=self.cfg.episode_length).clamp_min(2),
                self.motion.clip_labels.to(self.device)[clips])

    def _start_segment_where(self, mask: torch.Tensor, clips: torch.Tensor, frames: torch.Tensor) -> None:
        """:meth:`_start_segment` of the envs where ``mask`` is set (``clips``, ``frames``: one per env)."""
        clips, frames = clips.to(self.device), frames.to(self.device)
        keep = ~mask
        segment, labels = self._segments(clips, frames)
        self.segment_length = torch.where(keep, self.segment_length, segment)
        self.skill_labels = torch.where(keep, self.skill_labels, labels)
        self.clip_ids = torch.where(keep, self.clip_ids, clips)
        self.start_frames = torch.where(keep, self.start_frames, frames)
        self.progress.masked_fill_(mask, 0)
        self.ref_delay.masked_fill_(mask, 0)

    def _start_segment(self, env_ids: torch.Tensor, clips: torch.Tensor, frames: torch.Tensor) -> None:
        clips, frames = clips.to(self.device), frames.to(self.device)
        self.clip_ids[env_ids] = clips
        self.start_frames[env_ids] = frames
        self.segment_length[env_ids], self.skill_labels[env_ids] = self._segments(clips, frames)
        self.progress[env_ids] = 0
        self.ref_delay[env_ids] = 0

    @staticmethod
    def _labels_in(clip_labels: torch.Tensor, labels) -> torch.Tensor:
        return torch.isin(clip_labels, torch.tensor(list(labels), dtype=torch.long, device=clip_labels.device))

    def _object_away_for_body_only(self, env_ids: torch.Tensor | None, state) -> JointState:
        """Body-only skills start with the object at rest on the floor 1.5-5 m away (rows of ``env_ids``,
        all envs if None). Computed for every row and selected by mask: no host sync."""
        if not self.cfg.body_only_labels:
            return state
        clip_ids = self.clip_ids if env_ids is None else self.clip_ids[env_ids]
        away = self._clip_body_only[clip_ids][:, None]
        n, g = len(clip_ids), self.generator
        angle = torch.rand(n, generator=g, device=g.device).to(self.device) * 2 * math.pi
        dist = 1.5 + 3.5 * torch.rand(n, generator=g, device=g.device).to(self.device)
        pos = state.root_pos.clone()
        pos[:, 0] += dist * torch.cos(angle)
        pos[:, 1] += dist * torch.sin(angle)
        pos[:, 2] = self.sim.scene_cfg.object.resting_height()
        state = state.clone()
        state.obj_pos = torch.where(away, pos, state.obj_pos)
        state.obj_lin_vel = state.obj_lin_vel.masked_fill(away, 0.0)
        state.obj_ang_vel = state.obj_ang_vel.masked_fill(away, 0.0)
        return state

    def compute_obs(self) -> torch.Tensor:
        parts = [scene_obs(self.sim.state, self._fingertips), skill_one_hot(self.skill_labels, self.num_skills)]
        if self.augment is not None:
            parts.append(self.augment.extra_obs(self))
        return torch.cat(parts, dim=-1)

    def compute_reward(self, state, ref: ReferenceFrame) -> dict[str, torch.Tensor]:
        j = state.joint
        sim_side = RewardInputs(j.root_pos, j.root_quat, j.dof_pos, j.dof_vel,
                                state.body_pos[:, self._key_bodies], j.obj_pos)
        r = ref.state
        ref_side = RewardInputs(r.root_pos, r.root_quat, r.dof_pos, r.dof_vel, ref.key_body_pos, r.obj_pos,
                                ref.root_expmap)
        ref_side = RewardInputs(*(t.to(self.device) for t in vars(ref_side).values()))
        terms = interaction_reward(sim_side, ref_side, self.prev_dof_vel,
                                   state.contact_forces[:, self._contact_bodies], state.obj_contact_force,
                                   ref.contact.to(self.device), self.cfg.reward)
        if self.cfg.body_only_labels:
            body_only = self._clip_body_only[self.clip_ids]
            terms["reward"] = torch.where(body_only, terms["r_b"], terms["reward"])
        return terms

def make_skill_env(cfg: SkillEnvConfig, motion_path, sim_backend: str = "mujoco",
                   scene: SceneConfig | None = None, device: str = "cpu", augment=None, **sim_kwargs) -> SkillEnv:
    """Build motion library + simulator + env on one device (``augment``: optional V2 hook)."""
    motion = MotionLibrary(motion_path, device=device, skeleton=scene_skeleton(scene))
    sim = make_simulator(sim_backend, cfg.num_envs, scene=scene, device=device, **sim_kwargs)
    return SkillEnv(cfg, motion, sim, augment=augment)


def _make_env(env_cfg, motion_path, *, sim_backend="mujoco", scene=None, device="cpu", sim_kwargs=None,
              augment=None):
    return make_skill_env(env_cfg, motion_path, sim_backend=sim_backend, scene=scene, device=device,
                          augment=augment, **(sim_kwargs or {}))


register_task(TaskSpec(name="skill", config_type=SkillEnvConfig, make_env=_make_env, policy="continuous",
                       evaluation="imitation", description="skill imitation of reference clips (V1; V2 with "
                                                           "task.v2)"))
