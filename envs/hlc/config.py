"""The HLC env's configuration: the skill vocabulary, the task parameters, the episode."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

from skillmimic.observations import NUM_SKILLS

from .circling import CirclingConfig
from .heading import HeadingConfig
from .layup import LayupConfig
from .task import TASKS
from .throwing import ThrowingConfig


@dataclass
class HLCConfig:
    """The ``task.hlc`` node: the skill vocabulary and each task's parameters (only the
    running task's node is read)."""

    control_mapping: List[int] = field(default_factory=lambda: [12, 13, 11])   # action -> skill label
    llc_steps: int = 3                 # env steps per high-level decision
    heading: HeadingConfig = field(default_factory=HeadingConfig)
    circling: CirclingConfig = field(default_factory=CirclingConfig)
    throwing: ThrowingConfig = field(default_factory=ThrowingConfig)
    layup: LayupConfig = field(default_factory=LayupConfig)

    def validate(self, task: str) -> None:
        """Raise ValueError naming the offending key (``task``: the HLC task that will run)."""
        if task not in TASKS:
            raise ValueError(f"hlc task must be one of {sorted(TASKS)}, got {task!r}")
        if self.llc_steps < 1:
            raise ValueError(f"hlc.llc_steps must be >= 1, got {self.llc_steps}")
        if len(self.control_mapping) < 1:
            raise ValueError("hlc.control_mapping must list at least one skill label")
        bad = [int(x) for x in self.control_mapping if not 0 <= int(x) < NUM_SKILLS]
        if bad:
            raise ValueError(f"hlc.control_mapping labels must be in [0, {NUM_SKILLS}), got {bad}")
        self.task_config(task).validate()

    def task_config(self, task: str):
        """The parameter node of HLC task ``task``."""
        return getattr(self, task)


@dataclass
class HLCEnvConfig:
    task: str = "heading"              # the HLC task (envs.hlc.TASKS): heading | circling | throwing | layup
    num_envs: int = 16
    episode_length: int = 800          # env steps
    state_init: str | int = 2          # start frame of the sampled clip, or "random" (RSI)
    enable_early_termination: bool = True
    termination_height: float = 0.25
    action_scale: float = math.pi      # LLC action -> PD target; the LLC's own value wins
    seed: Optional[int] = None
    # reset finished worlds by mask (no host sync) or by ids; None: masks on CUDA, ids on the
    # CPU (envs.base.EpisodeEnv.masked_resets)
    masked_resets: Optional[bool] = None
    hlc: HLCConfig = field(default_factory=HLCConfig)

    def validate(self) -> None:
        self.hlc.validate(self.task)
