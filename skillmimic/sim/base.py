"""The batched simulator interface every physics backend implements.

Why one interface: environments, resets, rewards and the viewer talk to N worlds of the
humanoid+object scene through torch tensors on one device, and do not care whether MuJoCo C
(CPU threads) or MuJoCo Warp (CUDA) steps them. Backends only move joint-space state
(qpos/qvel) and contact sensor data in and out; body poses and velocities come from the
shared torch forward kinematics or from the engine's own kinematics (``body_kinematics``),
in the same frames and conventions.

Frames: world z-up; quaternions wxyz; angular velocities in the world frame (MuJoCo's free
joint stores them in the local frame -- converted here, once); body linear velocities are
those of the body frame origins.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import mujoco
import torch

from ..assets.mjcf import SceneConfig, build_scene_xml, scene_skeleton
from ..assets.skeleton import SKELETON_BALLPLAY, Skeleton
from ..kinematics import ForwardKinematics
from ..rotations import quat_conj, quat_normalize, quat_rotate, yaw_quat
from ..state import JointState

log = logging.getLogger(__name__)


@dataclass
class SceneLayout:
    """Where things live in MuJoCo's qpos/qvel/ctrl/sensordata for this scene."""

    nq: int
    nv: int
    nu: int
    nsensordata: int
    root_q: slice          # 7: pos + quat
    dof_q: slice
    obj_q: slice           # 7: pos + quat of the object's free joint
    root_v: slice          # 6: lin (world) + ang (local)
    dof_v: slice
    obj_v: slice           # 6: lin (world) + ang (local)
    contact_force: slice   # (nbody + 1) * 3: humanoid bodies then the object
    object_floor: int      # index of the object-floor contact flag

    @classmethod
    def from_model(cls, model: mujoco.MjModel, skeleton: Skeleton) -> "SceneLayout":
        ndof = skeleton.num_dof
        root = model.joint("root")
        obj = model.joint("object")
        qa, va = int(root.qposadr[0]), int(root.dofadr[0])
        qb, vb = int(obj.qposadr[0]), int(obj.dofadr[0])
        cf0 = int(model.sensor(f"cf_{skeleton.names[0]}").adr[0])
        bf = int(model.sensor("object_floor").adr[0])
        if model.nu != ndof:
            raise ValueError(f"scene has {model.nu} actuators, skeleton has {ndof} DOF")
        return cls(
            nq=model.nq, nv=model.nv, nu=model.nu, nsensordata=model.nsensordata,
            root_q=slice(qa, qa + 7), dof_q=slice(qa + 7, qa + 7 + ndof), obj_q=slice(qb, qb + 7),
            root_v=slice(va, va + 6), dof_v=slice(va + 6, va + 6 + ndof), obj_v=slice(vb, vb + 6),
            contact_force=slice(cf0, cf0 + 3 * (skeleton.num_bodies + 1)), object_floor=bf,
        )


@dataclass
class SceneState:
    """Everything a backend reports after a step, as tensors on the simulator's device."""

    joint: JointState
    body_pos: torch.Tensor             # (N, nbody, 3)
    body_rot: torch.Tensor             # (N, nbody, 3, 3)
    body_lin_vel: torch.Tensor         # (N, nbody, 3)
    body_ang_vel: torch.Tensor         # (N, nbody, 3)
    # Contact readings cover the whole control step (mean force over its substeps, flag if any).
    contact_forces: torch.Tensor       # (N, nbody, 3) net contact force on each body, world frame
    obj_contact_force: torch.Tensor    # (N, 3) net contact force on the object, world frame
    obj_floor_contact: torch.Tensor    # (N,) bool
    # float32 (qpos, qvel, sensordata) the fields above view: a partial refresh merges these rows
    raw: tuple[torch.Tensor, ...] = field(default=(), repr=False)


class Simulator(ABC):
    """N worlds of the humanoid+object scene on one device.

    Usage: ``set_state(ids, JointState)`` for resets, ``set_pd_targets(targets)`` (hinge
    angle targets, rad), ``step()`` (``substeps`` physics steps at ``control_dt``), then read
    ``state`` (a :class:`SceneState`). Worlds whose state becomes non-finite are flagged in
    ``nonfinite`` after the step that produced it (their reported state is zeroed, not NaN,
    so one bad world never poisons batched observation/reward code) and counted in
    ``nonfinite_count``; reset them with ``set_state``.
    """

    backend: str = "base"

    def __init__(self, num_worlds: int, scene: SceneConfig | None = None, device: str | torch.device = "cpu",
                 skeleton: Skeleton = SKELETON_BALLPLAY):
        if num_worlds < 1:
            raise ValueError(f"num_worlds must be >= 1, got {num_worlds}")
        self.num_worlds = int(num_worlds)
        self.scene_cfg = scene or SceneConfig()
        self.device = torch.device(device)
        self.skeleton = scene_skeleton(self.scene_cfg, skeleton)   # with the scene's hinge order
        self.xml = build_scene_xml(self.scene_cfg, self.skeleton)
        self.model = mujoco.MjModel.from_xml_string(self.xml)
        self.layout = SceneLayout.from_model(self.model, skeleton)
        self.substeps = int(self.scene_cfg.physics.substeps)
        self.control_dt = float(self.scene_cfg.physics.control_dt)
        self._fk = ForwardKinematics(self.skeleton)
        self.nonfinite = torch.zeros(self.num_worlds, dtype=torch.bool, device=self.device)
        self._nonfinite_total = torch.zeros((), dtype=torch.long, device=self.device)
        self._nonfinite_logged = 0
        # Hoop (a mocap body) pose per world, when the scene has one.
        self.has_hoop = self.model.nmocap > 0
        self.hoop_pos = torch.as_tensor(self.model.body("hoop").pos if self.has_hoop else [0.0, 0.0, 0.0],
                                        dtype=torch.float32, device=self.device).repeat(self.num_worlds, 1)
        self.hoop_yaw = torch.zeros(self.num_worlds, device=self.device)
        self.state: SceneState

    # -- backend hooks ---------------------------------------------------------------
    @abstractmethod
    def _write_qpos_qvel(self, ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Overwrite qpos/qvel of worlds ``ids`` (float64 tensors on the simulator device)."""

    @abstractmethod
    def _write_ctrl(self, ctrl: torch.Tensor) -> None:
        """Set actuator controls of all worlds, (N, nu)."""

    @abstractmethod
    def _advance(self) -> None:
        """Run ``substeps`` physics steps for all worlds."""

    @abstractmethod
    def _read(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(qpos (N, nq), qvel (N, nv), sensordata (N, nsensordata)) of all worlds; may be
        views of engine memory (:meth:`_refresh` copies them before building ``state``)."""

    def _write_qpos_qvel_where(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Masked :meth:`_write_qpos_qvel` (rows of all N worlds). Host-memory engines may
        turn the mask into ids (no device to wait for); device engines override it."""
        ids = mask.nonzero().flatten()
        self._write_qpos_qvel(ids, qpos[ids], qvel[ids])

    def _write_mocap(self, ids: torch.Tensor, pos: torch.Tensor, quat: torch.Tensor) -> None:
        """Place the mocap body (the hoop) of worlds ``ids``; float64 (n, 3) and (n, 4)."""
        raise NotImplementedError(f"the {self.backend} backend cannot place mocap bodies")

    def _diverged(self) -> torch.Tensor | None:
        """Worlds the engine itself saw go bad during the last step (beyond non-finite output)."""
        return None

    # -- public API ----------------------------------------------------------------------
    def set_state(self, ids: torch.Tensor | None, state: JointState) -> None:
        """Teleport worlds ``ids`` (all if None) to ``state`` (one row per id)."""
        ids = self._ids(ids)
        if state.num_worlds != len(ids):
            raise ValueError(f"set_state: {len(ids)} world ids but a state batch of {state.num_worlds}")
        qpos, qvel = self._joint_to_qpos_qvel(state)
        self._write_qpos_qvel(ids, qpos, qvel)
        self.nonfinite[ids] = False
        self._refresh(ids)

    def set_state_where(self, mask: torch.Tensor, state: JointState) -> None:
        """Teleport the worlds where ``mask`` (N,) is true to their rows of ``state`` (N rows).

        Why a mask and not ids: turning a done-mask into ids (``nonzero``) makes the host wait
        for the device every step; a masked write keeps resets on the device."""
        if state.num_worlds != self.num_worlds or mask.shape != (self.num_worlds,):
            raise ValueError(f"set_state_where: needs a ({self.num_worlds},) mask and {self.num_worlds} state rows, "
                             f"got {tuple(mask.shape)} and {state.num_worlds}")
        mask = mask.to(self.device)
        qpos, qvel = self._joint_to_qpos_qvel(state)
        self._write_qpos_qvel_where(mask, qpos, qvel)
        self.nonfinite &= ~mask
        self._refresh()

    def _joint_to_qpos_qvel(self, state: JointState) -> tuple[torch.Tensor, torch.Tensor]:
        st = state.to(self.device, torch.float64)
        lay = self.layout
        n = st.num_worlds
        qpos = torch.zeros(n, lay.nq, dtype=torch.float64, device=self.device)
        qvel = torch.zeros(n, lay.nv, dtype=torch.float64, device=self.device)
        root_quat = quat_normalize(st.root_quat)
        obj_quat = quat_normalize(st.obj_quat)
        qpos[:, lay.root_q] = torch.cat([st.root_pos, root_quat], -1)
        qpos[:, lay.dof_q] = st.dof_pos
        qpos[:, lay.obj_q] = torch.cat([st.obj_pos, obj_quat], -1)
        qvel[:, lay.root_v] = torch.cat([st.root_lin_vel, quat_rotate(quat_conj(root_quat), st.root_ang_vel)], -1)
        qvel[:, lay.dof_v] = st.dof_vel
        qvel[:, lay.obj_v] = torch.cat([st.obj_lin_vel, quat_rotate(quat_conj(obj_quat), st.obj_ang_vel)], -1)
        return qpos, qvel

    def set_hoop_pose(self, ids: torch.Tensor | None, rim_pos: torch.Tensor, yaw: torch.Tensor) -> None:
        """Move the hoop of worlds ``ids``: rim centre position (n, 3) and yaw (n,) of the
        direction from the backboard towards the court. Needs a scene with a hoop."""
        if not self.has_hoop:
            raise ValueError("this scene has no hoop: build it with SceneConfig(hoop=HoopConfig())")
        ids = self._ids(ids)
        pos = torch.as_tensor(rim_pos, dtype=torch.float32, device=self.device).reshape(len(ids), 3)
        yaw = torch.as_tensor(yaw, dtype=torch.float32, device=self.device).reshape(len(ids))
        self.hoop_pos[ids] = pos
        self.hoop_yaw[ids] = yaw
        self._write_mocap(ids, pos.double(), yaw_quat(yaw.double()))

    def set_pd_targets(self, targets: torch.Tensor) -> None:
        if targets.shape != (self.num_worlds, self.layout.nu):
            raise ValueError(f"PD targets must be ({self.num_worlds}, {self.layout.nu}), got {tuple(targets.shape)}")
        self._write_ctrl(targets.to(self.device, torch.float64))

    def step(self) -> SceneState:
        self._advance()
        self._refresh()
        return self.state

    @property
    def nonfinite_count(self) -> int:
        """Worlds that went non-finite so far (each counted once until it is reset)."""
        self._log_nonfinite()
        return self._nonfinite_logged

    def _log_nonfinite(self) -> None:
        total = int(self._nonfinite_total)
        if total > self._nonfinite_logged:
            log.warning("%s: %d world(s) became non-finite (flagged now: ids %s); reset them with set_state",
                        self.backend, total - self._nonfinite_logged, self.nonfinite.nonzero().flatten()[:16].tolist())
            self._nonfinite_logged = total

    def close(self) -> None:
        """Release threads/device resources (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- shared machinery ------------------------------------------------------------------
    def _ids(self, ids) -> torch.Tensor:
        if ids is None:
            return torch.arange(self.num_worlds, device=self.device)
        ids = torch.as_tensor(ids, device=self.device, dtype=torch.long).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.num_worlds):
            raise IndexError(f"world ids out of range [0, {self.num_worlds}): {ids.tolist()}")
        return ids

    #: Whether ``_body_kinematics`` of a subset of worlds equals those rows of the whole batch
    #: (the torch FK: one row never reads another). A backend reading its engine's own body
    #: kinematics for all worlds at once sets it False.
    _row_kinematics: bool = True

    def _refresh(self, ids: torch.Tensor | None = None) -> None:
        """Read the engine, guard against non-finite worlds, rebuild ``state``.

        No host synchronisation on an accelerator: the flags and the counter stay on the
        device, and a flagged world's state is replaced (at rest, identity rotations) by a
        masked select. The warning is logged here on CPU and when the count is read on CUDA.

        ``ids``: only these worlds changed since the last refresh (a teleport); the others
        keep their rows of ``state`` and only these rows are recomputed (same numbers: every
        step is per row), so a reset of a few worlds does not redo the kinematics of all.
        """
        qpos, qvel, sens = self._read()
        diverged = self._diverged()
        # CPU only: there a row is computed alike in any batch (checked); GPU kernels may differ.
        partial = (ids is not None and self._row_kinematics and self.device.type == "cpu"
                   and hasattr(self, "state"))
        if partial:
            ids = torch.unique(ids)           # a repeated id must not be counted twice
            if len(ids) == 0:
                return
            qpos, qvel, sens = qpos[ids], qvel[ids], sens[ids]
            diverged = None if diverged is None else diverged[ids]
            flagged = self.nonfinite[ids]
        else:
            flagged = self.nonfinite
        # sum() propagates NaN/inf: one reduction per world instead of an elementwise mask
        bad = ~torch.isfinite(qpos.sum(-1) + qvel.sum(-1) + sens.sum(-1))
        if diverged is not None:
            bad |= diverged
        self._nonfinite_total += (bad & ~flagged).sum()
        if partial:
            self.nonfinite[ids] = flagged | bad
        else:
            self.nonfinite |= bad
        if self.device.type == "cpu":
            self._log_nonfinite()
        rows = bad[:, None]
        # The selects also copy: qpos/qvel/sens may alias engine memory the next step overwrites.
        qpos = torch.where(rows, self._rest_qpos(qpos), qpos)
        qvel = torch.where(rows, 0.0, qvel)
        sens = torch.where(rows, 0.0, sens)
        if partial:
            self.state = self._merge_rows(self.state, ids, self._scene_state(qpos, qvel, sens))
        else:
            self.state = self._scene_state(qpos, qvel, sens)

    def _rest_qpos(self, like: torch.Tensor) -> torch.Tensor:
        """(1, nq) qpos of a world at rest (origin, identity rotations), made once per dtype/device."""
        rest = getattr(self, "_rest_q", None)
        if rest is None or rest.dtype != like.dtype or rest.device != like.device:
            rest = torch.zeros(1, self.layout.nq, dtype=like.dtype, device=like.device)
            rest[0, self.layout.root_q.start + 3] = 1.0
            rest[0, self.layout.obj_q.start + 3] = 1.0
            self._rest_q = rest
        return rest

    def _merge_rows(self, old: SceneState, ids: torch.Tensor, new: SceneState) -> SceneState:
        """``old`` with rows ``ids`` taken from ``new`` (a state of those worlds only). The
        joint fields that are views of the float32 qpos/qvel are rebuilt as views of the
        merged arrays, so the result is laid out exactly like a full refresh's."""
        def put(a, b):
            return a.index_copy(0, ids, b)
        q32 = tuple(put(a, b) for a, b in zip(old.raw, new.raw))
        oj, nj = old.joint, new.joint
        joint = self._joint_from(q32[0], q32[1], put(oj.root_quat, nj.root_quat), put(oj.obj_quat, nj.obj_quat),
                                 put(oj.root_ang_vel, nj.root_ang_vel), put(oj.obj_ang_vel, nj.obj_ang_vel))
        kin = tuple(put(getattr(old, k), getattr(new, k))
                    for k in ("body_pos", "body_rot", "body_lin_vel", "body_ang_vel"))
        return self._assemble(joint, kin, q32)

    def _body_kinematics(self, joint: JointState, qpos: torch.Tensor, qvel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(pos, rot, lin_vel, ang_vel) of every humanoid body: the shared torch forward
        kinematics (also what the motion library reports for the reference). A backend that already
        has them for the current state, or computes them faster from the engine's own
        ``qpos``/``qvel`` rows (engine precision, after the NaN guard), may return its own
        (same frames and conventions)."""
        kin = self._fk(joint.root_pos, joint.root_quat, joint.dof_pos,
                       joint.root_lin_vel, joint.root_ang_vel, joint.dof_vel)
        return kin.pos, kin.rot, kin.lin_vel, kin.ang_vel

    def _scene_state(self, qpos: torch.Tensor, qvel: torch.Tensor, sens: torch.Tensor) -> SceneState:
        lay = self.layout
        qpos64, qvel64 = qpos, qvel
        qpos = qpos.to(torch.float32)
        qvel = qvel.to(torch.float32)
        sens = sens.to(torch.float32)
        root_quat = quat_normalize(qpos[:, lay.root_q.start + 3:lay.root_q.stop])
        obj_quat = quat_normalize(qpos[:, lay.obj_q.start + 3:lay.obj_q.stop])
        rv, bv = qvel[:, lay.root_v], qvel[:, lay.obj_v]
        joint = self._joint_from(qpos, qvel, root_quat, obj_quat,
                                 quat_rotate(root_quat, rv[:, 3:]), quat_rotate(obj_quat, bv[:, 3:]))
        return self._assemble(joint, self._body_kinematics(joint, qpos64, qvel64), (qpos, qvel, sens))

    def _joint_from(self, qpos, qvel, root_quat, obj_quat, root_ang_vel, obj_ang_vel) -> JointState:
        """The JointState over float32 qpos/qvel (views) and the fields computed from them."""
        lay = self.layout
        rv, bv = qvel[:, lay.root_v], qvel[:, lay.obj_v]
        return JointState(
            root_pos=qpos[:, lay.root_q.start:lay.root_q.start + 3],
            root_quat=root_quat,
            root_lin_vel=rv[:, :3],
            root_ang_vel=root_ang_vel,
            dof_pos=qpos[:, lay.dof_q],
            dof_vel=qvel[:, lay.dof_v],
            obj_pos=qpos[:, lay.obj_q.start:lay.obj_q.start + 3],
            obj_quat=obj_quat,
            obj_lin_vel=bv[:, :3],
            obj_ang_vel=obj_ang_vel,
        )

    def _assemble(self, joint: JointState, kin: tuple[torch.Tensor, ...], raw: tuple[torch.Tensor, ...]) -> SceneState:
        lay = self.layout
        pos, rot, lin_vel, ang_vel = kin
        sens = raw[2]
        forces = sens[:, lay.contact_force].reshape(sens.shape[0], -1, 3)
        return SceneState(
            joint=joint,
            body_pos=pos, body_rot=rot, body_lin_vel=lin_vel, body_ang_vel=ang_vel,
            contact_forces=forces[:, :-1], obj_contact_force=forces[:, -1],
            obj_floor_contact=sens[:, lay.object_floor] > 0, raw=raw,
        )


#: Each backend's ways of reporting body poses and velocities: the shared torch FK or its
#: engine's own kinematics. ``"auto"`` means the first: MuJoCo's on the C engine (measured
#: faster on the CPU, ``benchmarks/engine_throughput.py``), the torch FK on MuJoCo Warp until
#: the GPU suite (which times both) says otherwise.
BODY_KINEMATICS = {"mujoco": ("mujoco", "torch"), "mjwarp": ("torch", "warp")}


def resolve_body_kinematics(backend: str, value: str) -> str:
    """``value`` for ``backend`` (``"auto"``: its default), or ValueError naming the choices."""
    choices = BODY_KINEMATICS[backend]
    if value == "auto":
        return choices[0]
    if value not in choices:
        raise ValueError(f"body_kinematics must be one of auto, {', '.join(choices)} with the {backend} engine, "
                         f"got {value!r}")
    return value


def body_kinematics_from_engine(xpos: torch.Tensor, xmat: torch.Tensor, cvel: torch.Tensor,
                                subtree_com: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(pos, rot, lin_vel, ang_vel), new float32 tensors, of the humanoid bodies from an
    engine's own kinematics (MuJoCo C or Warp): ``xpos`` (N, nb, 3), ``xmat`` (N, nb, 9 or
    3x3), ``cvel`` (N, nb, 6) and the humanoid tree's ``subtree_com`` (N, 3). MuJoCo's
    ``cvel`` is [angular; linear] with the linear part the velocity of the point at the tree's
    centre of mass; the bodies report their origins' velocity, v = v_com + w x (x_body - c),
    computed in the engine's precision."""
    omega, v_com = cvel[..., :3], cvel[..., 3:]
    lin = v_com + torch.cross(omega, xpos - subtree_com[:, None], dim=-1)
    rot = xmat.reshape(*xpos.shape[:-1], 3, 3)
    return tuple(x.to(torch.float32, copy=True) for x in (xpos, rot, lin, omega))


def state_slices(model: mujoco.MjModel, spec: int = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)) -> dict[str, slice]:
    """Offsets of the components of a MuJoCo state vector of ``spec`` (default
    mjSTATE_FULLPHYSICS: time, qpos, qvel, ...), keyed by the mjtState flag name."""
    full = int(spec)
    out, lower = {}, 0
    for bit in range(int(mujoco.mjtState.mjNSTATE)):
        flag = 1 << bit
        if not full & flag:
            continue
        start = mujoco.mj_stateSize(model, lower)
        size = mujoco.mj_stateSize(model, flag)
        out[mujoco.mjtState(flag).name] = slice(start, start + size)
        lower |= flag
    return out


__all__ = ["Simulator", "SceneState", "SceneLayout", "BODY_KINEMATICS", "body_kinematics_from_engine",
           "resolve_body_kinematics", "state_slices"]
