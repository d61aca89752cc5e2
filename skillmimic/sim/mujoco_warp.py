"""MuJoCo Warp backend: N worlds stepped together by ``mujoco_warp`` on a CUDA GPU (or the CPU).

Why this shape:

* **Zero-copy state.** qpos/qvel/ctrl/sensordata live in Warp arrays; the engine holds torch
  views of them (``wp.to_torch``, same device), so resets and PD targets are torch index
  assignments into simulator memory -- no host round trip on CUDA.
* **One graph per control step.** The ``substeps`` physics steps plus the bookkeeping kernels
  below are captured once (``wp.ScopedCapture``) and replayed with one launch per control step.
  That is a CUDA graph on the GPU; on the CPU Warp records the same sequence and replays it in
  C++ (about 2x faster than stepping from Python). ``graph=False`` steps eagerly instead.
* **Same sensor semantics as the C engine.** Contact sensors (``contact``, reduce=netforce,
  body2=<body>: net force ON the body, world frame) are computed by mujoco_warp itself;
  a kernel after every substep averages them over the control step and takes the max of the
  object-floor flag, exactly as :mod:`.mujoco_cpu` does with the rollout sensor trajectory.
* **Capacity is explicit.** mujoco_warp preallocates contacts (``nconmax`` per world, pooled over
  all worlds) and constraint rows (``njmax`` per world, strict). When a step exceeds them it
  drops contacts/constraints and sets bits in ``Data.overflow``. A kernel after every substep
  moves those bits into device-side counters (no host sync); the host reads the counters every
  ``overflow_check_interval`` control steps (every step on CPU, where reading is free) and when
  :attr:`overflow_count` is read, and logs a warning naming the overflow kinds and the peaks.
* **One bad world never poisons the batch.** Contacts are a pool shared by all worlds, so a world
  with NaN/huge state could flood it and starve healthy worlds. A kernel before every substep
  (and after the last) checks every world's qpos/qvel; a non-finite or exploded world
  (``|x| > 1e10``, MuJoCo C's own divergence bound) is parked at ``qpos0`` at rest with a clean
  warm start, and reported through ``_diverged`` so the base class flags it for reset -- the same
  contract as the C engine's auto-reset.
"""

from __future__ import annotations

import logging

import mujoco_warp as mjw
import numpy as np
import torch
import warp as wp

from .base import Simulator, body_kinematics_from_engine, resolve_body_kinematics

log = logging.getLogger(__name__)

# MuJoCo C resets a world whose qpos/qvel exceed this magnitude (mjMAXVAL); same bound here.
_MAXVAL = 1e10

# Data.overflow bits that mean "capacity exceeded, results dropped". ITERATIONS/LS_ITERATIONS
# (solver did not converge within the iteration budget) are not capacity problems and are ignored.
_CAPACITY_BITS = int(mjw.OverflowType.ALL) & ~int(mjw.OverflowType.ITERATIONS) & ~int(mjw.OverflowType.LS_ITERATIONS)


def _overflow_names(bits: int) -> list[str]:
    return [f.name for f in mjw.OverflowType
            if f.value and not (f.value & (f.value - 1)) and bits & f.value]


# --------------------------------------------------------------------------------- kernels
@wp.kernel
def _sanitize(qpos0: wp.array(dtype=float), maxval: float,
              qpos: wp.array2d(dtype=float), qvel: wp.array2d(dtype=float),
              warmstart: wp.array2d(dtype=float), bad: wp.array(dtype=int)):
    """Park a non-finite/exploded world at qpos0, at rest, and flag it (sticky until reset)."""
    w = wp.tid()
    ok = bool(True)
    for i in range(qpos.shape[1]):
        x = qpos[w, i]
        if not wp.isfinite(x) or wp.abs(x) > maxval:
            ok = False
    for i in range(qvel.shape[1]):
        x = qvel[w, i]
        if not wp.isfinite(x) or wp.abs(x) > maxval:
            ok = False
    if not ok:
        bad[w] = 1
        for i in range(qpos.shape[1]):
            qpos[w, i] = qpos0[i]
        for i in range(qvel.shape[1]):
            qvel[w, i] = 0.0
            warmstart[w, i] = 0.0


@wp.kernel
def _accumulate_sensors(sensordata: wp.array2d(dtype=float), flag_index: int, scale: float, first: int,
                        acc: wp.array2d(dtype=float)):
    """Control-step contact readings: mean over substeps; the object-floor flag is max over them."""
    w, i = wp.tid()
    s = sensordata[w, i]
    if i == flag_index:
        if first != 0:
            acc[w, i] = s
        else:
            acc[w, i] = wp.max(acc[w, i], s)
    else:
        if first != 0:
            acc[w, i] = s * scale
        else:
            acc[w, i] = acc[w, i] + s * scale


@wp.kernel
def _count_contacts(nacon: wp.array(dtype=int), contact_worldid: wp.array(dtype=int),
                    ncon: wp.array(dtype=int)):
    c = wp.tid()
    if c < nacon[0]:
        wp.atomic_add(ncon, contact_worldid[c], 1)


@wp.kernel
def _track_capacity(capacity_bits: int, ncon: wp.array(dtype=int), nefc: wp.array(dtype=int),
                    overflow: wp.array(dtype=int),
                    peak_ncon: wp.array(dtype=int), peak_nefc: wp.array(dtype=int),
                    world_overflows: wp.array(dtype=int), any_overflow: wp.array(dtype=int)):
    """Per-world peaks and overflow events of the substep just taken; clears the sticky bits."""
    w = wp.tid()
    peak_ncon[w] = wp.max(peak_ncon[w], ncon[w])
    peak_nefc[w] = wp.max(peak_nefc[w], nefc[w])
    ncon[w] = 0
    bits = overflow[w] & capacity_bits
    if bits != 0:
        world_overflows[w] = world_overflows[w] + 1
        wp.atomic_or(any_overflow, 0, bits)
    overflow[w] = 0


@wp.kernel
def _tally_overflow(any_overflow: wp.array(dtype=int), nacon: wp.array(dtype=int), ncollision: wp.array(dtype=int),
                    steps: wp.array(dtype=int), bits_seen: wp.array(dtype=int),
                    peak_nacon: wp.array(dtype=int), peak_ncollision: wp.array(dtype=int)):
    """Global counters: substeps with any capacity overflow, kinds seen, peak pooled contacts and
    broadphase candidate pairs (both must fit in the pool of ``nconmax * nworld``)."""
    bits = any_overflow[0]
    if bits != 0:
        steps[0] = steps[0] + 1
        bits_seen[0] = bits_seen[0] | bits
    any_overflow[0] = 0
    peak_nacon[0] = wp.max(peak_nacon[0], nacon[0])
    peak_ncollision[0] = wp.max(peak_ncollision[0], ncollision[0])


# --------------------------------------------------------------------------------- engine
def _quiet_warp() -> None:
    """Warp logs its device table and one line per kernel module loaded (about 60 lines per
    start) at INFO; keep warnings and errors. A level the user lowered stays as set."""
    if wp.config.log_level == wp.LOG_INFO:
        wp.config.log_level = wp.LOG_WARNING


def _resolve_device(device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"mjwarp runs on 'cpu' or 'cuda', got {device!r}")
    return dev


class MujocoWarpSimulator(Simulator):
    """MuJoCo Warp, all worlds in one batched data structure on ``device``.

    Args:
        nconmax: contacts allocated per world (pooled: ``nconmax * num_worlds`` in all).
            Default ``scene.physics.nconmax``.
        njmax: constraint rows allocated per world (strict per world). Default
            ``scene.physics.njmax``.
        graph: capture the control step as a graph and replay it (default True).
        overflow_check_interval: control steps between host reads of the overflow counters
            (default 1 on CPU, 100 on CUDA; reading :attr:`overflow_count` always checks).
        body_kinematics: ``"torch"`` (``"auto"``, the default): body poses and velocities from the
            shared torch forward kinematics. ``"warp"``: MuJoCo Warp's own kinematics
            (``xpos``/``xmat``/``cvel``), recomputed for the final state of every control step
            inside the recorded graph (and after teleports) -- which is faster depends on the
            device and the world count; ``benchmarks/gpu_suite.py`` measures both.
    """

    backend = "mjwarp"
    # A teleport refreshes every world: Warp's own kinematics come for all worlds at once, and
    # batched GPU kernels may round a row differently in a batch of another size.
    _row_kinematics = False

    def __init__(self, num_worlds: int, scene=None, device="cpu", nconmax: int | None = None,
                 njmax: int | None = None, graph: bool = True, overflow_check_interval: int | None = None,
                 body_kinematics: str = "auto", skeleton=None, **kw):
        self.body_kinematics = resolve_body_kinematics(self.backend, body_kinematics)
        if skeleton is not None:
            kw["skeleton"] = skeleton
        super().__init__(num_worlds, scene, _resolve_device(device), **kw)
        ph = self.scene_cfg.physics
        self.nconmax = int(nconmax if nconmax is not None else ph.nconmax)
        self.njmax = int(njmax if njmax is not None else ph.njmax)
        if self.nconmax < 1 or self.njmax < 1:
            raise ValueError(f"nconmax and njmax must be >= 1, got {self.nconmax}, {self.njmax}")
        self.use_graph = bool(graph)
        on_cuda = self.device.type == "cuda"
        self.overflow_check_interval = int(overflow_check_interval or (100 if on_cuda else 1))
        _quiet_warp()
        wp.init()
        self._wdev = wp.device_from_torch(self.device)
        n = self.num_worlds

        with wp.ScopedDevice(self._wdev):
            self._m = mjw.put_model(self.model)
            # Overflows are reported by this engine (logging + counters), not by per-thread printf.
            self._m.opt.warn_overflow = 0
            self._d = mjw.make_data(self.model, nworld=n, nconmax=self.nconmax, njmax=self.njmax)
            self._qpos0 = wp.array(self.model.qpos0.astype(np.float32), dtype=float)
            self._sens_acc = wp.zeros((n, self.model.nsensordata), dtype=float)
            self._bad = wp.zeros(n, dtype=int)
            self._ncon = wp.zeros(n, dtype=int)
            self._peak_ncon = wp.zeros(n, dtype=int)
            self._peak_nefc = wp.zeros(n, dtype=int)
            self._world_overflows = wp.zeros(n, dtype=int)
            self._any_overflow = wp.zeros(1, dtype=int)
            self._overflow_steps = wp.zeros(1, dtype=int)
            self._overflow_bits = wp.zeros(1, dtype=int)
            self._peak_nacon = wp.zeros(1, dtype=int)
            self._peak_ncollision = wp.zeros(1, dtype=int)
        d = self._d
        # torch views sharing Warp's memory (no copies)
        self._qpos = wp.to_torch(d.qpos)
        self._qvel = wp.to_torch(d.qvel)
        self._ctrl = wp.to_torch(d.ctrl)
        self._warm = wp.to_torch(d.qacc_warmstart)
        self._sens_t = wp.to_torch(self._sens_acc)
        self._bad_t = wp.to_torch(self._bad)
        self._mocap_pos = wp.to_torch(d.mocap_pos)      # (N, nmocap, 3)
        self._mocap_quat = wp.to_torch(d.mocap_quat)    # (N, nmocap, 4) wxyz
        nb = self.skeleton.num_bodies                   # humanoid bodies are 1..nb (0 is the world)
        self._xpos = wp.to_torch(d.xpos)[:, 1:nb + 1]
        self._xmat = wp.to_torch(d.xmat)[:, 1:nb + 1]
        self._cvel = wp.to_torch(d.cvel)[:, 1:nb + 1]
        self._subtree_com = wp.to_torch(d.subtree_com)
        self._kin_root = int(self.model.body_rootid[1])
        self._kin_stale = True

        self._graph = None
        self._stream = self._wdev.stream if on_cuda else None
        self._torch_streams: dict[int, wp.Stream] = {}
        self._control_steps = 0
        self._overflow_reported = 0
        self._closed = False
        self._refresh()

    # -- capacity / overflow ------------------------------------------------------------------
    @property
    def overflow_count(self) -> int:
        """Physics substeps (over all worlds together) in which some world exceeded capacity."""
        self._check_overflow()
        return self._overflow_reported

    @property
    def world_overflow_counts(self) -> torch.Tensor:
        """(N,) substeps in which each world exceeded capacity (pooled-contact overflow hits all)."""
        return wp.to_torch(self._world_overflows).clone()

    def capacity_peaks(self) -> dict[str, int]:
        """Largest per-world contact and constraint counts seen (for sizing nconmax/njmax)."""
        return {
            "ncon_per_world": int(self._peak_ncon.numpy().max()),
            "nefc_per_world": int(self._peak_nefc.numpy().max()),
            "ncon_pooled": int(self._peak_nacon.numpy()[0]),
            "broadphase_pairs_pooled": int(self._peak_ncollision.numpy()[0]),
            "nconmax": self.nconmax, "njmax": self.njmax, "naconmax": self.nconmax * self.num_worlds,
        }

    def reset_capacity_peaks(self) -> None:
        for a in (self._peak_ncon, self._peak_nefc, self._peak_nacon, self._peak_ncollision):
            a.zero_()

    def _check_overflow(self) -> None:
        steps = int(self._overflow_steps.numpy()[0])       # host read: a sync on CUDA
        if steps <= self._overflow_reported:
            return
        new = steps - self._overflow_reported
        self._overflow_reported = steps
        kinds = _overflow_names(int(self._overflow_bits.numpy()[0]))
        worlds = int((self._world_overflows.numpy() > 0).sum())
        peaks = self.capacity_peaks()
        log.warning(
            "mjwarp: capacity overflow in %d physics step(s) (%d total; kinds %s; %d world(s) affected). "
            "Contacts/constraints were DROPPED. Peaks: %d contacts/world, %d pooled (naconmax %d), "
            "%d constraint rows/world (njmax %d). Raise PhysicsConfig.nconmax / njmax.",
            new, steps, kinds, worlds, peaks["ncon_per_world"], peaks["ncon_pooled"], peaks["naconmax"],
            peaks["nefc_per_world"], self.njmax)

    # -- backend hooks ------------------------------------------------------------------------
    def _write_qpos_qvel(self, ids, qpos, qvel):
        self._qpos[ids] = qpos.to(self._qpos.dtype)
        self._qvel[ids] = qvel.to(self._qvel.dtype)
        # A teleported world starts clean: no stale warm start, no readings of its old state,
        # and no divergence flag.
        self._warm[ids] = 0.0
        self._sens_t[ids] = 0.0
        self._bad_t[ids] = 0
        self._kin_stale = True

    def _write_qpos_qvel_where(self, mask, qpos, qvel):
        rows = mask[:, None]
        self._qpos.copy_(torch.where(rows, qpos.to(self._qpos.dtype), self._qpos))
        self._qvel.copy_(torch.where(rows, qvel.to(self._qvel.dtype), self._qvel))
        self._warm.masked_fill_(rows, 0.0)
        self._sens_t.masked_fill_(rows, 0.0)
        self._bad_t.masked_fill_(mask, 0)
        self._kin_stale = True

    def _write_ctrl(self, ctrl):
        self._ctrl.copy_(ctrl)

    def _write_mocap(self, ids, pos, quat):
        # mujoco_warp keeps MuJoCo's wxyz order inside wp.quat, so the views take it as is.
        self._mocap_pos[ids] = pos.to(self._mocap_pos.dtype)[:, None]
        self._mocap_quat[ids] = quat.to(self._mocap_quat.dtype)[:, None]

    def _substeps(self) -> None:
        """The whole control step as a launch sequence (this is what the graph records)."""
        m, d, n = self._m, self._d, self.num_worlds
        lay = self.layout
        nsens = self.model.nsensordata
        for k in range(self.substeps):
            wp.launch(_sanitize, dim=n, inputs=[self._qpos0, _MAXVAL],
                      outputs=[d.qpos, d.qvel, d.qacc_warmstart, self._bad])
            mjw.step(m, d)
            wp.launch(_count_contacts, dim=d.naconmax, inputs=[d.nacon, d.contact.worldid], outputs=[self._ncon])
            wp.launch(_track_capacity, dim=n, inputs=[_CAPACITY_BITS, self._ncon, d.nefc],
                      outputs=[d.overflow, self._peak_ncon, self._peak_nefc, self._world_overflows,
                               self._any_overflow])
            wp.launch(_tally_overflow, dim=1, inputs=[self._any_overflow, d.nacon, d.ncollision],
                      outputs=[self._overflow_steps, self._overflow_bits, self._peak_nacon,
                               self._peak_ncollision])
            if nsens:
                wp.launch(_accumulate_sensors, dim=(n, nsens),
                          inputs=[d.sensordata, lay.object_floor, 1.0 / self.substeps, int(k == 0)],
                          outputs=[self._sens_acc])
        wp.launch(_sanitize, dim=n, inputs=[self._qpos0, _MAXVAL],
                  outputs=[d.qpos, d.qvel, d.qacc_warmstart, self._bad])
        if self.body_kinematics == "warp":
            self._kinematics()

    def _kinematics(self) -> None:
        """Body poses and velocities of the current qpos/qvel (mj_step leaves those of the
        state before its last integration)."""
        m, d = self._m, self._d
        mjw.kinematics(m, d)
        mjw.com_pos(m, d)
        mjw.com_vel(m, d)

    def _body_kinematics(self, joint, qpos, qvel):
        if self.body_kinematics == "torch":
            return super()._body_kinematics(joint, qpos, qvel)
        if self._kin_stale:                   # teleported since the last step: bring them up to date
            self._on_engine_stream(self._kinematics)
        self._kin_stale = False
        out = body_kinematics_from_engine(self._xpos, self._xmat, self._cvel, self._subtree_com[:, self._kin_root])
        return tuple(torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0) for x in out)

    def _torch_stream(self) -> wp.Stream:
        ts = torch.cuda.current_stream(self.device)
        ws = self._torch_streams.get(ts.cuda_stream)
        if ws is None:
            ws = self._torch_streams[ts.cuda_stream] = wp.stream_from_torch(ts)
        return ws

    def _on_engine_stream(self, fn) -> None:
        with wp.ScopedDevice(self._wdev):
            if self._stream is not None:
                # Order Warp's work after torch's writes (resets, targets) and torch's reads after it.
                ts = self._torch_stream()
                self._stream.wait_stream(ts)
                with wp.ScopedStream(self._stream):
                    fn()
                ts.wait_stream(self._stream)
            else:
                fn()

    def _advance(self):
        if self._closed:
            raise RuntimeError("simulator is closed")
        self._on_engine_stream(self._run_step)
        self._kin_stale = False
        self._control_steps += 1
        if self._control_steps % self.overflow_check_interval == 0:
            self._check_overflow()

    def _run_step(self) -> None:
        if self._graph is not None:
            wp.capture_launch(self._graph)
            return
        # First call: step eagerly (this also compiles/loads every kernel), then record the
        # sequence for the following calls. Recording does not execute anything.
        self._substeps()
        if self.use_graph:
            self._graph = self._capture()
            self.use_graph = self._graph is not None

    def _capture(self):
        """Record the control step. The solver's early exit is a conditional graph node, which
        needs a recent CUDA driver; without one, retry with a fixed iteration count, and if
        recording still fails, keep stepping eagerly (slower, same results) -- loudly."""
        while True:
            try:
                with wp.ScopedCapture(stream=self._stream) as cap:
                    self._substeps()
                return cap.graph
            except Exception as exc:  # noqa: BLE001 -- any capture failure has the same remedy
                if self._m.opt.graph_conditional:
                    log.warning("mjwarp: graph capture failed (%s); retrying without conditional "
                                "graph nodes (solver runs all %d iterations)", exc, self._m.opt.iterations)
                    self._m.opt.graph_conditional = False
                    continue
                log.warning("mjwarp: graph capture failed (%s); stepping without a graph", exc)
                return None

    def _diverged(self):
        return self._bad_t != 0

    def _read(self):
        # The views alias memory the next step overwrites; the base class's masked select
        # copies them before any state is kept, so no snapshot is taken here.
        return self._qpos, self._qvel, self._sens_t

    def close(self):
        if self._closed:
            return
        if self._stream is not None:
            self._stream.synchronize()
        self._closed = True
        self._graph = None


__all__ = ["MujocoWarpSimulator"]
