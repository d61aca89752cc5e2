"""Interaction reward as a pure function: identities, signs, contact terms."""

from __future__ import annotations

import math

import torch

from skillmimic.rewards import RewardInputs, RewardWeights, interaction_reward, wrap_angle


def inputs(n=5, seed=0) -> RewardInputs:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g)
    return RewardInputs(
        root_pos=torch.randn(n, 3, generator=g), root_quat=q / q.norm(dim=-1, keepdim=True),
        dof_pos=torch.randn(n, 156, generator=g), dof_vel=torch.randn(n, 156, generator=g),
        key_pos=torch.randn(n, 17, 3, generator=g), obj_pos=torch.randn(n, 3, generator=g),
    )


def test_identical_state_gives_one_for_every_term():
    ref = inputs()
    no_force = torch.zeros(5, 17, 3)
    ball_force = torch.tensor([[0.0, 0.0, 50.0]] * 3 + [[3.0, 0.0, 0.0]] * 2)  # z alone is not contact
    ref_contact = torch.tensor([0, 0, 0, 1, 1])
    terms = interaction_reward(ref, ref, ref.dof_vel, no_force, ball_force, ref_contact)
    for name, value in terms.items():
        torch.testing.assert_close(value, torch.ones(5), msg=name)


def test_each_term_drops_when_its_quantity_differs():
    ref = inputs()
    zeros_f = torch.zeros(5, 17, 3)
    ball_f = torch.zeros(5, 3)
    contact = torch.zeros(5)

    def terms_for(**changes):
        sim = RewardInputs(**{**vars(ref), **changes})
        return interaction_reward(sim, ref, ref.dof_vel, zeros_f, ball_f, contact)

    t = terms_for(key_pos=ref.key_pos + 0.1)
    assert (t["r_p"] < 1).all() and (t["r_ig"] < 1).all() and (t["r_o"] == 1).all()
    t = terms_for(obj_pos=ref.obj_pos + 0.3)
    assert (t["r_o"] < 1).all() and (t["r_ig"] < 1).all() and (t["r_p"] == 1).all()
    t = terms_for(dof_pos=ref.dof_pos + 0.2)
    expected = math.exp(-20 * (0.2**2 * 156 / 159))
    torch.testing.assert_close(t["r_r"], torch.full((5,), expected), rtol=1e-4, atol=1e-6)
    # body contact on a penalised body, ball touched when the reference says it is not
    t = interaction_reward(ref, ref, ref.dof_vel, zeros_f.index_fill(1, torch.tensor([3]), 5.0), ball_f, contact)
    torch.testing.assert_close(t["r_cg1"], torch.full((5,), math.exp(-5)))
    t = interaction_reward(ref, ref, ref.dof_vel, zeros_f, torch.tensor([[0.5, 0.0, 0.0]]).repeat(5, 1), contact)
    torch.testing.assert_close(t["r_cg2"], torch.full((5,), math.exp(-5)))
    torch.testing.assert_close(t["reward"], t["r_cg2"])


def test_angles_compared_modulo_two_pi():
    ref = inputs()
    sim = RewardInputs(**{**vars(ref), "dof_pos": ref.dof_pos + 2 * math.pi})
    t = interaction_reward(sim, ref, ref.dof_vel, torch.zeros(5, 17, 3), torch.zeros(5, 3), torch.zeros(5))
    torch.testing.assert_close(t["r_r"], torch.ones(5), atol=1e-4, rtol=0)
    assert abs(abs(float(wrap_angle(torch.tensor(3 * math.pi, dtype=torch.float64)))) - math.pi) < 1e-9


def test_weights_zero_disable_terms():
    ref, sim = inputs(seed=0), inputs(seed=1)
    w = RewardWeights(p=0, r=0, op=0, ig=0, cg1=0, cg2=0, smoothness=0)
    t = interaction_reward(sim, ref, sim.dof_vel, torch.ones(5, 17, 3), torch.ones(5, 3), torch.zeros(5), w)
    torch.testing.assert_close(t["reward"], torch.ones(5))
