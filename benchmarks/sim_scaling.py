"""Simulator scaling: env-steps/s, physics-steps/s and peak memory vs number of worlds.

Both engines run the humanoid+ball skill scene through the public ``Simulator`` API (set
PD targets, step, read the state), from the same standing start with PD targets held, so
the figures include everything an environment pays per control step (NaN guard, torch
forward kinematics of the 53 bodies, contact sensor averaging). Each (engine, worlds) point
runs in a fresh subprocess so that its peak memory is its own: RSS high-water mark on CPU;
on CUDA the Warp memory-pool high-water mark plus ``torch.cuda.max_memory_allocated``.

    python benchmarks/sim_scaling.py                                  # CPU: 1, 16, 64 worlds, both engines
    python benchmarks/sim_scaling.py --device cuda                    # mjwarp on CUDA 1 ... 8192, C engine on CPU
    python benchmarks/sim_scaling.py --capacity --worlds 64           # measure mjwarp contact/constraint peaks
    python benchmarks/sim_scaling.py --parity --worlds 64             # C vs Warp deviation statistics

``--capacity`` sizes ``PhysicsConfig.nconmax``/``njmax``: mjwarp worlds (with generous
capacity) are reset onto random frames of the reference clips and track them open loop with
their own joint angles as PD targets -- they run, dribble, and eventually fall -- plus a group
dropped from random poses (tangled limbs, self-contacts); it prints the per-world peaks.

``--parity`` measures what ``tests/test_sim_parity.py``'s tolerances are based on: both engines
start from the same random (clip, frame) of the reference clips and track them open loop;
it prints quantiles over worlds of the largest body-position difference within each horizon,
and how often the contact flags disagree.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import resource
import subprocess
import sys
import time

import torch

from skillmimic.assets.mjcf import SceneConfig
from skillmimic.sim import make_simulator
from skillmimic.state import JointState

DEFAULT_MOTIONS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "motions" / "BallPlay-M"


def standing_state(n: int, device="cpu") -> JointState:
    """Upright T-pose on the floor, ball in front at chest height."""
    z = torch.zeros(n, 3)
    return JointState(
        root_pos=torch.tensor([0.0, 0.0, 0.96]).repeat(n, 1),
        root_quat=torch.tensor([math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0]).repeat(n, 1),
        root_lin_vel=z, root_ang_vel=z, dof_pos=torch.zeros(n, 156), dof_vel=torch.zeros(n, 156),
        obj_pos=torch.tensor([0.0, -0.5, 1.2]).repeat(n, 1), obj_quat=torch.tensor([1.0, 0, 0, 0]).repeat(n, 1),
        obj_lin_vel=z, obj_ang_vel=z,
    ).to(device)


def random_pose_state(n: int, seed: int = 0) -> JointState:
    """Random joint angles (+-1 rad) and velocities, dropped from 1-1.5 m: worst-case tangles."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g)
    return JointState(
        root_pos=torch.rand(n, 3, generator=g) * torch.tensor([0.5, 0.5, 0.5]) + torch.tensor([0.0, 0.0, 1.0]),
        root_quat=q / q.norm(dim=-1, keepdim=True),
        root_lin_vel=torch.randn(n, 3, generator=g), root_ang_vel=torch.randn(n, 3, generator=g),
        dof_pos=torch.rand(n, 156, generator=g) * 2 - 1, dof_vel=torch.randn(n, 156, generator=g),
        obj_pos=torch.rand(n, 3, generator=g) * 0.6 + torch.tensor([-0.3, 0.3, 0.5]),
        obj_quat=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
        obj_lin_vel=torch.randn(n, 3, generator=g), obj_ang_vel=torch.randn(n, 3, generator=g),
    )


# ---------------------------------------------------------------------------- throughput
def run_point(engine: str, n: int, device: str, steps: int, warmup: int, threads: int) -> dict:
    """One (engine, worlds) measurement in this process."""
    kw = {"num_threads": threads} if engine == "mujoco" else {}
    on_cuda = device.startswith("cuda")
    t0 = time.perf_counter()
    sim = make_simulator(engine, n, device=device, **kw)
    sim.set_state(None, standing_state(n, device))
    targets = torch.zeros(n, 156, device=device)
    for _ in range(warmup):          # compile/load kernels, capture the graph, settle
        sim.set_pd_targets(targets)
        sim.step()
    if on_cuda:
        torch.cuda.synchronize()
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        sim.set_pd_targets(targets)
        sim.step()
    if on_cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    out = {"engine": engine, "worlds": n, "device": device, "env_steps_s": n * steps / dt,
           "physics_steps_s": n * steps * sim.substeps / dt, "setup_s": setup_s,
           "nonfinite": int(sim.nonfinite_count)}
    if engine == "mjwarp":
        out["overflows"] = sim.overflow_count
    if on_cuda:
        import warp as wp
        out["torch_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        wdev = wp.device_from_torch(sim.device)
        out["warp_peak_mb"] = (wp.get_mempool_used_mem_high(wdev) / 2**20
                               if wp.is_mempool_enabled(wdev) else float("nan"))
    out["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sim.close()
    return out


def scaling(args) -> None:
    rows = []
    for engine in args.engines:
        # The C engine steps on CPU threads whatever --device says (its tensors live on the CPU).
        device = "cpu" if engine == "mujoco" else args.device
        for n in args.worlds:
            if engine == "mujoco" and n > args.cpu_max_worlds:
                continue
            cmd = [sys.executable, __file__, "--_point", engine, str(n), "--device", device,
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
            if res.returncode != 0 or not lines:
                print(f"{engine} x {n}: failed\n{res.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(lines[-1]))
            print(f"  done {engine:>7} x {n:<5} ({rows[-1]['env_steps_s']:.0f} env-steps/s)", file=sys.stderr)
    sub = SceneConfig().physics.substeps
    print(f"humanoid (156 DOF) + ball, {sub} physics substeps per control step, {args.steps} timed control "
          f"steps; C engine threads {args.threads or os.cpu_count()}")
    print("memory: peak RSS of the process on CPU; on CUDA Warp's memory-pool high-water mark + torch's peak")
    print(f"{'engine':<8}{'device':<8}{'worlds':>7}{'env-steps/s':>14}{'physics-steps/s':>17}"
          f"{'RSS MB':>9}{'warp MB':>9}{'torch MB':>10}{'setup s':>9}")
    for r in rows:
        print(f"{r['engine']:<8}{r['device']:<8}{r['worlds']:>7}{r['env_steps_s']:>14.0f}{r['physics_steps_s']:>17.0f}"
              f"{r['rss_peak_mb']:>9.0f}{r.get('warp_peak_mb', float('nan')):>9.0f}"
              f"{r.get('torch_peak_mb', float('nan')):>10.0f}{r['setup_s']:>9.1f}")


# ---------------------------------------------------------------------------- capacity
def capacity(args) -> None:
    """Per-world contact/constraint peaks of mjwarp over clip tracking, falls and random drops."""
    from skillmimic.motion import MotionLibrary

    n, dev = args.worlds[0], args.device
    lib = MotionLibrary(args.motions, device=dev)
    sim = make_simulator("mjwarp", n, device=dev, nconmax=args.nconmax, njmax=args.njmax)
    g = torch.Generator(device="cpu").manual_seed(0)
    clips = torch.randint(0, lib.num_clips, (n,), generator=g).to(dev)
    lengths = lib.clip_lengths[clips]
    start = (torch.rand(n, generator=g).to(dev) * (lengths - 1).clamp_min(1)).floor().long()
    sim.set_state(None, lib.get_frame_at(clips, start).state)
    fallen = torch.zeros(n, dtype=torch.bool, device=dev)
    t0 = time.perf_counter()
    for k in range(args.capacity_steps):
        ref = lib.get_frame_at(clips, start + k + 1)
        sim.set_pd_targets(ref.state.dof_pos)
        s = sim.step()
        fallen |= s.body_pos[:, 0, 2] < 0.4
    clip_peaks = sim.capacity_peaks()
    sim.reset_capacity_peaks()
    sim.set_state(None, random_pose_state(n).to(dev))
    sim.set_pd_targets(torch.zeros(n, 156, device=dev))
    for _ in range(args.capacity_steps):
        sim.step()
    drop_peaks = sim.capacity_peaks()
    print(f"{n} worlds x {args.capacity_steps} control steps per scenario ({time.perf_counter() - t0:.0f} s); "
          f"capacity during measurement nconmax {args.nconmax}, njmax {args.njmax}; "
          f"overflows {sim.overflow_count}, non-finite worlds {sim.nonfinite_count}")
    print(f"{'scenario':<40}{'contacts/world':>15}{'pooled/world':>13}{'bp pairs/world':>15}{'rows/world':>11}")
    for name, p in ((f"clip tracking ({int(fallen.sum())}/{n} fell)", clip_peaks),
                    ("random-pose drops", drop_peaks)):
        print(f"{name:<40}{p['ncon_per_world']:>15}{p['ncon_pooled'] / n:>13.1f}"
              f"{p['broadphase_pairs_pooled'] / n:>15.1f}{p['nefc_per_world']:>11}")
    sim.close()


# ---------------------------------------------------------------------------- parity
def parity(args) -> None:
    """Distribution over random clip starts of the C-vs-Warp body deviation vs horizon."""
    from skillmimic.assets.skeleton import SKELETON_BALLPLAY
    from skillmimic.motion import MotionLibrary

    n, steps = args.worlds[0], args.parity_steps
    lib = MotionLibrary(args.motions)
    g = torch.Generator().manual_seed(args.seed)
    clips = torch.randint(0, lib.num_clips, (n,), generator=g)
    f0 = (torch.rand(n, generator=g) * (lib.clip_lengths[clips] - steps - 2).clamp_min(1)).long()
    init = lib.get_frame_at(clips, f0).state
    runs = []
    for engine in ("mujoco", "mjwarp"):
        sim = make_simulator(engine, n)
        sim.set_state(None, init)
        pos, tips, floor = [], [], []
        for k in range(steps):
            sim.set_pd_targets(lib.get_frame_at(clips, f0 + k + 1).state.dof_pos)
            s = sim.step()
            pos.append(torch.cat([s.body_pos, s.joint.obj_pos[:, None]], 1).double())
            tips.append((s.contact_forces[:, SKELETON_BALLPLAY.fingertip_ids].abs() > 0.1).any(-1))
            floor.append(s.obj_floor_contact.clone())
        sim.close()
        runs.append((torch.stack(pos), torch.stack(tips), torch.stack(floor)))
    dev = (runs[0][0] - runs[1][0]).norm(dim=-1)               # (steps, n, 54)
    body, ball = dev[..., :-1].amax(-1), dev[..., -1]
    print(f"{n} random (clip, frame) starts of {args.motions}, open-loop tracking, seed {args.seed}")
    print(f"{'horizon':>8}{'median m':>11}{'q90 m':>11}{'q99 m':>11}{'max m':>11}{'ball max m':>12}"
          f"{'tip flips':>11}{'floor flips':>12}")
    q = torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64)
    for h in (5, 15, 30, 45, 60, 90, 120):
        if h > steps:
            break
        worst = body[:h].amax(0)
        qs = torch.quantile(worst, q).tolist()
        tip = int((runs[0][1][:h] != runs[1][1][:h]).sum())
        flo = int((runs[0][2][:h] != runs[1][2][:h]).sum())
        print(f"{h:>8}{qs[0]:>11.1e}{qs[1]:>11.1e}{qs[2]:>11.1e}{worst.max():>11.1e}{ball[:h].max():>12.1e}"
              f"{tip:>6}/{runs[0][1][:h].numel():<5}{flo:>6}/{runs[0][2][:h].numel():<5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (mjwarp); the C engine is CPU only")
    parser.add_argument("--worlds", type=int, nargs="+", default=None,
                        help="world counts (default CPU: 1 16 64; CUDA: 1 64 512 1024 2048 4096 8192)")
    parser.add_argument("--engines", nargs="+", default=["mujoco", "mjwarp"], choices=["mujoco", "mjwarp"])
    parser.add_argument("--steps", type=int, default=None, help="timed control steps (default CPU 20, CUDA 200)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="C engine threads, 0 = one per core")
    parser.add_argument("--cpu-max-worlds", type=int, default=1024, help="largest world count for the C engine")
    parser.add_argument("--capacity", action="store_true", help="measure mjwarp contact/constraint peaks")
    parser.add_argument("--capacity-steps", type=int, default=240)
    parser.add_argument("--motions", default=str(DEFAULT_MOTIONS))
    parser.add_argument("--nconmax", type=int, default=1024, help="capacity while measuring peaks")
    parser.add_argument("--njmax", type=int, default=4096, help="capacity while measuring peaks")
    parser.add_argument("--parity", action="store_true", help="C vs Warp deviation over random clip starts")
    parser.add_argument("--parity-steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--_point", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    if args.worlds is None:
        args.worlds = [1, 64, 512, 1024, 2048, 4096, 8192] if cuda else [1, 16, 64]
    if args.steps is None:
        args.steps = 200 if cuda else 20
    if args._point:
        print(json.dumps(run_point(args._point[0], int(args._point[1]), args.device, args.steps, args.warmup,
                                   args.threads)))
    elif args.capacity:
        capacity(args)
    elif args.parity:
        parity(args)
    else:
        scaling(args)


if __name__ == "__main__":
    main()
