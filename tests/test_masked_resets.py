"""Masked resets (the CUDA path, run here on the CPU) of the SkillMimic-V2 env and the HLC env
do what the ids path does: the same mechanisms at the same rates, only for the envs in the
mask. They draw random numbers for every env, so they are compared by statistics, not by
value (the ids path stays the CPU default and keeps its numbers)."""

from __future__ import annotations

import pytest
import torch

from envs import SkillEnv, SkillEnvConfig
from envs.hlc import finished_episodes
from skillmimic.augment.env_hook import V2Augment, V2Config, stf_search_rows
from skillmimic.augment.similarity import masked_steps
from skillmimic.augment.stf import retarget
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator

from helpers import needs_sparse
from test_hlc import make_env as make_hlc_env
from test_v2_env import graph_file, hist_ckpt  # noqa: F401  (fixtures)


def _masked_env(motion, cfg: V2Config, n: int, seed: int = 0) -> SkillEnv:
    env = SkillEnv(SkillEnvConfig(num_envs=n, seed=seed, masked_resets=True), motion, MujocoCPUSimulator(n),
                   augment=V2Augment(cfg))
    env.reset()
    return env


def _snapshot(env):
    j = env.sim.state.joint
    return {"dof_pos": j.dof_pos.clone(), "clip": env.clip_ids.clone(), "frame": env.start_frames.clone(),
            "progress": env.progress.clone(), "delay": env.ref_delay.clone()}


def _assert_kept(env, before, keep):
    after = _snapshot(env)
    for k in before:
        assert torch.equal(after[k][keep], before[k][keep]), k


@needs_sparse
def test_masked_stf_starts_at_the_configured_rate_and_retargets(motion):
    env = _masked_env(motion, V2Config(state_init_random_prob=0.5), n=24, seed=1)
    aug = env.augment
    gen = torch.Generator().manual_seed(0)
    env.progress[:] = 3
    stf0, resets0 = aug.counts["stf"], aug.counts["resets"]
    for _ in range(5):
        mask = torch.rand(24, generator=gen) < 0.5
        before = _snapshot(env)
        env.reset_where(mask)
        _assert_kept(env, before, ~mask)                     # only the masked envs restarted
        assert (env.progress[mask] == 0).all()
        env.progress[:] = 3
    resets = aug.counts["resets"] - resets0
    rate = (aug.counts["stf"] - stf0) / resets
    assert resets > 30 and 0.3 < rate < 0.7                  # binomial(~60, 0.5): sd 0.065
    # the last reset's noised envs: off their reference, imitating the frame nearest to their
    # (noisy) state, with the masked steps of that match
    j, ref = env.sim.state.joint, env.reference()
    noisy = mask & (env.start_frames != aug.ats_frame)       # re-targeted away from the drawn frame
    assert noisy.any()
    assert (j.dof_pos[noisy] - ref.state.dof_pos[noisy]).abs().mean() > 0.05
    t_star, s = retarget(motion, env.clip_ids[noisy], j[noisy], env.skill_labels[noisy])
    same = t_star == env.start_frames[noisy]
    assert float(same.float().mean()) >= 0.75                # float32 round trip may flip ties
    assert torch.equal(env.ref_delay[noisy][same], masked_steps(s)[same])
    env.close()


@needs_sparse
def test_masked_stf_searches_a_few_rows_with_the_full_search_s_results(motion, graph_file):  # noqa: F811
    """STF's search on the masked path covers stf_search_rows rows (the drawn resetting envs
    first): the whole run is identical to searching every env."""
    cfg = V2Config(state_init_random_prob=0.1, state_switch_prob=0.3, graph_file=graph_file, reweight=True)
    n = 30
    envs = [SkillEnv(SkillEnvConfig(num_envs=n, seed=5, masked_resets=True, episode_length=4), motion,
                     MujocoCPUSimulator(n), augment=V2Augment(cfg)) for _ in range(2)]
    few, full = envs
    full.augment.stf_search_rows = n
    assert few.augment.stf_search_rows == stf_search_rows(n, 0.1) == 21
    for env in envs:
        env.reset()
    c0 = few.augment.counts
    gen = torch.Generator().manual_seed(0)
    for _ in range(12):
        a = 0.3 * torch.randn(n, few.num_actions, generator=gen)
        out_few, out_full = few.step(a), full.step(a)
        for x, y in zip(out_few[:3], out_full[:3]):
            assert torch.equal(x, y)
    counts = few.augment.counts
    assert counts == full.augment.counts
    assert counts["stf"] - c0["stf"] >= 4 and counts["stf_dropped"] == 0     # STF starts in the steps
    for env in envs:
        env.close()


@needs_sparse
def test_masked_stf_draws_beyond_the_search_rows_start_without_stf(motion):
    env = _masked_env(motion, V2Config(state_init_random_prob=1.0), n=8, seed=4)
    aug = env.augment
    aug.stf_search_rows = 3
    env.progress[:] = 3
    mask = torch.tensor([False, True, True, False, True, True, True, True])
    c0 = aug.counts
    env.reset_where(mask)
    c = {k: v - c0[k] for k, v in aug.counts.items()}
    assert (c["resets"], c["stf"], c["stf_dropped"]) == (6, 3, 3)
    # the first three resetting envs (1, 2, 4) start perturbed, the others (5, 6, 7) at their reference
    j, ref = env.sim.state.joint, env.reference()
    off = (j.dof_pos - ref.state.dof_pos).abs().amax(-1) > 1e-3
    assert off[[1, 2, 4]].all() and not off[[5, 6, 7]].any()
    assert torch.equal(env.start_frames[[5, 6, 7]], aug.ats_frame[[5, 6, 7]])
    assert (env.ref_delay[[5, 6, 7]] == 0).all()
    env.close()


@needs_sparse
def test_masked_switches_start_from_other_skills(motion, graph_file):  # noqa: F811
    env = _masked_env(motion, V2Config(state_switch_prob=1.0, graph_file=graph_file), n=16, seed=2)
    aug = env.augment
    env.progress[:] = 3
    mask = torch.arange(16) % 2 == 0
    before = _snapshot(env)
    c0 = aug.counts
    env.reset_where(mask)
    c = {k: v - c0[k] for k, v in aug.counts.items()}
    assert c["resets"] == 8 and c["switch"] + c["switch_no_match"] == 8 and c["switch"] > 0
    _assert_kept(env, before, ~mask)
    # a switched env starts from another clip's pose (not its reference's), held for the edge's steps
    j, ref = env.sim.state.joint, env.reference()
    off = (j.dof_pos[mask] - ref.state.dof_pos[mask]).abs().amax(-1) > 1e-3
    assert int(off.sum()) == c["switch"]
    assert (env.ref_delay[mask][~off] == 0).all()
    # the env keeps imitating its own clip, and the reference root xy is where the switched start stands
    assert torch.equal(env.skill_labels, motion.clip_labels[env.clip_ids])
    torch.testing.assert_close(j.root_pos[mask, :2], ref.state.root_pos[mask, :2], atol=1e-4, rtol=0)
    env.close()


@needs_sparse
def test_masked_ats_and_history_resets(motion, hist_ckpt):  # noqa: F811
    env = _masked_env(motion, V2Config(reweight=True, hist_ckpt=hist_ckpt), n=32, seed=3)
    aug = env.augment
    # sharpen the ATS weights onto clip 0, then every masked start comes from the weights
    m, col = aug.ats.start_mask.nonzero(as_tuple=True)
    aug.ats.record(m, col + aug.ats.min_frame, torch.where(m == 0, 0.0, 1.0))
    aug.ats.update()
    assert float(aug.ats.clip_weights[0]) > 0.5
    draws = []
    for _ in range(6):
        mask = torch.ones(32, dtype=torch.bool)
        env.reset_where(mask)
        draws.append(aug.ats_clip.clone())
        assert ((env.start_frames >= 2) & (env.start_frames <= motion.clip_lengths[env.clip_ids] - 2)).all()
    share = float((torch.cat(draws) == 0).double().mean())
    assert abs(share - float(aug.ats.clip_weights[0])) < 0.1        # 192 draws
    # history: the masked envs' buffers hold their new clip's reference history, the others are kept
    mask = torch.arange(32) < 10
    old = aug.history.buf.clone()
    env.reset_where(mask)
    after = aug.history.buf.clone()
    assert torch.equal(after[~mask], old[~mask]) and not torch.equal(after[mask], old[mask])
    aug.history.buf = old.clone()
    ids = mask.nonzero().flatten()
    aug.history.fill(ids, motion.clip_starts[env.clip_ids[ids]], env.start_frames[ids], aug.history_table)
    assert torch.equal(after, aug.history.buf)             # what the ids path's fill writes
    env.close()


@pytest.mark.parametrize("task", ["heading", "circling", "layup"])
def test_hlc_masked_resets_draw_goals_only_for_finished_envs(task):
    env, _ = make_hlc_env(task, num_envs=4, masked_resets=True)
    try:
        env.reset()
        old_goal = env.goal.clone()
        old_hoop = env.sim.hoop_pos.clone()
        env.progress[1] = env.cfg.episode_length - 2        # env 1 times out in this HLC step
        obs, _, done, info = env.step(torch.zeros(4, dtype=torch.long))
        assert done.tolist() == [False, True, False, False]
        keep = ~done
        assert torch.equal(env.goal[keep], old_goal[keep]) and torch.equal(env.sim.hoop_pos[keep], old_hoop[keep])
        assert env.progress[1] == 0 and (env.progress[keep] > 0).all()
        if task != "circling":                              # circling: the centre is the (same) start
            assert not torch.equal(env.goal[1], old_goal[1])
        # the finished episode is reported by mask; finished_episodes gives the ids path's rows
        assert torch.equal(info["episodes"]["mask"], done)
        ids, rows = finished_episodes(info["episodes"])
        assert ids.tolist() == [1] and rows["length"].tolist() == [env.cfg.episode_length - 1]
        assert rows["terminated"].tolist() == [False]
    finally:
        env.close()
