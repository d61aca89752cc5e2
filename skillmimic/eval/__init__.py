"""Evaluation: tracking metrics (:mod:`.metrics`), per-skill success criteria
(:mod:`.success`) and the deterministic test-mode runner (:mod:`.runner`).

Importing the package imports neither rl-games nor the simulator; the runner does.
"""
