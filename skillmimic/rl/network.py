"""The policy networks as rl-games network builders: ``skillmimic_mlp`` (continuous skill
policy) and ``skillmimic_hlc_mlp`` (categorical high-level controller).

Separate actor and critic MLPs (no shared trunk: the critic's value scale must not pull
on the actor's features), a linear mu head, and a *fixed* Gaussian log-std. The std is
a parameter with ``requires_grad=False`` rather than a buffer so the checkpoint carries
it under the original's key (``a2c_network.sigma``); it never reaches the optimizer.
Layer names follow the original checkpoints (``actor_mlp.0/2/4``, ``critic_mlp.0/2/4``,
``mu``, ``value``, ``sigma``). Weights use PyTorch's default Linear init, biases zero.

Observation and value normalisation are not here: rl-games' model wrapper
(``continuous_a2c_logstd``) applies its running mean/std around this network when
``normalize_input`` / ``normalize_value`` are on.
"""

from __future__ import annotations

import torch
from rl_games.algos_torch.network_builder import NetworkBuilder
from torch import nn

from .names import RL_GAMES

NETWORK_NAME = RL_GAMES["continuous"].network

_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def _mlp(in_size: int, units: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in units:
        layers += [nn.Linear(in_size, width), _ACTIVATIONS[activation]()]
        in_size = width
    return nn.Sequential(*layers)


class SeparateActorCritic(NetworkBuilder.BaseNetwork):
    """Actor and critic MLPs of the same widths, no shared trunk, a linear value head, zero
    biases. Subclasses add the policy head (Gaussian mu for skills, logits for the HLC)."""

    name = NETWORK_NAME
    default_units = (1024, 512, 512)

    def __init__(self, params: dict, input_shape: tuple, value_size: int = 1):
        super().__init__()
        if len(input_shape) != 1:
            raise ValueError(f"{self.name} takes flat observations, got shape {tuple(input_shape)}")
        units = list(params.get("units", self.default_units))
        activation = params.get("activation", "relu")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"{self.name}: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        n_in = int(input_shape[0])
        self.actor_mlp = _mlp(n_in, units, activation)
        self.critic_mlp = _mlp(n_in, units, activation)
        self.value = nn.Linear(units[-1], value_size)
        self.out_features = units[-1]

    def _zero_biases(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def eval_critic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value(self.critic_mlp(obs))

    def is_separate_critic(self) -> bool:
        return True


class SkillMimicNetwork(SeparateActorCritic):
    """Returns ``(mu, log_std, value, rnn_states)`` as rl-games' log-std model expects."""

    def __init__(self, params: dict, actions_num: int, input_shape: tuple, value_size: int = 1, **_):
        super().__init__(params, input_shape, value_size)
        self.mu = nn.Linear(self.out_features, actions_num)
        self.sigma = nn.Parameter(torch.full((actions_num,), float(params.get("log_std", -2.9))),
                                  requires_grad=False)
        self._zero_biases()

    def forward(self, obs_dict: dict):
        obs = obs_dict["obs"]
        mu = self.mu(self.actor_mlp(obs))
        value = self.value(self.critic_mlp(obs))
        return mu, self.sigma.expand_as(mu), value, obs_dict.get("rnn_states")

    # separate actor/critic entry points (the HLC later runs the frozen actor alone)
    def eval_actor(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mu(self.actor_mlp(obs))


def builder_for(network_cls: type) -> type:
    """An rl-games ``NetworkBuilder`` class building ``network_cls`` from the ``network`` params."""

    class Builder(NetworkBuilder):
        def load(self, params: dict) -> None:
            self.params = params

        def build(self, name, **kwargs):
            return network_cls(self.params, **kwargs)

    Builder.__name__ = Builder.__qualname__ = f"{network_cls.__name__}Builder"
    return Builder


SkillMimicBuilder = builder_for(SkillMimicNetwork)


class HLCNetwork(SeparateActorCritic):
    """Returns ``(logits, value, rnn_states)`` as rl-games' ``discrete_a2c`` model expects
    ([1024, 512] by default, a Glorot-uniform logits head with zero bias)."""

    name = RL_GAMES["discrete"].network
    default_units = (1024, 512)

    def __init__(self, params: dict, actions_num: int, input_shape: tuple, value_size: int = 1, **_):
        super().__init__(params, input_shape, value_size)
        self.logits = nn.Linear(self.out_features, int(actions_num))
        self._zero_biases()
        nn.init.xavier_uniform_(self.logits.weight, gain=1.0)

    def forward(self, obs_dict: dict):
        obs = obs_dict["obs"]
        return self.logits(self.actor_mlp(obs)), self.value(self.critic_mlp(obs)), obs_dict.get("rnn_states")

    def eval_actor(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits(self.actor_mlp(obs))


HLCBuilder = builder_for(HLCNetwork)


def register_networks() -> None:
    """Make both networks known to rl-games' model builder (idempotent)."""
    from rl_games.algos_torch import model_builder

    model_builder.register_network(RL_GAMES["continuous"].network, SkillMimicBuilder)
    model_builder.register_network(RL_GAMES["discrete"].network, HLCBuilder)
