"""The episode machinery every task env shares: N worlds of one simulator, started from
reference-motion states, ended by a fall, a time limit or a non-finite world.

Why a base class: the skill env and the HLC env (and any new task) draw their episode
starts, seed their sampler, count non-finite worlds and decide falls the same way; one copy
keeps them from drifting apart. A subclass supplies what is its own:

* ``reset_envs(env_ids)`` -- start new episodes (most draw their starts with
  :meth:`sample_starts`), and ``reset_where(mask)``, the same without host sync: what a
  step uses to reset its finished worlds when :attr:`masked_resets` is set (on CUDA),
* ``compute_obs()`` and ``step(actions)`` (which uses :meth:`fell` and :meth:`count_nonfinite`),
* ``num_obs`` / ``num_actions``.

Test mode (evaluation, viewers): :meth:`set_test_mode` switches early termination off or on
without touching the config the env was built from.
"""

from __future__ import annotations

import torch

from skillmimic.motion import MotionLibrary
from skillmimic.sim import Simulator


class EpisodeEnv:
    """Base of the vectorised task envs over any :class:`~skillmimic.sim.Simulator`.

    ``cfg`` needs ``num_envs``, ``state_init`` ("random" or a start frame), ``seed``,
    ``termination_height`` and ``enable_early_termination``; ``masked_resets`` (optional).

    ``masked_resets``: a step resets its finished worlds by mask (``reset_where``: new
    episodes are drawn for every world and kept where the done-mask is set; no host sync)
    or by ids (``done.nonzero()`` + ``reset_envs``: the host waits for the device, but only
    finished worlds draw). ``cfg.masked_resets`` None (default): masks on CUDA, ids on the
    CPU, where reading the mask costs nothing and the draws stay those of the ids path."""

    num_obs: int
    num_actions: int
    #: env steps per action of the policy (an HLC holds each skill for several)
    steps_per_action: int = 1

    def __init__(self, cfg, motion: MotionLibrary, sim: Simulator):
        if sim.num_worlds != cfg.num_envs:
            raise ValueError(f"simulator has {sim.num_worlds} worlds, config asks for {cfg.num_envs} envs")
        if isinstance(cfg.state_init, str) and cfg.state_init != "random":
            raise ValueError(f"state_init must be 'random' or a frame index, got {cfg.state_init!r}")
        motion.check_skeleton(sim.skeleton)
        self.cfg = cfg
        self.sim = sim
        self.motion = motion
        self.device = sim.device
        self.num_envs = cfg.num_envs
        self.generator = torch.Generator(device=motion.device)
        self.generator.manual_seed(cfg.seed if cfg.seed is not None else torch.seed() % (2**63))
        self.progress = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.early_termination = bool(cfg.enable_early_termination)
        masked = getattr(cfg, "masked_resets", None)
        self.masked_resets = (self.device.type == "cuda") if masked is None else bool(masked)
        self._fingertips = torch.tensor(sim.skeleton.fingertip_ids, device=self.device)
        self._key_bodies = torch.tensor(sim.skeleton.key_body_ids, device=self.device)
        self._contact_bodies = torch.tensor(sim.skeleton.contact_reward_body_ids, device=self.device)
        self._nonfinite_resets = torch.zeros((), dtype=torch.long, device=self.device)   # on the device: no sync

    # ------------------------------------------------------------------ counters
    @property
    def nonfinite_resets(self) -> int:
        """Worlds reset so far because they went non-finite (reading it syncs on CUDA)."""
        return int(self._nonfinite_resets)

    @nonfinite_resets.setter
    def nonfinite_resets(self, value: int) -> None:
        self._nonfinite_resets.fill_(int(value))

    def count_nonfinite(self, nonfinite: torch.Tensor) -> torch.Tensor:
        """Add this step's non-finite worlds to the running count; returns the count (a device tensor)."""
        self._nonfinite_resets += nonfinite.sum()
        return self._nonfinite_resets

    def epoch_stats(self) -> dict[str, torch.Tensor]:
        """Statistics for the training log, ``{tensorboard tag: device scalar}``, computed
        without a host sync; the trainer reads (syncs) them once per epoch, logs each under
        its tag and shows the ``*_rate`` ones in its console line. Task envs add their own
        (the skill env: its V2 hook's); none here."""
        return {}

    # ------------------------------------------------------------------ episodes
    def reset(self) -> torch.Tensor:
        self.reset_envs(torch.arange(self.num_envs, device=self.device))
        self.obs = self.compute_obs()
        return self.obs

    def sample_starts(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(clips, start frames) of ``n`` new episodes from the env's generator: clips by the
        library's sampling weights, frames by ``cfg.state_init``."""
        clips = self.motion.sample_clips(n, generator=self.generator)
        if self.cfg.state_init == "random":
            frames = self.motion.sample_times(clips, generator=self.generator)
        else:
            frames = self.motion.fixed_times(clips, int(self.cfg.state_init))
        return clips, frames

    def fell(self, root_height: torch.Tensor) -> torch.Tensor:
        """Worlds whose root is below ``cfg.termination_height`` after their first step
        (without early termination: none)."""
        return (root_height < self.cfg.termination_height) & (self.progress > 1) & self.early_termination

    # ------------------------------------------------------------------ test mode
    def set_test_mode(self, early_termination: bool | None = None) -> None:
        """Evaluation settings that outlive resets, without touching ``cfg``:
        ``early_termination`` False lets fallen worlds go on (their episode ends at its time
        limit only); None leaves it as it is. Set it back with the value of :attr:`early_termination`."""
        if early_termination is not None:
            self.early_termination = bool(early_termination)

    @property
    def key_body_ids(self) -> torch.Tensor:
        """Bodies whose positions the tracking reward and metrics compare with the reference."""
        return self._key_bodies

    @property
    def contact_body_ids(self) -> torch.Tensor:
        """Bodies whose contact forces the contact reward and metrics read."""
        return self._contact_bodies

    # ------------------------------------------------------------------ subclass API
    def reset_envs(self, env_ids: torch.Tensor) -> None:
        raise NotImplementedError

    def reset_where(self, mask: torch.Tensor) -> None:
        raise NotImplementedError

    def compute_obs(self) -> torch.Tensor:
        raise NotImplementedError

    def close(self) -> None:
        self.sim.close()


__all__ = ["EpisodeEnv"]
