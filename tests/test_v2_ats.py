"""Adaptive trajectory sampling on the sparse clips with synthetic episode rewards."""

from __future__ import annotations

import pytest
import torch

from skillmimic.augment.ats import AdaptiveSampler

from helpers import needs_sparse

pytestmark = needs_sparse    # ``motion``: the sparse clips (conftest.py)


def _check_normalised(ats):
    assert (ats.clip_weights >= 0).all()
    torch.testing.assert_close(ats.clip_weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(ats.time_weights.sum(1), torch.ones(ats.num_clips, dtype=torch.float64))
    assert (ats.time_weights[~ats.start_mask] == 0).all()


def _all_starts(ats):
    m, col = ats.start_mask.nonzero(as_tuple=True)
    return m, col + ats.min_frame


def test_initial_weights_are_the_default_and_uniform(motion):
    ats = AdaptiveSampler(motion)
    _check_normalised(ats)
    torch.testing.assert_close(ats.clip_weights, (motion.clip_weights / motion.clip_weights.sum()).double())
    for m in range(motion.num_clips):
        n = int(motion.clip_lengths[m]) - 3                       # start frames 2..L-2
        assert int(ats.start_mask[m].sum()) == n
        torch.testing.assert_close(ats.time_weights[m, :n], torch.full((n,), 1.0 / n, dtype=torch.float64))


def test_weights_move_toward_low_reward_frames_and_clips(motion):
    ats = AdaptiveSampler(motion, alpha=1.0)
    m, t = _all_starts(ats)
    # synthetic: clip 0 is hard in its first half, everything else is easy
    hard = (m == 0) & (t < motion.clip_lengths[0] // 2)
    reward = torch.where(hard, 0.1, 0.9)
    for _ in range(6):                                          # R converges toward the reward
        ats.record(m, t, reward)
    ats.update()
    _check_normalised(ats)
    w0 = ats.time_weights[0][ats.start_mask[0]]
    n_hard = int(hard.sum())
    assert float(w0[:n_hard].min()) > 10 * float(w0[n_hard:].max())
    assert float(w0[:n_hard].sum()) > 0.95
    # clip level: clip 0's class (label 9, alone in it) is the hardest class
    label0 = int(motion.clip_labels[0])
    per_class = {int(c): float(ats.clip_weights[motion.clip_labels == c].sum()) for c in motion.clip_labels.unique()}
    assert max(per_class, key=per_class.get) == label0
    # other clips: uniform time weights (all their frames scored alike)
    for k in range(1, motion.num_clips):
        w = ats.time_weights[k][ats.start_mask[k]]
        torch.testing.assert_close(w, torch.full_like(w, 1.0 / len(w)))
    # sampling follows the weights, by torch.multinomial and by the sync-free inverse CDF (masked resets)
    for sync_free in (False, True):
        gen = torch.Generator().manual_seed(0)
        clips, frames = ats.sample(20000, gen, sync_free=sync_free)
        freq = torch.bincount(clips, minlength=motion.num_clips).double() / 20000
        torch.testing.assert_close(freq, ats.clip_weights, atol=0.015, rtol=0)
        f0 = frames[clips == 0]
        assert float((f0 < motion.clip_lengths[0] // 2).double().mean()) > 0.95
        assert ((frames >= 2) & (frames <= motion.clip_lengths[clips] - 2)).all()
        # the start frames of an easy clip: uniform over its valid frames, never outside them
        k = int(clips[clips != 0].mode().values)
        cols = frames[clips == k] - ats.min_frame
        assert ats.start_mask[k, cols].all()
        counts = torch.bincount(cols, minlength=ats.start_mask.shape[1])[ats.start_mask[k]].double()
        assert counts.std() < 4 * counts.mean().sqrt() + 1         # ~Poisson spread around uniform


def test_alpha_mixes_with_uniform(motion):
    ats = AdaptiveSampler(motion, alpha=0.0)
    m, t = _all_starts(ats)
    ats.record(m, t, torch.rand(len(m), generator=torch.Generator().manual_seed(3)))
    ats.update()
    _check_normalised(ats)
    torch.testing.assert_close(ats.clip_weights, torch.full((motion.num_clips,), 1 / motion.num_clips,
                                                            dtype=torch.float64))
    half = AdaptiveSampler(motion, alpha=0.5)
    half.record(m, t, torch.where(m == 1, 0.0, 1.0))
    half.update()
    _check_normalised(half)
    assert float(half.clip_weights.min()) >= 0.5 / motion.num_clips - 1e-12


def test_record_running_mean_and_duplicates(motion):
    ats = AdaptiveSampler(motion)
    c, f = torch.tensor([2, 2, 2]), torch.tensor([10, 10, 11])
    ats.record(c, f, torch.tensor([0.4, 0.8, 1.0]))
    assert ats.scores[2, 8].item() == pytest.approx(0.5 * 0.6)          # duplicates enter as their mean
    assert ats.scores[2, 9].item() == pytest.approx(0.5)
    ats.record(c[:1], f[:1], torch.tensor([0.2]))
    assert ats.scores[2, 8].item() == pytest.approx(0.5 * (0.3 + 0.2))
    assert int(ats.visits.sum()) == 4
    # state round trip
    other = AdaptiveSampler(motion)
    other.load_state_dict(ats.state_dict())
    assert torch.equal(other.scores, ats.scores)
