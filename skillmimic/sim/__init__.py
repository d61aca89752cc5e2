"""Simulator backends behind one interface; each is imported only when asked for.

``make_simulator("mujoco", ...)`` (MuJoCo C on CPU threads) needs nothing beyond
``mujoco``; ``"mjwarp"`` imports Warp lazily, so CPU users never pay for it.
"""

from __future__ import annotations

import importlib

from .base import SceneLayout, SceneState, Simulator

_BACKENDS = {
    "mujoco": ("skillmimic.sim.mujoco_cpu", "MujocoCPUSimulator"),
    "mjwarp": ("skillmimic.sim.mujoco_warp", "MujocoWarpSimulator"),
}


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def simulator_class(name: str) -> type[Simulator]:
    try:
        module, cls = _BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown sim backend {name!r}; choose one of {available_backends()}") from None
    return getattr(importlib.import_module(module), cls)


def make_simulator(name: str, num_worlds: int, scene=None, device="cpu", **kwargs) -> Simulator:
    return simulator_class(name)(num_worlds, scene=scene, device=device, **kwargs)


__all__ = ["Simulator", "SceneState", "SceneLayout", "make_simulator", "simulator_class", "available_backends"]
