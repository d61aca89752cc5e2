"""The box-carry demo task: registered by its own module, trained a few epochs through the
trainer, evaluated through eval.py, with a box of the configured size and mass in the scene."""

from __future__ import annotations

import json
import runpy
import sys

import mujoco
import pytest
import torch

from helpers import REPO, compose
from skillmimic.assets.mjcf import SceneConfig
from skillmimic.data_gen import box_object

BOX_MOTION = REPO / "data" / "motions" / "demo_box"


@pytest.fixture(scope="module")
def box_checkpoint(tmp_path_factory):
    """3 tiny PPO epochs of task=box_carry through the real training entry point."""
    from skillmimic.rl.runner import train

    out = tmp_path_factory.mktemp("runs")
    overrides = ["task=box_carry", "num_envs=4", "train.network.units=[32,32]", "train.horizon_length=8",
                 "train.minibatch_size=32", "max_epochs=3", f"output_dir={out}", "experiment=box",
                 "print_stats=false", "torch_update_threads=1"]
    n = torch.get_num_threads()
    try:
        result = train(compose(overrides))
    finally:
        torch.set_num_threads(n)
    return result


def test_box_carry_trains_and_its_checkpoint_records_the_box(box_checkpoint):
    from skillmimic.checkpoint import load_checkpoint
    from skillmimic.rl.config import run_config_of

    assert box_checkpoint.checkpoint.is_file() and box_checkpoint.epoch == 3
    run = run_config_of(load_checkpoint(box_checkpoint.checkpoint))
    assert run.task.env == "box_carry" and run.motion.path == "data/motions/demo_box"
    assert run.sim.scene.object == box_object()


def test_the_scene_object_is_the_configured_box(box_checkpoint):
    from skillmimic.checkpoint import load_checkpoint
    from skillmimic.eval.policy import make_eval_env
    from skillmimic.rl.config import run_config_of

    env = make_eval_env(run_config_of(load_checkpoint(box_checkpoint.checkpoint)), num_envs=2, episode_length=10)
    try:
        model = env.sim.model
        geom = model.geom("object_geom")
        assert model.geom_type[geom.id] == mujoco.mjtGeom.mjGEOM_BOX
        assert model.geom_size[geom.id].tolist() == pytest.approx([0.18, 0.15, 0.22])
        assert model.body_mass[model.body("object").id] == pytest.approx(3.0)
        assert int(env.motion.clip_labels[0]) == 50
        obs = env.reset()
        assert obs.shape == (2, env.num_obs) and torch.isfinite(obs).all()
        # the reset put the box where the clip has it, resting on the floor in front of the humanoid
        assert env.sim.state.joint.obj_pos[:, 2].tolist() == pytest.approx([0.22, 0.22], abs=1e-5)
    finally:
        env.close()


def test_eval_py_evaluates_the_box_checkpoint(box_checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "eval_out"
    monkeypatch.setattr(sys, "argv", ["eval.py", f"checkpoint={box_checkpoint.checkpoint}", "num_envs=2",
                                      "eval.rounds=1", "eval.episode_length=20", "eval.progress=false",
                                      f"out_dir={out}"])
    try:
        runpy.run_path(str(REPO / "eval.py"), run_name="__main__")
    except SystemExit as e:
        assert not e.code, capsys.readouterr().err[-3000:]
    data = json.loads((out / "eval.json").read_text())
    assert data["meta"]["motion"] == str(BOX_MOTION.resolve())
    (skill,) = [r for r in data["results"] if r["scenario"] == "skill"]
    assert skill["score_label"] == 50 and skill["episodes"] == 2 and skill["frames"] == 2 * 20
    assert skill["e_b_mm"] > 0


def test_box_carry_refuses_the_default_ball():
    from envs.registry import task_spec
    from envs.skill import SkillEnvConfig

    with pytest.raises(ValueError, match="box_carry needs a non-ball object"):
        task_spec("box_carry").make_env(SkillEnvConfig(num_envs=1), BOX_MOTION, scene=SceneConfig())
