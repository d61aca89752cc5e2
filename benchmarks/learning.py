"""Learning benchmark: does PPO improve the imitation reward on one real clip, on CPU?

Trains the skill policy (the regular ``train.py`` pipeline, same configs) on one short
BallPlay clip for a fixed number of epochs and compares the mean reward per step of the
training rollouts at the start (first ``--window`` epochs) and at the end (last
``--window`` epochs), plus rl-games' running mean episode reward. Not a unit test: it
takes minutes. Exit status 1 if the end is not at least ``--min-gain`` x the start.

    python benchmarks/learning.py                              # layup, 16 envs, 300 epochs
    python benchmarks/learning.py --motion ../shared/data/motions/BallPlay-M/run --epochs 200
    python benchmarks/learning.py --device cuda --num-envs 1024 --epochs 300 --sim mjwarp
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_MOTION = REPO.parent / "shared" / "data" / "motions" / "BallPlay-M" / "layup"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--motion", default=str(DEFAULT_MOTION), help="clip file or folder (default: BallPlay-M layup)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the config's, 2e-5)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sim", default="mujoco", choices=["mujoco", "mjwarp"])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--window", type=int, default=20, help="epochs averaged for the start and end figures")
    ap.add_argument("--min-gain", type=float, default=1.5, help="required end/start ratio of reward per step")
    ap.add_argument("--output-dir", default=str(REPO / "outputs" / "benchmarks"))
    ap.add_argument("overrides", nargs="*", help="extra hydra overrides, e.g. train.mini_epochs=4")
    args = ap.parse_args(argv)

    motion = Path(args.motion)
    if not motion.exists():
        print(f"motion data not found: {motion} (the shared BallPlay data set is needed)", file=sys.stderr)
        return 2
    if args.window * 2 > args.epochs:
        ap.error("--epochs must be at least 2 x --window")

    overrides = [f"motion.path={motion}", f"motion.name={motion.stem}", f"num_envs={args.num_envs}",
                 f"max_epochs={args.epochs}", f"device={args.device}", f"sim={args.sim}", f"seed={args.seed}",
                 f"output_dir={args.output_dir}", "experiment=learning", "train.save_frequency=100"]
    if args.lr is not None:
        overrides.append(f"train.learning_rate={args.lr}")
    overrides += args.overrides
    print("benchmark:", shlex.join([sys.executable, *sys.argv]), flush=True)
    print("equivalent: python train.py " + " ".join(shlex.quote(o) for o in overrides), flush=True)

    from hydra import compose, initialize_config_dir

    from skillmimic.rl.config import CONFIG_DIR, register_configs
    from skillmimic.rl.runner import train

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    t0 = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - t0

    hist = result.history
    w = args.window
    start = statistics.fmean(h["reward_per_step"] for h in hist[:w])
    end = statistics.fmean(h["reward_per_step"] for h in hist[-w:])
    ep_start = next((h["episode_reward"] for h in hist[w - 1:] if h["episode_reward"] is not None), float("nan"))
    ep_end = hist[-1]["episode_reward"]
    len_start = next((h["episode_length"] for h in hist[w - 1:] if h["episode_length"] is not None), float("nan"))
    len_end = hist[-1]["episode_length"]
    fps = statistics.median(h["fps"] for h in hist)
    gain = end / start if start > 0 else float("inf")
    terms_start = {k: statistics.fmean(h["reward_terms"][k] for h in hist[:w]) for k in hist[0]["reward_terms"]}
    terms_end = {k: statistics.fmean(h["reward_terms"][k] for h in hist[-w:]) for k in hist[0]["reward_terms"]}

    print()
    print(f"motion {motion}  envs {args.num_envs}  epochs {len(hist)}  frames {result.frame}  "
          f"device {args.device}  sim {args.sim}  seed {result.seed}")
    print(f"wall time {wall:.0f} s  (median {fps:.0f} frames/s incl. PPO updates)")
    print(f"mean reward per step, epochs 1-{w}: {start:.4f}   epochs {len(hist) - w + 1}-{len(hist)}: {end:.4f}"
          f"   (x{gain:.2f})")
    print(f"mean episode reward (last {100} episodes) at epoch {w}: {ep_start:.3f}   at the end: {ep_end:.3f}")
    print(f"mean episode length at epoch {w}: {len_start:.1f}   at the end: {len_end:.1f}")
    print("reward terms (start -> end): " + "  ".join(
        f"{k} {terms_start[k]:.3f}->{terms_end[k]:.3f}" for k in terms_start if k != "reward"))
    print(f"checkpoint {result.checkpoint}")
    ok = gain >= args.min_gain
    print(("PASS" if ok else "FAIL") + f": reward per step rose x{gain:.2f} (required x{args.min_gain})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
