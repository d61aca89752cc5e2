"""Registration of skillmimic's pieces with rl-games, by name.

rl-games builds everything from names in its config: the env (``env_name`` ->
``env_configurations`` -> ``vecenv`` type), the network (``network.name`` ->
``model_builder.register_network``), the model wrapper (``model.name``) and the agent
(``algo.name`` -> the runner's algo factory). Registering is idempotent.
"""

from __future__ import annotations

from rl_games.algos_torch import model_builder, players
from rl_games.torch_runner import Runner

from .agent import AGENT_NAME, SkillMimicAgent
from .network import NETWORK_NAME, SkillMimicBuilder
from .vecenv import ENV_NAME, register_env

#: rl-games' Gaussian-policy wrapper whose network returns (mu, log_std, value, states);
#: it also owns the observation and value running mean/std.
MODEL_NAME = "continuous_a2c_logstd"


def register() -> None:
    """Register the env and the ``skillmimic_mlp`` network globally with rl-games."""
    register_env()
    model_builder.register_network(NETWORK_NAME, SkillMimicBuilder)


def make_runner(algo_observer=None) -> Runner:
    """An rl-games Runner that knows the ``skillmimic`` agent (training) and its player."""
    register()
    runner = Runner(algo_observer)
    runner.algo_factory.register_builder(AGENT_NAME, lambda **kw: SkillMimicAgent(**kw))
    runner.player_factory.register_builder(AGENT_NAME, lambda **kw: players.PpoPlayerContinuous(**kw))
    return runner


__all__ = ["AGENT_NAME", "ENV_NAME", "MODEL_NAME", "NETWORK_NAME", "register", "make_runner"]
