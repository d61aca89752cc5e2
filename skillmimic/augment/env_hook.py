"""The SkillMimic-V2 recipe as a hook of the skill env (:class:`envs.skill.SkillEnv`).

The env calls (all optional for it, see ``SkillEnv.augment``):

* ``sample_starts(env, n)``: ATS draws the (clip, start frame) of new episodes;
* ``on_reset(env, env_ids, ref)`` -> :class:`ResetPlan`: STF (perturbed start + re-targeted
  reference) with probability ``state_init_random_prob``, otherwise STG skill switching with
  probability ``state_switch_prob``; the number of masked steps; history buffer fill;
* ``plan_where(env, mask, ref)`` -> :class:`ResetPlan`: the same for the envs where ``mask``
  is set, without host sync (CUDA): the plan is computed for every env (random draws for all
  of them) and the env keeps the rows of ``mask``; the counters stay on the device;
* ``on_step(env, reward, done, ref, info)`` -> reward: masking of the first N steps (and of
  missing reference frames) by substituting the mean reward of unmasked envs on the same
  clip, ATS bookkeeping at episode ends, history FIFO update;
* ``extra_obs(env)``: the frozen history encoder's embedding, appended to the observation.
* ``epoch_stats()``: its counters (resets, STF starts, switches, ATS updates) and per-epoch
  rates for the training log, as device tensors.

Each mechanism is switched by :class:`V2Config`; all off is the V1 baseline.

Skill switching follows the released code (facts §2.3, "R"): the env keeps its reference
(clip, frame t, label) and starts from the graph-matched frame (m', t') of another skill,
re-expressed in the target's frame: yaw-rotated by psi(m, t) - psi(m', t') about its root,
root xy moved onto the target's, z kept. Unlike the original we also rotate the velocities
(root, object; all world-frame here): a rigid yaw change of the whole state is a state the
physics can actually be in, whereas unrotated velocities point the body's momentum in a
direction that does not match its pose.

Masking applies from the very first reset on (the original skipped it there, an artefact
of how its envs were initialised); the reward of a masked env is the mean reward of the
unmasked envs on its clip, else of all unmasked envs, else 0 (facts §2.4).

ATS records, per episode, the mean of the env's *own* reward over its unmasked steps
against the (clip, frame) that ATS sampled (before any STF re-targeting): masked steps
carry other envs' rewards and say nothing about this start.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

import torch

from ..rotations import heading_yaw, quat_mul, quat_rotate, yaw_quat
from ..state import JointState
from .ats import AdaptiveSampler
from .history import (FORMAT as HIST_FORMAT, VERSION as HIST_VERSION, EncoderConfig, FrozenHistoryEncoder,
                      HistoryBuffer, PretrainConfig, history_features, library_history_features, pretrain,
                      save_checkpoint)
from .similarity import library_features, masked_steps
from .stf import STFNoise, default_getup_noise, perturb_state, retarget
from .stg import StitchedGraph, build_graph

AUTO = "auto"
COUNTERS = ("resets", "stf", "switch", "switch_no_match", "ats_updates", "stf_dropped")
#: binomial standard deviations above the mean that :func:`stf_search_rows` covers
STF_SEARCH_SIGMAS = 6.0
#: counters whose share of the resets :meth:`V2Augment.epoch_stats` reports per epoch (``v2/<name>_rate``)
RATES = ("stf", "switch", "switch_no_match")


@dataclass
class V2Config:
    """Switches and settings of the V2 mechanisms (facts §9 recipe: see ``cfg/task/skill_v2.yaml``)."""

    # STG skill switching (facts §2.3). graph_file: a graph of the env's motion (python -m
    # skillmimic.augment.stg build), or "auto": built from the env's motion once, cached in cache_dir
    state_switch_prob: float = 0.0
    graph_file: Optional[str] = None
    # STF (facts §3): perturbed start states, reference re-targeted to the nearest frame
    state_init_random_prob: float = 0.0
    state_search: bool = True
    stf_noise: STFNoise = field(default_factory=STFNoise)
    stf_getup_noise: STFNoise = field(default_factory=default_getup_noise)
    # masking ("buffer node", facts §2.4): first N steps after a switch / STF start
    enable_buffernode: bool = True
    max_masked_steps: int = 10
    mask_missing_frames: bool = True
    # ATS (facts §4)
    reweight: bool = False
    reweight_alpha: float = 1.0
    time_reweight: bool = True
    reweight_interval: Optional[int] = None      # env steps between updates; None: 10 x total frames
    # history encoder (facts §5): checkpoint of python -m skillmimic.augment.history pretrain, or
    # "auto": pretrained on the env's motion once (hist_* settings below), cached in cache_dir
    hist_ckpt: Optional[str] = None
    hist_pretrain_epochs: int = PretrainConfig.epochs   # the original's 1000, or fewer if it converges first
    hist_length: int = 60
    hist_embedding_size: int = 3
    # where "auto" graphs and encoders are kept, keyed by a hash of the clip files' contents and
    # the settings; None: user_cache_dir() ($XDG_CACHE_HOME/skillmimic or ~/.cache/skillmimic)
    cache_dir: Optional[str] = None

    def validate(self) -> None:
        for name in ("state_switch_prob", "state_init_random_prob", "reweight_alpha"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"V2Config.{name} must be in [0, 1], got {v}")
        if self.state_switch_prob > 0 and not self.graph_file:
            raise ValueError("V2Config.state_switch_prob > 0 needs graph_file "
                             "(build one with: python -m skillmimic.augment.stg build MOTION_DIR OUT.npz)")
        if self.max_masked_steps < 0:
            raise ValueError(f"V2Config.max_masked_steps must be >= 0, got {self.max_masked_steps}")
        if self.reweight_interval is not None and self.reweight_interval < 1:
            raise ValueError(f"V2Config.reweight_interval must be >= 1, got {self.reweight_interval}")


def stf_search_rows(num_envs: int, prob: float) -> int:
    """Rows the masked reset path (:meth:`V2Augment.plan_where`) runs STF's nearest-frame
    search for each step: the STF draws among the resetting worlds are at most
    Binomial(num_envs, prob), and this covers its mean + 6 standard deviations + 8 (exceeded
    with probability below ~1e-9 per step), at most ``num_envs``. The search then costs a
    fixed ~prob-th of searching every world, with no host sync to learn how many reset."""
    mean = num_envs * prob
    return min(num_envs, math.ceil(mean + STF_SEARCH_SIGMAS * math.sqrt(mean * (1.0 - prob)) + 8))


@dataclass
class ResetPlan:
    """How the env starts the episodes of ``env_ids`` (one row each)."""

    clips: torch.Tensor          # reference clip
    frames: torch.Tensor         # reference start frame
    state: JointState            # initial simulator state
    masked_steps: torch.Tensor   # steps whose reward is masked and whose reference is held


def align_state(src: JointState, target_root_pos: torch.Tensor, target_root_quat: torch.Tensor) -> JointState:
    """``src`` re-expressed in the frame of a target: rotated about its root by the heading
    difference, root xy moved onto the target's; heights, hinge angles kept."""
    dyaw = heading_yaw(target_root_quat) - heading_yaw(src.root_quat)
    q = yaw_quat(dyaw)
    origin = torch.cat([src.root_pos[:, :2], torch.zeros_like(src.root_pos[:, 2:])], -1)
    new_origin = torch.cat([target_root_pos[:, :2], torch.zeros_like(target_root_pos[:, 2:])], -1)
    return JointState(
        root_pos=quat_rotate(q, src.root_pos - origin) + new_origin,
        root_quat=quat_mul(q, src.root_quat),
        root_lin_vel=quat_rotate(q, src.root_lin_vel),
        root_ang_vel=quat_rotate(q, src.root_ang_vel),
        dof_pos=src.dof_pos.clone(),
        dof_vel=src.dof_vel.clone(),
        obj_pos=quat_rotate(q, src.obj_pos - origin) + new_origin,
        obj_quat=quat_mul(q, src.obj_quat),
        obj_lin_vel=quat_rotate(q, src.obj_lin_vel),
        obj_ang_vel=quat_rotate(q, src.obj_ang_vel),
    )


def _assign(state: JointState, rows: torch.Tensor, sub: JointState) -> None:
    for f in fields(JointState):
        getattr(state, f.name)[rows] = getattr(sub, f.name).to(getattr(state, f.name).dtype)


def _select(mask: torch.Tensor, a: JointState, b: JointState) -> JointState:
    """Rows of ``a`` where ``mask`` (N,) is set, of ``b`` elsewhere (``b``'s dtypes)."""
    return JointState(**{f.name: torch.where(mask[:, None], getattr(a, f.name).to(getattr(b, f.name).dtype),
                                             getattr(b, f.name)) for f in fields(JointState)})


def graph_tables(graph: StitchedGraph, motion) -> dict[str, torch.Tensor]:
    """Dense (num_frames, slots) edge tables in the library's clip/frame numbering.

    Clips are matched by path: each graph clip file must be the tail of exactly one library
    file, and lengths must agree -- a graph of other data fails loudly."""
    lib = [f.as_posix() if hasattr(f, "as_posix") else str(f) for f in motion.files]
    mapping = []
    for gi, name in enumerate(graph.clip_files):
        hits = [i for i, f in enumerate(lib) if f == name or f.endswith("/" + name)]
        if len(hits) != 1:
            raise ValueError(f"graph clip {name!r} matches {len(hits)} library clips (need exactly one); "
                             "was the graph built from this motion folder?")
        if int(motion.clip_lengths[hits[0]]) != int(graph.clip_lengths[gi]):
            raise ValueError(f"graph clip {name!r} has {graph.clip_lengths[gi]} frames, the library's "
                             f"{int(motion.clip_lengths[hits[0]])}: rebuild the graph")
        mapping.append(hits[0])
    if sorted(mapping) != list(range(motion.num_clips)):
        missing = sorted(set(range(motion.num_clips)) - set(mapping))
        raise ValueError(f"library clips {[lib[i] for i in missing]} are not in the graph: rebuild it")
    dev = motion.device
    g2l = torch.tensor(mapping, dtype=torch.long, device=dev)
    d = {k: torch.as_tensor(v, device=dev) for k, v in graph.dense().items()}
    # Rows of the dense table are in graph flat order; reorder them into library flat order.
    src_rows = motion.clip_starts[g2l[d["src_clip"][:, 0]]] + d["src_frame"][:, 0]
    order = torch.empty_like(src_rows)
    order[src_rows] = torch.arange(len(src_rows), device=dev)
    matched = d["dst_clip"] >= 0
    clip = torch.where(matched, g2l[d["dst_clip"].clamp_min(0)], -1)
    return {"clip": clip[order], "frame": d["dst_frame"][order], "similarity": d["similarity"][order],
            "masked_steps": d["masked_steps"][order]}


def user_cache_dir() -> Path:
    """Per-user cache of derived assets (never inside the repository): ``$XDG_CACHE_HOME/skillmimic``,
    else ``~/.cache/skillmimic``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "skillmimic"


def resolve_cache_dir(cache_dir: Optional[str]) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else user_cache_dir()


def motion_fingerprint(motion) -> str:
    """Short hash of a library's clips -- names, lengths and file *contents* (a copied or
    touched file keeps its key, an edited one gets a new key): the cache key of assets
    derived from it."""
    h = hashlib.sha256()
    for f, n in zip(motion.files, motion.clip_lengths.tolist()):
        h.update(f"{Path(f).name}|{n}|".encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _clip_names(motion) -> list[str]:
    files = [Path(f).resolve() for f in motion.files]
    root = Path(os.path.commonpath([str(f.parent) for f in files]))
    return [f.relative_to(root).as_posix() for f in files]


def cached_graph(motion, cache_dir: Optional[str], log=print) -> StitchedGraph:
    """The STG of ``motion`` from ``cache_dir`` (:func:`resolve_cache_dir`), built and saved there first if absent."""
    path = resolve_cache_dir(cache_dir) / f"stg_{motion_fingerprint(motion)}.npz"
    if path.exists():
        return StitchedGraph.load(path)
    log(f"[v2] building the stitched trajectory graph of {motion} -> {path}")
    g = build_graph(motion, clip_names=_clip_names(motion))
    g.save(path)
    log(f"[v2] graph built in {g.meta['build_seconds']:.1f} s")
    return g


def history_cache_path(motion, cfg: "V2Config") -> Path:
    """Cache file of the encoder pretrained on ``motion`` with ``cfg``'s settings: keyed by the
    clips' content hash and a hash of every setting that shapes the result (encoder size,
    pretraining settings, checkpoint format), so it is paid once per data set and settings."""
    import json
    from dataclasses import asdict

    enc = EncoderConfig(history_length=cfg.hist_length, embedding_dim=cfg.hist_embedding_size)
    settings = {"format": HIST_FORMAT, "version": HIST_VERSION, "encoder": asdict(enc),
                "pretrain": asdict(PretrainConfig(epochs=cfg.hist_pretrain_epochs))}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return resolve_cache_dir(cfg.cache_dir) / f"hist_{motion_fingerprint(motion)}_{key}.pt"


def cached_history_encoder(motion, cfg: "V2Config", device, log=print) -> FrozenHistoryEncoder:
    """The history encoder pretrained on ``motion`` (cfg.hist_* settings), from the cache or
    trained first and written there (atomically, and only once pretraining succeeded)."""
    path = history_cache_path(motion, cfg)
    if not path.exists():
        enc = EncoderConfig(history_length=cfg.hist_length, embedding_dim=cfg.hist_embedding_size)
        log(f"[v2] pretraining the history encoder (up to {cfg.hist_pretrain_epochs} epochs; once per data set "
            f"and settings) on {motion} -> {path}")
        ckpt = pretrain(motion, PretrainConfig(epochs=cfg.hist_pretrain_epochs), enc, device=device, log=log)
        save_checkpoint(ckpt, path)
    return FrozenHistoryEncoder.load(path, device)


class V2Augment:
    """SkillMimic-V2 hook for :class:`envs.skill.SkillEnv`; see the module docstring."""

    def __init__(self, cfg: V2Config, graph: StitchedGraph | None = None,
                 encoder: FrozenHistoryEncoder | None = None):
        cfg.validate()
        self.cfg = cfg
        if graph is None and cfg.state_switch_prob > 0 and cfg.graph_file != AUTO:
            graph = StitchedGraph.load(cfg.graph_file)
        if encoder is None and cfg.hist_ckpt and cfg.hist_ckpt != AUTO:
            encoder = FrozenHistoryEncoder.load(cfg.hist_ckpt)
        self.graph = graph
        self.encoder = encoder
        self.ats: AdaptiveSampler | None = None
        self.history: HistoryBuffer | None = None
        self.env_steps = 0
        # on the device once attached (added to without a host sync); read through ``counts``
        self._counts = {k: torch.zeros((), dtype=torch.long) for k in COUNTERS}
        self._counts_read = {k: v.clone() for k, v in self._counts.items()}   # at the last epoch_stats()

    @property
    def counts(self) -> dict[str, int]:
        """Resets, STF starts, switches (and switches without a graph match), ATS updates, STF
        draws the masked path could not search for (:meth:`plan_where`) so far. Reading them
        syncs on CUDA: do it when logging, not every step (:meth:`epoch_stats` does not)."""
        return {k: int(v) for k, v in self._counts.items()}

    def epoch_stats(self) -> dict[str, torch.Tensor]:
        """What the training log shows of the hook, as device scalars (computing them does
        not sync; the trainer reads them once per epoch, :meth:`envs.skill.SkillEnv.epoch_stats`).

        * ``v2/<counter>`` for each of :data:`COUNTERS`: cumulative since the run started
          (restored on resume, like the rest of the hook's state);
        * ``v2/<name>_rate`` for each of :data:`RATES`: STF starts, switches, switches drawn
          without a graph match, as a share of the resets since the previous call (one
          epoch for the trainer; 0 if there was no reset). Expect ``stf_rate`` near
          ``state_init_random_prob`` and ``switch_rate + switch_no_match_rate`` near
          ``(1 - state_init_random_prob) * state_switch_prob``.
        """
        now = {k: v.clone() for k, v in self._counts.items()}
        resets = (now["resets"] - self._counts_read["resets"]).clamp_min(1).double()
        out = {f"v2/{k}": v for k, v in now.items()}
        for k in RATES:
            out[f"v2/{k}_rate"] = (now[k] - self._counts_read[k]).double() / resets
        self._counts_read = now
        return out

    # ------------------------------------------------------------------ setup
    def attach(self, env) -> None:
        """Build the per-library and per-env tables (called once by the env)."""
        cfg, motion = self.cfg, env.motion
        n, dev = env.num_envs, env.device
        if self.graph is None and cfg.state_switch_prob > 0 and cfg.graph_file == AUTO:
            self.graph = cached_graph(motion, cfg.cache_dir)
        if self.encoder is None and cfg.hist_ckpt == AUTO:
            self.encoder = cached_history_encoder(motion, cfg, dev)
        self.edges = (graph_tables(self.graph, motion)
                      if self.graph is not None and cfg.state_switch_prob > 0 and self.graph.num_slots > 0 else None)
        if cfg.reweight:
            self.ats = AdaptiveSampler(motion, alpha=cfg.reweight_alpha, time_reweight=cfg.time_reweight)
        self.interval = cfg.reweight_interval or 10 * motion.num_frames
        self._counts = {k: v.to(dev) for k, v in self._counts.items()}
        self._counts_read = {k: v.to(dev) for k, v in self._counts_read.items()}
        self._max_clip_length = int(motion.clip_lengths.max())     # STF's search width on the masked path
        # STF's search rows on the masked path; num_envs searches every world (as the ids path
        # would: the same frames for every STF start, only slower)
        self.stf_search_rows = stf_search_rows(n, cfg.state_init_random_prob)
        self.stf_features = (library_features(motion) if cfg.state_init_random_prob > 0 and cfg.state_search
                             else None)
        if self.encoder is not None:
            self.history = HistoryBuffer(self.encoder, n, dev)
            self.history_table = self.encoder.normalize(library_history_features(motion).to(dev))
            self._feat = torch.zeros(n, self.encoder.cfg.feature_dim, device=dev)
        self.ats_clip = torch.zeros(n, dtype=torch.long, device=dev)
        self.ats_frame = torch.zeros(n, dtype=torch.long, device=dev)
        self.ep_sum = torch.zeros(n, device=dev)
        self.ep_count = torch.zeros(n, device=dev)

    @property
    def num_extra_obs(self) -> int:
        return self.encoder.cfg.embedding_dim if self.encoder is not None else 0

    # ------------------------------------------------------------------ resets
    def sample_starts(self, env, n: int):
        """ATS (clip, frame) draws, or None for the env's own sampler."""
        if self.ats is None or env.cfg.state_init != "random":
            return None
        return self.ats.sample(n, generator=env.generator, sync_free=env.masked_resets)

    def on_reset(self, env, env_ids: torch.Tensor, ref) -> ResetPlan:
        cfg, motion = self.cfg, env.motion
        mdev, gen = motion.device, env.generator
        clips = env.clip_ids[env_ids].to(mdev)
        frames = env.start_frames[env_ids].to(mdev)
        n = clips.shape[0]
        self.ats_clip[env_ids] = clips.to(env.device)
        self.ats_frame[env_ids] = frames.to(env.device)
        self.ep_sum[env_ids] = 0.0
        self.ep_count[env_ids] = 0.0
        state = ref.state.clone()
        steps = torch.zeros(n, dtype=torch.long, device=mdev)
        noised = torch.zeros(n, dtype=torch.bool, device=mdev)
        self._counts["resets"] += n

        if cfg.state_init_random_prob > 0:
            noised = torch.rand(n, generator=gen, device=mdev) < cfg.state_init_random_prob
            idx = noised.nonzero().flatten()
            if len(idx):
                noisy = perturb_state(state[idx], ref.labels[idx], cfg.stf_noise, cfg.stf_getup_noise, gen)
                _assign(state, idx, noisy)
                if cfg.state_search:
                    t_star, sim = retarget(motion, clips[idx], noisy, ref.labels[idx],
                                           frame_features=self.stf_features)
                    frames[idx] = t_star
                    if cfg.enable_buffernode:
                        steps[idx] = masked_steps(sim, cfg.max_masked_steps).to(mdev)
                self._counts["stf"] += len(idx)

        if self.edges is not None:
            want = (~noised) & (torch.rand(n, generator=gen, device=mdev) < cfg.state_switch_prob)
            idx = want.nonzero().flatten()
            if len(idx):
                rows = motion.frame_index(clips[idx], frames[idx])
                slot = torch.randint(0, self.edges["clip"].shape[1], (len(idx),), generator=gen, device=mdev)
                dst_clip = self.edges["clip"][rows, slot]
                ok = dst_clip >= 0
                self._counts["switch_no_match"] += (~ok).sum().to(env.device)
                idx, rows, slot, dst_clip = idx[ok], rows[ok], slot[ok], dst_clip[ok]
                if len(idx):
                    src = motion.get_frame_at(dst_clip, self.edges["frame"][rows, slot]).state
                    _assign(state, idx, align_state(src, state.root_pos[idx], state.root_quat[idx]))
                    if cfg.enable_buffernode:
                        steps[idx] = self.edges["masked_steps"][rows, slot].clamp(0, cfg.max_masked_steps)
                    self._counts["switch"] += len(idx)

        if self.history is not None:
            self.history.fill(env_ids, motion.clip_starts[clips].to(env.device), frames.to(env.device),
                              self.history_table)
        return ResetPlan(clips=clips, frames=frames, state=state, masked_steps=steps)

    def plan_where(self, env, mask: torch.Tensor, ref) -> ResetPlan:
        """:meth:`on_reset` for the envs where ``mask`` is set, without host sync: STF, STG
        and the history fill are computed for every env (``ref``: every env's reference at
        its new start) and the returned plan has a row per env; the env keeps the rows of
        ``mask``. The hook's own per-env bookkeeping is written where ``mask`` is set.

        Costs what :meth:`on_reset` costs for all envs each step, instead of a host read of
        the done-mask, except for STF's nearest-frame search (by far the dearest part): it
        runs for :attr:`stf_search_rows` rows, the resetting envs drawn for STF first, and
        gives each of them the frame the ids path's search would. Drawn envs beyond those
        rows (a step with more STF draws than mean + 6 sd, :func:`stf_search_rows`) start
        without STF, counted in ``stf_dropped``."""
        cfg, motion = self.cfg, env.motion
        mdev, gen = motion.device, env.generator
        mask = mask.to(env.device)
        clips = env.clip_ids.to(mdev)
        frames = env.start_frames.to(mdev)
        n = clips.shape[0]
        self.ats_clip = torch.where(mask, clips.to(env.device), self.ats_clip)
        self.ats_frame = torch.where(mask, frames.to(env.device), self.ats_frame)
        self.ep_sum.masked_fill_(mask, 0.0)
        self.ep_count.masked_fill_(mask, 0.0)
        state = ref.state.clone()
        steps = torch.zeros(n, dtype=torch.long, device=mdev)
        noised = torch.zeros(n, dtype=torch.bool, device=mdev)
        here = mask.to(mdev)
        self._counts["resets"] += mask.sum()

        if cfg.state_init_random_prob > 0:
            noised = torch.rand(n, generator=gen, device=mdev) < cfg.state_init_random_prob
            noisy = perturb_state(state, ref.labels, cfg.stf_noise, cfg.stf_getup_noise, gen)
            if cfg.state_search:
                # the search (the plan's dearest part) for a fixed number of rows, the drawn
                # resetting ones first; drawn ones beyond them start without STF (see stf_search_rows)
                drawn = noised & here
                rows = torch.argsort((~drawn).to(torch.uint8), stable=True)[:self.stf_search_rows]
                take = drawn[rows]
                t_star, sim = retarget(motion, clips[rows], noisy[rows], ref.labels[rows],
                                       frame_features=self.stf_features, max_length=self._max_clip_length)
                frames = frames.index_put((rows,), torch.where(take, t_star, frames[rows]))
                if cfg.enable_buffernode:
                    steps = steps.index_put((rows,), torch.where(take, masked_steps(sim, cfg.max_masked_steps)
                                                                 .to(mdev), steps[rows]))
                noised = torch.zeros_like(noised).index_put((rows,), take) | (noised & ~here)
                self._counts["stf_dropped"] += (drawn & ~noised).sum().to(env.device)
            state = _select(noised, noisy, state)
            self._counts["stf"] += (noised & here).sum().to(env.device)

        if self.edges is not None:
            want = (~noised) & (torch.rand(n, generator=gen, device=mdev) < cfg.state_switch_prob)
            rows = motion.frame_index(clips, frames)
            slot = torch.randint(0, self.edges["clip"].shape[1], (n,), generator=gen, device=mdev)
            dst_clip = self.edges["clip"][rows, slot]
            ok = dst_clip >= 0
            switch = want & ok
            self._counts["switch_no_match"] += (want & ~ok & here).sum().to(env.device)
            src = motion.get_frame_at(dst_clip.clamp_min(0), self.edges["frame"][rows, slot].clamp_min(0)).state
            state = _select(switch, align_state(src, state.root_pos, state.root_quat), state)
            if cfg.enable_buffernode:
                steps = torch.where(switch, self.edges["masked_steps"][rows, slot].clamp(0, cfg.max_masked_steps),
                                    steps)
            self._counts["switch"] += (switch & here).sum().to(env.device)

        if self.history is not None:
            self.history.fill_where(mask, motion.clip_starts[clips].to(env.device), frames.to(env.device),
                                    self.history_table)
        return ResetPlan(clips=clips, frames=frames, state=state, masked_steps=steps)

    # ------------------------------------------------------------------ steps
    def on_step(self, env, reward: torch.Tensor, done: torch.Tensor, ref, info: dict) -> torch.Tensor:
        """Masked-reward substitution, ATS bookkeeping, history FIFO; returns the reward."""
        cfg = self.cfg
        masked = env.progress <= env.ref_delay
        if cfg.mask_missing_frames:
            masked = masked | ~ref.valid.to(env.device)
        own = ~masked & ~info.get("nonfinite", torch.zeros_like(masked))
        clip_ids = env.clip_ids
        c = env.motion.num_clips
        sums = torch.zeros(c, device=env.device, dtype=reward.dtype).index_add_(0, clip_ids, torch.where(own, reward, 0.0))
        cnts = torch.zeros(c, device=env.device, dtype=reward.dtype).index_add_(0, clip_ids, own.to(reward.dtype))
        glob = sums.sum() / cnts.sum().clamp_min(1.0)
        per_clip = torch.where(cnts[clip_ids] > 0, sums[clip_ids] / cnts[clip_ids].clamp_min(1.0), glob)
        out = torch.where(masked, per_clip, reward)
        info.setdefault("reward_terms", {})["v2_masked"] = masked.to(reward.dtype)

        if self.ats is not None:
            self.ep_sum += torch.where(own, reward, 0.0)
            self.ep_count += own.to(self.ep_count.dtype)
            self.ats.record(self.ats_clip, self.ats_frame, self.ep_sum / self.ep_count.clamp_min(1.0),
                            mask=done & (self.ep_count > 0))
            self.env_steps += 1
            if self.env_steps % self.interval == 0:
                self.ats.update()
                self._counts["ats_updates"] += 1
        if self.history is not None:
            self.history.push(self._feat)
        return out

    def extra_obs(self, env) -> torch.Tensor:
        """The history embedding; also keeps the features of the state observed now, which
        :meth:`on_step` pushes into the FIFO after the next step. The env observes after
        every reset (``compute_obs``), so a new episode's first pushed frame is its start
        state as simulated: the reset plan computes no features of its own."""
        if self.history is None:
            return torch.zeros(env.num_envs, 0, device=env.device)
        s = env.sim.state
        j = s.joint
        self._feat = history_features(s.body_pos, j.root_quat, j.dof_pos, j.obj_pos, env.sim.skeleton).to(self._feat)
        return self.history.embed()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"env_steps": self.env_steps, "counts": self.counts,
                "ats": self.ats.state_dict() if self.ats is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.env_steps = int(state.get("env_steps", 0))
        for k, v in state.get("counts", {}).items():
            if k in self._counts:
                self._counts[k].fill_(int(v))
                self._counts_read[k].fill_(int(v))    # the first rates after a resume cover its own resets only
        if self.ats is not None and state.get("ats") is not None:
            self.ats.load_state_dict(state["ats"])
