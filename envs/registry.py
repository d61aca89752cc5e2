"""The task registry: a task's name -> what it takes to build, train and evaluate it.

Why: the trainer, evaluation and the viewers must not know the tasks one by one. A task
module in ``envs/`` registers a :class:`TaskSpec` when imported (``register_task(...)`` at
module level); every module of the ``envs`` package is imported on the first lookup, so a
new task is one module here plus one YAML in ``cfg/task/`` whose ``env:`` names it (see
docs/architecture.md, "How to add a task").

A spec holds plain values and callables only; the rl-games names for each ``policy`` kind
live with the trainer (:mod:`skillmimic.rl.registry`), the evaluation of each ``evaluation``
kind with the evaluator (:mod:`skillmimic.eval.app`).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

#: policy kinds: a Gaussian policy over [-1, 1]^n actions, or a categorical one over n actions
POLICIES = ("continuous", "discrete")
#: evaluation kinds: per-skill imitation metrics of reference tracking (eval/runner.py), or
#: whole episodes summarised by the env's own ``summarize`` (eval/hlc.py)
EVALUATIONS = ("imitation", "episodes")


@dataclass(frozen=True)
class TaskSpec:
    """What the layers above need to know about one task.

    ``make_env(env_cfg, motion_path, *, sim_backend, scene, device, sim_kwargs, **parts)``
    builds the env; ``parts`` are the pieces built above ``envs/`` that the task asks for:
    ``augment`` (the SkillMimic-V2 hook, skill imitation) and ``llc`` (a
    :class:`~envs.hlc.llc.LowLevelPolicy`, when ``needs_llc``). The env exposes ``num_obs``
    and ``num_actions`` (its observation / action sizes) once built.

    ``config_type`` is the env's config dataclass: the trainer fills each of its fields from
    the ``task`` config node's field of the same name (plus ``num_envs`` and ``seed``), then
    applies ``config_values`` (this task's fixed values, e.g. which HLC task runs).
    """

    name: str
    config_type: type
    make_env: Callable[..., Any]
    policy: str = "continuous"
    evaluation: str = "imitation"
    needs_llc: bool = False
    config_values: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"task {self.name!r}: policy must be one of {POLICIES}, got {self.policy!r}")
        if self.evaluation not in EVALUATIONS:
            raise ValueError(f"task {self.name!r}: evaluation must be one of {EVALUATIONS}, got {self.evaluation!r}")


_TASKS: dict[str, TaskSpec] = {}
_discovered = False


def register_task(spec: TaskSpec) -> TaskSpec:
    """Make ``spec`` known by its name (a second, different spec under one name is an error)."""
    old = _TASKS.get(spec.name)
    if old is not None and old != spec:
        raise ValueError(f"task {spec.name!r} is already registered (by {old.make_env.__module__})")
    _TASKS[spec.name] = spec
    return spec


def _discover() -> None:
    """Import every module of the ``envs`` package once (their specs register themselves)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("envs")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"envs.{info.name}")


def task_spec(name: str) -> TaskSpec:
    """The registered task ``name``; ValueError listing the registered names otherwise."""
    if name not in _TASKS:
        _discover()
    try:
        return _TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task env {name!r}; registered: {', '.join(task_names())}") from None


def task_names() -> list[str]:
    _discover()
    return sorted(_TASKS)


__all__ = ["EVALUATIONS", "POLICIES", "TaskSpec", "register_task", "task_names", "task_spec"]
