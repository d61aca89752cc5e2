"""Parity of the two engines: MuJoCo C (float64, CPU threads) and MuJoCo Warp (float32).

Both step the same generated model from the same initial states with the same PD targets;
we compare body positions (all 53 bodies + the ball) and the contact flags the rewards use.

How the tolerances were chosen (measured on this CPU with the scenarios below and with
``python benchmarks/sim_scaling.py --parity``: 64 random (clip, frame) starts over all
BallPlay-M clips; numbers in docs/mjwarp.md):

* Without contact *events* (a contact appearing in one engine a step before the other) the
  engines differ only by float32 vs float64 rounding and solver convergence. Standing on PD
  targets, the humanoid is an inverted pendulum that amplifies any difference (doubling about
  every 0.3 s): measured 3e-6 m at 1 s, 1.5e-5 m at 1.5 s, 6e-5 m at 2 s, 1.4e-3 m at 3 s.
  Bouncing balls: 2.5e-5 m over 1.5 s (each bounce amplifies). So: 1.5 s horizon, 5e-4 m
  tolerance (20-30x margin, ~1.5 s of extra exponential growth), while a semantic difference
  (gains, timestep, integrator, sensor frame) shows up as millimetres-centimetres at once.
  Contact forces (control-step means): measured <= 0.4 N apart (body weight 650 N, ball
  impacts 5 kN); tolerance 5 N.
* Tracking a reference clip is contact-rich (feet, fingers, ball) and chaotic: a rounding-
  level difference can flip a grazing contact, after which the worlds separate
  exponentially. Over 0.5 s (30 control steps) from 64 random starts: median world 2e-6 m,
  90th percentile 1.2e-3 m, 99th 1.8 cm, worst 2.6 cm; the four clips below measure <= 2e-5 m.
  Tolerance: every world < 5 cm (2x the worst random start, so other clips/physics tweaks
  still pass) and at least 3 of 4 worlds < 1 mm (the event-free majority).
* Contact flags (fingertip force > 0.1 N on any axis; ball-floor found) agree exactly
  without events; in clip tracking 3 of 19200 fingertip samples flipped over 0.5 s across
  the 64 random starts, so we require >= 98% agreement there and exact ball-floor agreement.

Every test runs MuJoCo Warp on the CPU and, marked ``cuda`` (``benchmarks/gpu_suite.py``'s
first stage), on a CUDA device when there is one, against the same MuJoCo C worlds: the
tolerances above were measured on the CPU, so a CUDA failure says whether the GPU's float32
reductions stay within them.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("mujoco_warp")

from skillmimic.assets.skeleton import SKELETON_BALLPLAY  # noqa: E402
from skillmimic.sim.mujoco_cpu import MujocoCPUSimulator  # noqa: E402
from skillmimic.sim.mujoco_warp import MujocoWarpSimulator  # noqa: E402

from helpers import SHARED_MOTIONS, standing_state  # noqa: E402

N = 4   # the same world count and model as test_sim_mjwarp (the hoop test adds its box kernels)
MOTIONS = SHARED_MOTIONS / "BallPlay-M"
FINGERTIPS = SKELETON_BALLPLAY.fingertip_ids
FLAG_FORCE = 0.1          # N, the rewards' contact threshold

EVENT_FREE_STEPS = 90     # 1.5 s at 60 Hz
EVENT_FREE_TOL = 5e-4     # m (measured <= 2.5e-5)
FORCE_TOL = 5.0           # N (measured <= 0.4)
CLIP_STEPS = 30           # 0.5 s
CLIP_TOL = 0.05           # m, every world (worst random start 2.6e-2)
CLIP_TOL_TYPICAL = 1e-3   # m, at least 3 of 4 worlds (these clips: <= 2e-5)
FLAG_AGREEMENT = 0.98


WARP_DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")])]


@pytest.fixture(scope="module", params=WARP_DEVICES)
def warp_device(request):
    return request.param


@pytest.fixture(scope="module")
def engines(warp_device):
    c, w = MujocoCPUSimulator(N, num_threads=2), MujocoWarpSimulator(N, device=warp_device)
    yield c, w
    c.close()
    w.close()


def rollout(sim, init, targets, steps: int) -> dict[str, torch.Tensor]:
    """(steps, N, ...) histories of body+ball positions and contact flags (on the CPU)."""
    sim.set_state(None, init.to(sim.device))
    out = {"pos": [], "force": [], "fingertip": [], "object_floor": []}
    for k in range(steps):
        sim.set_pd_targets(targets(k).to(sim.device))
        s = sim.step()
        out["pos"].append(torch.cat([s.body_pos, s.joint.obj_pos[:, None]], 1).double())
        out["force"].append(torch.cat([s.contact_forces, s.obj_contact_force[:, None]], 1).double())
        out["fingertip"].append((s.contact_forces[:, FINGERTIPS].abs() > FLAG_FORCE).any(-1))
        out["object_floor"].append(s.obj_floor_contact.clone())
    return {k: torch.stack(v).cpu() for k, v in out.items()}


def compare(engines, init, targets, steps):
    a, b = (rollout(sim, init, targets, steps) for sim in engines)
    dev = (a["pos"] - b["pos"]).norm(dim=-1).amax(-1)        # (steps, N) worst body per world
    for sim in engines:
        assert not sim.nonfinite.any()
    assert engines[1].overflow_count == 0
    return a, b, dev


def test_standing_humanoid_holding_pd_targets(engines):
    init = standing_state(N)
    a, b, dev = compare(engines, init, lambda k: init.dof_pos, EVENT_FREE_STEPS)
    assert dev.max() < EVENT_FREE_TOL, f"max body deviation {dev.max():.2e} m"
    assert a["pos"][-1, :, 0, 2].min() > 0.8, "still standing: this is a contact-holding test"
    force_dev = (a["force"] - b["force"]).norm(dim=-1).max()
    assert force_dev < FORCE_TOL, f"contact forces differ by {force_dev:.2f} N"
    weight = float(engines[0].model.body_subtreemass[1]) * 9.81
    assert (b["force"][-1, :, :-1, 2].sum(-1) - weight).abs().max() < 0.05 * weight
    assert torch.equal(a["fingertip"], b["fingertip"])


def test_ball_drops(engines):
    init = standing_state(N)
    # Balls far from the humanoid, dropped from 0.6-2.4 m, one with spin and sideways velocity.
    init.obj_pos = torch.tensor([[2.0, 0.0, 0.6], [0.0, 2.0, 1.2], [-2.0, 0.0, 2.4], [0.0, -2.0, 1.5]])
    init.obj_lin_vel = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    init.obj_ang_vel = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    a, b, dev = compare(engines, init, lambda k: init.dof_pos, EVENT_FREE_STEPS)   # 2-6 impacts each
    ball_dev = (a["pos"][:, :, -1] - b["pos"][:, :, -1]).norm(dim=-1)
    assert ball_dev.max() < EVENT_FREE_TOL, f"max ball deviation {ball_dev.max():.2e} m"
    assert dev.max() < EVENT_FREE_TOL
    force_dev = (a["force"][:, :, -1] - b["force"][:, :, -1]).norm(dim=-1).max()
    assert force_dev < FORCE_TOL, f"ball contact forces differ by {force_dev:.2f} N"
    assert a["object_floor"].any(0).all(), "every ball reached the floor"
    assert torch.equal(a["object_floor"], b["object_floor"])


def _clip_starts(lib, names: list[str]):
    """For each named clip, a frame where the hand holds the ball (the fingertips are in play)."""
    clips, frames = [], []
    for name in names:
        ids = [i for i, f in enumerate(lib.files) if f.stem == name]
        if not ids:
            pytest.skip(f"clip {name} not in {MOTIONS}")
        cid = ids[0]
        ref = lib.clip_frames(cid)
        held = ref.contact.nonzero().flatten()
        held = held[held < lib.clip_lengths[cid] - CLIP_STEPS - 1]
        clips.append(cid)
        frames.append(int(held[len(held) // 2]) if len(held) else 0)
    return torch.tensor(clips), torch.tensor(frames)


@pytest.mark.skipif(not MOTIONS.is_dir(), reason=f"{MOTIONS} not present")
def test_reference_clips_tracked_with_their_own_joint_angles(engines):
    motion = pytest.importorskip("skillmimic.motion")
    names = ["001_007pickle_pick_003", "013_018pickle_run_3", "002_015pickle_rebound_002",
             "005_014pickle_shot_001"]
    files = [p for p in MOTIONS.rglob("*.pt") if p.stem in names]
    lib = motion.MotionLibrary(files)
    clips, f0 = _clip_starts(lib, names)
    init = lib.get_frame_at(clips, f0)
    assert init.contact.all(), "scenario starts with the ball in hand"
    a, b, dev = compare(engines, init.state, lambda k: lib.get_frame_at(clips, f0 + k + 1).state.dof_pos,
                        CLIP_STEPS)
    worst = dev.amax(0)
    assert worst.max() < CLIP_TOL, f"max body deviation per world {worst.tolist()} m"
    assert (worst < CLIP_TOL_TYPICAL).sum() >= 3, f"max body deviation per world {worst.tolist()} m"
    agree = (a["fingertip"] == b["fingertip"]).double().mean()
    assert a["fingertip"].any(), "fingertips touch the ball in this scenario"
    assert agree >= FLAG_AGREEMENT, f"fingertip flags agree on {agree:.3f}"
    assert torch.equal(a["object_floor"], b["object_floor"])


def test_hoop_mocap_pose_and_rim_contacts(warp_device):
    """The hoop is a per-world mocap body: both engines place it (position and yaw) and bounce
    balls off it alike: through the rim, onto the rim tube, onto the backboard's edge, and
    thrown at the board. Measured 1.6e-3 m apart over 1.5 s: each impact on the 1 cm tube or
    the board's edge is a contact event that amplifies rounding. Tolerance 1e-2 m (6x); a
    misplaced or misrotated hoop moves the balls by metres."""
    from skillmimic.assets.mjcf import HoopConfig, SceneConfig
    from skillmimic.scoring import rim_crossings

    hoop = HoopConfig()
    rim = torch.tensor([[2.0, 1.0, hoop.rim_height]] * N)
    yaw = torch.tensor([0.0, 0.5, 1.0, math.pi])
    init = standing_state(N)
    init.root_pos[:, 0] = -4.0       # humanoid well away from the hoop
    # through the rim; onto the rim tube; past it; thrown at the backboard (which faces -x at yaw pi)
    init.obj_pos = torch.tensor([[2.0, 1.0, 4.0], [2.0, 1.0 + hoop.rim_radius + 0.01, 4.0],
                                  [1.4, 1.0, 4.0], [2.0, 1.3, 3.8]])
    init.obj_lin_vel = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    paths, scores = [], []
    for cls, device in ((MujocoCPUSimulator, "cpu"), (MujocoWarpSimulator, warp_device)):
        with cls(N, SceneConfig(hoop=hoop), device=device) as sim:
            sim.set_hoop_pose(None, rim.to(device), yaw.to(device))
            sim.set_state(None, init.to(device))
            sim.set_pd_targets(init.dof_pos.to(device))
            prev, path, score = sim.state.joint.obj_pos.cpu(), [], torch.zeros(N, dtype=torch.long)
            for _ in range(EVENT_FREE_STEPS):
                ball = sim.step().joint.obj_pos.cpu()
                score += rim_crossings(prev, ball, sim.hoop_pos.cpu(), hoop.rim_radius).long()
                path.append(ball)
                prev = ball
            paths.append(torch.stack(path))
            scores.append(score)
    assert scores[0][0] == 1 and torch.equal(scores[0], scores[1])
    dev = (paths[0] - paths[1]).norm(dim=-1).max()
    assert paths[0][-1, 3, 0] < 1.5, "the thrown ball came back off the backboard"
    assert dev < 1e-2, f"ball paths differ by {dev:.2e} m"
