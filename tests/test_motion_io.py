"""Clip files: loading, validation messages, discovery and ordering, labels."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.serialization

from skillmimic.motion import MotionFileError, MotionLibrary, find_clips, load_clip
from skillmimic.motion.io import clip_label, clip_sort_key, skill_name

from helpers import DEMO, SHARED_MOTIONS as DATA


def _clip(frames: int = 6) -> torch.Tensor:
    x = torch.rand(frames, 337) + 0.1   # no all-zero (missing) frames
    x[:, 336] = 1.0
    return x


def _save(tmp_path: Path, obj, name: str = "001_test_0.pt") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _raises(path: Path, *fragments: str) -> str:
    with pytest.raises(MotionFileError) as info:
        load_clip(path)
    msg = str(info.value)
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


# ---------------------------------------------------------------- load_clip
def test_valid_clip_loads_as_float32_cpu(tmp_path):
    x = _clip(7).double()
    out = load_clip(_save(tmp_path, x))
    assert out.dtype == torch.float32 and out.device.type == "cpu" and out.shape == (7, 337)
    torch.testing.assert_close(out, x.float())


def test_clip_saved_on_cuda_loads_on_cpu(tmp_path, monkeypatch):
    """Forge a file whose storages are tagged 'cuda:0' (what the release contains): it
    only loads on a CPU-only machine if the loader passes map_location."""
    registry = list(torch.serialization._package_registry)
    monkeypatch.setattr(torch.serialization, "_package_registry",
                        [(0, lambda storage: "cuda:0", lambda storage, loc: None)] + registry)
    path = _save(tmp_path, _clip())
    monkeypatch.setattr(torch.serialization, "_package_registry", registry)
    assert b"cuda:0" in path.read_bytes()
    assert load_clip(path).device.type == "cpu"


@pytest.mark.parametrize("obj, kind", [
    ({"motion": torch.zeros(3, 337)}, "dict"),
    ("a string", "str"),
    ([torch.zeros(3, 337)], "list"),
])
def test_not_a_tensor(tmp_path, obj, kind):
    _raises(_save(tmp_path, obj), "not a tensor", kind)


def test_pickle_of_something_else(tmp_path):
    path = tmp_path / "001_pickled.pt"
    path.write_bytes(pickle.dumps(Path("x"), protocol=2))
    _raises(path, "refused to load", "pathlib")


def test_truncated_file(tmp_path):
    path = _save(tmp_path, _clip(50))
    path.write_bytes(path.read_bytes()[:300])
    _raises(path, "cannot be read", "truncated, corrupt")


def test_garbage_bytes(tmp_path):
    path = tmp_path / "001_garbage.pt"
    path.write_bytes(b"\x00\x01 this is not a torch file \xff" * 20)
    _raises(path, "cannot be read", "truncated, corrupt")


def test_empty_file(tmp_path):
    path = tmp_path / "001_empty.pt"
    path.write_bytes(b"")
    _raises(path, "file is empty")


@pytest.mark.parametrize("shape", [(10, 336), (10, 338), (337,), (2, 10, 337)])
def test_wrong_shape(tmp_path, shape):
    msg = _raises(_save(tmp_path, torch.ones(shape)), "wrong shape", "(T, 337)", str(tuple(shape)))
    assert "zero frames" not in msg


def test_zero_frames(tmp_path):
    _raises(_save(tmp_path, torch.zeros(0, 337)), "zero frames")


def test_nan_names_frame_and_column(tmp_path):
    x = _clip(10)
    x[4, 40] = float("nan")
    x[8, 2] = float("nan")
    _raises(_save(tmp_path, x), "NaN", "frame 4", "column 40", "joint rotations", "2 non-finite")


def test_inf_names_frame_and_column(tmp_path):
    x = _clip(10)
    x[3, 325] = -float("inf")
    _raises(_save(tmp_path, x), "inf", "frame 3", "column 325", "object position")


def test_all_frames_missing(tmp_path):
    _raises(_save(tmp_path, torch.zeros(5, 337)), "missing")


def test_missing_file(tmp_path):
    _raises(tmp_path / "001_nope.pt", "does not exist")


def test_complex_dtype(tmp_path):
    _raises(_save(tmp_path, torch.ones(3, 337, dtype=torch.complex64)), "dtype")


# ---------------------------------------------------------------- discovery, labels
def test_find_clips_recursive_and_sorted_by_trailing_int(tmp_path):
    names = ["a/001_x_10.pt", "b/c/001_y_2.pt", "002_z.pt", "a/003_w_2.pt", "001_v_0.pt"]
    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        torch.save(_clip(), tmp_path / n)
    (tmp_path / "notes.txt").write_text("ignored")
    found = [p.relative_to(tmp_path).as_posix() for p in find_clips(tmp_path)]
    # -1 (no trailing int) first, then 0, 2 (tie broken by path), 10
    assert found == ["002_z.pt", "001_v_0.pt", "a/003_w_2.pt", "b/c/001_y_2.pt", "a/001_x_10.pt"]
    assert clip_sort_key("x/001_pick_0028.pt")[0] == 28
    assert clip_sort_key("009_dribble2shot.pt")[0] == -1


def test_find_clips_file_and_list(tmp_path):
    a = _save(tmp_path, _clip(), "001_a_5.pt")
    b = _save(tmp_path, _clip(), "002_b_1.pt")
    assert find_clips(a) == [a]
    assert find_clips([a, b, a]) == [b, a]


def test_empty_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(MotionFileError, match="no clips") as info:
        find_clips(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(MotionFileError, match="no clips"):
        MotionLibrary(tmp_path)


def test_nonexistent_path(tmp_path):
    with pytest.raises(MotionFileError, match="does not exist") as info:
        find_clips(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


def test_labels_and_skill_names():
    assert clip_label("x/pick_40/001_007pickle_pick_000.pt") == 1
    assert clip_label("034_layup.pt") == 34
    assert skill_name("data/pick_40/001_007pickle_pick_000.pt") == "pick_40"


@pytest.mark.parametrize("name", ["pick_001.pt", "01_pick.pt", "0a1_pick.pt"])
def test_bad_label(tmp_path, name):
    path = _save(tmp_path, _clip(), name)
    with pytest.raises(MotionFileError, match="label") as info:
        clip_label(path)
    assert name in str(info.value)
    with pytest.raises(MotionFileError, match="label"):
        MotionLibrary(path)


def test_library_reports_the_bad_file_among_good_ones(tmp_path):
    _save(tmp_path, _clip(), "001_good_1.pt")
    bad = _save(tmp_path, torch.ones(4, 12), "002_bad_2.pt")
    with pytest.raises(MotionFileError, match="wrong shape") as info:
        MotionLibrary(tmp_path)
    assert str(bad) in str(info.value)


# ---------------------------------------------------------------- shared data
def test_all_shared_clips_load():
    if not DATA.is_dir():
        pytest.skip(f"shared motion data not found at {DATA}")
    files = find_clips(DATA)
    assert len(files) >= 100
    for f in files:
        clip = load_clip(f)
        assert clip.shape[1] == 337 and clip.shape[0] > 0
        assert 0 <= clip_label(f) < 64


# ---------------------------------------------------------------- plausibility (real clips, modified)
def _real_clip() -> Path:
    for folder in (DATA / "BallPlay-M" / "layup", DEMO):
        clips = sorted(folder.glob("*.pt")) if folder.exists() else []
        if clips:
            return clips[0]
    pytest.skip("no real clip present")


@pytest.mark.parametrize("label, ok", [(63, True), (64, False), (99, False), (999, False)])
def test_label_must_fit_the_skill_one_hot(tmp_path, label, ok):
    src = _real_clip()
    path = tmp_path / f"{label:03d}_x.pt"
    path.write_bytes(src.read_bytes())
    if ok:
        assert MotionLibrary(tmp_path).clip_labels.tolist() == [label]
        return
    with pytest.raises(MotionFileError) as e:
        MotionLibrary(tmp_path)
    msg = str(e.value)
    assert str(path) in msg and f"skill label {label}" in msg and "below 64" in msg and "\n" not in msg


@pytest.mark.parametrize("col, value, name, unit", [(2, 1e30, "root position", "m"), (200, -101.0, "body positions", "m"),
                                                    (325, 150.0, "object position", "m"),
                                                    (40, 1e3, "joint rotations", "rad"),
                                                    (4, -1e6, "root rotation", "rad")])
def test_values_beyond_physical_bounds_are_named(tmp_path, col, value, name, unit):
    clip = torch.load(_real_clip(), map_location="cpu", weights_only=True).float()
    clip[7, col] = value
    path = _save(tmp_path, clip)
    _raises(path, "implausible value", "frame 7", f"column {col}", f"({name})", f"+-100 {unit}")


def test_contact_flag_outside_unit_range(tmp_path):
    clip = torch.load(_real_clip(), map_location="cpu", weights_only=True).float()
    clip[3, 336] = 2.0
    _raises(_save(tmp_path, clip), "contact flag 2", "frame 3", "column 336")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_integer_or_other_non_float_tensors_are_refused(tmp_path, dtype):
    clip = torch.load(_real_clip(), map_location="cpu", weights_only=True)
    _raises(_save(tmp_path, clip.to(dtype)), "unsupported dtype", str(dtype), "floating point")


def test_duplicate_clips_warn_naming_both(tmp_path):
    src = _real_clip()
    a, b = tmp_path / "a" / src.name, tmp_path / "b" / src.name
    for p in (a, b):
        p.parent.mkdir()
    a.write_bytes(src.read_bytes())
    torch.save(torch.load(src, map_location="cpu", weights_only=True).clone(), b)   # other bytes, same values
    with pytest.warns(UserWarning, match="duplicate another clip") as w:
        lib = MotionLibrary(tmp_path)
    assert lib.num_clips == 2
    msg = str(w[0].message)
    assert str(a) in msg and str(b) in msg
