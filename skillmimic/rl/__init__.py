"""Reinforcement learning for skillmimic: rl-games PPO with the skill env, network and agent
registered by name (:mod:`.registry`), typed hydra configs (:mod:`.config`), atomic
checkpoints (:mod:`.checkpoint`) and the training entry point (:func:`.runner.train`).

Importing this package does not import rl-games; the submodules do.
"""

from __future__ import annotations

__all__ = ["train", "register", "make_runner"]


def __getattr__(name):
    if name == "train":
        from .runner import train
        return train
    if name in ("register", "make_runner"):
        from . import registry
        return getattr(registry, name)
    raise AttributeError(name)
