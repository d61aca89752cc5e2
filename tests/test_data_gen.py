"""Generated demo clips: reproducible, in the BallPlay format, physically consistent."""

import math

import numpy as np
import pytest
import torch

from skillmimic import data_gen
from skillmimic.assets.objects import ObjectConfig
from skillmimic.assets.skeleton import SKELETON_BALLPLAY as SKEL
from skillmimic.kinematics import forward_kinematics
from skillmimic.motion import columns as C
from skillmimic.rotations import expmap_to_hinge, expmap_to_quat

from helpers import DEMO as DEMO_DIR, REPO

G = data_gen.GRAVITY
DT = 1.0 / C.FPS
RADIUS = ObjectConfig().size[0]


def hand_ids(side):
    fingers = [f"{side}_{f}{k}" for f in ("Index", "Middle", "Pinky", "Ring", "Thumb") for k in (1, 2, 3)]
    return SKEL.indices([f"{side}_Wrist", *fingers])


def hand_ball_distance(clip, side):
    """Per frame: distance from the ball centre to the nearest body of that hand."""
    body = clip[:, C.BODY_POS].reshape(-1, SKEL.num_bodies, 3)
    return (body[:, hand_ids(side)] - clip[:, None, C.OBJ_POS]).norm(dim=-1).amin(-1)


@pytest.fixture(scope="module")
def clips():
    return data_gen.build_clips()


def test_committed_files_are_the_generator_output(clips):
    committed = sorted(p.name for p in DEMO_DIR.glob("*.pt"))
    assert committed == sorted(clips), "regenerate with `python -m skillmimic.data_gen --out data/motions/demo`"
    for name, clip in clips.items():
        stored = torch.load(DEMO_DIR / name, map_location="cpu", weights_only=True)
        torch.testing.assert_close(clip, stored, rtol=0, atol=1e-5, msg=f"{name} differs from its generator")


@pytest.mark.parametrize("name,label,seconds", [("001_demo_hold_1.pt", 1, 2.0), ("013_demo_dribble_1.pt", 13, 2.4)])
def test_ballplay_format(clips, name, label, seconds):
    clip = clips[name]
    assert int(name[:3]) == label
    assert clip.dtype == torch.float32 and clip.ndim == 2 and clip.shape[1] == C.NUM_COLUMNS
    assert clip.shape[0] == round(seconds * C.FPS)
    assert torch.isfinite(clip).all()
    assert torch.equal(clip[:, C.ROOT_ROT_DUP], clip[:, C.ROOT_ROT])
    assert not clip[:, C.OBJ_ROT].any() and not clip[:, C.UNUSED].any()
    assert set(clip[:, C.CONTACT].unique().tolist()) <= {0.0, 1.0}
    # body positions are the forward kinematics of the clip's own pose (generated with X-Y-Z
    # hinges, checked with the table's orders: the clip stores rotations, not hinge angles)
    c = clip.double()
    T = c.shape[0]
    body = forward_kinematics(c[:, C.ROOT_POS], expmap_to_quat(c[:, C.ROOT_ROT]),
                              expmap_to_hinge(c[:, C.DOF].reshape(T, -1, 3), SKEL.hinge_orders).reshape(T, -1)).pos
    torch.testing.assert_close(body.reshape(T, -1), c[:, C.BODY_POS], rtol=0, atol=1e-5)
    torch.testing.assert_close(c[:, C.BODY_POS][:, :3], c[:, C.ROOT_POS], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["001_demo_hold_1.pt", "013_demo_dribble_1.pt"])
def test_standing_on_not_in_the_floor(clips, name):
    c = clips[name].double()
    T = c.shape[0]
    fk = forward_kinematics(c[:, C.ROOT_POS], expmap_to_quat(c[:, C.ROOT_ROT]),
                            expmap_to_hinge(c[:, C.DOF].reshape(T, -1, 3), SKEL.hinge_orders).reshape(T, -1))
    low = data_gen.lowest_point(fk.pos, fk.rot)
    assert low.min() > -2e-3 and low.max() < 2e-3          # feet on the floor, not sunk or floating
    assert (c[:, C.OBJ_POS][:, 2] >= RADIUS - 1e-5).all()   # ball never below the floor


def test_hold_is_still_with_both_hands_on_the_ball(clips):
    clip = clips["001_demo_hold_1.pt"]
    assert (clip == clip[:1]).all()
    assert (clip[:, C.CONTACT] == 1).all()
    for side in "LR":
        assert hand_ball_distance(clip, side).max() < 0.15


def _bounces(z):
    """Indices i where the ball turns from falling to rising: the floor hit lies in (i, i+2)."""
    dz = z[1:] - z[:-1]
    return ((dz[:-1] < 0) & (dz[1:] > 0)).nonzero().flatten().tolist()


def test_dribble_ball_is_ballistic_between_contacts(clips):
    clip = clips["013_demo_dribble_1.pt"].double()
    z, contact = clip[:, C.OBJ_POS][:, 2], clip[:, C.CONTACT]
    acc = z[2:] - 2 * z[1:-1] + z[:-2]                       # acc[k]: frames k, k+1, k+2
    checked = (contact[:-2] == 0) & (contact[1:-1] == 0) & (contact[2:] == 0)
    for i in _bounces(z):
        checked[max(i - 1, 0):i + 2] = False                  # triples that straddle the floor hit
    assert checked.sum() >= 40
    torch.testing.assert_close(acc[checked], torch.full_like(acc[checked], -G * DT * DT), rtol=0, atol=2e-5)
    assert (clip[:, C.OBJ_POS][:, :2] - clip[0, C.OBJ_POS][:2]).abs().max() < 1e-6   # straight down and up
    # each free flight (contact 0) holds exactly one floor bounce; contact never touches the floor
    free = (contact == 0).tolist()
    for i in _bounces(z):
        assert free[i] and free[i + 1] and free[i + 2]
    runs = "".join("f" if f else "c" for f in free).split("c")
    assert len(_bounces(z)) == sum(1 for r in runs if r) and len(_bounces(z)) >= 2


def test_dribble_bounce_has_the_ball_restitution(clips):
    clip = clips["013_demo_dribble_1.pt"].double()
    z = clip[:, C.OBJ_POS][:, 2]
    i = _bounces(z)[0]                                         # floor hit between frames i and i+2
    # ballistic speeds at the floor from two samples well clear of the hit on each side
    v_down = (z[i - 1] - z[i - 2]) / DT - G * DT / 2          # at frame i-1
    v_up = (z[i + 4] - z[i + 3]) / DT + G * DT / 2            # at frame i+3
    s_in = math.sqrt(float(v_down) ** 2 + 2 * G * (float(z[i - 1]) - RADIUS))
    s_out = math.sqrt(float(v_up) ** 2 + 2 * G * (float(z[i + 3]) - RADIUS))
    assert s_out / s_in == pytest.approx(ObjectConfig().restitution, abs=0.01)


def test_dribble_hand_on_ball_when_in_contact(clips):
    clip = clips["013_demo_dribble_1.pt"]
    contact = clip[:, C.CONTACT] == 1
    right = hand_ball_distance(clip, "R")
    assert contact.sum() >= 40 and (~contact).sum() >= 40
    assert right[contact].max() < 0.15                     # palm on the ball
    assert right[~contact].min() > RADIUS                  # ball never inside the hand in flight
    assert hand_ball_distance(clip, "L").min() > 0.3       # the left hand stays out of it


def test_cli_regenerates_bit_identical_clips(tmp_path, clips):
    data_gen.main(["--out", str(tmp_path)])
    for name, clip in clips.items():
        assert torch.equal(torch.load(tmp_path / name, weights_only=True), clip)


# --------------------------------------------------------------------------- the box demo (a non-ball object)
BOX_DIR = DEMO_DIR.parent / "demo_box"
BOX_CLIP = "050_demo_boxlift_1.pt"


@pytest.fixture(scope="module")
def box_clip():
    return data_gen.build_clips("demo_box")[BOX_CLIP]


def test_box_clip_is_committed_and_is_the_generator_output(box_clip):
    assert sorted(p.name for p in BOX_DIR.glob("*.pt")) == [BOX_CLIP], \
        "regenerate with `python -m skillmimic.data_gen --dataset demo_box`"
    # to float32 rounding: another torch/numpy rounds one near-zero entry differently (measured
    # 1.8e-12 under torch 2.4); a stale committed clip differs by far more
    torch.testing.assert_close(torch.load(BOX_DIR / BOX_CLIP, weights_only=True), box_clip, rtol=0, atol=1e-6)
    assert int(BOX_CLIP[:3]) == 50


def test_box_object_config_is_the_generator_s():
    from omegaconf import OmegaConf

    yaml = REPO / "cfg" / "object" / "box_demo.yaml"
    obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ObjectConfig), OmegaConf.load(yaml)))
    assert obj == data_gen.box_object()
    assert (obj.shape, obj.size, obj.mass) == ("box", [0.18, 0.15, 0.22], 3.0)


def test_box_lift_from_the_floor_with_palms_on_the_side_faces(box_clip):
    p, obj = data_gen.BoxLiftParams(), data_gen.box_object()
    c = box_clip.double()
    T = c.shape[0]
    assert T == p.grip_frames + p.lift_frames + p.hold_frames and (c[:, C.CONTACT] == 1).all()
    assert torch.equal(c[:, C.ROOT_ROT_DUP], c[:, C.ROOT_ROT]) and not c[:, C.OBJ_ROT].any()
    box = c[:, C.OBJ_POS]
    half = torch.tensor(obj.size, dtype=torch.float64)
    assert (box[:p.grip_frames, 2] - half[2]).abs().max() < 1e-6          # standing on the floor
    assert (box[-p.hold_frames:, 2] - p.carry_height).abs().max() < 1e-6  # lifted and held
    assert (box[1:, 2] - box[:-1, 2]).min() >= 0 and (box[1:, 2] - box[:-1, 2]).max() < 0.03   # smooth, up only
    fk = forward_kinematics(c[:, C.ROOT_POS], expmap_to_quat(c[:, C.ROOT_ROT]),
                            expmap_to_hinge(c[:, C.DOF].reshape(T, -1, 3), SKEL.hinge_orders).reshape(T, -1))
    torch.testing.assert_close(fk.pos.reshape(T, -1), c[:, C.BODY_POS], rtol=0, atol=1e-5)
    for side in "LR":
        centre, normal = data_gen.palm_frame(fk.pos, side)
        d = centre - box
        # on a side (x) face: just outside it (the palm centre lies inside the hand), within the
        # face, palm facing into the box
        assert ((d[:, 0].abs() - half[0]) > 0.0).all() and ((d[:, 0].abs() - half[0]) < 0.035).all()
        assert (d[:, 1:].abs() < half[1:] - 0.02).all()
        assert ((normal * -d).sum(-1) / d.norm(dim=-1) > 0.9).all()
    feet = fk.pos[:, SKEL.indices(("L_Ankle", "L_Toe", "R_Ankle", "R_Toe"))]
    assert (feet - feet[:1]).norm(dim=-1).max() < 5e-3                   # planted
    assert data_gen.lowest_point(fk.pos, fk.rot).min() > -5e-3           # not in the floor


def test_box_lift_only_the_hands_touch_the_box(box_clip):
    """The clip posed in the scene with its box (MuJoCo geom distances, no physics): each
    hand is within 1.5 cm of the box in every frame; no other geom reaches 3 cm into it
    (the forearms come closest: ~2.5 cm in at the crouch)."""
    import mujoco

    from skillmimic.assets.mjcf import SceneConfig, build_scene_xml, scene_skeleton
    from skillmimic.motion import MotionLibrary
    from skillmimic.sim.base import SceneLayout
    from skillmimic.viz.scene import pose, qpos_from_state

    scene = SceneConfig(object=data_gen.box_object())
    model = mujoco.MjModel.from_xml_string(build_scene_xml(scene))
    data = mujoco.MjData(model)
    layout = SceneLayout.from_model(model, scene_skeleton(scene))
    lib = MotionLibrary(BOX_DIR, skeleton=scene_skeleton(scene))
    T = int(lib.clip_lengths[0])
    state = lib.get_frame_at(torch.zeros(T, dtype=torch.long), torch.arange(T)).state
    box = model.geom("object_geom").id
    geoms = {n: model.geom(f"{n}_geom").id for n in SKEL.names}
    hands = {side: [g for n, g in geoms.items() if n.startswith(side) and SKEL.index(n) >= SKEL.index(f"{side}_Wrist")
                    and SKEL.index(n) < SKEL.index(f"{side}_Wrist") + 16] for side in "LR"}
    others = [g for g in geoms.values() if not any(g in h for h in hands.values())]
    fromto = np.zeros(6)
    deepest = 0.0
    for t, qpos in enumerate(qpos_from_state(layout, state)):
        pose(model, data, qpos)
        for side, ids in hands.items():
            near = min(mujoco.mj_geomDistance(model, data, g, box, 0.1, fromto) for g in ids)
            assert near < 0.015, f"frame {t}: the {side} hand is {near:.3f} m from the box"
        deepest = min(deepest, min(mujoco.mj_geomDistance(model, data, g, box, 0.1, fromto) for g in others))
    assert deepest > -0.03
