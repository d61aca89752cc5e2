"""Kinematic replay: a reference clip set into the engine frame by frame reports exactly the
reference's forward kinematics, and that FK matches the recorded body positions (cm level)."""

from __future__ import annotations

import pytest
import torch

from skillmimic.motion import MotionLibrary
from skillmimic.rotations import matrix_to_quat
from skillmimic.sim import make_simulator

from helpers import SHARED_MOTIONS as SHARED
CLIPS = [SHARED / "BallPlay-M" / "layup", SHARED / "BallPlay-M" / "rrun"]


@pytest.mark.skipif(not all(p.exists() for p in CLIPS), reason="shared BallPlay data not present")
def test_engine_bodies_equal_reference_fk_over_whole_clips():
    motion = MotionLibrary(CLIPS)
    batch = 32
    with make_simulator("mujoco", batch) as sim:
        for clip in range(motion.num_clips):
            T = int(motion.clip_lengths[clip])
            for start in range(0, T, batch):
                frames = torch.arange(start, min(start + batch, T))
                ref = motion.get_frame_at(torch.full_like(frames, clip), frames)
                ids = torch.arange(len(frames))
                sim.set_state(ids, ref.state)
                s = sim.state
                torch.testing.assert_close(s.body_pos[ids], ref.body_pos, atol=2e-5, rtol=0)
                q = matrix_to_quat(s.body_rot[ids])
                dot = (q * ref.body_quat).sum(-1).abs()
                assert (dot > 1 - 1e-5).all()
                torch.testing.assert_close(s.body_lin_vel[ids], ref.body_lin_vel, atol=1e-3, rtol=1e-4)
                torch.testing.assert_close(s.body_ang_vel[ids], ref.body_ang_vel, atol=1e-3, rtol=1e-4)
                torch.testing.assert_close(s.joint.obj_pos[ids], ref.state.obj_pos, atol=1e-5, rtol=0)
    # and the reference FK is faithful to the recorded skeleton (converted joint angles)
    err = motion.clip_fk_error()
    assert (err < 0.045).all(), err
