"""The humanoid skeleton as the rest of the library sees it: names, tree, gains, body sets.

Why: every stage (motion library, simulator, observations, rewards) indexes bodies
and DOFs; deriving all index sets here from the one skeleton table keeps them in
agreement with the data's column order (53 bodies, 52 joints x 3 hinges).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from ..rotations import EULER_ORDERS
from .hinge_orders import HINGE_ORDERS
from .skeleton_table import SKELETON

FINGERS = ("Index", "Middle", "Pinky", "Ring", "Thumb")

# 17 key bodies of the reward and of the reference vector (facts §2), in the original order.
KEY_BODY_NAMES = (
    "Head", "L_Knee", "R_Knee", "L_Elbow", "R_Elbow", "L_Ankle", "R_Ankle",
    "L_Index3", "L_Middle3", "L_Pinky3", "L_Ring3", "L_Thumb3",
    "R_Index3", "R_Middle3", "R_Pinky3", "R_Ring3", "R_Thumb3",
)
# 10 fingertips whose contact forces enter the observation.
FINGERTIP_NAMES = tuple(f"{side}_{finger}3" for side in "LR" for finger in FINGERS)
# Bodies whose contact with anything is penalised by the body-contact reward term
# (Isaac Gym indices [0,1,2,5,6,9-17,34,35,36] of the original).
CONTACT_REWARD_BODY_NAMES = (
    "Pelvis", "L_Hip", "L_Knee", "R_Hip", "R_Knee", "Torso", "Spine", "Spine2", "Chest",
    "Neck", "Head", "L_Thorax", "L_Shoulder", "L_Elbow", "R_Thorax", "R_Shoulder", "R_Elbow",
)


@dataclass(frozen=True)
class Skeleton:
    """Immutable view of the skeleton table with derived index sets."""

    names: tuple[str, ...]
    parents: tuple[int, ...]          # parent body index, -1 for the root
    offsets: np.ndarray               # (nbody, 3) body origin in parent frame
    kp: np.ndarray                    # (nbody,) PD stiffness of the body's hinges (root: 0)
    kd: np.ndarray                    # (nbody,) PD damping
    geoms: tuple[tuple, ...]
    hinge_orders: tuple[str, ...]     # (num_joints,) Euler order of each joint's hinges, e.g. "YXZ"

    @property
    def num_bodies(self) -> int:
        return len(self.names)

    @property
    def num_joints(self) -> int:
        """Number of 3-hinge (ball) joints: every body but the root."""
        return self.num_bodies - 1

    @property
    def num_dof(self) -> int:
        return 3 * self.num_joints

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown body {name!r}; known: {', '.join(self.names)}") from None

    def indices(self, names) -> list[int]:
        return [self.index(n) for n in names]

    @cached_property
    def key_body_ids(self) -> list[int]:
        return self.indices(KEY_BODY_NAMES)

    @cached_property
    def fingertip_ids(self) -> list[int]:
        return self.indices(FINGERTIP_NAMES)

    @cached_property
    def contact_reward_body_ids(self) -> list[int]:
        return self.indices(CONTACT_REWARD_BODY_NAMES)

    def with_hinge_order(self, order: str) -> "Skeleton":
        """This skeleton with the hinge order of the scene config: ``"table"`` keeps the
        per-joint orders, an Euler order (any case, e.g. ``"xyz"``, the original's) applies
        to every joint."""
        if order == "table":
            return self
        order = str(order).upper()
        if order not in EULER_ORDERS:
            raise ValueError(f"hinge_order must be 'table' or one of {', '.join(EULER_ORDERS)} "
                             f"(any case), got {order!r}")
        return replace(self, hinge_orders=(order,) * self.num_joints)

    def hinge_names(self, joint: int) -> tuple[str, str, str]:
        """Axis letters of body ``joint + 1``'s three hinges in kinematic (DOF) order."""
        return tuple(self.hinge_orders[joint].lower())

    @cached_property
    def dof_kp(self) -> np.ndarray:
        """(num_dof,) PD stiffness per hinge, in DOF order (joint-major, then hinge order)."""
        return np.repeat(self.kp[1:], 3)

    @cached_property
    def dof_kd(self) -> np.ndarray:
        return np.repeat(self.kd[1:], 3)

    @cached_property
    def depth(self) -> np.ndarray:
        """Tree depth per body (root 0); forward kinematics proceeds level by level."""
        depth = np.zeros(self.num_bodies, dtype=np.int64)
        for i, p in enumerate(self.parents):
            if p >= 0:
                depth[i] = depth[p] + 1
        return depth


def _build(table=SKELETON, orders=HINGE_ORDERS) -> Skeleton:
    names = tuple(row[0] for row in table)
    unknown = sorted(set(orders) - set(names[1:]))
    if unknown:
        raise ValueError(f"hinge orders name unknown joints {unknown}")
    bad = {n: o for n, o in orders.items() if o not in EULER_ORDERS}
    if bad:
        raise ValueError(f"hinge orders {bad}: each must be one of {', '.join(EULER_ORDERS)}")
    parents = tuple(-1 if row[1] is None else names.index(row[1]) for row in table)
    for i, p in enumerate(parents):
        if p >= i:
            raise ValueError(f"skeleton table: body {names[i]!r} listed before its parent")
    return Skeleton(
        names=names,
        parents=parents,
        offsets=np.array([row[2] for row in table], dtype=np.float64),
        kp=np.array([row[3] for row in table], dtype=np.float64),
        kd=np.array([row[4] for row in table], dtype=np.float64),
        geoms=tuple(row[5] for row in table),
        hinge_orders=tuple(orders.get(n, "XYZ") for n in names[1:]),
    )


SKELETON_BALLPLAY = _build()
