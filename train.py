"""Train a SkillMimic skill policy (rl-games PPO) from the hydra configs in ``cfg/``.

    python train.py                                   # demo clips, CPU, 16 envs
    python train.py motion=ballplay_layup num_envs=64 max_epochs=5000
    python train.py sim=mjwarp device=cuda num_envs=4096 motion=ballplay
    python train.py resume=outputs/skill/<run>/nn/skill.pth
    python train.py --cfg job                         # print the resolved config
    python train.py task=hlc_layup llc_checkpoint=outputs/skill/<run>/nn/skill.pth   # high-level controller (docs/hlc.md)

Console: one line per epoch (fps, reward per step, episode reward and length).
Run folder: ``<output_dir>/<experiment>/<timestamp>/`` with ``nn/`` (checkpoints, rewritten
atomically every ``train.save_frequency`` epochs), ``summaries/`` (tensorboard) and the
resolved ``config.yaml``. Ctrl-C / SIGTERM: finish the epoch, save, stop.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from skillmimic.rl.config import ConfigError, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="cfg", config_name="config")
def main(cfg: DictConfig) -> None:
    from skillmimic.motion import MotionFileError
    from skillmimic.rl.checkpoint import CheckpointError
    from skillmimic.rl.runner import train

    try:
        train(cfg)
    except (ConfigError, CheckpointError, MotionFileError) as e:
        # expected user errors: one clear line, no traceback
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
