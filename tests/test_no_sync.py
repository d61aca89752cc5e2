"""No per-step host synchronisation in the env + simulator + agent hot path.

On CUDA, ``.item()``, ``.cpu()``, ``nonzero()``, boolean masks read by Python (``if t:``) and
friends make the host wait for the GPU every step. These tests run the CUDA code path (mask
resets, MuJoCo Warp) on the CPU under a guard that patches those torch entry points: env
steps (the skill env, with and without the SkillMimic-V2 hook, and the HLC env) must not call
them at all, and a PPO rollout may call them a fixed number of times per rollout (folding
episode statistics), independent of its length. The guard cannot see syncs inside torch's C++
(``torch.multinomial`` drawing one sample per row, a host-to-device copy): on a GPU the
``cuda``-marked tests (``benchmarks/gpu_suite.py``) repeat the checks with
``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
import torch

from envs.skill import SkillEnvConfig, make_skill_env

from helpers import MOTION, compose, fast_overrides, needs_motion, needs_sparse
from test_v2_env import graph_file, hist_ckpt  # noqa: F401  (fixtures; ``motion``: the sparse clips)


SYNC_METHODS = ("item", "cpu", "nonzero", "tolist", "numpy", "__bool__")
# Checks that run only when the tensors live on the CPU (``device.type == "cpu"`` branches),
# where reading them costs nothing; on CUDA these branches are skipped. (file, function).
CPU_ONLY_CALLERS = {("library.py", "_broadcast"), ("base.py", "_log_nonfinite")}


@contextlib.contextmanager
def sync_guard(raise_on_call: bool = True):
    """Patch the torch calls that read device data on the host; yields a list of the calls."""
    calls: list[str] = []
    saved = {name: getattr(torch.Tensor, name) for name in SYNC_METHODS}
    saved_fn = torch.nonzero

    def wrap(name, orig):
        def guarded(*args, **kwargs):
            caller = sys._getframe(1).f_code
            if (Path(caller.co_filename).name, caller.co_name) in CPU_ONLY_CALLERS:
                return orig(*args, **kwargs)
            calls.append(name)
            if raise_on_call:
                raise AssertionError(f"host sync in the hot path: Tensor.{name}()")
            return orig(*args, **kwargs)
        return guarded

    try:
        for name, orig in saved.items():
            setattr(torch.Tensor, name, wrap(name, orig))
        torch.nonzero = wrap("torch.nonzero", saved_fn)
        yield calls
    finally:
        for name, orig in saved.items():
            setattr(torch.Tensor, name, orig)
        torch.nonzero = saved_fn


def test_guard_catches_each_sync_call():
    t = torch.ones(3)
    for call in (lambda: t.sum().item(), lambda: t.cpu(), lambda: t.nonzero(), lambda: bool(t[0]),
                 lambda: torch.nonzero(t)):
        with sync_guard(), pytest.raises(AssertionError, match="host sync"):
            call()
    assert t.sum().item() == 3.0            # restored


@needs_motion
def test_env_steps_with_mask_resets_never_sync():
    cfg = SkillEnvConfig(num_envs=6, episode_length=5, seed=0, masked_resets=True)
    env = make_skill_env(cfg, MOTION, sim_backend="mjwarp")
    env.reset()
    g = torch.Generator().manual_seed(0)
    actions = [torch.rand(6, env.num_actions, generator=g) * 2 - 1 for _ in range(12)]
    dones = []
    with sync_guard():
        for a in actions:            # 12 steps of 5-step episodes: every env resets at least twice
            _, reward, done, info = env.step(a)
            dones.append(done.clone())
    done = torch.stack(dones)
    assert done.sum(0).min() >= 2
    # resets happened on the device: progress restarted and the segments are valid
    assert (env.progress < env.segment_length).all() and torch.isfinite(reward).all()
    env.close()


def _v2_env(motion, graph_file, hist_ckpt, n, device="cpu"):  # noqa: F811
    """A skill env with every V2 mechanism on (STF with search, STG, ATS, history) on MuJoCo Warp."""
    from envs import SkillEnv
    from skillmimic.augment.env_hook import V2Augment, V2Config
    from skillmimic.sim import make_simulator

    v2 = V2Config(state_switch_prob=0.4, graph_file=graph_file, state_init_random_prob=0.4, reweight=True,
                  reweight_interval=4, hist_ckpt=hist_ckpt)
    if device != "cpu":
        from skillmimic.motion import MotionLibrary

        motion = MotionLibrary(motion.files, device=device)
    cfg = SkillEnvConfig(num_envs=n, episode_length=5, seed=0)
    return SkillEnv(cfg, motion, make_simulator("mjwarp", n, device=device), augment=V2Augment(v2))


@needs_sparse
def test_v2_env_steps_with_mask_resets_never_sync(motion, graph_file, hist_ckpt):  # noqa: F811
    env = _v2_env(motion, graph_file, hist_ckpt, 6)
    env.masked_resets = True
    env.reset()
    g = torch.Generator().manual_seed(0)
    actions = [0.2 * torch.randn(6, env.num_actions, generator=g) for _ in range(12)]
    dones = []
    with sync_guard():
        for a in actions:            # 12 steps of 5-step episodes: every env resets at least twice
            obs, reward, done, info = env.step(a)
            dones.append(done.clone())
        stats = env.epoch_stats()        # the training log's statistics: computed on the device too
    assert torch.stack(dones).sum(0).min() >= 2
    assert torch.isfinite(obs).all() and torch.isfinite(reward).all()
    counts = env.augment.counts           # kept on the device, read here (a sync, outside the guard)
    assert counts["ats_updates"] == 3 and counts["resets"] >= 6 + 12
    assert counts["stf"] > 0 and counts["switch"] + counts["switch_no_match"] > 0
    assert {k: int(stats[f"v2/{k}"]) for k in counts} == counts
    assert float(stats["v2/stf_rate"]) == counts["stf"] / counts["resets"]
    env.close()


def _hlc_env(task, n):
    """An HLC env on MuJoCo Warp (on CUDA where there is one), masked resets, 8-step episodes."""
    from test_hlc import make_env

    env, llc = make_env(task, num_envs=n, backend="mjwarp", masked_resets=True, episode_length=8)
    env.llc = lambda obs: torch.zeros(obs.shape[0], llc.num_actions, device=obs.device)   # made on the device
    return env


@pytest.mark.parametrize("task", ["circling", "layup"])
def test_hlc_env_steps_with_mask_resets_never_sync(task):
    pytest.importorskip("mujoco_warp")
    env = _hlc_env(task, 4)
    env.reset()
    actions = torch.tensor([0, 1, 2, 1])
    dones = []
    with sync_guard():
        for _ in range(6):           # 3 env steps per HLC step, 8-step episodes
            obs, reward, done, info = env.step(actions)
            dones.append(done.clone())
    assert torch.stack(dones).sum(0).min() >= 2
    assert torch.isfinite(obs).all() and torch.isfinite(reward).all()
    env.close()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@needs_motion
def test_env_steps_on_cuda_never_sync():
    cfg = SkillEnvConfig(num_envs=64, episode_length=5, seed=0)
    env = make_skill_env(cfg, MOTION, sim_backend="mjwarp", device="cuda")
    assert env.masked_resets
    env.reset()
    actions = torch.zeros(64, env.num_actions, device="cuda")
    env.step(actions)                      # first step: kernel loading and graph capture
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(12):
            env.step(actions)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert env.nonfinite_resets == 0
    env.close()


@needs_motion
def test_mask_resets_start_new_episodes_from_the_reference():
    cfg = SkillEnvConfig(num_envs=4, episode_length=30, seed=1, masked_resets=True)
    env = make_skill_env(cfg, MOTION, sim_backend="mujoco")
    env.reset()
    env.step(torch.zeros(4, env.num_actions))
    old_clip_pos = env.sim.state.joint.root_pos.clone()
    mask = torch.tensor([True, False, True, False])
    env.reset_where(mask)
    assert env.progress.tolist() == [0, 1, 0, 1]
    ref = env.reference().state
    assert torch.allclose(env.sim.state.joint.dof_pos[mask], ref.dof_pos[mask], atol=1e-5)
    assert torch.equal(env.sim.state.joint.root_pos[~mask], old_clip_pos[~mask])
    env.close()


def _rollout_sync_calls(tmp_path: Path, horizon: int) -> int:
    from skillmimic.rl.runner import build_agent, close_agent

    cfg = compose(fast_overrides(tmp_path, f"nosync{horizon}", **{
        "sim": "mjwarp", "train.horizon_length": horizon, "train.minibatch_size": 4 * horizon,
        "task.episode_length": 4, "torch_update_threads": 2}))
    agent, _, _ = build_agent(cfg)
    agent.vec_env.env.masked_resets = True
    try:
        agent.init_tensors()
        agent.obs = agent.env_reset()
        torch.set_num_threads(2)
        with torch.no_grad(), sync_guard(raise_on_call=False) as calls:
            batch = agent.play_steps()
        assert torch.get_num_threads() == 1          # stepping: the simulator's threads have the cores
        agent.prepare_dataset(batch)
        assert torch.get_num_threads() == 2          # updating: torch_update_threads
        torch.set_num_threads(1)
        return len(calls), int(agent.game_lengths.current_size)
    finally:
        close_agent(agent)


@needs_motion
def test_rollout_syncs_once_per_rollout_not_per_step(tmp_path):
    short, _ = _rollout_sync_calls(tmp_path, 2)
    long, finished = _rollout_sync_calls(tmp_path, 10)
    assert finished > 0                     # episodes ended and reached the statistics
    assert long == short <= 2, f"{short} sync calls in a 2-step rollout, {long} in a 10-step one"


def _steps_never_sync_on_cuda(env, actions, steps: int = 12) -> None:
    env.reset()
    env.step(actions)                      # first step: kernel loading and graph capture
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(steps):
            env.step(actions)
        env.epoch_stats()                  # the training log's statistics (read once per epoch)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@needs_sparse
def test_v2_env_steps_on_cuda_never_sync(motion, graph_file, hist_ckpt):  # noqa: F811
    env = _v2_env(motion, graph_file, hist_ckpt, 64, device="cuda")
    assert env.masked_resets
    _steps_never_sync_on_cuda(env, torch.zeros(64, env.num_actions, device="cuda"))
    assert env.augment.counts["resets"] > 64
    env.close()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("task", ["circling", "layup"])
def test_hlc_env_steps_on_cuda_never_sync(task):
    env = _hlc_env(task, 64)
    assert env.device.type == "cuda" and env.masked_resets
    _steps_never_sync_on_cuda(env, torch.zeros(64, dtype=torch.long, device="cuda"), steps=6)
    env.close()
