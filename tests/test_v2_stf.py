"""State transition field: perturbation statistics and nearest-frame re-targeting on real clips."""

from __future__ import annotations

import torch

from skillmimic.augment.similarity import (STF_BALL, STF_LOCOMOTION, library_features, rotation_angles, similarity,
                                           similarity_cost, state_features)
from skillmimic.augment.stf import STFNoise, perturb_state, retarget

from helpers import needs_sparse

pytestmark = needs_sparse    # ``motion``: the sparse clips (conftest.py)


def _starts(motion, n, seed):
    gen = torch.Generator().manual_seed(seed)
    clips = motion.sample_clips(n, generator=gen)
    return clips, motion.sample_times(clips, generator=gen), gen


def test_perturbation_components_and_scales(motion):
    clips, frames, gen = _starts(motion, 4000, 0)
    ref = motion.get_frame_at(clips, frames)
    labels = ref.labels.clone()
    labels[:2000] = 0                                     # treat half as getup: larger scales
    noisy = perturb_state(ref.state, labels, generator=gen)
    dz = noisy.root_pos[:, 2] - ref.state.root_pos[:, 2]
    assert (dz >= 0).all() and float(dz[2000:].max()) <= 0.1 and float(dz[:2000].max()) > 0.5
    torch.testing.assert_close(noisy.root_pos[:, :2], ref.state.root_pos[:, :2])
    torch.testing.assert_close(noisy.root_quat.norm(dim=-1), torch.ones(4000))   # renormalised
    std = (noisy.dof_pos - ref.state.dof_pos).std()
    assert 0.09 < float(std) < 0.11
    bz = noisy.obj_pos[:, 2] - ref.state.obj_pos[:, 2]
    assert (bz >= 0).all() and float(bz.max()) <= 0.1
    # root orientation noise is much larger for getup
    ang = lambda q: 2 * torch.acos((q * ref.state.root_quat).sum(-1).abs().clamp(max=1))  # noqa: E731
    assert float(ang(noisy.root_quat)[:2000].mean()) > 3 * float(ang(noisy.root_quat)[2000:].mean())
    zero = perturb_state(ref.state, ref.labels, STFNoise(**{k: 0.0 for k in STFNoise().as_dict()}),
                         STFNoise(**{k: 0.0 for k in STFNoise().as_dict()}), generator=gen)
    for name in ("root_pos", "root_quat", "dof_pos", "dof_vel", "obj_pos", "obj_lin_vel"):
        torch.testing.assert_close(getattr(zero, name), getattr(ref.state, name), atol=1e-6, rtol=0)


def test_unperturbed_state_retargets_to_its_own_frame(motion):
    clips, frames, _ = _starts(motion, 64, 1)
    ref = motion.get_frame_at(clips, frames)
    t_star, s = retarget(motion, clips, ref.state, ref.labels)
    assert torch.equal(t_star, frames)
    torch.testing.assert_close(s, torch.ones_like(s), atol=1e-4, rtol=0)


def test_retargeted_frames_are_nearer_than_random_ones(motion):
    clips, frames, gen = _starts(motion, 200, 2)
    ref = motion.get_frame_at(clips, frames)
    noisy = perturb_state(ref.state, ref.labels, generator=gen)
    feats = library_features(motion)
    t_star, s_star = retarget(motion, clips, noisy, ref.labels, frame_features=feats)
    T = motion.clip_lengths[clips]
    assert ((t_star >= 2) & (t_star <= T - 2)).all()
    a = state_features(noisy, motion.key_body_ids)
    # S at t* is what retarget reports, and no frame of the clip beats it (exhaustive check)
    torch.testing.assert_close(similarity(a, feats[motion.frame_index(clips, t_star)], STF_BALL), s_star,
                               rtol=1e-4, atol=1e-12)
    for k in range(0, 200, 10):
        n = int(T[k])
        rows = motion.clip_starts[clips[k]] + torch.arange(2, n - 1)
        s_all = similarity(a[k:k + 1], feats[rows], STF_BALL)
        assert float(s_all.max()) <= float(s_star[k]) * (1 + 1e-4)
    # ...and it is nearer than random frames of the same clip, and nearer than the unperturbed
    # start frame on average (the perturbation moved the state)
    s_rand = similarity(a, feats[motion.frame_index(clips, motion.sample_times(clips, generator=gen))], STF_BALL)
    s_orig = similarity(a, feats[motion.frame_index(clips, frames)], STF_BALL)
    assert (s_star >= s_rand - 1e-7).all() and float(s_star.mean()) > 2 * float(s_rand.mean())
    assert (s_star >= s_orig - 1e-7).all()
    assert float((t_star - frames).abs().float().median()) <= 10      # a neighbour in time, mostly


def test_shared_rotation_angles_give_the_same_costs(motion):
    """retarget computes the rotation angles once for both classes' weights: the same numbers."""
    clips, frames, gen = _starts(motion, 50, 4)
    ref = motion.get_frame_at(clips, frames)
    a = state_features(perturb_state(ref.state, ref.labels, generator=gen), motion.key_body_ids).unsqueeze(1)
    rows = motion.clip_starts[clips, None] + torch.arange(60)[None] % motion.clip_lengths[clips, None]
    b = library_features(motion)[rows]
    angles = rotation_angles(a, b)
    for w in (STF_BALL, STF_LOCOMOTION):
        assert torch.equal(similarity_cost(a, b, w, angles), similarity_cost(a, b, w))
