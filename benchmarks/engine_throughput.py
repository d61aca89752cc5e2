"""Engine throughput: skillmimic's MuJoCo C engine vs raw ``mujoco.rollout``, side by side.

Both run the same humanoid+ball scene, the same number of worlds and threads and the same
physics substeps per control step, from the same standing start with PD targets held.
"raw" calls ``Rollout.rollout`` on preallocated numpy buffers for one control step
(``substeps`` physics steps) per call -- exactly the physics work of one engine step; the
engine additionally moves state into torch, runs the NaN guard, computes the poses and
velocities of all 53 bodies and averages contact sensors; it runs twice, with the bodies
from MuJoCo's own kinematics (the default) and from the shared torch FK. The skill-env row adds what
training pays per step on top: reference lookup, observations, reward and resets
(``--motion``, default BallPlay-M layup); ``env / raw ratio`` compares it with raw rollout. A second raw figure rolls
``--horizon`` control steps in one call (no per-step Python at all) for reference.

MuJoCo's cost per step depends on the state (a humanoid lying on the floor has many more
contacts than one standing), and the raw runners start standing and then fall, while the
skill env keeps resetting to reference poses. So one more raw row replays, with plain
``rollout`` calls, exactly the states and controls the skill env stepped in the same round
(recorded while it ran): ``env / raw ratio (same states)`` compares the same physics work.

    python benchmarks/engine_throughput.py --worlds 64
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import mujoco
import numpy as np
import torch
from mujoco import rollout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim_scaling import standing_state  # noqa: E402  (this script's folder is on sys.path)
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator  # noqa: E402


DEFAULT_MOTION = Path(__file__).resolve().parents[2] / "shared" / "data" / "motions" / "BallPlay-M" / "layup"


class EngineRunner:
    def __init__(self, n: int, threads: int, body_kinematics: str = "mujoco"):
        self.n = n
        self.sim = MujocoCPUSimulator(n, num_threads=threads, body_kinematics=body_kinematics)
        self.sim.set_state(None, standing_state(n))
        self.targets = torch.zeros(n, 156)

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.sim.set_pd_targets(self.targets)
            self.sim.step()
        return self.n * steps / (time.perf_counter() - t0)


class EnvRunner:
    """The full skill-env step (``SkillEnv.step``: simulator, reference lookup, observations,
    reward, resets) on the same engine and thread count, fed zero actions."""

    def __init__(self, n: int, threads: int, motion: Path):
        from envs.skill import SkillEnvConfig, make_skill_env

        self.n = n
        self.env = make_skill_env(SkillEnvConfig(num_envs=n, seed=0), motion, num_threads=threads)
        self.env.reset()
        self.actions = torch.zeros(n, self.env.num_actions)

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.env.step(self.actions)
        return self.n * steps / (time.perf_counter() - t0)


class ReplayRawRunner:
    """Plain ``Rollout.rollout`` (one control step per call) from the very states, with the
    very controls, that the skill env stepped in its latest round (recorded by ``env_runner``),
    on the same thread count: the physics work of that round without anything else."""

    def __init__(self, env_runner: EnvRunner):
        sim = env_runner.env.sim
        self.env_runner = env_runner
        env_runner.recorded = []
        advance = sim._advance

        def record():   # two array copies per env step, inside the env's timing (0.02 ms at 64 worlds)
            env_runner.recorded.append((sim._state.copy(), sim._ctrl.copy()))
            advance()

        sim._advance = record
        self.model, self.sub, self.n, self.spec = sim.model, sim.substeps, env_runner.n, sim._control_spec
        self.datas = [mujoco.MjData(self.model) for _ in range(max(1, sim.num_threads))]
        self.models = [self.model] * self.n
        self.out = np.zeros_like(sim._traj)
        self.sens = np.zeros_like(sim._sens_traj)
        self.pool = rollout.Rollout(nthread=sim.num_threads if sim.num_threads > 1 else 0)

    def run(self, steps: int) -> float:
        calls = self.env_runner.recorded[-steps:]
        t0 = time.perf_counter()
        for state, ctrl in calls:
            self.pool.rollout(self.models, self.datas, state, ctrl, control_spec=self.spec,
                              skip_checks=True, nstep=self.sub, state=self.out, sensordata=self.sens)
        rate = self.n * len(calls) / (time.perf_counter() - t0)
        self.env_runner.recorded.clear()
        return rate


class RawRunner:
    """Plain ``Rollout.rollout`` on preallocated buffers, ``chunk`` control steps per call."""

    def __init__(self, n: int, threads: int, chunk: int):
        sim = MujocoCPUSimulator(n, num_threads=threads)  # the same model and start state
        sim.set_state(None, standing_state(n))
        self.model, self.sub, self.n, self.chunk = sim.model, sim.substeps, n, chunk
        self.state = sim._state.copy()
        sim.close()
        nstep = self.sub * chunk
        self.datas = [mujoco.MjData(self.model) for _ in range(max(1, threads))]
        self.models = [self.model] * n
        self.ctrl = np.zeros((n, nstep, self.model.nu))
        self.out = np.zeros((n, nstep, self.state.shape[1]))
        self.sens = np.zeros((n, nstep, self.model.nsensordata))
        self.pool = rollout.Rollout(nthread=threads if threads > 1 else 0)

    def run(self, steps: int) -> float:
        calls = max(1, steps // self.chunk)
        t0 = time.perf_counter()
        for _ in range(calls):
            self.pool.rollout(self.models, self.datas, self.state, self.ctrl, skip_checks=True,
                              nstep=self.sub * self.chunk, state=self.out, sensordata=self.sens)
            self.state[:] = self.out[:, -1]
        return self.n * calls * self.chunk / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="control steps timed per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=0, help="0 = one per CPU core")
    parser.add_argument("--horizon", type=int, default=50, help="control steps per call for the long-horizon raw figure")
    parser.add_argument("--motion", default=str(DEFAULT_MOTION), help="clips for the skill-env row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    threads = args.threads or min(os.cpu_count() or 1, args.worlds)
    env_runner = EnvRunner(args.worlds, threads, Path(args.motion))
    runners = {
        "skillmimic MujocoCPUSimulator": EngineRunner(args.worlds, threads),
        "  same, bodies from the torch FK": EngineRunner(args.worlds, threads, "torch"),
        "skillmimic SkillEnv.step": env_runner,
        "raw mujoco.rollout (1 step/call)": RawRunner(args.worlds, threads, 1),
        f"raw mujoco.rollout ({args.horizon} steps/call)": RawRunner(args.worlds, threads, args.horizon),
        "raw mujoco.rollout, skill env's states": ReplayRawRunner(env_runner),  # after the env: its latest round
    }
    rates = {name: [] for name in runners}
    for r in runners.values():
        r.run(5)  # warm-up
    for _ in range(args.rounds):  # interleaved, so background load hits every runner alike
        for name, r in runners.items():
            rates[name].append(r.run(max(args.steps, args.horizon)))
    med = {name: float(np.median(v)) for name, v in rates.items()}
    sub = runners["skillmimic MujocoCPUSimulator"].sim.substeps
    names = list(runners)
    print(f"scene: humanoid (156 DOF) + ball, {args.worlds} worlds, {threads} threads, "
          f"{sub} substeps/control step, median of {args.rounds} interleaved rounds")
    print(f"{'runner':<40}{'env-steps/s':>14}{'physics-steps/s':>18}")
    for name in names:
        print(f"{name:<40}{med[name]:>14.0f}{med[name] * sub:>18.0f}")
    engine, engine_fk, env, raw, raw_long, raw_same = (med[k] for k in names)
    print(f"ratio engine / raw (1 step/call): {engine / raw:.3f} (bodies from the torch FK: {engine_fk / raw:.3f})")
    print(f"ratio engine / raw ({args.horizon} steps/call): {engine / raw_long:.3f}")
    print(f"env / engine ratio: {env / engine:.3f}")
    print(f"env / raw ratio: {env / raw:.3f}")
    print(f"env / raw ratio (same states): {env / raw_same:.3f}")
    for name in names[:2]:
        print(f"body kinematics per call, {args.worlds} worlds ({name.strip()}): "
              f"{kinematics_ms(runners[name].sim):.2f} ms")
    print(f"machine load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def kinematics_ms(sim: MujocoCPUSimulator, calls: int = 100) -> float:
    """Milliseconds per call of the simulator's body kinematics for all its worlds (the
    current state), whichever ``body_kinematics`` it was built with."""
    qpos, qvel = sim._state_t[:, sim._qpos].clone(), sim._state_t[:, sim._qvel].clone()
    joint = sim.state.joint
    for _ in range(5):
        sim._body_kinematics(joint, qpos, qvel)
    t0 = time.perf_counter()
    for _ in range(calls):
        sim._body_kinematics(joint, qpos, qvel)
    return (time.perf_counter() - t0) / calls * 1e3


if __name__ == "__main__":
    main()
