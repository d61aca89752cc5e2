"""Stitched trajectory graph on BallPlay-V2/sparse: completeness, exactness against brute
force, the similarity measure's identities, the masked-step formula and the file format."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest
import torch

from skillmimic.augment import stg
from skillmimic.augment.env_hook import align_state
from skillmimic.augment.similarity import (
    STF_BALL, STF_LOCOMOTION, STG_BALL, STG_LOCOMOTION, embedding, library_features, masked_steps, similarity,
    similarity_cost, state_features,
)
from skillmimic.motion import MotionLibrary
from skillmimic.rotations import yaw_quat

from helpers import SHARED_MOTIONS, SPARSE, needs_sparse

GETUP = SHARED_MOTIONS / "BallPlay-V2" / "getup"
pytestmark = needs_sparse


@pytest.fixture(scope="module")
def motion():
    return MotionLibrary(SPARSE, dtype=torch.float64)


@pytest.fixture(scope="module")
def graph(motion):
    names = [pathlib.Path(f).relative_to(SPARSE).as_posix() for f in motion.files]
    return stg.build_graph(motion, clip_names=names)


@pytest.fixture(scope="module")
def saved(graph, tmp_path_factory):
    return graph.save(tmp_path_factory.mktemp("stg") / "sparse.npz")


def test_one_edge_per_frame_and_other_skill(graph, saved, motion):
    g = stg.load_graph(saved)
    classes = set(motion.clip_labels.tolist())
    assert g.number_of_nodes() == motion.num_frames
    no_match_total = 0
    for node, data in g.nodes(data=True):
        out = [g.edges[node, v]["label"] for v in g.successors(node)]
        assert len(out) == len(set(out)), f"{node}: two edges to one skill"
        assert data["label"] not in out, f"{node}: intra-skill edge"
        assert set(out) | set(data["no_match"]) == classes - {data["label"]}
        assert not set(out) & set(data["no_match"])
        no_match_total += len(data["no_match"])
        for v in g.successors(node):
            length = int(motion.clip_lengths[v[0]])
            assert 2 <= v[1] <= length - 2, f"edge target {v} uses an excluded frame"
            assert g.nodes[v]["label"] == g.edges[node, v]["label"]
    assert g.number_of_edges() + no_match_total == motion.num_frames * (len(classes) - 1)
    # The documented no-match rule: only S < 1e-10 (sparse has no missing frames).
    assert no_match_total == int((~graph.matched).sum())
    assert (graph.similarity[graph.matched] >= stg.NO_MATCH_SIMILARITY).all()


def test_edges_are_the_brute_force_argmax(graph, motion):
    """Pruned search == exhaustive search, including the no-match decisions."""
    feats = library_features(motion).heading_aligned()
    clip_of, _, label_of, candidate = stg._frame_index(motion)
    dense = graph.dense()
    classes = graph.classes
    gen = torch.Generator().manual_seed(0)
    for c in classes:
        src = (label_of == c).nonzero().flatten()
        src = src[torch.randperm(len(src), generator=gen)[:40]]
        for slot, c2 in enumerate(x for x in classes if x != c):
            cand = ((label_of == c2) & candidate).nonzero().flatten()
            cost = similarity_cost(feats[src].unsqueeze(1), feats[cand].unsqueeze(0), STG_BALL)
            best, i = cost.min(1)
            s = torch.exp(-best)
            ok = s >= stg.NO_MATCH_SIMILARITY
            got_clip = torch.as_tensor(dense["dst_clip"][src.numpy(), slot])
            got_frame = torch.as_tensor(dense["dst_frame"][src.numpy(), slot])
            got = torch.where(got_clip >= 0, motion.clip_starts[got_clip.clamp_min(0)] + got_frame, -1)
            assert torch.equal(got, torch.where(ok, cand[i], -1))
            torch.testing.assert_close(torch.as_tensor(dense["similarity"][src.numpy(), slot]),
                                       torch.where(ok, s, torch.zeros_like(s)), rtol=1e-9, atol=0)


def test_self_similarity_is_one_with_every_weight_set(motion):
    f = library_features(motion)
    for w in (STG_BALL, STG_LOCOMOTION, STF_BALL, STF_LOCOMOTION):
        for feats in (f, f.heading_aligned()):
            s = similarity(feats, feats, w)
            torch.testing.assert_close(s, torch.ones_like(s), atol=1e-12, rtol=0)
    # ...and a frame against another clearly is not 1 (weights are applied)
    assert float(similarity(f[50:51], f[80:81], STG_BALL)) < 0.5


def test_aligned_similarity_ignores_heading_and_position(motion):
    """A whole frame rigidly yawed and moved in xy is the same frame after alignment."""
    rows = torch.tensor([10, 200, 400, 700])
    clip_of = torch.repeat_interleave(torch.arange(motion.num_clips), motion.clip_lengths)
    frames = rows - motion.clip_starts[clip_of[rows]]
    st = motion.get_frame_at(clip_of[rows], frames).state
    yaw = torch.tensor([0.7, -2.0, 3.0, 1.2], dtype=torch.float64)
    target_pos = torch.tensor([[3.0, -1.0, 0.0], [-5.0, 2.0, 0.0], [0.0, 0.0, 0.0], [10.0, 10.0, 0.0]], dtype=torch.float64)
    moved = align_state(st, target_pos, yaw_quat(yaw))
    a = state_features(st, motion.key_body_ids).heading_aligned()
    b = state_features(moved, motion.key_body_ids)
    s_aligned = similarity(a, b.heading_aligned(), STG_BALL)
    torch.testing.assert_close(s_aligned, torch.ones_like(s_aligned), atol=1e-9, rtol=0)
    assert (similarity(state_features(st, motion.key_body_ids), b, STG_BALL) < 1e-3).all()   # unaligned: far


def test_embedding_is_a_lower_bound_of_the_cost(motion):
    f = library_features(motion).heading_aligned()
    gen = torch.Generator().manual_seed(1)
    i = torch.randint(0, motion.num_frames, (2000,), generator=gen)
    j = torch.randint(0, motion.num_frames, (2000,), generator=gen)
    for w in (STG_BALL, STG_LOCOMOTION, STF_BALL):
        e = embedding(f, w)
        lb = (e[i] - e[j]).pow(2).sum(-1)
        cost = similarity_cost(f[i], f[j], w)
        assert (lb <= cost + 1e-9).all()
        assert (lb >= 0.5 * cost).float().mean() > 0.9      # and a tight one for most pairs


def test_masked_step_formula(graph):
    s = torch.tensor([1.0, 0.9, 0.5000001, 0.5, 0.3, 0.1, 0.0999, 0.003, 1e-4, 1.5e-9, 1e-10, 1e-12, 0.0],
                     dtype=torch.float64)
    expected = [0, 0, 0, 1, 1, 1, 2, 3, 4, 9, 10, 10, 10]
    assert masked_steps(s).tolist() == expected
    # the stored column follows the formula N = 0 if S > 0.5 else min(-floor(log10 S), 10)
    m = graph.matched
    ref = [0 if x > 0.5 else min(-math.floor(math.log10(x)), 10) for x in graph.similarity[m]]
    assert graph.masked_steps[m].tolist() == ref
    assert (graph.masked_steps[~m] == -1).all()


def test_file_is_portable_and_round_trips(graph, saved):
    with np.load(saved, allow_pickle=False) as z:       # no pickle, no torch needed to read it
        assert set(z.files) >= {"meta", "clip_files", "src_clip", "dst_clip", "similarity", "masked_steps"}
        assert all(str(f).endswith(".pt") for f in z["clip_files"])
    g2 = stg.StitchedGraph.load(saved)
    for name in stg._ARRAYS:
        assert np.array_equal(getattr(g2, name), getattr(graph, name))
    assert g2.clip_files == graph.clip_files
    bad = saved.with_name("bad.npz")
    np.savez(bad, meta=np.array('{"format": "other"}'))
    with pytest.raises(ValueError, match="not a skillmimic-stg file"):
        stg.StitchedGraph.load(bad)


@pytest.mark.skipif(not GETUP.exists(), reason="getup data not present")
def test_locomotion_sources_use_pose_and_height_only(tmp_path):
    """Getup (label 0) sources are compared without ball terms: moving the ball of the
    source does not change their edges."""
    m = MotionLibrary([GETUP / "000_021pickle_getup_10.pt", SPARSE / "run"], dtype=torch.float64)
    g1 = stg.build_graph(m)
    c = int((m.clip_labels == 0).nonzero()[0])
    rows = slice(int(m.clip_starts[c]), int(m.clip_starts[c] + m.clip_lengths[c]))
    before = library_features(m)[rows].map(torch.clone)
    m.obj_pos[rows] += 3.0
    g2 = stg.build_graph(m)
    getup = g1.clip_labels[g1.src_clip] == 0
    assert getup.any() and g1.matched[getup].any()
    assert np.array_equal(g1.dst_frame[getup], g2.dst_frame[getup])
    assert np.allclose(g1.similarity[getup], g2.similarity[getup])
    after = library_features(m)[rows]
    assert torch.allclose(similarity(before, after, STG_LOCOMOTION), torch.ones(1, dtype=torch.float64))
    assert (similarity(before, after, STG_BALL) < 0.1).all()          # ball skills do see the ball
