"""Column layout of a BallPlay ``.pt`` clip: one float tensor (frames, 337) at 60 fps.

Why a module of named slices: every reader and writer of the format (loader, demo-clip
generator, tests) uses these names instead of magic numbers.
"""

NUM_COLUMNS = 337
FPS = 60.0

ROOT_POS = slice(0, 3)            # pelvis position (m), world z-up
ROOT_ROT = slice(3, 6)            # pelvis rotation, exp-map (axis * angle, rad)
ROOT_ROT_DUP = slice(6, 9)        # duplicate of ROOT_ROT in the release; ignored
DOF = slice(9, 165)               # 52 joints x per-joint exp-map (NOT hinge angles)
BODY_POS = slice(165, 324)        # 53 body positions, MJCF body order
BALL_POS = slice(324, 327)
BALL_ROT = slice(327, 330)        # exp-map, negated by the original loader; zeros in the release
UNUSED = slice(330, 336)
CONTACT = 336                     # hand-ball contact flag {0, 1}

NUM_BODIES = 53
NUM_JOINTS = 52
