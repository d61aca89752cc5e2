"""History encoder: features, pretraining on BallPlay-V2/sparse (CLI), frozen buffer."""

from __future__ import annotations

import pytest
import torch

from skillmimic.augment import history as H
from skillmimic.augment.env_hook import align_state
from skillmimic.kinematics import forward_kinematics
from skillmimic.motion import MotionLibrary
from skillmimic.rotations import yaw_quat

from helpers import DEMO, REPO, SPARSE, needs_sparse

pytestmark = needs_sparse    # ``motion``: the sparse clips (conftest.py)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("hist") / "enc.pt"
    assert H.main(["pretrain", str(SPARSE), "--out", str(out), "--epochs", "2", "--seed", "0"]) == 0
    return out


def _features_of(state):
    kin = forward_kinematics(state.root_pos, state.root_quat, state.dof_pos)
    return H.history_features(kin.pos, state.root_quat, state.dof_pos, state.obj_pos)


def test_features_use_the_true_heading(motion):
    """316 dims; a rigid yaw + xy move of the whole scene leaves every feature unchanged
    (only true if the heading comes from the root quaternion itself)."""
    rows = torch.tensor([5, 150, 300, 600])
    clip_of = torch.repeat_interleave(torch.arange(motion.num_clips), motion.clip_lengths)
    st = motion.get_frame_at(clip_of[rows], rows - motion.clip_starts[clip_of[rows]]).state
    f = _features_of(st)
    assert f.shape == (4, H.FEATURE_DIM)
    moved = align_state(st, torch.tensor([[4.0, -3.0, 0.0]]).expand(4, 3),
                        yaw_quat(torch.tensor([0.3, 1.9, -2.5, 3.1])))
    torch.testing.assert_close(_features_of(moved), f, atol=1e-5, rtol=0)
    # library features are the same function of the library's own FK
    torch.testing.assert_close(H.library_history_features(motion)[rows], f, atol=1e-5, rtol=0)
    # root height first, ball height last
    torch.testing.assert_close(f[:, 0], st.root_pos[:, 2])
    torch.testing.assert_close(f[:, -1], st.obj_pos[:, 2])


def test_pretraining_lowers_the_loss(checkpoint):
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)   # no pickled objects
    losses = ckpt["train"]["losses"]
    assert len(losses) == 2 and losses[1] < 0.9 * losses[0]
    assert ckpt["config"]["history_length"] == 60 and ckpt["config"]["embedding_dim"] == 3
    assert ckpt["feature_mean"].shape == (H.FEATURE_DIM,) and (ckpt["feature_std"] > 0).all()


def test_frozen_encoder_and_buffer(checkpoint, motion):
    enc = H.FrozenHistoryEncoder.load(checkpoint)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training                                       # stays frozen
    table = enc.normalize(H.library_history_features(motion))
    buf = H.HistoryBuffer(enc, 3, "cpu")
    clips = torch.tensor([0, 1, 2])
    frames = torch.tensor([5, 70, 100])
    buf.fill(torch.arange(3), motion.clip_starts[clips], frames, table)
    # env 0: 55 zero frames, then frames 0..4 of its clip; env 1: frames 10..69
    assert (buf.buf[0, :55] == 0).all()
    torch.testing.assert_close(buf.buf[0, 55:], table[motion.clip_starts[0]:motion.clip_starts[0] + 5])
    s1 = int(motion.clip_starts[1])
    torch.testing.assert_close(buf.buf[1], table[s1 + 10:s1 + 70])
    e = buf.embed()
    assert e.shape == (3, 3) and torch.isfinite(e).all()
    # push: FIFO by one frame, newest last (normalised)
    raw = H.library_history_features(motion)[[s1 + 70] * 3]
    buf.push(raw)
    torch.testing.assert_close(buf.buf[1, :-1], table[s1 + 11:s1 + 70])
    torch.testing.assert_close(buf.buf[:, -1], table[[s1 + 70] * 3])
    # the frozen encoder computes what the trained one did
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = H.StatePredictor(H.EncoderConfig(**ckpt["config"]))
    model.encoder.load_state_dict(ckpt["encoder"])
    torch.testing.assert_close(buf.embed(), model.encoder(buf.buf).detach())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_buffer_on_cuda(checkpoint, motion):
    enc = H.FrozenHistoryEncoder.load(checkpoint, "cuda")
    buf = H.HistoryBuffer(enc, 4, "cuda")
    table = enc.normalize(H.library_history_features(motion).cuda())
    buf.fill(torch.arange(4, device="cuda"), motion.clip_starts[:4].cuda(), torch.full((4,), 30, device="cuda"), table)
    buf.push(H.library_history_features(motion)[:4].cuda())
    cpu = H.HistoryBuffer(H.FrozenHistoryEncoder.load(checkpoint), 4, "cpu")
    cpu.buf = buf.buf.cpu()
    torch.testing.assert_close(buf.embed().cpu(), cpu.embed(), atol=1e-4, rtol=1e-4)





@pytest.fixture
def tiny_clips(tmp_path):
    """The demo clips cut to 30 frames each (one pretraining batch: fast epochs)."""
    if not DEMO.exists():
        pytest.skip("demo clips not present")
    out = tmp_path / "clips"
    out.mkdir()
    for f in sorted(DEMO.glob("*.pt")):
        torch.save(torch.load(f, weights_only=True)[:30].clone(), out / f.name)
    return out


def test_encoder_cache_is_keyed_by_content_and_settings_outside_the_repo(tiny_clips, tmp_path, monkeypatch):
    """hist_ckpt=auto pretrains once per (clip contents, settings) into the user cache and
    then only loads; a failed pretraining leaves nothing behind."""
    from skillmimic.augment import env_hook as E

    repo = REPO
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert E.user_cache_dir() == tmp_path / "xdg" / "skillmimic"
    assert E.V2Config().cache_dir is None and E.V2Config().hist_pretrain_epochs == H.PretrainConfig().epochs == 1000

    clips = tiny_clips
    motion = MotionLibrary(clips)
    cfg = E.V2Config(hist_ckpt=E.AUTO, hist_pretrain_epochs=1)
    calls = []
    real = E.pretrain
    monkeypatch.setattr(E, "pretrain", lambda *a, **k: calls.append(1) or real(*a, **k))
    enc = E.cached_history_encoder(motion, cfg, "cpu", log=lambda *_: None)
    path = E.history_cache_path(motion, cfg)
    assert path.parent == tmp_path / "xdg" / "skillmimic" and path.is_file() and repo not in path.parents
    assert [p.name for p in path.parent.iterdir()] == [path.name]           # no temporary file left
    assert isinstance(enc, H.FrozenHistoryEncoder) and len(calls) == 1
    E.cached_history_encoder(MotionLibrary(clips), cfg, "cpu", log=lambda *_: None)
    assert len(calls) == 1, "the second use loads the cache"
    torch.load(path, weights_only=True)

    # other settings, or edited clip contents: another key
    assert E.history_cache_path(motion, E.V2Config(hist_pretrain_epochs=2)) != path
    first = sorted(clips.glob("*.pt"))[0]
    data = torch.load(first, weights_only=True)
    data[5, 0] += 0.01
    torch.save(data, first)
    assert E.history_cache_path(MotionLibrary(clips), cfg) != path

    # a pretraining that fails writes nothing
    def boom(*a, **k):
        raise ValueError("history-encoder pretraining diverged")
    monkeypatch.setattr(E, "pretrain", boom)
    with pytest.raises(ValueError, match="diverged"):
        E.cached_history_encoder(MotionLibrary(clips), cfg, "cpu", log=lambda *_: None)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_pretraining_stops_once_converged(tiny_clips):
    """The convergence stop: a loss that stops improving (here: a learning rate too small to
    move it) triggers the plateau cut, and a cut below min_lr ends pretraining early."""
    motion = MotionLibrary(tiny_clips)
    ckpt = H.pretrain(motion, H.PretrainConfig(epochs=50, patience=0, lr=1e-7, min_lr=5e-8), log=None)
    assert ckpt["train"]["epochs_run"] == 2 and len(ckpt["train"]["losses"]) == 2
    ckpt = H.pretrain(motion, H.PretrainConfig(epochs=3), log=None)                 # improving: runs every epoch
    assert ckpt["train"]["epochs_run"] == 3


def test_streaming_embedding_equals_the_full_encoder(checkpoint, motion):
    """After one push the buffer recomputes only the conv columns next to the window's ends
    (and whole rows refilled by ``fill``); whatever the sequence of pushes, fills, masked
    fills and replaced buffers, the embedding must be the full encoder's."""
    enc = H.FrozenHistoryEncoder.load(checkpoint)
    assert H._streamable_layers(enc.encoder, enc.cfg.history_length) is not None
    table = enc.normalize(H.library_history_features(motion))
    raw = H.library_history_features(motion)
    n = 6
    buf = H.HistoryBuffer(enc, n, "cpu")
    g = torch.Generator().manual_seed(0)

    def starts(k):
        clips = torch.randint(0, motion.num_clips, (k,), generator=g)
        return motion.clip_starts[clips], torch.randint(0, 60, (k,), generator=g)

    buf.fill(torch.arange(n), *starts(n), table)
    shifted = 0
    for step in range(40):
        buf.push(raw[torch.randint(0, len(raw), (n,), generator=g)])
        if step % 4 == 1:
            buf.fill(torch.tensor([step % n, (step + 3) % n]), *starts(2), table)
        if step % 13 == 7:
            buf.fill_where(torch.arange(n) % 2 == 0, *starts(n), table)
        if step == 20:
            buf.push(raw[:n])                          # two pushes before one embed
        if step == 25:
            buf.embed()
            buf.buf = buf.buf.roll(1, 0)               # replaced between an embed and the next push
        if step == 30:
            buf.buf = buf.buf.flip(0).clone()          # a buffer replaced from outside, after the push
        shifted += buf._acts is not None and buf._pushes == 1
        torch.testing.assert_close(buf.embed(), enc(buf.buf), atol=1e-6, rtol=1e-5, msg=f"step {step}")
    assert shifted > 25, "the streaming path must be the one exercised"
