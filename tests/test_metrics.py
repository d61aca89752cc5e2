"""Tracking metrics and per-skill success criteria on synthetic trajectories with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from skillmimic.eval.metrics import (
    object_contact_flag, body_contact_flag, body_mpjpe, contact_error, frame_success, key_points,
    masked_mean, nar_over_rounds, normalized_accumulated_reward, object_mpjpe, tracking_metrics,
)
from skillmimic.eval.success import (
    CRITERIA, DEFAULT_SKILL_CRITERIA, SuccessThresholds, SuccessTracker, criterion_codes, rates_by_label,
)


# ----------------------------------------------------------------------------- tracking metrics
def test_mpjpe_in_millimetres_over_root_and_17_keys():
    g = torch.Generator().manual_seed(0)
    root, keys = torch.randn(4, 3, generator=g), torch.randn(4, 17, 3, generator=g)
    pts = key_points(root, keys)
    assert pts.shape == (4, 18, 3) and torch.equal(pts[:, 0], root)
    # shift only the root by 18 cm: the mean over 18 points is 10 mm
    moved = key_points(root + torch.tensor([0.18, 0.0, 0.0]), keys)
    torch.testing.assert_close(body_mpjpe(pts, moved), torch.full((4,), 10.0))
    # every point 3-4-5 cm off: 50 mm
    torch.testing.assert_close(body_mpjpe(pts, pts + torch.tensor([0.03, 0.04, 0.0])), torch.full((4,), 50.0))
    torch.testing.assert_close(object_mpjpe(root, root + torch.tensor([0.0, 0.0, -0.25])), torch.full((4,), 250.0))


def test_contact_flags_use_thresholds_and_ignore_ball_z():
    body = torch.zeros(3, 17, 3)
    body[1, 5, 2] = 0.1          # exactly the threshold counts (>=), as in the reward
    body[2, 0, 0] = -0.09
    assert body_contact_flag(body).tolist() == [False, True, False]
    ball = torch.tensor([[0.0, 0.0, 500.0], [0.0, -0.2, 0.0], [0.1, 0.1, 0.0]])
    assert object_contact_flag(ball).tolist() == [False, True, False]


def test_contact_error_values_and_ordering():
    # (sim body, sim ball, ref ball) -> E_cg; the reference body flag is 0 (no body contact)
    sim_body = torch.tensor([False, True, False, True])
    sim_ball = torch.tensor([True, True, False, False])
    ref_ball = torch.tensor([1.0, 0.0, 1.0, 0.0])
    torch.testing.assert_close(contact_error(sim_body, sim_ball, ref_ball), torch.tensor([0.0, 1.0, 0.5, 0.5]))
    # a reference with body contact flips the body term
    torch.testing.assert_close(contact_error(sim_body, sim_ball, ref_ball, ref_body_contact=True),
                               torch.tensor([0.5, 0.5, 1.0, 0.0]))


def test_tracking_metrics_known_answers():
    n = 4
    root = torch.tensor([[0.0, 0.0, 1.0]]).repeat(n, 1)
    keys = torch.zeros(n, 17, 3)
    ball = torch.tensor([[0.5, 0.0, 1.0]]).repeat(n, 1)
    ref_contact = torch.tensor([1.0, 1.0, 0.0, 0.0])
    no_force = torch.zeros(n, 17, 3)
    ball_force = torch.tensor([[5.0, 0, 0], [5.0, 0, 0], [0, 0, 0], [0, 0, 0]])
    sim_keys = keys.clone()
    sim_keys[1] += torch.tensor([0.0, 0.12, 0.0])   # env 1: 17/18 * 120 mm body error
    sim_ball = ball.clone()
    sim_ball[2, 2] += 0.3                           # env 2: 300 mm ball error
    ball_force[3] = torch.tensor([0.0, 2.0, 0.0])    # env 3: touches the ball when the reference does not
    m = tracking_metrics(root, keys, ball, ref_contact, root, sim_keys, sim_ball, no_force, ball_force)
    torch.testing.assert_close(m.e_b_mm, torch.tensor([0.0, 120.0 * 17 / 18, 0.0, 0.0]))
    torch.testing.assert_close(m.e_o_mm, torch.tensor([0.0, 0.0, 300.0, 0.0]))
    torch.testing.assert_close(m.e_cg, torch.tensor([0.0, 0.0, 0.0, 0.5]))
    assert m.acc.tolist() == [True, False, False, False]
    assert m.contact_correct.tolist() == [True, True, True, False]
    assert m.obj_contact_correct.tolist() == [True, True, True, False]


def test_frame_success_thresholds_are_strict():
    e_b = torch.tensor([99.9, 100.0, 10.0, 10.0])
    e_o = torch.tensor([10.0, 10.0, 200.0, 10.0])
    e_cg = torch.tensor([0.0, 0.0, 0.0, 0.5])
    assert frame_success(e_b, e_o, e_cg).tolist() == [True, False, False, False]


def test_nar_and_masked_mean():
    r = torch.tensor([[1.0, 0.5], [0.0, 0.5]])
    assert float(normalized_accumulated_reward(r)) == pytest.approx(0.5)
    mask = torch.tensor([[True, True], [False, True]])
    assert float(normalized_accumulated_reward(r, mask)) == pytest.approx(2.0 / 3.0)
    assert math.isnan(float(masked_mean(r, torch.zeros_like(mask))))
    assert nar_over_rounds([0.1, 0.5, 0.7]) == pytest.approx(0.6)        # round 0 dropped
    assert nar_over_rounds([0.1, 0.5, 0.7], skip_first=False) == pytest.approx(13 / 30)
    assert nar_over_rounds([0.3]) == pytest.approx(0.3)                  # a single round is kept
    assert nar_over_rounds([0.3, float("nan"), 0.5]) == pytest.approx(0.5)


# ----------------------------------------------------------------------------- success criteria
def run_tracker(labels, traj, steps, shot_target=None, thresholds=None, active=None):
    """Feed ``traj(n) -> (root_pos, root_vel, obj_pos, obj_vel)`` for ``steps`` steps."""
    tr = SuccessTracker(torch.tensor(labels), shot_target, thresholds)
    for n in range(steps):
        tr.update(n, *traj(n), active=None if active is None else active(n))
    return tr


def const(n_env, v):
    return torch.tensor(v, dtype=torch.float32).repeat(n_env, 1)


def test_label_to_criterion_table():
    codes = criterion_codes(torch.tensor([0, 1, 2, 9, 10, 11, 12, 13, 31, 34, 6]))
    names = [CRITERIA[c] if c >= 0 else None for c in codes.tolist()]
    assert names == ["getup", "pickup", None, "shot", "run_no_object", "run", "run", "run", "layup", "layup", "shot"]
    with pytest.raises(ValueError, match="unknown success criterion"):
        criterion_codes(torch.tensor([1]), {1: "jump"})


def test_run_latched_early_then_must_hold():
    """env 0 dribbles all along; env 1's ball stops at step 110; env 2 starts dribbling at 80
    (latched in the first 100 steps, holds after); env 3's ball stops at 50 (latched, then
    fails after 100); env 4 has fallen (root 0.4 m)."""
    n, steps = 5, 150
    stop_at = torch.tensor([10**6, 110, 10**6, 50, 10**6])
    start_at = torch.tensor([0, 0, 80, 0, 0])   # env 2 starts at 80

    def traj(k):
        moving = (k >= start_at) & (k < stop_at)
        obj_vel = torch.zeros(n, 3)
        obj_vel[:, 2] = torch.where(moving, torch.tensor(2.0), torch.tensor(0.0))
        root = const(n, [0.0, 0.0, 0.9])
        root[4, 2] = 0.4
        return root, torch.zeros(n, 3), const(n, [0.3, 0.2, 0.5]), obj_vel

    tr = run_tracker([13, 11, 12, 13, 13], traj, steps)
    assert tr.success.tolist() == [True, False, True, False, False]
    # the ball 2 m away never counts
    far = run_tracker([13], lambda k: (const(1, [0, 0, .9]), torch.zeros(1, 3), const(1, [2.0, 0, .5]),
                                        const(1, [0, 0, 1.0])), 120)
    assert far.success.tolist() == [False]


def test_layup_reach_height_then_ball_keeps_moving_and_humanoid_stands():
    n, steps = 4, 400

    def traj(k):
        root = const(n, [0.0, 0.0, 0.9])
        ball = const(n, [0.0, 0.0, 1.0])
        vel = const(n, [0.0, 0.0, 1.0])
        if 50 <= k < 60:
            ball[[0, 1, 3], 2] = 2.0           # env 2 never lifts the ball above 1.8 m
        if k >= 350:
            root[1, 2] = 0.3                   # env 1 falls after the latch window
        if k >= 320:
            vel[3, 2] = 0.0                    # env 3's ball comes to rest
        return root, torch.zeros(n, 3), ball, vel

    tr = run_tracker([31, 34, 31, 31], traj, steps)
    assert tr.success.tolist() == [True, False, False, False]
    # a layup reached only after the 300-step window does not count
    late = run_tracker([31], lambda k: (const(1, [0, 0, .9]), torch.zeros(1, 3),
                                        const(1, [0, 0, 2.0 if k >= 300 else 1.0]), const(1, [0, 0, 1.0])), 320)
    assert late.success.tolist() == [False]


def test_shot_hits_the_clip_peak_height_within_tolerance():
    peaks = torch.tensor([2.4, 2.2, 2.4, 2.75])
    target = torch.full((4,), 2.5)

    def traj(k):
        ball = const(4, [0.0, 0.0, 1.0])
        if k == 40:
            ball[:, 2] = peaks
        root = const(4, [0.0, 0.0, 0.9])
        if k > 310:
            root[2, 2] = 0.45                  # env 2 falls afterwards
        return root, torch.zeros(4, 3), ball, torch.zeros(4, 3)

    tr = run_tracker([9, 9, 9, 5], traj, 330, shot_target=target)
    assert tr.success.tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="shot_target_z"):
        SuccessTracker(torch.tensor([9]))


@pytest.mark.parametrize("near_steps,expected", [(60, False), (61, True)])
def test_pickup_needs_more_than_60_steps_near_the_ball(near_steps, expected):
    def traj(k):
        ball = const(1, [0.3, 0.0, 1.0] if k < near_steps else [2.0, 0.0, 0.1])
        return const(1, [0.0, 0.0, 0.9]), torch.zeros(1, 3), ball, torch.zeros(1, 3)

    assert run_tracker([1], traj, 200).success.tolist() == [expected]


def test_getup_counts_still_upright_steps():
    def traj(k):
        # lying for 100 steps, then standing: still for 61 steps on env 0, walking on env 1
        root = const(2, [0.0, 0.0, 0.2 if k < 100 else 0.9])
        vel = torch.tensor([[0.1, 0.0, 0.0], [1.5, 0.0, 0.0]])
        return root, vel, const(2, [5.0, 0, 0.1]), torch.zeros(2, 3)

    tr = run_tracker([0, 0], traj, 161)
    assert tr.success.tolist() == [True, False]
    assert tr.getup_steps.tolist() == [61, 0]


def test_run_no_object_fraction_and_switch_window():
    def traj(k):
        # env 0: moving 85 % of the time; env 1: 75 %; env 2: still for 150 steps, then moving
        v = torch.zeros(3, 3)
        v[0, 0] = 2.0 if k % 20 >= 3 else 0.0
        v[1, 0] = 2.0 if k % 4 != 0 else 0.0
        v[2, 0] = 2.0 if k >= 150 else 0.0
        return const(3, [0.0, 0.0, 0.9]), v, const(3, [0.0, 0, 0.1]), torch.zeros(3, 3)

    tr = run_tracker([10, 10, 10], traj, 300)
    assert tr.success.tolist() == [True, False, False]
    tr = run_tracker([10, 10, 10], traj, 300, thresholds=SuccessThresholds(count_from=150))
    assert tr.success.tolist() == [True, False, True]


def test_undefined_labels_failed_envs_and_inactive_steps():
    def traj(k):
        return const(3, [0, 0, .9]), torch.zeros(3, 3), const(3, [0.3, 0, 1.0]), torch.zeros(3, 3)

    tr = run_tracker([1, 2, 1], traj, 80)
    assert tr.defined.tolist() == [True, False, True]
    tr.fail(torch.tensor([False, False, True]))
    assert tr.success.tolist() == [True, False, False]
    assert rates_by_label([1, 2, 1], tr.success, tr.defined)[1] == pytest.approx(0.5)
    assert math.isnan(rates_by_label([1, 2, 1], tr.success, tr.defined)[2])
    # steps where an env is inactive do not count towards its hold time
    tr = run_tracker([1], lambda k: tuple(t[:1] for t in traj(k)), 80,
                     active=lambda k: torch.tensor([k % 2 == 0]))
    assert tr.pickup_steps.tolist() == [40] and tr.success.tolist() == [False]


def test_default_table_covers_v2_labels():
    for label in (0, 1, 9, 10, 11, 12, 13, 31, 34):
        assert label in DEFAULT_SKILL_CRITERIA
