"""The names under which rl-games knows our pieces, for each policy kind of the task
registry (:data:`envs.registry.POLICIES`).

rl-games builds everything from names in its config: the env (``env_name`` ->
``env_configurations`` -> a ``vecenv`` type), the network (``network.name``), the model
wrapper (``model.name``: rl-games' own) and the agent (``algo.name``). One table, so the
trainer, the policy loader and the registration agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RLGamesNames:
    env: str
    vecenv_type: str
    network: str
    model: str
    agent: str


RL_GAMES: dict[str, RLGamesNames] = {
    # Gaussian policy; rl-games' log-std model returns (mu, log_std, value, states) and owns
    # the observation and value running mean/std
    "continuous": RLGamesNames(env="skillmimic_skill", vecenv_type="SKILLMIMIC", network="skillmimic_mlp",
                               model="continuous_a2c_logstd", agent="skillmimic"),
    # categorical policy (high-level controllers)
    "discrete": RLGamesNames(env="skillmimic_hlc", vecenv_type="SKILLMIMIC_HLC", network="skillmimic_hlc_mlp",
                             model="discrete_a2c", agent="skillmimic_hlc"),
}

__all__ = ["RLGamesNames", "RL_GAMES"]
