"""What the SkillMimic-V2 hook costs per skill-env step on the CPU: V1 vs V2 on the ids reset
path vs V2 on the masked reset path, side by side in one run.

Why: on the masked path (``V2Augment.plan_where``, what CUDA uses; ``masked_resets=True``
forces it on the CPU) the reset plan -- STF's perturbation and nearest-frame search, the STG
lookup, the history fill -- is computed for every world every step, without a host sync;
the ids path computes it for the resetting worlds only. This prints the per-step time of
each variant, the share of it spent planning resets (``on_reset`` / ``plan_where``) and
the part of that spent in STF's search (``retarget``), at each ``--worlds``. The masked path
searches ``V2Augment.stf_search_rows`` rows (the resetting worlds drawn for STF first); the
row "search all" searches every world, as it did before that bound (same results, the cost).

V2 runs every mechanism (STF with search, STG, ATS, history encoder) on BallPlay-M layup
plus a BallPlay-V2 getup clip (its label gets the getup noise); the STG is built from
those clips and the history encoder is an untrained one of the default size (its weights
do not change the cost). Actions are small seeded Gaussians, so episodes end by falls and
time-outs as in early training. Nothing is written anywhere.

    python benchmarks/v2_overhead.py --worlds 64 256
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs import SkillEnv, SkillEnvConfig  # noqa: E402
from skillmimic.augment import env_hook  # noqa: E402
from skillmimic.augment import history as H  # noqa: E402
from skillmimic.augment.env_hook import V2Augment, V2Config  # noqa: E402
from skillmimic.augment.stg import build_graph  # noqa: E402
from skillmimic.motion import MotionLibrary  # noqa: E402
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "motions"
DEFAULT_CLIPS = [SHARED / "BallPlay-M" / "layup", SHARED / "BallPlay-V2" / "getup" / "000_021pickle_getup_1.pt"]


class Timed:
    """Accumulated wall time of calls to ``owner.name`` (patched on the instance or module)."""

    def __init__(self, owner, name: str):
        self.seconds, self.calls = 0.0, 0
        orig = getattr(owner, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return orig(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1
        setattr(owner, name, timed)

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0


def untrained_encoder(motion: MotionLibrary) -> H.FrozenHistoryEncoder:
    torch.manual_seed(0)
    cfg = H.EncoderConfig()
    model = H.StatePredictor(cfg)
    data = H.HistoryData(motion, cfg.history_length)
    return H.FrozenHistoryEncoder({"format": H.FORMAT, "config": dataclasses.asdict(cfg),
                                   "encoder": model.encoder.state_dict(), "feature_mean": data.mean,
                                   "feature_std": data.std})


class Variant:
    def __init__(self, motion, n: int, threads: int, v2: V2Config | None, masked: bool, graph, encoder,
                 search_all: bool = False):
        aug = V2Augment(v2, graph=graph, encoder=encoder) if v2 is not None else None
        cfg = SkillEnvConfig(num_envs=n, seed=0, masked_resets=masked)
        self.env = SkillEnv(cfg, motion, MujocoCPUSimulator(n, num_threads=threads), augment=aug)
        if search_all:                # STF's search for every world (before stf_search_rows)
            aug.stf_search_rows = n
        self.env.reset()
        self.plan = Timed(aug, "plan_where" if masked else "on_reset") if aug is not None else None
        self.gen = torch.Generator().manual_seed(0)
        self.n = n
        self.resets = 0

    def run(self, steps: int) -> float:
        """Seconds per step over ``steps`` steps."""
        actions = [0.2 * torch.randn(self.n, self.env.num_actions, generator=self.gen) for _ in range(steps)]
        t0 = time.perf_counter()
        for a in actions:
            _, _, done, _ = self.env.step(a)
            self.resets += int(done.sum())
        return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=30, help="control steps timed per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=0, help="simulator threads; 0 = one per CPU core")
    parser.add_argument("--clips", nargs="+", default=[str(p) for p in DEFAULT_CLIPS])
    parser.add_argument("--stf", type=float, default=0.1, help="state_init_random_prob (skill_v2's 0.1)")
    parser.add_argument("--switch", type=float, default=0.1, help="state_switch_prob (skill_v2's 0.1)")
    args = parser.parse_args()
    torch.set_num_threads(1)          # as in training's rollout: the simulator's threads have the cores
    motion = MotionLibrary([Path(p) for p in args.clips])
    names = [Path(f).name for f in motion.files]
    t0 = time.perf_counter()
    graph = build_graph(motion, clip_names=names)
    print(f"clips: {names} ({motion.num_frames} frames); graph built in {time.perf_counter() - t0:.1f} s")
    encoder = untrained_encoder(motion)
    v2 = V2Config(state_switch_prob=args.switch, graph_file="(built above)", state_init_random_prob=args.stf,
                  reweight=True)
    search = Timed(env_hook, "retarget")          # STF's nearest-frame search, inside the plan
    for n in args.worlds:
        threads = args.threads or min(os.cpu_count() or 1, n)
        variants = {"V1 ids": Variant(motion, n, threads, None, False, graph, encoder),
                    "V2 ids": Variant(motion, n, threads, v2, False, graph, encoder),
                    "V2 masked": Variant(motion, n, threads, v2, True, graph, encoder),
                    "V2 masked, search all": Variant(motion, n, threads, v2, True, graph, encoder, search_all=True)}
        per_step = {k: [] for k in variants}
        plan = {k: 0.0 for k in variants}
        stf = {k: 0.0 for k in variants}
        steps = {k: 0 for k in variants}
        for v in variants.values():
            v.run(3)                              # warm-up
            v.resets = 0
            if v.plan is not None:
                v.plan.reset()
        for _ in range(args.rounds):              # interleaved: background load hits each alike
            for name, v in variants.items():
                search.reset()
                if v.plan is not None:
                    v.plan.reset()
                per_step[name].append(v.run(args.steps))
                plan[name] += v.plan.seconds if v.plan is not None else 0.0
                stf[name] += search.seconds
                steps[name] += args.steps
        print(f"\n{n} worlds, {threads} simulator threads, 1 torch thread, STF p={args.stf}, "
              f"switch p={args.switch}; median of {args.rounds} rounds of {args.steps} steps")
        print(f"{'variant':<24}{'ms/step':>10}{'env-steps/s':>13}{'vs V1':>8}{'plan ms':>10}"
              f"{'plan share':>12}{'STF search ms':>15}{'resets/step':>13}")
        base = float(np.median(per_step["V1 ids"]))
        for name, v in variants.items():
            med = float(np.median(per_step[name]))
            p, s = plan[name] / steps[name], stf[name] / steps[name]
            mean = sum(per_step[name]) / len(per_step[name])
            print(f"{name:<24}{med * 1e3:>10.2f}{n / med:>13.0f}{med / base:>8.2f}{p * 1e3:>10.2f}"
                  f"{p / mean:>12.1%}{s * 1e3:>15.2f}{v.resets / steps[name]:>13.1f}")
        for v in variants.values():
            v.env.close()
    print(f"\nmachine load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
