"""The V2 hook in the skill env: reward masking, skill switching from the graph, STF starts,
the full recipe for a few steps, and V1 vs V2 training through the hydra configs."""

from __future__ import annotations

import dataclasses
import pathlib
from types import SimpleNamespace

import pytest
import torch

from envs import SkillEnv, SkillEnvConfig
from skillmimic.augment import history as H
from skillmimic.augment import stg
from skillmimic.augment.env_hook import V2Augment, V2Config, graph_tables
from skillmimic.augment.similarity import masked_steps
from skillmimic.augment.stf import retarget
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator

from helpers import SPARSE, needs_sparse   # ``motion``: the sparse clips (conftest.py)


@pytest.fixture(scope="module")
def graph_file(motion, tmp_path_factory):
    names = [pathlib.Path(f).relative_to(SPARSE).as_posix() for f in motion.files]
    return str(stg.build_graph(motion, clip_names=names).save(tmp_path_factory.mktemp("g") / "sparse.npz"))


@pytest.fixture(scope="module")
def hist_ckpt(motion, tmp_path_factory):
    """An untrained encoder (the env only needs a valid checkpoint; training is tested elsewhere)."""
    torch.manual_seed(0)
    cfg = H.EncoderConfig()
    model = H.StatePredictor(cfg)
    data = H.HistoryData(motion, cfg.history_length)
    ckpt = {"format": H.FORMAT, "version": H.VERSION, "config": dataclasses.asdict(cfg),
            "encoder": model.encoder.state_dict(), "head": model.head.state_dict(),
            "feature_mean": data.mean, "feature_std": data.std, "train": {"losses": []}}
    return str(H.save_checkpoint(ckpt, tmp_path_factory.mktemp("h") / "enc.pt"))


def make_env(motion, cfg: V2Config, n: int = 6, seed: int = 0) -> SkillEnv:
    return SkillEnv(SkillEnvConfig(num_envs=n, seed=seed), motion, MujocoCPUSimulator(n), augment=V2Augment(cfg))


def test_masked_rewards_take_the_mean_of_unmasked_envs_on_the_same_clip():
    hook = V2Augment(V2Config())
    env = SimpleNamespace(progress=torch.tensor([1, 1, 3, 5, 1, 2, 1]), ref_delay=torch.tensor([2, 0, 5, 0, 3, 0, 4]),
                          clip_ids=torch.tensor([0, 0, 0, 1, 2, 2, 3]), motion=SimpleNamespace(num_clips=4),
                          device=torch.device("cpu"))
    ref = SimpleNamespace(valid=torch.ones(7, dtype=torch.bool))
    reward = torch.tensor([0.9, 0.5, 0.1, 0.7, 0.2, 0.3, 0.8])
    info: dict = {"nonfinite": torch.zeros(7, dtype=torch.bool)}
    out = hook.on_step(env, reward, torch.zeros(7, dtype=torch.bool), ref, info)
    glob = (0.5 + 0.7 + 0.3) / 3                           # clip 3 has no unmasked env: global mean
    torch.testing.assert_close(out, torch.tensor([0.5, 0.5, 0.5, 0.7, 0.3, 0.3, glob]))
    assert info["reward_terms"]["v2_masked"].tolist() == [1, 0, 1, 0, 1, 0, 1]
    # missing reference frames are masked too; everything masked -> 0
    ref.valid[:] = False
    out = hook.on_step(env, reward, torch.zeros(7, dtype=torch.bool), ref, info)
    assert (out == 0).all()


@needs_sparse
def test_state_switch_starts_from_the_graph_match(motion, graph_file):
    env = make_env(motion, V2Config(state_switch_prob=1.0, graph_file=graph_file), n=8)
    env.reset()
    aug = env.augment
    edges = graph_tables(aug.graph, motion)
    rows = motion.frame_index(env.clip_ids, env.start_frames)
    sim = env.sim.state.joint
    ref = env.reference()
    assert aug.counts["switch"] == 8 - aug.counts["switch_no_match"] and aug.counts["switch"] > 0
    for i in range(8):
        # the start pose is that of one of the frame's graph edges (another skill) ...
        cands = [(int(c), int(f), int(n)) for c, f, n in zip(edges["clip"][rows[i]], edges["frame"][rows[i]],
                                                             edges["masked_steps"][rows[i]]) if c >= 0]
        src = motion.get_frame_at(torch.tensor([c for c, _, _ in cands]), torch.tensor([f for _, f, _ in cands]))
        err = (src.state.dof_pos - sim.dof_pos[i]).abs().max(-1).values
        j = int(err.argmin())
        assert float(err[j]) < 1e-4
        assert int(motion.clip_labels[cands[j][0]]) != int(env.skill_labels[i])
        # ... with that edge's masked steps, placed at the reference root xy, its own height
        assert int(env.ref_delay[i]) == cands[j][2]
        torch.testing.assert_close(sim.root_pos[i, :2], ref.state.root_pos[i, :2], atol=1e-4, rtol=0)
        torch.testing.assert_close(sim.root_pos[i, 2], src.state.root_pos[j, 2], atol=1e-4, rtol=0)
    # the env keeps imitating its own clip (label of the reference clip), held for N steps
    assert torch.equal(env.skill_labels, motion.clip_labels[env.clip_ids])
    start = env.start_frames.clone()
    for k in range(0, 13):
        env.progress[:] = k
        expected = start + (k - env.ref_delay).clamp_min(0)
        assert torch.equal(env.reference().times.long(), expected)
    env.close()


@needs_sparse
def test_stf_start_is_perturbed_and_retargeted(motion):
    env = make_env(motion, V2Config(state_init_random_prob=1.0, reweight=True), n=8, seed=3)
    env.reset()
    aug = env.augment
    sim = env.sim.state.joint
    sampled = motion.get_frame_at(aug.ats_clip, aug.ats_frame)      # what ATS drew
    assert (sim.dof_pos - sampled.state.dof_pos).abs().mean() > 0.05
    t_star, s = retarget(motion, env.clip_ids, sim, env.skill_labels)
    assert float((t_star == env.start_frames).float().mean()) >= 0.75     # float32 round trip may flip ties
    assert torch.equal(env.ref_delay[t_star == env.start_frames],
                       masked_steps(s)[t_star == env.start_frames])
    env.close()


@needs_sparse
def test_full_v2_recipe_runs(motion, graph_file, hist_ckpt):
    cfg = V2Config(state_switch_prob=0.3, graph_file=graph_file, state_init_random_prob=0.3, reweight=True,
                   reweight_interval=10, hist_ckpt=hist_ckpt)
    env = make_env(motion, cfg, n=6)
    obs = env.reset()
    assert obs.shape == (6, 902 + 3) and env.num_obs == 905
    gen = torch.Generator().manual_seed(0)
    masked_seen = 0.0
    for _ in range(40):
        obs, reward, done, info = env.step(0.1 * torch.randn(6, 156, generator=gen))
        assert torch.isfinite(obs).all() and torch.isfinite(reward).all()
        assert ((reward >= 0) & (reward <= 1)).all()
        masked_seen += float(info["reward_terms"]["v2_masked"].sum())
    aug = env.augment
    assert aug.counts["ats_updates"] == 4 and aug.ats.visits.sum() > 0
    torch.testing.assert_close(aug.ats.clip_weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert aug.counts["resets"] > 6 and masked_seen > 0
    # the history part of the observation is the encoder's embedding of the buffer
    torch.testing.assert_close(obs[:, -3:], aug.history.embed())
    env.close()


@needs_sparse
@pytest.mark.parametrize("task", ["skill", "skill_v2"])
def test_v1_and_v2_configs_train(task, tmp_path):
    """``task=skill`` vs ``task=skill_v2``: one word; both train a couple of epochs on CPU."""
    from hydra import compose, initialize_config_dir

    from skillmimic.rl.config import CONFIG_DIR, register_configs
    from skillmimic.rl.runner import train

    register_configs()
    overrides = [f"task={task}", f"motion.path={SPARSE}", "num_envs=4", "max_epochs=2", "train.horizon_length=8",
                 "train.network.units=[64,64]", f"output_dir={tmp_path}", "print_stats=false",
                 "task.v2.hist_pretrain_epochs=1", f"task.v2.cache_dir={tmp_path / 'v2_cache'}"]
    if task == "skill":
        overrides = overrides[:-2]
    n = torch.get_num_threads()
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        result = train(cfg)
    finally:
        torch.set_num_threads(n)
    assert result.epoch == 2 and result.checkpoint.exists()
    cached = sorted(p.name for p in (tmp_path / "v2_cache").glob("*")) if task == "skill_v2" else []
    if task == "skill_v2":
        assert any(p.startswith("stg_") for p in cached) and any(p.startswith("hist_") for p in cached)
        ckpt = torch.load(result.checkpoint, map_location="cpu", weights_only=True)   # no pickled objects
        assert ckpt["env_state"]["augment"]["ats"]["scores"].shape[0] == 6     # ATS state saved for resume
        _resume_without_task_stays_v2(result, tmp_path)
    else:
        assert not (tmp_path / "v2_cache").exists()


def _resume_without_task_stays_v2(result, tmp_path):
    """A V2 checkpoint resumed without task= resumes as V2; with task=skill it fails before
    anything is built, naming task=skill_v2; a start that fails after building the V2 caches
    removes them."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from skillmimic.rl.config import CONFIG_DIR, ConfigError
    from skillmimic.checkpoint import CheckpointError
    from skillmimic.rl.runner import train

    def run(args):
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=args)
        return train(cfg, args)

    resumed = run([f"resume={result.checkpoint}", "max_epochs=3"])
    assert resumed.epoch == 3
    conf = OmegaConf.load(next(result.run_dir.glob("config_resume_*.yaml")))
    assert conf.task.name == "skill_v2" and conf.task.v2 is not None
    with pytest.raises(ConfigError, match="trained with task=skill_v2, not task=skill"):
        run([f"resume={result.checkpoint}", "task=skill"])
    fresh_cache = tmp_path / "fresh_cache"
    before = set(result.run_dir.rglob("*"))
    with pytest.raises(CheckpointError, match="does not fit"):
        # task=skill_v2 restates the run's task (hydra needs it to reach task.v2.*); its settings are kept
        run([f"resume={result.checkpoint}", "task=skill_v2", f"task.v2.cache_dir={fresh_cache}",
             "train.network.units=[32]"])
    assert not fresh_cache.exists() and set(result.run_dir.rglob("*")) == before
