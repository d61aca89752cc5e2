"""The V2 hook's statistics in the training log: ``v2/*`` scalars in tensorboard, read from the
device once per epoch (:meth:`skillmimic.augment.V2Augment.epoch_stats`), and across a resume."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import compose, fast_overrides, needs_motion

NUM_ENVS, HORIZON, ATS_INTERVAL, STF_PROB = 16, 16, 5, 0.3


def _train(out, experiment, **extra):
    from skillmimic.rl.runner import train

    n = torch.get_num_threads()
    try:
        return train(compose(["task=skill_v2", *fast_overrides(out, experiment, **{
            "num_envs": NUM_ENVS, "train.horizon_length": HORIZON, "task.episode_length": 4,
            "task.v2.state_init_random_prob": STF_PROB, "task.v2.state_switch_prob": 0, "task.v2.hist_ckpt": "null",
            "task.v2.reweight_interval": ATS_INTERVAL, **extra})]))
    finally:
        torch.set_num_threads(n)


def _scalars(run_dir) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "summaries"))
    acc.Reload()
    return {t: [e.value for e in acc.Scalars(t)] for t in acc.Tags()["scalars"] if t.startswith("v2/")}


@needs_motion
def test_v2_counters_and_rates_reach_tensorboard_and_survive_a_resume(tmp_path):
    first = _train(tmp_path, "v2log", max_epochs=2)
    s = _scalars(first.run_dir)
    rates = {f"v2/{k}_rate" for k in ("stf", "switch", "switch_no_match")}
    counters = {f"v2/{k}" for k in ("resets", "stf", "switch", "switch_no_match", "ats_updates", "stf_dropped")}
    assert set(s) == rates | counters
    assert all(len(v) == 2 for v in s.values())
    resets = [0.0] + s["v2/resets"]
    stf = [0.0] + s["v2/stf"]
    for e in (1, 2):
        d = resets[e] - resets[e - 1]
        assert d >= (NUM_ENVS if e == 1 else NUM_ENVS * (HORIZON // 4))   # episodes end after 3 steps or sooner
        # the rate is the epoch's share, and near the configured probability (5 binomial sigmas)
        assert s["v2/stf_rate"][e - 1] == pytest.approx((stf[e] - stf[e - 1]) / d)
        assert abs(s["v2/stf_rate"][e - 1] - STF_PROB) < 5 * math.sqrt(STF_PROB * (1 - STF_PROB) / d)
    assert s["v2/switch"] == s["v2/switch_no_match"] == s["v2/switch_rate"] == [0.0, 0.0]   # STG is off
    assert s["v2/stf_dropped"] == [0.0, 0.0]
    assert s["v2/ats_updates"] == [HORIZON // ATS_INTERVAL, 2 * HORIZON // ATS_INTERVAL]
    assert first.history[-1]["env_stats"]["v2/resets"] == s["v2/resets"][-1]

    # resumed: the counters go on from the checkpoint's, the rates cover the new epoch only
    resumed = _train(tmp_path, "v2log", max_epochs=3, resume=str(first.checkpoint))
    s3 = {k: v[-1] for k, v in _scalars(first.run_dir).items()}
    d = s3["v2/resets"] - s["v2/resets"][-1]
    assert resumed.epoch == 3 and NUM_ENVS * (HORIZON // 4) <= d < s3["v2/resets"] / 2
    assert s3["v2/stf_rate"] == pytest.approx((s3["v2/stf"] - s["v2/stf"][-1]) / d)
    assert s3["v2/ats_updates"] == 3 * HORIZON // ATS_INTERVAL

