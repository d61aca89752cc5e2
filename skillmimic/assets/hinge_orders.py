"""Hinge order of every joint of the BallPlay humanoid: which Tait-Bryan Euler order its three
hinges follow (outermost first). This completes the skeleton table (``skeleton_table.py``,
which ``tools/extract_skeleton_table.py`` regenerates from an MJCF) with a choice made from
the motion data, not from the MJCF.

Why not X-Y-Z everywhere (the original): a joint whose middle hinge nears +-90 degrees is at
the Euler singularity, where its outer two angles swing by up to pi between frames. Each
order below keeps its joint's middle angle away from 90 degrees over all shared BallPlay
clips, as measured by ``python -m skillmimic.motion.euler_report ../shared/data/motions``
(docs/joints.md has the numbers). Joints not listed use X-Y-Z.
"""

HINGE_ORDERS = {
    "L_Shoulder": "YXZ", "L_Elbow": "YXZ", "R_Shoulder": "YXZ", "R_Elbow": "YXZ",
    "L_Middle2": "ZYX", "R_Middle2": "ZYX",
    "L_Thumb3": "XZY", "R_Thumb1": "YZX", "R_Thumb2": "YZX", "R_Thumb3": "YZX",
}
