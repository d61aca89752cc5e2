"""End-to-end CPU training throughput: PPO update on one torch thread vs on every core.

Both variants are the regular ``train.py`` agent with the same settings and seed; they differ
only in ``torch_update_threads`` (1: the update on one thread, as before; 0: one per core while
the simulator's threads are idle). They are built once and run in interleaved rounds, so that
background load hits both alike; the medians and their ratio are printed, with the reward per
step of each (same PPO settings: the learning per frame must not change).

Each variant's epoch is also split (the agent's and env's stage timers) into physics, env work
(reference, observations, reward, resets), policy inference and the PPO update; the floor is
what an epoch would take with physics, inference and update as they are and the env work free:
the speed-up that removing every other cost could still give over the first variant.

    python benchmarks/train_throughput.py                    # 16 envs, demo-sized run on layup
    python benchmarks/train_throughput.py --num-envs 64 --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from gpu_suite import EpochDriver, compose_train, layup_motion  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per variant per round")
    ap.add_argument("--motion", default=str(layup_motion()))
    ap.add_argument("--sim", default="mujoco", choices=["mujoco", "mjwarp"])
    args = ap.parse_args(argv)

    from skillmimic.rl.runner import build_agent, close_agent

    out = tempfile.mkdtemp(prefix="train_throughput_")
    variants = {"update on 1 thread (before)": 1, f"update on {os.cpu_count()} threads (now)": 0}
    drivers, rates, rewards = {}, {k: [] for k in variants}, {k: [] for k in variants}
    splits = {k: {"physics": 0.0, "env work": 0.0, "inference": 0.0, "update": 0.0} for k in variants}
    timed = {k: 0 for k in variants}
    for name, threads in variants.items():
        ov = [f"motion.path={args.motion}", "motion.name=bench", f"num_envs={args.num_envs}", f"sim={args.sim}",
              "print_stats=false", f"output_dir={out}", "experiment=throughput", "train.save_frequency=0",
              "max_epochs=-1", f"torch_update_threads={threads}"]
        agent, _, _ = build_agent(compose_train(ov))
        drivers[name] = EpochDriver(agent)
        drivers[name].epoch()                                   # warm-up
        agent._pop_term_means()
    try:
        for _ in range(args.rounds):
            for name, drv in drivers.items():
                timers = (drv.agent.timer, drv.agent.vec_env.env.timer)
                for timer in timers:
                    timer.reset()
                    timer.enabled = True
                secs = [drv.epoch() for _ in range(args.epochs)]
                t = {k: v for timer in timers for k, v in timer.totals().items()}
                for timer in timers:
                    timer.enabled = False
                sp = splits[name]
                sp["physics"] += t.get("physics", 0.0)
                sp["env work"] += t.get("env_step", 0.0) - t.get("physics", 0.0)
                sp["inference"] += t.get("inference", 0.0)
                sp["update"] += sum(secs) - t.get("env_step", 0.0) - t.get("inference", 0.0)
                timed[name] += args.epochs
                rates[name].append(drv.agent.curr_frames * args.epochs / sum(secs))
                rewards[name].append(drv.agent._pop_term_means().get("reward", float("nan")))
    finally:
        for drv in drivers.values():
            close_agent(drv.agent)
    a = next(iter(drivers.values())).agent
    print(f"{args.num_envs} envs, sim {args.sim}, horizon {a.horizon_length}, minibatch {a.minibatch_size}, "
          f"{a.mini_epochs_num} mini-epochs, {args.rounds} interleaved rounds x {args.epochs} epochs; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'variant':<34}{'frames/s (median)':>19}{'min':>8}{'max':>8}{'reward/step':>13}")
    med = {}
    names = list(variants)
    for name in variants:
        med[name] = statistics.median(rates[name])
        print(f"{name:<34}{med[name]:>19.0f}{min(rates[name]):>8.0f}{max(rates[name]):>8.0f}"
              f"{statistics.fmean(rewards[name]):>13.4f}")
    before, now = med.values()
    print(f"end-to-end speed-up: x{now / before:.2f}")
    print(f"\nseconds per epoch (mean over the timed epochs; update = the rest of the epoch: PPO update, "
          f"dataset, bookkeeping)")
    print(f"{'variant':<34}" + "".join(f"{k:>11}" for k in splits[names[0]]) + f"{'floor':>9}")
    first_epoch = a.curr_frames / before
    for name in names:
        sp = {k: v / max(timed[name], 1) for k, v in splits[name].items()}
        floor = sp["physics"] + sp["inference"] + sp["update"]
        print(f"{name:<34}" + "".join(f"{v:>11.3f}" for v in sp.values()) + f"{floor:>9.3f}")
    print(f"ceiling with the env work free (last variant's floor): x{first_epoch / floor:.2f} over the first variant")
    return 0


if __name__ == "__main__":
    sys.exit(main())
