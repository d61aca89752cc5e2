"""``skillmimic`` agent: rl-games' continuous PPO agent with what skill training needs.

Over :class:`rl_games.algos_torch.a2c_continuous.A2CAgent` it changes:

* **Losses** as in the original skill agent: ``actor + critic_coef * critic +
  bounds_loss_coef * bound`` with ``bound = sum(max(mu - 1, 0)^2 + min(mu + 1, 0)^2)``.
  rl-games' own ``bound_loss`` starts at |mu| = 1.1 and its total halves the critic
  term, so both are replaced rather than reused.
* **Minibatches** are reshuffled every mini-epoch (rl-games' continuous agent slices
  the rollout in env order, so a minibatch would hold whole envs, not a sample).
* **KL**: the logged ``info/kl`` (and the KL that drives ``lr_schedule=adaptive``) is the
  exact KL between the old and new diagonal Gaussians, :func:`diag_gaussian_kl`. rl-games'
  ``torch_ext.policy_kl`` adds 1e-5 to sigma^2; with the fixed sigma = exp(-2.9) (sigma^2 =
  0.003) that makes every dimension's term about -0.0017, about -0.25 over 156 actions, so
  the logged KL was negative and the adaptive schedule could never see a KL above threshold.
* **Logging**: per epoch, the mean over the rollout of every reward term
  (``reward_terms/<term>``), the cumulative count of worlds reset after going
  non-finite (``env/nonfinite_resets``) and whatever the env's ``epoch_stats()`` returns
  (the V2 hook's ``v2/*`` counters and rates), read from the device once per epoch; one
  console line per epoch (with the env's ``*_rate`` statistics, if any).
* **Checkpoints** are written atomically (:mod:`.checkpoint`) to ``nn/<name>.pth``
  every ``save_frequency`` epochs, at the end, and on SIGINT/SIGTERM.
* **Resume** restores everything a run needs to continue as if never stopped: model
  (with the observation and value running mean/std inside it), optimizer, epoch and
  frame counters, learning rate, the episode statistics, RNG states and env state. Every
  value is a tensor, number, string or plain container (RNG states as tensors, the run
  configuration as YAML text), so the file loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from rl_games.algos_torch import a2c_continuous, torch_ext
from rl_games.common import common_losses, datasets
from rl_games.common.a2c_common import swap_and_flatten01

from ..profiling import StageTimer
from ..checkpoint import CheckpointError, atomic_save, load_checkpoint
from .names import RL_GAMES

AGENT_NAME = RL_GAMES["continuous"].agent
#: 2: RNG states as tensors, every value loadable with ``torch.load(weights_only=True)``
CHECKPOINT_FORMAT = 2


def format_duration(seconds: float) -> str:
    """``75.3`` -> ``1m15s``, ``3725`` -> ``1h02m``: short enough for a progress line."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def rng_state() -> dict:
    """torch/numpy/Python RNG states as tensors and numbers (no pickled objects)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                       "gauss_next": gauss_next},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(rng: dict) -> None:
    """Inverse of :func:`rng_state`; also reads format-1 (pickled numpy/Python) states."""
    torch.set_rng_state(rng["torch"])
    npst = rng["numpy"]
    if isinstance(npst, dict):
        npst = (npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                npst["cached_gaussian"])
    np.random.set_state(npst)
    pyst = rng["python"]
    if isinstance(pyst, dict):
        pyst = (pyst["version"], tuple(int(x) for x in pyst["internal"].tolist()), pyst["gauss_next"])
    random.setstate(pyst)
    if rng.get("cuda") is not None and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])


def diag_gaussian_kl(mu0: torch.Tensor, sigma0: torch.Tensor, mu1: torch.Tensor, sigma1: torch.Tensor) -> torch.Tensor:
    """KL(N(mu0, sigma0^2) || N(mu1, sigma1^2)) of diagonal Gaussians, summed over the last dim.

    Closed form in float64, without rl-games' epsilon: per dimension
    ``log(s1/s0) + (s0^2 + (mu1 - mu0)^2) / (2 s1^2) - 1/2``, written as
    ``(expm1(u) - u) / 2 + (mu1 - mu0)^2 / (2 s1^2)`` with ``u = 2 log(s0/s1)`` so that equal
    sigmas give exactly 0 for the sigma part (no cancellation of 1/2 - 1/2), and the
    result is >= 0 (the sigma part is clamped at 0 against rounding of expm1(u) - u)."""
    mu0, sigma0, mu1, sigma1 = (t.double() for t in (mu0, sigma0, mu1, sigma1))
    u = 2.0 * (torch.log(sigma0) - torch.log(sigma1))
    scale = 0.5 * (torch.expm1(u) - u).clamp_min(0.0)
    shift = (mu1 - mu0) ** 2 / (2.0 * sigma1 ** 2)
    return (scale + shift).sum(dim=-1)


class ShuffledPPODataset(datasets.PPODataset):
    """PPODataset with exactly one fresh permutation per pass over the minibatches (one
    mini-epoch), for both agents: rl-games' discrete agent calls :meth:`apply_permutation`
    before every pass, its continuous agent never does, so a pass that starts (index 0)
    without one draws it then."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, permute=True, **kwargs)
        self._permuted = False

    def apply_permutation(self):
        super().apply_permutation()
        self._permuted = True

    def _get_item(self, idx):
        if idx == 0:
            if not self._permuted:
                self.apply_permutation()
            self._permuted = False
        return super()._get_item(idx)


class RunManagement:
    """Run management shared by the skill and the HLC agent, mixed in before an rl-games agent
    class: the training loop, per-epoch logging, rollout statistics, signals, checkpoints and
    resume with the full training state (learning rate, entropy coefficient, episode
    statistics, RNGs). It uses only state that rl-games' common base (``A2CBase``) holds."""

    #: ``algo.name`` of the agent, in error messages
    algo_name = AGENT_NAME

    def __init__(self, base_name: str, params: dict):
        ranks = None
        if params["config"].get("multi_gpu"):
            # rl-games' own multi_gpu setup starts an NCCL group and moves to cuda:<rank>; the
            # group exists already (skillmimic.rl.distributed, gloo or NCCL) and the device is
            # set, so rl-games is built as a single process and given the ranks afterwards.
            ranks = (int(os.environ["LOCAL_RANK"]), dist.get_rank(), dist.get_world_size())
            params, scratch = self._single_process_params(params, ranks[1])
        super().__init__(base_name, params)
        self._rank_seed = int(params.get("seed", 0))
        # torch threads while stepping (the simulator's own threads need the cores) and while
        # updating (the simulator is idle): see Config.torch_threads / torch_update_threads
        self._rollout_threads = torch.get_num_threads()
        self._update_threads = int(self.config.get("torch_update_threads") or self._rollout_threads)
        if ranks is not None:
            self.multi_gpu = True
            self.local_rank, self.global_rank, self.world_size = ranks
            if scratch is not None:   # rl-games opened a tensorboard writer there: ranks > 0 log nothing
                self.writer.close()
                self.writer = None
                shutil.rmtree(scratch, ignore_errors=True)
                self.train_dir = params["config"]["run_train_dir"]
                self.experiment_dir = os.path.join(self.train_dir, self.experiment_name)
                self.nn_dir = os.path.join(self.experiment_dir, "nn")
                self.summaries_dir = os.path.join(self.experiment_dir, "summaries")
        if self.is_rnn:
            raise ValueError(f"the {self.algo_name} agent does not support recurrent networks")
        self.checkpoint_name = self.config["name"]
        self.keep_checkpoint_every = int(self.config.get("keep_checkpoint_every", 0))
        self.run_config = self.config.get("run_config")     # resolved YAML of the run, kept in checkpoints
        self._term_sums: dict[str, torch.Tensor] = {}
        self._term_steps = 0
        self._nonfinite_resets = 0           # int, or the env's device counter (read when logging)
        self._stop_signal: int | None = None
        # opt-in stage timers (benchmarks/gpu_suite.py): self.timer.enabled = True
        self.timer = StageTimer(self.ppo_device)
        # per-epoch summaries of this process (benchmarks, tests); bounded for 50k-epoch runs
        self.epoch_history: deque[dict] = deque(maxlen=20000)

    @staticmethod
    def _single_process_params(params: dict, rank: int) -> tuple[dict, str | None]:
        """rl-games parameters for one rank of a multi-process run (see ``__init__``): rank 0 as
        usual; the others print nothing, take rank 0's learning rate (broadcast in
        ``update_lr``) and have rl-games' constructor create its folders in a scratch folder."""
        config = dict(params["config"], multi_gpu=False)
        scratch = None
        if rank != 0:
            scratch = tempfile.mkdtemp(prefix=f"skillmimic_rank{rank}_")
            config.update(print_stats=False, lr_schedule=None, run_train_dir=config["train_dir"], train_dir=scratch)
        return dict(params, config=config), scratch

    # ------------------------------------------------------------------ rollout statistics
    def env_step(self, actions):
        obs, rewards, dones, infos = super().env_step(actions)
        self._record_step_stats(infos)
        return obs, rewards, dones, infos

    def _record_step_stats(self, infos) -> None:
        """Accumulate the env's per-term reward means (tensorboard, one scalar per term) and its
        non-finite reset count."""
        if not isinstance(infos, dict):
            return
        terms = infos.get("reward_terms")
        if terms:
            for k, v in terms.items():
                m = v.detach().float().mean()
                self._term_sums[k] = self._term_sums[k] + m if k in self._term_sums else m
            self._term_steps += 1
        if "nonfinite_resets" in infos:
            self._nonfinite_resets = infos["nonfinite_resets"]    # read (synced) once per epoch

    def _pop_term_means(self) -> dict[str, float]:
        out = {k: (v / max(self._term_steps, 1)).item() for k, v in self._term_sums.items()}
        self._term_sums, self._term_steps = {}, 0
        return out

    def _read_env_stats(self) -> dict[str, float]:
        """The env's ``epoch_stats()`` (:meth:`envs.base.EpisodeEnv.epoch_stats`) as numbers: one
        device-to-host copy for all of them, once per epoch."""
        stats = getattr(getattr(self.vec_env, "env", None), "epoch_stats", None)
        stats = stats() if stats is not None else {}
        if not stats:
            return {}
        values = torch.stack([v.detach().reshape(()).to(torch.float64) for v in stats.values()]).tolist()
        return dict(zip(stats, values))

    # ------------------------------------------------------------------ rollout
    def play_steps(self):
        """rl-games' rollout without per-step host syncs: it turned each step's done flags into
        indices (``nonzero``) to update the episode statistics; here the finished episodes'
        returns and lengths are kept on the device for the whole rollout and folded into the
        statistics once, at its end (the same per-step updates, in the same order).

        With ``self.timer.enabled`` the stages ``inference`` and ``env_step`` are timed."""
        torch.set_num_threads(self._rollout_threads)
        if self.use_action_masks:
            return super().play_steps()
        n_steps, timer = self.horizon_length, self.timer
        done_buf = torch.zeros(n_steps, *self.dones.shape, dtype=torch.bool, device=self.ppo_device)
        ends = {k: torch.zeros(n_steps, *v.shape, dtype=v.dtype, device=self.ppo_device) for k, v in
                (("rewards", self.current_rewards), ("shaped_rewards", self.current_shaped_rewards),
                 ("lengths", self.current_lengths))}
        step_time = 0.0
        for n in range(n_steps):
            with timer.stage("inference"):
                res_dict = self.get_action_values(self.obs)
            self.experience_buffer.update_data("obses", n, self.obs["obs"])
            self.experience_buffer.update_data("dones", n, self.dones)
            for k in self.update_list:
                self.experience_buffer.update_data(k, n, res_dict[k])
            t0 = time.perf_counter()
            with timer.stage("env_step"):
                self.obs, rewards, self.dones, infos = self.env_step(res_dict["actions"])
            step_time += time.perf_counter() - t0
            shaped_rewards = self.rewards_shaper(rewards)
            if self.value_bootstrap and "time_outs" in infos:
                shaped_rewards.add_(self.gamma * res_dict["values"] * self.cast_obs(infos["time_outs"]).unsqueeze(1).float())
            self.experience_buffer.update_data("rewards", n, shaped_rewards)
            self.current_rewards.add_(rewards)
            self.current_shaped_rewards.add_(shaped_rewards)
            self.current_lengths.add_(1)
            done_buf[n] = self.dones.bool()
            ends["rewards"][n] = self.current_rewards
            ends["shaped_rewards"][n] = self.current_shaped_rewards
            ends["lengths"][n] = self.current_lengths
            not_done = (1.0 - self.dones.float()).unsqueeze(1)
            self.current_rewards.mul_(not_done)
            self.current_shaped_rewards.mul_(not_done)
            self.current_lengths.mul_(not_done.squeeze(1))
        self._fold_episode_stats(done_buf, ends)

        last_values = self.get_values(self.obs)
        fdones = self.dones.float()
        buf = self.experience_buffer.tensor_dict
        mb_advs = self.discount_values(fdones, last_values, buf["dones"].float(), buf["values"], buf["rewards"])
        batch_dict = self.experience_buffer.get_transformed_list(swap_and_flatten01, self.tensor_list)
        batch_dict["returns"] = swap_and_flatten01(mb_advs + buf["values"])
        batch_dict["played_frames"] = self.batch_size
        batch_dict["step_time"] = step_time
        return batch_dict

    def prepare_dataset(self, batch_dict):
        """The PPO update starts here (rl-games' ``train_epoch``): the simulator's threads are
        idle until the next rollout, so torch may use every core."""
        torch.set_num_threads(self._update_threads)
        return super().prepare_dataset(batch_dict)

    def _fold_episode_stats(self, done_buf: torch.Tensor, ends: dict[str, torch.Tensor]) -> None:
        """One device-to-host copy per rollout, then rl-games' per-step meter updates."""
        done_host = done_buf.cpu().numpy()
        meters = self._episode_meters()
        for n in range(done_host.shape[0]):
            idx = np.flatnonzero(done_host[n])[::self.num_agents, None]     # (k, 1) like rl-games'
            if len(idx):
                idx = torch.as_tensor(idx, device=self.ppo_device)
                for name, meter in meters.items():
                    meter.update(ends[name][n][idx])

    # ------------------------------------------------------------------ training loop
    def train(self):
        """PPO epochs until ``max_epochs`` (counted across resumes) or a stop signal."""
        self.init_tensors()
        self.obs = self.env_reset()
        self._nonfinite_resets = getattr(getattr(self.vec_env, "env", None), "nonfinite_resets", 0)
        if self.max_epochs != -1 and self.epoch_num >= self.max_epochs:
            print(f"[{AGENT_NAME}] checkpoint is at epoch {self.epoch_num} >= max_epochs={self.max_epochs}: "
                  f"nothing to do (raise max_epochs to continue)")
            return self.last_mean_rewards, self.epoch_num
        old_handlers = self._install_signal_handlers()
        self._wall_start, self._epoch_start = time.perf_counter(), self.epoch_num   # for elapsed / ETA
        total_time = 0.0
        epoch_num = self.epoch_num
        if self.multi_gpu:
            # several processes (under torchrun): every rank starts from rank 0's weights;
            # gradients are all-reduced inside rl-games' optimiser step.
            weights = [self.model.state_dict()]
            dist.broadcast_object_list(weights, 0)
            self.model.load_state_dict(weights[0])
        lead = self.global_rank == 0
        try:
            while True:
                epoch_num = self.update_epoch()
                (step_time, play_time, update_time, sum_time, a_losses, c_losses, b_losses, entropies, kls,
                 last_lr, lr_mul) = self.train_epoch()
                self.dataset.update_values_dict(None)
                if self.multi_gpu:
                    self._merge_running_stats()
                total_time += sum_time
                curr_frames = self.curr_frames * self.world_size
                self.frame += curr_frames
                if lead:
                    self._log_epoch(epoch_num, curr_frames, step_time, play_time, update_time, sum_time,
                                    total_time, a_losses, c_losses, b_losses, entropies, kls, last_lr, lr_mul)

                finished = self.max_epochs != -1 and epoch_num >= self.max_epochs
                stopping = self._stop_signal is not None
                if self.multi_gpu:   # all ranks stop at the same epoch when any one is signalled
                    flag = torch.tensor(float(stopping), device=self.device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    stopping = bool(flag.item())
                if lead and (finished or stopping or (self.save_freq > 0 and epoch_num % self.save_freq == 0)):
                    self.save(self.checkpoint_path())
                if lead and self.keep_checkpoint_every > 0 and epoch_num % self.keep_checkpoint_every == 0:
                    self.save(self.checkpoint_path(epoch_num))
                if finished or stopping:
                    if stopping:
                        print(f"[{AGENT_NAME}] stopped by signal {self._stop_signal} after epoch {epoch_num}; "
                              f"resume with resume={self.checkpoint_path()}")
                    break
        finally:
            self._restore_signal_handlers(old_handlers)
            if self.writer is not None:
                self.writer.flush()
        return self.last_mean_rewards, epoch_num

    def _log_epoch(self, epoch_num, curr_frames, step_time, play_time, update_time, sum_time, total_time,
                   a_losses, c_losses, b_losses, entropies, kls, last_lr, lr_mul) -> None:
        frame = self.frame
        self.diagnostics.epoch(self, current_epoch=epoch_num)
        self.write_stats(total_time, epoch_num, step_time, play_time, update_time, a_losses, c_losses, entropies,
                         kls, last_lr, lr_mul, frame, sum_time, play_time, curr_frames)
        w = self.writer
        if b_losses:
            w.add_scalar("losses/bounds_loss", torch_ext.mean_list(b_losses).item(), frame)
        terms = self._pop_term_means()
        for k, v in terms.items():
            w.add_scalar(f"reward_terms/{k}", v, frame)
        self._nonfinite_resets = int(self._nonfinite_resets)
        w.add_scalar("env/nonfinite_resets", self._nonfinite_resets, frame)
        env_stats = self._read_env_stats()
        for k, v in env_stats.items():
            w.add_scalar(k, v, frame)

        elapsed = time.perf_counter() - getattr(self, "_wall_start", time.perf_counter())
        done = epoch_num - getattr(self, "_epoch_start", epoch_num - 1)
        eta = (f"  eta {format_duration(elapsed / max(done, 1) * (self.max_epochs - epoch_num))}"
               if self.max_epochs != -1 else "")
        line = [f"epoch {epoch_num}" + (f"/{self.max_epochs}" if self.max_epochs != -1 else ""),
                f"elapsed {format_duration(elapsed)}{eta}",
                f"frames {frame}", f"fps {curr_frames / max(sum_time, 1e-9):.0f} "
                                   f"(env {curr_frames / max(step_time, 1e-9):.0f})"]
        if "reward" in terms:
            line.append(f"reward/step {terms['reward']:.4f}")
        rates = [f"{k.removesuffix('_rate')} {v:.2f}" for k, v in env_stats.items() if k.endswith("_rate")]
        if rates:
            line.append(" ".join(rates))
        if self.game_rewards.current_size > 0:
            mean_rewards = self.game_rewards.get_mean()
            mean_lengths = self.game_lengths.get_mean()
            self.mean_rewards = float(mean_rewards[0])
            w.add_scalar("rewards/step", mean_rewards[0], frame)
            w.add_scalar("rewards/iter", mean_rewards[0], epoch_num)
            w.add_scalar("rewards/time", mean_rewards[0], total_time)
            w.add_scalar("episode_lengths/step", mean_lengths, frame)
            w.add_scalar("episode_lengths/iter", mean_lengths, epoch_num)
            line.append(f"episode reward (mean of last {self.games_to_track}) {float(mean_rewards[0]):.3f} "
                        f"length {float(mean_lengths):.1f}")
        self.epoch_history.append({
            "epoch": epoch_num, "frame": frame, "fps": curr_frames / max(sum_time, 1e-9),
            "reward_per_step": terms.get("reward"), "reward_terms": terms,
            "kl": torch_ext.mean_list(kls).item() if kls else None,
            "episode_reward": float(self.game_rewards.get_mean()[0]) if self.game_rewards.current_size else None,
            "episode_length": float(self.game_lengths.get_mean()) if self.game_lengths.current_size else None,
            "nonfinite_resets": self._nonfinite_resets, "env_stats": env_stats})
        if self._nonfinite_resets:
            line.append(f"nonfinite resets {self._nonfinite_resets}")
        if self.print_stats:
            print("  ".join(line), flush=True)

    def _merge_running_stats(self) -> None:
        """Give every rank the same observation/value normalisers (once per epoch).

        rl-games averages gradients across ranks but leaves each rank's running mean/std to
        its own rollouts, so the ranks' policies would drift apart. The merged statistics are
        those of the pooled samples with each rank weighted equally (ranks see equally many)."""
        world = float(self.world_size)
        buffers = dict(self.model.named_buffers())     # rl-games scripts its normalisers (torch.jit)
        for name, run_mean in buffers.items():
            if not name.endswith("running_mean"):
                continue
            run_var = buffers[name[:-len("mean")] + "var"]
            mean = run_mean.clone()
            dist.all_reduce(mean)
            mean /= world
            var = run_var + (run_mean - mean) ** 2
            dist.all_reduce(var)
            run_mean.copy_(mean)
            run_var.copy_(var / world)

    # ------------------------------------------------------------------ signals
    def _install_signal_handlers(self):
        """SIGINT/SIGTERM finish the current epoch, write a checkpoint and stop (a second one aborts)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signum
            print(f"\n[{AGENT_NAME}] signal {signum}: finishing this epoch, then saving and stopping", flush=True)

        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signal_handlers(old) -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, epoch: int | None = None) -> Path:
        name = self.checkpoint_name if epoch is None else f"{self.checkpoint_name}_e{epoch}"
        return Path(self.nn_dir) / f"{name}.pth"

    def get_full_state_weights(self) -> dict:
        state = super().get_full_state_weights()
        state["format"] = CHECKPOINT_FORMAT
        state["last_lr"] = float(self.last_lr)
        state["entropy_coef"] = float(self.entropy_coef)
        state["episode_stats"] = {name: {"mean": m.mean.detach().cpu().clone(), "size": int(m.current_size)}
                                  for name, m in self._episode_meters().items()}
        state["rng"] = rng_state()
        state["last_mean_rewards"] = float(state.get("last_mean_rewards", -1e9))   # may be a numpy scalar
        if self.run_config is not None:
            state["run_config"] = self.run_config
        return state

    def set_full_state_weights(self, weights: dict, set_epoch: bool = True) -> None:
        if self.global_rank != 0:
            # The checkpoint holds rank 0's RNG and episode-sampler states; other ranks draw
            # their own (seeded by rank and epoch) so that they do not replay rank 0's episodes.
            weights = dict(weights, rng=None, env_state={k: v for k, v in (weights.get("env_state") or {}).items()
                                                         if k != "generator"})
        super().set_full_state_weights(weights, set_epoch=set_epoch)
        if self.global_rank != 0:
            seed = self._rank_seed + 1_000_003 * self.epoch_num
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)
            generator = getattr(getattr(self.vec_env, "env", None), "generator", None)
            if generator is not None:
                generator.manual_seed(seed)
        if "last_lr" in weights:
            self.last_lr = float(weights["last_lr"])
            self.update_lr(self.last_lr)
        if "entropy_coef" in weights:
            self.entropy_coef = float(weights["entropy_coef"])
        for name, meter in self._episode_meters().items():
            s = weights.get("episode_stats", {}).get(name)
            if s is not None:
                meter.mean = s["mean"].to(meter.mean.device).clone()   # its shape follows the updates
                meter.current_size = int(s["size"])
        rng = weights.get("rng")
        if rng:
            set_rng_state(rng)

    def _episode_meters(self) -> dict:
        return {"rewards": self.game_rewards, "shaped_rewards": self.game_shaped_rewards, "lengths": self.game_lengths}

    def save(self, fn) -> Path:
        """Atomic save of the full training state; ``fn`` gets ``.pth`` if it has no suffix."""
        path = Path(fn)
        if path.suffix != ".pth":
            path = path.with_name(path.name + ".pth")
        atomic_save(self.get_full_state_weights(), path)
        if self.writer is not None:
            self.writer.flush()              # the logs of every epoch a checkpoint covers are on disk too
        return path

    def restore(self, fn, set_epoch: bool = True, state: dict | None = None) -> None:
        """Continue from checkpoint ``fn`` (``state``: its contents, already loaded)."""
        if state is None:
            state = load_checkpoint(fn, map_location="cpu")
        try:
            self.set_full_state_weights(state, set_epoch=set_epoch)
        except (RuntimeError, KeyError, ValueError) as e:
            detail = [ln.strip() for ln in str(e).splitlines() if ln.strip()]   # torch lists every tensor
            first = detail[1] if len(detail) > 1 else (detail[0] if detail else type(e).__name__)
            more = f" (and {len(detail) - 2} more)" if len(detail) > 2 else ""
            raise CheckpointError(f"checkpoint {fn}: does not fit this model/config (network size, observation or "
                                  f"action size changed?): {first[:300]}{more}") from None
        print(f"[{AGENT_NAME}] resumed from {os.fspath(fn)} at epoch {self.epoch_num}, frame {self.frame}", flush=True)


class SkillMimicAgent(RunManagement, a2c_continuous.A2CAgent):
    """rl-games' continuous PPO with the original skill agent's losses and reshuffled minibatches."""

    def __init__(self, base_name: str, params: dict):
        super().__init__(base_name, params)
        if self.bounds_loss_coef is None:
            self.bounds_loss_coef = 0.0
        self.dataset = ShuffledPPODataset(self.batch_size, self.minibatch_size, self.is_discrete, self.is_rnn,
                                          self.ppo_device, self.seq_length)

    def train_actor_critic(self, input_dict):
        """rl-games' minibatch step, with its KL (second entry, what the adaptive schedule and
        ``info/kl`` see) replaced by the exact KL(new || old), :func:`diag_gaussian_kl`."""
        a_loss, c_loss, entropy, _, last_lr, lr_mul, mu, sigma, b_loss = super().train_actor_critic(input_dict)
        kl = diag_gaussian_kl(mu, sigma, input_dict["mu"], input_dict["sigma"]).mean()
        self.train_result = (a_loss, c_loss, entropy, kl, last_lr, lr_mul, mu, sigma, b_loss)
        return self.train_result

    # ------------------------------------------------------------------ losses
    def bound_loss(self, mu: torch.Tensor) -> torch.Tensor:
        """Squared excess of mu beyond the action range [-1, 1], summed over actions."""
        return (torch.clamp_min(mu - 1.0, 0.0) ** 2 + torch.clamp_max(mu + 1.0, 0.0) ** 2).sum(dim=-1)

    def calc_losses(self, actor_loss_func, old_action_log_probs_batch, action_log_probs, advantage, curr_e_clip,
                    value_preds_batch, values, return_batch, mu, entropy, rnn_masks):
        a_loss = actor_loss_func(old_action_log_probs_batch, action_log_probs, advantage, self.ppo, curr_e_clip)
        c_loss = common_losses.critic_loss(self.model, value_preds_batch, values, curr_e_clip, return_batch,
                                           self.clip_value)
        b_loss = self.bound_loss(mu)
        (a_loss, c_loss, entropy, b_loss), sum_mask = torch_ext.apply_masks(
            [a_loss.unsqueeze(1), c_loss, entropy.unsqueeze(1), b_loss.unsqueeze(1)], rnn_masks)
        loss = a_loss + self.critic_coef * c_loss - self.entropy_coef * entropy + self.bounds_loss_coef * b_loss
        return loss, a_loss, c_loss, entropy, b_loss, sum_mask

    # ------------------------------------------------------------------ checkpoints
