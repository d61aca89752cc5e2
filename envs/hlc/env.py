"""The HLC env: a discrete policy picks skills that a frozen low-level policy performs.

Per HLC step, the action ``a`` selects the skill label ``control_mapping[a]``; the LLC then
runs ``llc_steps`` env steps (3: the HLC decides at 20 Hz), recomputing its deterministic
mean from the new observation each step (``scene_obs`` + one-hot of the held label, mean
clamped to [-1, 1]). The HLC reward is the mean of the per-step task rewards and the HLC
step is done when any of its env steps ended the episode (steps after that one are not
counted). Observation = :func:`skillmimic.observations.scene_obs` (838) + the task's features.

Finished episodes are reported in ``info["episodes"]``: by ids (``env_ids`` and one row per
finished episode) when the env resets by ids (CPU), by mask (``mask`` over all envs and a row
per env, read only where ``mask`` is set) when it resets by mask (CUDA: no host sync);
:func:`finished_episodes` turns either into rows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from skillmimic.assets.mjcf import HoopConfig, SceneConfig, scene_skeleton
from skillmimic.motion import MotionLibrary
from skillmimic.observations import NUM_SKILLS, scene_obs, scene_obs_size, skill_one_hot
from skillmimic.sim import Simulator, make_simulator

from ..base import EpisodeEnv
from .config import HLCEnvConfig
from .llc import LLC_OBS, LowLevelPolicy
from .task import TASKS, HLCTask


class HLCEnv(EpisodeEnv):
    """Vectorised HLC env over any :class:`~skillmimic.sim.Simulator`; discrete actions (N,)."""

    def __init__(self, cfg: HLCEnvConfig, motion: MotionLibrary, sim: Simulator, llc: LowLevelPolicy):
        cfg.validate()
        super().__init__(cfg, motion, sim)
        if llc.num_obs != LLC_OBS or llc.num_actions != sim.skeleton.num_dof:
            raise ValueError(f"the low-level policy maps {llc.num_obs} obs -> {llc.num_actions} actions; the HLC env "
                             f"needs {LLC_OBS} -> {sim.skeleton.num_dof}")
        self.llc = llc
        n = self.num_envs
        self.task: HLCTask = TASKS[cfg.task](cfg.hlc.task_config(cfg.task), n, self.device)
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
        self.obs = torch.zeros(n, self.num_obs, device=self.device)

    @property
    def num_obs(self) -> int:
        return scene_obs_size(self.sim.skeleton) + self.task.num_obs

    @property
    def steps_per_action(self) -> int:
        return int(self.cfg.hlc.llc_steps)

    @property
    def stats(self) -> dict[str, torch.Tensor]:
        """Current episode's statistics per env (task ones + ``length`` in env steps)."""
        return {**self.task.stats, "length": self.progress}

    @property
    def goal(self) -> torch.Tensor:
        return self.task.goal

    # ------------------------------------------------------------------ API
    def reset_envs(self, env_ids: torch.Tensor) -> None:
        """New episodes for ``env_ids``: start state from the motion, then goals (and hoop)
        from that state -- all before any observation of the new episode exists."""
        clips, frames = self.sample_starts(len(env_ids))
        state = self.motion.get_frame_at(clips, frames).state
        self.sim.set_state(env_ids, state.to(self.device))
        self.progress[env_ids] = 0
        self.task.reset(self, env_ids)

    def reset_where(self, mask: torch.Tensor) -> None:
        """:meth:`reset_envs` of the envs where ``mask`` is set, without host sync: start
        states and goals are drawn for every env and kept where ``mask`` is set."""
        clips, frames = self.sample_starts(self.num_envs)
        state = self.motion.get_frame_at(clips, frames).state
        self.sim.set_state_where(mask, state.to(self.device))
        self.progress.masked_fill_(mask, 0)
        self.task.reset_where(self, mask)

    def labels(self, actions: torch.Tensor) -> torch.Tensor:
        """Skill label of each high-level action."""
        actions = actions.to(self.device).long().reshape(self.num_envs)
        bad = (actions < 0) | (actions >= self.num_actions)
        if self.masked_resets:
            # checked on the device (a host read would sync every HLC step): a bad action stops
            # the process at a later kernel launch instead of raising here
            torch._assert_async(~bad.any())
        elif bad.any():
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
            prev_ball = state.joint.obj_pos.clone()
            self.sim.set_pd_targets(scale * mu.to(dev))
            state = self.sim.step()
            self.progress += live.long()
            terms = self.task.step(self, prev_ball, state, live)
            bad = self.sim.nonfinite & live
            terms["reward"] = torch.where(bad, torch.zeros_like(terms["reward"]), terms["reward"])
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + torch.where(live, v.float(), torch.zeros_like(v, dtype=torch.float32))
            counted += live.float()
            ended = self.fell(state.joint.root_pos[:, 2]) | bad
            terminate |= live & ended
            nonfinite |= bad
            time_out |= live & ~ended & (self.progress >= self.cfg.episode_length - 1)
        means = {k: v / counted.clamp_min(1) for k, v in sums.items()}
        reward = means["reward"]
        done = terminate | time_out
        info = {"terminate": terminate, "time_outs": time_out, "nonfinite": nonfinite, "reward_terms": means,
                "progress": self.progress.clone()}
        info["nonfinite_resets"] = self.count_nonfinite(nonfinite)
        if self.masked_resets:
            info["episodes"] = {"mask": done, "terminated": terminate, **{k: v.clone() for k, v in self.stats.items()}}
            self.reset_where(done)
        else:
            done_ids = done.nonzero().flatten()
            if len(done_ids):
                info["episodes"] = {"env_ids": done_ids, "terminated": terminate[done_ids],
                                    **{k: v[done_ids].clone() for k, v in self.stats.items()}}
                self.reset_envs(done_ids)
        self.obs = self.compute_obs()
        return self.obs, reward, done, info

    # ------------------------------------------------------------------ pieces
    @property
    def llc_action_scale(self) -> float:
        """PD target per LLC action unit: what the LLC was trained with, if it says."""
        scale = getattr(self.llc, "action_scale", None)
        return float(scale) if scale is not None else float(self.cfg.action_scale)

    def compute_obs(self) -> torch.Tensor:
        state = self.sim.state
        return torch.cat([scene_obs(state, self._fingertips), self.task.obs(self, state)], dim=-1)

    def summarize(self, episodes: dict[str, torch.Tensor]) -> dict[str, float]:
        """Task metrics (and fall rate, mean length) over finished episodes (rows of ``episodes``)."""
        out = self.task.summarize(episodes, self.control_dt)
        out["fall_rate"] = episodes["terminated"].float().mean().item()
        out["episode_length_mean_s"] = episodes["length"].float().mean().item() * self.control_dt
        return out


def finished_episodes(episodes: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(env ids, one row per finished episode) of a step's ``info["episodes"]``, whether the
    env reported them by ids or by mask (reading a mask is a host sync: for evaluation and
    logging, not the training step)."""
    if "env_ids" in episodes:
        return episodes["env_ids"], {k: v for k, v in episodes.items() if k != "env_ids"}
    ids = episodes["mask"].nonzero().flatten()
    return ids, {k: v[ids] for k, v in episodes.items() if k != "mask"}


def hlc_scene(scene: SceneConfig | None, cfg: HLCEnvConfig) -> SceneConfig:
    """``scene`` with a hoop added when the task needs one, its rim at ``hlc.layup.rim_height``
    (the task's value is the one source of the rim height; the pole reaches the floor)."""
    scene = scene or SceneConfig()
    if not TASKS[cfg.task].needs_hoop:
        return scene
    rim = float(cfg.hlc.layup.rim_height)
    if scene.hoop is not None and scene.hoop.rim_height != HoopConfig.rim_height and scene.hoop.rim_height != rim:
        raise ValueError(f"sim.scene.hoop.rim_height={scene.hoop.rim_height} disagrees with "
                         f"task.hlc.layup.rim_height={rim}: set the layup rim height with task.hlc.layup.rim_height")
    return replace(scene, hoop=replace(scene.hoop or HoopConfig(), rim_height=rim))


def make_hlc_env(cfg: HLCEnvConfig, motion_path: str | Path, llc: LowLevelPolicy, sim_backend: str = "mujoco",
                 scene: SceneConfig | None = None, device: str = "cpu", **sim_kwargs) -> HLCEnv:
    """Motion, simulator (with a hoop for a task that needs one, :func:`hlc_scene`) and env on
    one device, driving the low-level policy ``llc``."""
    cfg.validate()
    scene = hlc_scene(scene, cfg)
    motion = MotionLibrary(motion_path, device=device, skeleton=scene_skeleton(scene))
    sim = make_simulator(sim_backend, cfg.num_envs, scene=scene, device=device, **sim_kwargs)
    return HLCEnv(cfg, motion, sim, llc)


__all__ = ["HLCEnv", "finished_episodes", "hlc_scene", "make_hlc_env"]
