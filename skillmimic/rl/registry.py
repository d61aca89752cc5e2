"""Registration of skillmimic's pieces with rl-games, by name (:data:`.names.RL_GAMES`).

rl-games builds everything from names in its config: the env (``env_name`` ->
``env_configurations`` -> ``vecenv`` type), the network (``network.name`` ->
``model_builder.register_network``), the model wrapper (``model.name``) and the agent
(``algo.name`` -> the runner's algo factory). Both policy kinds of the task registry are
registered; registering is idempotent.
"""

from __future__ import annotations

from rl_games.algos_torch import players
from rl_games.torch_runner import Runner

from .agent import AGENT_NAME, SkillMimicAgent
from .discrete import HLC_AGENT_NAME, HLCAgent
from .names import RL_GAMES
from .network import NETWORK_NAME, register_networks
from .vecenv import ENV_NAME, register_envs

MODEL_NAME = RL_GAMES["continuous"].model


def register() -> None:
    """Register the envs and networks of both policy kinds globally with rl-games."""
    register_envs()
    register_networks()


def make_runner(algo_observer=None) -> Runner:
    """An rl-games Runner that knows both agents (training) and the skill agent's player."""
    register()
    runner = Runner(algo_observer)
    runner.algo_factory.register_builder(AGENT_NAME, lambda **kw: SkillMimicAgent(**kw))
    runner.algo_factory.register_builder(HLC_AGENT_NAME, lambda **kw: HLCAgent(**kw))
    runner.player_factory.register_builder(AGENT_NAME, lambda **kw: players.PpoPlayerContinuous(**kw))
    return runner


__all__ = ["AGENT_NAME", "ENV_NAME", "MODEL_NAME", "NETWORK_NAME", "register", "make_runner"]
