"""Evaluation runner and eval.py: known answers with a perfect-tracking simulator, scenario
plumbing, checkpoint loading (same actions as rl-games' player) and the eval.py CLI on a
checkpoint from a smoke training run (JSON + PNG written)."""

from __future__ import annotations

import json
import math
import runpy
import sys

import numpy as np
import pytest
import torch

from envs import SkillEnv, SkillEnvConfig
from skillmimic.eval.app import apply_run_config, selected_groups
from skillmimic.eval.runner import (
    EvalSettings, Perturbation, Push, clip_peak_ball_height, evaluate, perturb_state_uniform, push_state,
)
from skillmimic.motion import MotionLibrary
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator

from helpers import DEMO, REPO
LAYUP = REPO.parent / "shared" / "data" / "motions" / "BallPlay-M" / "layup"
# Checkpoint/CLI tests run on the shared layup, or on the repository's demo clips without it.
SMOKE_MOTION = LAYUP if LAYUP.exists() else DEMO if any(DEMO.glob("*.pt")) else None


class PerfectTracker(MujocoCPUSimulator):
    """Every step lands exactly on the reference frame the env compares with next, so the
    state always equals the reference. Contact sensors read zero (a state write clears them)."""

    env: SkillEnv

    def step(self):
        env = self.env
        self.set_state(None, env.motion.get_frame_at(env.clip_ids, env.start_frames + env.progress + 1).state)
        return self.state


@pytest.fixture(scope="module")
def motion():
    if not LAYUP.exists():
        pytest.skip("shared BallPlay data not present")
    return MotionLibrary(LAYUP)


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def make_env(motion, sim_cls=MujocoCPUSimulator, n=2):
    cfg = SkillEnvConfig(num_envs=n, seed=0)
    sim = sim_cls(n)
    env = SkillEnv(cfg, motion, sim)
    sim.env = env
    env.reset()
    return env


def zero_policy(obs):
    return torch.zeros(obs.shape[0], 156)


# ----------------------------------------------------------------------------- runner, known answers
def test_perfect_tracking_gives_zero_error_known_contact_accuracy_and_layup_success(motion):
    """Start at frame 100 of the layup; in 30 steps the ball passes 1.8 m (frame ~110), so the
    layup latches. Errors are zero; the simulated ball contact flag is always 0, so contact
    accuracy is the fraction of compared reference frames (101..130) without contact, and the
    reward is exp(-5) (r_cg2) on contact frames and ~1 elsewhere."""
    env = make_env(motion, PerfectTracker)
    s = EvalSettings(rounds=2, episode_length=30, start_frame=100, start_spread=0.0, short_rounds="flag",
                     progress=False)
    rep = evaluate(env, zero_policy, s)
    env.close()
    (r,) = rep.results
    # 2 rounds x 2 envs planned, all the same (one clip, one start frame, no noise): run once
    assert (r.scenario, r.score_label, r.criterion, r.episodes, r.duplicates) == ("skill", 31, "layup", 1, 3)
    assert r.success_rate == 1.0 and r.success_per_round == [1.0]
    assert not r.criterion_covered and r.criterion_steps == 301
    assert r.frames == 30
    assert r.e_b_mm < 1.0 and r.e_o_mm < 1.0
    ref_contact = motion.contact[101:131].float()
    free = float(1 - ref_contact.mean())
    assert r.contact_accuracy == pytest.approx(free, abs=1e-6)
    assert r.e_cg == pytest.approx(0.5 * float(ref_contact.mean()), abs=1e-6)
    assert r.acc == pytest.approx(free, abs=1e-6)
    expected_nar = float((ref_contact * math.exp(-5) + (1 - ref_contact)).mean())
    assert r.nar == pytest.approx(expected_nar, abs=0.02)
    assert len(r.nar_per_round) == 1


def test_episode_runs_past_the_clip_end_without_reset(motion):
    """Test mode: early termination off and no time-out at the clip end; metrics stop at the
    clip end while the success criterion keeps being updated."""
    env = make_env(motion, PerfectTracker)
    T = int(motion.clip_lengths[0])
    s = EvalSettings(rounds=1, episode_length=T - 150 + 10, start_frame=150, start_spread=0.0, short_rounds="flag",
                     progress=False)
    rep = evaluate(env, zero_policy, s)
    env.close()
    (r,) = rep.results
    assert r.frames == T - 1 - 150             # frames 151..T-1 have a reference
    assert r.success_rate == 1.0               # ball above 1.8 m at the start (peak of the shot)
    assert env.cfg.enable_early_termination    # restored afterwards


def test_transition_and_robustness_scenarios_with_zero_actions(motion):
    env = make_env(motion)
    s = EvalSettings(rounds=1, episode_length=8, transitions=["31->13", "31:31"], robustness=True,
                     robustness_rounds=1, push=Push(interval=4, speed=2.0), progress=False)
    rep = evaluate(env, zero_policy, s, meta={"checkpoint": "zero"})
    names = [(r.scenario, r.start_label, r.score_label, r.criterion) for r in rep.results]
    assert names == [("skill", 31, 31, "layup"), ("transition", 31, 13, "run"), ("transition", 31, 31, "layup"),
                     ("perturbed", 31, 31, "layup"), ("push", 31, 31, "layup")]
    for r in rep.results:
        # 8-step rounds cannot test layup (301 steps) or run (101): not scored, by default
        assert math.isnan(r.success_rate) and not r.criterion_covered
        assert math.isnan(r.e_b_mm) == (r.scenario == "transition")
    d = rep.to_dict()
    assert json.loads(json.dumps(d))["results"][1]["e_b_mm"] is None      # NaN -> null in JSON
    table = rep.table()
    assert "031->013" in table and "031 layup [push]" in table and "short" in table
    assert "layup: rounds of 8 steps do not cover its window (needs >= 301 steps)" in table
    with pytest.raises(ValueError, match="no clip in the motion library"):
        evaluate(env, zero_policy, EvalSettings(rounds=1, episode_length=2, skills=[13], progress=False))
    with pytest.raises(ValueError, match="A->B"):
        evaluate(env, zero_policy, EvalSettings(rounds=1, episode_length=2, transitions=["31-13"], progress=False))
    env.close()


def test_short_rounds_omit_flag_or_refuse(motion):
    """A 15-step round from frame 100 sees the layup's ball pass 1.8 m, but the criterion's
    window is 300 steps then a hold: by default the success is not scored, 'flag' reports the
    partial figure marked with *, 'error' refuses before running."""
    env = make_env(motion, PerfectTracker)
    base = dict(rounds=1, episode_length=15, start_frame=100, start_spread=0.0, progress=False)
    omit = evaluate(env, zero_policy, EvalSettings(**base)).results[0]
    flag_rep = evaluate(env, zero_policy, EvalSettings(**base, short_rounds="flag"))
    with pytest.raises(ValueError, match="layup needs >= 301"):
        evaluate(env, zero_policy, EvalSettings(**base, short_rounds="error"))
    covered = EvalSettings(**{**base, "episode_length": 301})
    env.close()
    assert math.isnan(omit.success_rate) and not omit.criterion_covered and omit.e_b_mm < 1.0
    flag = flag_rep.results[0]
    assert flag.success_rate == 1.0 and not flag.criterion_covered
    assert "100.0*" in flag_rep.table() and math.isnan(flag_rep.summary()["mean_success_rate"])
    from skillmimic.eval.success import criterion_steps

    assert [criterion_steps(c) for c in ("run", "layup", "shot", "pickup", "getup", "run_no_object")] == \
        [101, 301, 301, 61, 61, 1]
    assert covered.episode_length >= criterion_steps("layup")


def test_default_rounds_differ_and_identical_ones_run_once(motion):
    """Default: the episodes of a clip start at frames spread over its first quarter (round 0
    at start_frame, as the original), so rounds differ; with no spread and no noise every
    planned episode is the same one and it runs once."""
    from skillmimic.eval.runner import spread_start_frames

    pool = torch.tensor([0])
    clips, frames = spread_start_frames(motion, pool, 8, 2, 0.25)
    T = int(motion.clip_lengths[0])
    assert frames.tolist()[0] == 2 and frames.tolist() == sorted(set(frames.tolist()))
    assert frames.max() == 2 + int(0.25 * (T - 3)) and frames.max() <= T - 2
    calls = []

    def counting(obs):
        calls.append(1)
        return zero_policy(obs)

    env = make_env(motion)
    spread = evaluate(env, counting, EvalSettings(rounds=2, episode_length=6, progress=False)).results[0]
    assert (spread.episodes, spread.duplicates, spread.rounds) == (4, 0, 2)
    assert len(set(spread.nar_per_round)) == 2                  # the two rounds are different episodes
    calls.clear()
    same = evaluate(env, counting, EvalSettings(rounds=3, episode_length=6, start_spread=0.0, progress=False))
    env.close()
    r = same.results[0]
    assert (r.episodes, r.duplicates, r.rounds) == (1, 5, 1) and len(calls) == 6     # one batch of 6 steps
    assert "5 planned episodes were identical" in same.table()
    jit = EvalSettings(start_spread=0.0, jitter=Perturbation(dof_pos=0.01, root_lin_vel=0, root_ang_vel=0,
                                                             obj_pos=0))
    env = make_env(motion)
    r = evaluate(env, zero_policy, replace_settings(jit, rounds=2, episode_length=3)).results[0]
    env.close()
    assert (r.episodes, r.duplicates) == (4, 0)                 # seeded noise: every episode differs


def replace_settings(s, **kw):
    import dataclasses

    return dataclasses.replace(s, progress=False, **kw)


@pytest.fixture(scope="module")
def demo_motion():
    if not any(DEMO.glob("*.pt")):
        pytest.skip("demo clips not present")
    return MotionLibrary(DEMO)


def test_random_pick_and_getup_scenarios_place_ball_and_humanoid(demo_motion):
    """V2's random-pick test (ball 0.5-3 m away, 0.1-1.1 m high, velocity +-0.5 m/s) on the
    pickup skill (demo 001) and its unstable-start get-up test (hinges U(0, 1) rad, root
    velocities, lifted clear of the floor), conditioned and scored as getup (000)."""
    env = make_env(demo_motion, n=3)
    starts = []

    def recording(obs):
        if int(env.progress[0]) == 0:
            j = env.sim.state.joint
            starts.append((j.clone(), env.sim.state.body_pos.clone(), env.skill_labels.clone()))
        return zero_policy(obs)

    s = EvalSettings(rounds=2, episode_length=4, skills=[1], scenarios=["random_pick", "getup"], progress=False)
    rep = evaluate(env, recording, s)
    env.close()
    kinds = [(r.scenario, r.score_label, r.criterion, r.episodes) for r in rep.results]
    assert kinds == [("skill", 1, "pickup", 6), ("random_pick", 1, "pickup", 6), ("getup", 0, "getup", 6)]
    for r in rep.results[1:]:
        assert r.rounds == 2 and not r.criterion_covered and math.isnan(r.e_b_mm)
    pick = [st for st in starts[2:4]]
    for j, _, labels in pick:
        d = (j.obj_pos[:, :2] - j.root_pos[:, :2]).norm(dim=-1)
        assert ((d >= 0.5 - 1e-4) & (d <= 3.0 + 1e-4)).all()
        assert ((j.obj_pos[:, 2] >= 0.1 - 1e-4) & (j.obj_pos[:, 2] <= 1.1 + 1e-4)).all()
        assert j.obj_lin_vel.abs().max() <= 0.5 + 1e-4 and labels.tolist() == [1, 1, 1]
    assert not torch.equal(pick[0][0].obj_pos, pick[1][0].obj_pos)
    for j, body_pos, labels in starts[4:6]:
        assert ((j.dof_pos >= -1e-5) & (j.dof_pos <= 1.0 + 1e-5)).all() and j.dof_pos.std() > 0.2
        assert j.root_lin_vel.abs().max() <= 1.0 + 1e-4 and j.root_lin_vel.abs().max() > 0.05
        assert body_pos[:, :, 2].amin(dim=1).min() >= 0.05 - 1e-3      # lifted clear of the floor
        assert labels.tolist() == [0, 0, 0]
    table = rep.table()
    assert "[random_pick]" in table and "000 getup [getup]" in table
    with pytest.raises(ValueError, match="unknown"):
        EvalSettings(scenarios=["dunk"]).check()


def test_perturb_and_push_are_bounded_and_seeded(motion):
    st = motion.clip_frames(0).state[:8]
    p = Perturbation(dof_pos=0.1, root_lin_vel=0.5, root_ang_vel=0.0, obj_pos=0.05)
    a = perturb_state_uniform(st, p, torch.Generator().manual_seed(3))
    b = perturb_state_uniform(st, p, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.dof_pos, b.dof_pos)
    d = (a.dof_pos - st.dof_pos).abs()
    assert d.max() <= 0.1 + 1e-6 and d.mean() > 0.03
    assert (a.root_lin_vel - st.root_lin_vel).abs().max() <= 0.5 + 1e-6
    torch.testing.assert_close(a.root_ang_vel, st.root_ang_vel)
    assert (a.obj_pos - st.obj_pos).abs().max() <= 0.05 + 1e-6
    pushed = push_state(st, 1.5, torch.Generator().manual_seed(0))
    dv = pushed.root_lin_vel - st.root_lin_vel
    torch.testing.assert_close(dv[:, :2].norm(dim=-1), torch.full((8,), 1.5))
    assert (dv[:, 2] == 0).all() and torch.equal(pushed.root_pos, st.root_pos)


def test_clip_peak_ball_height(motion):
    peaks = clip_peak_ball_height(motion)
    assert peaks.shape == (1,) and float(peaks[0]) == pytest.approx(float(motion.obj_pos[:, 2].max()))


def test_criteria_entries_extend_the_default_table():
    table = EvalSettings(criteria=["2:pickup", " 31 : shot"]).skill_criteria()
    assert table[2] == "pickup" and table[31] == "shot" and table[13] == "run"
    for bad in ("2-pickup", "x:run", "2:jump"):
        with pytest.raises(ValueError, match="label:criterion"):
            EvalSettings(criteria=[bad]).skill_criteria()


def test_run_config_groups_and_command_line_overrides():
    """A group selected on the command line replaces the run's; a dotted override applies on
    top of the run's group (the same rule for every task)."""
    import dataclasses

    from skillmimic.rl.config import Config, MotionConfig, SimConfig, TaskConfig

    assert selected_groups(["motion=ballplay_run", "num_envs=4", "sim.scene.object.friction=0.5",
                            "+task.reward.p=3", "eval.rounds=2", "motionless=1"]) == {"motion"}
    run = Config(task=TaskConfig(episode_length=77), train=None, sim=SimConfig(num_threads=3),
                 motion=MotionConfig(name="run", path="run/clips"))
    cli = Config(task=TaskConfig(), train=None, sim=SimConfig(), motion=MotionConfig(name="cli", path="cli/clips"))
    cli.sim.scene = dataclasses.replace(cli.sim.scene, floor_friction=0.5)
    used = apply_run_config(cli, run, ["motion=cli", "sim.scene.floor_friction=0.5"])
    assert used == ["task", "sim"]
    assert cli.task.episode_length == 77 and cli.motion.name == "cli"
    assert cli.sim.num_threads == 3 and cli.sim.scene.floor_friction == 0.5


# ----------------------------------------------------------------------------- checkpoint + eval.py
@pytest.fixture(scope="module")
def smoke_checkpoint(tmp_path_factory):
    """One tiny PPO epoch through the real training entry point."""
    if SMOKE_MOTION is None:
        pytest.skip("neither the shared BallPlay data nor the demo clips are present")
    from hydra import compose, initialize_config_dir

    from skillmimic.rl.config import CONFIG_DIR, register_configs
    from skillmimic.rl.runner import train

    out = tmp_path_factory.mktemp("runs")
    register_configs()
    overrides = [f"motion.path={SMOKE_MOTION}", "num_envs=2", "train.network.units=[32,32]", "train.horizon_length=8",
                 "train.minibatch_size=16", "max_epochs=1", f"output_dir={out}", "experiment=smoke",
                 "print_stats=false"]
    n = torch.get_num_threads()
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            result = train(compose("config", overrides=overrides))
    finally:
        torch.set_num_threads(n)
    assert result.checkpoint.exists()
    return result.checkpoint


def test_loaded_policy_acts_like_the_rl_games_player(smoke_checkpoint):
    from gymnasium import spaces

    from skillmimic.eval.policy import load_policy
    from skillmimic.rl.registry import AGENT_NAME, MODEL_NAME, NETWORK_NAME, make_runner

    policy = load_policy(smoke_checkpoint)
    assert (policy.num_obs, policy.num_actions, policy.epoch) == (902, 156, 1)
    assert policy.run_config is not None and policy.run_config.num_envs == 2
    runner = make_runner()
    runner.load({"params": {
        "seed": 1, "algo": {"name": AGENT_NAME}, "model": {"name": MODEL_NAME},
        "network": {"name": NETWORK_NAME, "units": [32, 32], "activation": "relu", "log_std": -2.9},
        "config": {"name": "p", "env_name": "none", "normalize_input": True, "normalize_value": True,
                   "device_name": "cpu", "reward_shaper": {}, "clip_actions": True,
                   "env_info": {"observation_space": spaces.Box(-np.inf, np.inf, (902,)),
                                "action_space": spaces.Box(-1.0, 1.0, (156,)), "agents": 1, "value_size": 1}}}})
    player = runner.player_factory.create(AGENT_NAME, params=runner.params)
    player.restore(str(smoke_checkpoint))
    player.has_batch_dimension = True
    obs = torch.randn(6, 902, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(policy(obs), player.get_action(obs, is_deterministic=True))


def run_eval_py(args: list[str], monkeypatch) -> int:
    """``python eval.py ARGS`` in this process (a subprocess would pay the imports again)."""
    monkeypatch.setattr(sys, "argv", ["eval.py", *args])
    try:
        runpy.run_path(str(REPO / "eval.py"), run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_eval_cli_writes_json_table_and_plot(smoke_checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "eval_out"
    label = int(MotionLibrary(SMOKE_MOTION).clip_labels[0])
    rc = run_eval_py([f"checkpoint={smoke_checkpoint}", "num_envs=2", "eval.rounds=2", "eval.episode_length=6",
                      f"eval.skills=[{label}]", f"eval.transitions=[{label}:{label}]", "eval.progress=false",
                      f"out_dir={out}"], monkeypatch)
    printed = capsys.readouterr()
    assert rc == 0, printed.err[-3000:]
    assert f"{label:03d} " in printed.out and "E_b mm" in printed.out and f"{label:03d}->{label:03d}" in printed.out
    data = json.loads((out / "eval.json").read_text())
    assert data["meta"]["checkpoint"] == str(smoke_checkpoint.resolve())
    assert data["meta"]["from_run_config"] == ["task", "sim", "motion"]
    assert data["meta"]["motion"] == str(SMOKE_MOTION.resolve())
    skill, trans = data["results"]
    assert skill["scenario"] == "skill" and skill["score_label"] == label and skill["episodes"] == 4
    # 6-step rounds cannot test any criterion: not scored, said so in JSON and in the table
    assert skill["success_rate"] is None and skill["criterion_covered"] is False and skill["criterion_steps"] > 6
    assert "short" in printed.out and "episodes" in printed.out and "do not cover" in printed.err
    assert skill["e_b_mm"] > 0 and skill["frames"] == 4 * 6
    assert trans["scenario"] == "transition" and trans["e_b_mm"] is None
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert run_eval_py([f"checkpoint={tmp_path / 'missing.pth'}"], monkeypatch) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_py_ctrl_c_exits_130_without_a_traceback(monkeypatch, capsys):
    import skillmimic.eval.app as app

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(app, "evaluate_checkpoint", interrupted)
    assert run_eval_py(["checkpoint=whatever.pth"], monkeypatch) == 130
    err = capsys.readouterr().err
    assert "eval interrupted" in err and "Traceback" not in err
