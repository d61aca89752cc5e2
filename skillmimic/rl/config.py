"""Typed training configuration: the schema behind the hydra tree in ``cfg/``.

Why dataclasses and not free-form YAML: hydra merges every YAML file and command-line
override into these typed nodes, so a misspelt key (``python train.py num_env=8``) or a
wrong type fails before anything is built, and the nodes convert straight into the
library's own dataclasses (:class:`~envs.skill.SkillEnvConfig`,
:class:`~skillmimic.assets.mjcf.SceneConfig`, :class:`~skillmimic.rewards.RewardWeights`)
instead of raw dicts travelling through the code.

One source of truth: these dataclasses (and the ones they nest) hold every default; a YAML
file under ``cfg/`` carries only what its option changes (tests/test_config_defaults.py).

Groups (``cfg/<group>/<option>.yaml``): ``task`` (:class:`TaskConfig`), ``train``
(:class:`PPOConfig`), ``sim`` (:class:`SimConfig`), ``motion`` (:class:`MotionConfig`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from omegaconf import MISSING

from envs.hlc.config import HLCConfig
from envs.registry import TaskSpec, task_spec
from envs.skill import SkillEnvConfig
from skillmimic.augment.env_hook import AUTO, V2Config
from skillmimic.assets.mjcf import SceneConfig, scene_skeleton
from skillmimic.assets.objects import LEGACY_SCENE_KEY, upgrade_legacy_scene
from skillmimic.rewards import RewardWeights

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "cfg"


class ConfigError(ValueError):
    """A configuration value cannot work; raised before any environment or network is built."""


@dataclass
class TaskConfig:
    """The ``task`` node: which registered task (``env``, :mod:`envs.registry`) and its
    settings. Converts to that task's env config (:meth:`env_config`; ``num_envs`` and
    ``seed`` come from the top level, so they are set in one place only)."""

    name: str = "skill"
    # The registered task this node configures (envs.registry.task_names()): skill,
    # hlc_heading, hlc_circling, hlc_throwing, hlc_layup, or one a task module adds.
    env: str = "skill"
    # The original's training budget for this task (V1 skill 50,000; the task files set V2
    # 20,000, HLC 2,000 / layup 6,000): the default of the top-level ``max_epochs``.
    max_epochs: int = 50000
    episode_length: int = SkillEnvConfig.episode_length
    # "random" (RSI) or a start frame >= 2, e.g. task.state_init=10. A str, not Union[str, int]:
    # OmegaConf 2.3's union nodes break inside hydra's defaults-list merge.
    state_init: str = str(SkillEnvConfig.state_init)
    enable_early_termination: bool = SkillEnvConfig.enable_early_termination
    termination_height: float = SkillEnvConfig.termination_height
    action_scale: float = SkillEnvConfig.action_scale
    reward: RewardWeights = field(default_factory=RewardWeights)
    # V2 label rules: body-only reward (and the ball put aside) for these skills; no early
    # termination for those (see SkillEnvConfig).
    body_only_labels: List[int] = field(default_factory=lambda: list(SkillEnvConfig.body_only_labels))
    no_termination_labels: List[int] = field(default_factory=lambda: list(SkillEnvConfig.no_termination_labels))
    # SkillMimic-V2 mechanisms (STG, STF, ATS, history encoder; cfg/task/skill_v2.yaml);
    # null: none of them, the V1 baseline env.
    v2: Optional[V2Config] = None
    # High-level controller over a frozen skill policy (cfg/task/hlc_*.yaml, envs/hlc/):
    # the skill vocabulary and the tasks' parameters; null for the other tasks.
    hlc: Optional[HLCConfig] = None
    # Settings of a task's own env config that this schema has no field for (a task module's
    # knobs, set in its YAML without touching this file): field name -> value.
    params: Dict[str, Any] = field(default_factory=dict)

    def parsed_state_init(self) -> str | int:
        s = str(self.state_init).strip()
        if s == "random":
            return s
        try:
            frame = int(s)
        except ValueError:
            raise ConfigError(f"task.state_init must be 'random' or a frame index >= 2, got {self.state_init!r}") from None
        if frame < 2:
            raise ConfigError(f"task.state_init must be >= 2 (frames 0 and 1 have no velocity), got {frame}")
        return frame

    def spec(self) -> TaskSpec:
        """The registered task of this node (ConfigError naming the registered ones)."""
        try:
            return task_spec(self.env)
        except ValueError as e:
            raise ConfigError(f"task.env: {e}") from None

    def env_config(self, num_envs: int, seed: Optional[int]):
        """The env config of the registered task (:meth:`spec`): its ``config_type`` filled by
        :func:`copy_fields` from this node's same-named fields (the start frame parsed), then
        ``params`` (a task module's own knobs), then the task's fixed ``config_values``."""
        spec = self.spec()
        names = {f.name for f in dataclasses.fields(spec.config_type)}
        unknown = sorted(set(self.params) - names)
        if unknown:
            raise ConfigError(f"task.params: {', '.join(unknown)} not settings of task {spec.name} "
                              f"({spec.config_type.__name__}: {', '.join(sorted(names))})")
        values = {"num_envs": num_envs, "seed": seed, "state_init": self.parsed_state_init(), **self.params,
                  **spec.config_values}
        return copy_fields(spec.config_type, self, **values)


def copy_fields(schema: type, source: Any, **values: Any):
    """An instance of the dataclass ``schema``: each field from ``values``, else from the
    same-named attribute of ``source`` unless that is None (a section the node does not have;
    a deep copy; a list becomes a tuple where the schema's default is a tuple), else the
    schema's default.

    Why by name: a config node and the object it configures share their field names, so a
    new field is added to both and needs no converter edit."""
    kwargs = {}
    for f in dataclasses.fields(schema):
        if f.name in values:
            kwargs[f.name] = values[f.name]
        elif getattr(source, f.name, None) is not None:
            value = copy.deepcopy(getattr(source, f.name))
            kwargs[f.name] = tuple(value) if isinstance(value, list) and isinstance(f.default, tuple) else value
    return schema(**kwargs)


@dataclass
class NetworkConfig:
    """``skillmimic_mlp``: separate actor and critic MLPs, linear mu head, fixed log-std."""

    units: List[int] = field(default_factory=lambda: [1024, 512, 512])
    activation: str = "relu"
    log_std: float = -2.9            # sigma = exp(-2.9) = 0.055, constant (not learned)


@dataclass
class PPOConfig:
    """PPO (rl-games) settings; defaults are the original skill policy's (facts §5)."""

    name: str = "ppo_skill"
    learning_rate: float = 2e-5
    lr_schedule: str = "constant"        # constant | linear | adaptive (rl-games' KL-adaptive)
    kl_threshold: float = 0.008          # only for lr_schedule=adaptive
    horizon_length: int = 32
    # Minibatches per PPO mini-epoch (the rollout horizon * num_envs split evenly), e.g. 4: the
    # original's rule minibatch = 8 * num_envs at horizon 32, at any env count. None: the whole
    # rollout as one minibatch, capped at ``minibatch_cap`` (the largest divisor of the rollout
    # not above it) -- 1 per mini-epoch at CPU env counts, 4 at 2048 envs. See docs/training.md.
    num_minibatches: Optional[int] = None
    minibatch_size: Optional[int] = None # an explicit size instead (exclusive with num_minibatches)
    minibatch_cap: int = 16384
    mini_epochs: int = 6
    gamma: float = 0.99
    tau: float = 0.95                    # GAE lambda
    e_clip: float = 0.2
    critic_coef: float = 5.0             # loss = actor + critic_coef * critic + bounds_loss_coef * bound
    entropy_coef: float = 0.0
    bounds_loss_coef: float = 10.0
    clip_value: bool = False
    truncate_grads: bool = False
    grad_norm: float = 1.0               # only with truncate_grads
    normalize_input: bool = True
    normalize_value: bool = True
    normalize_advantage: bool = True
    value_bootstrap: bool = True         # bootstrap the value on time-outs (not on falls)
    save_frequency: int = 10             # epochs between (atomic) rewrites of nn/<experiment>.pth
    keep_checkpoint_every: int = 0       # >0: also keep nn/<experiment>_e<epoch>.pth every this many epochs
    games_to_track: int = 100            # episodes in the running mean reward / length
    torch_compile: bool = False          # rl-games' torch.compile of the model (slow start on CPU)
    network: NetworkConfig = field(default_factory=NetworkConfig)


@dataclass
class SimConfig:
    """Physics engine and scene. ``backend`` goes through :func:`skillmimic.sim.make_simulator`."""

    backend: str = "mujoco"              # mujoco (C, CPU threads) | mjwarp (MuJoCo Warp, CUDA)
    num_threads: int = 0                 # mujoco only: 0 = one per CPU core (capped at num_envs)
    # body poses/velocities: the shared torch FK ("torch") or the engine's own ("mujoco" for the C
    # engine, "warp" for MuJoCo Warp); "auto": each backend's default (skillmimic.sim.base.BODY_KINEMATICS)
    body_kinematics: str = "auto"
    scene: SceneConfig = field(default_factory=SceneConfig)

    def sim_kwargs(self) -> Dict[str, Any]:
        threads = {"num_threads": self.num_threads} if self.backend == "mujoco" else {}
        return {**threads, "body_kinematics": self.body_kinematics}


@dataclass
class MotionConfig:
    """Reference motion: one ``.pt`` clip or a folder searched recursively.

    A relative ``path`` is looked up in the working directory, then under the repository
    root (so ``data/motions/demo`` works from anywhere)."""

    name: str = MISSING
    path: str = MISSING
    # Caps the task's budget for this data, e.g. the embedded demo clips: a CPU try-out, not a
    # real training run. None: no cap.
    max_epochs: Optional[int] = None


@dataclass
class Config:
    task: TaskConfig = MISSING
    train: PPOConfig = MISSING
    sim: SimConfig = MISSING
    motion: MotionConfig = MISSING
    num_envs: int = 16
    device: str = "cpu"                  # cpu | cuda | cuda:<i>; env tensors and PPO on the same device
    seed: int = 42                       # -1: draw one (printed and saved with the run)
    # Total PPO epochs, counted across resumes; -1: no limit. None: the task's budget
    # (task.max_epochs), capped by the motion's (motion.max_epochs); see resolve_max_epochs.
    max_epochs: Optional[int] = None
    experiment: str = "skill"
    output_dir: str = "outputs"          # runs go to <output_dir>/<experiment>/<timestamp>/{nn,summaries}
    resume: Optional[str] = None         # path to a checkpoint (.pth) to continue from
    llc_checkpoint: Optional[str] = None # HLC tasks: the frozen skill policy (a skill training checkpoint)
    print_stats: bool = True             # one console line per epoch
    # Several processes: launch with torchrun (one process per GPU), e.g.
    #   torchrun --nproc_per_node=4 train.py multi_gpu=true device=cuda sim=mjwarp num_envs=4096
    # Each rank simulates num_envs worlds on cuda:<LOCAL_RANK> (NCCL) or on the CPU (device=cpu,
    # gloo) with seed + RANK; gradients are all-reduced; rank 0 logs and writes checkpoints.
    multi_gpu: bool = False
    # CPU threads for torch ops. 1 by default: MuJoCo steps the worlds on its own threads, and
    # torch's OpenMP pool spin-waits badly on a busy 2-core machine (5-8x slower measured).
    torch_threads: int = 1
    # CPU threads for torch during the PPO update (0: one per core). The simulator's threads
    # are idle then, so the update may use every core; stepping goes back to torch_threads.
    torch_update_threads: int = 0


#: Keys older runs saved in their run configuration that this schema no longer has (``headless``:
#: never read). Dropped when such a configuration is loaded, so old checkpoints still resume and evaluate.
RETIRED_KEYS: tuple[str, ...] = ("headless",)


def load_run_config(text: str):
    """A run configuration saved with a checkpoint (YAML text) merged onto the schema, as a
    typed DictConfig; keys in :data:`RETIRED_KEYS` are dropped first, and a ball-era scene
    (:data:`~skillmimic.assets.objects.LEGACY_SCENE_KEY`) becomes the same scene's
    ``sim.scene.object`` (:func:`~skillmimic.assets.objects.upgrade_legacy_scene`)."""
    from omegaconf import OmegaConf

    saved = OmegaConf.create(text)
    for key in RETIRED_KEYS:
        saved.pop(key, None)
    hlc = OmegaConf.select(saved, "task.hlc")
    if hlc is not None and "task" in hlc:     # before the task registry, task.hlc.task named the HLC task
        name = hlc.pop("task")
        if OmegaConf.select(saved, "task.env") is None:
            saved.task.env = f"hlc_{name}"
    scene = OmegaConf.select(saved, "sim.scene")
    if scene is not None:
        try:
            OmegaConf.update(saved, "sim.scene", upgrade_legacy_scene(OmegaConf.to_container(scene)), merge=False)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return OmegaConf.merge(OmegaConf.structured(Config), saved)


def register_configs() -> None:
    """Put the schema into hydra's ConfigStore (``cfg/config.yaml`` lists it first in its defaults)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="skillmimic_config", node=Config)


# --------------------------------------------------------------------------- validation
def override_key(override: str) -> str:
    """The dotted key of a hydra command-line override (``+a.b=1`` -> ``a.b``)."""
    return override.split("=", 1)[0].lstrip("+~").strip()


def _field_types(schema: type) -> dict:
    """Field name -> type of a dataclass, ``Optional[X]`` unwrapped to ``X``."""
    import typing

    hints = typing.get_type_hints(schema)
    out = {}
    for f in dataclasses.fields(schema):
        t = hints.get(f.name)
        args = [a for a in typing.get_args(t) if a is not type(None)] if typing.get_origin(t) is typing.Union else []
        out[f.name] = args[0] if len(args) == 1 else t
    return out


def check_override_keys(overrides: list[str], schema: type = Config) -> None:
    """Raise :class:`ConfigError` for a command-line override whose key the schema lacks,
    with the closest existing key ("did you mean num_envs?").

    hydra's own message for ``num_env=8`` advises ``+num_env=8``, which only fails later."""
    import difflib

    for ov in overrides:
        if ov.startswith("-") or "=" not in ov:
            continue                                   # hydra flags (--cfg job, -m) and their values
        key = override_key(ov)
        if not key or key.startswith("hydra") or "/" in key or "@" in key:
            continue
        if key == LEGACY_SCENE_KEY or key.startswith(LEGACY_SCENE_KEY + "."):
            raise ConfigError(f"{ov!r}: {LEGACY_SCENE_KEY} is now sim.scene.object (the object entity, "
                              f"skillmimic/assets/objects.py: shape, size, mass, friction, ...; "
                              f"the ball's radius is sim.scene.object.size=[r])")
        t, done = schema, []
        for part in key.split("."):
            if not dataclasses.is_dataclass(t):
                break                                  # a dict / list / value: not checked further
            fields = _field_types(t)
            if part not in fields:
                near = difflib.get_close_matches(part, list(fields), n=1, cutoff=0.6)
                prefix = "".join(p + "." for p in done)
                hint = f"; did you mean {prefix}{near[0]}?" if near else \
                    f" ({'keys of ' + prefix.rstrip('.') if done else 'top-level keys'}: {', '.join(fields)})"
                raise ConfigError(f"unknown config key {key!r} in {ov!r}{hint}")
            done.append(part)
            t = fields[part]
        _check_optional_section(key, ov, overrides)


def _check_optional_section(key: str, ov: str, overrides: list[str]) -> None:
    """``task.v2.x=...`` / ``task.hlc.x=...`` when the chosen task has no such section: hydra
    would fail with an AssertionError traceback; name the task that has it instead."""
    parts = key.split(".")
    if len(parts) < 3 or parts[0] != "task" or parts[1] not in ("v2", "hlc"):
        return
    from omegaconf import OmegaConf

    chosen = [o.split("=", 1)[1].strip() for o in overrides if "=" in o and override_key(o) == "task"]
    name = chosen[-1] if chosen else "skill"           # cfg/config.yaml's default task
    path = CONFIG_DIR / "task" / f"{name}.yaml"
    if not path.is_file() or OmegaConf.load(path).get(parts[1]) is not None:
        return
    having = sorted(f.stem for f in (CONFIG_DIR / "task").glob("*.yaml") if OmegaConf.load(f).get(parts[1]) is not None)
    raise ConfigError(f"{ov!r}: task={name} has no task.{parts[1]} settings; add the task that has them "
                      f"({' or '.join('task=' + h for h in having)})")


def unknown_keys(cfg, schema: type = Config, prefix: str = "") -> list[str]:
    """Keys of a composed DictConfig that its dataclass schema lacks.

    hydra's ``+key=value`` appends keys even to typed nodes, and ``OmegaConf.to_object``
    then drops them silently; a knob that is silently ignored must be an error instead."""
    from omegaconf import DictConfig

    names = {f.name: f for f in dataclasses.fields(schema)}
    out = []
    for key in cfg.keys():
        if key not in names:
            out.append(prefix + str(key))
            continue
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            sub_schema = node._metadata.object_type
            if dataclasses.is_dataclass(sub_schema):
                out += unknown_keys(node, sub_schema, f"{prefix}{key}.")
    return out


def resolve_path(path: str) -> Path:
    """A relative path: the working directory if it exists there, else the repository root."""
    p = Path(os.path.expanduser(path))
    if p.is_absolute() or p.exists():
        return p.resolve()
    return (REPO_ROOT / p).resolve()


def resolve_motion_path(cfg: MotionConfig) -> Path:
    p = resolve_path(cfg.path)
    if not p.exists():
        tried = {str(Path(cfg.path).expanduser().resolve()), str(p)}
        raise ConfigError(f"motion path not found: {cfg.path!r} (motion={cfg.name}; looked at "
                          f"{' and '.join(sorted(tried))}). Set motion.path=<file or folder of .pt clips>.")
    return p


def resolve_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"device={device!r} is not a torch device: {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} but CUDA is not available here; use device=cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type != "cpu":
        raise ConfigError(f"device={device!r}: only cpu and cuda are supported")
    return dev


def distributed_rank(device: str = "cuda") -> tuple[int, int, int]:
    """(LOCAL_RANK, RANK, WORLD_SIZE) of a ``multi_gpu=true`` run, checked: a torchrun launch,
    and on CUDA one device per local rank (on the CPU the ranks share the cores, gloo backend)."""
    missing = [k for k in ("LOCAL_RANK", "RANK", "WORLD_SIZE") if k not in os.environ]
    if missing:
        raise ConfigError(f"multi_gpu=true needs a torchrun launch (missing {', '.join(missing)}): "
                          f"torchrun --nproc_per_node=<gpus> train.py multi_gpu=true device=cuda ...")
    local, rank, world = (int(os.environ[k]) for k in ("LOCAL_RANK", "RANK", "WORLD_SIZE"))
    if torch.device(device).type == "cuda" and (not torch.cuda.is_available() or local >= torch.cuda.device_count()):
        raise ConfigError(f"multi_gpu=true: LOCAL_RANK {local} needs CUDA device cuda:{local}, "
                          f"found {torch.cuda.device_count() if torch.cuda.is_available() else 0} "
                          f"(device=cpu runs the ranks on the CPU)")
    return local, rank, world


def resolve_minibatch(train: PPOConfig, num_envs: int) -> int:
    """The PPO minibatch size; it must split the rollout (horizon * num_envs) evenly.

    ``minibatch_size`` or ``num_minibatches`` (at most one) give it exactly; with neither,
    the whole rollout up to ``minibatch_cap``."""
    batch = train.horizon_length * num_envs
    if train.minibatch_size is not None and train.num_minibatches is not None:
        raise ConfigError(f"train.minibatch_size={train.minibatch_size} and train.num_minibatches="
                          f"{train.num_minibatches} both set: give one of them (the other null)")
    if train.num_minibatches is not None:
        n = int(train.num_minibatches)
        if n <= 0 or batch % n:
            raise ConfigError(
                f"train.num_minibatches={n} must be a positive divisor of the rollout size "
                f"train.horizon_length * num_envs = {train.horizon_length} * {num_envs} = {batch}")
        return batch // n
    if train.minibatch_size is not None:
        mb = int(train.minibatch_size)
        if mb <= 0 or batch % mb:
            raise ConfigError(
                f"train.minibatch_size={mb} must be a positive divisor of the rollout size "
                f"train.horizon_length * num_envs = {train.horizon_length} * {num_envs} = {batch}; "
                f"e.g. {batch} or {batch // 2 if batch % 2 == 0 else batch}")
        return mb
    if train.minibatch_cap <= 0:
        raise ConfigError(f"train.minibatch_cap must be positive, got {train.minibatch_cap}")
    if batch <= train.minibatch_cap:
        return batch
    return max(d for d in range(1, train.minibatch_cap + 1) if batch % d == 0)


def resolve_max_epochs(cfg: Config) -> int:
    """The run's epoch budget: ``max_epochs`` if given, else ``task.max_epochs`` capped by
    ``motion.max_epochs`` (the one place these three combine)."""
    if cfg.max_epochs is not None:
        return int(cfg.max_epochs)
    budget = int(cfg.task.max_epochs)
    if cfg.motion.max_epochs is not None:
        budget = min(budget, int(cfg.motion.max_epochs))
    return budget


def _check_labels(cfg: Config) -> None:
    """Skill labels chosen in the task YAML must be rows of the skill table (skillmimic/motion/skills.py)."""
    from skillmimic.motion.skills import check_label

    chosen = [(f"task.{key}[{i}]", x) for key in ("body_only_labels", "no_termination_labels")
              for i, x in enumerate(getattr(cfg.task, key))]
    if cfg.task.hlc is not None:
        chosen += [(f"task.hlc.control_mapping[{i}]", x) for i, x in enumerate(cfg.task.hlc.control_mapping)]
    for key, value in chosen:
        try:
            check_label(value, key)
        except ValueError as e:
            raise ConfigError(str(e)) from None


def validate(cfg: Config) -> None:
    """Checks that need more than types; each error names the knob to change."""
    if cfg.torch_threads < 1:
        raise ConfigError(f"torch_threads must be >= 1, got {cfg.torch_threads}")
    if cfg.torch_update_threads < 0:
        raise ConfigError(f"torch_update_threads must be >= 0 (0: one per core), got {cfg.torch_update_threads}")
    if cfg.num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {cfg.num_envs}")
    for key, value in (("task.max_epochs", cfg.task.max_epochs), ("motion.max_epochs", cfg.motion.max_epochs),
                       ("max_epochs", cfg.max_epochs)):
        if value is not None and value < 1 and not (key == "max_epochs" and value == -1):
            raise ConfigError(f"{key} must be >= 1{' (or -1 for no limit)' if key == 'max_epochs' else ''}, "
                              f"got {value}")
    t = cfg.train
    if t.horizon_length < 1 or t.mini_epochs < 1:
        raise ConfigError(f"train.horizon_length and train.mini_epochs must be >= 1, "
                          f"got {t.horizon_length} and {t.mini_epochs}")
    if t.lr_schedule not in ("constant", "linear", "adaptive"):
        raise ConfigError(f"train.lr_schedule must be constant, linear or adaptive, got {t.lr_schedule!r}")
    if t.save_frequency < 0 or t.keep_checkpoint_every < 0:
        raise ConfigError("train.save_frequency and train.keep_checkpoint_every must be >= 0")
    if not t.network.units:
        raise ConfigError("train.network.units must list at least one layer width")
    if t.network.activation not in ("relu", "elu", "tanh", "silu"):
        raise ConfigError(f"train.network.activation must be relu, elu, tanh or silu, got {t.network.activation!r}")
    cfg.task.parsed_state_init()
    if cfg.task.episode_length < 2:
        raise ConfigError(f"task.episode_length must be >= 2, got {cfg.task.episode_length}")
    from skillmimic.sim import available_backends
    from skillmimic.sim.base import resolve_body_kinematics

    if cfg.sim.backend not in available_backends():
        raise ConfigError(f"sim.backend must be one of {available_backends()}, got {cfg.sim.backend!r}")
    try:
        scene_skeleton(cfg.sim.scene)
    except ValueError as exc:
        raise ConfigError(f"sim.scene.hinge_order: {exc}") from None
    try:
        cfg.sim.scene.object.validate()       # names the key; a mesh file must exist
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        resolve_body_kinematics(cfg.sim.backend, cfg.sim.body_kinematics)
    except ValueError as exc:
        raise ConfigError(f"sim.{exc}") from None
    resolve_device(cfg.device)
    if cfg.multi_gpu:
        distributed_rank(cfg.device)   # raises with the fix when not launched by torchrun / without CUDA
    resolve_minibatch(t, cfg.num_envs)
    from skillmimic.motion import clip_label, find_clips

    for clip in find_clips(resolve_motion_path(cfg.motion)):   # names only: a bad label fails before any work
        clip_label(clip)
    _check_labels(cfg)
    spec = cfg.task.spec()
    env_cfg = cfg.task.env_config(cfg.num_envs, cfg.seed)
    if hasattr(env_cfg, "validate"):
        try:
            env_cfg.validate()
        except ValueError as e:
            raise ConfigError(f"task.{e}") from None
    if spec.needs_llc:
        validate_llc_checkpoint(cfg)
    elif cfg.llc_checkpoint:
        raise ConfigError(f"llc_checkpoint is only used by HLC tasks (task=hlc_*), not by task={cfg.task.name}")
    v2 = cfg.task.v2
    if v2 is not None:
        try:
            v2.validate()
        except ValueError as e:
            raise ConfigError(f"task.v2: {e}") from None
        for key, how in (("graph_file", "python -m skillmimic.augment.stg build MOTION_DIR OUT.npz"),
                         ("hist_ckpt", "python -m skillmimic.augment.history pretrain MOTION_DIR --out X.pt")):
            value = getattr(v2, key)
            if value and value != AUTO and not resolve_path(value).is_file():
                raise ConfigError(f"task.v2.{key}={value!r} is not a file; make one with `{how}` "
                                  f"or set task.v2.{key}={AUTO}")
        if v2.hist_ckpt and v2.hist_ckpt != AUTO:     # small: read it now, so a bad file fails before any work
            from skillmimic.augment.history import FrozenHistoryEncoder

            FrozenHistoryEncoder.load(resolve_path(v2.hist_ckpt))


def validate_llc_checkpoint(cfg: Config) -> None:
    """A task over a frozen skill policy has a usable ``llc_checkpoint``: the file exists, is a
    training checkpoint of a skill policy whose sizes fit (read, no model built)."""
    from envs.hlc.llc import LLCCheckpointError, check_llc_checkpoint

    if not cfg.llc_checkpoint:
        raise ConfigError(f"task={cfg.task.name} is a high-level controller and needs "
                          f"llc_checkpoint=<a skill policy checkpoint .pth> (train one with python train.py)")
    path = resolve_path(cfg.llc_checkpoint)
    if not path.exists():
        raise LLCCheckpointError(f"llc_checkpoint {cfg.llc_checkpoint}: file does not exist (looked at {path})")
    check_llc_checkpoint(path)


def run_config_of(state: dict) -> Optional[Config]:
    """The typed :class:`Config` of the run that wrote a loaded checkpoint (None if it carries
    none); ConfigError when it does not fit this version's schema."""
    from omegaconf import OmegaConf

    from ..checkpoint import run_config_text

    text = run_config_text(state)
    if text is None:
        return None
    try:
        return OmegaConf.to_object(load_run_config(text))
    except Exception as e:    # noqa: BLE001 -- an old or hand-edited YAML: name the problem
        raise ConfigError(f"its run configuration does not fit this version's schema: {str(e).splitlines()[0]}") \
            from None
