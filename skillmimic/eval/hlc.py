"""Evaluation of tasks scored over whole episodes (registry evaluation kind ``episodes``:
the high-level controllers): task metrics from the env's own ``summarize``.

``eval.py checkpoint=<hlc run>/nn/hlc_layup.pth`` lands here through
:func:`skillmimic.eval.app.evaluate_checkpoint` (the checkpoint's run config names its task).
Test mode: the high-level action is the argmax of the logits (training samples them), the
LLC is the one of the run config unless ``llc_checkpoint=`` is given, episodes run to their
end (a fall, or ``task.episode_length`` env steps), and each of ``eval.rounds`` rounds
collects the first episode of every env -- new goals and start clips per round from the
env's seeded generator (``eval.seed``).

Metrics (see :meth:`envs.hlc.task.HLCTask.summarize`): goal reach rate (heading, circling -- plus
laps and time on the circle), max ball height statistics (throwing), success rate and
scores per minute of simulated time (layup); for every task the fall rate, mean episode
length and mean episode return.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from envs.hlc import finished_episodes

from .runner import save_figure


# --------------------------------------------------------------------------- rollouts
@dataclass
class HLCEvalReport:
    task: str
    rounds: int
    episodes: int
    metrics: dict[str, float]
    per_episode: dict[str, list] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    histogram: tuple[str, str] = ("return", "episode return")   # per-episode key plotted, axis label

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v
        d = self.to_dict()
        d["metrics"] = {k: clean(v) for k, v in d["metrics"].items()}
        path.write_text(json.dumps(d, indent=2) + "\n")
        return path

    def table(self) -> str:
        rows = [(k, f"{v:.4g}") for k, v in self.metrics.items()]
        w = max(len(k) for k, _ in rows)
        head = f"HLC task {self.task}: {self.episodes} episodes ({self.rounds} round(s))"
        return "\n".join([head] + [f"  {k.ljust(w)}  {v}" for k, v in rows])

    def plot(self, path: str | Path) -> Path:
        """Histogram of the task's main per-episode quantity."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        key, label = self.histogram
        values = [v for v in self.per_episode.get(key, []) if v is not None and math.isfinite(v)]
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        ax.hist(values, bins=max(5, min(30, len(values))), color="tab:blue")
        ax.set_xlabel(label)
        ax.set_ylabel("episodes")
        ax.set_title(f"{self.task}: " + ", ".join(f"{k} {v:.3g}" for k, v in list(self.metrics.items())[:2]),
                     fontsize=9)
        return save_figure(fig, path)


def evaluate_hlc(env, policy: Callable[[torch.Tensor], torch.Tensor], rounds: int = 1, progress: bool = False,
                 meta: Optional[dict] = None) -> HLCEvalReport:
    """Run ``rounds`` rounds of one full episode per env and summarise the task metrics.

    ``env`` is an :class:`envs.hlc.HLCEnv` (any env whose ``step`` reports finished
    episodes in ``info["episodes"]`` and that has ``summarize``), ``policy`` any
    ``obs -> action`` callable."""
    max_steps = math.ceil(env.cfg.episode_length / env.steps_per_action) + 2
    rows: dict[str, list[torch.Tensor]] = {}
    for r in range(rounds):
        obs = env.reset()
        finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
        ret = torch.zeros(env.num_envs, device=env.device)
        for _ in range(max_steps):
            obs, reward, done, info = env.step(policy(obs))
            ret += torch.where(finished, torch.zeros_like(reward), reward)
            ep = info.get("episodes")
            if ep is not None:
                ids, ended = finished_episodes(ep)
                new = ~finished[ids]
                for k, v in ended.items():
                    rows.setdefault(k, []).append(v[new].cpu())
                rows.setdefault("return", []).append(ret[ids][new].cpu())
                finished[ids] = True
            if finished.all():
                break
        if not finished.all():
            raise RuntimeError(f"{int((~finished).sum())} episode(s) did not end within {max_steps} HLC steps")
        if progress:
            print(f"[skillmimic] HLC eval round {r + 1}/{rounds} done", flush=True)
    episodes = {k: torch.cat(v) for k, v in rows.items()}
    metrics = env.summarize(episodes)
    metrics["return_mean"] = episodes["return"].float().mean().item()
    per_episode = {k: v.float().tolist() for k, v in episodes.items()}
    return HLCEvalReport(task=env.task.name, rounds=rounds, episodes=len(episodes["length"]), metrics=metrics,
                         per_episode=per_episode, meta=dict(meta or {}), histogram=tuple(env.task.histogram))


__all__ = ["HLCEvalReport", "evaluate_hlc"]
