"""Task environments built on the skillmimic simulator interface, by name."""

from __future__ import annotations

from .skill import SkillEnv, SkillEnvConfig, make_skill_env

__all__ = ["SkillEnv", "SkillEnvConfig", "make_skill_env"]
