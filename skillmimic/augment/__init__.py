"""SkillMimic-V2 augmentation of skill imitation, each piece usable on its own:

* :mod:`.similarity` -- the state-similarity measure shared by the graph and STF;
* :mod:`.stg` -- Stitched Trajectory Graph: build (CLI), save/load, networkx view;
* :mod:`.stf` -- State Transition Field: perturbed starts and nearest-frame re-targeting;
* :mod:`.ats` -- Adaptive Trajectory Sampling of clips and start frames;
* :mod:`.history` -- history encoder, pretraining (CLI) and the frozen FIFO buffer;
* :mod:`.env_hook` -- all of them as the skill env's ``augment`` hook, switched by :class:`V2Config`.

Names are imported lazily, so ``python -m skillmimic.augment.stg`` does not import its own
module twice.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AdaptiveSampler": "ats",
    "V2Augment": "env_hook", "V2Config": "env_hook", "ResetPlan": "env_hook", "align_state": "env_hook",
    "FrozenHistoryEncoder": "history", "HistoryBuffer": "history", "HistoryCheckpointError": "history",
    "HistoryEncoder": "history",
    "history_features": "history",
    "FrameFeatures": "similarity", "SimilarityWeights": "similarity", "masked_steps": "similarity",
    "similarity": "similarity", "similarity_cost": "similarity",
    "STFNoise": "stf", "perturb_state": "stf", "retarget": "stf",
    "StitchedGraph": "stg", "build_graph": "stg", "load_graph": "stg",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
