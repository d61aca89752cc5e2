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
OBJ_POS = slice(324, 327)
OBJ_ROT = slice(327, 330)        # exp-map, negated by the original loader; zeros in the release
UNUSED = slice(330, 336)
CONTACT = 336                     # hand-object contact flag (the ball in BallPlay) {0, 1}

# A clip's skill label (its file name's first three digits) indexes a one-hot of this width
# in the policy observation, so labels run 0..63.
NUM_SKILLS = 64

# Plausibility bounds (load_clip): far beyond any capture (BallPlay: |position| < 6 m,
# |exp-map angle| < 3.1 rad) yet far below values that blow the simulation up.
POSITION_LIMIT = 100.0            # m, ROOT_POS / BODY_POS / OBJ_POS
ANGLE_LIMIT = 100.0               # rad, ROOT_ROT / ROOT_ROT_DUP / DOF / OBJ_ROT exp-maps

NUM_BODIES = 53
NUM_JOINTS = 52
