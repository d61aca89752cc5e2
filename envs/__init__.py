"""Task environments built on the skillmimic simulator interface, by name (:mod:`.registry`)."""

from __future__ import annotations

from .registry import TaskSpec, register_task, task_names, task_spec
from .skill import SkillEnv, SkillEnvConfig, make_skill_env

__all__ = ["SkillEnv", "SkillEnvConfig", "TaskSpec", "make_skill_env", "register_task", "task_names", "task_spec"]
