"""Evaluate a trained SkillMimic skill policy (hydra; the same config tree as ``train.py``).

    python eval.py checkpoint=outputs/skill/20250101-120000/nn/skill.pth
    python eval.py checkpoint=... eval.rounds=3 eval.episode_length=300 num_envs=8
    python eval.py checkpoint=... motion=ballplay eval.skills=[11,12,13,31]
    python eval.py checkpoint=... 'eval.transitions=["11->13","13->31"]' eval.robustness=true

Deterministic test mode (fixed start frame, early termination off, long episodes; see
docs/eval.md). Prints a table of per-skill success rate, body/ball tracking error (mm),
contact accuracy and normalised accumulated reward, and writes ``eval.json`` and
``eval.png`` (per-skill success) to ``out_dir`` (default ``<run folder>/eval/<stamp>/``).
Task, sim and motion default to those the checkpoint was trained with.
A high-level controller checkpoint (``task=hlc_*``) is evaluated on its task metrics instead
(reach rate, max ball height, layup success rate and scores per minute; docs/hlc.md).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from skillmimic.cli import check_argv, run_guarded
from skillmimic.eval.app import EvalConfig, register_eval_config
from skillmimic.rl.config import register_configs

register_configs()
register_eval_config()


@hydra.main(version_base="1.3", config_path="cfg", config_name="eval")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from skillmimic.eval.app import evaluate_checkpoint

    out = run_guarded(evaluate_checkpoint, cfg, HydraConfig.get().overrides.task, extra_errors=(ValueError,),
                      name="eval")
    print(out.report.table())
    print(f"[skillmimic] wrote {out.json_path} and {out.plot_path}", flush=True)


if __name__ == "__main__":
    check_argv(EvalConfig)
    main()
