"""HLC training and evaluation end to end on CPU, over a skill policy trained here.

The low-level controller is a real skill checkpoint: one PPO epoch on the demo clips with a
tiny network (4 envs). Each HLC task then trains a few epochs through ``train.py``'s
:func:`~skillmimic.rl.runner.train` (discrete PPO), resumes, and is evaluated through
``eval.py``'s :func:`~skillmimic.eval.app.evaluate_checkpoint`. Bad ``llc_checkpoint``
values fail before anything is built, with the file named.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from envs.hlc import LLC_OBS, TASKS, LLCCheckpointError
from skillmimic.checkpoint import CheckpointError, load_checkpoint
from skillmimic.rl.config import ConfigError
from skillmimic.rl.policy import load_llc

from helpers import DEMO, REPO, compose
NUM_ENVS, HORIZON = 4, 16
SCENE_OBS = 838
# (max per-step reward of the task's formula, number of actions of its control mapping)
TASK_FACTS = {"heading": (1.0, 3), "circling": (1.0, 3), "throwing": (1.0, 3), "layup": (2.7, 7)}


def hlc_overrides(task: str, llc: Path | str, out: Path, **extra) -> list[str]:
    ov = {"task": f"hlc_{task}", "llc_checkpoint": str(llc), "motion": "demo", "num_envs": NUM_ENVS,
          "train.network.units": "[64,64]", "train.horizon_length": HORIZON, "max_epochs": 3,
          "output_dir": str(out), "print_stats": "false", **extra}
    return [f"{k}={v}" for k, v in ov.items()]


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def llc(tmp_path_factory) -> Path:
    """A skill policy checkpoint: 1 epoch on the demo clips, [32, 32] network, 4 envs."""
    from skillmimic.rl.runner import train

    out = tmp_path_factory.mktemp("llc")
    n = torch.get_num_threads()
    try:
        result = train(compose([f"motion.path={DEMO}", "num_envs=4", "train.network.units=[32,32]",
                                "train.minibatch_size=64", "max_epochs=1", f"output_dir={out}", "experiment=llc",
                                "print_stats=false"]))
    finally:
        torch.set_num_threads(n)
    return result.checkpoint


@pytest.fixture(scope="module")
def hlc_runs(llc, tmp_path_factory) -> dict:
    """Three epochs of every HLC task (the smoke trainings)."""
    from skillmimic.rl.runner import train

    out = tmp_path_factory.mktemp("hlc")
    runs = {}
    n = torch.get_num_threads()
    try:
        for task in TASKS:
            runs[task] = train(compose(hlc_overrides(task, llc, out)))
    finally:
        torch.set_num_threads(n)
    return runs


# --------------------------------------------------------------------------- smoke training
@pytest.mark.parametrize("task", list(TASKS))
def test_smoke_training_of_each_hlc_task(task, hlc_runs, llc):
    res = hlc_runs[task]
    max_reward, num_actions = TASK_FACTS[task]
    state = load_checkpoint(res.checkpoint)
    assert (state["epoch"], state["frame"]) == (3, 3 * HORIZON * NUM_ENVS)
    w = state["model"]
    # categorical policy over the task's skills, on the scene features + the task's goal features
    assert w["a2c_network.logits.weight"].shape == (num_actions, 64)
    assert "a2c_network.mu.weight" not in w
    assert w["running_mean_std.running_mean"].shape == (SCENE_OBS + TASKS[task].num_obs,)
    assert f"env: hlc_{task}" in state["run_config"] and str(Path(llc).resolve()) in state["run_config"]
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    for h in res.history:
        r = h["reward_per_step"]
        assert r is not None and math.isfinite(r) and 0.0 < r <= max_reward
    # the LLC stays frozen: its checkpoint is untouched and not part of the HLC's weights
    assert not any("actor_mlp.4" in k for k in w)


def test_hlc_resume_continues_the_run(hlc_runs):
    from skillmimic.rl.runner import train

    first = hlc_runs["heading"]
    saved = load_checkpoint(first.checkpoint)
    llc = saved["run_config"].split("llc_checkpoint: ")[1].split("\n")[0]
    # the full training state travels with an HLC checkpoint too (as with skill checkpoints)
    assert {"entropy_coef", "episode_stats", "rng", "last_lr", "optimizer"} <= set(saved)
    assert saved["episode_stats"]["lengths"]["size"] > 0
    res = train(compose(hlc_overrides("heading", llc, first.run_dir.parent.parent, max_epochs=4,
                                      resume=str(first.checkpoint))))
    assert res.run_dir == first.run_dir and res.epoch == 4
    assert [h["epoch"] for h in res.history] == [4]
    state = load_checkpoint(res.checkpoint)
    assert state["frame"] == 4 * HORIZON * NUM_ENVS
    assert torch.equal(state["model"]["running_mean_std.count"] > saved["model"]["running_mean_std.count"],
                       torch.tensor(True))


# --------------------------------------------------------------------------- eval
@pytest.mark.parametrize("task,keys", [
    ("heading", ["reach_rate", "min_goal_distance_mean_m"]),
    ("circling", ["reach_rate", "lap_rate", "on_circle_fraction"]),
    ("throwing", ["max_ball_height_mean_m", "max_ball_height_std_m", "max_ball_height_max_m"]),
    ("layup", ["success_rate", "scores_per_minute"]),
])
def test_eval_reports_task_metrics(task, keys, hlc_runs, tmp_path):
    import json

    from skillmimic.eval.app import evaluate_checkpoint

    ckpt = hlc_runs[task].checkpoint
    cli = [f"checkpoint={ckpt}", "num_envs=2", "eval.rounds=2", "task.episode_length=45", f"out_dir={tmp_path}",
           "eval.progress=false"]
    out = evaluate_checkpoint(compose(cli, config="eval"), cli)
    rep = out.report
    assert rep.task == task and rep.episodes == 4
    for k in keys + ["fall_rate", "episode_length_mean_s", "return_mean"]:
        assert math.isfinite(rep.metrics[k]), k
    # task.episode_length applied on top of the run's task: no episode is longer
    assert max(rep.per_episode["length"]) <= 45
    if task == "throwing":
        h = rep.per_episode["max_ball_height"]
        assert rep.metrics["max_ball_height_max_m"] == pytest.approx(max(h)) and min(h) > 0
    if task in ("heading", "circling", "layup"):
        rate = rep.metrics["success_rate" if task == "layup" else "reach_rate"]
        assert 0.0 <= rate <= 1.0
    assert json.loads(out.json_path.read_text())["task"] == task
    assert out.plot_path.stat().st_size > 0
    assert task in rep.table()


# --------------------------------------------------------------------------- llc_checkpoint errors
def _wrong_obs_checkpoint(llc: Path, path: Path, obs: int = 890) -> Path:
    """The LLC with its input layer (and normaliser) cut to ``obs`` features: a policy trained
    on another observation layout."""
    state = load_checkpoint(llc)
    m = state["model"]
    for k in ("a2c_network.actor_mlp.0.weight", "a2c_network.critic_mlp.0.weight"):
        m[k] = m[k][:, :obs].clone()
    for k in ("running_mean_std.running_mean", "running_mean_std.running_var"):
        m[k] = m[k][:obs].clone()
    state.pop("run_config", None)
    torch.save(state, path)
    return path


def test_llc_checkpoint_errors_name_the_file_and_the_problem(llc, hlc_runs, tmp_path):
    from skillmimic.rl.config import validate
    from skillmimic.rl.runner import to_config

    assert load_llc(llc).num_obs == LLC_OBS

    def check(path, *needles, exc=CheckpointError):
        cfg = to_config(compose(hlc_overrides("heading", path, tmp_path)))
        with pytest.raises(exc) as e:
            validate(cfg)
        for needle in (str(path),) + needles:
            assert needle in str(e.value), (needle, str(e.value))
        return e.value

    missing = tmp_path / "nope" / "llc.pth"
    check(missing, "does not exist")
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    check(text, "cannot be read")
    other = tmp_path / "weights.pth"
    torch.save({"some": torch.zeros(3)}, other)
    check(other, "not a training checkpoint")
    err = check(_wrong_obs_checkpoint(llc, tmp_path / "obs890.pth"), "890", str(LLC_OBS))
    assert isinstance(err, LLCCheckpointError)
    check(hlc_runs["heading"].checkpoint, "not a skillmimic_mlp policy")     # an HLC is no LLC

    with pytest.raises(ConfigError, match="needs llc_checkpoint"):
        validate(to_config(compose(hlc_overrides("layup", "null", tmp_path))))
    with pytest.raises(ConfigError, match="only used by HLC tasks"):
        validate(to_config(compose([f"llc_checkpoint={llc}", "motion=demo"])))


def test_train_cli_reports_an_incompatible_llc_in_one_line(llc, tmp_path):
    bad = _wrong_obs_checkpoint(llc, tmp_path / "obs890.pth")
    proc = subprocess.run([sys.executable, "train.py", *hlc_overrides("layup", bad, tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: llc_checkpoint ") and str(bad) in lines[0]
    assert "890" in lines[0] and str(LLC_OBS) in lines[0]
    assert not (tmp_path / "hlc_layup").exists(), "nothing is built for a bad llc_checkpoint"


def test_smoke_training_on_mjwarp(llc, tmp_path):
    """The same training on the MuJoCo Warp engine (CUDA if present, else Warp's CPU device)."""
    pytest.importorskip("mujoco_warp")
    from skillmimic.rl.runner import train

    device = "cuda" if torch.cuda.is_available() else "cpu"
    res = train(compose(hlc_overrides("layup", llc, tmp_path, sim="mjwarp", device=device, max_epochs=2,
                                      **{"train.horizon_length": 4})))
    assert res.epoch == 2 and all(0.0 < h["reward_per_step"] <= 2.7 for h in res.history)
