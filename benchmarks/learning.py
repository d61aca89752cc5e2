"""Learning benchmark: does PPO improve the imitation reward on a real clip, beyond seed noise?

Trains the skill policy (the regular ``train.py`` pipeline, same configs) on one BallPlay
clip folder for a fixed number of epochs, once per seed (sequentially), and compares the
mean reward per step of the training rollouts at the start (first ``--window`` epochs) and
at the end (last ``--window`` epochs), every reward term (r_p, r_r, ... the rotation term
r_r among them) the same way, and the running-mean episode length. Each final checkpoint
then gets a short deterministic evaluation through the project's eval entry point
(:func:`skillmimic.eval.app.evaluate_checkpoint`): mean body tracking error E_b and the
per-skill success rate. Reports each seed and the mean +- std (and min/max) over seeds, as
``learning.json`` and ``learning.md`` in ``--out``.

Single-seed CPU learning figures are dominated by noise; compare settings with the same
seeds and frame budget, e.g. 1 vs 4 minibatches per mini-epoch:

    python benchmarks/learning.py                                   # layup, 16 envs, 300 epochs, seeds 1 2 3
    python benchmarks/learning.py --motion ../shared/data/motions/BallPlay-M/run --out /tmp/run_mb1
    python benchmarks/learning.py --motion ../shared/data/motions/BallPlay-M/run --out /tmp/run_mb4 \\
        train.num_minibatches=4
    python benchmarks/learning.py --seeds 7 --epochs 100                           # one seed
    python benchmarks/learning.py --device cuda --sim mjwarp --num-envs 4096 --epochs 300

Not a unit test: it takes minutes per seed. Exit status 1 if the mean end/start ratio of the
reward per step is below ``--min-gain``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_MOTION = REPO.parent / "shared" / "data" / "motions" / "BallPlay-M" / "layup"


def spread(values) -> dict:
    """mean, std (sample, 0 for one value), min, max of the finite values; None when there are none."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "min": min(vals), "max": max(vals), "n": len(vals)}


def _window_mean(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(vals) if vals else None


def summarize_run(hist: list[dict], window: int) -> dict:
    """Start/end figures of one training run from its per-epoch history."""
    first, last = hist[:window], hist[-window:]
    terms = list(hist[0]["reward_terms"])
    start = _window_mean(first, "reward_per_step")
    end = _window_mean(last, "reward_per_step")
    # the running means (last 100 episodes) at the end of the first window and at the end
    len_start = next((h["episode_length"] for h in hist[window - 1:] if h["episode_length"] is not None), None)
    return {
        "reward_start": start, "reward_end": end,
        "ratio": end / start if start else None,
        "terms_start": {k: statistics.fmean(h["reward_terms"][k] for h in first) for k in terms},
        "terms_end": {k: statistics.fmean(h["reward_terms"][k] for h in last) for k in terms},
        "episode_length_start": len_start, "episode_length_end": hist[-1]["episode_length"],
        "kl_end": _window_mean(last, "kl"),
    }


def short_eval(checkpoint: Path, out_dir: Path, steps: int, num_envs: int, device: str) -> dict:
    """A short deterministic eval of ``checkpoint`` (one round of ``steps`` steps) through the
    project's eval entry point; E_b and the success rate per skill."""
    from hydra import compose, initialize_config_dir

    from skillmimic.eval.app import evaluate_checkpoint, register_eval_config
    from skillmimic.rl.config import CONFIG_DIR

    register_eval_config()
    overrides = [f"checkpoint={checkpoint}", f"out_dir={out_dir}", "eval.rounds=1", f"eval.episode_length={steps}",
                 f"num_envs={num_envs}", f"device={device}", "eval.progress=false"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("eval", overrides=overrides)
    report = evaluate_checkpoint(cfg, overrides).report
    summary = report.summary()
    nan_none = lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else v
    return {"e_b_mm": nan_none(summary.get("mean_e_b_mm")), "success_rate": nan_none(summary.get("mean_success_rate")),
            "skills": {r.name: {"success_rate": nan_none(r.success_rate), "e_b_mm": nan_none(r.e_b_mm),
                                "criterion": r.criterion} for r in report.of("skill")},
            "steps": steps, "num_envs": num_envs}


def _fmt(v, f="{:.4f}") -> str:
    return "-" if v is None else f.format(v)


def _pm(s: dict, f="{:.4f}") -> str:
    if s["mean"] is None:
        return "-"
    return f"{f.format(s['mean'])} ± {f.format(s['std'])} [{f.format(s['min'])}, {f.format(s['max'])}]"


def markdown(report: dict) -> str:
    seeds, agg = report["seeds"], report["aggregate"]
    head = ("seed", "reward/step start", "end", "ratio", "r_r start", "r_r end", "ep. length start", "end",
            "frames", "wall s", "frames/s", "E_b mm", "success %")
    keys = ("reward_start", "reward_end", "ratio", "r_r_start", "r_r_end", "episode_length_start",
            "episode_length_end", "frames", "wall_s", "fps", "e_b_mm", "success_pct")
    fmts = ("{:.4f}", "{:.4f}", "{:.2f}", "{:.3f}", "{:.3f}", "{:.1f}", "{:.1f}", "{:.0f}", "{:.0f}", "{:.0f}",
            "{:.0f}", "{:.1f}")
    lines = [f"# Learning benchmark: {report['motion']}", "",
             f"{report['epochs']} epochs x {report['num_envs']} envs, device {report['device']}, sim {report['sim']}, "
             f"minibatch {report['minibatch']} ({report['minibatches_per_epoch']} per mini-epoch), window "
             f"{report['window']} epochs, eval {report['eval_steps']} steps; extra overrides: "
             f"`{' '.join(report['overrides']) or 'none'}`", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in seeds:
        lines.append("| " + " | ".join([str(s["seed"])] + [_fmt(s["flat"].get(k), f) for k, f in zip(keys, fmts)])
                     + " |")
    lines.append("| **mean ± std** | " + " | ".join(
        f"{_fmt(agg[k]['mean'], f)} ± {_fmt(agg[k]['std'], f)}" for k, f in zip(keys, fmts)) + " |")
    lines.append("| min / max | " + " | ".join(
        f"{_fmt(agg[k]['min'], f)} / {_fmt(agg[k]['max'], f)}" for k, f in zip(keys, fmts)) + " |")
    lines += ["", "Reward terms, mean ± std [min, max] over seeds:", "", "| term | start | end |", "|---|---|---|"]
    for k in report["terms"]:
        lines.append(f"| {k} | {_pm(agg['term_' + k + '_start'], '{:.4f}')} | {_pm(agg['term_' + k + '_end'], '{:.4f}')} |")
    skills = sorted({name for s in seeds for name in (s.get("eval") or {}).get("skills", {})})
    if skills:
        lines += ["", "Per-skill success % (short eval) per seed:", "",
                  "| skill | " + " | ".join(str(s["seed"]) for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
        for name in skills:
            cells = []
            for s in seeds:
                v = (s.get("eval") or {}).get("skills", {}).get(name, {}).get("success_rate")
                cells.append("-" if v is None else f"{100 * v:.0f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


class _OneSeed(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        setattr(namespace, self.dest, [value])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--motion", default=str(DEFAULT_MOTION), help="clip file or folder (default: BallPlay-M layup)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the config's, 2e-5)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sim", default="mujoco", choices=["mujoco", "mjwarp"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="one training run per seed, in turn")
    ap.add_argument("--seed", type=int, dest="seeds", action=_OneSeed, help="one seed (the same as --seeds N)")
    ap.add_argument("--window", type=int, default=20, help="epochs averaged for the start and end figures")
    ap.add_argument("--min-gain", type=float, default=1.5, help="required mean end/start ratio of reward per step")
    ap.add_argument("--eval-steps", type=int, default=301, help="steps of the short eval of each final checkpoint "
                                                                "(0: no eval; 301 covers the layup/shot window)")
    ap.add_argument("--eval-envs", type=int, default=None, help="envs of the short eval (default: --num-envs)")
    ap.add_argument("--out", "--output-dir", default=None, help="folder for learning.json, learning.md and the runs "
                                                "(default: outputs/benchmarks/learning_<clip>_<time>, git-ignored)")
    ap.add_argument("overrides", nargs="*", help="extra hydra overrides for every run, e.g. train.num_minibatches=4")
    args = ap.parse_args(argv)

    motion = Path(args.motion)
    if not motion.exists():
        print(f"motion data not found: {motion} (the shared BallPlay data set is needed)", file=sys.stderr)
        return 2
    if args.window * 2 > args.epochs:
        ap.error("--epochs must be at least 2 x --window")
    out = Path(args.out) if args.out else \
        REPO / "outputs" / "benchmarks" / f"learning_{motion.stem}_{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from skillmimic.rl.config import CONFIG_DIR, register_configs, resolve_minibatch
    from skillmimic.rl.runner import train

    command = shlex.join([sys.executable, *(sys.argv if argv is None else [sys.argv[0], *argv])])
    print("benchmark:", command, flush=True)
    register_configs()
    seeds = []
    minibatch = None
    for seed in args.seeds:
        overrides = [f"motion.path={motion.resolve()}", f"motion.name={motion.stem}", f"num_envs={args.num_envs}",
                     f"max_epochs={args.epochs}", f"device={args.device}", f"sim={args.sim}", f"seed={seed}",
                     f"output_dir={out / 'runs'}", f"experiment=seed{seed}", "train.save_frequency=100"]
        if args.lr is not None:
            overrides.append(f"train.learning_rate={args.lr}")
        overrides += args.overrides
        print(f"\n[seed {seed}] python train.py " + " ".join(shlex.quote(o) for o in overrides), flush=True)
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        typed = OmegaConf.to_object(cfg)
        minibatch = resolve_minibatch(typed.train, typed.num_envs)
        horizon = typed.train.horizon_length
        t0 = time.perf_counter()
        result = train(cfg)
        wall = time.perf_counter() - t0
        run = summarize_run(list(result.history), args.window)
        run.update(seed=result.seed, epochs=len(result.history), frames=result.frame, wall_s=wall,
                   fps=result.frame / wall, checkpoint=str(result.checkpoint))
        if args.eval_steps > 0:
            t1 = time.perf_counter()
            run["eval"] = short_eval(result.checkpoint, out / "eval" / f"seed{seed}", args.eval_steps,
                                     args.eval_envs or args.num_envs, args.device)
            run["eval"]["wall_s"] = time.perf_counter() - t1
        ev = run.get("eval") or {}
        run["flat"] = {"reward_start": run["reward_start"], "reward_end": run["reward_end"], "ratio": run["ratio"],
                       "r_r_start": run["terms_start"].get("r_r"), "r_r_end": run["terms_end"].get("r_r"),
                       "episode_length_start": run["episode_length_start"],
                       "episode_length_end": run["episode_length_end"], "frames": run["frames"], "wall_s": wall,
                       "fps": run["fps"], "e_b_mm": ev.get("e_b_mm"),
                       "success_pct": None if ev.get("success_rate") is None else 100 * ev["success_rate"]}
        seeds.append(run)
        print(f"[seed {seed}] reward/step {_fmt(run['reward_start'])} -> {_fmt(run['reward_end'])} "
              f"(x{_fmt(run['ratio'], '{:.2f}')}), r_r {_fmt(run['flat']['r_r_start'], '{:.3f}')} -> "
              f"{_fmt(run['flat']['r_r_end'], '{:.3f}')}, episode length {_fmt(run['episode_length_start'], '{:.1f}')}"
              f" -> {_fmt(run['episode_length_end'], '{:.1f}')}, {run['frames']} frames in {wall:.0f} s, "
              f"E_b {_fmt(ev.get('e_b_mm'), '{:.0f}')} mm, success {_fmt(run['flat']['success_pct'], '{:.1f}')} %",
              flush=True)

    terms = list(seeds[0]["terms_start"])
    agg = {k: spread(s["flat"][k] for s in seeds) for k in seeds[0]["flat"]}
    for k in terms:
        agg[f"term_{k}_start"] = spread(s["terms_start"][k] for s in seeds)
        agg[f"term_{k}_end"] = spread(s["terms_end"][k] for s in seeds)
    report = {"motion": str(motion), "epochs": args.epochs, "num_envs": args.num_envs, "device": args.device,
              "sim": args.sim, "window": args.window, "eval_steps": args.eval_steps, "overrides": args.overrides,
              "minibatch": minibatch, "minibatches_per_epoch": horizon * args.num_envs // minibatch,
              "terms": terms, "seeds": seeds, "aggregate": agg, "command": command,
              "time": datetime.now().isoformat(timespec="seconds")}
    (out / "learning.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (out / "learning.md").write_text(md)
    print("\n" + md)
    print(f"wrote {out / 'learning.json'} and {out / 'learning.md'}")
    gain = agg["ratio"]["mean"]
    ok = gain is not None and gain >= args.min_gain
    print(("PASS" if ok else "FAIL") + f": mean reward-per-step ratio x{_fmt(gain, '{:.2f}')} over {len(seeds)} seed(s) "
          f"(required x{args.min_gain})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
