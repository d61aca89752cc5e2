"""Train a SkillMimic skill policy (rl-games PPO) from the hydra configs in ``cfg/``.

    python train.py                                   # demo clips, CPU, 16 envs
    python train.py motion=ballplay_layup num_envs=64 max_epochs=5000
    python train.py sim=mjwarp device=cuda num_envs=4096 motion=ballplay
    python train.py resume=outputs/skill/20250101-120000/nn/skill.pth   # the run's own config, continued
    python train.py --cfg job                         # print the resolved config
    python train.py task=hlc_layup llc_checkpoint=outputs/skill/20250101-120000/nn/skill.pth   # docs/hlc.md

Console: a progress line per epoch (elapsed, ETA, frames/s, rewards).
Run folder: ``<output_dir>/<experiment>/<timestamp>/`` with ``nn/`` (checkpoints, rewritten
atomically every ``train.save_frequency`` epochs), ``summaries/`` (tensorboard) and the
resolved ``config.yaml``. Resume restores the run's own configuration; settings given on
the command line change it (the differences are printed). A failed start leaves nothing.
Ctrl-C / SIGTERM: finish the epoch, save, stop (a second Ctrl-C stops at once).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from skillmimic.cli import check_argv, run_guarded
from skillmimic.rl.config import Config, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="cfg", config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from skillmimic.rl.runner import train

    run_guarded(train, cfg, list(HydraConfig.get().overrides.task), name="training")


if __name__ == "__main__":
    check_argv(Config)
    main()
