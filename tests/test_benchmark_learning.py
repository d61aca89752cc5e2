"""benchmarks/learning.py's arithmetic: start/end windows of a run and the spread over seeds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("learning_benchmark",
                                               Path(__file__).resolve().parents[1] / "benchmarks" / "learning.py")
learning = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(learning)


def test_summarize_run_windows_and_spread_over_seeds():
    hist = [{"reward_per_step": 0.1 * (i + 1), "reward_terms": {"reward": 0.1 * (i + 1), "r_r": 0.01 * i},
             "episode_length": None if i == 0 else 10.0 * i, "kl": 0.001 * i} for i in range(6)]
    run = learning.summarize_run(hist, window=2)
    assert run["reward_start"] == pytest.approx(0.15) and run["reward_end"] == pytest.approx(0.55)
    assert run["ratio"] == pytest.approx(0.55 / 0.15)
    assert run["terms_start"]["r_r"] == pytest.approx(0.005) and run["terms_end"]["r_r"] == pytest.approx(0.045)
    assert run["episode_length_start"] == 10.0 and run["episode_length_end"] == 50.0   # running means
    assert run["kl_end"] == pytest.approx(0.0045)

    s = learning.spread([1.0, 2.0, None, float("nan"), 3.0])
    assert (s["mean"], s["std"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 1.0, 3.0, 3)
    assert learning.spread([5.0])["std"] == 0.0 and learning.spread([None])["mean"] is None
