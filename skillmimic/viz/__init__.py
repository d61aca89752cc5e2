"""Seeing what a policy does: headless MP4 rendering (:mod:`.render`) and the interactive
viewer with keyboard skill switching (:mod:`.viewer`, key map in :mod:`.keymap`)."""
