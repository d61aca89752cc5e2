"""Training pipeline: rl-games PPO with the skill env on CPU, checkpoints, resume, config errors.

Fast settings throughout (4 envs, a [64, 64] network, a few epochs); the learning itself
is measured by ``benchmarks/learning.py``, not here.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch

from skillmimic.checkpoint import CheckpointError, atomic_save, load_checkpoint
from skillmimic.rl.config import ConfigError, PPOConfig, resolve_minibatch

from helpers import FAST_MINIBATCH, FAST_NUM_ENVS, MOTION, REPO, compose, fast_overrides, needs_motion

NUM_ENVS, HORIZON, MINIBATCH = FAST_NUM_ENVS, 32, FAST_MINIBATCH
BATCH = NUM_ENVS * HORIZON
STEPS_PER_EPOCH = 6 * (BATCH // MINIBATCH)          # Adam steps: mini_epochs * minibatches


def run_cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """3 epochs, checkpoint every 2 (so at 2, then the final one at 3)."""
    if MOTION is None:
        pytest.skip("no motion data")
    from skillmimic.rl.runner import train

    out = tmp_path_factory.mktemp("runs")
    n = torch.get_num_threads()
    try:
        result = train(compose(fast_overrides(out, "smoke", max_epochs=3, **{"train.save_frequency": 2})))
    finally:
        torch.set_num_threads(n)
    return result


# --------------------------------------------------------------------------- smoke + resume
@needs_motion
def test_smoke_train_writes_checkpoint_and_tensorboard(first_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert first_run.checkpoint == first_run.run_dir / "nn" / "smoke.pth"
    state = load_checkpoint(first_run.checkpoint)
    assert state["epoch"] == 3 and state["frame"] == 3 * BATCH
    assert (first_run.run_dir / "config.yaml").is_file()
    assert not list((first_run.run_dir / "nn").glob(".*.tmp")), "temp file left behind"

    events = list((first_run.run_dir / "summaries").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(first_run.run_dir / "summaries"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for term in ("reward", "r_p", "r_r", "r_s", "r_b", "r_o", "r_ig", "r_cg1", "r_cg2"):
        assert f"reward_terms/{term}" in tags
    assert {"env/nonfinite_resets", "losses/bounds_loss", "losses/a_loss", "losses/c_loss"} <= tags
    assert not [t for t in tags if t.startswith("v2/")], "the V1 env has no V2 statistics"
    assert [e.step for e in acc.Scalars("reward_terms/reward")] == [BATCH, 2 * BATCH, 3 * BATCH]

    assert [h["epoch"] for h in first_run.history] == [1, 2, 3]
    for h in first_run.history:
        assert 0.0 < h["reward_per_step"] <= 1.0
        assert 0.0 < h["reward_terms"]["r_p"] <= 1.0
    # the exact KL: >= 0 and not rl-games' epsilon artefact (~ -0.25 with sigma = e^-2.9, 156 dims)
    kls = [e.value for e in acc.Scalars("info/kl")]
    assert len(kls) == 3 and all(k >= 0.0 for k in kls), kls
    assert [h["kl"] for h in first_run.history] == pytest.approx(kls, rel=1e-6)


def test_diag_gaussian_kl_is_the_exact_closed_form():
    from rl_games.algos_torch import torch_ext
    from torch.distributions import Independent, Normal, kl_divergence

    from skillmimic.rl.agent import diag_gaussian_kl

    g = torch.Generator().manual_seed(0)
    mu0, mu1 = torch.randn(64, 156, generator=g), torch.randn(64, 156, generator=g)
    s0, s1 = torch.rand(64, 156, generator=g) + 0.05, torch.rand(64, 156, generator=g) + 0.05
    kl = diag_gaussian_kl(mu0, s0, mu1, s1)
    assert kl.shape == (64,) and kl.dtype == torch.float64
    p = Independent(Normal(mu0.double(), s0.double()), 1)
    q = Independent(Normal(mu1.double(), s1.double()), 1)
    torch.testing.assert_close(kl, kl_divergence(p, q), rtol=1e-10, atol=1e-10)
    m0, m1, d0, d1 = (t.double() for t in (mu0, mu1, s0, s1))
    closed = (torch.log(d1 / d0) + (d0 ** 2 + (m1 - m0) ** 2) / (2 * d1 ** 2) - 0.5).sum(-1)
    torch.testing.assert_close(kl, closed, rtol=1e-10, atol=1e-10)
    assert (kl >= 0).all()

    # the skill policy: fixed sigma = e^-2.9 on 156 dims
    sigma = torch.full((64, 156), torch.tensor(-2.9).exp().item())
    assert torch.equal(diag_gaussian_kl(mu0, sigma, mu0, sigma), torch.zeros(64, dtype=torch.float64))
    near = mu0 + 1e-4 * torch.randn(64, 156, generator=g)
    kl = diag_gaussian_kl(near, sigma, mu0, sigma)
    torch.testing.assert_close(kl, ((near.double() - mu0.double()) ** 2 / (2 * sigma.double() ** 2)).sum(-1))
    assert (kl > 0).all()
    # what rl-games' epsilon made of it: negative, about -0.25 for identical policies
    assert torch_ext.policy_kl(mu0, sigma, mu0, sigma).item() == pytest.approx(-0.25, abs=0.02)


@needs_motion
def test_resume_restores_counters_optimizer_and_normalisers(first_run):
    from skillmimic.rl.runner import build_agent, close_agent

    saved = load_checkpoint(first_run.checkpoint)
    agent, run_dir, _ = build_agent(compose(fast_overrides(
        first_run.run_dir.parent.parent, "smoke", max_epochs=5, resume=str(first_run.checkpoint))))
    try:
        assert run_dir == first_run.run_dir, "a resumed run continues in the checkpoint's run folder"
        assert (agent.epoch_num, agent.frame) == (3, 3 * BATCH)

        model = agent.model.state_dict()
        for key in ("running_mean_std.running_mean", "running_mean_std.running_var", "running_mean_std.count",
                    "value_mean_std.running_mean", "value_mean_std.running_var", "value_mean_std.count"):
            assert torch.equal(model[key].cpu(), saved["model"][key]), key
        # the observation normaliser has really been fitted (not the initial 0 / 1 / count 1)
        assert saved["model"]["running_mean_std.count"] > 1
        assert saved["model"]["running_mean_std.running_mean"].abs().sum() > 0
        for key, value in saved["model"].items():
            assert torch.equal(model[key].cpu(), value), key

        opt = agent.optimizer.state_dict()
        assert opt["param_groups"][0]["lr"] == saved["optimizer"]["param_groups"][0]["lr"]
        assert len(opt["state"]) == len(saved["optimizer"]["state"]) > 0
        for pid, s in saved["optimizer"]["state"].items():
            for k, v in s.items():
                assert torch.equal(opt["state"][pid][k].cpu(), v), (pid, k)
        first = min(saved["optimizer"]["state"])          # (the fixed sigma has no optimizer state)
        saved_steps = float(saved["optimizer"]["state"][first]["step"])
        assert saved_steps == 3 * STEPS_PER_EPOCH

        assert agent.game_rewards.current_size == saved["episode_stats"]["rewards"]["size"] > 0
        assert torch.equal(agent.vec_env.env.generator.get_state(), saved["env_state"]["generator"])

        agent.train()
    finally:
        close_agent(agent)
    assert [h["epoch"] for h in agent.epoch_history] == [4, 5]
    final = load_checkpoint(first_run.checkpoint)
    assert (final["epoch"], final["frame"]) == (5, 5 * BATCH)
    assert float(final["optimizer"]["state"][first]["step"]) == saved_steps + 2 * STEPS_PER_EPOCH
    assert torch.equal(final["model"]["a2c_network.sigma"], torch.full((156,), -2.9)), "sigma must stay fixed"
    assert final["model"]["running_mean_std.count"] > saved["model"]["running_mean_std.count"]


@needs_motion
def test_sigkill_then_resume_continues_from_last_checkpoint(tmp_path):
    """Kill -9 mid-run: every checkpoint seen on disk loads (atomic writes), and the resumed
    run continues at the saved epoch/frame with the optimizer state carried over."""
    args = fast_overrides(tmp_path, "kill", max_epochs=500, **{"train.save_frequency": 1, "print_stats": "true"})
    proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    ckpt, epochs_seen, deadline = None, set(), time.time() + 90
    try:
        while time.time() < deadline and proc.poll() is None:
            found = list(tmp_path.glob("kill/*/nn/kill.pth"))
            if found:
                ckpt = found[0]
                epochs_seen.add(load_checkpoint(ckpt)["epoch"])   # must never see a partial file
                if len(epochs_seen) >= 3:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "training ended early:\n" + proc.stdout.read()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        out = proc.communicate()[0]
    assert ckpt is not None and len(epochs_seen) >= 3, f"no checkpoints within the deadline:\n{out}"
    state = load_checkpoint(ckpt)
    epoch = state["epoch"]
    assert epoch >= max(epochs_seen) and state["frame"] == epoch * BATCH

    res = run_cli([*args, f"max_epochs={epoch + 2}", f"resume={ckpt}"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"resumed from {ckpt} at epoch {epoch}, frame {epoch * BATCH}" in res.stdout
    assert f"epoch {epoch + 1}/{epoch + 2}" in res.stdout and f"epoch {epoch}/" not in res.stdout
    final = load_checkpoint(ckpt)
    assert (final["epoch"], final["frame"]) == (epoch + 2, (epoch + 2) * BATCH)
    first = min(state["optimizer"]["state"])
    assert float(final["optimizer"]["state"][first]["step"]) == \
        float(state["optimizer"]["state"][first]["step"]) + 2 * STEPS_PER_EPOCH
    assert not list(ckpt.parent.glob(".*.tmp"))


# --------------------------------------------------------------------------- clear errors
def test_unknown_config_key_fails_fast():
    res = run_cli(["num_env=8"], timeout=60)             # checked against the typed schema before hydra runs
    assert res.returncode == 2
    assert res.stderr.strip() == "error: unknown config key 'num_env' in 'num_env=8'; did you mean num_envs?"
    from skillmimic.rl.runner import to_config

    with pytest.raises(ConfigError, match=r"unknown config key\(s\): .*train\.foo"):
        to_config(compose(["+train.foo=1"]))             # keys appended with + are rejected too
    with pytest.raises(Exception, match="num_envs"):
        compose(["num_envs=many"])                       # and wrong types


def test_missing_motion_path_names_it(tmp_path):
    missing = tmp_path / "no_such_clips"
    res = run_cli([f"motion.path={missing}", f"output_dir={tmp_path}"], timeout=60)
    assert res.returncode == 2
    assert "motion path not found" in res.stderr and str(missing) in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "skill").exists(), "nothing may be created before the config is valid"


@needs_motion
def test_truncated_checkpoint_on_resume_names_the_file(first_run, tmp_path):
    from skillmimic.rl.runner import train

    data = first_run.checkpoint.read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt") as err:
        train(compose(fast_overrides(tmp_path, "trunc", max_epochs=2, resume=str(bad))))
    assert str(bad) in str(err.value)
    with pytest.raises(ConfigError, match="does not exist"):
        train(compose(fast_overrides(tmp_path, "trunc", max_epochs=2, resume=str(tmp_path / "nope.pth"))))


# --------------------------------------------------------------------------- units
def test_atomic_save_never_leaves_a_partial_file(tmp_path):
    path = tmp_path / "nn" / "x.pth"
    good = {"model": {"w": torch.arange(3.0)}, "optimizer": {}, "epoch": 1, "frame": 2}
    atomic_save(good, path)
    with pytest.raises(Exception):
        atomic_save({**good, "epoch": 2, "bad": lambda: None}, path)     # lambdas cannot be pickled
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.arange(3.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.pth"]
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pth")


def test_bound_loss_is_exact_squared_excess_beyond_unit_range():
    from rl_games.algos_torch.a2c_continuous import A2CAgent

    from skillmimic.rl.agent import SkillMimicAgent

    mu = torch.tensor([[0.5, 1.05, -1.3, 2.0], [0.0, -1.0, 1.0, -0.99]])
    expected = torch.tensor([0.05**2 + 0.3**2 + 1.0**2, 0.0])
    assert torch.allclose(SkillMimicAgent.bound_loss(None, mu), expected)

    class _Coef:
        bounds_loss_coef = 10.0

    # rl-games' built-in bound starts at |mu| = 1.1: it would not penalise 1.05 at all
    assert not torch.allclose(A2CAgent.bound_loss(_Coef(), mu), expected)


def test_network_has_separate_mlps_and_fixed_sigma():
    from skillmimic.rl.network import SkillMimicNetwork

    net = SkillMimicNetwork({"units": [32, 16], "log_std": -2.9}, actions_num=156, input_shape=(902,))
    assert not net.sigma.requires_grad
    assert torch.allclose(net.sigma.exp(), torch.full((156,), torch.tensor(-2.9).exp().item()))
    keys = set(net.state_dict())
    assert {"actor_mlp.0.weight", "actor_mlp.2.weight", "critic_mlp.0.weight", "critic_mlp.2.weight",
            "mu.weight", "value.weight", "sigma"} <= keys
    assert all(b.abs().sum() == 0 for n, b in net.named_parameters() if n.endswith("bias"))
    mu, logstd, value, _ = net({"obs": torch.randn(5, 902)})
    assert mu.shape == logstd.shape == (5, 156) and value.shape == (5, 1)
    (mu.sum() + value.sum()).backward()
    assert net.sigma.grad is None
    assert net.critic_mlp[0].weight.grad is not None and net.actor_mlp[0].weight.grad is not None
    # the actor's loss does not reach the critic's weights: no shared trunk
    net.zero_grad()
    net({"obs": torch.randn(5, 902)})[0].sum().backward()
    assert net.critic_mlp[0].weight.grad is None or net.critic_mlp[0].weight.grad.abs().sum() == 0


def test_minibatch_default_and_validation():
    t = PPOConfig()
    assert resolve_minibatch(t, 16) == 32 * 16
    assert resolve_minibatch(t, 2048) == 16384                     # capped, divides 65536
    assert 32 * 1000 % resolve_minibatch(t, 1000) == 0             # capped to a divisor
    assert resolve_minibatch(PPOConfig(minibatch_size=128), 16) == 128
    with pytest.raises(ConfigError, match=r"must be a positive divisor .* 32 \* 16 = 512"):
        resolve_minibatch(PPOConfig(minibatch_size=100), 16)
    # a count of minibatches per mini-epoch: 4 is the original's 8 x num_envs at horizon 32
    assert resolve_minibatch(PPOConfig(num_minibatches=4), 16) == 8 * 16
    assert resolve_minibatch(PPOConfig(num_minibatches=4), 2048) == 8 * 2048
    assert resolve_minibatch(PPOConfig(num_minibatches=1), 16) == resolve_minibatch(PPOConfig(), 16) == 512
    with pytest.raises(ConfigError, match=r"train.num_minibatches=3 must be a positive divisor .* = 512"):
        resolve_minibatch(PPOConfig(num_minibatches=3), 16)
    with pytest.raises(ConfigError, match="both set"):
        resolve_minibatch(PPOConfig(num_minibatches=4, minibatch_size=128), 16)


def test_epoch_budget_is_the_task_s_capped_by_the_motion_s():
    from omegaconf import OmegaConf

    from skillmimic.rl.config import resolve_max_epochs

    def budget(*overrides):
        return resolve_max_epochs(OmegaConf.to_object(compose(list(overrides))))

    assert budget() == 100                                                  # the demo: a CPU try-out
    assert budget("motion=ballplay_layup") == 50000                         # V1 skill, the original's
    assert budget("motion=ballplay_v2_sparse", "task=skill_v2") == 20000    # V2
    assert budget("task=hlc_heading") == 2000 and budget("task=hlc_layup") == 6000
    assert budget("task=hlc_layup", "motion=demo") == 100
    assert budget("motion=ballplay_layup", "max_epochs=7") == 7 and budget("max_epochs=-1") == -1
    with pytest.raises(ConfigError, match="task.max_epochs must be >= 1"):
        from skillmimic.rl.config import validate
        validate(OmegaConf.to_object(compose(["task.max_epochs=0"])))


def test_body_kinematics_is_checked_against_the_backend():
    """``sim.body_kinematics`` takes auto, torch or the backend's own engine (one table,
    skillmimic.sim.base.BODY_KINEMATICS, for the config and the simulators)."""
    from omegaconf import OmegaConf

    from skillmimic.rl.config import validate

    validate(OmegaConf.to_object(compose(["sim.body_kinematics=torch"])))
    for bad in ("warp", "fk"):
        with pytest.raises(ConfigError, match=f"sim.body_kinematics must be one of auto, mujoco, torch .*'{bad}'"):
            validate(OmegaConf.to_object(compose([f"sim.body_kinematics={bad}"])))
    assert OmegaConf.to_object(compose([])).sim.sim_kwargs()["body_kinematics"] == "auto"


def test_defaults_are_the_original_ppo_settings_and_yaml_matches_schema():
    from omegaconf import OmegaConf

    t = PPOConfig()
    assert (t.learning_rate, t.lr_schedule, t.horizon_length, t.mini_epochs) == (2e-5, "constant", 32, 6)
    assert (t.gamma, t.tau, t.e_clip, t.critic_coef, t.entropy_coef, t.bounds_loss_coef) == \
        (0.99, 0.95, 0.2, 5.0, 0.0, 10.0)
    assert (t.normalize_input, t.normalize_value, t.normalize_advantage, t.truncate_grads, t.clip_value) == \
        (True, True, True, False, False)
    assert t.network.units == [1024, 512, 512] and t.network.log_std == -2.9

    cfg = OmegaConf.to_object(compose([]))
    assert cfg.train == PPOConfig()              # cfg/train/ppo_skill.yaml == the schema defaults
    assert cfg.device == "cpu" and cfg.motion.name == "demo" and cfg.sim.backend == "mujoco"
    env_cfg = cfg.task.env_config(cfg.num_envs, 3)
    assert (env_cfg.num_envs, env_cfg.seed, env_cfg.episode_length, env_cfg.state_init) == (16, 3, 60, "random")
    assert compose(["task.state_init=10"]).task.state_init == "10"
    assert OmegaConf.to_object(compose(["task.state_init=10"])).task.env_config(4, 0).state_init == 10
    assert OmegaConf.to_object(compose(["sim=mjwarp"])).sim.backend == "mjwarp"


def test_multi_gpu_requires_a_torchrun_launch_and_cuda_devices_for_cuda(monkeypatch):
    from skillmimic.rl.config import distributed_rank, validate
    from skillmimic.rl.runner import to_config

    for k in ("LOCAL_RANK", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    cfg = to_config(compose(["multi_gpu=true"]))
    with pytest.raises(ConfigError, match="torchrun"):
        validate(cfg)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    if torch.cuda.device_count() > 1:
        assert distributed_rank("cuda") == (1, 3, 4)
    else:
        with pytest.raises(ConfigError, match="cuda:1"):
            distributed_rank("cuda")
    assert distributed_rank("cpu") == (1, 3, 4)
