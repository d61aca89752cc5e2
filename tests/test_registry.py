"""The task registry, the env base's test-mode API, and checking a low-level policy file
without building a model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from envs import SkillEnvConfig, TaskSpec, make_skill_env, register_task, task_names, task_spec
from envs.hlc import LLC_OBS, HLCEnvConfig, LLCCheckpointError, check_llc_checkpoint
from helpers import DEMO
from skillmimic.rl.config import ConfigError, TaskConfig


def test_builtin_tasks_and_their_kinds():
    assert {"skill", "hlc_heading", "hlc_circling", "hlc_throwing", "hlc_layup"} <= set(task_names())
    skill = task_spec("skill")
    assert (skill.policy, skill.evaluation, skill.needs_llc, skill.config_type) == \
        ("continuous", "imitation", False, SkillEnvConfig)
    layup = task_spec("hlc_layup")
    assert (layup.policy, layup.evaluation, layup.needs_llc, layup.config_type) == \
        ("discrete", "episodes", True, HLCEnvConfig)
    with pytest.raises(ValueError, match="unknown task env 'dunk'.*hlc_layup"):
        task_spec("dunk")
    with pytest.raises(ValueError, match="policy must be one of"):
        TaskSpec(name="x", config_type=SkillEnvConfig, make_env=make_skill_env, policy="beta")


def test_task_node_converts_through_the_registry():
    node = TaskConfig(episode_length=33, state_init="5", body_only_labels=[0], termination_height=0.2)
    cfg = node.env_config(num_envs=3, seed=9)
    assert cfg == SkillEnvConfig(num_envs=3, episode_length=33, state_init=5, termination_height=0.2, seed=9,
                                 body_only_labels=(0,))
    assert cfg.reward is not node.reward                        # a copy: the env never edits the run's config
    from envs.hlc import HLCConfig

    hlc = TaskConfig(env="hlc_layup", episode_length=800, state_init="2", termination_height=0.25,
                     hlc=HLCConfig(control_mapping=[31, 1]))
    cfg = hlc.env_config(num_envs=2, seed=None)
    assert isinstance(cfg, HLCEnvConfig) and cfg.task == "layup" and cfg.hlc.control_mapping == [31, 1]
    assert (cfg.episode_length, cfg.state_init, cfg.termination_height) == (800, 2, 0.25)
    with pytest.raises(ConfigError, match="task.env: unknown task env 'nope'"):
        TaskConfig(env="nope").env_config(1, 0)


def test_a_run_config_from_before_the_registry_names_its_hlc_task():
    """Checkpoints written before ``task.env`` named the HLC task in ``task.hlc.task``."""
    from omegaconf import OmegaConf

    from helpers import compose
    from skillmimic.rl.config import run_config_of

    saved = OmegaConf.to_container(compose(["task=hlc_circling", "motion=demo"]))
    del saved["task"]["env"]
    saved["task"]["hlc"]["task"] = "circling"
    cfg = run_config_of({"run_config": OmegaConf.to_yaml(OmegaConf.create(saved))})
    assert cfg.task.env == "hlc_circling" and cfg.task.spec().policy == "discrete"


def test_a_task_registered_by_a_module_is_trainable_config():
    """What a new task module does: register a spec; a task node naming it converts to its config."""
    from envs import registry

    @dataclasses.dataclass
    class CarryConfig(SkillEnvConfig):
        carry_height: float = 0.8

    def make(env_cfg, motion_path, *, sim_backend="mujoco", scene=None, device="cpu", sim_kwargs=None, **parts):
        return make_skill_env(env_cfg, motion_path, sim_backend=sim_backend, scene=scene, device=device,
                              **(sim_kwargs or {}))

    spec = register_task(TaskSpec(name="test_carry", config_type=CarryConfig, make_env=make,
                                  config_values={"carry_height": 1.1}))
    try:
        assert task_spec("test_carry") is spec and "test_carry" in task_names()
        cfg = TaskConfig(env="test_carry", episode_length=20).env_config(2, 1)
        assert isinstance(cfg, CarryConfig) and (cfg.carry_height, cfg.episode_length) == (1.1, 20)
        registry._TASKS["test_carry"] = dataclasses.replace(spec, config_values={})   # the knob from YAML instead
        cfg = TaskConfig(env="test_carry", params={"carry_height": 0.5}).env_config(2, 1)
        assert cfg.carry_height == 0.5
        with pytest.raises(ConfigError, match="task.params: lift_speed not settings of task test_carry"):
            TaskConfig(env="test_carry", params={"lift_speed": 1.0}).env_config(2, 1)
        with pytest.raises(ValueError, match="already registered"):
            register_task(dataclasses.replace(spec, policy="discrete"))
        env = spec.make_env(cfg, DEMO)
        try:
            assert env.reset().shape == (2, env.num_obs)
        finally:
            env.close()
    finally:
        registry._TASKS.pop("test_carry")


def test_env_test_mode_api():
    env = make_skill_env(SkillEnvConfig(num_envs=2, seed=0, state_init=2), DEMO)
    try:
        env.reset()
        env.set_test_mode(early_termination=False)
        assert not env.early_termination and env.cfg.enable_early_termination    # the config is not edited
        env.reset()
        assert not env.early_termination                                          # test mode outlives resets
        steps = int(env.motion.clip_lengths.max()) + 5                            # past every clip's end
        env.hold_episodes(steps)
        for _ in range(steps):
            _, _, done, _ = env.step(torch.zeros(2, env.num_actions))
            assert not done.any()
        assert torch.equal(env.reference_time(), env.start_frames + env.progress)
        assert (env.reference_time() > env.motion.clip_lengths[env.clip_ids]).all()   # not clamped to the clip
        assert env.key_body_ids.tolist() == list(env.sim.skeleton.key_body_ids)
        env.set_test_mode(early_termination=True)
        assert env.early_termination
    finally:
        env.close()


def _fake_checkpoint(path, num_obs: int, head: str = "mu", num_actions: int = 156):
    w = {"a2c_network.actor_mlp.0.weight": torch.zeros(8, num_obs), f"a2c_network.{head}.weight":
         torch.zeros(num_actions, 8)}
    torch.save({"model": w, "optimizer": {}, "epoch": 1, "frame": 1}, path)
    return path


def test_llc_file_checks_build_no_model(tmp_path, monkeypatch):
    from rl_games.algos_torch import model_builder

    def no_model(*a, **kw):
        raise AssertionError("a model was built")

    monkeypatch.setattr(model_builder.ModelBuilder, "load", no_model)
    state = check_llc_checkpoint(_fake_checkpoint(tmp_path / "llc.pth", LLC_OBS))
    assert state["epoch"] == 1
    with pytest.raises(LLCCheckpointError, match="890-d observations"):
        check_llc_checkpoint(_fake_checkpoint(tmp_path / "v2.pth", 890))
    with pytest.raises(LLCCheckpointError, match="not a skillmimic_mlp policy"):
        check_llc_checkpoint(_fake_checkpoint(tmp_path / "hlc.pth", 842, head="logits", num_actions=3))
    with pytest.raises(LLCCheckpointError, match="does not exist"):
        check_llc_checkpoint(tmp_path / "missing.pth")
