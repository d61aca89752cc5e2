"""Motion library: conversion accuracy, velocities, missing frames, interpolation, sampling."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from skillmimic.assets.skeleton import SKELETON_BALLPLAY
from skillmimic.kinematics import forward_kinematics
from skillmimic.motion import MotionLibrary, ReferenceFrame, find_clips
from skillmimic.motion import columns as C
from skillmimic.motion.fk_report import clip_fk_errors, main as fk_report_main
from skillmimic.motion.io import clip_label, load_clip, skill_name
from skillmimic.motion.reference import wrap_angle
from skillmimic.rotations import expmap_to_quat, quat_conj, quat_mul, quat_to_expmap
from skillmimic.state import JointState

from helpers import SHARED_MOTIONS as DATA
FPS = C.FPS


@pytest.fixture(scope="module")
def lib() -> MotionLibrary:
    if not DATA.is_dir():
        pytest.skip(f"shared motion data not found at {DATA}")
    return MotionLibrary(DATA)


def _not_last(lib: MotionLibrary) -> torch.Tensor:
    """(num_frames,) True for frames that have a successor in the same clip."""
    last = lib.clip_starts + lib.clip_lengths - 1
    mask = torch.ones(lib.num_frames, dtype=torch.bool)
    mask[last] = False
    return mask


def synthetic_clip(T: int = 40, spin: float = 2.0) -> torch.Tensor:
    """A smooth clip in the raw (T, 337) format: the root spins about WORLD z at ``spin``
    rad/s on top of the data's usual tilt (exp-map (1.7, 0, 0)), joints oscillate."""
    t = torch.arange(T, dtype=torch.float64) / FPS
    raw = torch.zeros(T, C.NUM_COLUMNS, dtype=torch.float64)
    raw[:, C.ROOT_POS] = torch.stack([0.3 * t, 0.1 + 0.2 * t ** 2, 0.9 + 0.05 * torch.sin(3 * t)], -1)
    tilt = expmap_to_quat(torch.tensor([1.7, 0.0, 0.0], dtype=torch.float64)).expand(T, 4)
    yaw = expmap_to_quat(torch.stack([0 * t, 0 * t, spin * t], -1))
    root_rot = quat_to_expmap(quat_mul(yaw, tilt))
    raw[:, C.ROOT_ROT] = root_rot
    raw[:, C.ROOT_ROT_DUP] = root_rot
    phase = torch.arange(156, dtype=torch.float64) * 0.37
    raw[:, C.DOF] = 0.4 * torch.sin(2.0 * t[:, None] + phase)
    raw[:, C.BODY_POS] = 1.0
    raw[:, C.OBJ_POS] = torch.stack([0.5 + t, 0 * t, 1.0 + 3 * t - 4.9 * t ** 2], -1)
    raw[:, C.CONTACT] = (torch.arange(T) % 10 < 5).double()
    return raw.float()


def _lib_of(tmp_path: Path, raw: torch.Tensor, name: str = "013_synthetic_1.pt", **kw) -> MotionLibrary:
    path = tmp_path / "synthetic" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(raw, path)
    return MotionLibrary(path, **kw)


# ---------------------------------------------------------------- shared data
def test_shared_library_layout(lib):
    files = find_clips(DATA)
    assert lib.num_clips == len(files) and lib.files == files
    lengths = [load_clip(f).shape[0] for f in files[:5]]
    assert lib.clip_lengths[:5].tolist() == lengths
    assert lib.num_frames == int(lib.clip_lengths.sum())
    assert lib.clip_starts[0] == 0
    assert torch.equal(lib.clip_starts[1:], torch.cumsum(lib.clip_lengths, 0)[:-1])
    assert lib.clip_labels.tolist() == [clip_label(f) for f in files]
    assert lib.skill_names == [skill_name(f) for f in files]
    assert bool(lib.valid.all())           # the release has no missing frames
    for name in ("root_pos", "root_quat", "dof_pos", "dof_vel", "body_pos", "body_quat", "body_lin_vel"):
        assert getattr(lib, name).shape[0] == lib.num_frames
        assert torch.isfinite(getattr(lib, name)).all(), name
    assert lib.dof_pos.shape == (lib.num_frames, 156) and lib.body_pos.shape == (lib.num_frames, 53, 3)


def test_fk_error_of_converted_reference(lib):
    """Mean body error of FK(reference) vs the recorded positions: measured 3.39 cm mean
    over clips (3.26 over frames), worst clip 4.24 cm."""
    per_clip = lib.clip_fk_error()
    frame_err = (lib.body_pos - lib.recorded_body_pos).norm(dim=-1).mean()
    assert per_clip.shape == (lib.num_clips,)
    assert per_clip.mean() <= 0.035, per_clip.mean()
    assert frame_err <= 0.035, frame_err
    worst = int(per_clip.argmax())
    assert per_clip.max() <= 0.05, (lib.files[worst], per_clip.max())


def test_raw_triplets_are_much_worse(lib):
    """The conversion is what brings the error down: the raw triplets (original code)
    give ~11 cm on the same clips."""
    for f in lib.files[::30]:
        conv, raw = clip_fk_errors(load_clip(f))
        assert conv.mean() < 0.05 and raw.mean() > 2 * conv.mean(), f


def test_fk_report_command(capsys):
    folder = DATA / "BallPlay-M" / "pass"      # one short clip: 3.95 cm conv, 8.6 cm raw
    if not folder.is_dir():
        pytest.skip("pass folder not present")
    assert fk_report_main([str(folder), "--max-mean-cm", "5"]) == 0
    out = capsys.readouterr().out
    assert "004_016pickle_pass_001.pt" in out and "PASS" in out
    assert fk_report_main([str(folder)]) == 1          # above the default 3.5 cm gate
    assert "FAIL" in capsys.readouterr().out
    assert fk_report_main([str(folder / "missing")]) == 2


def test_reference_bodies_are_fk_of_reference_state(lib):
    g = torch.Generator().manual_seed(0)
    ids = lib.sample_clips(64, generator=g)
    ref = lib.get_frame_at(ids, lib.sample_times(ids, generator=g))
    s = ref.state
    kin = forward_kinematics(s.root_pos.double(), s.root_quat.double(), s.dof_pos.double(),
                             s.root_lin_vel.double(), s.root_ang_vel.double(), s.dof_vel.double())
    torch.testing.assert_close(ref.body_pos.double(), kin.pos, atol=1e-5, rtol=0)
    torch.testing.assert_close(ref.body_lin_vel.double(), kin.lin_vel, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(ref.key_body_pos, ref.body_pos[:, SKELETON_BALLPLAY.key_body_ids])
    assert torch.equal(ref.state.root_pos, ref.body_pos[:, 0])


def test_velocities_integrate_to_positions(lib):
    """Forward differences: x[t] + v[t] / fps == x[t+1] inside every clip."""
    nxt = _not_last(lib)
    i = nxt.nonzero().flatten()
    for pos, vel in (("root_pos", "root_lin_vel"), ("dof_pos", "dof_vel"), ("obj_pos", "obj_lin_vel")):
        x, v = getattr(lib, pos).double(), getattr(lib, vel).double()
        err = x[i] + v[i] / FPS - x[i + 1]
        if pos == "dof_pos":           # hinge angles live in [-pi, pi]: equal up to whole turns
            err = wrap_angle(err)
        torch.testing.assert_close(err, torch.zeros_like(err), atol=2e-5, rtol=0, msg=pos)
    # root orientation: q[t+1] = exp(w dt) q[t] with w in the world frame
    q = lib.root_quat.double()
    step = expmap_to_quat(lib.root_ang_vel.double()[i] / FPS)
    torch.testing.assert_close(quat_mul(step, q[i]), q[i + 1], atol=1e-5, rtol=0)
    # the last frame of a clip repeats the previous velocity
    last = lib.clip_starts + lib.clip_lengths - 1
    assert torch.equal(lib.root_lin_vel[last], lib.root_lin_vel[last - 1])
    assert torch.equal(lib.dof_vel[last], lib.dof_vel[last - 1])


def test_angles_and_quaternions_are_continuous(lib):
    nxt = _not_last(lib).nonzero().flatten()
    assert ((lib.root_quat[nxt + 1] * lib.root_quat[nxt]).sum(-1) > 0).all()
    assert ((lib.body_quat[nxt + 1] * lib.body_quat[nxt]).sum(-1) > 0).all()
    # hinge angles inside the +-pi joint range; jumps above 1 rad are rare (where the
    # recorded rotation itself jumps; tests/test_hinge_orders.py tells them apart)
    assert lib.dof_pos.abs().max() <= math.pi + 1e-6
    assert (wrap_angle(lib.dof_pos[nxt + 1] - lib.dof_pos[nxt]).abs() > 1.0).float().mean() < 5e-4   # 1.5e-4


def test_ball_rotation_is_identity_in_release(lib):
    ids = torch.arange(lib.num_clips)
    ref = lib.get_frame_at(ids, torch.zeros_like(ids))
    torch.testing.assert_close(ref.state.obj_quat.abs(), torch.tensor([1.0, 0, 0, 0]).expand(lib.num_clips, 4))
    assert torch.equal(ref.state.obj_ang_vel, torch.zeros_like(ref.state.obj_ang_vel))
    assert set(lib.contact.unique().tolist()) <= {0.0, 1.0}


# ---------------------------------------------------------------- interpolation
def _assert_frames_equal(a: ReferenceFrame, b: ReferenceFrame, atol=1e-6):
    for name in JointState.__dataclass_fields__:
        torch.testing.assert_close(getattr(a.state, name), getattr(b.state, name), atol=atol, rtol=0, msg=name)
    for name in ("body_pos", "body_quat", "body_lin_vel", "body_ang_vel", "key_body_pos", "contact"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=atol, rtol=0, msg=name)
    assert torch.equal(a.valid, b.valid) and torch.equal(a.labels, b.labels)


def test_integer_times_give_the_recorded_frame(lib):
    g = torch.Generator().manual_seed(1)
    ids = lib.sample_clips(200, generator=g)
    frames = lib.sample_times(ids, generator=g, min_frame=0, end_margin=1)
    exact = lib.get_frame_at(ids, frames)
    _assert_frames_equal(lib.get_frame(ids, frames.float()), exact)
    _assert_frames_equal(lib.get_frame(ids, frames), exact)
    row = lib.clip_starts[ids] + frames
    assert torch.equal(exact.state.dof_pos, lib.dof_pos[row])
    assert torch.equal(exact.times, frames.float())


def test_half_frame_lies_between_neighbours(lib):
    g = torch.Generator().manual_seed(2)
    ids = lib.sample_clips(200, generator=g)
    f = lib.sample_times(ids, generator=g)
    a, b = lib.get_frame_at(ids, f), lib.get_frame_at(ids, f + 1)
    m = lib.get_frame(ids, f.float() + 0.5)
    torch.testing.assert_close(m.state.root_pos, 0.5 * (a.state.root_pos + b.state.root_pos))
    # hinge angles: halfway along the shorter way round (they wrap at +-pi)
    half = a.state.dof_pos + 0.5 * wrap_angle(b.state.dof_pos - a.state.dof_pos)
    torch.testing.assert_close(m.state.dof_pos, half)
    torch.testing.assert_close(m.body_pos, 0.5 * (a.body_pos + b.body_pos))
    lo, hi = torch.minimum(a.state.dof_vel, b.state.dof_vel), torch.maximum(a.state.dof_vel, b.state.dof_vel)
    assert ((m.state.dof_vel >= lo - 1e-4) & (m.state.dof_vel <= hi + 1e-4)).all()
    # slerp midpoint: equal rotation angle to both ends, and half the total
    ang = lambda p, q: 2 * torch.acos((p * q).sum(-1).abs().clamp(max=1.0))   # noqa: E731
    qa, qb, qm = a.state.root_quat.double(), b.state.root_quat.double(), m.state.root_quat.double()
    torch.testing.assert_close(ang(qa, qm), ang(qm, qb), atol=2e-3, rtol=0)
    torch.testing.assert_close(ang(qa, qm), 0.5 * ang(qa, qb), atol=2e-3, rtol=0)
    # contact: nearest frame, ties to the later one
    assert torch.equal(m.contact, b.contact)
    assert torch.equal(lib.get_frame(ids, f.float() + 0.25).contact, a.contact)


def test_times_are_clamped(lib):
    ids = torch.tensor([0, 1, 2])
    T = lib.clip_lengths[ids]
    _assert_frames_equal(lib.get_frame(ids, torch.tensor([-3.0, -0.5, -100.0])), lib.get_frame_at(ids, torch.zeros(3)))
    _assert_frames_equal(lib.get_frame(ids, T.float() + 7.5), lib.get_frame_at(ids, T - 1))
    _assert_frames_equal(lib.get_frame_at(ids, T + 3), lib.get_frame_at(ids, T - 1))
    _assert_frames_equal(lib.get_frame(ids, 1e9), lib.get_frame_at(ids, T - 1))
    with pytest.raises(IndexError):
        lib.get_frame_at(torch.tensor([lib.num_clips]), torch.tensor([0]))
    with pytest.raises(ValueError, match="differ"):
        lib.get_frame(torch.tensor([0, 1]), torch.tensor([0.0, 1.0, 2.0]))


# ---------------------------------------------------------------- sampling
def test_sample_times_range(lib):
    g = torch.Generator().manual_seed(3)
    ids = lib.sample_clips(20000, generator=g)
    f = lib.sample_times(ids, generator=g)
    T = lib.clip_lengths[ids]
    assert f.dtype == torch.long and (f >= 2).all() and (f <= T - 2).all()
    # both ends are reached: uniform over [2, T-2] inclusive
    short = int(lib.clip_lengths.argmin())
    fs = lib.sample_times(torch.full((5000,), short), generator=g)
    assert set(fs.tolist()) == set(range(2, int(lib.clip_lengths[short]) - 1))
    f2 = lib.sample_times(ids, generator=g, min_frame=0, end_margin=1)
    assert (f2 >= 0).all() and (f2 <= T - 1).all() and (f2 == T - 1).any() and (f2 == 0).any()
    fixed = lib.fixed_times(ids, 30)
    assert torch.equal(fixed, torch.minimum(torch.full_like(T, 30), T - 1))


def test_sample_times_short_clip(tmp_path):
    lib = _lib_of(tmp_path, synthetic_clip(T=3))
    f = lib.sample_times(torch.zeros(100, dtype=torch.long))
    assert (f >= 0).all() and (f <= 2).all()


def test_default_weights_and_statistics(lib):
    labels = lib.clip_labels
    counts = {int(l): int((labels == l).sum()) for l in labels.unique()}
    expected = torch.tensor([(2.0 if int(l) == 1 else 1.0) / counts[int(l)] for l in labels])
    torch.testing.assert_close(lib.clip_weights, expected)
    n = 200_000
    ids = lib.sample_clips(n, generator=torch.Generator().manual_seed(4))
    assert ids.shape == (n,) and ids.dtype == torch.long
    # every label equally likely, pick-up (1) twice as likely
    label_w = torch.tensor([2.0 if int(l) == 1 else 1.0 for l in labels.unique()])
    p = label_w / label_w.sum()
    freq = torch.stack([(labels[ids] == l).double().mean() for l in labels.unique()])
    sigma = (p * (1 - p) / n).sqrt()
    assert ((freq - p.double()).abs() < 5 * sigma).all(), (freq, p)
    # clips within a label equally likely
    picks = lib.clip_ids_of_label(1)
    per_clip = torch.bincount(ids, minlength=lib.num_clips)[picks].double()
    assert per_clip.std() / per_clip.mean() < 0.1


def test_custom_weights_and_reproducibility(lib):
    w = torch.zeros(lib.num_clips)
    w[[3, 7]] = torch.tensor([1.0, 3.0])
    ids = lib.sample_clips(40000, generator=torch.Generator().manual_seed(5), weights=w)
    assert set(ids.unique().tolist()) == {3, 7}
    assert abs((ids == 7).double().mean().item() - 0.75) < 0.015
    a = lib.sample_clips(100, generator=torch.Generator().manual_seed(6))
    b = lib.sample_clips(100, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        lib.sample_clips(5, weights=torch.ones(3))
    with pytest.raises(ValueError):
        lib.sample_clips(5, weights=torch.zeros(lib.num_clips))


def test_clip_ids_of_label(lib):
    picks = lib.clip_ids_of_label(1)
    assert len(picks) > 0 and (lib.clip_labels[picks] == 1).all()
    both = lib.clip_ids_of_label([1, 2])
    assert torch.equal(both, ((lib.clip_labels == 1) | (lib.clip_labels == 2)).nonzero().flatten())
    assert len(lib.clip_ids_of_label(999)) == 0


# ---------------------------------------------------------------- synthetic clips
def test_root_angular_velocity_is_world_frame(tmp_path):
    """A spin about world z on a tilted root: the world-frame rate is (0, 0, spin); the
    original's conj(q[t]) q[t+1] (body frame) would point along the tilted axis."""
    spin = 2.0
    lib = _lib_of(tmp_path, synthetic_clip(spin=spin))
    expected = torch.tensor([0.0, 0.0, spin]).expand_as(lib.root_ang_vel)
    torch.testing.assert_close(lib.root_ang_vel, expected, atol=1e-3, rtol=0)
    # and the FK root body angular velocity agrees
    torch.testing.assert_close(lib.body_ang_vel[:, 0], expected, atol=1e-3, rtol=0)
    q = lib.root_quat.double()
    body_rate = quat_to_expmap(quat_mul(quat_conj(q[:-1]), q[1:])) * FPS
    assert (body_rate - expected[:-1].double()).norm(dim=-1).min() > 1.0


def test_linear_velocity_of_synthetic_clip(tmp_path):
    raw = synthetic_clip()
    lib = _lib_of(tmp_path, raw)
    r = raw.double()
    torch.testing.assert_close(lib.root_lin_vel[:-1].double(), (r[1:, :3] - r[:-1, :3]) * FPS, atol=1e-4, rtol=0)
    torch.testing.assert_close(lib.obj_lin_vel[-1], lib.obj_lin_vel[-2])


def test_hinge_angles_wrap_through_pi(tmp_path):
    """A joint turning about its x hinge from 2.6 to 3.8 rad: the reference angle stays in
    the +-pi joint range (it wraps, like the exp-map), and the rate is the true constant
    rate, also across the wrap."""
    T = 40
    raw = synthetic_clip(T)
    angle = torch.linspace(2.6, 3.8, T, dtype=torch.float64)
    axis_angle = torch.stack([angle, 0 * angle, 0 * angle], -1)
    wrapped = quat_to_expmap(expmap_to_quat(axis_angle))         # what a file stores
    assert wrapped[:, 0].min() < 0 < wrapped[:, 0].max()
    raw[:, C.DOF.start:C.DOF.start + 3] = wrapped.float()
    lib = _lib_of(tmp_path, raw)
    x = lib.dof_pos[:, 0].double()
    assert x.abs().max() <= math.pi
    torch.testing.assert_close(wrap_angle(x - angle), torch.zeros_like(x), atol=1e-4, rtol=0)
    rate = (3.8 - 2.6) / (T - 1) * FPS
    torch.testing.assert_close(lib.dof_vel[:, 0].double(), torch.full((T,), rate, dtype=torch.float64), atol=1e-3, rtol=0)
    # interpolating across the wrap takes the short way
    k = int((x[1:] < x[:-1]).nonzero()[0])                       # x[k] ~ +pi, x[k+1] ~ -pi
    mid = lib.get_frame(torch.tensor([0]), torch.tensor([k + 0.5])).state.dof_pos[0, 0].double()
    torch.testing.assert_close(wrap_angle(mid - 0.5 * (angle[k] + angle[k + 1])), torch.zeros((), dtype=torch.float64),
                               atol=1e-4, rtol=0)


def test_missing_frames(tmp_path):
    raw = synthetic_clip(30)
    raw[[0, 10, 11, 20]] = 0.0
    lib = _lib_of(tmp_path, raw)
    valid = lib.valid
    assert valid.tolist() == [t not in (0, 10, 11, 20) for t in range(30)]
    # poses are held over gaps (leading gap: first valid frame)
    assert torch.equal(lib.root_pos[0], lib.root_pos[1])
    assert torch.equal(lib.root_pos[10], lib.root_pos[9]) and torch.equal(lib.root_pos[11], lib.root_pos[9])
    assert torch.equal(lib.dof_pos[20], lib.dof_pos[19])
    # velocities: trusted forward differences only; the missing frame, the frame before
    # and the frame after one copy the previous velocity
    r = raw.double()
    torch.testing.assert_close(lib.root_lin_vel[5].double(), (r[6, :3] - r[5, :3]) * FPS, atol=1e-4, rtol=0)
    for t in (9, 10, 11, 12):
        assert torch.equal(lib.root_lin_vel[t], lib.root_lin_vel[8]), t
    for t in (19, 20, 21):
        assert torch.equal(lib.dof_vel[t], lib.dof_vel[18]), t
    for t in (0, 1):
        assert torch.equal(lib.obj_lin_vel[t], lib.obj_lin_vel[2]), t
    assert torch.isfinite(lib.body_pos).all()
    # the recorded body positions stay as recorded, and the FK report ignores missing frames
    assert (lib.recorded_body_pos[10] == 0).all()
    conv, _ = clip_fk_errors(raw)
    assert conv.shape == (26,)
    # interpolation next to a gap is flagged invalid
    ids = torch.zeros(4, dtype=torch.long)
    ref = lib.get_frame(ids, torch.tensor([8.5, 9.0, 9.5, 12.0]))
    assert ref.valid.tolist() == [True, True, False, True]
    assert lib.get_frame_at(ids[:1], torch.tensor([10])).valid.tolist() == [False]


def test_reference_frame_shapes_and_dtype(tmp_path):
    lib = _lib_of(tmp_path, synthetic_clip(), dtype=torch.float64)
    ref = lib.get_frame(torch.tensor([0, 0]), torch.tensor([1.25, 7.0]))
    assert isinstance(ref.state, JointState) and ref.state.num_worlds == 2
    assert ref.state.root_quat.shape == (2, 4) and ref.state.dof_pos.shape == (2, 156)
    assert ref.body_quat.shape == (2, 53, 4) and ref.key_body_pos.shape == (2, 17, 3)
    assert ref.state.dof_pos.dtype == torch.float64 and ref.valid.dtype == torch.bool
    assert ref.labels.tolist() == [13, 13]
    torch.testing.assert_close(ref.state.root_quat.norm(dim=-1), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA not available")])])
def test_device(tmp_path, device):
    lib = _lib_of(tmp_path, synthetic_clip(), device=device)
    assert lib.root_pos.device.type == device and lib.body_pos.device.type == device
    g = torch.Generator(device=device).manual_seed(0)
    ids = lib.sample_clips(8, generator=g)
    t = lib.sample_times(ids, generator=g)
    ref = lib.get_frame(ids, t.float() + 0.3)
    assert ids.device.type == device and ref.state.root_pos.device.type == device
    assert ref.body_pos.device.type == device
