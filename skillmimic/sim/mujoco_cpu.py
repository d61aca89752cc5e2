"""MuJoCo C backend: N worlds stepped in parallel threads by ``mujoco.rollout``.

Why rollout: it steps many (model, state) pairs in a persistent C++ thread pool with the
GIL released, so the per-world cost is MuJoCo's own; the engine keeps the authoritative
state of every world as one (N, nstate) float64 array that rollout reads and writes, and
the contact forces come from sensors that rollout records. Host tensors are shared with
torch without copies (``torch.from_numpy``).

Divergence: MuJoCo's auto-reset stays on, because a world stepped with NaN state can
generate thousands of spurious contacts and abort the whole process on arena overflow.
When MuJoCo detects NaN/huge values it resets that world to qpos0 and restarts its clock,
so a world whose clock did not advance by exactly ``substeps * timestep`` diverged and is
flagged for the NaN guard (non-finite state written by ``set_state`` is caught the same way).
"""

from __future__ import annotations

import os

import mujoco
import numpy as np
import torch
from mujoco import rollout

from .base import Simulator, body_kinematics_from_engine, resolve_body_kinematics, state_slices


class MujocoCPUSimulator(Simulator):
    """MuJoCo C on CPU threads. ``num_threads=0`` means one per CPU core (capped at N).

    ``body_kinematics``: ``"mujoco"`` (``"auto"``, the default) computes body poses and velocities
    with MuJoCo's own ``mj_kinematics``/``mj_comVel`` in float64, one world after another;
    ``"torch"`` uses the shared torch FK. Same frames and conventions, equal to float32 rounding; MuJoCo's
    is faster on CPU, where the torch FK's ~80 small ops cost more than the arithmetic
    (``benchmarks/engine_throughput.py`` prints both).
    """

    backend = "mujoco"

    def __init__(self, num_worlds: int, scene=None, device="cpu", num_threads: int = 0, skeleton=None,
                 body_kinematics: str = "auto", **kw):
        self.body_kinematics = resolve_body_kinematics(self.backend, body_kinematics)
        if skeleton is not None:
            kw["skeleton"] = skeleton
        super().__init__(num_worlds, scene, device, **kw)
        n = self.num_worlds
        self.num_threads = int(num_threads) if num_threads else min(os.cpu_count() or 1, n)
        self._slices = state_slices(self.model)
        self._nstate = mujoco.mj_stateSize(self.model, int(mujoco.mjtState.mjSTATE_FULLPHYSICS))
        self._qpos = self._slices["mjSTATE_QPOS"]
        self._qvel = self._slices["mjSTATE_QVEL"]
        self._time = self._slices["mjSTATE_TIME"].start
        self._diverged_np = np.zeros(n, dtype=bool)
        data = mujoco.MjData(self.model)
        mujoco.mj_resetData(self.model, data)
        init = np.empty(self._nstate)
        mujoco.mj_getState(self.model, data, init, int(mujoco.mjtState.mjSTATE_FULLPHYSICS))
        self._state = np.tile(init, (n, 1))
        # Control vector of each rollout step: actuator ctrl, plus the mocap (hoop) pose when the
        # scene has one -- rollout applies any mjSTATE_USER component per world and step.
        self._control_spec = int(mujoco.mjtState.mjSTATE_CTRL)
        if self.model.nmocap:
            self._control_spec |= int(mujoco.mjtState.mjSTATE_MOCAP_POS) | int(mujoco.mjtState.mjSTATE_MOCAP_QUAT)
        ctrl_slices = state_slices(self.model, self._control_spec)
        self._ctrl_u = ctrl_slices["mjSTATE_CTRL"]
        self._ctrl = np.zeros((n, self.substeps, mujoco.mj_stateSize(self.model, self._control_spec)))
        if self.model.nmocap:
            self._ctrl_mpos = ctrl_slices["mjSTATE_MOCAP_POS"]
            self._ctrl_mquat = ctrl_slices["mjSTATE_MOCAP_QUAT"]
            self._ctrl[:, :, self._ctrl_mpos] = np.tile(data.mocap_pos.reshape(-1), (n, self.substeps, 1))
            self._ctrl[:, :, self._ctrl_mquat] = np.tile(data.mocap_quat.reshape(-1), (n, self.substeps, 1))
        self._traj = np.zeros((n, self.substeps, self._nstate))
        self._sens_traj = np.zeros((n, self.substeps, self.model.nsensordata))
        self._sens = np.zeros((n, self.model.nsensordata))
        self._datas = [mujoco.MjData(self.model) for _ in range(max(1, self.num_threads))]
        self._models = [self.model] * n
        self._pool = rollout.Rollout(nthread=self.num_threads if self.num_threads > 1 else 0)
        # torch views of the numpy buffers (no copies on CPU)
        self._state_t = torch.from_numpy(self._state)
        self._sens_t = torch.from_numpy(self._sens)
        # MuJoCo's own body kinematics, one world after another in one MjData: its numpy
        # views (inputs and the humanoid's rows of the outputs) are taken once, they alias it
        nb = self.skeleton.num_bodies               # humanoid bodies are 1..nb (0 is the world)
        kd = self._kin_data = mujoco.MjData(self.model)
        root = int(self.model.body_rootid[1])
        self._kin_views = (kd.qpos, kd.qvel, kd.xpos[1:nb + 1], kd.xmat[1:nb + 1], kd.cvel[1:nb + 1],
                           kd.subtree_com[root])
        self._kin_out = (np.zeros((n, nb, 3)), np.zeros((n, nb, 9)), np.zeros((n, nb, 6)), np.zeros((n, 3)))
        self._refresh()

    def _write_qpos_qvel(self, ids, qpos, qvel):
        idx = ids.cpu().numpy()
        self._state[idx, self._qpos] = qpos.cpu().numpy()
        self._state[idx, self._qvel] = qvel.cpu().numpy()
        # Sensors of a teleported world describe its previous state; clear them until it steps.
        self._sens[idx] = 0.0
        self._diverged_np[idx] = False

    def _write_ctrl(self, ctrl):
        self._ctrl[:, :, self._ctrl_u] = ctrl.cpu().numpy()[:, None, :]

    def _write_mocap(self, ids, pos, quat):
        idx = ids.cpu().numpy()
        self._ctrl[idx, :, self._ctrl_mpos] = pos.cpu().numpy()[:, None, :]
        self._ctrl[idx, :, self._ctrl_mquat] = quat.cpu().numpy()[:, None, :]

    def _advance(self):
        expected = self._state[:, self._time] + self.substeps * self.model.opt.timestep
        self._pool.rollout(self._models, self._datas, self._state, self._ctrl,
                           control_spec=self._control_spec, skip_checks=True, nstep=self.substeps,
                           state=self._traj, sensordata=self._sens_traj)
        np.copyto(self._state, self._traj[:, -1])
        np.greater(np.abs(self._state[:, self._time] - expected), 1e-9 * np.maximum(1.0, expected),
                   out=self._diverged_np)
        # Contact readings cover the whole control step: forces are averaged over the substeps
        # (impulse / control_dt) and flags are "any substep", so a 1-substep bounce is not missed.
        np.mean(self._sens_traj, axis=1, out=self._sens)
        bf = self.layout.object_floor
        self._sens[:, bf] = self._sens_traj[:, :, bf].max(axis=1)

    def _body_kinematics(self, joint, qpos, qvel):
        if self.body_kinematics == "torch":
            return super()._body_kinematics(joint, qpos, qvel)
        m, d = self.model, self._kin_data
        d_qpos, d_qvel, d_xpos, d_xmat, d_cvel, d_com = self._kin_views
        kinematics, com_pos, com_vel = mujoco.mj_kinematics, mujoco.mj_comPos, mujoco.mj_comVel
        q, v = qpos.cpu().numpy(), qvel.cpu().numpy()      # no copy on a CPU device
        k = len(q)
        xpos, xmat, cvel, com = (a[:k] for a in self._kin_out)
        for i in range(k):
            d_qpos[:] = q[i]
            d_qvel[:] = v[i]
            kinematics(m, d)
            com_pos(m, d)
            com_vel(m, d)
            xpos[i] = d_xpos
            xmat[i] = d_xmat
            cvel[i] = d_cvel
            com[i] = d_com
        kin = body_kinematics_from_engine(*(torch.from_numpy(a) for a in (xpos, xmat, cvel, com)))
        return tuple(x.to(qpos.device) for x in kin)

    def _diverged(self):
        return torch.from_numpy(self._diverged_np).to(self.device)

    def _read(self):
        st = self._state_t.to(self.device)
        return st[:, self._qpos], st[:, self._qvel], self._sens_t.to(self.device)

    def close(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.close()
            self._pool = None
