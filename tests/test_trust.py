"""A run you can trust: no file ever runs code when loaded, resume keeps its run's own
configuration, a failed start leaves nothing behind, and the console says what happens.

Every file skillmimic loads is tried with a malicious pickle whose ``__reduce__`` would
create a marker file: the marker must never appear, and the error names the file and why.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skillmimic.checkpoint import CheckpointError, load_checkpoint
from skillmimic.rl.config import Config, ConfigError, check_override_keys

from helpers import DEMO, REPO, compose
FAST = ["num_envs=4", "train.network.units=[64,64]", "train.minibatch_size=64", "print_stats=true"]


class _Marker:
    """Unpickling calls ``open(marker, 'w')``: the file appears only if the pickle runs."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def evil(tmp_path):
    """``(make, marker)``: ``make(name, wrap)`` writes a malicious torch file into tmp_path."""
    marker = tmp_path / "MARKER_CODE_RAN"

    def make(name: str, wrap=lambda x: x) -> Path:
        path = tmp_path / name
        torch.save(wrap(_Marker(marker)), path)
        return path

    yield make, marker
    assert not marker.exists(), "a loaded file ran code"


def _refused(err: BaseException, path: Path) -> None:
    msg = str(err)
    assert str(path) in msg and "refused to load" in msg and "pickled" in msg, msg
    assert "\n" not in msg, "one line"


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- malicious files
def test_malicious_training_checkpoint_is_refused_everywhere(evil, tmp_path):
    from skillmimic.eval.app import evaluate_checkpoint
    from skillmimic.rl.runner import train

    make, marker = evil
    ckpt = make("evil.pth", lambda m: {"model": m, "optimizer": {}, "epoch": 1, "frame": 1})
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(ckpt)
    _refused(e.value, ckpt)
    assert "SKILLMIMIC_TRUST_LEGACY_CHECKPOINTS" in str(e.value)
    out = tmp_path / "runs"
    with pytest.raises(CheckpointError) as e:                                     # resume=
        train(compose([f"resume={ckpt}", f"output_dir={out}", *FAST]))
    _refused(e.value, ckpt)
    with pytest.raises(CheckpointError) as e:                                     # eval checkpoint=
        evaluate_checkpoint(compose([f"checkpoint={ckpt}", f"out_dir={out}"], "eval"))
    _refused(e.value, ckpt)
    with pytest.raises(CheckpointError) as e:                                     # llc_checkpoint=
        train(compose(["task=hlc_heading", "motion=demo", f"llc_checkpoint={ckpt}", f"output_dir={out}", *FAST]))
    _refused(e.value, ckpt)
    assert "llc_checkpoint" in str(e.value)
    assert not out.exists()


def test_malicious_history_encoder_and_motion_clip_are_refused(evil, tmp_path):
    from skillmimic.augment.history import FrozenHistoryEncoder, HistoryCheckpointError
    from skillmimic.motion import MotionFileError, MotionLibrary, load_clip

    make, _ = evil
    enc = make("enc.pt", lambda m: {"format": m})
    with pytest.raises(HistoryCheckpointError) as e:
        FrozenHistoryEncoder.load(enc)
    _refused(e.value, enc)
    (tmp_path / "clips").mkdir()
    clip = make("clips/001_evil.pt")
    with pytest.raises(MotionFileError) as e:
        load_clip(clip)
    _refused(e.value, clip)
    with pytest.raises(MotionFileError) as e:
        MotionLibrary(tmp_path / "clips")
    _refused(e.value, clip)


def test_malicious_history_encoder_through_training_leaves_nothing(evil, tmp_path):
    from skillmimic.augment.history import HistoryCheckpointError
    from skillmimic.rl.runner import train

    make, _ = evil
    enc = make("enc.pt")
    out = tmp_path / "runs"
    with pytest.raises(HistoryCheckpointError) as e:
        train(compose(["task=skill_v2", f"task.v2.hist_ckpt={enc}", "task.v2.state_switch_prob=0",
                       f"output_dir={out}", *FAST]))
    _refused(e.value, enc)
    assert not out.exists(), "a failed start leaves no run folder and no cache"


def test_cli_prints_one_line_for_a_malicious_checkpoint(evil):
    make, _ = evil
    ckpt = make("evil.pth", lambda m: {"model": m, "optimizer": {}, "epoch": 1, "frame": 1})
    # one process (start-up is slow); eval.py and the llc path share run_guarded and load_checkpoint
    proc = subprocess.run([sys.executable, "train.py", f"resume={ckpt}"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: checkpoint {ckpt}: refused to load"), proc.stderr


def test_legacy_pickled_checkpoint_loads_only_with_the_explicit_opt_in(tmp_path, monkeypatch):
    import numpy as np

    legacy = tmp_path / "legacy.pth"      # format 1 stored numpy's RNG state as pickled numpy objects
    torch.save({"model": {}, "optimizer": {}, "epoch": 1, "frame": 1, "rng": {"numpy": np.random.get_state()}},
               legacy)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(legacy)
    monkeypatch.setenv("SKILLMIMIC_TRUST_LEGACY_CHECKPOINTS", "1")
    with pytest.warns(UserWarning, match="SKILLMIMIC_TRUST_LEGACY_CHECKPOINTS"):
        assert load_checkpoint(legacy)["rng"]["numpy"][0] == "MT19937"


def test_rng_state_round_trips_through_tensors():
    import random

    import numpy as np

    from skillmimic.rl.agent import rng_state, set_rng_state

    random.gauss(0, 1)                                   # a cached Gaussian in Python's state
    np.random.standard_normal()
    state = rng_state()
    expect = (torch.rand(3), np.random.rand(3), random.random(), random.gauss(0, 1))
    torch.rand(5), np.random.rand(5), random.random()
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    set_rng_state(torch.load(buf, weights_only=True))    # plain tensors/numbers only
    got = (torch.rand(3), np.random.rand(3), random.random(), random.gauss(0, 1))
    assert torch.equal(got[0], expect[0]) and np.array_equal(got[1], expect[1]) and got[2:] == expect[2:]


# --------------------------------------------------------------------------- resume, failed start
@pytest.fixture(scope="module")
def own_motion_run(tmp_path_factory):
    """2 epochs on a motion folder that is not the default (one demo clip copied to tmp)."""
    if not DEMO.exists():
        pytest.skip("demo clips absent")
    from skillmimic.rl.runner import train

    root = tmp_path_factory.mktemp("own")
    motion = root / "clips"
    motion.mkdir()
    src = sorted(DEMO.glob("*.pt"))[0]
    (motion / src.name).write_bytes(src.read_bytes())
    n = torch.get_num_threads()
    try:
        result = train(compose([f"motion.path={motion}", f"output_dir={root / 'runs'}", "max_epochs=2",
                                "seed=7", *FAST]))
    finally:
        torch.set_num_threads(n)
    return result, motion


def _files(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def test_resume_restores_the_runs_configuration(own_motion_run, capsys):
    from omegaconf import OmegaConf

    from skillmimic.rl.runner import train

    run, motion = own_motion_run
    assert torch.load(run.checkpoint, weights_only=True)["format"] == 2
    args = [f"resume={run.checkpoint}", "max_epochs=3"]          # no motion=, no network, no num_envs
    capsys.readouterr()
    result = train(compose(args), args)
    out = capsys.readouterr().out
    assert result.epoch == 3 and result.run_dir == run.run_dir
    resumed = [f for f in run.run_dir.glob("config_resume_*.yaml")]
    assert len(resumed) == 1
    cfg = OmegaConf.load(resumed[0])
    assert Path(cfg.motion.path) == motion and cfg.num_envs == 4 and list(cfg.train.network.units) == [64, 64]
    assert cfg.seed == 7 and cfg.max_epochs == 3
    assert "changed on the command line: max_epochs: 2 -> 3" in out
    # rl-games' construction prints are gone; the progress line has elapsed time, ETA, fps, reward
    for noise in ("self.seed", "Exact experiment name", "seq_length", "RunningMeanStd", "current training device"):
        assert noise not in out, noise
    line = next(ln for ln in out.splitlines() if ln.startswith("epoch 3/3"))
    assert "elapsed" in line and "eta 0s" in line and "fps" in line and "episode reward" in line
    assert "s in all (start-up" in out


def test_resume_overrides_change_only_what_they_name(own_motion_run, capsys):
    from skillmimic.rl.runner import resume_config, to_config

    run, motion = own_motion_run
    args = [f"resume={run.checkpoint}", "task.episode_length=50", "train.learning_rate=1e-4", "task=skill"]
    capsys.readouterr()
    cfg = resume_config(to_config(compose(args)), run.checkpoint, load_checkpoint(run.checkpoint), args)
    assert cfg.task.name == "skill" and cfg.task.episode_length == 50 and cfg.train.learning_rate == 1e-4
    assert Path(cfg.motion.path) == motion and cfg.num_envs == 4 and cfg.train.network.units == [64, 64]
    assert cfg.resume == str(run.checkpoint) and cfg.seed == 7
    out = capsys.readouterr().out
    assert "task.episode_length:" in out and "-> 50" in out and "train.learning_rate: 2e-05 -> 0.0001" in out
    assert "num_envs" not in out and "motion.path" not in out


def test_resume_of_another_task_fails_before_anything_is_built(own_motion_run, tmp_path):
    from skillmimic.rl.runner import train

    run, _ = own_motion_run
    before = _files(run.run_dir)
    args = [f"resume={run.checkpoint}", "task=skill_v2"]
    with pytest.raises(ConfigError) as e:
        train(compose(args), args)
    msg = str(e.value)
    assert "trained with task=skill, not task=skill_v2" in msg and f"python train.py resume={run.checkpoint}" in msg
    assert _files(run.run_dir) == before


def test_failed_resume_leaves_the_run_folder_as_it_was(own_motion_run):
    from skillmimic.rl.runner import train

    run, _ = own_motion_run
    before = _files(run.run_dir)
    args = [f"resume={run.checkpoint}", "train.network.units=[32]"]      # builds the env, then cannot restore
    with pytest.raises(CheckpointError, match="does not fit this model") as e:
        train(compose(args), args)
    assert "\n" not in str(e.value)
    assert _files(run.run_dir) == before, "no config_resume_*.yaml, no new tfevents file"


def test_failed_start_on_bad_motion_leaves_no_run_folder(tmp_path, monkeypatch):
    from skillmimic.motion import MotionFileError
    from skillmimic.rl import runner

    if not DEMO.exists():
        pytest.skip("demo clips absent")
    clips = tmp_path / "clips"
    clips.mkdir()
    src = sorted(DEMO.glob("*.pt"))[0]
    (clips / ("099" + src.name[3:])).write_bytes(src.read_bytes())
    out = tmp_path / "runs"
    with pytest.raises(MotionFileError, match="skill label 99"):          # from the file name, before any work
        runner.train(compose([f"motion.path={clips}", f"output_dir={out}", *FAST]))
    assert not out.exists()
    (clips / ("099" + src.name[3:])).unlink()
    clip = torch.load(src, weights_only=True)
    clip[5, 1] = 1e30
    torch.save(clip, clips / src.name)
    with pytest.raises(MotionFileError, match="implausible value 1e\\+30 at frame 5, column 1"):  # while building
        runner.train(compose([f"motion.path={clips}", f"output_dir={out}", *FAST]))
    assert not out.exists()
    torch.save(torch.load(src, weights_only=True), clips / src.name)

    def fail(*_):   # the last step of a start: rl-games has made the run folder and a tensorboard file by now
        raise RuntimeError("disk full")

    monkeypatch.setattr(runner, "_write_run_config", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        runner.train(compose([f"motion.path={clips}", f"output_dir={out}", *FAST]))
    assert not out.exists()


# --------------------------------------------------------------------------- console
@pytest.mark.parametrize("override, hint", [
    ("num_env=8", "did you mean num_envs?"),
    ("+num_env=8", "did you mean num_envs?"),
    ("train.learnig_rate=1", "did you mean train.learning_rate?"),
    ("train.network.unit=[1]", "did you mean train.network.units?"),
    ("sim.scene.physics.timestep_x=1", "sim.scene.physics"),
])
def test_unknown_keys_suggest_the_closest(override, hint):
    with pytest.raises(ConfigError) as e:
        check_override_keys([override], Config)
    assert hint in str(e.value) and override in str(e.value)


def test_v2_or_hlc_keys_without_their_task_name_the_task():
    with pytest.raises(ConfigError, match=r"task=skill has no task.v2 settings.*task=skill_v2"):
        check_override_keys(["task.v2.reweight=false"], Config)
    with pytest.raises(ConfigError, match=r"task=skill_v2 has no task.hlc settings.*task=hlc_layup"):
        check_override_keys(["task=skill_v2", "task.hlc.llc_steps=5"], Config)
    check_override_keys(["task=skill_v2", "task.v2.reweight=false"], Config)
    check_override_keys(["task=hlc_layup", "task.hlc.llc_steps=5"], Config)


def test_known_keys_and_hydra_arguments_pass():
    from skillmimic.eval.app import EvalConfig

    check_override_keys(["task=skill_v2", "motion=ballplay_layup", "task.v2.reweight=false", "num_envs=8",
                         "hydra.run.dir=x", "--cfg", "job", "+sim.scene.hoop=true", "resume=a=b.pth",
                         "train.network.units=[1,2]"], Config)
    check_override_keys(["checkpoint=x.pth", "eval.rounds=3"], EvalConfig)
    with pytest.raises(ConfigError, match="did you mean checkpoint"):
        check_override_keys(["checkpont=x.pth"], EvalConfig)


def test_ctrl_c_and_user_errors_exit_with_one_line(capsys):
    from skillmimic.cli import run_guarded

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        run_guarded(interrupted)
    assert e.value.code == 130 and capsys.readouterr().err.strip() == "[skillmimic] run interrupted (Ctrl-C)"

    def bad():
        raise ConfigError("num_envs must be >= 1, got 0")

    with pytest.raises(SystemExit) as e:
        run_guarded(bad)
    assert e.value.code == 2 and capsys.readouterr().err.strip() == "error: num_envs must be >= 1, got 0"


def test_mjwarp_on_cpu_warns(capsys):
    from omegaconf import OmegaConf

    from skillmimic.rl.runner import _warn_slow_setup

    cfg = OmegaConf.to_object(compose(["sim=mjwarp", "device=cpu"]))
    _warn_slow_setup(cfg)
    assert "8x slower" in capsys.readouterr().out
    _warn_slow_setup(OmegaConf.to_object(compose([])))
    assert capsys.readouterr().out == ""


def test_progress_durations():
    from skillmimic.rl.agent import format_duration

    assert [format_duration(s) for s in (0, 59.4, 75.3, 3599, 3725)] == ["0s", "59s", "1m15s", "59m59s", "1h02m"]
